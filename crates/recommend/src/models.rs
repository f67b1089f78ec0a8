//! The first recommenders, over implicit interactions: most popular, and item-based
//! collaborative filtering (item kNN with cosine similarity), plus the evaluation loop that turns a
//! split into the metrics of [`crate::metrics`].
//!
//! - [`Interactions`]: each user's distinct items and each item's distinct users (a rating
//!   counts as one interaction; ratings under a threshold can be left out).
//! - [`Popularity`]: items by how many users interacted with them (ties: smaller item id).
//! - [`ItemKnn`]: for each item, its `neighbours` most similar items by cosine similarity of their
//!   user sets, `|U_i ∩ U_j| / sqrt(|U_i| · |U_j|)`; a user's score for an item is the sum of its
//!   similarities to the items the user has.
//! - Recommendations never include items the user already has in training, and ties are broken by
//!   the smaller item id, so results are deterministic.

use crate::metrics::{mean_metrics, UserMetrics};
use crate::Rating;
use std::collections::{HashMap, HashSet};

/// Who interacted with what, deduplicated.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub users: usize,
    pub items: usize,
    /// Sorted, distinct items per user.
    pub user_items: Vec<Vec<u32>>,
    /// Sorted, distinct users per item.
    pub item_users: Vec<Vec<u32>>,
}

impl Interactions {
    /// Interactions from ratings at or above `min_rating` (all with `None`).
    pub fn from_ratings(ratings: &[Rating], min_rating: Option<f32>) -> Self {
        let kept = ratings
            .iter()
            .filter(|r| min_rating.is_none_or(|m| r.rating >= m));
        let users = ratings
            .iter()
            .map(|r| r.user as usize + 1)
            .max()
            .unwrap_or(0);
        let items = ratings
            .iter()
            .map(|r| r.item as usize + 1)
            .max()
            .unwrap_or(0);
        let mut user_items = vec![Vec::new(); users];
        let mut item_users = vec![Vec::new(); items];
        for r in kept {
            user_items[r.user as usize].push(r.item);
            item_users[r.item as usize].push(r.user);
        }
        for list in user_items.iter_mut().chain(item_users.iter_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        Interactions {
            users,
            items,
            user_items,
            item_users,
        }
    }

    pub fn items_of(&self, user: u32) -> &[u32] {
        self.user_items
            .get(user as usize)
            .map_or(&[], Vec::as_slice)
    }
}

/// A model that ranks items for a user.
pub trait Recommender {
    /// The best `k` items for `user` that are not in `seen`, best first, with scores.
    fn recommend(&self, user: u32, seen: &[u32], k: usize) -> Vec<(u32, f32)>;
}

/// The `k` best of `scores` (item, score), skipping `seen`; ties go to the smaller item.
fn top_k(scores: impl Iterator<Item = (u32, f32)>, seen: &[u32], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores
        .filter(|(i, s)| *s > 0.0 && seen.binary_search(i).is_err())
        .collect();
    let by = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > k {
        all.select_nth_unstable_by(k, by);
        all.truncate(k);
    }
    all.sort_by(by);
    all
}

/// Most popular items.
#[derive(Debug, Clone)]
pub struct Popularity {
    counts: Vec<f32>,
}

impl Popularity {
    pub fn fit(data: &Interactions) -> Self {
        Popularity {
            counts: data.item_users.iter().map(|u| u.len() as f32).collect(),
        }
    }
}

impl Recommender for Popularity {
    fn recommend(&self, _user: u32, seen: &[u32], k: usize) -> Vec<(u32, f32)> {
        top_k(
            self.counts.iter().enumerate().map(|(i, &c)| (i as u32, c)),
            seen,
            k,
        )
    }
}

/// Item-based collaborative filtering.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    /// For each item, its most similar items with their similarity.
    neighbours: Vec<Vec<(u32, f32)>>,
    items: usize,
}

impl ItemKnn {
    /// Keeps, per item, the `neighbours` most similar items.
    pub fn fit(data: &Interactions, neighbours: usize) -> Self {
        let n = data.items;
        let mut co = vec![0u32; n];
        let mut touched: Vec<u32> = Vec::new();
        let mut lists = Vec::with_capacity(n);
        for i in 0..n {
            for &u in &data.item_users[i] {
                for &j in &data.user_items[u as usize] {
                    if j as usize != i {
                        if co[j as usize] == 0 {
                            touched.push(j);
                        }
                        co[j as usize] += 1;
                    }
                }
            }
            let ni = data.item_users[i].len() as f32;
            let sims = touched.drain(..).map(|j| {
                let nj = data.item_users[j as usize].len() as f32;
                let s = co[j as usize] as f32 / (ni * nj).sqrt();
                co[j as usize] = 0;
                (j, s)
            });
            lists.push(top_k(sims, &[], neighbours));
        }
        ItemKnn {
            neighbours: lists,
            items: n,
        }
    }

    /// The items most similar to `item` (for "看了又看" on a product page).
    pub fn similar(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        let list = self
            .neighbours
            .get(item as usize)
            .map_or(&[][..], Vec::as_slice);
        list.iter().copied().take(k).collect()
    }
}

impl Recommender for ItemKnn {
    fn recommend(&self, _user: u32, seen: &[u32], k: usize) -> Vec<(u32, f32)> {
        let mut scores = vec![0f32; self.items];
        for &j in seen {
            for &(i, s) in self
                .neighbours
                .get(j as usize)
                .map_or(&[][..], Vec::as_slice)
            {
                scores[i as usize] += s;
            }
        }
        top_k(
            scores.into_iter().enumerate().map(|(i, s)| (i as u32, s)),
            seen,
            k,
        )
    }
}

/// Ranks `k` items for every user with test items and scores them against the test set: the
/// protocols' "all items not seen in training" ranking.
pub fn evaluate(
    model: &impl Recommender,
    train: &Interactions,
    test: &[Rating],
    k: usize,
) -> UserMetrics {
    let mut relevant: HashMap<u32, HashSet<u32>> = HashMap::new();
    for r in test {
        relevant.entry(r.user).or_default().insert(r.item);
    }
    let lists: HashMap<u32, Vec<u32>> = relevant
        .keys()
        .map(|&u| {
            let ranked = model.recommend(u, train.items_of(u), k);
            (u, ranked.into_iter().map(|(i, _)| i).collect())
        })
        .collect();
    mean_metrics(&lists, &relevant, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user: u32, item: u32) -> Rating {
        Rating {
            user,
            item,
            rating: 5.0,
        }
    }

    /// Two tastes: users 0–19 like items 0–5, users 20–39 like items 6–11, each about two
    /// thirds of them; item 12 is liked by everyone.
    fn toy() -> Vec<Rating> {
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
    fn popularity_ranks_by_users_and_skips_what_was_seen() {
        let data = Interactions::from_ratings(&toy(), None);
        let pop = Popularity::fit(&data);
        let recs = pop.recommend(0, &[], 3);
        assert_eq!(recs[0], (12, 40.0), "the item everyone likes first");
        let recs = pop.recommend(0, data.items_of(0), 3);
        assert!(recs.iter().all(|(i, _)| !data.items_of(0).contains(i)));
    }

    #[test]
    fn item_knn_recommends_within_the_taste() {
        let data = Interactions::from_ratings(&toy(), None);
        let knn = ItemKnn::fit(&data, 10);
        // Cosine of two items sharing one user, each with two users (and item 6 with all six).
        let s = knn.similar(1, 10);
        assert!(s.iter().all(|(j, _)| *j != 1));
        for u in 0..40u32 {
            let seen = data.items_of(u);
            let recs = knn.recommend(u, seen, 1);
            let taste = if u < 20 { 0..6 } else { 6..12 };
            assert!(
                taste.contains(&recs[0].0),
                "user {u} got {recs:?}, has {seen:?}"
            );
        }
        // Against the definition, computed from the user sets directly.
        let u0: HashSet<u32> = data.item_users[0].iter().copied().collect();
        let u1: HashSet<u32> = data.item_users[1].iter().copied().collect();
        let expected = u0.intersection(&u1).count() as f32 / ((u0.len() * u1.len()) as f32).sqrt();
        let got = knn
            .similar(0, 10)
            .iter()
            .find(|(j, _)| *j == 1)
            .map_or(0.0, |x| x.1);
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn evaluation_prefers_the_model_that_knows_the_tastes() {
        // Each user holds out one item of their taste.
        let all = toy();
        let (mut train, mut test) = (Vec::new(), Vec::new());
        let mut held: HashSet<u32> = HashSet::new();
        for x in all {
            if x.item != 12 && held.insert(x.user) {
                test.push(x);
            } else {
                train.push(x);
            }
        }
        let data = Interactions::from_ratings(&train, None);
        let knn = evaluate(&ItemKnn::fit(&data, 10), &data, &test, 2);
        let pop = evaluate(&Popularity::fit(&data), &data, &test, 2);
        assert!(knn.hit > pop.hit, "knn {knn:?} vs popularity {pop:?}");
        assert!(knn.ndcg > pop.ndcg, "knn {knn:?} vs popularity {pop:?}");
    }
}
