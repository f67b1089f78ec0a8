//! Offline evaluation: rank every item for each test user with one model, mask what the protocol
//! says the user has already seen, and score the top k against the held-out items.
//!
//! The protocols (see docs/recommendations.md):
//! - **B** (Microsoft Recommenders): each item's ratings split 75/25 at random; rank all items not
//!   seen in training; precision, recall, nDCG and MAP at k.
//! - **C** (RecBole's ML-1M leaderboard): ratings ≥ 3, 10-core, per-user random 8:1:1; models are
//!   fitted on train, tuned on valid, and scored on test with train and valid items masked;
//!   NDCG, Hit, Recall and MRR at k.
//! - **T** (temporal leave-last-out): each user's last basket (all items at their latest
//!   timestamp) is the test; everything earlier trains.

use crate::data::Interactions;
use crate::metrics::{coverage, intra_list_diversity, mean_metrics, novelty, UserMetrics};
use crate::score::{top_k, Scorer};
use crate::Rating;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Accuracy and list metrics of one model under one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Report {
    pub users: usize,
    #[serde(flatten)]
    pub metrics: UserMetrics,
    pub coverage: f64,
    pub diversity: f64,
    pub novelty: f64,
}

/// What to evaluate against.
pub struct Protocol<'a> {
    pub train: &'a Interactions,
    /// Held-out items per user.
    pub relevant: HashMap<u32, HashSet<u32>>,
    /// Extra items to mask per user besides the training items (protocol C's valid items when
    /// testing).
    pub also_masked: HashMap<u32, Vec<u32>>,
    pub k: usize,
    /// Distance between two items for intra-list diversity (1 − similarity, e.g. of genres);
    /// `None` reports 0.
    pub distance: Option<&'a (dyn Fn(u32, u32) -> f64 + Sync)>,
}

/// Held-out items per user.
pub fn relevant_of(test: &[Rating]) -> HashMap<u32, HashSet<u32>> {
    let mut relevant: HashMap<u32, HashSet<u32>> = HashMap::new();
    for r in test {
        relevant.entry(r.user).or_default().insert(r.item);
    }
    relevant
}

/// Items per user, sorted.
pub fn items_by_user(ratings: &[Rating]) -> HashMap<u32, Vec<u32>> {
    let mut by: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in ratings {
        by.entry(r.user).or_default().push(r.item);
    }
    for v in by.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    by
}

impl Protocol<'_> {
    /// Ranks the top k for every user with held-out items, in parallel, and scores them.
    pub fn evaluate(&self, model: &dyn Scorer) -> Report {
        let users: Vec<u32> = {
            let mut u: Vec<u32> = self.relevant.keys().copied().collect();
            u.sort_unstable();
            u
        };
        let lists: Vec<(u32, Vec<u32>)> = users
            .par_iter()
            .map_init(
                || vec![0f32; model.items()],
                |out, &u| {
                    out.iter_mut().for_each(|o| *o = 0.0);
                    let history = self.train.history(u);
                    model.score(Some(u), &history, out);
                    let seen = self.train.items_of(u);
                    let extra = self.also_masked.get(&u).map_or(&[][..], Vec::as_slice);
                    let ranked = top_k(
                        out.iter().enumerate().map(|(i, &s)| (i as u32, s)),
                        |i| seen.binary_search(&i).is_ok() || extra.binary_search(&i).is_ok(),
                        self.k,
                    );
                    (u, ranked.into_iter().map(|(i, _)| i).collect())
                },
            )
            .collect();
        let lists: HashMap<u32, Vec<u32>> = lists.into_iter().collect();
        let popularity: HashMap<u32, u64> = self
            .train
            .item_users
            .iter()
            .enumerate()
            .map(|(i, u)| (i as u32, u.len() as u64))
            .collect();
        Report {
            users: users.len(),
            metrics: mean_metrics(&lists, &self.relevant, self.k),
            coverage: coverage(lists.values(), self.train.items),
            diversity: self
                .distance
                .map_or(0.0, |d| intra_list_diversity(lists.values(), d)),
            novelty: novelty(lists.values(), &popularity),
        }
    }
}

/// One timed interaction, for protocol T.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedRating {
    pub user: u32,
    pub item: u32,
    pub weight: f32,
    pub at: i64,
}

/// Protocol T: for each user with interactions at two or more times, the items of their latest
/// time (the last basket) are the test, and everything strictly earlier trains. Test items the
/// user had already interacted with earlier are left out (the task is finding new items), and so
/// are items never seen in training by anyone. Users with one time only train.
pub fn leave_last_basket_out(data: &[TimedRating]) -> (Vec<Rating>, Vec<Rating>) {
    let mut by_user: BTreeMap<u32, Vec<TimedRating>> = BTreeMap::new();
    for r in data {
        by_user.entry(r.user).or_default().push(*r);
    }
    let (mut train, mut last) = (Vec::new(), Vec::new());
    for (_, mut rows) in by_user {
        rows.sort_by_key(|r| (r.at, r.item));
        let latest = rows.last().map_or(0, |r| r.at);
        let earliest = rows.first().map_or(0, |r| r.at);
        let as_rating = |r: &TimedRating| Rating {
            user: r.user,
            item: r.item,
            rating: r.weight,
        };
        if earliest == latest {
            train.extend(rows.iter().map(as_rating));
            continue;
        }
        let before: HashSet<u32> = rows
            .iter()
            .filter(|r| r.at < latest)
            .map(|r| r.item)
            .collect();
        for r in &rows {
            if r.at < latest {
                train.push(as_rating(r));
            } else if !before.contains(&r.item) {
                last.push(as_rating(r));
            }
        }
    }
    let known: HashSet<u32> = train.iter().map(|r| r.item).collect();
    last.retain(|r| known.contains(&r.item));
    (train, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ItemKnn, Popularity};

    fn r(user: u32, item: u32) -> Rating {
        Rating {
            user,
            item,
            rating: 5.0,
        }
    }

    /// Two tastes: users 0–19 like items 0–5, users 20–39 like items 6–11, each about two
    /// thirds of them; item 12 is liked by everyone.
    pub(crate) fn toy() -> Vec<Rating> {
        let mut v = Vec::new();
        for u in 0..40u32 {
            v.push(r(u, 12));
            let base = if u < 20 { 0 } else { 6 };
            for i in base..base + 6 {
                if (u * 7 + i) % 3 != 0 {
                    v.push(r(u, i));
                }
            }
        }
        v
    }

    #[test]
    fn evaluation_prefers_the_model_that_knows_the_tastes() {
        // Each user holds out one item of their taste.
        let (mut train, mut test) = (Vec::new(), Vec::new());
        let mut held: HashSet<u32> = HashSet::new();
        for x in toy() {
            if x.item != 12 && held.insert(x.user) {
                test.push(x);
            } else {
                train.push(x);
            }
        }
        let data = Interactions::from_ratings(&train, None);
        let protocol = Protocol {
            train: &data,
            relevant: relevant_of(&test),
            also_masked: HashMap::new(),
            k: 2,
            distance: None,
        };
        let knn = protocol.evaluate(&ItemKnn::fit(&data, 10));
        let pop = protocol.evaluate(&Popularity::fit(&data));
        assert_eq!(knn.users, 40);
        assert!(
            knn.metrics.hit > pop.metrics.hit,
            "knn {knn:?} vs popularity {pop:?}"
        );
        assert!(
            knn.metrics.ndcg > pop.metrics.ndcg,
            "knn {knn:?} vs popularity {pop:?}"
        );
    }

    #[test]
    fn masked_items_are_never_recommended() {
        let data = Interactions::from_ratings(&toy(), None);
        let mut also = HashMap::new();
        also.insert(0u32, vec![12u32]);
        let mut relevant = HashMap::new();
        relevant.insert(0u32, HashSet::from([12u32]));
        let protocol = Protocol {
            train: &Interactions::from_ratings(&[r(0, 0)], None),
            relevant,
            also_masked: also,
            k: 5,
            distance: None,
        };
        assert_eq!(protocol.evaluate(&Popularity::fit(&data)).metrics.hit, 0.0);
    }

    #[test]
    fn last_basket_is_the_test_and_repeats_are_left_out() {
        let t = |user, item, at| TimedRating {
            user,
            item,
            weight: 1.0,
            at,
        };
        let (train, test) = leave_last_basket_out(&[
            t(0, 1, 10),
            t(0, 2, 20),
            t(0, 1, 30),
            t(0, 3, 30),
            t(1, 3, 5),
            t(2, 9, 1),
            t(2, 8, 2),
        ]);
        assert_eq!(test, vec![r1(0, 3)]);
        assert_eq!(train.len(), 4, "{train:?}");
        fn r1(user: u32, item: u32) -> Rating {
            Rating {
                user,
                item,
                rating: 1.0,
            }
        }
    }
}
