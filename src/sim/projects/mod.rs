//! Projects, Project Dates and participations in the simulator, per the
//! contract of vomo-api.md §12.7 (P1–P21): the store and its change
//! semantics, the VOMO read routes, the admin hooks, deterministic seeding,
//! the background participation mutator and the ground truth. Every
//! assumption the docs leave open is a knob in [`ProjectKnobs`].

pub(crate) mod admin;
pub(crate) mod api;
pub(crate) mod control;
pub mod knobs;
pub(crate) mod mutator;
pub mod ops;
mod render;
pub mod seed;
pub mod store;
pub mod truth;
pub mod tz;

pub use knobs::{
    AnytimeDates, AnytimeDefault, MutationKind, MutationWeights, MutatorSettings, ProjectKnobs, ProjectSeed,
    RemovedParticipations, TodayTz,
};
pub use ops::{ActionArgs, NewDate, ParticipationAction, ParticipationFields, ProjectFields};
pub use seed::SeedReport;
pub use truth::{ParticipationTruth, ProjectTruth};
