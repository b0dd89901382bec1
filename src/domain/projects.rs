//! Plain data for VOMO Projects, Project Dates and participations
//! (vomo-api.md §12): what the client decodes and the engine compares. A
//! participation has no id or change marker VOMO promises, so its identity is
//! the key (project_date_id, user_id) and a change is any field that differs.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::VomoUserId;

pub type ProjectId = i64;
/// A Project Date ("happening") id.
pub type DateId = i64;

/// Hours volunteered, in hundredths: VOMO sends a number or a string with two
/// decimals (`2.5`, `"2.50"`), and fixed point makes equal values compare
/// equal however they were sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hours(i64);

/// More hours than any participation can hold; larger values are refused as
/// hostile input rather than stored.
const MAX_HUNDREDTHS: i64 = 100_000_000;

impl Hours {
    pub const ZERO: Self = Self(0);

    /// `None` when negative or implausibly large.
    pub fn from_hundredths(hundredths: i64) -> Option<Self> {
        (0..=MAX_HUNDREDTHS).contains(&hundredths).then_some(Self(hundredths))
    }

    /// Rounds to two decimals; `None` for NaN, negative or huge values.
    pub fn from_f64(hours: f64) -> Option<Self> {
        let scaled = (hours * 100.0).round();
        // The range check also rejects NaN (every comparison with NaN is false).
        if !(0.0..=MAX_HUNDREDTHS as f64).contains(&scaled) {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)]
        Self::from_hundredths(scaled as i64)
    }

    /// `"2.50"`, `"2.5"`, `"3"`, `" 10.00 "`; more than two decimals are rounded.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
        if !plain {
            return None;
        }
        Self::from_f64(text.parse::<f64>().ok()?)
    }

    pub fn hundredths(self) -> i64 {
        self.0
    }

    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// Hours between two instants, rounded to two decimals (a check-out's
    /// hours in the simulator); zero when `to` is not after `from`.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        let secs = (to - from).num_seconds().max(0);
        // Integer rounding: secs * 100 / 3600, half up.
        Self::from_hundredths((secs * 100 + 1800) / 3600).unwrap_or(Self(MAX_HUNDREDTHS))
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Written as a JSON number, the shape every destination promises.
impl Serialize for Hours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let hours = match Raw::deserialize(d)? {
            Raw::Number(n) => Self::from_f64(n),
            Raw::Text(t) => Self::parse(&t),
        };
        hours.ok_or_else(|| serde::de::Error::custom("hours must be a non-negative number"))
    }
}

/// A Project (`ProjectResource`, vomo-api.md §12.4). Optional fields are
/// `None` when VOMO left them out; text values are kept as VOMO sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: Option<String>,
    pub organization_slug: Option<String>,
    /// `project_type: anytime` (or `anytime: 1`): no serving dates of its own.
    pub anytime: bool,
    pub active: Option<bool>,
    pub published: Option<bool>,
    pub privacy: Option<String>,
    pub allow_guests: Option<bool>,
    pub age_limit: Option<u32>,
    /// `address.timezone` (IANA), the Project's local time.
    pub timezone: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub next_date: Option<DateRef>,
}

/// `next_date`: a pointer to one Project Date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRef {
    pub id: DateId,
    pub starts_at: Option<DateTime<Utc>>,
}

/// One Project Date (a "happening"). Mostly a SPEC GAP in the docs, so most
/// fields are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDate {
    pub id: DateId,
    pub project_id: Option<ProjectId>,
    pub project_name: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    /// `None` for an anytime Project's date.
    pub ends_at: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub status: Option<String>,
    pub anytime: bool,
    pub capacity: Option<u32>,
    pub taken: Option<u32>,
}

/// One volunteer's participation in one Project Date, the same from both read
/// paths (a date's participants and a user's detail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participation {
    pub project_date_id: DateId,
    pub user_id: VomoUserId,
    pub project_id: Option<ProjectId>,
    /// VOMO's own id, when it sends one; never used as the key.
    pub id: Option<i64>,
    pub signed_up_at: Option<DateTime<Utc>>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub checked_out_at: Option<DateTime<Utc>>,
    /// Zero until recorded.
    pub hours: Hours,
    pub verified: bool,
    pub role: Option<String>,
    pub guests: u32,
    /// `APPROVED`, or e.g. `CANCELLED` where VOMO keeps removed sign-ups.
    pub status: Option<String>,
}

/// Statuses that mean the sign-up no longer stands.
const ENDED_STATUSES: &[&str] = &["CANCELLED", "CANCELED", "DENIED", "REMOVED", "DECLINED"];

impl Participation {
    /// The identity of a participation (vomo-api.md §12.6).
    pub fn key(&self) -> (DateId, VomoUserId) {
        (self.project_date_id, self.user_id)
    }

    /// True when VOMO kept a removed sign-up with an ending status.
    pub fn is_cancelled(&self) -> bool {
        self.status.as_deref().is_some_and(|s| ENDED_STATUSES.iter().any(|e| s.eq_ignore_ascii_case(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_and_round_to_hundredths() {
        assert_eq!(Hours::parse("2.50"), Some(Hours(250)));
        assert_eq!(Hours::parse(" 10.00 "), Some(Hours(1000)));
        assert_eq!(Hours::parse("3"), Some(Hours(300)));
        assert_eq!(Hours::from_f64(2.5), Hours::parse("2.50"));
        assert_eq!(Hours::from_f64(0.07).map(Hours::hundredths), Some(7));
        for bad in ["", "-1", "abc", "1e400", "NaN", "2,5"] {
            assert_eq!(Hours::parse(bad), None, "{bad}");
        }
        assert_eq!(Hours::from_f64(f64::NAN), None);
        assert_eq!(Hours::from_f64(-0.5), None);
        assert_eq!(Hours(250).to_string(), "2.50");
        assert_eq!(serde_json::to_string(&Hours(250)).unwrap(), "2.5");
        assert_eq!(serde_json::from_str::<Hours>("\"2.50\"").unwrap(), Hours(250));
    }

    #[test]
    fn hours_between_instants() {
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(Hours::between(at(0), at(9000)), Hours(250));
        assert_eq!(Hours::between(at(0), at(60)), Hours(2));
        assert_eq!(Hours::between(at(100), at(0)), Hours::ZERO);
    }

    #[test]
    fn cancelled_statuses() {
        let mut p = Participation {
            project_date_id: 1,
            user_id: 2,
            project_id: None,
            id: None,
            signed_up_at: None,
            checked_in_at: None,
            checked_out_at: None,
            hours: Hours::ZERO,
            verified: false,
            role: None,
            guests: 0,
            status: Some("APPROVED".into()),
        };
        assert!(!p.is_cancelled());
        p.status = Some("cancelled".into());
        assert!(p.is_cancelled());
        assert_eq!(p.key(), (1, 2));
    }
}
