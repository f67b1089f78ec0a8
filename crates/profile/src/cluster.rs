//! Discovery: k-means over standardised profile features, each cluster described in words.
//!
//! - Features: spend, orders, AOV (log1p, for their long tails), recency, active days, browse
//!   depth, cart abandonment, coupon share, discount depth; each standardised to mean 0 and
//!   standard deviation 1 over the users clustered.
//! - k-means++ seeding from a fixed seed, then Lloyd's iterations until no user moves (at most
//!   100); k given, or the k in 2..=8 with the best mean silhouette (on a fixed sample of at most
//!   2,000 users, since silhouette costs n²).
//! - A cluster is described by its features furthest from the average (|z| ≥ 0.5, up to three)
//!   and by a category its members prefer well above the average member.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One user's numbers for clustering; `None` where the user has none (filled with the mean).
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub values: [Option<f64>; DIMENSIONS],
    /// The user's top category, if any.
    pub top_category: Option<String>,
}

pub const DIMENSIONS: usize = 9;

/// Feature names and the words for high and low values, in Chinese and English.
pub const FEATURES: [(&str, &str, &str, &str, &str); DIMENSIONS] = [
    ("monetary", "高消费", "低消费", "high spend", "low spend"),
    ("orders", "高频", "低频", "frequent", "infrequent"),
    ("aov", "高客单", "低客单", "large baskets", "small baskets"),
    ("recency_days", "久未购买", "近期购买", "lapsed", "recent"),
    (
        "active_days",
        "常来访",
        "少来访",
        "often active",
        "rarely active",
    ),
    (
        "browse_depth",
        "爱浏览",
        "少浏览",
        "browses a lot",
        "browses little",
    ),
    (
        "cart_abandonment",
        "常弃购",
        "少弃购",
        "abandons carts",
        "completes carts",
    ),
    (
        "coupon_share",
        "爱用券",
        "少用券",
        "coupon lovers",
        "rarely use coupons",
    ),
    (
        "discount_depth",
        "价格敏感",
        "不看折扣",
        "price-sensitive",
        "not price-sensitive",
    ),
];

/// Whether a feature is clustered on a log scale.
const LOG_SCALE: [bool; DIMENSIONS] = [true, true, true, false, true, false, false, false, false];

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub id: usize,
    pub size: usize,
    /// Mean of each feature in its own units, by name.
    pub means: Vec<(String, f64)>,
    /// Mean z-score of each feature.
    pub z: Vec<(String, f64)>,
    pub description_zh: String,
    pub description_en: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Clustering {
    pub k: usize,
    pub silhouette: f64,
    /// Silhouette of each k tried, when k was chosen.
    pub tried: Vec<(usize, f64)>,
    pub clusters: Vec<Cluster>,
    /// The cluster of each point, in input order.
    #[serde(skip)]
    pub assignment: Vec<usize>,
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Standardised rows and the per-dimension (mean, sd) of the transformed values.
fn standardise(points: &[Point]) -> Vec<[f64; DIMENSIONS]> {
    let transform = |d: usize, v: f64| if LOG_SCALE[d] { v.max(0.0).ln_1p() } else { v };
    let mut rows = vec![[0.0; DIMENSIONS]; points.len()];
    for d in 0..DIMENSIONS {
        let present: Vec<f64> = points
            .iter()
            .filter_map(|p| p.values[d].map(|v| transform(d, v)))
            .collect();
        let n = present.len().max(1) as f64;
        let mean = present.iter().sum::<f64>() / n;
        let var = present.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        for (row, p) in rows.iter_mut().zip(points) {
            row[d] = p.values[d].map_or(0.0, |v| (transform(d, v) - mean) / sd);
        }
    }
    rows
}

fn kmeans(rows: &[[f64; DIMENSIONS]], k: usize, seed: u64) -> (Vec<usize>, Vec<[f64; DIMENSIONS]>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rows.len();
    let mut centres: Vec<[f64; DIMENSIONS]> = vec![rows[rng.random_range(0..n)]];
    let mut nearest: Vec<f64> = rows.iter().map(|r| distance2(r, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = nearest.iter().sum();
        let next = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut target = rng.random_range(0.0..total);
            let mut chosen = n - 1;
            for (i, d) in nearest.iter().enumerate() {
                if target < *d {
                    chosen = i;
                    break;
                }
                target -= d;
            }
            chosen
        };
        centres.push(rows[next]);
        for (d, r) in nearest.iter_mut().zip(rows) {
            *d = d.min(distance2(r, &rows[next]));
        }
    }
    let mut assignment = vec![usize::MAX; n];
    for _ in 0..100 {
        let mut moved = false;
        for (a, r) in assignment.iter_mut().zip(rows) {
            let best = (0..k)
                .min_by(|&x, &y| distance2(r, &centres[x]).total_cmp(&distance2(r, &centres[y])))
                .unwrap_or(0);
            if *a != best {
                *a = best;
                moved = true;
            }
        }
        if !moved {
            break;
        }
        let mut sums = vec![[0.0; DIMENSIONS]; k];
        let mut counts = vec![0usize; k];
        for (&a, r) in assignment.iter().zip(rows) {
            counts[a] += 1;
            for d in 0..DIMENSIONS {
                sums[a][d] += r[d];
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..DIMENSIONS {
                    centres[c][d] = sums[c][d] / counts[c] as f64;
                }
            }
        }
    }
    (assignment, centres)
}

/// Mean silhouette over a fixed sample of points.
fn silhouette(rows: &[[f64; DIMENSIONS]], assignment: &[usize], k: usize, sample: &[usize]) -> f64 {
    let mut total = 0.0;
    let mut counted = 0usize;
    for &i in sample {
        let mut sum = vec![0.0; k];
        let mut count = vec![0usize; k];
        for &j in sample {
            if i != j {
                sum[assignment[j]] += distance2(&rows[i], &rows[j]).sqrt();
                count[assignment[j]] += 1;
            }
        }
        let own = assignment[i];
        if count[own] == 0 {
            continue;
        }
        let a = sum[own] / count[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && count[c] > 0)
            .map(|c| sum[c] / count[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b).max(f64::MIN_POSITIVE);
            counted += 1;
        }
    }
    if counted == 0 {
        0.0
    } else {
        total / counted as f64
    }
}

/// Clusters the points; `k` of `None` picks the k in 2..=8 with the best silhouette.
pub fn discover(points: &[Point], k: Option<usize>, seed: u64) -> Option<Clustering> {
    if points.len() < 2 {
        return None;
    }
    let rows = standardise(points);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5151);
    let mut sample: Vec<usize> = (0..rows.len()).collect();
    if sample.len() > 2_000 {
        for i in 0..2_000 {
            let j = rng.random_range(i..sample.len());
            sample.swap(i, j);
        }
        sample.truncate(2_000);
    }
    let candidates: Vec<usize> = match k {
        Some(k) => vec![k.clamp(1, points.len())],
        None => (2..=8.min(points.len())).collect(),
    };
    let mut tried = Vec::new();
    let mut best: Option<(f64, usize, Vec<usize>)> = None;
    for &k in &candidates {
        let (assignment, _) = kmeans(&rows, k, seed);
        let s = silhouette(&rows, &assignment, k, &sample);
        tried.push((k, s));
        if best.as_ref().is_none_or(|(b, _, _)| s > *b) {
            best = Some((s, k, assignment));
        }
    }
    let (silhouette, k, assignment) = best?;
    let overall_categories = category_shares(points, None, &assignment);
    let clusters = (0..k)
        .map(|c| describe(c, points, &rows, &assignment, &overall_categories))
        .collect();
    Some(Clustering {
        k,
        silhouette,
        tried: if candidates.len() > 1 {
            tried
        } else {
            Vec::new()
        },
        clusters,
        assignment,
    })
}

fn category_shares(
    points: &[Point],
    only: Option<usize>,
    assignment: &[usize],
) -> Vec<(String, f64)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut n = 0usize;
    for (p, &a) in points.iter().zip(assignment) {
        if only.is_some_and(|c| c != a) {
            continue;
        }
        n += 1;
        if let Some(cat) = &p.top_category {
            *counts.entry(cat).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(c, k)| (c.to_owned(), k as f64 / n.max(1) as f64))
        .collect()
}

fn describe(
    c: usize,
    points: &[Point],
    rows: &[[f64; DIMENSIONS]],
    assignment: &[usize],
    overall: &[(String, f64)],
) -> Cluster {
    let members: Vec<usize> = (0..points.len()).filter(|&i| assignment[i] == c).collect();
    let size = members.len();
    let mut z = [0.0; DIMENSIONS];
    let mut means = [0.0; DIMENSIONS];
    for d in 0..DIMENSIONS {
        let n = size.max(1) as f64;
        z[d] = members.iter().map(|&i| rows[i][d]).sum::<f64>() / n;
        let present: Vec<f64> = members
            .iter()
            .filter_map(|&i| points[i].values[d])
            .collect();
        means[d] = present.iter().sum::<f64>() / present.len().max(1) as f64;
    }
    let mut salient: Vec<usize> = (0..DIMENSIONS).filter(|&d| z[d].abs() >= 0.5).collect();
    salient.sort_by(|&a, &b| z[b].abs().total_cmp(&z[a].abs()));
    salient.truncate(3);
    let mut zh: Vec<String> = salient
        .iter()
        .map(|&d| {
            (if z[d] > 0.0 {
                FEATURES[d].1
            } else {
                FEATURES[d].2
            })
            .to_owned()
        })
        .collect();
    let mut en: Vec<String> = salient
        .iter()
        .map(|&d| {
            (if z[d] > 0.0 {
                FEATURES[d].3
            } else {
                FEATURES[d].4
            })
            .to_owned()
        })
        .collect();
    let mine = category_shares(points, Some(c), assignment);
    let preferred = mine
        .iter()
        .filter_map(|(cat, share)| {
            let base = overall
                .iter()
                .find(|(o, _)| o == cat)
                .map_or(0.0, |(_, s)| *s);
            (*share >= 0.2 && *share >= 1.2 * base).then_some((cat, share / base.max(1e-9)))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((cat, _)) = preferred {
        zh.push(format!("偏好{cat}"));
        en.push(format!("prefers {cat}"));
    }
    if zh.is_empty() {
        zh.push("各项接近平均".to_owned());
        en.push("close to the average".to_owned());
    }
    Cluster {
        id: c,
        size,
        means: (0..DIMENSIONS)
            .map(|d| (FEATURES[d].0.to_owned(), means[d]))
            .collect(),
        z: (0..DIMENSIONS)
            .map(|d| (FEATURES[d].0.to_owned(), z[d]))
            .collect(),
        description_zh: zh.join("、"),
        description_en: en.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(monetary: f64, orders: f64, recency: f64, cat: &str) -> Point {
        let mut values = [Some(1.0); DIMENSIONS];
        values[0] = Some(monetary);
        values[1] = Some(orders);
        values[2] = Some(monetary / orders);
        values[3] = Some(recency);
        Point {
            values,
            top_category: Some(cat.to_owned()),
        }
    }

    #[test]
    fn finds_planted_groups_and_names_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut points = Vec::new();
        for _ in 0..300 {
            // Big spenders on digital goods, rarely buying.
            points.push(point(
                rng.random_range(400_000.0..600_000.0),
                rng.random_range(1.0..2.0),
                rng.random_range(5.0..20.0),
                "数码",
            ));
            // Small, frequent baby-goods buyers.
            points.push(point(
                rng.random_range(2_000.0..4_000.0),
                rng.random_range(20.0..30.0),
                rng.random_range(1.0..5.0),
                "母婴",
            ));
            // Lapsed small buyers.
            points.push(point(
                rng.random_range(1_000.0..3_000.0),
                1.0,
                rng.random_range(200.0..300.0),
                "食品",
            ));
        }
        let result = discover(&points, None, 42).unwrap_or_else(|| panic!("no clustering"));
        assert_eq!(
            result.k, 3,
            "silhouette picks the planted k: {:?}",
            result.tried
        );
        assert!(result.silhouette > 0.5);
        for (i, &a) in result.assignment.iter().enumerate() {
            assert_eq!(
                a,
                result.assignment[i % 3],
                "point {i} joins its planted group"
            );
        }
        let digital = &result.clusters[result.assignment[0]];
        assert!(
            digital.description_zh.contains("高消费"),
            "{}",
            digital.description_zh
        );
        assert!(
            digital.description_zh.contains("偏好数码"),
            "{}",
            digital.description_zh
        );
        assert!(digital.description_en.contains("prefers 数码"));
        let lapsed = &result.clusters[result.assignment[2]];
        assert!(
            lapsed.description_zh.contains("久未购买"),
            "{}",
            lapsed.description_zh
        );
        assert_eq!(result.clusters.iter().map(|c| c.size).sum::<usize>(), 900);
    }
}
