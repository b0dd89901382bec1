//! The simulated HubSpot surface: the contacts batch endpoints, GDPR delete,
//! the contact properties API and the token-info endpoint, behind a gate that
//! does Bearer auth, the account's limits, scope checks, injected faults and
//! request statistics. Answers follow HubSpot's documented shapes (see the
//! module header of `sim::hubspot` for what is documented and what assumed).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::Utc;
use rand::RngExt;
use serde_json::{Value, json};

use super::limits::{Headroom, Policy, WINDOW};
use super::model::{self, BATCH_LIMIT, InputError, Target, WriteInput, Written};
use super::{HsState, OBJECTS_READ, OBJECTS_WRITE, SCHEMAS_READ, SCHEMAS_WRITE, Shared};

const CONTACTS: &str = "/crm/v3/objects/contacts";
const PROPERTIES: &str = "/crm/v3/properties/contacts";
const TOKEN_INFO: &str = "/oauth/v2/private-apps/get/access-token-info";

/// The app a request was authenticated as.
#[derive(Clone)]
struct Caller;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(&format!("{CONTACTS}/batch/upsert"), post(batch_upsert))
        .route(&format!("{CONTACTS}/batch/update"), post(batch_update))
        .route(&format!("{CONTACTS}/batch/read"), post(batch_read))
        .route(&format!("{CONTACTS}/batch/archive"), post(batch_archive))
        .route(&format!("{CONTACTS}/gdpr-delete"), post(gdpr_delete))
        .route(PROPERTIES, get(list_properties).post(create_property))
        .route(&format!("{PROPERTIES}/groups"), get(list_groups).post(create_group))
        .route(TOKEN_INFO, post(token_info))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), gate))
        .with_state(shared)
}

/// An error in HubSpot's shape.
fn error(shared: &Shared, status: StatusCode, category: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({
        "status": "error",
        "message": message,
        "correlationId": shared.state().correlation_id(),
        "category": category,
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    (status, axum::Json(body)).into_response()
}

fn validation(shared: &Shared, message: &str) -> Response {
    error(shared, StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message, Value::Null)
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    error(&shared, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "resource not found", Value::Null)
}

// ---- the gate ---------------------------------------------------------------

/// The endpoint's name in the statistics and the scope it needs.
fn endpoint(method: &str, path: &str) -> (&'static str, Option<&'static str>) {
    let action = path.strip_prefix(CONTACTS).unwrap_or("");
    match (method, action) {
        (_, "/batch/upsert") => ("upsert", Some(OBJECTS_WRITE)),
        (_, "/batch/update") => ("update", Some(OBJECTS_WRITE)),
        (_, "/batch/archive") => ("archive", Some(OBJECTS_WRITE)),
        (_, "/gdpr-delete") => ("gdpr_delete", Some(OBJECTS_WRITE)),
        (_, "/batch/read") => ("read", Some(OBJECTS_READ)),
        _ if path == TOKEN_INFO => ("token_info", None),
        _ if path.starts_with(PROPERTIES) => {
            let name = if path.ends_with("/groups") { "groups" } else { "properties" };
            (name, Some(if method == "GET" { SCHEMAS_READ } else { SCHEMAS_WRITE }))
        }
        _ => ("other", None),
    }
}

/// Auth, limits, scopes, faults and bookkeeping around every request.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (name, scope) = endpoint(request.method().as_str(), request.uri().path());
    if name == "token_info" {
        // Identified by the token in its body; outside the account's limits.
        let response = next.run(request).await;
        count(&shared, "(token-info)", name, &response, None);
        return response;
    }
    let app = bearer(request.headers()).and_then(|t| shared.state().tokens.get(&t).cloned());
    let Some(app) = app else {
        let response = unauthenticated(&shared);
        count(&shared, "(unauthenticated)", name, &response, None);
        return response;
    };
    let admitted = admit(&mut shared.state());
    let headroom = match admitted {
        Ok(headroom) => headroom,
        Err((policy, headroom)) => {
            let mut response = too_many(&shared, policy);
            rate_headers(response.headers_mut(), headroom);
            count(&shared, &app.name, name, &response, Some(policy));
            return response;
        }
    };
    let mut response = match scope.filter(|s| !app.scopes.iter().any(|g| g == s)) {
        Some(missing) => missing_scope(&shared, missing),
        None => run_with_faults(&shared, request, next).await,
    };
    rate_headers(response.headers_mut(), headroom);
    count(&shared, &app.name, name, &response, None);
    response
}

/// `Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn admit(state: &mut HsState) -> Result<Headroom, (Policy, Headroom)> {
    let day = Utc::now().timestamp().div_euclid(86_400);
    let limits = state.limits;
    state.usage.admit(limits, Instant::now(), day)
}

fn unauthenticated(shared: &Shared) -> Response {
    let message = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can \
                   find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";
    error(shared, StatusCode::UNAUTHORIZED, "INVALID_AUTHENTICATION", message, Value::Null)
}

fn missing_scope(shared: &Shared, scope: &str) -> Response {
    let message = "This app hasn't been granted all required scopes to make this call. Read more about required \
                   scopes here: https://developers.hubspot.com/scopes.";
    let extra = json!({
        "errors": [{"message": "One or more of the following scopes are required.",
                    "context": {"requiredScopes": [scope]}}],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
    });
    error(shared, StatusCode::FORBIDDEN, "MISSING_SCOPES", message, extra)
}

/// A 429 as HubSpot sends it: `errorType` and `policyName`, no `category`.
fn too_many(shared: &Shared, policy: Policy) -> Response {
    let body = json!({
        "status": "error",
        "message": policy.message(),
        "errorType": "RATE_LIMIT",
        "correlationId": shared.state().correlation_id(),
        "policyName": policy.as_str(),
    });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

fn rate_headers(headers: &mut HeaderMap, headroom: Headroom) {
    let mut set = |name: &'static str, value: Option<u64>| {
        if let Some(value) = value {
            headers.insert(name, HeaderValue::from(value));
        }
    };
    set("x-hubspot-ratelimit-max", headroom.max.map(u64::from));
    set("x-hubspot-ratelimit-remaining", headroom.remaining.map(u64::from));
    let interval = u64::try_from(WINDOW.as_millis()).ok();
    set("x-hubspot-ratelimit-interval-milliseconds", headroom.max.and(interval));
    set("x-hubspot-ratelimit-daily", headroom.daily);
    set("x-hubspot-ratelimit-daily-remaining", headroom.daily_remaining);
}

/// What the faults decided for one request.
struct FaultPlan {
    delay: Duration,
    failure: Option<StatusCode>,
    drop_after: bool,
}

fn plan_faults(state: &mut HsState) -> FaultPlan {
    let faults = state.faults.clone();
    let mut delay = Duration::from_millis(faults.latency_ms);
    if faults.slow_rate > 0.0 && state.rng.random_bool(faults.slow_rate.min(1.0)) {
        delay += Duration::from_millis(faults.slow_ms);
    }
    let mut failure = None;
    if faults.error_rate > 0.0 && state.rng.random_bool(faults.error_rate.min(1.0)) {
        let statuses = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ];
        failure = Some(statuses[state.rng.random_range(0..statuses.len())]);
    }
    let drop_after =
        failure.is_none() && faults.drop_rate > 0.0 && state.rng.random_bool(faults.drop_rate.min(1.0));
    FaultPlan { delay, failure, drop_after }
}

async fn run_with_faults(shared: &Arc<Shared>, mut request: Request, next: Next) -> Response {
    let plan = plan_faults(&mut shared.state());
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    if let Some(status) = plan.failure {
        return server_error(shared, status);
    }
    request.extensions_mut().insert(Caller);
    let mut response = next.run(request).await;
    if plan.drop_after {
        // The write is done; the connection dies before the body arrives.
        let failing = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by fault injection"))
        });
        *response.body_mut() = Body::from_stream(failing);
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response
}

fn server_error(shared: &Shared, status: StatusCode) -> Response {
    if status == StatusCode::BAD_GATEWAY {
        // What a gateway in front of HubSpot sends: HTML, not JSON.
        let html = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>\
                    </center><hr><center>cloudflare</center></body></html>";
        let mut response = (status, html).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return response;
    }
    let message = "internal error";
    error(shared, status, "INTERNAL_ERROR", message, Value::Null)
}

fn count(shared: &Shared, app: &str, endpoint: &str, response: &Response, limited: Option<Policy>) {
    let mut state = shared.state();
    let elapsed = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(policy) = limited {
        let entry =
            super::RateLimited { at_ms: elapsed, app: app.to_owned(), policy: policy.as_str().to_owned() };
        state.stats.rate_limited_at.push(entry);
    }
    let stats = state.stats.apps.entry(app.to_owned()).or_default();
    stats.requests += 1;
    *stats.endpoints.entry(endpoint.to_owned()).or_default() += 1;
    *stats.status.entry(response.status().as_u16()).or_default() += 1;
    if let Some(policy) = limited {
        *stats.rate_limited.entry(policy.as_str().to_owned()).or_default() += 1;
    }
}

// ---- request bodies ---------------------------------------------------------

/// The JSON body, or the message of HubSpot's 400 for one that is not.
fn json_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice::<Value>(body)
        .map_err(|e| format!("Invalid input JSON on line {}, column {}: {e}", e.line(), e.column()))
}

/// `inputs` of a batch call, at most [`BATCH_LIMIT`].
fn inputs(body: &Value) -> Result<&Vec<Value>, String> {
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return Err("Invalid input JSON: 'inputs' is required and must be an array".to_owned());
    };
    if inputs.len() > BATCH_LIMIT {
        return Err(format!("Batch input size {} exceeds the limit of {BATCH_LIMIT} inputs", inputs.len()));
    }
    Ok(inputs)
}

/// A JSON scalar as HubSpot reads a property value or id.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// One write input: `{id, properties, objectWriteTraceId?, idProperty?}`.
struct ParsedInput {
    write: WriteInput,
    trace: Option<String>,
    id_property: Option<String>,
}

fn parse_input(input: &Value) -> Result<ParsedInput, String> {
    let id = input.get("id").and_then(text).filter(|id| !id.is_empty()).ok_or("every input needs an 'id'")?;
    let mut properties = BTreeMap::new();
    if let Some(map) = input.get("properties") {
        let map = map.as_object().ok_or("'properties' must be an object")?;
        for (name, value) in map {
            let value = text(value).ok_or_else(|| format!("property '{name}' must be a string"))?;
            properties.insert(name.clone(), value);
        }
    }
    let trace = input.get("objectWriteTraceId").and_then(text).filter(|t| !t.is_empty());
    let id_property = input.get("idProperty").and_then(Value::as_str).map(str::to_owned);
    Ok(ParsedInput { write: WriteInput { id, properties }, trace, id_property })
}

fn parse_inputs(body: &Value) -> Result<Vec<ParsedInput>, String> {
    let raw = inputs(body)?;
    let parsed: Result<Vec<ParsedInput>, String> = raw.iter().map(parse_input).collect();
    let parsed = parsed.map_err(|e| format!("Invalid input JSON: {e}"))?;
    let mut seen = HashSet::new();
    let duplicates: Vec<&str> =
        parsed.iter().map(|p| p.write.id.as_str()).filter(|id| !seen.insert(*id)).collect();
    if !duplicates.is_empty() {
        return Err(format!("Duplicate IDs found in batch input: {duplicates:?}"));
    }
    Ok(parsed)
}

/// The one id property of a batch: per input, else `?idProperty=`.
fn id_property_of(parsed: &[ParsedInput], query: Option<&str>) -> Result<Option<String>, String> {
    let named: HashSet<Option<&str>> = parsed.iter().map(|p| p.id_property.as_deref().or(query)).collect();
    match named.len() {
        0 => Ok(query.map(str::to_owned)),
        1 => Ok(named.into_iter().next().flatten().map(str::to_owned)),
        _ => Err("all inputs of a batch must use the same idProperty".to_owned()),
    }
}

fn query_param(request_query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(request_query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

// ---- batch writes -----------------------------------------------------------

async fn batch_upsert(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let query = query_param(query.as_deref(), "idProperty");
    batch_write(&shared, &body, query.as_deref(), true)
}

async fn batch_update(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let query = query_param(query.as_deref(), "idProperty");
    batch_write(&shared, &body, query.as_deref(), false)
}

fn batch_write(shared: &Shared, body: &Bytes, query: Option<&str>, upsert: bool) -> Response {
    let parsed = match json_body(body).and_then(|body| parse_inputs(&body)) {
        Ok(parsed) => parsed,
        Err(message) => return validation(shared, &message),
    };
    let id_property = match id_property_of(&parsed, query) {
        Ok(id_property) => id_property,
        Err(message) => return validation(shared, &message),
    };
    let mut state = shared.state();
    if let Some(name) = &id_property {
        let unique = name == "email"
            || name == "hs_object_id"
            || state.portal.properties.get(name).is_some_and(|p| p.has_unique_value);
        if !unique {
            drop(state);
            return validation(shared, &format!("Property '{name}' is not a unique identifier property"));
        }
    }
    let target = match (&id_property, upsert) {
        (Some(name), true) => Target::Upsert { id_property: name },
        (None, true) => {
            drop(state);
            return validation(shared, "batch upsert needs an idProperty naming a unique property");
        }
        (name, false) => Target::Update { id_property: name.as_deref() },
    };
    // 207 multi-status only when every input carries a trace id.
    let traced =
        !parsed.is_empty() && parsed.iter().all(|p| p.trace.is_some()) && !state.faults.whole_batch_errors;
    let writes: Vec<WriteInput> = parsed.iter().map(|p| p.write.clone()).collect();
    let started = Utc::now();
    let results = state.portal.write_batch(target, &writes, started, !traced);
    drop(state);
    if traced {
        multi_status(shared, &parsed, results, started)
    } else {
        whole_batch(shared, results, started)
    }
}

fn written_json(written: &Written, trace: Option<&str>) -> Value {
    let mut value = model::render_contact(&written.contact, None);
    if let Value::Object(map) = &mut value {
        map.insert("new".into(), Value::Bool(written.created));
        if let Some(trace) = trace {
            map.insert("objectWriteTraceId".into(), Value::String(trace.to_owned()));
        }
    }
    value
}

fn batch_envelope(results: Vec<Value>, errors: Vec<Value>, started: chrono::DateTime<Utc>) -> Value {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": model::format_datetime(started),
        "completedAt": model::format_datetime(Utc::now()),
    });
    if !errors.is_empty()
        && let Value::Object(map) = &mut body
    {
        map.insert("numErrors".into(), Value::from(errors.len()));
        map.insert("errors".into(), Value::Array(errors));
    }
    body
}

/// Without trace ids: the batch is all or nothing, and its one error is the
/// whole answer.
fn whole_batch(
    shared: &Shared,
    results: Vec<Result<Written, InputError>>,
    started: chrono::DateTime<Utc>,
) -> Response {
    if let Some(Err(failure)) = results.iter().find(|r| r.is_err()) {
        let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
        return error(shared, status, failure.category(), &failure.message(), Value::Null);
    }
    let results: Vec<Value> =
        results.iter().filter_map(|r| r.as_ref().ok()).map(|w| written_json(w, None)).collect();
    axum::Json(batch_envelope(results, Vec::new(), started)).into_response()
}

/// With trace ids: each input stands alone; errors name their input.
fn multi_status(
    shared: &Shared,
    parsed: &[ParsedInput],
    results: Vec<Result<Written, InputError>>,
    started: chrono::DateTime<Utc>,
) -> Response {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (input, result) in parsed.iter().zip(results) {
        let trace = input.trace.as_deref();
        match result {
            Ok(written) => ok.push(written_json(&written, trace)),
            Err(failure) => errors.push(json!({
                "status": "error",
                "category": failure.category(),
                "message": failure.message(),
                "context": {"objectWriteTraceId": [trace], "id": [input.write.id]},
                "correlationId": shared.state().correlation_id(),
            })),
        }
    }
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    (status, axum::Json(batch_envelope(ok, errors, started))).into_response()
}

// ---- batch read, archive, GDPR delete ---------------------------------------

async fn batch_read(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    body: Bytes,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(message) => return validation(&shared, &message),
    };
    let raw = match inputs(&body) {
        Ok(raw) => raw,
        Err(message) => return validation(&shared, &message),
    };
    let ids: Vec<String> = raw.iter().filter_map(|i| i.get("id").and_then(text)).collect();
    let requested: Vec<String> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_else(|| ["email", "firstname", "lastname"].map(str::to_owned).to_vec());
    let id_property = body.get("idProperty").and_then(Value::as_str).unwrap_or("hs_object_id").to_owned();
    let state = shared.state();
    if id_property != "hs_object_id"
        && id_property != "email"
        && !state.portal.properties.get(&id_property).is_some_and(|p| p.has_unique_value)
    {
        drop(state);
        return validation(&shared, &format!("Property '{id_property}' is not a unique identifier property"));
    }
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match state.portal.find(&id_property, &id).and_then(|c| state.portal.contacts.get(&c)) {
            Some(contact) => results.push(model::render_contact(contact, Some(&requested))),
            None => missing.push(id),
        }
    }
    drop(state);
    let started = Utc::now();
    if missing.is_empty() {
        return axum::Json(batch_envelope(results, Vec::new(), started)).into_response();
    }
    let errors = vec![json!({
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
        "context": {"ids": missing},
    })];
    (StatusCode::MULTI_STATUS, axum::Json(batch_envelope(results, errors, started))).into_response()
}

async fn batch_archive(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    body: Bytes,
) -> Response {
    let ids: Vec<String> = match json_body(&body)
        .and_then(|body| Ok(inputs(&body)?.iter().filter_map(|i| i.get("id").and_then(text)).collect()))
    {
        Ok(ids) => ids,
        Err(message) => return validation(&shared, &message),
    };
    shared.state().portal.archive(&ids);
    StatusCode::NO_CONTENT.into_response()
}

async fn gdpr_delete(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    body: Bytes,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(message) => return validation(&shared, &message),
    };
    let Some(object_id) = body.get("objectId").and_then(text).filter(|id| !id.is_empty()) else {
        return validation(&shared, "Invalid input JSON: 'objectId' is required");
    };
    let id_property = body.get("idProperty").and_then(Value::as_str);
    if shared.state().portal.gdpr_delete(&object_id, id_property) {
        return StatusCode::NO_CONTENT.into_response();
    }
    let message = format!("Object not found.  objectId are usually numeric. ({object_id})");
    error(&shared, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", &message, Value::Null)
}

// ---- properties and groups --------------------------------------------------

async fn list_properties(State(shared): State<Arc<Shared>>, Extension(_): Extension<Caller>) -> Response {
    let results: Vec<Value> = shared
        .state()
        .portal
        .properties
        .values()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    axum::Json(json!({ "results": results })).into_response()
}

async fn create_property(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    body: Bytes,
) -> Response {
    let def = match serde_json::from_slice::<super::PropertyDef>(&body) {
        Ok(def) => def,
        Err(e) => return validation(&shared, &format!("Invalid input JSON: {e}")),
    };
    let created = shared.state().portal.create_property(def);
    match created {
        Ok(def) => (StatusCode::CREATED, axum::Json(def)).into_response(),
        Err((status, category, message)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            error(&shared, status, category, &message, Value::Null)
        }
    }
}

async fn list_groups(State(shared): State<Arc<Shared>>, Extension(_): Extension<Caller>) -> Response {
    let groups: Vec<super::GroupDef> = shared.state().portal.groups.values().cloned().collect();
    axum::Json(json!({ "results": groups })).into_response()
}

async fn create_group(
    State(shared): State<Arc<Shared>>,
    Extension(_): Extension<Caller>,
    body: Bytes,
) -> Response {
    let group = match serde_json::from_slice::<super::GroupDef>(&body) {
        Ok(group) => group,
        Err(e) => return validation(&shared, &format!("Invalid input JSON: {e}")),
    };
    let created = shared.state().portal.create_group(group);
    match created {
        Ok(group) => (StatusCode::CREATED, axum::Json(group)).into_response(),
        Err((status, category, message)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            error(&shared, status, category, &message, Value::Null)
        }
    }
}

// ---- token info -------------------------------------------------------------

async fn token_info(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("tokenKey").and_then(Value::as_str).map(str::to_owned));
    let app = key.and_then(|k| shared.state().tokens.get(&k).cloned());
    match app {
        Some(app) => axum::Json(json!({
            "userId": 1,
            "hubId": 4_242_424,
            "appId": 1000 + app.name.len(),
            "scopes": app.scopes,
        }))
        .into_response(),
        None => unauthenticated(&shared),
    }
}
