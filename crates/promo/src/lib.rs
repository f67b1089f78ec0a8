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

/// A new coupon code: 4 characters naming the minute it was made, then 10 random characters of an
/// unambiguous alphabet (31¹⁰ ≈ 8.2 × 10¹⁴ codes per minute), so guessing one is hopeless and
/// collisions are negligible (the store refuses a repeat anyway). The minute comes first so that
/// codes made together sit together in the store's index: with fully random codes, issuing
/// 150,000 coupons ran at 2,156 a second against 24,592 with ordered ones (docs/benchmarks.md).
pub fn coupon_code(rng: &mut impl rand::Rng, now_ms: i64) -> String {
    let base = CODE_ALPHABET.len() as i64;
    let minute = (now_ms.max(0) / 60_000) % base.pow(4);
    let prefix = (0..4)
        .rev()
        .map(|i| char::from(CODE_ALPHABET[((minute / base.pow(i)) % base) as usize]));
    let random =
        (0..10).map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]));
    prefix.chain(random).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn codes_start_with_their_minute_and_sort_by_it() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let t = 1_795_483_620_910;
        let (a, b) = (coupon_code(&mut rng, t), coupon_code(&mut rng, t + 1_000));
        let later = coupon_code(&mut rng, t + 60_000);
        assert_eq!((a.len(), &a[..4]), (14, &b[..4]), "{a} {b}");
        assert_ne!(a, b);
        assert!(later[..4] > a[..4], "{a} then {later}");
        assert!(a.bytes().all(|c| CODE_ALPHABET.contains(&c)));
    }
}
