//! The account of an import: every row is accepted, a duplicate, or rejected with a reason.

use crate::RejectedRow;
use serde::Serialize;
use shopgrowth_core::model::{ImportBatch, OrderKind};
use std::collections::BTreeMap;

/// Rows of one kind (returns, anonymous) and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// What kind each item of a batch is, taken before the batch moves to the store.
#[derive(Debug, Clone, Default)]
pub struct BatchShape {
    /// (is a return, is anonymous) per order line.
    lines: Vec<(bool, bool)>,
    /// is anonymous, per event.
    events: Vec<bool>,
}

impl BatchShape {
    pub fn of(batch: &ImportBatch) -> Self {
        let mut lines = Vec::new();
        for imported in &batch.orders {
            let is_return = imported.order.kind == OrderKind::Return;
            let is_anonymous =
                imported.order.user_id.is_none() && imported.order.device_id.is_none();
            lines.extend(std::iter::repeat_n(
                (is_return, is_anonymous),
                imported.order.lines.len(),
            ));
        }
        BatchShape {
            lines,
            events: batch.events.iter().map(|e| e.user_id.is_none()).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub file: String,
    pub format: String,
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rejected rows by the first problem found in each.
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub order_lines_accepted: u64,
    pub events_accepted: u64,
    /// Return lines (Online Retail `C…` invoices), kept as orders of kind return.
    pub returns: Tally,
    /// Rows without a customer id.
    pub anonymous: Tally,
    /// Distinct customers in the accepted rows.
    pub customers: u64,
    pub elapsed_seconds: f64,
    pub rows_per_second: f64,
}

impl Summary {
    pub fn new(file: &str, format: &str) -> Self {
        Summary {
            file: file.to_owned(),
            format: format.to_owned(),
            ..Default::default()
        }
    }

    pub fn add_rejected(&mut self, rows: &[RejectedRow]) {
        for row in rows {
            self.rows += 1;
            self.rejected += 1;
            let code = row.problems.first().map_or("unknown", |p| p.code);
            *self.rejected_by_reason.entry(code.to_owned()).or_default() += 1;
            if row.tags.is_return {
                self.returns.rows += 1;
                self.returns.rejected += 1;
            }
            if row.tags.is_anonymous {
                self.anonymous.rows += 1;
                self.anonymous.rejected += 1;
            }
        }
    }

    /// Counts what the store did with a batch of this shape: `line_inserted` per order line in
    /// batch order, then `event_inserted` per event (false means the store already had it).
    pub fn add_written(
        &mut self,
        shape: &BatchShape,
        line_inserted: &[bool],
        event_inserted: &[bool],
    ) {
        for (&(is_return, is_anonymous), &new) in shape.lines.iter().zip(line_inserted) {
            self.count(new, is_return, is_anonymous);
            self.order_lines_accepted += u64::from(new);
        }
        for (&is_anonymous, &new) in shape.events.iter().zip(event_inserted) {
            self.count(new, false, is_anonymous);
            self.events_accepted += u64::from(new);
        }
    }

    fn count(&mut self, new: bool, is_return: bool, is_anonymous: bool) {
        self.rows += 1;
        let bump = |t: &mut Tally| {
            t.rows += 1;
            if new {
                t.accepted += 1;
            } else {
                t.duplicates += 1;
            }
        };
        if new {
            self.accepted += 1;
        } else {
            self.duplicates += 1;
        }
        if is_return {
            bump(&mut self.returns);
        }
        if is_anonymous {
            bump(&mut self.anonymous);
        }
    }

    /// accepted + duplicates + rejected = rows: no row is unaccounted for.
    pub fn balances(&self) -> bool {
        self.accepted + self.duplicates + self.rejected == self.rows
    }

    pub fn finish(&mut self, customers: u64, elapsed: std::time::Duration) {
        self.customers = customers;
        self.elapsed_seconds = elapsed.as_secs_f64();
        self.rows_per_second = if self.elapsed_seconds > 0.0 {
            self.rows as f64 / self.elapsed_seconds
        } else {
            0.0
        };
    }

    /// A short human report.
    pub fn render(&self) -> String {
        let mut out = format!(
            "imported {} ({})\n  rows        {:>10}\n  accepted    {:>10}  ({} order lines, {} events)\n  duplicates  {:>10}\n  rejected    {:>10}\n",
            self.file, self.format, self.rows, self.accepted, self.order_lines_accepted, self.events_accepted,
            self.duplicates, self.rejected
        );
        for (reason, n) in &self.rejected_by_reason {
            out.push_str(&format!("    {reason:<28}{n:>10}\n"));
        }
        let tally = |name: &str, t: &Tally| {
            format!(
                "  {name:<12}{:>10} rows: {} accepted, {} duplicates, {} rejected\n",
                t.rows, t.accepted, t.duplicates, t.rejected
            )
        };
        if self.returns.rows > 0 {
            out.push_str(&tally("returns", &self.returns));
        }
        out.push_str(&tally("anonymous", &self.anonymous));
        out.push_str(&format!(
            "  customers   {:>10}\n  time        {:>9.2}s  ({:.0} rows/s)\n",
            self.customers, self.elapsed_seconds, self.rows_per_second
        ));
        out
    }
}
