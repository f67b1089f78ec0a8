//! Promotions over plain data: no IO, randomness only from a seed the caller gives.
//!
//! - [`budget`]: budget periods and their keys.
//! - [`campaign`]: the campaign state machine.
//! - [`pricing`]: cart pricing, the best legal combination of promotions, exact to the cent.
//! - [`refund`]: the exact share of each promotion a partial refund takes back.
//! - [`red_packet`]: fixed and lucky (拼手气) red packets, split in integer minor units.
//! - [`coupon_code`]: unguessable coupon codes.

pub mod budget;
pub mod campaign;
pub mod pricing;
pub mod red_packet;
pub mod refund;

/// Letters and digits that cannot be mistaken for each other (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A new coupon code: 12 characters of an unambiguous alphabet (31¹² ≈ 7.9 × 10¹⁷ codes), so
/// guessing one is hopeless and collisions are negligible (the store refuses a repeat anyway).
pub fn coupon_code(rng: &mut impl rand::Rng) -> String {
    (0..12)
        .map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]))
        .collect()
}
