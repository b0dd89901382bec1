//! The HubSpot simulator's admin surface: its own port and its own Bearer
//! secret, so no HubSpot token can reach it. Issues tokens with scopes,
//! seeds and lists contacts (live, archived, GDPR-deleted), sets limits and
//! faults, and reports request statistics. Every route has a twin method on
//! [`super::HubspotControl`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{HubspotControl, HubspotFaults, Limits, Shared};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/admin/tokens", post(create_token))
        .route("/admin/tokens/{token}", delete(revoke_token))
        .route("/admin/contacts", get(contacts).post(seed_contact))
        .route("/admin/archived", get(archived))
        .route("/admin/gdpr-deleted", get(gdpr_deleted))
        .route("/admin/limits", get(get_limits).put(put_limits))
        .route("/admin/limits/usage", delete(reset_usage))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/stats", get(stats).delete(reset_stats))
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

fn control(shared: &Arc<Shared>) -> HubspotControl {
    HubspotControl { shared: Arc::clone(shared) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    app: String,
    scopes: Vec<String>,
}

async fn create_token(State(shared): State<Arc<Shared>>, Json(body): Json<NewToken>) -> Response {
    let scopes: Vec<&str> = body.scopes.iter().map(String::as_str).collect();
    let token = control(&shared).create_token(&body.app, &scopes);
    (StatusCode::CREATED, Json(json!({"token": token, "app": body.app, "scopes": body.scopes})))
        .into_response()
}

async fn revoke_token(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> StatusCode {
    if control(&shared).revoke_token(&token) { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewContact {
    properties: BTreeMap<String, String>,
}

async fn seed_contact(State(shared): State<Arc<Shared>>, Json(body): Json<NewContact>) -> Response {
    let pairs: Vec<(&str, &str)> = body.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    match control(&shared).seed_contact(&pairs) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id.to_string()}))).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": e.to_string()}))).into_response(),
    }
}

async fn contacts(State(shared): State<Arc<Shared>>) -> Response {
    Json(control(&shared).contacts()).into_response()
}

async fn archived(State(shared): State<Arc<Shared>>) -> Response {
    Json(control(&shared).archived()).into_response()
}

async fn gdpr_deleted(State(shared): State<Arc<Shared>>) -> Response {
    Json(control(&shared).gdpr_deleted()).into_response()
}

async fn get_limits(State(shared): State<Arc<Shared>>) -> Json<Limits> {
    Json(control(&shared).limits())
}

async fn put_limits(State(shared): State<Arc<Shared>>, Json(limits): Json<Limits>) -> StatusCode {
    control(&shared).set_limits(limits);
    StatusCode::NO_CONTENT
}

async fn reset_usage(State(shared): State<Arc<Shared>>) -> StatusCode {
    control(&shared).reset_usage();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<HubspotFaults> {
    Json(control(&shared).faults())
}

async fn put_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<HubspotFaults>) -> StatusCode {
    control(&shared).set_faults(faults);
    StatusCode::NO_CONTENT
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(control(&shared).stats()).into_response()
}

async fn reset_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    control(&shared).reset_stats();
    StatusCode::NO_CONTENT
}
