//! The store's error: domain problems by name, backend failures wrapped.

use shopgrowth_core::ErrorKind;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{entity} {id:?} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("refund of line {line_no} exceeds what is left to refund on it")]
    RefundExceedsLine { line_no: i64 },
    #[error("order {order_id:?} has no line {line_no}")]
    NoSuchLine { order_id: String, line_no: i64 },
    #[error("refund {refund_id:?} was already used for order {order_id:?}")]
    RefundIdReused { refund_id: String, order_id: String },
    #[error("{entity} {id:?} is sold out")]
    SoldOut { entity: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the {period} budget of {scope} for {period_key} would be exceeded")]
    OverBudget {
        scope: String,
        period: String,
        period_key: String,
    },
    #[error("a migration was edited after it was applied: {0}")]
    MigrationChanged(String),
    #[error("invalid store location {0:?}: use a file path, sqlite:PATH or postgres://…")]
    BadLocation(String),
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration: {0}")]
    PostgresMigrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::NoSuchLine { .. } => ErrorKind::NotFound,
            Error::RefundExceedsLine { .. }
            | Error::RefundIdReused { .. }
            | Error::SoldOut { .. }
            | Error::Conflict(_)
            | Error::OverBudget { .. } => ErrorKind::Conflict,
            Error::BadLocation(_) => ErrorKind::Invalid,
            Error::WriterGone => ErrorKind::Unavailable,
            Error::MigrationChanged(_)
            | Error::CommitFailed(_)
            | Error::Sqlite(_)
            | Error::Postgres(_)
            | Error::PostgresMigrate(_)
            | Error::Corrupt(_)
            | Error::Io(_) => ErrorKind::Internal,
        }
    }
}
