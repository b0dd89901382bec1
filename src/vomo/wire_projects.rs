//! VOMO's JSON for Projects, Project Dates and participations (vomo-api.md
//! §12.4), decoded as leniently as the users' shapes: ids and counts as
//! numbers or strings, `hours` as a number or `"2.50"`, `verified` and the
//! other flags as booleans or 0/1, nullable times, unknown fields ignored,
//! and the webhook names (`happening_id`, `checkin_at`, `checkout_at`) as
//! aliases. Converts into [`crate::domain`] types.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{lenient_i64, lenient_opt_i64, parse_vomo_time, vomo_time};
use crate::domain::{DateId, DateRef, Hours, Participation, Project, ProjectDate, ProjectId, VomoUserId};

/// A Project (list or detail shape).
#[derive(Debug, Deserialize)]
pub struct WireProject {
    #[serde(deserialize_with = "lenient_i64")]
    pub id: ProjectId,
    #[serde(default)]
    pub name: Option<String>,
    /// A duplicate of `name` old code reads (vomo-api.md §12.4).
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub organization_slug: Option<String>,
    #[serde(default)]
    pub project_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub anytime: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub published: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub draft: Option<bool>,
    #[serde(default)]
    pub privacy: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub allow_guests: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt_u32")]
    pub age_limit: Option<u32>,
    /// Google-address style; only `timezone` is read, and an address of
    /// another shape is ignored rather than refused.
    #[serde(default)]
    pub address: Option<Value>,
    #[serde(default, deserialize_with = "opt_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "vomo_time")]
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub next_date: Option<WireDateRef>,
    /// Detail only.
    #[serde(default)]
    pub all_dates: Option<Vec<WireDate>>,
}

#[derive(Debug, Deserialize)]
pub struct WireDateRef {
    #[serde(deserialize_with = "lenient_i64")]
    pub id: DateId,
    #[serde(default, deserialize_with = "opt_time")]
    pub starts_at: Option<DateTime<Utc>>,
}

impl WireProject {
    pub fn into_project(self) -> Project {
        let type_says_anytime = self.project_type.as_deref().map(|t| t.eq_ignore_ascii_case("anytime"));
        let timezone = self.address.as_ref().and_then(|a| a.get("timezone")?.as_str().map(str::to_owned));
        Project {
            id: self.id,
            name: self.name.or(self.project_name).unwrap_or_default(),
            description: self.description,
            organization_slug: self.organization_slug,
            anytime: self.anytime.or(type_says_anytime).unwrap_or(false),
            active: self.active,
            published: self.published.or(self.draft.map(|d| !d)),
            privacy: self.privacy,
            allow_guests: self.allow_guests,
            age_limit: self.age_limit,
            timezone,
            created_at: self.created_at,
            updated_at: self.updated_at,
            next_date: self.next_date.map(|n| DateRef { id: n.id, starts_at: n.starts_at }),
        }
    }
}

/// A Project Date; `participants` only in `GET /projects/date/{id}`.
#[derive(Debug, Deserialize)]
pub struct WireDate {
    #[serde(deserialize_with = "lenient_i64")]
    pub id: DateId,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub project_id: Option<ProjectId>,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default, deserialize_with = "opt_time")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_time")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub anytime: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt_u32")]
    pub capacity: Option<u32>,
    #[serde(default, deserialize_with = "lenient_opt_u32")]
    pub taken: Option<u32>,
    #[serde(default)]
    pub participants: Option<Vec<WireParticipation>>,
}

impl WireDate {
    /// The date without its participants.
    pub fn to_date(&self) -> ProjectDate {
        ProjectDate {
            id: self.id,
            project_id: self.project_id,
            project_name: self.project_name.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            timezone: self.timezone.clone(),
            status: self.status.clone(),
            anytime: self.anytime.unwrap_or(false),
            capacity: self.capacity,
            taken: self.taken,
        }
    }
}

/// A participation as either read path sends it. The webhook names are
/// separate fields rather than serde aliases, so a body carrying both
/// spellings is read instead of refused as a duplicate.
#[derive(Debug, Deserialize)]
pub struct WireParticipation {
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub user_id: Option<VomoUserId>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub project_id: Option<ProjectId>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub project_date_id: Option<DateId>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub happening_id: Option<DateId>,
    #[serde(default, deserialize_with = "opt_time")]
    pub signed_up_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_time")]
    pub checked_in_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_time")]
    pub checkin_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_time")]
    pub checked_out_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_time")]
    pub checkout_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_hours")]
    pub hours: Option<Hours>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub verified: Option<bool>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_u32")]
    pub guests: Option<u32>,
    #[serde(default)]
    pub status: Option<String>,
}

/// What the read path knows about participations it did not get from
/// the participation itself: the date (date detail) or the user (user detail).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeyContext {
    pub project_date_id: Option<DateId>,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<VomoUserId>,
}

impl WireParticipation {
    /// The domain participation; `Err(field, problem)` when the key is
    /// missing or contradicts the read path's context.
    pub fn into_participation(self, ctx: KeyContext) -> Result<Participation, (&'static str, &'static str)> {
        let date = key(self.project_date_id.or(self.happening_id), ctx.project_date_id, "project_date_id")?;
        let user = key(self.user_id, ctx.user_id, "user_id")?;
        Ok(Participation {
            project_date_id: date,
            user_id: user,
            project_id: self.project_id.or(ctx.project_id),
            id: self.id,
            signed_up_at: self.signed_up_at,
            checked_in_at: self.checked_in_at.or(self.checkin_at),
            checked_out_at: self.checked_out_at.or(self.checkout_at),
            hours: self.hours.unwrap_or_default(),
            verified: self.verified.unwrap_or(false),
            role: self.role,
            guests: self.guests.unwrap_or(0),
            status: self.status,
        })
    }
}

/// A key field from the participation or, when absent, from the context.
fn key(own: Option<i64>, ctx: Option<i64>, field: &'static str) -> Result<i64, (&'static str, &'static str)> {
    match (own, ctx) {
        (Some(a), Some(b)) if a != b => Err((field, "does not match the resource it was read from")),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err((field, "missing")),
    }
}

// ---- lenient scalars -------------------------------------------------------

/// A flag as `true`/`false`, 0/1 or their strings; `null` or `""` is `None`.
fn lenient_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "null" => Ok(None),
            "1" | "true" => Ok(Some(true)),
            "0" | "false" => Ok(Some(false)),
            _ => Err(de::Error::custom("expected a boolean or 0/1")),
        },
        Some(_) => Err(de::Error::custom("expected a boolean or 0/1")),
    }
}

fn lenient_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match lenient_opt_i64(d)? {
        Some(v) => {
            u32::try_from(v).map(Some).map_err(|_| de::Error::custom("expected a small non-negative integer"))
        }
        None => Ok(None),
    }
}

/// Hours as a number or a decimal string; `null` is `None`.
fn lenient_hours<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hours>, D::Error> {
    let bad = || de::Error::custom("expected non-negative hours as a number or a decimal string");
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().and_then(Hours::from_f64).map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Hours::parse(&s).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A nullable timestamp: `null`, absent or `""` is `None`.
fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => parse_vomo_time(&s).map(Some).ok_or_else(|| de::Error::custom("expected a timestamp")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBHOOK_STYLE: &str = r#"{"id":"77","user_id":"12","happening_id":"100003","project_id":1004,
        "signed_up_at":"2030-06-01 10:00:00","checkin_at":"2030-06-02T09:00:00.000000Z","checkout_at":null,
        "hours":"10.00","verified":1,"role":"Volunteer","guests":"2","status":"APPROVED",
        "user_status":"CONFIRMED_VOLUNTEER","need":{"id":1,"name":"Driver","type":"role","capacity":4,"taken":1}}"#;

    #[test]
    fn webhook_names_and_types_decode() {
        let wire: WireParticipation = serde_json::from_str(WEBHOOK_STYLE).unwrap();
        let p = wire.into_participation(KeyContext::default()).unwrap();
        assert_eq!(p.key(), (100_003, 12));
        assert_eq!((p.hours.hundredths(), p.verified, p.guests), (1000, true, 2));
        assert!(p.checked_in_at.is_some() && p.checked_out_at.is_none());
        assert_eq!(p.signed_up_at, parse_vomo_time("2030-06-01T10:00:00Z"));
    }

    #[test]
    fn keys_come_from_the_context_and_must_agree_with_it() {
        let wire = || {
            serde_json::from_str::<WireParticipation>(r#"{"user_id":5,"hours":2.5,"verified":false}"#)
                .unwrap()
        };
        let ctx = KeyContext { project_date_id: Some(9), project_id: Some(3), user_id: None };
        let p = wire().into_participation(ctx).unwrap();
        assert_eq!((p.key(), p.project_id, p.hours.hundredths()), ((9, 5), Some(3), 250));
        assert_eq!(wire().into_participation(KeyContext::default()).unwrap_err().0, "project_date_id");
        let other_user = KeyContext { user_id: Some(6), ..ctx };
        assert_eq!(wire().into_participation(other_user).unwrap_err().0, "user_id");
    }

    #[test]
    fn hostile_scalars_are_refused() {
        for bad in [
            r#"{"hours":-1}"#,
            r#"{"hours":"lots"}"#,
            r#"{"verified":2}"#,
            r#"{"guests":-3}"#,
            r#"{"signed_up_at":"soon"}"#,
        ] {
            assert!(serde_json::from_str::<WireParticipation>(bad).is_err(), "{bad}");
        }
        let project: WireProject = serde_json::from_str(
            r#"{"id":"5","project_name":"Old name","project_type":"anytime","draft":1,"address":"Main St",
                "updated_at":"2030-01-01T00:00:00+00:00","next_date":null,"surprise":[1,2]}"#,
        )
        .unwrap();
        let project = project.into_project();
        assert_eq!((project.id, project.name.as_str(), project.anytime), (5, "Old name", true));
        assert_eq!((project.published, project.timezone), (Some(false), None));
    }
}
