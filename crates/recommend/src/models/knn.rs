//! Neighbourhood models: item-based and user-based collaborative filtering with cosine
//! similarity, and the one sparse cosine routine they and the content model share.
//!
//! - Item kNN keeps, per item, its `neighbours` most similar items by the cosine of their user
//!   sets, `|U_i ∩ U_j| / sqrt(|U_i| · |U_j|)`; a user's score for an item is the weighted sum of
//!   its similarities to the items in the user's history.
//! - User kNN finds, at query time, the `neighbours` users whose item sets are most similar to the
//!   user's history, and scores each item by the summed similarity of the neighbours that have it.

use crate::data::Interactions;
use crate::score::{top_k, Scorer};
use rayon::prelude::*;

/// A sparse row: sorted (column, value).
pub type SparseRow = Vec<(u32, f32)>;

/// For each row, the `keep` rows with the highest cosine similarity to it (itself excluded), best
/// first. Rows are compared through an inverted index of columns, so the cost follows the
/// overlaps, not rows².
pub fn cosine_neighbours(rows: &[SparseRow], columns: usize, keep: usize) -> Vec<SparseRow> {
    let norms: Vec<f32> = rows
        .iter()
        .map(|r| r.iter().map(|(_, v)| v * v).sum::<f32>().sqrt())
        .collect();
    let mut inverted: Vec<Vec<(u32, f32)>> = vec![Vec::new(); columns];
    for (row, entries) in rows.iter().enumerate() {
        for &(c, v) in entries {
            if let Some(list) = inverted.get_mut(c as usize) {
                list.push((row as u32, v));
            }
        }
    }
    (0..rows.len())
        .into_par_iter()
        .map_init(
            || (vec![0f32; rows.len()], Vec::<u32>::new()),
            |(dot, touched), i| {
                for &(c, v) in &rows[i] {
                    for &(j, w) in inverted.get(c as usize).map_or(&[][..], Vec::as_slice) {
                        if j as usize != i {
                            if dot[j as usize] == 0.0 {
                                touched.push(j);
                            }
                            dot[j as usize] += v * w;
                        }
                    }
                }
                let sims = touched.drain(..).map(|j| {
                    let d = std::mem::take(&mut dot[j as usize]);
                    let denominator = norms[i] * norms[j as usize];
                    (
                        j,
                        if denominator > 0.0 {
                            d / denominator
                        } else {
                            0.0
                        },
                    )
                });
                top_k(sims, |_| false, keep)
            },
        )
        .collect()
}

/// Item-based collaborative filtering.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    /// For each item, its most similar items with their similarity, best first.
    neighbours: Vec<SparseRow>,
}

impl ItemKnn {
    /// Keeps, per item, the `neighbours` most similar items.
    pub fn fit(data: &Interactions, neighbours: usize) -> Self {
        let rows: Vec<SparseRow> = data
            .item_users
            .iter()
            .map(|users| users.iter().map(|&u| (u, 1.0)).collect())
            .collect();
        ItemKnn {
            neighbours: cosine_neighbours(&rows, data.users, neighbours),
        }
    }

    /// From precomputed neighbour lists (the content model builds its own).
    pub fn from_neighbours(neighbours: Vec<SparseRow>) -> Self {
        ItemKnn { neighbours }
    }

    /// The items most similar to `item` ("看了又看" on a product page).
    pub fn similar(&self, item: u32, k: usize) -> &[(u32, f32)] {
        let list = self
            .neighbours
            .get(item as usize)
            .map_or(&[][..], Vec::as_slice);
        &list[..k.min(list.len())]
    }

    /// The item of `history` that contributes most to `item`'s score: the reason to show it.
    pub fn because_of(&self, item: u32, history: &[(u32, f32)]) -> Option<u32> {
        history
            .iter()
            .filter_map(|&(j, w)| {
                self.similar(j, usize::MAX)
                    .iter()
                    .find(|(i, _)| *i == item)
                    .map(|(_, s)| (j, s * w))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(j, _)| j)
    }
}

impl Scorer for ItemKnn {
    fn name(&self) -> &'static str {
        "item_knn"
    }
    fn score(&self, _user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        for &(j, w) in history {
            for &(i, s) in self.similar(j, usize::MAX) {
                if let Some(o) = out.get_mut(i as usize) {
                    *o += w * s;
                }
            }
        }
    }
    fn items(&self) -> usize {
        self.neighbours.len()
    }
}

/// User-based collaborative filtering over the training interactions.
#[derive(Debug, Clone)]
pub struct UserKnn {
    data: Interactions,
    neighbours: usize,
}

impl UserKnn {
    pub fn fit(data: &Interactions, neighbours: usize) -> Self {
        UserKnn {
            data: data.clone(),
            neighbours,
        }
    }
}

impl Scorer for UserKnn {
    fn name(&self) -> &'static str {
        "user_knn"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        let mut overlap = vec![0u32; self.data.users];
        for &(i, _) in history {
            for &v in self
                .data
                .item_users
                .get(i as usize)
                .map_or(&[][..], Vec::as_slice)
            {
                overlap[v as usize] += 1;
            }
        }
        let h = history.len() as f32;
        let sims = overlap.iter().enumerate().filter_map(|(v, &n)| {
            let size = self.data.user_items[v].len() as f32;
            (n > 0 && Some(v as u32) != user).then(|| (v as u32, n as f32 / (h * size).sqrt()))
        });
        for (v, s) in top_k(sims, |_| false, self.neighbours) {
            for &i in &self.data.user_items[v as usize] {
                if let Some(o) = out.get_mut(i as usize) {
                    *o += s;
                }
            }
        }
    }
    fn items(&self) -> usize {
        self.data.items
    }
}
