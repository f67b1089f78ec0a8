//! File import for shopgrowth: parsing and cleaning, no IO beyond reading the file.
//!
//! - [`source`]: opens a file, gunzips it when it is gzip, counts bytes for progress.
//! - [`formats`]: one adapter per file format (Online Retail, Taobao UserBehavior, MovieLens,
//!   CSV with a column mapping, JSON lines) turning a record into an order line or an event.
//! - [`reader`]: drives an adapter over a file in bounded chunks ([`reader::Chunk`]), grouping
//!   lines of the same order and rejecting bad rows with file, line, field and reason.
//! - [`summary`]: accounts for every row: accepted + duplicates + rejected = rows.
//!
//! Nothing is dropped silently: every row is accepted, a duplicate, or a [`Rejection`].

pub mod formats;
pub mod mapping;
pub mod reader;
pub mod source;
pub mod summary;

use serde::Serialize;

/// One problem of a row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub file: String,
    pub line: u64,
    pub field: String,
    /// A stable short code for counting (`price_zero`); `reason` says it to a person.
    pub code: &'static str,
    pub reason: String,
}

/// A rejected row: every problem found in it, the first of which is counted as its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    pub line: u64,
    pub tags: RowTags,
    pub problems: Vec<Rejection>,
}

impl std::fmt::Display for Rejection {
    /// `file:line:field:reason`, the format of the rejects file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{} ({})",
            self.file, self.line, self.field, self.reason, self.code
        )
    }
}

/// What kind of row this was, kept for rows that are rejected too, so summaries add up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowTags {
    pub is_return: bool,
    pub is_anonymous: bool,
    /// A valid customer id on the row: the customer is known even when the line is refused.
    pub customer: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {message}")]
    Csv {
        path: String,
        line: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Mapping { path: String, message: String },
    #[error("{0}")]
    Options(String),
}

impl Error {
    pub fn kind(&self) -> shopgrowth_core::ErrorKind {
        match self {
            Error::Io { .. } => shopgrowth_core::ErrorKind::Unavailable,
            _ => shopgrowth_core::ErrorKind::Invalid,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
