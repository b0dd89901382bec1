//! The settings of the simulated Projects surface: one switch for every
//! assumption vomo-api.md §12.7 names (so tests cover each reading of a spec
//! gap), the background participation mutator (P19) and project seeding
//! (P21). All default to the contract's first reading.

use serde::{Deserialize, Serialize};

/// The assumption knobs of §12.7, set as a whole through the admin surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectKnobs {
    /// P6: `hours` as `"2.50"` and `verified` as 0/1 (webhook style).
    pub participation_strings: bool,
    /// P7: an anytime Project's date is in `all_dates`, or reachable only by
    /// ids seen in user detail.
    pub anytime_dates: AnytimeDates,
    /// P9: what `GET /projects` without `anytime` returns.
    pub anytime_default: AnytimeDefault,
    /// P11: which calendar day "today" is.
    pub today_tz: TodayTz,
    /// P11: `/projects/today` in the §10 envelope (15 per page) or bare
    /// `{data: [...]}` with every date at once.
    pub today_paginated: bool,
    /// P15: adding or deleting a date moves the Project's `updated_at`.
    pub date_change_bumps_project: bool,
    /// P16: a cancelled participation vanishes, or stays as `CANCELLED`.
    pub removed_participations: RemovedParticipations,
}

impl Default for ProjectKnobs {
    fn default() -> Self {
        Self {
            participation_strings: false,
            anytime_dates: AnytimeDates::Listed,
            anytime_default: AnytimeDefault::Include,
            today_tz: TodayTz::Utc,
            today_paginated: true,
            date_change_bumps_project: true,
            removed_participations: RemovedParticipations::Vanish,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnytimeDates {
    #[default]
    Listed,
    Hidden,
}

/// `include`: no `anytime` parameter lists dated and anytime Projects;
/// `exclude`: dated ones only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnytimeDefault {
    #[default]
    Include,
    Exclude,
}

/// `utc`: the UTC calendar day; `project`: each date's own timezone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TodayTz {
    #[default]
    Utc,
    Project,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedParticipations {
    #[default]
    Vanish,
    Status,
}

/// One kind of change the participation mutator (and the admin "random"
/// hook) makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    SignUp,
    CheckIn,
    CheckOut,
    HoursEdit,
    Verify,
    Cancel,
    ProjectEdit,
    DateAdd,
    DateDelete,
}

impl MutationKind {
    pub const ALL: [Self; 9] = [
        Self::SignUp,
        Self::CheckIn,
        Self::CheckOut,
        Self::HoursEdit,
        Self::Verify,
        Self::Cancel,
        Self::ProjectEdit,
        Self::DateAdd,
        Self::DateDelete,
    ];
}

/// Relative weights of the mutator's change kinds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MutationWeights {
    pub sign_up: f64,
    pub check_in: f64,
    pub check_out: f64,
    pub hours_edit: f64,
    pub verify: f64,
    pub cancel: f64,
    pub project_edit: f64,
    pub date_add: f64,
    pub date_delete: f64,
}

impl Default for MutationWeights {
    /// Mostly the late edits of past dates the help centre describes (hours,
    /// verification), some sign-ups and cancellations, rare schedule changes;
    /// deleting dates is destructive, so off unless asked for.
    fn default() -> Self {
        Self {
            sign_up: 4.0,
            check_in: 3.0,
            check_out: 3.0,
            hours_edit: 2.0,
            verify: 2.0,
            cancel: 1.0,
            project_edit: 0.5,
            date_add: 0.5,
            date_delete: 0.0,
        }
    }
}

impl MutationWeights {
    pub fn weight(&self, kind: MutationKind) -> f64 {
        let w = match kind {
            MutationKind::SignUp => self.sign_up,
            MutationKind::CheckIn => self.check_in,
            MutationKind::CheckOut => self.check_out,
            MutationKind::HoursEdit => self.hours_edit,
            MutationKind::Verify => self.verify,
            MutationKind::Cancel => self.cancel,
            MutationKind::ProjectEdit => self.project_edit,
            MutationKind::DateAdd => self.date_add,
            MutationKind::DateDelete => self.date_delete,
        };
        if w.is_finite() { w.max(0.0) } else { 0.0 }
    }

    /// The kind at `roll` ∈ [0, 1) of the cumulative weights; `None` when
    /// every weight is zero.
    pub fn pick(&self, roll: f64) -> Option<MutationKind> {
        let total: f64 = MutationKind::ALL.iter().map(|k| self.weight(*k)).sum();
        if total <= 0.0 {
            return None;
        }
        let mut left = roll * total;
        for kind in MutationKind::ALL {
            left -= self.weight(kind);
            if left < 0.0 {
                return Some(kind);
            }
        }
        MutationKind::ALL.into_iter().rev().find(|k| self.weight(*k) > 0.0)
    }
}

/// The background participation mutator (P19): `per_second` changes in
/// every organisation that has Projects, kinds drawn by `weights`, every
/// choice reproducible from `seed`. Off at 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MutatorSettings {
    pub seed: u64,
    pub per_second: f64,
    pub weights: MutationWeights,
}

/// How many Projects to seed into an organisation (P21) and how big they
/// are on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSeed {
    pub projects: usize,
    /// Dates per dated Project, on average.
    pub dates_per_project: usize,
    /// Participations per date, on average (bounded by the org's members).
    pub participants_per_date: usize,
}

impl Default for ProjectSeed {
    fn default() -> Self {
        Self { projects: 0, dates_per_project: 8, participants_per_date: 5 }
    }
}

impl ProjectSeed {
    pub fn projects(projects: usize) -> Self {
        Self { projects, ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_default_to_the_first_reading_and_refuse_typos() {
        let knobs: ProjectKnobs = serde_json::from_str(r#"{"today_tz":"project"}"#).unwrap();
        assert_eq!(knobs.today_tz, TodayTz::Project);
        assert!(knobs.today_paginated && knobs.date_change_bumps_project);
        assert!(serde_json::from_str::<ProjectKnobs>(r#"{"today_paginate":false}"#).is_err());
        assert!(serde_json::from_str::<ProjectKnobs>(r#"{"anytime_dates":"sometimes"}"#).is_err());
    }

    #[test]
    fn weights_pick_by_share() {
        let only_verify = MutationWeights {
            sign_up: 0.0,
            check_in: 0.0,
            check_out: 0.0,
            hours_edit: 0.0,
            verify: 2.0,
            cancel: 0.0,
            project_edit: 0.0,
            date_add: 0.0,
            date_delete: f64::NAN,
        };
        assert_eq!(only_verify.pick(0.0), Some(MutationKind::Verify));
        assert_eq!(only_verify.pick(0.999), Some(MutationKind::Verify));
        let none = MutationWeights { verify: 0.0, ..only_verify };
        assert_eq!(none.pick(0.5), None);
        let defaults = MutationWeights::default();
        assert_eq!(defaults.pick(0.0), Some(MutationKind::SignUp));
        assert_ne!(defaults.pick(0.99), Some(MutationKind::DateDelete));
    }
}
