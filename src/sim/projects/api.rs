//! The simulated Projects surface (P8–P13): `GET /v1/projects` with its
//! filters, `GET /v1/projects/{id}`, `GET /v1/projects/today` and
//! `GET /v1/projects/date/{id}`, plus the participations of user detail.
//! The routes are merged into the users router, so they sit behind the same
//! gate: auth, the per-token limit, faults, the `Date` header and stats.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::DateTime;
use serde_json::{Value, json};

use super::knobs::{AnytimeDefault, TodayTz};
use super::render::View;
use super::store::SimProject;
use super::tz;
use crate::sim::model::{OrgId, UserId};
use crate::sim::wire_out::{self as users_api, Caller, FieldErrors, PER_PAGE};
use crate::sim::{Shared, SimState};

const DAY: i64 = 86_400;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/projects", get(list))
        .route("/v1/projects/today", get(today))
        .route("/v1/projects/date/{id}", get(date_detail))
        .route("/v1/projects/{id}", get(project_detail))
}

/// Parsed `GET /projects` filters (P9); instants are whole seconds.
#[derive(Debug, Default)]
struct ProjectQuery {
    updated_after: Option<i64>,
    active: Option<bool>,
    published: Option<bool>,
    anytime: Option<bool>,
    name_like: Option<String>,
    org_slugs: Option<Vec<String>>,
    dates_after: Option<i64>,
    dates_before: Option<i64>,
}

fn params_of(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn flag(key: &str, value: &str, errors: &mut FieldErrors) -> Option<bool> {
    match value.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => {
            errors.push((key.to_owned(), format!("The {key} field must be true or false.")));
            None
        }
    }
}

fn instant(key: &str, value: &str, errors: &mut FieldErrors) -> Option<i64> {
    match DateTime::parse_from_rfc3339(value.trim()) {
        Ok(at) => Some(at.timestamp()),
        Err(_) => {
            errors.push((key.to_owned(), format!("The {} is not a valid date.", key.replace('_', " "))));
            None
        }
    }
}

fn parse_query(params: &[(String, String)]) -> Result<(ProjectQuery, usize), FieldErrors> {
    let mut q = ProjectQuery::default();
    let mut errors = Vec::new();
    let mut page = 1;
    for (key, value) in params {
        let e = &mut errors;
        match key.as_str() {
            "updated_after" => q.updated_after = instant(key, value, e),
            "dates_after" => q.dates_after = instant(key, value, e),
            "dates_before" => q.dates_before = instant(key, value, e),
            "active" => q.active = flag(key, value, e),
            "published" => q.published = flag(key, value, e),
            "anytime" => q.anytime = flag(key, value, e),
            "name_like" => q.name_like = Some(value.to_lowercase()).filter(|v| !v.is_empty()),
            "org_slug" => q.org_slugs = Some(value.split(',').map(|s| s.trim().to_owned()).collect()),
            "page" => page = value.trim().parse::<usize>().ok().filter(|p| *p > 0).unwrap_or(1),
            // Unknown parameters are ignored (§10.23).
            _ => {}
        }
    }
    if errors.is_empty() { Ok((q, page)) } else { Err(errors) }
}

/// Whether `p` passes every filter of `q` (P9).
fn matches(state: &SimState, p: &SimProject, q: &ProjectQuery) -> bool {
    let anytime_ok = match (q.anytime, state.projects.knobs.anytime_default) {
        (Some(wanted), _) => p.anytime == wanted,
        (None, AnytimeDefault::Include) => true,
        (None, AnytimeDefault::Exclude) => !p.anytime,
    };
    let slug = &state.world.orgs[p.org].slug;
    anytime_ok
        && q.updated_after.is_none_or(|t| p.updated_at >= t)
        && q.active.is_none_or(|a| p.active == a)
        && q.published.is_none_or(|v| p.published == v)
        && q.name_like.as_ref().is_none_or(|n| p.name.to_lowercase().contains(n))
        && q.org_slugs.as_ref().is_none_or(|slugs| slugs.contains(slug))
        && dates_match(state, p, q)
}

/// Some live dated date starts within [`dates_after`, `dates_before`]; anytime
/// Projects never match a date filter.
fn dates_match(state: &SimState, p: &SimProject, q: &ProjectQuery) -> bool {
    if q.dates_after.is_none() && q.dates_before.is_none() {
        return true;
    }
    let (after, before) = (q.dates_after.unwrap_or(i64::MIN), q.dates_before.unwrap_or(i64::MAX));
    !p.anytime
        && state.projects.live_dates(p.id, false).iter().any(|d| (after..=before).contains(&d.starts_at))
}

fn view(state: &SimState) -> View<'_> {
    View { store: &state.projects, quirks: state.faults.quirks, now: state.now() }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw);
    let (query, page) = match parse_query(&params) {
        Ok(parsed) => parsed,
        Err(errors) => return users_api::validation_error(errors),
    };
    let mut state = shared.state();
    let family = state.world.family(caller.org);
    let hits: Vec<&SimProject> =
        state.projects.projects().filter(|p| family.contains(&p.org) && matches(&state, p, &query)).collect();
    let view = view(&state);
    let data: Vec<Value> =
        page_of(&hits, page).iter().map(|p| view.project(p, &state.world.orgs[p.org].slug, false)).collect();
    let envelope = users_api::envelope(
        &shared.base_url,
        "projects",
        &params,
        page,
        hits.len(),
        data,
        state.faults.quirks,
    );
    let body = serde_json::to_string(&envelope).unwrap_or_default();
    users_api::maybe_corrupt(&mut state, body)
}

fn page_of<T>(items: &[T], page: usize) -> &[T] {
    let start = (page - 1).saturating_mul(PER_PAGE);
    items.get(start..).map_or(&[][..], |rest| &rest[..rest.len().min(PER_PAGE)])
}

fn not_found(model: &str, id: &str) -> Response {
    users_api::message(
        StatusCode::NOT_FOUND,
        &format!("No query results for model [App\\Models\\{model}] {id}"),
    )
}

async fn project_detail(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let state = shared.state();
    let family = state.world.family(caller.org);
    let project = id
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| state.projects.project(n))
        .filter(|p| family.contains(&p.org));
    match project {
        Some(p) => {
            axum::Json(json!({ "data": view(&state).project(p, &state.world.orgs[p.org].slug, true) }))
                .into_response()
        }
        None => not_found("Project", &id),
    }
}

async fn date_detail(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let state = shared.state();
    let family = state.world.family(caller.org);
    let date = id.trim().parse::<i64>().ok().and_then(|n| state.projects.live_date(n));
    let visible = date.filter(|d| state.projects.org_of_date(d.id).is_some_and(|o| family.contains(&o)));
    match visible {
        Some(d) => axum::Json(json!({ "data": view(&state).date(d, true) })).into_response(),
        None => not_found("ProjectDate", &id),
    }
}

/// Dates starting today (P11): the UTC day, or each date's own zone's day.
async fn today(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw);
    let page = params
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.trim().parse().ok())
        .filter(|p| *p > 0)
        .unwrap_or(1);
    let state = shared.state();
    let ids = todays_dates(&state, caller.org);
    let view = view(&state);
    let render = |ids: &[i64]| -> Vec<Value> {
        ids.iter().filter_map(|id| state.projects.date(*id)).map(|d| view.date(d, false)).collect()
    };
    if !state.projects.knobs.today_paginated {
        return axum::Json(json!({ "data": render(&ids) })).into_response();
    }
    let data = render(page_of(&ids, page));
    axum::Json(users_api::envelope(
        &shared.base_url,
        "projects/today",
        &params,
        page,
        ids.len(),
        data,
        state.faults.quirks,
    ))
    .into_response()
}

/// Ids of the family's live dated dates starting today, by start then id.
fn todays_dates(state: &SimState, org: OrgId) -> Vec<i64> {
    let family = state.world.family(org);
    let now = state.now();
    let store = &state.projects;
    let zone_of = |project| store.project(project).and_then(|p| tz::offset_of(&p.timezone)).unwrap_or(0);
    let (from, to) = match store.knobs.today_tz {
        TodayTz::Utc => tz::day_of(now, 0),
        // Every zone's today lies within two days of now.
        TodayTz::Project => (now - 2 * DAY, now + 2 * DAY),
    };
    store
        .dates_starting(from, to)
        .filter(|d| store.org_of_date(d.id).is_some_and(|o| family.contains(&o)))
        .filter(|d| {
            let (start, end) =
                tz::day_of(now, if store.knobs.today_tz == TodayTz::Utc { 0 } else { zone_of(d.project) });
            (start..end).contains(&d.starts_at)
        })
        .map(|d| d.id)
        .collect()
}

/// A user's participations as `org`'s token sees them in user detail (P13):
/// those shown under the removal reading, in the token's org family.
pub(crate) fn user_participations(state: &SimState, user: UserId, org: OrgId) -> Vec<Value> {
    let family = state.world.family(org);
    let mode = state.projects.knobs.removed_participations;
    let view = view(state);
    state
        .projects
        .of_user(user)
        .filter(|p| p.is_shown(mode))
        .filter(|p| state.projects.org_of_date(p.date).is_some_and(|o| family.contains(&o)))
        .map(|p| view.participation(p))
        .collect()
}
