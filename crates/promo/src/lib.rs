//! Promotions over plain data: no IO, randomness only from a seed the caller gives.
//!
//! - [`red_packet`]: fixed and lucky (拼手气) red packets, split in integer minor units.

pub mod red_packet;
