//! Matrix factorisation for implicit feedback by alternating least squares (Hu, Koren and
//! Volinsky, ICDM 2008), each least-squares step solved approximately by a few conjugate-gradient
//! iterations warm-started from the previous factors (Takács, Pilászy and Tikk, RecSys 2011) — the
//! method and the conventions of the `implicit` package, so the two compare like for like:
//!
//! - the confidence of an observed pair is `alpha × weight`, with preference 1; every unobserved
//!   pair has confidence 1 and preference 0;
//! - the regularisation `λ` is added to the diagonal of `YᵀY`;
//! - factors start uniform in [0, 0.01) from the seed.
//!
//! A user not in training, or with newer interactions, is folded in by solving their least-squares
//! problem exactly against the item factors ([`Als::fold_in`]): real-time, without retraining.

use crate::data::Interactions;
use crate::score::Scorer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsConfig {
    pub factors: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub iterations: usize,
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        AlsConfig {
            factors: 64,
            regularization: 0.05,
            alpha: 10.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Als {
    factors: usize,
    alpha: f32,
    /// Row-major users × factors.
    users: Vec<f32>,
    /// Row-major items × factors.
    items: Vec<f32>,
    item_count: usize,
    /// `YᵀY + λI` of the final item factors, kept for folding users in.
    item_gramian: Vec<f32>,
}

/// Dot product with eight independent partial sums, so the compiler can keep them in SIMD lanes
/// (a single running sum is a serial chain: float addition is not reassociated).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `YᵀY + λI` for the factor rows of `y`.
fn gramian(y: &[f32], f: usize, lambda: f32) -> Vec<f32> {
    let partial = y
        .par_chunks(f * 256)
        .map(|block| {
            let mut g = vec![0f32; f * f];
            for row in block.chunks_exact(f) {
                for a in 0..f {
                    let ra = row[a];
                    for (gb, rb) in g[a * f..(a + 1) * f].iter_mut().zip(row) {
                        *gb += ra * rb;
                    }
                }
            }
            g
        })
        .reduce(
            || vec![0f32; f * f],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mut g = partial;
    for a in 0..f {
        g[a * f + a] += lambda;
    }
    g
}

/// A few CG steps on `(YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c y` over the observed `(index, c)`,
/// starting from `x`.
fn conjugate_gradient(
    x: &mut [f32],
    yty: &[f32],
    y: &[f32],
    observed: &[(u32, f32)],
    steps: usize,
) {
    let f = x.len();
    let row = |i: u32| &y[i as usize * f..(i as usize + 1) * f];
    let times_a = |v: &[f32], out: &mut [f32]| {
        for a in 0..f {
            out[a] = dot(&yty[a * f..(a + 1) * f], v);
        }
        for &(i, c) in observed {
            let yi = row(i);
            let t = (c - 1.0) * dot(yi, v);
            out.iter_mut().zip(yi).for_each(|(o, y)| *o += t * y);
        }
    };
    let mut r = vec![0f32; f];
    times_a(x, &mut r);
    r.iter_mut().for_each(|v| *v = -*v);
    for &(i, c) in observed {
        r.iter_mut().zip(row(i)).for_each(|(v, y)| *v += c * y);
    }
    let mut p = r.clone();
    let mut rs_old = dot(&r, &r);
    let mut ap = vec![0f32; f];
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        times_a(&p, &mut ap);
        let pap = dot(&p, &ap);
        if pap <= 0.0 {
            break;
        }
        let step = rs_old / pap;
        x.iter_mut().zip(&p).for_each(|(x, p)| *x += step * p);
        r.iter_mut().zip(&ap).for_each(|(r, a)| *r -= step * a);
        let rs_new = dot(&r, &r);
        let beta = rs_new / rs_old;
        p.iter_mut().zip(&r).for_each(|(p, r)| *p = r + beta * *p);
        rs_old = rs_new;
    }
}

/// One half-iteration: every row of `x` (users or items) re-solved against `y`.
fn solve_side(
    x: &mut [f32],
    y: &[f32],
    f: usize,
    lists: &[Vec<u32>],
    weights: &[Vec<f32>],
    config: &AlsConfig,
) {
    let yty = gramian(y, f, config.regularization);
    x.par_chunks_mut(f)
        .zip(lists.par_iter().zip(weights.par_iter()))
        .for_each_init(Vec::new, |observed, (row, (list, w))| {
            observed.clear();
            observed.extend(list.iter().zip(w).map(|(&i, &w)| (i, config.alpha * w)));
            conjugate_gradient(row, &yty, y, observed, config.cg_steps);
        });
}

impl Als {
    pub fn fit(data: &Interactions, config: &AlsConfig) -> Self {
        let f = config.factors.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>() * 0.01).collect() };
        let mut users = random(data.users * f);
        let mut items = random(data.items * f);
        for _ in 0..config.iterations {
            solve_side(
                &mut users,
                &items,
                f,
                &data.user_items,
                &data.user_weights,
                config,
            );
            solve_side(
                &mut items,
                &users,
                f,
                &data.item_users,
                &data.item_weights,
                config,
            );
        }
        Als {
            factors: f,
            alpha: config.alpha,
            item_gramian: gramian(&items, f, config.regularization),
            users,
            items,
            item_count: data.items,
        }
    }

    /// The exact least-squares user vector for `history` against the item factors: what training
    /// would give this user with the items fixed. Solved by Cholesky on the f×f system.
    pub fn fold_in(&self, history: &[(u32, f32)]) -> Vec<f32> {
        let f = self.factors;
        let mut a = self.item_gramian.clone();
        let mut b = vec![0f32; f];
        for &(i, w) in history {
            let Some(y) = self.items.get(i as usize * f..(i as usize + 1) * f) else {
                continue;
            };
            let c = self.alpha * w;
            for p in 0..f {
                b[p] += c * y[p];
                for q in 0..f {
                    a[p * f + q] += (c - 1.0) * y[p] * y[q];
                }
            }
        }
        cholesky_solve(&mut a, &mut b, f);
        b
    }

    fn user_vector(&self, user: Option<u32>) -> Option<&[f32]> {
        let f = self.factors;
        user.and_then(|u| self.users.get(u as usize * f..(u as usize + 1) * f))
    }
}

/// Solves `a x = b` for a symmetric positive-definite `a` (n×n, row-major) in place: `b` becomes x.
fn cholesky_solve(a: &mut [f32], b: &mut [f32], n: usize) {
    for j in 0..n {
        let mut d = a[j * n + j] as f64;
        for k in 0..j {
            d -= (a[j * n + k] as f64).powi(2);
        }
        let d = d.max(1e-12).sqrt();
        a[j * n + j] = d as f32;
        for i in j + 1..n {
            let mut s = a[i * n + j] as f64;
            for k in 0..j {
                s -= a[i * n + k] as f64 * a[j * n + k] as f64;
            }
            a[i * n + j] = (s / d) as f32;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
}

/// Writes `x · y_i` for every item, shifted so the lowest is just above zero (ranks keep their
/// order; [`Scorer`] treats 0 as no opinion).
pub(crate) fn dot_scores(x: &[f32], items: &[f32], f: usize, out: &mut [f32]) {
    for (o, y) in out.iter_mut().zip(items.chunks_exact(f)) {
        *o = dot(x, y);
    }
    let min = out.iter().copied().fold(f32::INFINITY, f32::min);
    if min.is_finite() {
        out.iter_mut().for_each(|o| *o = *o - min + 1e-6);
    }
}

impl Scorer for Als {
    fn name(&self) -> &'static str {
        "als"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        let folded;
        let x = match self.user_vector(user) {
            Some(x) => x,
            None if history.is_empty() => return,
            None => {
                folded = self.fold_in(history);
                &folded
            }
        };
        dot_scores(x, &self.items, self.factors, out);
    }
    fn items(&self) -> usize {
        self.item_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        cholesky_solve(&mut a, &mut b, 2);
        // 4x + 2y = 2, 2x + 3y = 1 → x = 0.5, y = 0.
        assert!((b[0] - 0.5).abs() < 1e-6 && b[1].abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn folding_in_a_trained_history_approximates_the_trained_vector() {
        let mut ratings = Vec::new();
        for u in 0..60u32 {
            for i in 0..30u32 {
                if (u % 3 == i % 3) && (u + i) % 4 != 0 {
                    ratings.push(crate::Rating {
                        user: u,
                        item: i,
                        rating: 1.0,
                    });
                }
            }
        }
        let data = Interactions::from_ratings(&ratings, None);
        let config = AlsConfig {
            factors: 8,
            iterations: 10,
            cg_steps: 8,
            ..AlsConfig::default()
        };
        let als = Als::fit(&data, &config);
        let trained = als
            .user_vector(Some(5))
            .map(<[f32]>::to_vec)
            .unwrap_or_default();
        let folded = als.fold_in(&data.history(5));
        let err: f32 = trained
            .iter()
            .zip(&folded)
            .map(|(a, b)| (a - b).abs())
            .sum();
        let size: f32 = trained.iter().map(|a| a.abs()).sum();
        assert!(err < 0.05 * size, "trained {trained:?} folded {folded:?}");
        // Scores rank the user's own group first.
        let mut out = vec![0f32; 30];
        als.score(Some(5), &[], &mut out);
        let best = (0..30)
            .max_by(|&a, &b| out[a].total_cmp(&out[b]))
            .unwrap_or(0);
        assert_eq!(best % 3, 5 % 3);
    }
}
