//! The Projects part of the admin surface (P18–P20): seeding, Project and
//! date changes, participation changes (explicit fields, one action, or a
//! random change), the §12.7 knobs, the mutator and the ground truth. Merged
//! into the admin router, so it needs the admin secret like every admin route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::knobs::{MutationKind, MutatorSettings, ProjectKnobs, ProjectSeed};
use super::ops::{ActionArgs, NewDate, ParticipationAction, ParticipationFields, ProjectFields};
use crate::domain::{DateId, ProjectId};
use crate::sim::model::UserId;
use crate::sim::{Shared, SimControl, SimError};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/orgs/{slug}/projects", get(project_truth).post(create_project))
        .route("/admin/orgs/{slug}/projects/seed", post(seed))
        .route("/admin/orgs/{slug}/participations", get(participation_truth))
        .route("/admin/orgs/{slug}/participations/random", post(random_change))
        .route("/admin/projects/{id}", axum::routing::patch(edit_project))
        .route("/admin/projects/{id}/dates", post(add_date))
        .route("/admin/dates/{id}", delete(delete_date))
        .route("/admin/participations/{date}/{user}", put(put_participation).delete(remove_participation))
        .route("/admin/participations/{date}/{user}/{action}", post(act))
        .route("/admin/project-knobs", get(get_knobs).put(put_knobs))
        .route("/admin/participation-mutator", get(get_mutator).put(put_mutator))
        .route("/admin/mutators", put(put_paused))
}

fn control(shared: &Arc<Shared>) -> SimControl {
    SimControl { shared: Arc::clone(shared) }
}

/// A seeding request. Written out rather than flattening [`ProjectSeed`]:
/// serde enforces `deny_unknown_fields` on neither side of a `flatten`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedBody {
    projects: usize,
    #[serde(default)]
    dates_per_project: Option<usize>,
    #[serde(default)]
    participants_per_date: Option<usize>,
    #[serde(default)]
    seed: u64,
    /// Default: the simulator's clock now.
    #[serde(default)]
    anchor: Option<DateTime<Utc>>,
}

impl SeedBody {
    fn spec(&self) -> ProjectSeed {
        let defaults = ProjectSeed::default();
        ProjectSeed {
            projects: self.projects,
            dates_per_project: self.dates_per_project.unwrap_or(defaults.dates_per_project),
            participants_per_date: self.participants_per_date.unwrap_or(defaults.participants_per_date),
        }
    }
}

async fn seed(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
    Json(body): Json<SeedBody>,
) -> Result<Response, SimError> {
    let sim = control(&shared);
    let report = match body.anchor {
        Some(anchor) => sim.seed_projects_at(&slug, body.spec(), body.seed, anchor.timestamp())?,
        None => sim.seed_projects(&slug, body.spec(), body.seed)?,
    };
    Ok(Json(report).into_response())
}

async fn project_truth(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
) -> Result<Response, SimError> {
    Ok(Json(control(&shared).project_truth(&slug)?).into_response())
}

async fn participation_truth(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
) -> Result<Response, SimError> {
    Ok(Json(control(&shared).participation_truth(&slug)?).into_response())
}

async fn create_project(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
    Json(fields): Json<ProjectFields>,
) -> Result<Response, SimError> {
    let id = control(&shared).create_project(&slug, &fields)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `PATCH /admin/projects/{id}`: Project fields plus `touch` (default true;
/// false changes them without moving `updated_at`). `touch` is taken out
/// before the fields are read, so a typo in a field name is still refused.
async fn edit_project(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<ProjectId>,
    Json(mut body): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<StatusCode, SimError> {
    let touch = match body.remove("touch") {
        None => true,
        Some(value) => {
            value.as_bool().ok_or_else(|| SimError::Invalid("touch must be true or false".into()))?
        }
    };
    let fields: ProjectFields =
        serde_json::from_value(body.into()).map_err(|e| SimError::Invalid(e.to_string()))?;
    control(&shared).edit_project(id, &fields, touch)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_date(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<ProjectId>,
    Json(date): Json<NewDate>,
) -> Result<Response, SimError> {
    let id = control(&shared).add_date(id, &date)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn delete_date(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<DateId>,
) -> Result<StatusCode, SimError> {
    control(&shared).delete_date(id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_participation(
    State(shared): State<Arc<Shared>>,
    Path((date, user)): Path<(DateId, UserId)>,
    Json(fields): Json<ParticipationFields>,
) -> Result<StatusCode, SimError> {
    let created = control(&shared).put_participation(date, user, &fields)?;
    Ok(if created { StatusCode::CREATED } else { StatusCode::OK })
}

async fn remove_participation(
    State(shared): State<Arc<Shared>>,
    Path((date, user)): Path<(DateId, UserId)>,
) -> Result<StatusCode, SimError> {
    control(&shared).remove_participation(date, user)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/{action}` with an optional `{at, hours}` body.
async fn act(
    State(shared): State<Arc<Shared>>,
    Path((date, user, action)): Path<(DateId, UserId, String)>,
    body: Bytes,
) -> Result<StatusCode, SimError> {
    let action: ParticipationAction = serde_json::from_value(json!(action)).map_err(|_| {
        SimError::Invalid(format!(
            "unknown action {action:?}: sign-up, check-in, check-out, hours, verify or cancel"
        ))
    })?;
    let args: ActionArgs = if body.iter().all(u8::is_ascii_whitespace) {
        ActionArgs::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| SimError::Invalid(e.to_string()))?
    };
    control(&shared).participation_action(date, user, action, args)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomBody {
    kind: MutationKind,
}

async fn random_change(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
    Json(body): Json<RandomBody>,
) -> Result<Response, SimError> {
    match control(&shared).random_participation_change(&slug, body.kind)? {
        Some(change) => Ok(Json(change).into_response()),
        None => Err(SimError::Conflict(format!("nothing in {slug} can take a {:?} now", body.kind))),
    }
}

async fn get_knobs(State(shared): State<Arc<Shared>>) -> Json<ProjectKnobs> {
    Json(control(&shared).project_knobs())
}

async fn put_knobs(State(shared): State<Arc<Shared>>, Json(knobs): Json<ProjectKnobs>) -> StatusCode {
    control(&shared).set_project_knobs(knobs);
    StatusCode::NO_CONTENT
}

async fn get_mutator(State(shared): State<Arc<Shared>>) -> Json<MutatorSettings> {
    Json(control(&shared).participation_mutator())
}

async fn put_mutator(State(shared): State<Arc<Shared>>, Json(settings): Json<MutatorSettings>) -> StatusCode {
    control(&shared).set_participation_mutator(settings);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PausedBody {
    paused: bool,
}

async fn put_paused(State(shared): State<Arc<Shared>>, Json(body): Json<PausedBody>) -> StatusCode {
    control(&shared).pause_mutators(body.paused);
    StatusCode::NO_CONTENT
}
