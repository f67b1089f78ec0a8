//! Interactions as the models read them: per user and per item, the distinct counterparts with a
//! weight. Weights come from feedback weights per event type (a purchase counts more than a view);
//! a pair whose weights sum to zero or less is an explicit negative: never recommended, never
//! learned from.

use crate::Rating;

/// Who interacted with what, deduplicated, with summed weights.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub users: usize,
    pub items: usize,
    /// Sorted, distinct items per user.
    pub user_items: Vec<Vec<u32>>,
    /// The weight of each of `user_items`, same positions.
    pub user_weights: Vec<Vec<f32>>,
    /// Sorted, distinct users per item.
    pub item_users: Vec<Vec<u32>>,
    pub item_weights: Vec<Vec<f32>>,
    /// Sorted items each user rejected (weights summing to ≤ 0).
    pub negatives: Vec<Vec<u32>>,
}

impl Interactions {
    /// Binary interactions from ratings at or above `min_rating` (all with `None`): each distinct
    /// pair weighs 1. The dimensions cover every user and item in `ratings`, kept or not.
    pub fn from_ratings(ratings: &[Rating], min_rating: Option<f32>) -> Self {
        let (users, items) = dimensions(ratings);
        let kept: Vec<Rating> = ratings
            .iter()
            .filter(|r| min_rating.is_none_or(|m| r.rating >= m))
            .map(|r| Rating { rating: 1.0, ..*r })
            .collect();
        Self::build(&kept, users, items, |sum, _| sum.min(1.0))
    }

    /// Weighted interactions: the weights of repeated pairs add up (a view and a purchase of the same
    /// item give both weights); pairs summing to ≤ 0 become negatives. Users and items beyond
    /// the given dimensions are ignored.
    pub fn from_feedback(feedback: &[Rating], users: usize, items: usize) -> Self {
        Self::build(feedback, users, items, |sum, _| sum)
    }

    fn build(
        pairs: &[Rating],
        users: usize,
        items: usize,
        combine: impl Fn(f32, usize) -> f32,
    ) -> Self {
        let mut sorted: Vec<Rating> = pairs
            .iter()
            .filter(|r| (r.user as usize) < users && (r.item as usize) < items)
            .copied()
            .collect();
        sorted.sort_unstable_by_key(|r| (r.user, r.item));
        let mut data = Interactions {
            users,
            items,
            user_items: vec![Vec::new(); users],
            user_weights: vec![Vec::new(); users],
            item_users: vec![Vec::new(); items],
            item_weights: vec![Vec::new(); items],
            negatives: vec![Vec::new(); users],
        };
        let mut at = 0;
        while at < sorted.len() {
            let (u, i) = (sorted[at].user, sorted[at].item);
            let mut sum = 0f32;
            let mut n = 0;
            while at < sorted.len() && sorted[at].user == u && sorted[at].item == i {
                sum += sorted[at].rating;
                n += 1;
                at += 1;
            }
            let w = combine(sum, n);
            if w > 0.0 {
                data.user_items[u as usize].push(i);
                data.user_weights[u as usize].push(w);
                data.item_users[i as usize].push(u);
                data.item_weights[i as usize].push(w);
            } else {
                data.negatives[u as usize].push(i);
            }
        }
        data
    }

    pub fn items_of(&self, user: u32) -> &[u32] {
        self.user_items
            .get(user as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// A user's history as (item, weight), sorted by item.
    pub fn history(&self, user: u32) -> Vec<(u32, f32)> {
        let u = user as usize;
        match (self.user_items.get(u), self.user_weights.get(u)) {
            (Some(i), Some(w)) => i.iter().copied().zip(w.iter().copied()).collect(),
            _ => Vec::new(),
        }
    }

    /// Number of (user, item) pairs.
    pub fn pairs(&self) -> usize {
        self.user_items.iter().map(Vec::len).sum()
    }
}

/// Users and items spanned by `ratings` (largest id + 1).
pub fn dimensions(ratings: &[Rating]) -> (usize, usize) {
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
    (users, items)
}

/// How much each kind of feedback weighs; negative weights are explicit dislikes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackWeights {
    pub view: f32,
    pub favorite: f32,
    pub add_to_cart: f32,
    pub purchase: f32,
    /// "Not interested", a return, a bad review.
    pub dislike: f32,
}

impl Default for FeedbackWeights {
    fn default() -> Self {
        FeedbackWeights {
            view: 1.0,
            favorite: 2.0,
            add_to_cart: 3.0,
            purchase: 5.0,
            dislike: -10.0,
        }
    }
}

impl FeedbackWeights {
    /// The weight of an event type by its API name; `None` for events that are not feedback on an
    /// item.
    pub fn of(&self, kind: &str) -> Option<f32> {
        Some(match kind {
            "view" | "product_view" | "pv" => self.view,
            "favorite" | "fav" | "share" => self.favorite,
            "add_to_cart" | "cart" => self.add_to_cart,
            "purchase" | "buy" | "order" => self.purchase,
            "dislike" | "refund" | "return" => self.dislike,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user: u32, item: u32, rating: f32) -> Rating {
        Rating { user, item, rating }
    }

    #[test]
    fn repeated_feedback_adds_up_and_net_dislikes_are_negatives() {
        let data = Interactions::from_feedback(
            &[
                r(0, 1, 1.0),
                r(0, 1, 5.0),
                r(0, 2, 1.0),
                r(0, 2, -10.0),
                r(1, 2, 3.0),
            ],
            2,
            3,
        );
        assert_eq!(data.history(0), vec![(1, 6.0)]);
        assert_eq!(data.negatives[0], vec![2]);
        assert_eq!(data.item_users[2], vec![1]);
        assert_eq!(data.item_weights[2], vec![3.0]);
        assert_eq!(data.pairs(), 2);
    }

    #[test]
    fn ratings_become_binary_pairs() {
        let data =
            Interactions::from_ratings(&[r(0, 1, 4.0), r(0, 1, 5.0), r(1, 0, 2.0)], Some(3.0));
        assert_eq!(data.history(0), vec![(1, 1.0)]);
        assert!(data.items_of(1).is_empty());
        assert_eq!((data.users, data.items), (2, 2));
    }
}
