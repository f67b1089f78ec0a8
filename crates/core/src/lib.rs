//! Domain model shared by every shopgrowth crate. Plain data, no IO.
//!
//! - [`money`]: integer minor units (分) with a currency; exact decimal parsing with explicit rounding.
//! - [`ids`]: identifiers of users, devices, products, stores, orders and events.
//! - [`model`]: users, products, stores, orders, refunds and behaviour events, with validation.
//! - [`time`]: timestamps (UTC epoch milliseconds) and the shop's time zone.
//! - [`pii`]: personal data: [`pii::Secret`], masking, encryption at rest and keyed look-up hashes.
//! - [`error`]: [`error::ErrorKind`], which every crate's error maps to, and [`error::FieldError`].

pub mod error;
pub mod ids;
pub mod json;
pub mod model;
pub mod money;
pub mod pii;
pub mod time;

pub use error::{ErrorKind, FieldError};
pub use money::{Currency, Money};
