//! The JSON shapes of Projects, Project Dates and participations (P4–P7),
//! shared by every read path so a participation looks the same from a date
//! and from a user. Quirks (`ids_as_strings`, `participation_strings`) are
//! applied here and nowhere else.

use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::knobs::AnytimeDates;
use super::store::{SimDate, SimParticipation, SimProject, Store};
use crate::domain;
use crate::sim::faults::Quirks;

/// What a read sees: the store, the quirks and knobs in force, the clock.
pub struct View<'a> {
    pub store: &'a Store,
    pub quirks: Quirks,
    pub now: i64,
}

pub fn vomo_time(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0).single().map(|at| domain::format_vomo_time(&at)).unwrap_or_default()
}

impl View<'_> {
    fn id(&self, n: i64) -> Value {
        if self.quirks.ids_as_strings { json!(n.to_string()) } else { json!(n) }
    }

    /// A Project (P4); `detail` adds `all_dates` (P10).
    pub fn project(&self, p: &SimProject, slug: &str, detail: bool) -> Value {
        let mut value = json!({
            "type": "project",
            "id": self.id(p.id),
            "name": p.name,
            "project_name": p.name,
            "description": p.description,
            "organization_slug": slug,
            "project_type": if p.anytime { "anytime" } else { "dated" },
            "anytime": p.anytime,
            "active": p.active,
            "published": p.published,
            "draft": !p.published,
            "privacy": p.privacy,
            "allow_guests": p.allow_guests,
            "age_limit": p.age_limit,
            "address": {
                "timezone": p.timezone,
                "locality": p.locality,
                "formatted_address": format!("{}, {}", p.name, p.locality),
            },
            "created_at": vomo_time(p.created_at),
            "updated_at": vomo_time(p.updated_at),
            "next_date": self.next_date(p),
        });
        if detail && let Value::Object(map) = &mut value {
            let listed = self.store.knobs.anytime_dates == AnytimeDates::Listed;
            let dates =
                self.store.live_dates(p.id, listed).into_iter().map(|d| self.date(d, false)).collect();
            map.insert("all_dates".into(), Value::Array(dates));
        }
        value
    }

    /// The first live dated date starting at or after now (P10).
    fn next_date(&self, p: &SimProject) -> Value {
        let next = self.store.live_dates(p.id, false).into_iter().find(|d| d.starts_at >= self.now);
        next.map_or(
            Value::Null,
            |d| json!({"type": "project_date", "id": self.id(d.id), "starts_at": vomo_time(d.starts_at)}),
        )
    }

    /// A Project Date (P5); `participants` adds the ones shown (P12).
    pub fn date(&self, d: &SimDate, participants: bool) -> Value {
        let project = self.store.project(d.project);
        let mut map = Map::new();
        map.insert("type".into(), json!("project_date"));
        map.insert("id".into(), self.id(d.id));
        map.insert("project_id".into(), self.id(d.project));
        map.insert("project_name".into(), json!(project.map(|p| p.name.as_str())));
        map.insert("starts_at".into(), json!(vomo_time(d.starts_at)));
        map.insert("ends_at".into(), json!(d.ends_at.map(vomo_time)));
        map.insert("timezone".into(), json!(project.map(|p| p.timezone.as_str())));
        map.insert("status".into(), json!("active"));
        map.insert("anytime".into(), json!(d.anytime));
        map.insert("capacity".into(), json!(d.capacity));
        map.insert("taken".into(), json!(self.store.taken(d.id)));
        if participants {
            let mode = self.store.knobs.removed_participations;
            let shown = self.store.participants(d.id).filter(|p| p.is_shown(mode));
            map.insert("participants".into(), Value::Array(shown.map(|p| self.participation(p)).collect()));
        }
        Value::Object(map)
    }

    /// A participation (P6), the same in both read paths.
    pub fn participation(&self, part: &SimParticipation) -> Value {
        let project = self.store.date(part.date).map_or(0, |d| d.project);
        let strings = self.store.knobs.participation_strings;
        let hours = domain::Hours::from_hundredths(part.hours).unwrap_or_default();
        json!({
            "id": self.id(part.id),
            "user_id": self.id(part.user),
            "project_id": self.id(project),
            "project_date_id": self.id(part.date),
            "signed_up_at": vomo_time(part.signed_up_at),
            "checked_in_at": part.checked_in_at.map(vomo_time),
            "checked_out_at": part.checked_out_at.map(vomo_time),
            "hours": if strings { json!(hours.to_string()) } else { json!(hours.as_f64()) },
            "verified": if strings { json!(u8::from(part.verified)) } else { json!(part.verified) },
            "role": part.role,
            "guests": part.guests,
            "status": if part.is_live() { "APPROVED" } else { "CANCELLED" },
        })
    }
}
