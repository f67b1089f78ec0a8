//! Budget periods: which period of a kind a moment falls in, named the way the store keys
//! `budget_usage` (`all`, `2026-11-24`, `2026-W48`, `2026-11`). Days, ISO weeks and months are the
//! shop's local calendar, so a daily budget resets at the shop's midnight.

use chrono::{Datelike, NaiveDate};

/// A kind of budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Total,
    Day,
    Week,
    Month,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Total, Period::Day, Period::Week, Period::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Total => "total",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The key of the period of this kind that contains `date` (the shop's local date).
    pub fn key(self, date: NaiveDate) -> String {
        match self {
            Period::Total => "all".into(),
            Period::Day => date.format("%Y-%m-%d").to_string(),
            Period::Week => {
                let w = date.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Period::Month => date.format("%Y-%m").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_local_calendar_and_iso_weeks() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
        assert_eq!(Period::Total.key(d), "all");
        assert_eq!(Period::Day.key(d), "2026-11-24");
        assert_eq!(Period::Week.key(d), "2026-W48");
        assert_eq!(Period::Month.key(d), "2026-11");
        // 2027-01-01 is a Friday in ISO week 53 of 2026.
        let new_year = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default();
        assert_eq!(Period::Week.key(new_year), "2026-W53");
        assert_eq!(Period::parse("week"), Some(Period::Week));
        assert_eq!(Period::parse("year"), None);
    }
}
