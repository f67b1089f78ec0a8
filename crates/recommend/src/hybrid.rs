//! Hybrids of models, and re-ranking of their output.
//!
//! - [`Blend`]: a weighted sum of models whose scores are first normalised per user to (0, 1], so
//!   scales do not matter; weights can be tuned against a validation metric.
//! - [`Switch`]: one model for users with a short history (cold start), another beyond.
//! - [`Cascade`]: a candidate generator, then a re-scorer over its candidates only.
//! - [`rerank`]: filters and diversity after scoring.

use crate::score::{normalise, top_k, Scorer};

/// A weighted blend of normalised model scores.
pub struct Blend {
    parts: Vec<(Box<dyn Scorer>, f32)>,
}

impl Blend {
    pub fn new(parts: Vec<(Box<dyn Scorer>, f32)>) -> Self {
        Blend { parts }
    }

    pub fn weights(&self) -> Vec<(&'static str, f32)> {
        self.parts.iter().map(|(m, w)| (m.name(), *w)).collect()
    }

    pub fn describe(&self) -> String {
        self.weights()
            .iter()
            .map(|(n, w)| format!("{n}×{w}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// Coordinate search: each weight in turn tries a grid of values with the others fixed, kept
    /// when `metric` (higher is better) improves; two rounds. Weights stay in [0, 1] with the
    /// first model at 1.
    pub fn tune(&mut self, metric: impl Fn(&Blend) -> f64) {
        const GRID: [f32; 6] = [0.0, 0.1, 0.2, 0.35, 0.5, 1.0];
        let mut best = metric(self);
        for _ in 0..2 {
            for p in 1..self.parts.len() {
                let current = self.parts[p].1;
                let mut chosen = current;
                for &w in &GRID {
                    if w == current {
                        continue;
                    }
                    self.parts[p].1 = w;
                    let m = metric(self);
                    if m > best {
                        best = m;
                        chosen = w;
                    }
                }
                self.parts[p].1 = chosen;
            }
        }
    }
}

impl Scorer for Blend {
    fn name(&self) -> &'static str {
        "blend"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        let mut part = vec![0f32; out.len()];
        for (model, w) in &self.parts {
            if *w == 0.0 {
                continue;
            }
            part.iter_mut().for_each(|s| *s = 0.0);
            model.score(user, history, &mut part[..model.items().min(out.len())]);
            normalise(&mut part);
            out.iter_mut().zip(&part).for_each(|(o, s)| *o += w * s);
        }
    }
    fn items(&self) -> usize {
        self.parts.iter().map(|(m, _)| m.items()).max().unwrap_or(0)
    }
}

/// Switching hybrid: `cold` for histories shorter than `min_history`, `warm` otherwise.
pub struct Switch {
    pub cold: Box<dyn Scorer>,
    pub warm: Box<dyn Scorer>,
    pub min_history: usize,
}

impl Scorer for Switch {
    fn name(&self) -> &'static str {
        "switch"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        if history.len() < self.min_history {
            self.cold.score(user, history, out);
        } else {
            self.warm.score(user, history, out);
        }
    }
    fn items(&self) -> usize {
        self.cold.items().max(self.warm.items())
    }
}

/// Cascade: `generate` proposes its best `candidates` items; `rescore` orders only those
/// (candidates keep a small share of their first score so rescoring ties keep the first order).
pub struct Cascade {
    pub generate: Box<dyn Scorer>,
    pub rescore: Box<dyn Scorer>,
    pub candidates: usize,
}

impl Scorer for Cascade {
    fn name(&self) -> &'static str {
        "cascade"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        let mut first = vec![0f32; out.len()];
        self.generate.score(user, history, &mut first);
        let seen = |i: u32| history.binary_search_by_key(&i, |h| h.0).is_ok();
        let chosen = top_k(
            first.iter().enumerate().map(|(i, &s)| (i as u32, s)),
            seen,
            self.candidates,
        );
        let mut second = vec![0f32; out.len()];
        self.rescore.score(user, history, &mut second);
        normalise(&mut first);
        normalise(&mut second);
        for (i, _) in chosen {
            let i = i as usize;
            out[i] = second[i] + 0.01 * first[i] + f32::MIN_POSITIVE;
        }
    }
    fn items(&self) -> usize {
        self.generate.items()
    }
}

pub mod rerank {
    //! After scoring: business filters (in stock, price range, exclusions), diversity (at most so
    //! many items of one category, or maximal marginal relevance), and pinned slots.

    /// What may be shown, and how the list is shaped.
    #[derive(Clone, Copy)]
    pub struct Shape<'a> {
        /// Items never to show (bought, already shown on an earlier page, excluded by the caller).
        pub exclude: &'a dyn Fn(u32) -> bool,
        /// At most this many items of one category (`None`: no cap).
        pub per_category: Option<usize>,
        /// MMR trade-off in (0, 1]: 1 is pure relevance; lower values penalise an item by its
        /// similarity to what is already chosen (here: same category = 1, else 0).
        pub mmr_lambda: Option<f32>,
        /// Items placed at fixed positions (0-based), before everything else.
        pub pinned: &'a [(usize, u32)],
    }

    fn nothing(_: u32) -> bool {
        false
    }

    impl Default for Shape<'_> {
        fn default() -> Self {
            Shape {
                exclude: &nothing,
                per_category: None,
                mmr_lambda: None,
                pinned: &[],
            }
        }
    }

    /// The final list of `n` items from `ranked` (best first, with scores), honouring `shape`;
    /// `category` gives an item's category for diversity.
    pub fn shape(
        ranked: &[(u32, f32)],
        n: usize,
        shape: &Shape<'_>,
        category: impl Fn(u32) -> Option<u32>,
    ) -> Vec<(u32, f32)> {
        let mut pool: Vec<(u32, f32)> = ranked
            .iter()
            .copied()
            .filter(|(i, _)| !(shape.exclude)(*i) && !shape.pinned.iter().any(|(_, p)| p == i))
            .collect();
        let mut chosen: Vec<(u32, f32)> = Vec::with_capacity(n);
        let mut per: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
        while chosen.len() + shape.pinned.len().min(n) < n && !pool.is_empty() {
            let top = pool.first().map_or(1.0, |x| x.1).max(f32::MIN_POSITIVE);
            let pick = pool
                .iter()
                .enumerate()
                .filter(|(_, (i, _))| {
                    shape.per_category.is_none_or(|cap| {
                        category(*i).is_none_or(|c| per.get(&c).copied().unwrap_or(0) < cap)
                    })
                })
                .map(|(at, &(i, s))| {
                    let value = match shape.mmr_lambda {
                        Some(l) => {
                            let redundant = category(i).is_some_and(|c| per.contains_key(&c));
                            l * s / top - (1.0 - l) * if redundant { 1.0 } else { 0.0 }
                        }
                        None => s,
                    };
                    (at, value)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some((at, _)) = pick else { break };
            let item = pool.remove(at);
            if let Some(c) = category(item.0) {
                *per.entry(c).or_default() += 1;
            }
            chosen.push(item);
        }
        let mut pinned: Vec<(usize, u32)> = shape.pinned.to_vec();
        pinned.sort_unstable();
        for (slot, item) in pinned {
            if !(shape.exclude)(item) {
                chosen.insert(slot.min(chosen.len()), (item, f32::INFINITY));
            }
        }
        chosen.truncate(n);
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::rerank::{shape, Shape};
    use super::*;

    struct Fixed(Vec<f32>);
    impl Scorer for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn score(&self, _: Option<u32>, _: &[(u32, f32)], out: &mut [f32]) {
            out.copy_from_slice(&self.0);
        }
        fn items(&self) -> usize {
            self.0.len()
        }
    }

    #[test]
    fn blend_weighs_normalised_scores() {
        let blend = Blend::new(vec![
            (Box::new(Fixed(vec![10.0, 0.0, 5.0])), 1.0),
            (Box::new(Fixed(vec![0.0, 1.0, 1.0])), 0.5),
        ]);
        let mut out = [0f32; 3];
        blend.score(None, &[], &mut out);
        assert_eq!(out, [1.0, 0.5, 1.0]);
    }

    #[test]
    fn tuning_finds_the_weight_the_metric_wants() {
        let mut blend = Blend::new(vec![
            (Box::new(Fixed(vec![1.0, 0.0])), 1.0),
            (Box::new(Fixed(vec![0.0, 1.0])), 1.0),
        ]);
        blend.tune(|b| -f64::from((b.parts[1].1 - 0.35).abs()));
        assert_eq!(blend.weights()[1].1, 0.35);
    }

    #[test]
    fn switch_and_cascade() {
        let switch = Switch {
            cold: Box::new(Fixed(vec![1.0, 0.0])),
            warm: Box::new(Fixed(vec![0.0, 1.0])),
            min_history: 2,
        };
        let mut out = [0f32; 2];
        switch.score(None, &[(0, 1.0)], &mut out);
        assert_eq!(out, [1.0, 0.0]);
        let cascade = Cascade {
            generate: Box::new(Fixed(vec![3.0, 2.0, 1.0])),
            rescore: Box::new(Fixed(vec![0.0, 1.0, 9.0])),
            candidates: 2,
        };
        let mut out = [0f32; 3];
        cascade.score(None, &[], &mut out);
        assert_eq!(out[2], 0.0, "item 2 was not a candidate");
        assert!(out[1] > out[0], "rescored: {out:?}");
    }

    #[test]
    fn shaping_caps_categories_excludes_and_pins() {
        let ranked = [(0, 9.0), (1, 8.0), (2, 7.0), (3, 6.0), (4, 5.0)];
        let category = |i: u32| Some(if i < 3 { 0 } else { 1 });
        let exclude = |i: u32| i == 1;
        let pinned = [(0usize, 4u32)];
        let got = shape(
            &ranked,
            3,
            &Shape {
                exclude: &exclude,
                per_category: Some(1),
                mmr_lambda: None,
                pinned: &pinned,
            },
            category,
        );
        let items: Vec<u32> = got.iter().map(|x| x.0).collect();
        assert_eq!(items, vec![4, 0, 3]);
        let mmr = shape(
            &ranked,
            2,
            &Shape {
                mmr_lambda: Some(0.5),
                ..Shape::default()
            },
            category,
        );
        assert_eq!(mmr.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 3]);
    }
}
