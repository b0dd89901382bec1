//! The in-process twins of the Projects admin hooks on [`SimControl`]:
//! seeding, Project and date changes, participation changes, the knobs, the
//! mutator and the ground truth. Tests call these; the admin routes call
//! them too, so both surfaces behave the same.

use super::knobs::{MutationKind, MutatorSettings, ProjectKnobs, ProjectSeed};
use super::mutator::{self, ChangeMade};
use super::ops::{self, ActionArgs, NewDate, ParticipationAction, ParticipationFields, ProjectFields};
use super::seed::{self, SeedReport};
use super::truth::{self, ParticipationTruth, ProjectTruth};
use crate::domain::{DateId, ProjectId};
use crate::sim::model::UserId;
use crate::sim::{SimControl, SimError, SimState};

/// Seeds Projects into `slug` at `anchor` (P21), drawing participants from
/// its members.
pub(crate) fn seed_into(
    state: &mut SimState,
    slug: &str,
    spec: ProjectSeed,
    seed: u64,
    anchor: i64,
) -> Result<SeedReport, SimError> {
    let org = state.org(slug)?;
    let members: Vec<UserId> = state.world.users_of(org).iter().map(|u| u.id).collect();
    Ok(seed::seed_projects(&mut state.projects, org, &members, spec, seed, anchor))
}

impl SimControl {
    /// Seeds Projects into `slug` relative to the simulator's clock now.
    pub fn seed_projects(&self, slug: &str, spec: ProjectSeed, seed: u64) -> Result<SeedReport, SimError> {
        let mut state = self.shared.state();
        let now = state.now();
        seed_into(&mut state, slug, spec, seed, now)
    }

    /// Seeds Projects relative to `anchor` (Unix seconds): the same seed and
    /// anchor give the same Projects, dates and participations.
    pub fn seed_projects_at(
        &self,
        slug: &str,
        spec: ProjectSeed,
        seed: u64,
        anchor: i64,
    ) -> Result<SeedReport, SimError> {
        seed_into(&mut self.shared.state(), slug, spec, seed, anchor)
    }

    pub fn create_project(&self, slug: &str, fields: &ProjectFields) -> Result<ProjectId, SimError> {
        let mut state = self.shared.state();
        let org = state.org(slug)?;
        ops::create_project(&mut state, org, fields)
    }

    /// Edits a Project; `touch` false leaves `updated_at` alone.
    pub fn edit_project(&self, id: ProjectId, fields: &ProjectFields, touch: bool) -> Result<(), SimError> {
        ops::edit_project(&mut self.shared.state(), id, fields, touch)
    }

    pub fn add_date(&self, project: ProjectId, date: &NewDate) -> Result<DateId, SimError> {
        ops::add_date(&mut self.shared.state(), project, date)
    }

    pub fn delete_date(&self, id: DateId) -> Result<(), SimError> {
        ops::delete_date(&mut self.shared.state(), id)
    }

    /// Adds or edits (date, user) with explicit fields; true when created.
    pub fn put_participation(
        &self,
        date: DateId,
        user: UserId,
        fields: &ParticipationFields,
    ) -> Result<bool, SimError> {
        ops::put_participation(&mut self.shared.state(), date, user, fields)
    }

    pub fn remove_participation(&self, date: DateId, user: UserId) -> Result<(), SimError> {
        ops::remove_participation(&mut self.shared.state(), date, user)
    }

    pub fn participation_action(
        &self,
        date: DateId,
        user: UserId,
        action: ParticipationAction,
        args: ActionArgs,
    ) -> Result<(), SimError> {
        ops::act(&mut self.shared.state(), date, user, action, args)
    }

    /// One random change of `kind` in `slug` (from the mutator's stream);
    /// `None` when nothing qualifies.
    pub fn random_participation_change(
        &self,
        slug: &str,
        kind: MutationKind,
    ) -> Result<Option<ChangeMade>, SimError> {
        let mut state = self.shared.state();
        let org = state.org(slug)?;
        let mut rng = state.mutator.child_rng();
        Ok(mutator::random_change(&mut state, org, kind, &mut rng))
    }

    pub fn project_knobs(&self) -> ProjectKnobs {
        self.shared.state().projects.knobs
    }

    pub fn set_project_knobs(&self, knobs: ProjectKnobs) {
        self.shared.state().projects.knobs = knobs;
    }

    pub fn participation_mutator(&self) -> MutatorSettings {
        self.shared.state().mutator.settings
    }

    /// New mutator settings (restarting its random stream from their seed).
    pub fn set_participation_mutator(&self, settings: MutatorSettings) {
        self.shared.state().mutator.set(settings);
    }

    /// Pauses or resumes both background mutators (user edits and
    /// participation changes) together.
    pub fn pause_mutators(&self, paused: bool) {
        self.shared.state().mutators_paused = paused;
    }

    pub fn mutators_paused(&self) -> bool {
        self.shared.state().mutators_paused
    }

    /// Every participation `slug`'s family ever had, removed ones included (P20).
    pub fn participation_truth(&self, slug: &str) -> Result<Vec<ParticipationTruth>, SimError> {
        let state = self.shared.state();
        let org = state.org(slug)?;
        Ok(truth::participations(&state, org))
    }

    /// Every Project of `slug`'s family with all its dates, deleted ones marked.
    pub fn project_truth(&self, slug: &str) -> Result<Vec<ProjectTruth>, SimError> {
        let state = self.shared.state();
        let org = state.org(slug)?;
        Ok(truth::projects(&state, org))
    }
}
