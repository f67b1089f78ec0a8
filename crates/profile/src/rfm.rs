//! RFM: how recently, how often and how much each customer buys.
//!
//! The definition (also in docs/rfm.md):
//! - **Lines counted**: accepted order lines (the import's cleaning rules), an exact duplicate line
//!   once. Sales add to monetary value; returns subtract.
//! - **Reference date**: the day after the last line's date (shop-local calendar date), unless
//!   given.
//! - **Recency**: whole days from the customer's last sale date to the reference date.
//! - **Frequency**: distinct sale orders.
//! - **Monetary**: sales minus returns, in minor units.
//! - **Customers**: those with at least one sale; customers with only returns are counted apart.
//! - **Scores 1–5**: four thresholds per dimension, by default the quintile boundaries by nearest
//!   rank: the value at position ⌈k·n/5⌉ (k = 1..4) of the customers' values sorted ascending.
//!   F and M score 1 + the number of thresholds the value exceeds; R scores 5 minus the number of
//!   thresholds the recency exceeds (recent is good). Equal values always get equal scores.
//! - **Classes**: a dimension is high when the customer's score is above the mean score of all
//!   customers in that dimension; R, F and M high or low give the eight classes.

use chrono::{Datelike, NaiveDate, TimeZone};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The eight RFM classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RfmClass {
    ImportantValue,
    ImportantDevelop,
    ImportantKeep,
    ImportantRetain,
    GeneralValue,
    GeneralDevelop,
    GeneralKeep,
    GeneralRetain,
}

impl RfmClass {
    pub const ALL: [RfmClass; 8] = [
        RfmClass::ImportantValue,
        RfmClass::ImportantDevelop,
        RfmClass::ImportantKeep,
        RfmClass::ImportantRetain,
        RfmClass::GeneralValue,
        RfmClass::GeneralDevelop,
        RfmClass::GeneralKeep,
        RfmClass::GeneralRetain,
    ];

    /// R high, F high, M high → the class.
    pub fn of(r_high: bool, f_high: bool, m_high: bool) -> Self {
        match (m_high, r_high, f_high) {
            (true, true, true) => RfmClass::ImportantValue,
            (true, true, false) => RfmClass::ImportantDevelop,
            (true, false, true) => RfmClass::ImportantKeep,
            (true, false, false) => RfmClass::ImportantRetain,
            (false, true, true) => RfmClass::GeneralValue,
            (false, true, false) => RfmClass::GeneralDevelop,
            (false, false, true) => RfmClass::GeneralKeep,
            (false, false, false) => RfmClass::GeneralRetain,
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            RfmClass::ImportantValue => "重要价值客户",
            RfmClass::ImportantDevelop => "重要发展客户",
            RfmClass::ImportantKeep => "重要保持客户",
            RfmClass::ImportantRetain => "重要挽留客户",
            RfmClass::GeneralValue => "一般价值客户",
            RfmClass::GeneralDevelop => "一般发展客户",
            RfmClass::GeneralKeep => "一般保持客户",
            RfmClass::GeneralRetain => "一般挽留客户",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RfmClass::ImportantValue => "important_value",
            RfmClass::ImportantDevelop => "important_develop",
            RfmClass::ImportantKeep => "important_keep",
            RfmClass::ImportantRetain => "important_retain",
            RfmClass::GeneralValue => "general_value",
            RfmClass::GeneralDevelop => "general_develop",
            RfmClass::GeneralKeep => "general_keep",
            RfmClass::GeneralRetain => "general_retain",
        }
    }
}

/// Settings of an RFM run.
#[derive(Debug, Clone)]
pub struct RfmConfig {
    /// Shop time zone: days are its calendar days.
    pub tz: chrono_tz::Tz,
    /// Reference date; default the day after the last line.
    pub reference: Option<NaiveDate>,
    /// Explicit thresholds (four, ascending) per dimension; default quintiles.
    pub recency_thresholds: Option<[i64; 4]>,
    pub frequency_thresholds: Option<[i64; 4]>,
    pub monetary_thresholds: Option<[i64; 4]>,
}

impl Default for RfmConfig {
    fn default() -> Self {
        RfmConfig {
            tz: chrono_tz::Asia::Shanghai,
            reference: None,
            recency_thresholds: None,
            frequency_thresholds: None,
            monetary_thresholds: None,
        }
    }
}

/// FNV-1a: a fast, stable hash for ids within one run (nothing here is attacker-facing).
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;
type FastSet<T> = HashSet<T, std::hash::BuildHasherDefault<Fnv>>;

#[derive(Debug, Default)]
struct Customer {
    last_sale_day: Option<i32>,
    orders: FastSet<u64>,
    monetary: i64,
}

/// Collects order lines, then scores every customer.
#[derive(Debug, Default)]
pub struct RfmBuilder {
    index: FastMap<String, usize>,
    ids: Vec<String>,
    customers: Vec<Customer>,
    seen_lines: FastSet<(u64, i64)>,
    last_day: Option<i32>,
    duplicate_lines: u64,
}

/// Order ids are kept as 64-bit hashes: only told apart, never shown.
fn hash_str(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = Fnv::default();
    h.write(s.as_bytes());
    h.finish()
}

/// Days since 0001-01-01 of the shop-local date of an instant.
fn day_of(ms: i64, tz: chrono_tz::Tz) -> i32 {
    tz.timestamp_millis_opt(ms)
        .earliest()
        .map_or(0, |t| t.date_naive().num_days_from_ce())
}

impl RfmBuilder {
    /// One order line. `line_key` identifies the line's content: a line seen twice counts once.
    #[allow(clippy::too_many_arguments)]
    pub fn add_line(
        &mut self,
        tz: chrono_tz::Tz,
        customer: &str,
        order_id: &str,
        line_key: i64,
        is_return: bool,
        time_ms: i64,
        amount: i64,
    ) {
        let order = hash_str(order_id);
        if !self.seen_lines.insert((order, line_key)) {
            self.duplicate_lines += 1;
            return;
        }
        let i = match self.index.get(customer) {
            Some(&i) => i,
            None => {
                self.index.insert(customer.to_owned(), self.customers.len());
                self.ids.push(customer.to_owned());
                self.customers.push(Customer::default());
                self.customers.len() - 1
            }
        };
        let day = day_of(time_ms, tz);
        self.last_day = Some(self.last_day.map_or(day, |d| d.max(day)));
        let c = &mut self.customers[i];
        if is_return {
            c.monetary -= amount;
        } else {
            c.monetary += amount;
            c.orders.insert(order);
            c.last_sale_day = Some(c.last_sale_day.map_or(day, |d| d.max(day)));
        }
    }

    pub fn finish(self, config: &RfmConfig) -> RfmResult {
        let reference = config
            .reference
            .map(|d| d.num_days_from_ce())
            .or_else(|| self.last_day.map(|d| d + 1))
            .unwrap_or(0);
        let mut rows: Vec<RfmRow> = Vec::with_capacity(self.customers.len());
        let mut only_returns = 0u64;
        for (id, c) in self.ids.into_iter().zip(self.customers) {
            match c.last_sale_day {
                Some(last) => rows.push(RfmRow {
                    customer: id,
                    recency_days: i64::from(reference - last),
                    frequency: c.orders.len() as i64,
                    monetary: c.monetary,
                    r: 0,
                    f: 0,
                    m: 0,
                    class: RfmClass::GeneralRetain,
                }),
                None => only_returns += 1,
            }
        }
        let (thresholds, means) = score(&mut rows, config);
        rows.sort_by(|a, b| a.customer.cmp(&b.customer));
        let reference = NaiveDate::from_num_days_from_ce_opt(reference).unwrap_or_default();
        RfmResult {
            reference,
            thresholds,
            means,
            only_returns,
            duplicate_lines: self.duplicate_lines,
            rows,
        }
    }
}

/// Scores rows whose recency, frequency and monetary value are set: the 1–5 scores by the
/// configured (or quintile) thresholds, then the classes by the mean scores. Returns the
/// thresholds and the mean R, F and M scores.
pub fn score(rows: &mut [RfmRow], config: &RfmConfig) -> (Thresholds, [f64; 3]) {
    let r_t = config
        .recency_thresholds
        .unwrap_or_else(|| quintiles(rows.iter().map(|r| r.recency_days)));
    let f_t = config
        .frequency_thresholds
        .unwrap_or_else(|| quintiles(rows.iter().map(|r| r.frequency)));
    let m_t = config
        .monetary_thresholds
        .unwrap_or_else(|| quintiles(rows.iter().map(|r| r.monetary)));
    for row in rows.iter_mut() {
        row.r = 5 - exceeded(row.recency_days, &r_t);
        row.f = 1 + exceeded(row.frequency, &f_t);
        row.m = 1 + exceeded(row.monetary, &m_t);
    }
    let n = rows.len().max(1) as f64;
    let mean = |f: fn(&RfmRow) -> u8| rows.iter().map(|r| f64::from(f(r))).sum::<f64>() / n;
    let means = [mean(|r| r.r), mean(|r| r.f), mean(|r| r.m)];
    for row in rows.iter_mut() {
        row.class = RfmClass::of(
            f64::from(row.r) > means[0],
            f64::from(row.f) > means[1],
            f64::from(row.m) > means[2],
        );
    }
    (
        Thresholds {
            recency: r_t,
            frequency: f_t,
            monetary: m_t,
        },
        means,
    )
}

/// How many of the thresholds `value` is strictly above.
fn exceeded(value: i64, thresholds: &[i64; 4]) -> u8 {
    thresholds.iter().filter(|&&t| value > t).count() as u8
}

/// Quintile boundaries by nearest rank: the value at position ⌈k·n/5⌉ of the sorted values.
pub fn quintiles(values: impl Iterator<Item = i64>) -> [i64; 4] {
    let mut v: Vec<i64> = values.collect();
    if v.is_empty() {
        return [0; 4];
    }
    v.sort_unstable();
    let n = v.len();
    let at = |k: usize| v[(k * n).div_ceil(5).max(1) - 1];
    [at(1), at(2), at(3), at(4)]
}

#[derive(Debug, Clone, Serialize)]
pub struct RfmRow {
    pub customer: String,
    pub recency_days: i64,
    pub frequency: i64,
    /// Net of returns, minor units.
    pub monetary: i64,
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub class: RfmClass,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub recency: [i64; 4],
    pub frequency: [i64; 4],
    pub monetary: [i64; 4],
}

#[derive(Debug, Clone, Serialize)]
pub struct RfmResult {
    pub reference: NaiveDate,
    pub thresholds: Thresholds,
    /// Mean R, F and M scores: the line between high and low for the classes.
    pub means: [f64; 3],
    /// Customers with returns but no sale (no recency; not scored).
    pub only_returns: u64,
    pub duplicate_lines: u64,
    /// One row per scored customer, by customer id.
    pub rows: Vec<RfmRow>,
}

impl RfmResult {
    /// Customers per class.
    pub fn class_sizes(&self) -> Vec<(RfmClass, usize)> {
        RfmClass::ALL
            .iter()
            .map(|&c| (c, self.rows.iter().filter(|r| r.class == c).count()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn build(lines: &[(&str, &str, bool, i64, i64)]) -> RfmResult {
        let mut b = RfmBuilder::default();
        for (i, &(c, o, ret, day, amount)) in lines.iter().enumerate() {
            b.add_line(
                chrono_tz::UTC,
                c,
                o,
                i as i64,
                ret,
                day * DAY + 3_600_000,
                amount,
            );
        }
        b.finish(&RfmConfig {
            tz: chrono_tz::UTC,
            ..RfmConfig::default()
        })
    }

    #[test]
    fn hand_computed_case() {
        // Day numbers are days since 1970-01-01; the last line is on day 100, so reference = 101.
        let r = build(&[
            ("a", "o1", false, 100, 5000),
            ("a", "o1", false, 100, 1000),
            ("a", "o2", false, 90, 3000),
            ("a", "c1", true, 95, 1000),
            ("b", "o3", false, 10, 200),
            ("c", "o4", false, 50, 900),
            ("c", "o5", false, 60, 900),
            ("d", "c2", true, 70, 500),
        ]);
        assert_eq!(r.only_returns, 1);
        let a = &r.rows[0];
        assert_eq!(
            (a.customer.as_str(), a.recency_days, a.frequency, a.monetary),
            ("a", 1, 2, 8000)
        );
        let b = &r.rows[1];
        assert_eq!((b.recency_days, b.frequency, b.monetary), (91, 1, 200));
        // Recency values sorted: 1, 41, 91 → thresholds at positions ⌈k·3/5⌉ = 1, 2, 2, 3.
        assert_eq!(r.thresholds.recency, [1, 41, 41, 91]);
        assert_eq!((a.r, b.r), (5, 2));
        assert_eq!(a.class, RfmClass::ImportantValue);
        assert_eq!(b.class, RfmClass::GeneralRetain);
    }

    #[test]
    fn duplicates_count_once() {
        let mut b = RfmBuilder::default();
        b.add_line(chrono_tz::UTC, "a", "o1", 7, false, 0, 100);
        b.add_line(chrono_tz::UTC, "a", "o1", 7, false, 0, 100);
        let r = b.finish(&RfmConfig::default());
        assert_eq!((r.rows[0].monetary, r.duplicate_lines), (100, 1));
    }

    #[test]
    fn classes_cover_every_combination() {
        let mut seen = HashSet::new();
        for bits in 0..8 {
            seen.insert(RfmClass::of(bits & 1 == 1, bits & 2 == 2, bits & 4 == 4));
        }
        assert_eq!(seen.len(), 8);
    }

    proptest! {
        #[test]
        fn equal_values_get_equal_scores_and_scores_are_monotone(values in proptest::collection::vec(0i64..50, 1..200)) {
            let t = quintiles(values.iter().copied());
            prop_assert!(t.windows(2).all(|w| w[0] <= w[1]));
            for &a in &values {
                for &b in &values {
                    if a <= b {
                        prop_assert!(exceeded(a, &t) <= exceeded(b, &t));
                    }
                }
            }
            // The top score is reachable unless the top quintile boundary is the maximum.
            let max = values.iter().copied().max().unwrap_or(0);
            prop_assert!(exceeded(max, &t) == 4 || t[3] == max);
        }
    }
}
