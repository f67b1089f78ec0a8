//! What every model does: add a score for each item of the catalogue, for a user given by a
//! trained index, a history, or both. Ranking, exclusions and blending are done once, here and in
//! [`crate::hybrid`], not in each model.

/// A model that scores items for a user.
pub trait Scorer: Send + Sync {
    /// A short name for tables and reasons.
    fn name(&self) -> &'static str;

    /// Writes a score for every item into `out` (its length is the model's item count; higher is
    /// better; 0 means no opinion). `user` is the index the model was trained with, if the user
    /// was known then; `history` is what the user did, (item, weight) sorted by item, including
    /// anything newer than the training.
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]);

    /// The number of items the model scores.
    fn items(&self) -> usize;
}

/// The `k` best of `scores` (item, score) with a positive score, skipping items `skip` says to;
/// best first, ties to the smaller item id so results are deterministic.
pub fn top_k(
    scores: impl Iterator<Item = (u32, f32)>,
    skip: impl Fn(u32) -> bool,
    k: usize,
) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores
        .filter(|&(i, s)| s > 0.0 && s.is_finite() && !skip(i))
        .collect();
    let by = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > k {
        all.select_nth_unstable_by(k, by);
        all.truncate(k);
    }
    all.sort_by(by);
    all
}

/// The best `k` items for a user from one model, excluding the sorted `seen` items.
pub fn recommend(
    model: &dyn Scorer,
    user: Option<u32>,
    history: &[(u32, f32)],
    seen: &[u32],
    k: usize,
) -> Vec<(u32, f32)> {
    let mut out = vec![0f32; model.items()];
    model.score(user, history, &mut out);
    top_k(
        out.into_iter().enumerate().map(|(i, s)| (i as u32, s)),
        |i| seen.binary_search(&i).is_ok(),
        k,
    )
}

/// Shifts and scales positive scores into (0, 1] by the largest one, so that models with different
/// scales can be blended; zero stays zero.
pub fn normalise(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(0f32, f32::max);
    if max > 0.0 {
        for s in scores.iter_mut() {
            *s = if *s > 0.0 { *s / max } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_item_and_skips() {
        let scores = [(3, 1.0), (1, 1.0), (2, 5.0), (4, 0.0), (5, 2.0)];
        let got = top_k(scores.into_iter(), |i| i == 5, 3);
        assert_eq!(got, vec![(2, 5.0), (1, 1.0), (3, 1.0)]);
    }

    #[test]
    fn normalise_keeps_order_and_zeroes() {
        let mut s = [0.0, 2.0, -1.0, 4.0];
        normalise(&mut s);
        assert_eq!(s, [0.0, 0.5, 0.0, 1.0]);
    }
}
