//! Promotions over plain data: no IO, randomness only from a seed the caller gives.
//!
//! - [`pricing`]: cart pricing, the best legal combination of promotions, exact to the cent.
//! - [`red_packet`]: fixed and lucky (拼手气) red packets, split in integer minor units.

pub mod pricing;
pub mod red_packet;
