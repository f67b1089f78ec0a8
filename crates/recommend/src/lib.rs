//! Recommendations over plain data: no IO, randomness only from a seed the caller gives.
//!
//! - [`metrics`]: ranking metrics as Microsoft Recommenders and RecBole define them (nDCG,
//!   precision, recall, MAP, hit rate, MRR) and list metrics (coverage, intra-list diversity,
//!   novelty).
//! - [`models`]: the first recommenders (most popular, item kNN) and the evaluation loop.
//! - [`split`]: the evaluation protocols' splits: per-item random 75/25 (Microsoft Recommenders),
//!   ratings ≥ 3 with a 10-core filter and a per-user random 8:1:1 split (RecBole's ML-1M setting).

pub mod metrics;
pub mod models;
pub mod split;

/// One observed interaction: user, item and a rating (or weight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub user: u32,
    pub item: u32,
    pub rating: f32,
}
