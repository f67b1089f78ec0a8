//! Frequently bought together, from order baskets: for each item, the items that appear in the same
//! orders, ranked by how often (with a minimum support), scored by confidence `P(b | a)` shrunk
//! toward zero for rare pairs, `n(a,b) / (n(a) + shrinkage)`.

use super::knn::SparseRow;
use crate::score::{top_k, Scorer};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct BoughtTogether {
    pairs: Vec<SparseRow>,
}

impl BoughtTogether {
    /// `baskets` are the items of each order (duplicates ignored); pairs seen in fewer than
    /// `min_support` orders are dropped; `keep` per item.
    pub fn fit(items: usize, baskets: &[Vec<u32>], min_support: u32, keep: usize) -> Self {
        let mut single = vec![0u32; items];
        let mut together: Vec<HashMap<u32, u32>> = vec![HashMap::new(); items];
        for basket in baskets {
            let mut b: Vec<u32> = basket
                .iter()
                .copied()
                .filter(|&i| (i as usize) < items)
                .collect();
            b.sort_unstable();
            b.dedup();
            for &a in &b {
                single[a as usize] += 1;
                for &c in &b {
                    if c != a {
                        *together[a as usize].entry(c).or_default() += 1;
                    }
                }
            }
        }
        const SHRINKAGE: f32 = 5.0;
        let pairs = together
            .into_iter()
            .enumerate()
            .map(|(a, with)| {
                let n = single[a] as f32 + SHRINKAGE;
                let scored = with
                    .into_iter()
                    .filter(|&(_, c)| c >= min_support)
                    .map(|(b, c)| (b, c as f32 / n));
                top_k(scored, |_| false, keep)
            })
            .collect();
        BoughtTogether { pairs }
    }

    /// What is bought with `item`, best first.
    pub fn with(&self, item: u32, k: usize) -> &[(u32, f32)] {
        let list = self.pairs.get(item as usize).map_or(&[][..], Vec::as_slice);
        &list[..k.min(list.len())]
    }
}

/// Complements of a cart: each history item's bought-together list, summed.
impl Scorer for BoughtTogether {
    fn name(&self) -> &'static str {
        "bought_together"
    }
    fn score(&self, _user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        for &(a, w) in history {
            for &(b, s) in self.with(a, usize::MAX) {
                if let Some(o) = out.get_mut(b as usize) {
                    *o += w.max(0.0) * s;
                }
            }
        }
    }
    fn items(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_follow_baskets_with_support_and_shrinkage() {
        let baskets = vec![
            vec![0, 1],
            vec![0, 1],
            vec![0, 1, 2],
            vec![0, 2],
            vec![3, 3],
        ];
        let fbt = BoughtTogether::fit(4, &baskets, 2, 5);
        let with0 = fbt.with(0, 5);
        // Item 0 is in 4 orders: with 1 three times, with 2 twice: 3/9 and 2/9.
        assert_eq!(with0.len(), 2);
        assert_eq!(with0[0].0, 1);
        assert!((with0[0].1 - 3.0 / 9.0).abs() < 1e-6);
        assert!((with0[1].1 - 2.0 / 9.0).abs() < 1e-6);
        assert!(
            fbt.with(3, 5).is_empty(),
            "an item is not bought with itself"
        );
        assert!(
            fbt.with(2, 5).iter().all(|(b, _)| *b == 0),
            "1 and 2 met once only"
        );
    }
}
