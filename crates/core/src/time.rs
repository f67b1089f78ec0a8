//! Time: every instant is UTC epoch milliseconds; local times are read in the shop's time zone.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The time zone a shop lives in when none is configured.
pub const DEFAULT_SHOP_TZ: &str = "Asia/Shanghai";

/// An instant, stored as UTC epoch milliseconds; written as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-06-18T12:00:00+08:00")]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn to_rfc3339(self) -> String {
        match Utc.timestamp_millis_opt(self.0) {
            LocalResult::Single(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            _ => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 (`2026-06-18T12:00:00+08:00`); an offset is required so no instant is guessed.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|e| format!("{s:?} is not an RFC 3339 time with an offset ({e})"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Accepts an RFC 3339 string or integer epoch milliseconds.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so that a missing field stays "missing field
        // `starts_at`" and a wrong type says what it got.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time with an offset or epoch milliseconds")
            }
            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(ms))
            }
            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Timestamp, E> {
                i64::try_from(ms)
                    .map(Timestamp)
                    .map_err(|_| E::custom(format!("{ms} milliseconds is out of range")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Parses a time zone name (`Asia/Shanghai`), with a message that names the input.
pub fn parse_tz(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone name"))
}

/// A wall-clock time in `tz` as an instant. Ambiguous times (clocks set back) take the earlier
/// instant; times that do not exist (clocks set forward) are refused.
pub fn local_to_utc(local: NaiveDateTime, tz: chrono_tz::Tz) -> Result<Timestamp, String> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(Timestamp(t.timestamp_millis())),
        LocalResult::Ambiguous(earlier, _) => Ok(Timestamp(earlier.timestamp_millis())),
        LocalResult::None => Err(format!(
            "{local} does not exist in {tz} (clocks moved forward)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms() {
        let a: Timestamp =
            serde_json::from_str("\"2026-06-18T12:00:00+08:00\"").unwrap_or(Timestamp(0));
        let b: Timestamp = serde_json::from_str("1781755200000").unwrap_or(Timestamp(1));
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2026-06-18T04:00:00.000Z");
        assert!(serde_json::from_str::<Timestamp>("\"2026-06-18 12:00:00\"").is_err());
    }

    #[test]
    fn local_times_follow_the_zone() {
        let tz = parse_tz("Europe/London").unwrap_or(chrono_tz::UTC);
        let winter = NaiveDateTime::parse_from_str("2010-12-01 08:26:00", "%Y-%m-%d %H:%M:%S")
            .unwrap_or_default();
        assert_eq!(
            local_to_utc(winter, tz).map(Timestamp::to_rfc3339),
            Ok("2010-12-01T08:26:00.000Z".into())
        );
        let gap = NaiveDateTime::parse_from_str("2011-03-27 01:30:00", "%Y-%m-%d %H:%M:%S")
            .unwrap_or_default();
        assert!(local_to_utc(gap, tz).is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
    }
}
