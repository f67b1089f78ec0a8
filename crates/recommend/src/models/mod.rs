//! The recommenders. Each is fitted from plain data and implements [`crate::score::Scorer`].

pub mod als;
pub mod bpr;
pub mod content;
pub mod ease;
pub mod fbt;
pub mod knn;
pub mod popularity;

pub use als::{Als, AlsConfig};
pub use bpr::{Bpr, BprConfig};
pub use content::{Content, ItemContent};
pub use ease::Ease;
pub use fbt::BoughtTogether;
pub use knn::{ItemKnn, UserKnn};
pub use popularity::{Popularity, TimedFeedback, Trending};
