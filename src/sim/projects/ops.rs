//! The changes behind the admin hooks (P18) with the change semantics of
//! P14–P17: Project edits and (by `date_change_bumps_project`) date changes
//! move the Project's `updated_at`; no participation change moves a user's
//! or a Project's; check-out computes hours. Each runs under the state lock,
//! so it is atomic with respect to API reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::store::{Removal, SimParticipation, SimProject};
use super::tz;
use crate::domain::{DateId, Hours, ProjectId};
use crate::sim::model::{OrgId, UserId};
use crate::sim::{SimError, SimState};

/// Project fields for a create or an edit; absent fields are defaulted
/// (create) or kept (edit). `anytime` and `timezone` are fixed at creation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub anytime: Option<bool>,
    pub active: Option<bool>,
    pub published: Option<bool>,
    pub privacy: Option<String>,
    pub allow_guests: Option<bool>,
    pub age_limit: Option<u32>,
    pub timezone: Option<String>,
}

/// A date to add to a dated Project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDate {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub capacity: Option<u32>,
}

/// Explicit participation fields for the add/edit hook. Absent fields are
/// defaulted (add) or kept (edit); `null` clears a nullable time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParticipationFields {
    pub signed_up_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<Option<DateTime<Utc>>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub checked_out_at: Option<Option<DateTime<Utc>>>,
    pub hours: Option<f64>,
    pub verified: Option<bool>,
    pub role: Option<String>,
    pub guests: Option<u32>,
}

/// A present field, `null` included (absent ones take the default, `None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What an organiser or volunteer does to one participation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParticipationAction {
    SignUp,
    CheckIn,
    /// Sets hours = out − in unless hours are given.
    CheckOut,
    /// An hours edit: hours alone change.
    Hours,
    Verify,
    Cancel,
}

/// When an action happens (default: now) and, for check-out and hours
/// edits, the hours.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionArgs {
    pub at: Option<DateTime<Utc>>,
    pub hours: Option<f64>,
}

fn invalid(text: impl Into<String>) -> SimError {
    SimError::Invalid(text.into())
}

fn hours_of(hours: f64) -> Result<i64, SimError> {
    Hours::from_f64(hours)
        .map(Hours::hundredths)
        .ok_or_else(|| invalid("hours must be a non-negative number"))
}

/// Creates a Project in `org`; an anytime one gets its single date (P7).
pub(crate) fn create_project(
    state: &mut SimState,
    org: OrgId,
    fields: &ProjectFields,
) -> Result<ProjectId, SimError> {
    let zone = fields.timezone.clone().unwrap_or_else(|| "America/Phoenix".into());
    if tz::offset_of(&zone).is_none() {
        return Err(invalid(format!("unknown timezone {zone:?}; the simulator knows {:?}", zone_names())));
    }
    let now = state.now();
    let anytime = fields.anytime.unwrap_or(false);
    let project = SimProject {
        id: 0,
        org,
        name: fields.name.clone().unwrap_or_else(|| "New project".into()),
        description: fields.description.clone().unwrap_or_default(),
        anytime,
        active: fields.active.unwrap_or(true),
        published: fields.published.unwrap_or(true),
        privacy: fields.privacy.clone().unwrap_or_else(|| "PUBLIC".into()),
        allow_guests: fields.allow_guests.unwrap_or(false),
        age_limit: fields.age_limit.unwrap_or(0),
        locality: tz::locality_of(&zone).to_owned(),
        timezone: zone,
        created_at: now,
        updated_at: now,
        dates: Vec::new(),
    };
    let id = state.projects.insert_project(project);
    if anytime {
        state.projects.insert_date(id, now, None, None);
    }
    Ok(id)
}

fn zone_names() -> Vec<&'static str> {
    tz::TIMEZONES.iter().map(|(name, _, _)| *name).collect()
}

/// Edits a Project; with `touch`, `updated_at` = now (P15), without, a
/// change polling cannot see.
pub(crate) fn edit_project(
    state: &mut SimState,
    id: ProjectId,
    fields: &ProjectFields,
    touch: bool,
) -> Result<(), SimError> {
    if fields.anytime.is_some() || fields.timezone.is_some() {
        return Err(invalid("anytime and timezone are fixed when a project is created"));
    }
    let now = state.now();
    let project = state.projects.project_mut(id).ok_or(SimError::UnknownProject(id))?;
    let f = fields.clone();
    let set = |slot: &mut String, value: Option<String>| value.into_iter().for_each(|v| *slot = v);
    set(&mut project.name, f.name);
    set(&mut project.description, f.description);
    set(&mut project.privacy, f.privacy);
    project.active = f.active.unwrap_or(project.active);
    project.published = f.published.unwrap_or(project.published);
    project.allow_guests = f.allow_guests.unwrap_or(project.allow_guests);
    project.age_limit = f.age_limit.unwrap_or(project.age_limit);
    if touch {
        project.updated_at = now.max(project.updated_at);
    }
    Ok(())
}

/// Moves a Project's `updated_at` for a change to its schedule, if the
/// `date_change_bumps_project` reading is on.
fn bump_for_dates(state: &mut SimState, project: ProjectId) {
    let now = state.now();
    if state.projects.knobs.date_change_bumps_project
        && let Some(p) = state.projects.project_mut(project)
    {
        p.updated_at = now.max(p.updated_at);
    }
}

pub(crate) fn add_date(state: &mut SimState, project: ProjectId, date: &NewDate) -> Result<DateId, SimError> {
    let p = state.projects.project(project).ok_or(SimError::UnknownProject(project))?;
    if p.anytime {
        return Err(invalid("an anytime project has exactly one date"));
    }
    let (starts, ends) = (date.starts_at.timestamp(), date.ends_at.timestamp());
    if ends < starts {
        return Err(invalid("ends_at is before starts_at"));
    }
    let id = state
        .projects
        .insert_date(project, starts, Some(ends), date.capacity)
        .ok_or(SimError::UnknownProject(project))?;
    bump_for_dates(state, project);
    Ok(id)
}

/// Deletes a date: 404 from then on, its participations gone (P12, P16).
pub(crate) fn delete_date(state: &mut SimState, id: DateId) -> Result<(), SimError> {
    let now = state.now();
    let project = state.projects.live_date(id).map(|d| d.project).ok_or(SimError::UnknownDate(id))?;
    state.projects.delete_date(id, now);
    bump_for_dates(state, project);
    Ok(())
}

/// Checks that `user` may take part in `date`: the date is live and the user
/// a member of the date's org family.
fn check_key(state: &SimState, date: DateId, user: UserId) -> Result<(), SimError> {
    let org = state
        .projects
        .live_date(date)
        .and(state.projects.org_of_date(date))
        .ok_or(SimError::UnknownDate(date))?;
    let member = state.world.user(user).is_some_and(|u| state.world.visible_to(u, org));
    if member { Ok(()) } else { Err(SimError::UnknownUser(user)) }
}

/// Adds (or revives) or edits the participation (date, user) with explicit
/// fields. Returns true when it was created.
pub(crate) fn put_participation(
    state: &mut SimState,
    date: DateId,
    user: UserId,
    fields: &ParticipationFields,
) -> Result<bool, SimError> {
    check_key(state, date, user)?;
    let hours = fields.hours.map(hours_of).transpose()?;
    let now = state.now();
    let created = state.projects.sign_up(date, user, now).is_some();
    let part =
        state.projects.participation_mut(date, user).ok_or(SimError::UnknownParticipation(date, user))?;
    let f = fields.clone();
    part.signed_up_at = f.signed_up_at.map_or(part.signed_up_at, |at| at.timestamp());
    if let Some(at) = f.checked_in_at {
        part.checked_in_at = at.map(|t| t.timestamp());
    }
    if let Some(at) = f.checked_out_at {
        part.checked_out_at = at.map(|t| t.timestamp());
    }
    part.hours = hours.unwrap_or(part.hours);
    part.verified = f.verified.unwrap_or(part.verified);
    part.role = f.role.unwrap_or_else(|| part.role.clone());
    part.guests = f.guests.unwrap_or(part.guests);
    part.changed_at = now;
    Ok(created)
}

/// Cancels a live participation (P16).
pub(crate) fn remove_participation(state: &mut SimState, date: DateId, user: UserId) -> Result<(), SimError> {
    let now = state.now();
    let part = live_part(state, date, user)?;
    part.removal = Some(Removal::Cancelled);
    part.changed_at = now;
    Ok(())
}

fn live_part(state: &mut SimState, date: DateId, user: UserId) -> Result<&mut SimParticipation, SimError> {
    state
        .projects
        .participation_mut(date, user)
        .filter(|p| p.is_live())
        .ok_or(SimError::UnknownParticipation(date, user))
}

/// One action on (date, user) with the semantics of P17.
pub(crate) fn act(
    state: &mut SimState,
    date: DateId,
    user: UserId,
    action: ParticipationAction,
    args: ActionArgs,
) -> Result<(), SimError> {
    let now = state.now();
    let at = args.at.map_or(now, |t| t.timestamp());
    let hours = args.hours.map(hours_of).transpose()?;
    match action {
        ParticipationAction::SignUp => {
            check_key(state, date, user)?;
            let part = state.projects.sign_up(date, user, now).ok_or_else(|| {
                SimError::Conflict(format!("user {user} is already signed up for date {date}"))
            })?;
            part.signed_up_at = at;
            return Ok(());
        }
        ParticipationAction::Cancel => return remove_participation(state, date, user),
        _ => {}
    }
    let part = live_part(state, date, user)?;
    match action {
        ParticipationAction::CheckIn => part.checked_in_at = Some(at),
        ParticipationAction::CheckOut => check_out(part, at, hours)?,
        ParticipationAction::Hours => {
            part.hours = hours.ok_or_else(|| invalid("an hours edit needs hours"))?
        }
        ParticipationAction::Verify => part.verified = true,
        ParticipationAction::SignUp | ParticipationAction::Cancel => {}
    }
    part.changed_at = now;
    Ok(())
}

/// Check-out at `at`: hours = out − in, to two decimals (P17), unless given.
fn check_out(part: &mut SimParticipation, at: i64, hours: Option<i64>) -> Result<(), SimError> {
    let checked_in = part.checked_in_at.ok_or_else(|| invalid("cannot check out before checking in"))?;
    if at < checked_in {
        return Err(invalid("check-out is before check-in"));
    }
    part.checked_out_at = Some(at);
    part.hours = hours.unwrap_or_else(|| hours_between(checked_in, at));
    Ok(())
}

/// Hours between two instants in hundredths, half up.
pub(crate) fn hours_between(from: i64, to: i64) -> i64 {
    ((to - from).max(0) * 100 + 1800) / 3600
}
