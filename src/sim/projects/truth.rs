//! The ground truth tests compare destinations with (P20): every
//! participation ever created in an org family with its current fields, a
//! `removed` flag and the time of its last change; every Project with every
//! date, deleted ones marked. In domain types, so a test compares them with
//! what the client decoded without a translation of its own.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::store::{SimDate, SimParticipation, SimProject, Store};
use crate::domain::{DateRef, Hours, Participation, Project, ProjectDate};
use crate::sim::SimState;
use crate::sim::model::OrgId;

/// One participation as it is now, removed ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipationTruth {
    /// Its fields as VOMO would show them (`status` is `CANCELLED` once
    /// removed, whichever way the API shows removals).
    pub participation: Participation,
    /// Cancelled, its date deleted or its user hard-deleted.
    pub removed: bool,
    pub changed_at: DateTime<Utc>,
}

/// A Project with all its dates; `deleted_at` marks deleted ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectTruth {
    pub project: Project,
    pub dates: Vec<DateTruth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateTruth {
    pub date: ProjectDate,
    pub deleted_at: Option<DateTime<Utc>>,
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// Every participation of `org`'s family, by (date, user).
pub(crate) fn participations(state: &SimState, org: OrgId) -> Vec<ParticipationTruth> {
    let family = state.world.family(org);
    let store = &state.projects;
    store
        .all_participations()
        .filter(|p| store.org_of_date(p.date).is_some_and(|o| family.contains(&o)))
        .map(|p| ParticipationTruth {
            participation: participation(store, p),
            removed: !p.is_live(),
            changed_at: at(p.changed_at),
        })
        .collect()
}

pub(crate) fn participation(store: &Store, p: &SimParticipation) -> Participation {
    Participation {
        project_date_id: p.date,
        user_id: p.user,
        project_id: store.date(p.date).map(|d| d.project),
        id: Some(p.id),
        signed_up_at: Some(at(p.signed_up_at)),
        checked_in_at: p.checked_in_at.map(at),
        checked_out_at: p.checked_out_at.map(at),
        hours: Hours::from_hundredths(p.hours).unwrap_or_default(),
        verified: p.verified,
        role: Some(p.role.clone()),
        guests: p.guests,
        status: Some(if p.is_live() { "APPROVED" } else { "CANCELLED" }.into()),
    }
}

/// Every Project of `org`'s family with all its dates, by id.
pub(crate) fn projects(state: &SimState, org: OrgId) -> Vec<ProjectTruth> {
    let family = state.world.family(org);
    let store = &state.projects;
    let now = state.now();
    store
        .projects()
        .filter(|p| family.contains(&p.org))
        .map(|p| ProjectTruth {
            project: project(store, p, &state.world.orgs[p.org].slug, now),
            dates: p
                .dates
                .iter()
                .filter_map(|id| store.date(*id))
                .map(|d| DateTruth { date: date(store, d), deleted_at: d.deleted_at.map(at) })
                .collect(),
        })
        .collect()
}

pub(crate) fn project(store: &Store, p: &SimProject, slug: &str, now: i64) -> Project {
    let next = store.live_dates(p.id, false).into_iter().find(|d| d.starts_at >= now);
    Project {
        id: p.id,
        name: p.name.clone(),
        description: Some(p.description.clone()),
        organization_slug: Some(slug.to_owned()),
        anytime: p.anytime,
        active: Some(p.active),
        published: Some(p.published),
        privacy: Some(p.privacy.clone()),
        allow_guests: Some(p.allow_guests),
        age_limit: Some(p.age_limit),
        timezone: Some(p.timezone.clone()),
        created_at: Some(at(p.created_at)),
        updated_at: at(p.updated_at),
        next_date: next.map(|d| DateRef { id: d.id, starts_at: Some(at(d.starts_at)) }),
    }
}

pub(crate) fn date(store: &Store, d: &SimDate) -> ProjectDate {
    let project = store.project(d.project);
    ProjectDate {
        id: d.id,
        project_id: Some(d.project),
        project_name: project.map(|p| p.name.clone()),
        starts_at: Some(at(d.starts_at)),
        ends_at: d.ends_at.map(at),
        timezone: project.map(|p| p.timezone.clone()),
        status: Some("active".into()),
        anytime: d.anytime,
        capacity: d.capacity,
        taken: u32::try_from(store.taken(d.id)).ok(),
    }
}
