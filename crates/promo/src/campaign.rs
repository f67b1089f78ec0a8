//! The campaign state machine: draft → scheduled → running ⇄ paused → ended.
//!
//! A campaign is created as a draft. It can be scheduled (it starts by itself at its start time)
//! or started at once, paused and resumed, and ended from any state; ended is final. Time moves a
//! campaign too: a scheduled one whose start has come counts as running, and one past its end
//! counts as ended, without anyone writing that down ([`effective`]).

use chrono::{Datelike, NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};
use shopgrowth_core::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Scheduled,
    Running,
    Paused,
    Ended,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Scheduled => "scheduled",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            CampaignState::Draft,
            CampaignState::Scheduled,
            CampaignState::Running,
            CampaignState::Paused,
            CampaignState::Ended,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The states a campaign may move to `self` from (none for draft: only creation makes one).
    pub fn allowed_from(self) -> &'static [&'static str] {
        match self {
            CampaignState::Draft => &[],
            CampaignState::Scheduled => &["draft"],
            CampaignState::Running => &["draft", "scheduled", "paused"],
            CampaignState::Paused => &["scheduled", "running"],
            CampaignState::Ended => &["draft", "scheduled", "running", "paused"],
        }
    }
}

/// The state that holds at `now`, time included.
pub fn effective(
    stored: CampaignState,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    now: i64,
) -> CampaignState {
    let ended = ends_at.is_some_and(|e| now >= e);
    match stored {
        CampaignState::Draft | CampaignState::Ended => stored,
        _ if ended => CampaignState::Ended,
        CampaignState::Scheduled if starts_at.is_none_or(|s| now >= s) => CampaignState::Running,
        other => other,
    }
}

/// When a running campaign applies, in the shop's local time: on some days of the week and/or of
/// the month (会员日 every Wednesday; 每月18日), between two times of day (每晚8点到10点). A campaign
/// without one applies all the time it runs; with one, only inside it (its schedule, state and
/// budget still hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// ISO weekdays, 1 (Monday) to 7 (Sunday); empty for every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<u8>,
    /// Days of the month, 1 to 31; empty for every day. With weekdays too, a day must be both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<u8>,
    /// The time of day it starts, `HH:MM` (default `00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The time of day it stops, `HH:MM` up to `24:00` (default `24:00`), after `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Minutes since midnight of `HH:MM` (`24:00` is the end of the day).
fn minutes_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && minutes <= 24 * 60).then_some(minutes)
}

impl Recurrence {
    /// Each problem, naming its field.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.weekdays.iter().any(|d| !(1..=7).contains(d)) {
            errors.push(FieldError::new("weekdays", "1 (Monday) to 7 (Sunday)"));
        }
        if self.days_of_month.iter().any(|d| !(1..=31).contains(d)) {
            errors.push(FieldError::new("days_of_month", "1 to 31"));
        }
        let from = self.from.as_deref().map(minutes_of_day);
        let to = self.to.as_deref().map(minutes_of_day);
        if from == Some(None) {
            errors.push(FieldError::new("from", "a time of day, HH:MM"));
        }
        if to == Some(None) {
            errors.push(FieldError::new("to", "a time of day, HH:MM, up to 24:00"));
        }
        if let (Some(Some(f)), Some(Some(t))) = (from, to) {
            if t <= f {
                errors.push(FieldError::new("to", "must be after from"));
            }
        }
        errors
    }

    /// Whether the campaign applies at local time `at`.
    pub fn contains(&self, at: NaiveDateTime) -> bool {
        let weekday = at.weekday().number_from_monday() as u8;
        let day = at.day() as u8;
        let minute = at.hour() * 60 + at.minute();
        let from = self.from.as_deref().and_then(minutes_of_day).unwrap_or(0);
        let to = self
            .to
            .as_deref()
            .and_then(minutes_of_day)
            .unwrap_or(24 * 60);
        (self.weekdays.is_empty() || self.weekdays.contains(&weekday))
            && (self.days_of_month.is_empty() || self.days_of_month.contains(&day))
            && from <= minute
            && minute < to
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignState::*;

    #[test]
    fn transitions_and_time() {
        assert!(Running.allowed_from().contains(&"paused"));
        assert!(!Running.allowed_from().contains(&"ended"), "ended is final");
        assert!(Draft.allowed_from().is_empty());
        assert_eq!(effective(Scheduled, Some(100), Some(200), 50), Scheduled);
        assert_eq!(effective(Scheduled, Some(100), Some(200), 100), Running);
        assert_eq!(effective(Running, Some(100), Some(200), 200), Ended);
        assert_eq!(effective(Paused, None, Some(200), 150), Paused);
        assert_eq!(effective(Draft, Some(0), Some(1), 5), Draft);
        for s in [Draft, Scheduled, Running, Paused, Ended] {
            assert_eq!(CampaignState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_recurrence_holds_on_its_days_between_its_times() {
        let at =
            |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap_or_default();
        // 会员日: Wednesdays from 20:00 to 22:00 (2026-11-25 is a Wednesday).
        let members_day = Recurrence {
            weekdays: vec![3],
            from: Some("20:00".into()),
            to: Some("22:00".into()),
            ..Recurrence::default()
        };
        assert!(members_day.problems().is_empty());
        assert!(members_day.contains(at("2026-11-25 20:00")));
        assert!(members_day.contains(at("2026-11-25 21:59")));
        assert!(!members_day.contains(at("2026-11-25 22:00")));
        assert!(!members_day.contains(at("2026-11-25 19:59")));
        assert!(!members_day.contains(at("2026-11-26 20:30")), "a Thursday");
        // Every 18th, all day; an empty recurrence is always.
        let eighteenth = Recurrence {
            days_of_month: vec![18],
            ..Recurrence::default()
        };
        assert!(eighteenth.contains(at("2026-06-18 00:00")));
        assert!(eighteenth.contains(at("2026-06-18 23:59")));
        assert!(!eighteenth.contains(at("2026-06-19 00:00")));
        assert!(Recurrence::default().contains(at("2026-01-01 03:00")));
        // Bad input names each field.
        let bad = Recurrence {
            weekdays: vec![0],
            days_of_month: vec![32],
            from: Some("8pm".into()),
            to: Some("24:30".into()),
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["weekdays", "days_of_month", "from", "to"]);
        let backwards = Recurrence {
            from: Some("22:00".into()),
            to: Some("20:00".into()),
            ..Recurrence::default()
        };
        assert_eq!(backwards.problems().len(), 1);
    }
}
