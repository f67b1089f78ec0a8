//! Segments (人群圈选): a boolean language over attributes, tags and behaviour in time windows.
//!
//! Text form, keywords in any case:
//! ```text
//! city_tier = "tier1" AND monetary >= 50000
//!   AND did purchase where category = "母婴" at least 2 times in last 30 days
//!   AND NOT (tag "churn_risk" OR in segment "vip")
//!   AND gender in ("female", "unknown")
//! ```
//! The JSON form is the serde form of [`Expr`] (`{"and": [...]}`, `{"compare": {...}}`, …).
//! [`parse`] reports the byte position and what was expected; [`Population::check`] refuses
//! unknown fields, tags, segments and events and impossible windows; [`Population::evaluate`]
//! answers with a [`roaring::RoaringBitmap`] of dense user indexes, and
//! [`Population::evaluate_naive`] answers the same row by row (the reference in tests).

mod eval;
mod parse;

pub use eval::{NewAct, Population, PopulationBuilder, BUCKETS, MAX_AT_LEAST};
pub use parse::{parse, Parsed};

use serde::{Deserialize, Serialize};

/// A segment expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `field op value`.
    Compare {
        field: String,
        op: Op,
        value: Value,
    },
    /// `field in (v1, v2, …)`.
    In {
        field: String,
        values: Vec<Value>,
    },
    /// The user carries a tag.
    Tag(String),
    /// The user is in a saved segment.
    Segment(String),
    /// `did EVENT [where PROP = VALUE] [at least N times] in last D days`.
    Did {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<(String, Value)>,
        at_least: u32,
        days: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// The same bound seen from the other side: `a < b` is `b > a`.
    pub fn reversed(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            same => same,
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
        }
    }
}

/// A literal: text or a whole number (money in minor units, days, counts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(i64),
    Text(String),
}

/// Longest window a behaviour condition may look back.
pub const MAX_DAYS: u32 = 3650;

/// A problem with an expression: where (byte offset in the text form, when there is one) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct SegmentError {
    pub position: usize,
    pub message: String,
}

impl SegmentError {
    pub fn new(position: usize, message: impl Into<String>) -> Self {
        SegmentError {
            position,
            message: message.into(),
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Text(t) => quote(t),
    }
}

impl Expr {
    /// The readable text form; [`parse`] reads it back to an equal expression.
    pub fn to_text(&self) -> String {
        match self {
            Expr::And(items) => format!(
                "({})",
                items
                    .iter()
                    .map(Expr::to_text)
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Expr::Or(items) => format!(
                "({})",
                items
                    .iter()
                    .map(Expr::to_text)
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            Expr::Not(inner) => format!("NOT {}", inner.to_text()),
            Expr::Compare { field, op, value } => {
                format!("{field} {} {}", op.as_str(), value_text(value))
            }
            Expr::In { field, values } => {
                format!(
                    "{field} in ({})",
                    values.iter().map(value_text).collect::<Vec<_>>().join(", ")
                )
            }
            Expr::Tag(t) => format!("tag {}", quote(t)),
            Expr::Segment(s) => format!("in segment {}", quote(s)),
            Expr::Did {
                event,
                filter,
                at_least,
                days,
            } => {
                let filter = filter.as_ref().map_or(String::new(), |(p, v)| {
                    format!(" where {p} = {}", value_text(v))
                });
                format!("did {event}{filter} at least {at_least} times in last {days} days")
            }
        }
    }
}

#[cfg(test)]
mod tests;
