//! The simulator's admin surface: its own port and its own Bearer secret, so a
//! VOMO token can never reach it. Tests and demos use it to seed users, change
//! them behind the engine's back, revoke and issue tokens, and switch faults.
//! The Projects hooks (`super::projects::admin`) are merged in here. Every
//! route has a twin method on [`super::SimHandle`] for in-process use.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::json;

use super::model::UserId;
use super::{Faults, OrgInfo, RateLimit, Shared, SimError, SimState, UserFields, new_user};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/admin/orgs", get(orgs).post(create_org))
        .route("/admin/orgs/{slug}/seed", post(seed))
        .route("/admin/orgs/{slug}/tokens", post(issue_token))
        .route("/admin/orgs/{slug}/api-access", put(put_api_access))
        .route("/admin/orgs/{slug}/users", get(list_users).post(create_user_route))
        .route("/admin/tokens/{token}", delete(revoke_token))
        .route("/admin/users/{id}", axum::routing::patch(update_user_route).delete(delete_user))
        .route("/admin/users/{id}/anonymise", post(anonymise))
        .route("/admin/users/{id}/memberships/{slug}", delete(remove_membership))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/rate-limit", put(put_rate_limit))
        .route("/admin/clock", put(put_clock))
        .route("/admin/stats", get(stats).delete(reset_stats))
        .merge(super::projects::admin::routes())
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), require_secret))
        .with_state(shared)
}

async fn require_secret(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", shared.admin_secret);
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "admin secret required"}))).into_response();
    }
    next.run(request).await
}

fn handle(shared: &Arc<Shared>) -> super::SimControl {
    super::SimControl { shared: Arc::clone(shared) }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::UnknownOrg(_)
            | Self::UnknownUser(_)
            | Self::UnknownProject(_)
            | Self::UnknownDate(_)
            | Self::UnknownParticipation(..) => StatusCode::NOT_FOUND,
            Self::DuplicateOrg(_) | Self::DuplicateEmail(_) | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({"message": self.to_string()}))).into_response()
    }
}

pub(super) fn add_org(state: &mut SimState, slug: &str, parent: Option<&str>) -> Result<String, SimError> {
    if state.world.org_by_slug(slug).is_some() {
        return Err(SimError::DuplicateOrg(slug.to_owned()));
    }
    let parent = parent.map(|p| state.org(p)).transpose()?;
    let org = state.world.add_org(slug, slug, parent);
    Ok(state.new_token(org))
}

pub(super) fn create_user(state: &mut SimState, slug: &str, fields: &UserFields) -> Result<UserId, SimError> {
    let org = state.org(slug)?;
    if let Some(email) = &fields.email
        && state.world.user_by_email(email).is_some()
    {
        return Err(SimError::DuplicateEmail(email.clone()));
    }
    let id = state.world.allocate_id();
    let now = state.now();
    state.world.insert(new_user(id, org, fields, now));
    Ok(id)
}

pub(super) fn update_user(
    state: &mut SimState,
    id: UserId,
    fields: &UserFields,
    touch: bool,
) -> Result<(), SimError> {
    let now = state.now();
    let fields = fields.clone();
    let changed = state.world.modify(id, now, touch, |u| {
        let set = |slot: &mut String, value: Option<String>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut u.first_name, fields.first_name);
        set(&mut u.last_name, fields.last_name);
        set(&mut u.email, fields.email);
        set(&mut u.birthday, fields.birthday);
        set(&mut u.gender, fields.gender);
        set(&mut u.user_status, fields.user_status);
        if fields.address.is_some() {
            u.address = fields.address;
        }
        if fields.phone.is_some() {
            u.phone = fields.phone;
        }
        if let Some(role) = fields.role {
            for m in &mut u.memberships {
                m.role.clone_from(&role);
            }
        }
    });
    changed.then_some(()).ok_or(SimError::UnknownUser(id))
}

pub(super) fn set_faults(state: &mut SimState, faults: Faults) {
    state.rng = rand::rngs::StdRng::seed_from_u64(faults.seed);
    state.storm_left = faults.storm_requests;
    state.faults = faults;
}

async fn orgs(State(shared): State<Arc<Shared>>) -> Json<Vec<OrgInfo>> {
    Json(handle(&shared).orgs())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    slug: String,
    #[serde(default)]
    parent: Option<String>,
}

async fn create_org(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<NewOrg>,
) -> Result<Response, SimError> {
    let token = add_org(&mut shared.state(), &body.slug, body.parent.as_deref())?;
    Ok((StatusCode::CREATED, Json(json!({"slug": body.slug, "token": token}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedBody {
    users: usize,
    #[serde(default)]
    seed: u64,
}

async fn seed(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
    Json(body): Json<SeedBody>,
) -> Result<Json<serde_json::Value>, SimError> {
    let ids = handle(&shared).seed(&slug, body.users, body.seed)?;
    Ok(Json(json!({"created": ids.len(), "first_id": ids.first(), "last_id": ids.last()})))
}

async fn issue_token(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
) -> Result<Response, SimError> {
    let token = handle(&shared).issue_token(&slug)?;
    Ok((StatusCode::CREATED, Json(json!({"token": token}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiAccess {
    enabled: bool,
}

async fn put_api_access(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
    Json(body): Json<ApiAccess>,
) -> Result<StatusCode, SimError> {
    handle(&shared).set_api_access(&slug, body.enabled)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_token(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> StatusCode {
    if handle(&shared).revoke_token(&token) { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}

async fn list_users(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
) -> Result<Json<Vec<crate::domain::User>>, SimError> {
    handle(&shared).users(&slug).map(Json)
}

async fn create_user_route(
    State(shared): State<Arc<Shared>>,
    Path(slug): Path<String>,
    Json(fields): Json<UserFields>,
) -> Result<Response, SimError> {
    let id = create_user(&mut shared.state(), &slug, &fields)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

#[derive(Deserialize)]
struct UpdateBody {
    #[serde(flatten)]
    fields: UserFields,
    /// `false`: change the fields without moving `updated_at`.
    #[serde(default = "yes")]
    touch: bool,
}

fn yes() -> bool {
    true
}

async fn update_user_route(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<UserId>,
    Json(body): Json<UpdateBody>,
) -> Result<StatusCode, SimError> {
    update_user(&mut shared.state(), id, &body.fields, body.touch)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<UserId>,
) -> Result<StatusCode, SimError> {
    handle(&shared).delete_user(id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn anonymise(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<UserId>,
) -> Result<StatusCode, SimError> {
    handle(&shared).anonymise_user(id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_membership(
    State(shared): State<Arc<Shared>>,
    Path((id, slug)): Path<(UserId, String)>,
) -> Result<StatusCode, SimError> {
    handle(&shared).remove_membership(id, &slug)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.state().faults.clone())
}

async fn put_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> StatusCode {
    set_faults(&mut shared.state(), faults);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    /// `"3/s"`, `"60/m"`, or null for no limit.
    limit: Option<String>,
}

async fn put_rate_limit(State(shared): State<Arc<Shared>>, Json(body): Json<RateBody>) -> Response {
    match body.limit.as_deref().map(RateLimit::parse).transpose() {
        Ok(rate) => {
            shared.set_limiter(rate);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": e}))).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    offset_secs: i64,
}

async fn put_clock(State(shared): State<Arc<Shared>>, Json(body): Json<ClockBody>) -> StatusCode {
    shared.state().clock_offset = body.offset_secs;
    StatusCode::NO_CONTENT
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!(shared.state().stats))
}

async fn reset_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.state().stats.clear();
    StatusCode::NO_CONTENT
}
