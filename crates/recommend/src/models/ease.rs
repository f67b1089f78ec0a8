//! EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): a dense
//! item-item weight matrix in closed form, `P = (XᵀX + λI)⁻¹`, `B = I − P · diag(1/diag(P))`
//! with a zero diagonal, and a user's scores `x_u · B`. Training is one n×n Cholesky inverse
//! (faer), so it is limited to catalogues of at most [`Ease::MAX_ITEMS`] items; memory is n² f32.

use crate::data::Interactions;
use crate::score::Scorer;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct Ease {
    items: usize,
    /// Row-major n×n: `weights[j * n + i]` is how much having item j says about item i.
    weights: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EaseError {
    #[error("EASE needs a dense {items}×{items} matrix; at most {max} items are supported")]
    TooManyItems { items: usize, max: usize },
    #[error("the Gram matrix is not positive definite; use a larger regularisation than {0}")]
    NotPositiveDefinite(f64),
}

impl Ease {
    pub const MAX_ITEMS: usize = 20_000;

    /// Fits with regularisation `lambda` on binary interactions (weights are ignored, as in the
    /// paper).
    pub fn fit(data: &Interactions, lambda: f64) -> Result<Self, EaseError> {
        let n = data.items;
        if n > Self::MAX_ITEMS {
            return Err(EaseError::TooManyItems {
                items: n,
                max: Self::MAX_ITEMS,
            });
        }
        // Gram matrix XᵀX, one row per item, counted through the users' item lists.
        let rows: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut row = vec![0f64; n];
                for &u in &data.item_users[i] {
                    for &j in &data.user_items[u as usize] {
                        row[j as usize] += 1.0;
                    }
                }
                row[i] += lambda;
                row
            })
            .collect();
        let gram = Mat::<f64>::from_fn(n, n, |i, j| rows[i][j]);
        drop(rows);
        let p = gram
            .llt(Side::Lower)
            .map_err(|_| EaseError::NotPositiveDefinite(lambda))?
            .inverse();
        let mut weights = vec![0f32; n * n];
        weights
            .par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(j, row)| {
                for (i, w) in row.iter_mut().enumerate() {
                    // B_ji = −P_ji / P_ii, zero on the diagonal.
                    *w = if i == j {
                        0.0
                    } else {
                        (-p[(j, i)] / p[(i, i)]) as f32
                    };
                }
            });
        Ok(Ease { items: n, weights })
    }
}

impl Scorer for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }
    fn score(&self, _user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        let n = self.items;
        for &(j, _) in history {
            let j = j as usize;
            if j < n {
                for (o, w) in out.iter_mut().zip(&self.weights[j * n..(j + 1) * n]) {
                    *o += w;
                }
            }
        }
    }
    fn items(&self) -> usize {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rating;

    #[test]
    fn weights_match_the_closed_form_on_a_small_case() {
        // Two users: {0, 1} and {1, 2}. XᵀX = [[1,1,0],[1,2,1],[0,1,1]]; with λ = 1 the inverse of
        // [[2,1,0],[1,3,1],[0,1,2]] is (1/8)·[[5,-2,1],[-2,4,-2],[1,-2,5]].
        let r = |user, item| Rating {
            user,
            item,
            rating: 1.0,
        };
        let data = Interactions::from_ratings(&[r(0, 0), r(0, 1), r(1, 1), r(1, 2)], None);
        let ease = Ease::fit(&data, 1.0).unwrap_or_else(|e| panic!("{e}"));
        let b = |j: usize, i: usize| ease.weights[j * 3 + i];
        // B_01 = −P_01 / P_11 = (2/8) / (4/8) = 0.5; B_02 = −P_02 / P_22 = −(1/8)/(5/8) = −0.2.
        assert!((b(0, 1) - 0.5).abs() < 1e-6);
        assert!((b(0, 2) + 0.2).abs() < 1e-6);
        assert_eq!(b(1, 1), 0.0);
        let mut out = [0f32; 3];
        ease.score(None, &[(0, 1.0)], &mut out);
        assert!(out[1] > out[2], "item 1 goes with item 0: {out:?}");
    }
}
