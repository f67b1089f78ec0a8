//! The campaign state machine: draft → scheduled → running ⇄ paused → ended.
//!
//! A campaign is created as a draft. It can be scheduled (it starts by itself at its start time)
//! or started at once, paused and resumed, and ended from any state; ended is final. Time moves a
//! campaign too: a scheduled one whose start has come counts as running, and one past its end
//! counts as ended, without anyone writing that down ([`effective`]).

use serde::{Deserialize, Serialize};

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
}
