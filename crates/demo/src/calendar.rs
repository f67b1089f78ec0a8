//! The year of history: a weight per day for weekly rhythm, the 618 and 双11 festivals, 双12,
//! and the Spring Festival dip; times in the shop's zone (Asia/Shanghai, no daylight saving).

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Weekday};
use rand::Rng;
use shopgrowth_core::time::Timestamp;

pub struct Calendar {
    start: NaiveDate,
    weights: Vec<f64>,
    prefix: Vec<f64>,
    max_weight: f64,
}

const SPRING_FESTIVALS: [(i32, u32, u32); 5] = [
    (2024, 2, 10),
    (2025, 1, 29),
    (2026, 2, 17),
    (2027, 2, 6),
    (2028, 1, 26),
];

fn day_weight(d: NaiveDate) -> f64 {
    let mut w = match d.weekday() {
        Weekday::Mon => 0.92,
        Weekday::Tue => 0.95,
        Weekday::Wed => 0.97,
        Weekday::Thu => 1.0,
        Weekday::Fri => 1.08,
        Weekday::Sat => 1.25,
        Weekday::Sun => 1.22,
    };
    let (m, day) = (d.month(), d.day());
    w += match (m, day) {
        (6, 1..=17) => 0.35,
        (6, 18) => 3.0,
        (10, 24..=31) | (11, 1..=10) => 0.45,
        (11, 11) => 5.0,
        (11, 12) => 0.8,
        (12, 12) => 1.2,
        _ => 0.0,
    };
    for (y, fm, fd) in SPRING_FESTIVALS {
        if let Some(festival) = NaiveDate::from_ymd_opt(y, fm, fd) {
            let offset = (d - festival).num_days();
            if (-3..=5).contains(&offset) {
                w *= 0.55;
            }
        }
    }
    w
}

impl Calendar {
    pub fn year_ending(end: NaiveDate) -> Self {
        let start = end - Duration::days(364);
        let weights: Vec<f64> = (0..365)
            .map(|i| day_weight(start + Duration::days(i)))
            .collect();
        let mut prefix = Vec::with_capacity(366);
        prefix.push(0.0);
        for w in &weights {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + w);
        }
        let max_weight = weights.iter().copied().fold(0.0, f64::max);
        Calendar {
            start,
            weights,
            prefix,
            max_weight,
        }
    }

    pub fn days(&self) -> usize {
        self.weights.len()
    }

    pub fn date(&self, day: usize) -> NaiveDate {
        self.start + Duration::days(day as i64)
    }

    pub fn weight(&self, day: usize) -> f64 {
        self.weights.get(day).copied().unwrap_or(1.0)
    }

    /// Sum of weights over days `from..=to`.
    pub fn weight_between(&self, from: usize, to: usize) -> f64 {
        if to < from {
            return 0.0;
        }
        let to = to.min(self.days() - 1);
        self.prefix[to + 1] - self.prefix[from.min(to)]
    }

    /// A day in `from..=to`, more likely on heavier days.
    pub fn sample_day(&self, rng: &mut impl Rng, from: usize, to: usize) -> usize {
        let to = to.min(self.days() - 1);
        let from = from.min(to);
        loop {
            let d = rng.random_range(from..=to);
            if rng.random::<f64>() * self.max_weight <= self.weights[d] {
                return d;
            }
        }
    }

    pub fn is_festival(&self, day: usize) -> bool {
        let d = self.date(day);
        matches!((d.month(), d.day()), (6, 18) | (11, 11) | (12, 12))
    }

    /// Seconds after local midnight of `day` as an instant.
    pub fn instant(&self, day: usize, seconds: u32) -> Timestamp {
        let local = self.date(day).and_hms_opt(0, 0, 0).unwrap_or_default()
            + Duration::seconds(i64::from(seconds));
        match chrono_tz::Asia::Shanghai
            .from_local_datetime(&local)
            .earliest()
        {
            Some(t) => Timestamp(t.timestamp_millis()),
            None => Timestamp(local.and_utc().timestamp_millis() - 8 * 3_600_000),
        }
    }

    pub fn local_date(&self, t: Timestamp) -> NaiveDate {
        chrono_tz::Asia::Shanghai
            .timestamp_millis_opt(t.0)
            .earliest()
            .map(|d| d.date_naive())
            .unwrap_or(self.start)
    }
}
