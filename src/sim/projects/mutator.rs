//! Random participation changes (P18's "random" hooks) and the background
//! mutator that makes them at a steady rate in every org with Projects
//! (P19). Each change goes through [`super::ops`], so it has exactly the
//! semantics of the explicit admin hooks. The mutator pauses together with
//! the user edit stream.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::knobs::{MutationKind, MutatorSettings};
use super::ops::{self, ActionArgs, NewDate, ParticipationAction, ProjectFields};
use super::store::SimParticipation;
use crate::domain::{DateId, ProjectId};
use crate::sim::model::{OrderMode, OrgId, UserId, UserQuery};
use crate::sim::{Shared, SimState};

const TICK: Duration = Duration::from_millis(100);
/// At most this many changes per org per tick, however high the rate: a
/// mistyped rate must not freeze the simulator under its lock.
const MAX_PER_TICK: f64 = 1_000.0;
const DAY: i64 = 86_400;

/// The mutator's settings and its own random stream.
pub(crate) struct MutatorState {
    pub settings: MutatorSettings,
    rng: StdRng,
    /// Fractional changes carried to the next tick.
    credit: f64,
}

impl Default for MutatorState {
    fn default() -> Self {
        Self { settings: MutatorSettings::default(), rng: StdRng::seed_from_u64(0), credit: 0.0 }
    }
}

impl MutatorState {
    /// New settings restart the random stream, so runs are reproducible.
    pub fn set(&mut self, settings: MutatorSettings) {
        self.rng = StdRng::seed_from_u64(settings.seed);
        self.settings = settings;
        self.credit = 0.0;
    }

    /// A stream split off the mutator's own, for one batch of changes.
    pub fn child_rng(&mut self) -> StdRng {
        StdRng::from_rng(&mut self.rng)
    }
}

/// One change the mutator or the random hook made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeMade {
    pub kind: MutationKind,
    pub project_id: Option<ProjectId>,
    pub project_date_id: Option<DateId>,
    pub user_id: Option<UserId>,
}

/// Runs the background mutator until `cancel`.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(TICK);
    // A stalled tick is not made up in a burst: the rate is an average.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        step(&mut shared.state(), TICK.as_secs_f64());
    }
}

/// One tick: the changes `elapsed` seconds at the configured rate are due.
pub(crate) fn step(state: &mut SimState, elapsed: f64) {
    let rate = state.mutator.settings.per_second;
    if state.mutators_paused || rate.is_nan() || rate <= 0.0 {
        return;
    }
    let due = (state.mutator.credit + rate * elapsed).min(MAX_PER_TICK);
    state.mutator.credit = due.fract();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let count = due.floor() as usize;
    let orgs: Vec<OrgId> = (0..state.world.orgs.len()).filter(|o| state.projects.has_projects(*o)).collect();
    let mut rng = state.mutator.child_rng();
    for _ in 0..count {
        for &org in &orgs {
            let Some(kind) = state.mutator.settings.weights.pick(rng.random()) else { return };
            random_change(state, org, kind, &mut rng);
        }
    }
}

/// One random change of `kind` in `org`; `None` when nothing qualifies
/// (no live date, nobody checked in, …).
pub(crate) fn random_change(
    state: &mut SimState,
    org: OrgId,
    kind: MutationKind,
    rng: &mut StdRng,
) -> Option<ChangeMade> {
    let made =
        |project_id, project_date_id, user_id| ChangeMade { kind, project_id, project_date_id, user_id };
    match kind {
        MutationKind::SignUp => sign_up(state, org, rng).map(|(d, u)| made(None, Some(d), Some(u))),
        MutationKind::ProjectEdit => edit_project(state, org, rng).map(|p| made(Some(p), None, None)),
        MutationKind::DateAdd => add_date(state, org, rng).map(|(p, d)| made(Some(p), Some(d), None)),
        MutationKind::DateDelete => delete_date(state, org, rng).map(|d| made(None, Some(d), None)),
        _ => act_on_participation(state, org, kind, rng).map(|(d, u)| made(None, Some(d), Some(u))),
    }
    .map(|mut change| {
        let date = change.project_date_id.and_then(|d| state.projects.date(d));
        change.project_id = change.project_id.or(date.map(|d| d.project));
        change
    })
}

fn pick<T: Copy>(items: &[T], rng: &mut StdRng) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())])
}

/// Whether `date` belongs to an org of `family` (computed once per change:
/// it walks every org).
fn in_family(state: &SimState, family: &[OrgId], date: DateId) -> bool {
    state.projects.org_of_date(date).is_some_and(|o| family.contains(&o))
}

/// A random member signs up for a random live date (past ones too: "Add
/// Participant" works on past dates).
fn sign_up(state: &mut SimState, org: OrgId, rng: &mut StdRng) -> Option<(DateId, UserId)> {
    let family = state.world.family(org);
    let dates: Vec<DateId> = state
        .projects
        .dates()
        .filter(|d| d.deleted_at.is_none() && in_family(state, &family, d.id))
        .map(|d| d.id)
        .collect();
    let members = state.world.query(org, &UserQuery::default(), OrderMode::Id, rng);
    for _ in 0..10 {
        let (date, user) = (pick(&dates, rng)?, pick(&members[..], rng)?);
        if ops::act(state, date, user, ParticipationAction::SignUp, ActionArgs::default()).is_ok() {
            return Some((date, user));
        }
    }
    None
}

/// Check-in, check-out, hours edit, verification or cancellation of a
/// random participation that can take it.
fn act_on_participation(
    state: &mut SimState,
    org: OrgId,
    kind: MutationKind,
    rng: &mut StdRng,
) -> Option<(DateId, UserId)> {
    let family = state.world.family(org);
    let now = state.now();
    let store = &state.projects;
    let started = |p: &SimParticipation| store.date(p.date).is_some_and(|d| d.anytime || d.starts_at <= now);
    let dated = |p: &SimParticipation| store.date(p.date).is_some_and(|d| !d.anytime);
    let fits = |p: &SimParticipation| match kind {
        MutationKind::CheckIn => dated(p) && started(p) && p.checked_in_at.is_none(),
        MutationKind::CheckOut => dated(p) && p.checked_in_at.is_some() && p.checked_out_at.is_none(),
        MutationKind::HoursEdit => started(p),
        MutationKind::Verify => !p.verified && (p.checked_in_at.is_some() || p.hours > 0),
        _ => true,
    };
    let keys: Vec<(DateId, UserId)> = store
        .all_participations()
        .filter(|p| p.is_live() && in_family(state, &family, p.date) && fits(p))
        .map(|p| (p.date, p.user))
        .collect();
    let (date, user) = pick(&keys, rng)?;
    let (action, args) = action_for(state, kind, date, user, rng);
    ops::act(state, date, user, action, args).ok().map(|()| (date, user))
}

/// The action and its time/hours for `kind`: check-ins near the start,
/// check-outs near the end (never in the future), hours in quarter hours.
fn action_for(
    state: &SimState,
    kind: MutationKind,
    date: DateId,
    user: UserId,
    rng: &mut StdRng,
) -> (ParticipationAction, ActionArgs) {
    let now = state.now();
    let d = state.projects.date(date);
    let part = state.projects.participation(date, user);
    let time = |secs: i64| chrono::DateTime::from_timestamp(secs.min(now), 0);
    match kind {
        MutationKind::CheckIn => {
            let at = d.map_or(now, |d| d.starts_at + rng.random_range(-900..900));
            (ParticipationAction::CheckIn, ActionArgs { at: time(at), hours: None })
        }
        MutationKind::CheckOut => {
            let end = d.and_then(|d| d.ends_at).unwrap_or(now) + rng.random_range(-1_800..1_800);
            let checked_in = part.and_then(|p| p.checked_in_at).unwrap_or(now);
            (
                ParticipationAction::CheckOut,
                ActionArgs { at: time(end.max(checked_in + 60).min(now).max(checked_in)), hours: None },
            )
        }
        MutationKind::HoursEdit => {
            let hours = f64::from(rng.random_range(1..=32_u32)) * 0.25;
            (ParticipationAction::Hours, ActionArgs { at: None, hours: Some(hours) })
        }
        MutationKind::Verify => (ParticipationAction::Verify, ActionArgs::default()),
        _ => (ParticipationAction::Cancel, ActionArgs::default()),
    }
}

fn org_projects(state: &SimState, org: OrgId, dated_only: bool) -> Vec<ProjectId> {
    let family = state.world.family(org);
    state
        .projects
        .projects()
        .filter(|p| family.contains(&p.org) && !(dated_only && p.anytime))
        .map(|p| p.id)
        .collect()
}

fn edit_project(state: &mut SimState, org: OrgId, rng: &mut StdRng) -> Option<ProjectId> {
    let id = pick(&org_projects(state, org, false), rng)?;
    let fields = if rng.random_bool(0.5) {
        ProjectFields {
            description: Some(format!("Updated brief #{}", rng.random_range(0..10_000))),
            ..ProjectFields::default()
        }
    } else {
        ProjectFields { age_limit: Some([0, 13, 16, 18][rng.random_range(0..4)]), ..ProjectFields::default() }
    };
    ops::edit_project(state, id, &fields, true).ok().map(|()| id)
}

fn add_date(state: &mut SimState, org: OrgId, rng: &mut StdRng) -> Option<(ProjectId, DateId)> {
    let project = pick(&org_projects(state, org, true), rng)?;
    let starts = (state.now() + rng.random_range(DAY..30 * DAY)).div_euclid(900) * 900;
    let new = NewDate {
        starts_at: chrono::DateTime::from_timestamp(starts, 0)?,
        ends_at: chrono::DateTime::from_timestamp(starts + 3 * 3_600, 0)?,
        capacity: None,
    };
    ops::add_date(state, project, &new).ok().map(|d| (project, d))
}

fn delete_date(state: &mut SimState, org: OrgId, rng: &mut StdRng) -> Option<DateId> {
    let family = state.world.family(org);
    let dates: Vec<DateId> = state
        .projects
        .dates()
        .filter(|d| d.deleted_at.is_none() && !d.anytime && in_family(state, &family, d.id))
        .map(|d| d.id)
        .collect();
    let date = pick(&dates, rng)?;
    ops::delete_date(state, date).ok().map(|()| date)
}
