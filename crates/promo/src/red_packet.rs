//! Red packets (红包): a total split into shares that claimants take one by one.
//!
//! **Fixed** packets split the total as evenly as integers allow ([`split_fixed`]).
//!
//! **Lucky** packets (拼手气, [`split_lucky`]) are split once, when the packet is made, by random
//! cuts: every share first gets the minimum; the remainder R is cut at N−1 points drawn uniformly
//! from 0..=R and sorted, and the gaps between consecutive cuts (and the ends) are the shares'
//! extra amounts. The shares are *exchangeable*: the joint distribution does not change when they
//! are permuted, so every claim position has the same distribution and the same mean, total/N.
//! Claims then just take the next pre-drawn share, which a store can do with one atomic
//! increment, so concurrent claims need no further randomness or locking.
//!
//! The popular "double mean" method (二倍均值法: each claimant draws uniformly up to twice the mean
//! of what is left) is also fair in expectation, but its later shares are far more variable and the
//! last share absorbs rounding; [`simulate`] measures both properties of this method.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedPacketError {
    #[error("a red packet needs at least one share")]
    NoShares,
    #[error("the total {total} cannot give {shares} shares of at least {min_share} each")]
    TooSmall {
        total: i64,
        shares: u32,
        min_share: i64,
    },
    #[error("the minimum share must be at least 1 minor unit, got {0}")]
    BadMinimum(i64),
}

impl RedPacketError {
    pub fn kind(&self) -> shopgrowth_core::ErrorKind {
        shopgrowth_core::ErrorKind::Invalid
    }
}

fn check(total: i64, shares: u32, min_share: i64) -> Result<(), RedPacketError> {
    if shares == 0 {
        return Err(RedPacketError::NoShares);
    }
    if min_share < 1 {
        return Err(RedPacketError::BadMinimum(min_share));
    }
    if total < i64::from(shares).saturating_mul(min_share) {
        return Err(RedPacketError::TooSmall {
            total,
            shares,
            min_share,
        });
    }
    Ok(())
}

/// Equal shares; the first `total mod shares` get one unit more.
pub fn split_fixed(total: i64, shares: u32) -> Result<Vec<i64>, RedPacketError> {
    check(total, shares, 1)?;
    Ok(shopgrowth_core::money::allocate(
        total,
        &vec![1; shares as usize],
    ))
}

/// Random shares of at least `min_share` each that sum exactly to `total`, fair by position.
pub fn split_lucky(
    total: i64,
    shares: u32,
    min_share: i64,
    rng: &mut impl Rng,
) -> Result<Vec<i64>, RedPacketError> {
    check(total, shares, min_share)?;
    let n = shares as usize;
    let rest = total - min_share * i64::from(shares);
    let mut cuts: Vec<i64> = (0..n - 1).map(|_| rng.random_range(0..=rest)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(n);
    let mut previous = 0;
    for cut in cuts.into_iter().chain(std::iter::once(rest)) {
        out.push(min_share + cut - previous);
        previous = cut;
    }
    debug_assert_eq!(out.iter().sum::<i64>(), total);
    Ok(out)
}

/// What a simulation of many lucky packets measured, per claim position.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub packets: u32,
    pub total: i64,
    pub shares: u32,
    pub min_share: i64,
    /// Mean amount taken at each claim position.
    pub position_means: Vec<f64>,
    /// Standard deviation at each claim position.
    pub position_std: Vec<f64>,
    /// Largest |mean − total/N| / (total/N) over positions.
    pub worst_relative_deviation: f64,
    /// Packets whose shares did not sum to the total (must be 0).
    pub inexact: u32,
    /// Smallest and largest share seen.
    pub min_seen: i64,
    pub max_seen: i64,
}

/// Splits `packets` lucky packets from `seed` and measures fairness by position.
pub fn simulate(
    packets: u32,
    total: i64,
    shares: u32,
    min_share: i64,
    seed: u64,
) -> Result<Simulation, RedPacketError> {
    check(total, shares, min_share)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shares as usize;
    let (mut sum, mut sum_sq) = (vec![0f64; n], vec![0f64; n]);
    let (mut inexact, mut min_seen, mut max_seen) = (0, i64::MAX, i64::MIN);
    for _ in 0..packets {
        let split = split_lucky(total, shares, min_share, &mut rng)?;
        if split.iter().sum::<i64>() != total {
            inexact += 1;
        }
        for (i, &x) in split.iter().enumerate() {
            sum[i] += x as f64;
            sum_sq[i] += (x as f64) * (x as f64);
            min_seen = min_seen.min(x);
            max_seen = max_seen.max(x);
        }
    }
    let p = f64::from(packets.max(1));
    let position_means: Vec<f64> = sum.iter().map(|s| s / p).collect();
    let position_std: Vec<f64> = sum_sq
        .iter()
        .zip(&position_means)
        .map(|(sq, m)| (sq / p - m * m).max(0.0).sqrt())
        .collect();
    let fair = total as f64 / f64::from(shares);
    let worst_relative_deviation = position_means
        .iter()
        .map(|m| (m - fair).abs() / fair)
        .fold(0.0, f64::max);
    Ok(Simulation {
        packets,
        total,
        shares,
        min_share,
        position_means,
        position_std,
        worst_relative_deviation,
        inexact,
        min_seen,
        max_seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_splits_are_even_and_exact() {
        assert_eq!(split_fixed(1000, 3), Ok(vec![334, 333, 333]));
        assert_eq!(
            split_fixed(2, 3),
            Err(RedPacketError::TooSmall {
                total: 2,
                shares: 3,
                min_share: 1
            })
        );
        assert_eq!(split_fixed(5, 0), Err(RedPacketError::NoShares));
    }

    #[test]
    fn lucky_refuses_what_cannot_be_split() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            split_lucky(99, 10, 10, &mut rng),
            Err(RedPacketError::TooSmall {
                total: 99,
                shares: 10,
                min_share: 10
            })
        );
        assert_eq!(
            split_lucky(100, 10, 0, &mut rng),
            Err(RedPacketError::BadMinimum(0))
        );
        assert_eq!(
            split_lucky(100, 10, 10, &mut rng),
            Ok(vec![10; 10]),
            "exactly the minimum each"
        );
        assert_eq!(split_lucky(7, 1, 1, &mut rng), Ok(vec![7]));
    }

    /// The check: 100,000 packets, every split exact, every position's mean within 1% of
    /// total/N.
    #[test]
    fn a_hundred_thousand_packets_are_exact_and_fair_by_position() {
        let s = simulate(100_000, 10_000, 10, 1, 20261123).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{s:?}");
        assert_eq!(s.inexact, 0);
        assert!(s.min_seen >= 1);
        assert!(s.worst_relative_deviation < 0.01, "{:?}", s.position_means);
        // The first and last positions are equally spread too (unlike the double-mean method).
        let (first, last) = (s.position_std[0], s.position_std[9]);
        assert!((first - last).abs() / first < 0.05, "std {first} vs {last}");
    }

    proptest! {
        #[test]
        fn lucky_splits_sum_exactly_and_respect_the_minimum(
            shares in 1u32..200, min_share in 1i64..500, extra in 0i64..10_000_000, seed in any::<u64>()
        ) {
            let total = i64::from(shares) * min_share + extra;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let split = split_lucky(total, shares, min_share, &mut rng);
            prop_assert!(split.is_ok());
            let split = split.unwrap_or_default();
            prop_assert_eq!(split.len(), shares as usize);
            prop_assert_eq!(split.iter().sum::<i64>(), total);
            prop_assert!(split.iter().all(|&x| x >= min_share));
        }
    }
}
