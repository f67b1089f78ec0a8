//! Train/test splits of the evaluation protocols, deterministic for a seed.

use crate::Rating;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};

/// Train, validation and test sets.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub train: Vec<Rating>,
    pub valid: Vec<Rating>,
    pub test: Vec<Rating>,
}

fn grouped(ratings: &[Rating], key: impl Fn(&Rating) -> u32) -> BTreeMap<u32, Vec<Rating>> {
    let mut groups: BTreeMap<u32, Vec<Rating>> = BTreeMap::new();
    for r in ratings {
        groups.entry(key(r)).or_default().push(*r);
    }
    groups
}

/// Protocol B (Microsoft Recommenders' stratified split by item): within each item, shuffle its
/// ratings and put round(ratio · n) of them in train, the rest in test.
pub fn per_item(ratings: &[Rating], ratio: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split::default();
    for (_, mut group) in grouped(ratings, |r| r.item) {
        group.shuffle(&mut rng);
        let cut = ((group.len() as f64) * ratio).round() as usize;
        split.test.extend_from_slice(&group[cut.min(group.len())..]);
        group.truncate(cut);
        split.train.extend(group);
    }
    split
}

/// Keeps only users and items with at least `k` ratings, repeating until nothing changes
/// (the k-core filter).
pub fn k_core(ratings: &[Rating], k: usize) -> Vec<Rating> {
    let mut kept = ratings.to_vec();
    loop {
        let mut users: HashMap<u32, usize> = HashMap::new();
        let mut items: HashMap<u32, usize> = HashMap::new();
        for r in &kept {
            *users.entry(r.user).or_default() += 1;
            *items.entry(r.item).or_default() += 1;
        }
        let before = kept.len();
        kept.retain(|r| users[&r.user] >= k && items[&r.item] >= k);
        if kept.len() == before {
            return kept;
        }
    }
}

/// Protocol C (RecBole's ML-1M setting): ratings ≥ `min_rating`, a `core`-core filter, then each
/// user's interactions shuffled and split 8:1:1 (train gets floor(0.8·n), valid floor(0.9·n) −
/// floor(0.8·n), test the rest).
pub fn per_user_811(ratings: &[Rating], min_rating: f32, core: usize, seed: u64) -> Split {
    let filtered: Vec<Rating> = ratings
        .iter()
        .filter(|r| r.rating >= min_rating)
        .copied()
        .collect();
    let kept = k_core(&filtered, core);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split::default();
    for (_, mut group) in grouped(&kept, |r| r.user) {
        group.shuffle(&mut rng);
        let n = group.len();
        let (a, b) = (n * 8 / 10, n * 9 / 10);
        split.train.extend_from_slice(&group[..a]);
        split.valid.extend_from_slice(&group[a..b]);
        split.test.extend_from_slice(&group[b..]);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(user: u32, item: u32, rating: f32) -> Rating {
        Rating { user, item, rating }
    }

    #[test]
    fn per_item_splits_each_item() {
        let ratings: Vec<Rating> = (0..8)
            .map(|u| r(u, 1, 4.0))
            .chain((0..4).map(|u| r(u, 2, 4.0)))
            .collect();
        let s = per_item(&ratings, 0.75, 7);
        assert_eq!(s.train.iter().filter(|x| x.item == 1).count(), 6);
        assert_eq!(s.test.iter().filter(|x| x.item == 2).count(), 1);
        let again = per_item(&ratings, 0.75, 7);
        assert_eq!(s.test, again.test, "the same seed gives the same split");
    }

    #[test]
    fn k_core_repeats_until_stable() {
        // Item 9 has two ratings, so with k = 2 it stays; user 3 has one rating and goes,
        // which leaves item 8 with one rating, so it goes too.
        let ratings = vec![
            r(1, 9, 5.0),
            r(2, 9, 5.0),
            r(1, 7, 5.0),
            r(2, 7, 5.0),
            r(3, 8, 5.0),
            r(1, 8, 5.0),
        ];
        let kept = k_core(&ratings, 2);
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().all(|x| x.item != 8));
    }

    proptest! {
        #[test]
        fn splits_partition_the_data(
            raw in proptest::collection::vec((0u32..30, 0u32..30, 1u8..=5), 0..400), seed in any::<u64>()
        ) {
            let ratings: Vec<Rating> = raw.iter().map(|&(u, i, x)| r(u, i, f32::from(x))).collect();
            let b = per_item(&ratings, 0.75, seed);
            prop_assert_eq!(b.train.len() + b.test.len(), ratings.len());
            let c = per_user_811(&ratings, 3.0, 3, seed);
            let kept = k_core(&ratings.iter().filter(|x| x.rating >= 3.0).copied().collect::<Vec<_>>(), 3);
            prop_assert_eq!(c.train.len() + c.valid.len() + c.test.len(), kept.len());
            prop_assert!(c.train.iter().chain(&c.valid).chain(&c.test).all(|x| x.rating >= 3.0));
        }
    }
}
