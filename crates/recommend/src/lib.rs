//! Recommendations over plain data: no IO, randomness only from a seed the caller gives.
//!
//! - [`data`]: interactions with feedback weights and explicit negatives.
//! - [`score`]: the [`score::Scorer`] trait every model implements, and ranking.
//! - [`models`]: popularity, trending, item and user kNN, EASE, ALS (conjugate gradient), BPR,
//!   content (jieba), bought together.
//! - [`hybrid`]: blending, switching and cascades; re-ranking for diversity, novelty and business
//!   filters.
//! - [`engine`]: the shop's recommender: training from shop data, scenes, reasons, real time.
//! - [`eval`]: the offline protocols; [`metrics`] and [`split`] define their parts.

pub mod data;
pub mod engine;
pub mod eval;
pub mod hybrid;
pub mod metrics;
pub mod models;
pub mod score;
pub mod split;

/// One observed interaction: user, item and a rating (or weight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub user: u32,
    pub item: u32,
    pub rating: f32,
}
