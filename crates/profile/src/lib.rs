//! Customer profiles and the built-in models over plain data: no IO, no SQL, no HTTP.
//!
//! - [`rfm`]: recency, frequency and monetary value per customer, 1–5 scores and the eight RFM
//!   classes (重要价值/重要发展/重要保持/重要挽留/一般价值/一般发展/一般保持/一般挽留客户).
//! - [`segment`]: the audience language (text and JSON forms), checked against a schema and
//!   evaluated on compressed bitmaps over dense user indexes.

pub mod audience;
pub mod cluster;
pub mod features;
pub mod rfm;
pub mod segment;
