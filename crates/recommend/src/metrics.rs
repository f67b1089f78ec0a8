//! Ranking metrics with binary relevance, per user, averaged over the users that have at least one
//! relevant (test) item. Ranks start at 1. Definitions:
//!
//! - precision@k = hits in the top k / k
//! - recall@k = hits in the top k / relevant items
//! - nDCG@k = DCG / IDCG, DCG = Σ over hits 1 / log2(rank + 1), IDCG = the DCG of min(k, relevant)
//!   hits at the top
//! - MAP@k = Σ over hits (hits so far / rank) / relevant items (Microsoft Recommenders' map_at_k)
//! - hit@k = 1 if any hit in the top k
//! - MRR@k = 1 / rank of the first hit in the top k, 0 if none
//!
//! List metrics over all recommended lists: catalogue coverage (distinct items recommended / items
//! in the catalogue), intra-list diversity (mean pairwise distance within a list), novelty (mean
//! self-information −log2 p(item) of the recommended items, p = the item's share of interactions).

use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Metrics of one user's ranked list against their relevant items.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct UserMetrics {
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    pub hit: f64,
    pub mrr: f64,
}

/// Scores `ranked` (best first; only the first `k` count) against `relevant`.
pub fn user_metrics(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> UserMetrics {
    if relevant.is_empty() || k == 0 {
        return UserMetrics::default();
    }
    let (mut hits, mut dcg, mut ap, mut mrr) = (0usize, 0f64, 0f64, 0f64);
    for (i, item) in ranked.iter().take(k).enumerate() {
        if relevant.contains(item) {
            let rank = (i + 1) as f64;
            hits += 1;
            dcg += 1.0 / (rank + 1.0).log2();
            ap += hits as f64 / rank;
            if mrr == 0.0 {
                mrr = 1.0 / rank;
            }
        }
    }
    let idcg: f64 = (1..=k.min(relevant.len()))
        .map(|r| 1.0 / ((r + 1) as f64).log2())
        .sum();
    UserMetrics {
        precision: hits as f64 / k as f64,
        recall: hits as f64 / relevant.len() as f64,
        ndcg: dcg / idcg,
        map: ap / relevant.len() as f64,
        hit: if hits > 0 { 1.0 } else { 0.0 },
        mrr,
    }
}

/// Means over the users that have relevant items; users without a list count as all zeros.
pub fn mean_metrics(
    lists: &HashMap<u32, Vec<u32>>,
    relevant: &HashMap<u32, HashSet<u32>>,
    k: usize,
) -> UserMetrics {
    let users: Vec<&u32> = relevant
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(u, _)| u)
        .collect();
    if users.is_empty() {
        return UserMetrics::default();
    }
    let empty = Vec::new();
    let mut sum = UserMetrics::default();
    for u in &users {
        let m = user_metrics(lists.get(*u).unwrap_or(&empty), &relevant[*u], k);
        sum.precision += m.precision;
        sum.recall += m.recall;
        sum.ndcg += m.ndcg;
        sum.map += m.map;
        sum.hit += m.hit;
        sum.mrr += m.mrr;
    }
    let n = users.len() as f64;
    UserMetrics {
        precision: sum.precision / n,
        recall: sum.recall / n,
        ndcg: sum.ndcg / n,
        map: sum.map / n,
        hit: sum.hit / n,
        mrr: sum.mrr / n,
    }
}

/// Distinct items recommended / items in the catalogue.
pub fn coverage<'a>(lists: impl IntoIterator<Item = &'a Vec<u32>>, catalogue: usize) -> f64 {
    let distinct: HashSet<u32> = lists.into_iter().flatten().copied().collect();
    if catalogue == 0 {
        0.0
    } else {
        distinct.len() as f64 / catalogue as f64
    }
}

/// Mean pairwise distance within each list, averaged over lists with two items or more.
pub fn intra_list_diversity<'a>(
    lists: impl IntoIterator<Item = &'a Vec<u32>>,
    distance: impl Fn(u32, u32) -> f64,
) -> f64 {
    let (mut total, mut counted) = (0.0, 0usize);
    for list in lists {
        if list.len() < 2 {
            continue;
        }
        let mut sum = 0.0;
        let mut pairs = 0usize;
        for i in 0..list.len() {
            for j in i + 1..list.len() {
                sum += distance(list[i], list[j]);
                pairs += 1;
            }
        }
        total += sum / pairs as f64;
        counted += 1;
    }
    if counted == 0 {
        0.0
    } else {
        total / counted as f64
    }
}

/// Mean self-information −log2 p(item) of recommended items; `popularity` counts interactions.
pub fn novelty<'a>(
    lists: impl IntoIterator<Item = &'a Vec<u32>>,
    popularity: &HashMap<u32, u64>,
) -> f64 {
    let total: u64 = popularity.values().sum();
    if total == 0 {
        return 0.0;
    }
    let (mut sum, mut n) = (0.0, 0usize);
    for item in lists.into_iter().flatten() {
        // An item never interacted with counts as seen once, so its information is finite.
        let count = popularity.get(item).copied().unwrap_or(0).max(1);
        sum += -((count as f64) / (total as f64)).log2();
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> HashSet<u32> {
        items.iter().copied().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn hand_computed_user() {
        // Ranked 10, 20, 30, 40, 50; relevant 20, 50, 99 (99 never recommended); k = 5.
        let m = user_metrics(&[10, 20, 30, 40, 50], &set(&[20, 50, 99]), 5);
        assert!(close(m.precision, 2.0 / 5.0));
        assert!(close(m.recall, 2.0 / 3.0));
        // DCG = 1/log2(3) + 1/log2(6); IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4).
        let dcg = 1.0 / 3f64.log2() + 1.0 / 6f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!(close(m.ndcg, dcg / idcg), "{}", m.ndcg);
        // AP = (1/2 + 2/5) / 3.
        assert!(close(m.map, (0.5 + 0.4) / 3.0));
        assert!(close(m.hit, 1.0) && close(m.mrr, 0.5));
    }

    #[test]
    fn only_the_top_k_count() {
        let m = user_metrics(&[1, 2, 3], &set(&[3]), 2);
        assert_eq!(
            m,
            UserMetrics {
                precision: 0.0,
                recall: 0.0,
                ndcg: 0.0,
                map: 0.0,
                hit: 0.0,
                mrr: 0.0
            }
        );
        let perfect = user_metrics(&[3, 4], &set(&[3, 4]), 10);
        assert!(
            close(perfect.ndcg, 1.0) && close(perfect.recall, 1.0) && close(perfect.precision, 0.2)
        );
    }

    #[test]
    fn means_count_users_without_lists_as_zero() {
        let lists = HashMap::from([(1, vec![7, 8])]);
        let relevant = HashMap::from([(1, set(&[7])), (2, set(&[9])), (3, set(&[]))]);
        let m = mean_metrics(&lists, &relevant, 2);
        assert!(close(m.hit, 0.5) && close(m.ndcg, 0.5) && close(m.precision, 0.25));
    }

    #[test]
    fn list_metrics() {
        let lists = [vec![1, 2, 3], vec![3, 4], vec![5]];
        assert!(close(coverage(&lists, 10), 0.5));
        // Distance 1 between items of different parity, 0 otherwise.
        let ild = intra_list_diversity(&lists, |a, b| if a % 2 == b % 2 { 0.0 } else { 1.0 });
        assert!(close(ild, (2.0 / 3.0 + 1.0) / 2.0));
        let popularity = HashMap::from([(1, 2u64), (2, 2), (3, 4)]);
        // p = 1/4, 1/4, 1/2 → information 2, 2, 1.
        assert!(close(novelty(&[vec![1, 2, 3]], &popularity), 5.0 / 3.0));
    }
}
