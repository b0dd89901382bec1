//! The simulated VOMO surface: `GET /v1/users`, `GET /v1/users/{id}` and
//! `POST /v1/users`, behind Bearer auth, the per-token rate limit and the
//! active faults. Envelope, filters, validation and status codes follow
//! vomo-api.md §10. The Projects routes (`super::projects::api`) are merged
//! in here so they pass the same gate.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use governor::clock::{Clock, DefaultClock};
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::model::{Membership, OrgId, SimUser, UserQuery, World};
use super::wire_out::{
    Caller, FieldErrors, PER_PAGE, Scalar, envelope, maybe_corrupt, message, validation_error,
};
use super::{Shared, SimState, faults::Quirks, new_user};
use crate::domain;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/users", get(list_users).post(upsert_user))
        .route("/v1/users/{id}", get(get_user))
        .merge(super::projects::api::routes())
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), gate))
        .with_state(shared)
}

/// Auth, rate limit, injected faults and bookkeeping around every request.
async fn gate(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let kind = RequestKind::of(request.method().as_str(), request.uri().path());
    let token = bearer(request.headers());
    let org = token.as_ref().and_then(|t| shared.state().world.tokens.get(t).copied());
    let (Some(token), Some(org)) = (token, org) else {
        let mut response = message(StatusCode::UNAUTHORIZED, "Unauthenticated.");
        finish(&shared, "(unauthenticated)", kind, &mut response);
        return response;
    };

    if shared.state().world.orgs[org].api_disabled {
        let mut response = message(StatusCode::FORBIDDEN, "This action is unauthorized.");
        finish(&shared, &token, kind, &mut response);
        return response;
    }

    let mut rate_headers = None;
    if let Some((rate, limiter)) = shared.limiter() {
        match limiter.check_key(&token) {
            Ok(snapshot) => rate_headers = Some((rate.requests, snapshot.remaining_burst_capacity())),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut response = too_many(&shared, wait, rate.requests);
                finish(&shared, &token, kind, &mut response);
                return response;
            }
        }
    }

    let (delay, injected) = decide_faults(&mut shared.state());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = match injected {
        Some(response) => response,
        None => {
            request.extensions_mut().insert(Caller { org });
            next.run(request).await
        }
    };
    if let Some((limit, remaining)) = rate_headers {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
    finish(&shared, &token, kind, &mut response);
    response
}

#[derive(Clone, Copy)]
enum RequestKind {
    List,
    Detail,
    Upsert,
    ProjectList,
    ProjectDetail,
    Today,
    DateDetail,
}

impl RequestKind {
    fn of(method: &str, path: &str) -> Self {
        match (method, path) {
            ("GET", "/v1/users") => Self::List,
            ("POST", _) => Self::Upsert,
            ("GET", "/v1/projects") => Self::ProjectList,
            ("GET", "/v1/projects/today") => Self::Today,
            (_, p) if p.starts_with("/v1/projects/date/") => Self::DateDetail,
            (_, p) if p.starts_with("/v1/projects/") => Self::ProjectDetail,
            _ => Self::Detail,
        }
    }
}

/// `Bearer <token>`: exactly that word, one space (vomo-api.md §10.1).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    (!token.is_empty() && !token.contains(char::is_whitespace)).then(|| token.to_owned())
}

fn too_many(shared: &Shared, wait: Duration, limit: u32) -> Response {
    let retry_after = wait.as_secs_f64().ceil().max(1.0);
    let now = shared.state().now();
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
    let headers = response.headers_mut();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = retry_after as u64;
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
    headers.insert("x-ratelimit-reset", HeaderValue::from(now + secs.cast_signed()));
    response
}

/// Picks this request's latency and, maybe, a canned failure.
fn decide_faults(state: &mut SimState) -> (Duration, Option<Response>) {
    let faults = state.faults.clone();
    let mut delay = Duration::from_millis(faults.latency_ms);
    if faults.slow_rate > 0.0 && state.rng.random_bool(faults.slow_rate.min(1.0)) {
        delay += Duration::from_millis(faults.slow_ms);
    }
    if state.storm_left > 0 {
        state.storm_left -= 1;
        return (delay, Some(storm_response(faults.storm_retry_after.max(1))));
    }
    if faults.rate_429 > 0.0 && state.rng.random_bool(faults.rate_429.min(1.0)) {
        return (delay, Some(storm_response(1)));
    }
    if faults.drop_rate > 0.0 && state.rng.random_bool(faults.drop_rate.min(1.0)) {
        return (delay, Some(dropped_response()));
    }
    if faults.error_rate > 0.0 && state.rng.random_bool(faults.error_rate.min(1.0)) {
        let status = if state.rng.random_bool(0.5) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return (delay, Some(message(status, "Server Error")));
    }
    (delay, None)
}

/// A 200 whose body fails at once: hyper aborts the connection, and the
/// client sees it drop mid-answer.
fn dropped_response() -> Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped",
        ))
    });
    let mut response = Response::new(axum::body::Body::from_stream(failing));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn storm_response(retry_after: u64) -> Response {
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// Stamps VOMO's clock into `Date` and counts the request.
fn finish(shared: &Shared, token: &str, kind: RequestKind, response: &mut Response) {
    let mut state = shared.state();
    let now = Utc.timestamp_opt(state.now(), 0).single().unwrap_or_else(Utc::now);
    if let Ok(date) = HeaderValue::from_str(&now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        response.headers_mut().insert(header::DATE, date);
    }
    let stats = state.stats.entry(token.to_owned()).or_default();
    stats.requests += 1;
    match kind {
        RequestKind::List => stats.list += 1,
        RequestKind::Detail => stats.detail += 1,
        RequestKind::Upsert => stats.upsert += 1,
        RequestKind::ProjectList => stats.project_list += 1,
        RequestKind::ProjectDetail => stats.project_detail += 1,
        RequestKind::Today => stats.today += 1,
        RequestKind::DateDetail => stats.date_detail += 1,
    }
    *stats.status.entry(response.status().as_u16()).or_default() += 1;
}

// ---- GET /v1/users ----------------------------------------------------------

async fn list_users(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    let (query, page) = match parse_query(&params) {
        Ok(parsed) => parsed,
        Err(errors) => return validation_error(errors),
    };
    let mut state = shared.state();
    if page > 1 {
        mutate_between_pages(&mut state, caller.org, &query);
    }
    let order = state.faults.order;
    let mut rng = rand::rngs::StdRng::from_rng(&mut state.rng);
    let mut ids = state.world.query(caller.org, &query, order, &mut rng);
    if state.faults.hide_share > 0.0 {
        let shown: Vec<_> = ids.iter().copied().filter(|id| !state.faults.hides(*id)).collect();
        ids = Arc::new(shown);
    }
    let total = ids.len();
    let start = (page - 1).saturating_mul(PER_PAGE);
    let page_ids = ids.get(start..).map_or(&[][..], |rest| &rest[..rest.len().min(PER_PAGE)]);
    let quirks = state.faults.quirks;
    let data: Vec<UserOut<'_>> = page_ids
        .iter()
        .filter_map(|id| state.world.user(*id))
        .map(|u| render_user(&state.world, u, caller.org, quirks))
        .collect();
    let body =
        serde_json::to_string(&envelope(&shared.base_url, "users", &params, page, total, data, quirks))
            .unwrap_or_default();
    maybe_corrupt(&mut state, body)
}

/// The "users change between page reads" fault: before a read after page 1,
/// maybe update, delete or anonymise one user of the walked result set.
fn mutate_between_pages(state: &mut SimState, org: OrgId, query: &UserQuery) {
    let faults = state.faults.clone();
    if faults.mutate_rate <= 0.0 || !state.rng.random_bool(faults.mutate_rate.min(1.0)) {
        return;
    }
    let mut rng = rand::rngs::StdRng::from_rng(&mut state.rng);
    let ids = state.world.query(org, query, super::OrderMode::Id, &mut rng);
    if ids.is_empty() {
        return;
    }
    let id = ids[state.rng.random_range(0..ids.len())];
    let now = state.now();
    let roll: f64 = state.rng.random();
    let (delete, anonymise) = (faults.mutate_delete_share, faults.mutate_anonymise_share);
    if roll < delete {
        state.delete_user(id);
    } else if roll < delete + anonymise {
        state.world.anonymise(id, now);
    } else if roll < delete + anonymise + faults.mutate_create_share {
        let new_id = state.world.allocate_id();
        state.world.insert(new_user(new_id, org, &super::UserFields::default(), now));
    } else {
        let phone = format!("+1-555-{:04}", state.rng.random_range(0..10_000));
        state.world.modify(id, now, true, |u| u.phone = Some(phone));
    }
}

fn parse_query(params: &[(String, String)]) -> Result<(UserQuery, usize), FieldErrors> {
    let mut query = UserQuery::default();
    let mut errors = Vec::new();
    let mut page = 1;
    for (key, value) in params {
        let slot = match key.as_str() {
            "updated_after" => &mut query.updated_after,
            "updated_before" => &mut query.updated_before,
            "created_after" => &mut query.created_after,
            "created_before" => &mut query.created_before,
            "name_like" => {
                query.name_like = Some(value.clone()).filter(|v| !v.is_empty());
                continue;
            }
            "email_like" => {
                query.email_like = Some(value.clone()).filter(|v| !v.is_empty());
                continue;
            }
            // ≤0 or non-numeric is page 1 (vomo-api.md §10.7).
            "page" => {
                page = value.trim().parse::<usize>().ok().filter(|p| *p > 0).unwrap_or(1);
                continue;
            }
            // Unknown parameters (per_page, limit, take, …) are ignored.
            _ => continue,
        };
        match DateTime::parse_from_rfc3339(value.trim()) {
            Ok(at) => *slot = Some(at.timestamp()),
            Err(_) => {
                errors.push((key.clone(), format!("The {} is not a valid date.", key.replace('_', " "))))
            }
        }
    }
    if errors.is_empty() { Ok((query, page)) } else { Err(errors) }
}

fn vomo_time(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0).single().map(|at| domain::format_vomo_time(&at)).unwrap_or_default()
}

/// The membership shown to `org`'s token: in that org, else in its family.
fn shown_membership<'a>(world: &World, user: &'a SimUser, org: OrgId) -> Option<&'a Membership> {
    user.membership_in(org).or_else(|| {
        let family = world.family(org);
        user.memberships.iter().find(|m| family.contains(&m.org))
    })
}

/// A user in the list shape (`UserResource`), fields in VOMO's order.
#[derive(Serialize)]
struct UserOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: Scalar,
    first_name: &'a str,
    last_name: &'a str,
    full_name: String,
    email: &'a str,
    address: Option<&'a str>,
    phone: Option<&'a str>,
    birthday: &'a str,
    gender: &'a str,
    created_at: String,
    updated_at: String,
    user_status: &'a str,
    membership_status: Option<&'a str>,
    membership_role: Option<&'a str>,
}

fn render_user<'a>(world: &World, user: &'a SimUser, org: OrgId, quirks: Quirks) -> UserOut<'a> {
    let membership = shown_membership(world, user, org);
    UserOut {
        kind: "user",
        id: if quirks.ids_as_strings { Scalar::Text(user.id.to_string()) } else { Scalar::Number(user.id) },
        first_name: &user.first_name,
        last_name: &user.last_name,
        full_name: format!("{} {}", user.first_name, user.last_name),
        email: &user.email,
        address: user.address.as_deref(),
        phone: user.phone.as_deref(),
        birthday: &user.birthday,
        gender: &user.gender,
        created_at: vomo_time(user.created_at),
        updated_at: vomo_time(user.updated_at),
        user_status: &user.user_status,
        membership_status: membership.map(|m| m.status.as_str()),
        membership_role: membership.map(|m| m.role.as_str()),
    }
}

/// The detail shape; `participations` are the user's in the token's org
/// family (P13).
fn render_detail(state: &SimState, user: &SimUser, org: OrgId) -> Value {
    let mut value = serde_json::to_value(render_user(&state.world, user, org, state.faults.quirks))
        .unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        let mut participations = super::projects::api::user_participations(state, user.id, org);
        participations.extend(user.participations.iter().cloned());
        map.insert("participations".into(), Value::Array(participations));
        map.insert("profile_field_values".into(), Value::Array(user.profile_field_values.clone()));
    }
    value
}

/// The list shape as a domain user (the ground truth tests compare with).
pub(super) fn to_domain(world: &World, user: &SimUser, org: OrgId) -> domain::User {
    let membership = shown_membership(world, user, org);
    let at = |secs| Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
    domain::User {
        id: user.id,
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        full_name: format!("{} {}", user.first_name, user.last_name),
        email: user.email.clone(),
        address: user.address.clone(),
        phone: user.phone.clone(),
        birthday: Some(user.birthday.clone()),
        gender: Some(user.gender.clone()),
        created_at: at(user.created_at),
        updated_at: at(user.updated_at),
        user_status: Some(user.user_status.clone()),
        membership_status: membership.map(|m| m.status.clone()),
        membership_role: membership.map(|m| m.role.clone()),
    }
}

// ---- GET /v1/users/{id} -----------------------------------------------------

async fn get_user(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let not_found =
        || message(StatusCode::NOT_FOUND, &format!("No query results for model [App\\Models\\User] {id}"));
    let Ok(numeric) = id.trim().parse::<i64>() else { return not_found() };
    let state = shared.state();
    match state.world.user(numeric).filter(|u| state.world.visible_to(u, caller.org)) {
        Some(user) => axum::Json(json!({ "data": render_detail(&state, user, caller.org) })).into_response(),
        None => not_found(),
    }
}

// ---- POST /v1/users ---------------------------------------------------------

const ROLES: &[&str] = &["VOLUNTEER", "ORGANIZER", "ADMIN"];

async fn upsert_user(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let input: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let mut state = shared.state();
    let (target_org, mut errors) = target_org(&state.world, caller.org, text("org"), text("invite_code"));
    errors.extend(validate_upsert(&text));
    if !errors.is_empty() {
        return validation_error(errors);
    }
    let now = state.now();
    let email = text("email").unwrap_or_default().to_owned();
    let role = text("role").map(str::to_owned);
    let reset_role = state.faults.reset_role_on_omit;
    let existing = state.world.user_by_email(&email).map(|u| (u.id, u.home_org));
    let (status, id) = match existing {
        None => {
            let id = state.world.allocate_id();
            let fields = super::UserFields {
                first_name: text("first_name").map(str::to_owned),
                last_name: text("last_name").map(str::to_owned),
                email: Some(email),
                phone: text("phone").map(str::to_owned),
                birthday: text("birthday").map(str::to_owned),
                gender: text("gender").map(str::to_owned),
                role: role.clone(),
                ..super::UserFields::default()
            };
            let mut user = new_user(id, target_org, &fields, now);
            user.password = text("password").map(str::to_owned);
            state.world.insert(user);
            (StatusCode::CREATED, id)
        }
        Some((id, home_org)) => {
            let family = state.world.family(caller.org);
            // A user from outside the token's org family keeps name, e-mail and
            // password; only the membership here changes (vomo-api.md §10.17).
            let core_editable = family.contains(&home_org);
            let (first, last, birthday, gender, phone, password) = (
                text("first_name").map(str::to_owned),
                text("last_name").map(str::to_owned),
                text("birthday").map(str::to_owned),
                text("gender").map(str::to_owned),
                text("phone").map(str::to_owned),
                text("password").map(str::to_owned),
            );
            state.world.modify(id, now, true, |u| {
                if core_editable {
                    u.first_name = first.unwrap_or_default();
                    u.last_name = last.unwrap_or_default();
                    u.email = email;
                    u.birthday = birthday.unwrap_or_default();
                    u.gender = gender.unwrap_or_default();
                    if phone.is_some() {
                        u.phone = phone;
                    }
                    if password.is_some() {
                        u.password = password;
                    }
                }
                set_role(u, target_org, role, reset_role);
            });
            (StatusCode::OK, id)
        }
    };
    let data = state.world.user(id).map(|u| render_detail(&state, u, caller.org));
    let (code, text) =
        if status == StatusCode::CREATED { ("201", "User created.") } else { ("200", "User updated.") };
    (status, axum::Json(json!({ "code": code, "message": text, "data": data }))).into_response()
}

/// The membership role after an upsert: as sent, or reset/kept when omitted.
fn set_role(user: &mut SimUser, org: OrgId, role: Option<String>, reset_on_omit: bool) {
    let default_role = || "VOLUNTEER".to_owned();
    match user.memberships.iter_mut().find(|m| m.org == org) {
        Some(m) => match role {
            Some(role) => m.role = role,
            None if reset_on_omit => m.role = default_role(),
            None => {}
        },
        None => user.memberships.push(Membership {
            org,
            status: "ACCEPTED".into(),
            role: role.unwrap_or_else(default_role),
        }),
    }
}

/// Resolves `org` / `invite_code` (which wins) to an org in the token's family.
fn target_org(
    world: &World,
    token_org: OrgId,
    org: Option<&str>,
    invite: Option<&str>,
) -> (OrgId, FieldErrors) {
    let family = world.family(token_org);
    if let Some(code) = invite {
        return match world.orgs.iter().find(|o| o.invite_code == code) {
            Some(o) => (o.id, Vec::new()),
            None => (token_org, vec![("invite_code".into(), "The selected invite code is invalid.".into())]),
        };
    }
    match org {
        None => (token_org, Vec::new()),
        Some(slug) => match world.org_by_slug(slug).filter(|o| family.contains(o)) {
            Some(o) => (o, Vec::new()),
            None => (token_org, vec![("org".into(), "The selected org is invalid.".into())]),
        },
    }
}

fn validate_upsert<'a>(text: &impl Fn(&str) -> Option<&'a str>) -> FieldErrors {
    let mut errors = Vec::new();
    let mut fail = |field: &str, msg: String| errors.push((field.to_owned(), msg));
    for field in ["first_name", "last_name", "email", "birthday", "gender"] {
        if text(field).is_none() {
            fail(field, format!("The {} field is required.", field.replace('_', " ")));
        }
    }
    if let Some(email) = text("email") {
        let valid = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !email.contains(' ')
        });
        if !valid {
            fail("email", "The email must be a valid email address.".into());
        }
    }
    if let Some(birthday) = text("birthday")
        && (NaiveDate::parse_from_str(birthday, "%Y-%m-%d").is_err() || birthday.len() != 10)
    {
        fail("birthday", "The birthday does not match the format Y-m-d.".into());
    }
    if let Some(gender) = text("gender")
        && !["M", "F", "N"].contains(&gender)
    {
        fail("gender", "The selected gender is invalid.".into());
    }
    if let Some(password) = text("password") {
        let strong = password.chars().count() >= 10
            && password.chars().any(char::is_alphabetic)
            && password.chars().any(|c| c.is_ascii_digit());
        if !strong {
            fail(
                "password",
                "The password must be at least 10 characters and contain letters and numbers.".into(),
            );
        }
    }
    if let Some(role) = text("role")
        && !ROLES.contains(&role)
    {
        fail("role", "The selected role is invalid.".into());
    }
    errors
}
