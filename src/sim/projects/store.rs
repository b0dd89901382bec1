//! The simulator's Projects, Project Dates and participations, with the
//! indexes the read paths need. Nothing here is ever forgotten: a deleted
//! date keeps its row and a removed participation keeps its fields with a
//! removal mark, so the ground truth (P20) can list everything ever created.
//! Timestamps are whole Unix seconds; hours are hundredths.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::knobs::{ProjectKnobs, RemovedParticipations};
use crate::domain::{DateId, ProjectId};
use crate::sim::model::{OrgId, UserId};

/// First ids per kind: distinct ranges, so a test notices an engine that
/// uses a date id as a Project id.
const FIRST_PROJECT_ID: i64 = 1_001;
const FIRST_DATE_ID: i64 = 100_001;
const FIRST_PARTICIPATION_ID: i64 = 10_000_001;

/// A Project (P4). `dates` lists every date ever added, deleted ones too.
#[derive(Debug, Clone, Serialize)]
pub struct SimProject {
    pub id: ProjectId,
    pub org: OrgId,
    pub name: String,
    pub description: String,
    pub anytime: bool,
    pub active: bool,
    pub published: bool,
    pub privacy: String,
    pub allow_guests: bool,
    pub age_limit: u32,
    pub timezone: String,
    pub locality: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub dates: Vec<DateId>,
}

/// A Project Date (P5); `ends_at` is `None` only for an anytime date.
#[derive(Debug, Clone, Serialize)]
pub struct SimDate {
    pub id: DateId,
    pub project: ProjectId,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub capacity: Option<u32>,
    pub anytime: bool,
    pub deleted_at: Option<i64>,
}

/// Why a participation no longer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// Cancelled or removed by an organiser: hidden, or shown as
    /// `CANCELLED` under `removed_participations=status`.
    Cancelled,
    /// Its date was deleted or its user hard-deleted: hidden everywhere.
    Gone,
}

/// One participation (P6), keyed by (date, user).
#[derive(Debug, Clone, Serialize)]
pub struct SimParticipation {
    pub id: i64,
    pub date: DateId,
    pub user: UserId,
    pub signed_up_at: i64,
    pub checked_in_at: Option<i64>,
    pub checked_out_at: Option<i64>,
    pub hours: i64,
    pub verified: bool,
    pub role: String,
    pub guests: u32,
    pub removal: Option<Removal>,
    /// When any field (or the removal) last changed: the ground truth's
    /// "as of" time.
    pub changed_at: i64,
}

impl SimParticipation {
    pub fn is_live(&self) -> bool {
        self.removal.is_none()
    }

    /// Whether the read paths show it under `mode`.
    pub fn is_shown(&self, mode: RemovedParticipations) -> bool {
        match self.removal {
            None => true,
            Some(Removal::Cancelled) => mode == RemovedParticipations::Status,
            Some(Removal::Gone) => false,
        }
    }
}

/// Everything the simulated VOMO knows about Projects.
#[derive(Debug)]
pub struct Store {
    pub knobs: ProjectKnobs,
    projects: BTreeMap<ProjectId, SimProject>,
    dates: BTreeMap<DateId, SimDate>,
    /// Live dated dates by (`starts_at`, id): `/projects/today` is a range.
    by_start: BTreeSet<(i64, DateId)>,
    parts: BTreeMap<(DateId, UserId), SimParticipation>,
    /// (user, date) of every participation: user detail is a range.
    by_user: BTreeSet<(UserId, DateId)>,
    next_project: i64,
    next_date: i64,
    next_participation: i64,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            knobs: ProjectKnobs::default(),
            projects: BTreeMap::new(),
            dates: BTreeMap::new(),
            by_start: BTreeSet::new(),
            parts: BTreeMap::new(),
            by_user: BTreeSet::new(),
            next_project: FIRST_PROJECT_ID,
            next_date: FIRST_DATE_ID,
            next_participation: FIRST_PARTICIPATION_ID,
        }
    }
}

impl Store {
    pub fn project(&self, id: ProjectId) -> Option<&SimProject> {
        self.projects.get(&id)
    }

    pub fn project_mut(&mut self, id: ProjectId) -> Option<&mut SimProject> {
        self.projects.get_mut(&id)
    }

    /// Every Project, by id.
    pub fn projects(&self) -> impl Iterator<Item = &SimProject> {
        self.projects.values()
    }

    pub fn has_projects(&self, org: OrgId) -> bool {
        self.projects.values().any(|p| p.org == org)
    }

    /// A date that has not been deleted.
    pub fn live_date(&self, id: DateId) -> Option<&SimDate> {
        self.dates.get(&id).filter(|d| d.deleted_at.is_none())
    }

    pub fn date(&self, id: DateId) -> Option<&SimDate> {
        self.dates.get(&id)
    }

    pub fn dates(&self) -> impl Iterator<Item = &SimDate> {
        self.dates.values()
    }

    /// The org owning a date, through its Project.
    pub fn org_of_date(&self, id: DateId) -> Option<OrgId> {
        self.dates.get(&id).and_then(|d| self.projects.get(&d.project)).map(|p| p.org)
    }

    /// Stores a new Project (its id allocated here) and returns the id.
    pub fn insert_project(&mut self, mut project: SimProject) -> ProjectId {
        project.id = self.next_project;
        project.dates.clear();
        self.next_project += 1;
        let id = project.id;
        self.projects.insert(id, project);
        id
    }

    /// Adds a date to `project` (no `updated_at` bump: callers decide).
    pub fn insert_date(
        &mut self,
        project: ProjectId,
        starts_at: i64,
        ends_at: Option<i64>,
        capacity: Option<u32>,
    ) -> Option<DateId> {
        let anytime = self.projects.get(&project)?.anytime;
        let id = self.next_date;
        self.next_date += 1;
        let date = SimDate { id, project, starts_at, ends_at, capacity, anytime, deleted_at: None };
        if !anytime {
            self.by_start.insert((starts_at, id));
        }
        self.dates.insert(id, date);
        self.projects.get_mut(&project)?.dates.push(id);
        Some(id)
    }

    /// Marks a date deleted and its participations gone. False when it is
    /// unknown or already deleted.
    pub fn delete_date(&mut self, id: DateId, now: i64) -> bool {
        let Some(date) = self.dates.get_mut(&id).filter(|d| d.deleted_at.is_none()) else { return false };
        date.deleted_at = Some(now);
        self.by_start.remove(&(date.starts_at, id));
        for part in self.parts.range_mut((id, UserId::MIN)..=(id, UserId::MAX)).map(|(_, p)| p) {
            if part.removal != Some(Removal::Gone) {
                part.removal = Some(Removal::Gone);
                part.changed_at = now;
            }
        }
        true
    }

    /// Live dates of a Project by (`starts_at`, id); the anytime date only
    /// when `with_anytime`.
    pub fn live_dates(&self, project: ProjectId, with_anytime: bool) -> Vec<&SimDate> {
        let Some(p) = self.projects.get(&project) else { return Vec::new() };
        let mut dates: Vec<&SimDate> = p
            .dates
            .iter()
            .filter_map(|id| self.live_date(*id))
            .filter(|d| with_anytime || !d.anytime)
            .collect();
        dates.sort_by_key(|d| (d.starts_at, d.id));
        dates
    }

    /// Live dated dates with `starts_at` in `[from, to)`, by start then id.
    pub fn dates_starting(&self, from: i64, to: i64) -> impl Iterator<Item = &SimDate> {
        self.by_start.range((from, DateId::MIN)..(to, DateId::MIN)).filter_map(|(_, id)| self.dates.get(id))
    }

    pub fn participation(&self, date: DateId, user: UserId) -> Option<&SimParticipation> {
        self.parts.get(&(date, user))
    }

    pub fn participation_mut(&mut self, date: DateId, user: UserId) -> Option<&mut SimParticipation> {
        self.parts.get_mut(&(date, user))
    }

    /// Creates the participation for (date, user), or revives the removed
    /// one under that key (at most one per key, P3); the caller fills in the
    /// fields. `None` when it exists and is live.
    pub fn sign_up(&mut self, date: DateId, user: UserId, now: i64) -> Option<&mut SimParticipation> {
        if self.parts.get(&(date, user)).is_some_and(SimParticipation::is_live) {
            return None;
        }
        let id = match self.parts.get(&(date, user)) {
            Some(old) => old.id,
            None => {
                self.next_participation += 1;
                self.next_participation - 1
            }
        };
        let fresh = SimParticipation {
            id,
            date,
            user,
            signed_up_at: now,
            checked_in_at: None,
            checked_out_at: None,
            hours: 0,
            verified: false,
            role: "Volunteer".into(),
            guests: 0,
            removal: None,
            changed_at: now,
        };
        self.by_user.insert((user, date));
        self.parts.insert((date, user), fresh);
        self.parts.get_mut(&(date, user))
    }

    /// Participations of a date, by user id.
    pub fn participants(&self, date: DateId) -> impl Iterator<Item = &SimParticipation> {
        self.parts.range((date, UserId::MIN)..=(date, UserId::MAX)).map(|(_, p)| p)
    }

    /// Participations of a user, by date id.
    pub fn of_user(&self, user: UserId) -> impl Iterator<Item = &SimParticipation> {
        self.by_user
            .range((user, DateId::MIN)..=(user, DateId::MAX))
            .filter_map(|(u, d)| self.parts.get(&(*d, *u)))
    }

    pub fn all_participations(&self) -> impl Iterator<Item = &SimParticipation> {
        self.parts.values()
    }

    /// Live participations of a date (`taken`, P5).
    pub fn taken(&self, date: DateId) -> usize {
        self.participants(date).filter(|p| p.is_live()).count()
    }

    /// A hard-deleted user's participations are gone with them (P16).
    pub fn user_deleted(&mut self, user: UserId, now: i64) {
        let dates: Vec<DateId> =
            self.by_user.range((user, DateId::MIN)..=(user, DateId::MAX)).map(|(_, d)| *d).collect();
        for date in dates {
            if let Some(part) = self.parts.get_mut(&(date, user))
                && part.removal != Some(Removal::Gone)
            {
                part.removal = Some(Removal::Gone);
                part.changed_at = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(anytime: bool) -> SimProject {
        SimProject {
            id: 0,
            org: 0,
            name: "Beach clean-up".into(),
            description: String::new(),
            anytime,
            active: true,
            published: true,
            privacy: "PUBLIC".into(),
            allow_guests: true,
            age_limit: 0,
            timezone: "Etc/UTC".into(),
            locality: String::new(),
            created_at: 100,
            updated_at: 100,
            dates: vec![42],
        }
    }

    #[test]
    fn ids_come_from_distinct_ranges_and_dates_index_by_start() {
        let mut store = Store::default();
        let p = store.insert_project(project(false));
        assert_eq!(p, FIRST_PROJECT_ID);
        assert!(store.project(p).unwrap().dates.is_empty(), "dates are the store's to add");
        let late = store.insert_date(p, 2_000, Some(3_000), None).unwrap();
        let early = store.insert_date(p, 1_000, Some(1_500), Some(4)).unwrap();
        assert_eq!(late, FIRST_DATE_ID);
        let order: Vec<DateId> = store.live_dates(p, true).iter().map(|d| d.id).collect();
        assert_eq!(order, [early, late]);
        assert_eq!(store.dates_starting(0, 1_999).map(|d| d.id).collect::<Vec<_>>(), [early]);
        assert!(store.delete_date(early, 5));
        assert!(!store.delete_date(early, 6), "deleting twice is refused");
        assert_eq!(store.dates_starting(0, 10_000).count(), 1);
        assert!(store.insert_date(999, 0, None, None).is_none());
    }

    #[test]
    fn one_participation_per_key_revived_after_removal() {
        let mut store = Store::default();
        let p = store.insert_project(project(false));
        let d = store.insert_date(p, 1_000, Some(2_000), None).unwrap();
        let id = store.sign_up(d, 7, 10).unwrap().id;
        assert!(store.sign_up(d, 7, 11).is_none(), "a live key is not signed up twice");
        store.participation_mut(d, 7).unwrap().removal = Some(Removal::Cancelled);
        assert_eq!(store.taken(d), 0);
        let again = store.sign_up(d, 7, 12).unwrap();
        assert_eq!((again.id, again.signed_up_at), (id, 12));
        assert_eq!(store.of_user(7).count(), 1);
        store.user_deleted(7, 20);
        let gone = store.participation(d, 7).unwrap();
        assert_eq!((gone.removal, gone.changed_at), (Some(Removal::Gone), 20));
        assert!(!gone.is_shown(RemovedParticipations::Status));
    }

    #[test]
    fn deleting_a_date_removes_its_participations() {
        let mut store = Store::default();
        let p = store.insert_project(project(false));
        let d = store.insert_date(p, 1_000, Some(2_000), None).unwrap();
        store.sign_up(d, 1, 10);
        store.sign_up(d, 2, 10);
        store.delete_date(d, 30);
        assert!(store.participants(d).all(|p| p.removal == Some(Removal::Gone) && p.changed_at == 30));
        assert!(store.live_date(d).is_none() && store.date(d).is_some());
    }
}
