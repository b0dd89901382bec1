//! The JSON every simulated endpoint answers with, shared by the users
//! and the Projects routes: plain messages, 422 validation errors, the
//! paginated `{data, links, meta}` envelope (with the spec-defect quirks),
//! and — by the truncation and HTML faults — broken bodies in its place.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::SimState;
use super::faults::Quirks;
use super::model::OrgId;

/// VOMO's fixed page size (vomo-api.md §4).
pub(crate) const PER_PAGE: usize = 15;

/// A number, or the same number as text (the `meta_as_strings` and
/// `ids_as_strings` quirks).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Number(i64),
    Text(String),
}

impl Scalar {
    pub(crate) fn of(n: usize, as_text: bool) -> Self {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if as_text { Self::Text(n.to_string()) } else { Self::Number(n) }
    }
}

/// Who is calling, established by the auth gate.
#[derive(Clone)]
pub(crate) struct Caller {
    pub org: OrgId,
}

pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

/// A list page's response, or — by the truncation and HTML faults — a
/// broken one in its place.
pub(crate) fn maybe_corrupt(state: &mut SimState, body: String) -> Response {
    let faults = state.faults.clone();
    if faults.truncate_rate > 0.0 && state.rng.random_bool(faults.truncate_rate.min(1.0)) {
        let text = body;
        let cut = text.len() * 2 / 3;
        return raw_response(StatusCode::OK, "application/json", text[..cut].to_owned());
    }
    if faults.html_rate > 0.0 && state.rng.random_bool(faults.html_rate.min(1.0)) {
        let html = "<!DOCTYPE html><html><head><title>Server Error</title></head><body><h1>Whoops, looks like something went wrong.</h1></body></html>";
        return raw_response(StatusCode::OK, "text/html; charset=UTF-8", html.to_owned());
    }
    raw_response(StatusCode::OK, "application/json", body)
}

fn raw_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) type FieldErrors = Vec<(String, String)>;

pub(crate) fn validation_error(errors: FieldErrors) -> Response {
    let mut map = Map::new();
    for (field, text) in errors {
        let entry = map.entry(field).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(text));
        }
    }
    let body = json!({ "status": "error", "message": "The given data was invalid.", "errors": map });
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

#[derive(Serialize)]
pub(crate) struct Envelope<T> {
    data: Vec<T>,
    links: LinksOut,
    meta: MetaOut,
}

#[derive(Serialize)]
struct LinksOut {
    first: Option<Scalar>,
    last: Option<Scalar>,
    prev: Option<Scalar>,
    next: Option<Scalar>,
}

#[derive(Serialize)]
struct MetaOut {
    current_page: Scalar,
    from: Option<Scalar>,
    to: Option<Scalar>,
    path: String,
    per_page: Scalar,
    total: Scalar,
    last_page: Scalar,
}

/// `{data, links, meta}` for `resource` (e.g. `users`) with absolute links
/// that keep every query parameter.
pub(crate) fn envelope<T>(
    base_url: &str,
    resource: &str,
    params: &[(String, String)],
    page: usize,
    total: usize,
    data: Vec<T>,
    quirks: Quirks,
) -> Envelope<T> {
    let last_page = total.div_ceil(PER_PAGE).max(1);
    let path = format!("{base_url}/{resource}");
    let link = |n: usize| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "page") {
            serializer.append_pair(k, v);
        }
        serializer.append_pair("page", &n.to_string());
        Some(Scalar::Text(format!("{path}?{}", serializer.finish())))
    };
    let null = || quirks.null_links_as_strings.then(|| Scalar::Text("null".into()));
    let number = |n: usize| Scalar::of(n, quirks.meta_as_strings);
    let empty = data.is_empty();
    let from = (page - 1) * PER_PAGE + 1;
    Envelope {
        data,
        links: LinksOut {
            first: link(1),
            last: link(last_page),
            prev: if page > 1 { link(page - 1) } else { null() },
            next: if page < last_page { link(page + 1) } else { null() },
        },
        meta: MetaOut {
            current_page: number(page),
            from: (!empty).then(|| number(from)),
            to: (!empty).then(|| number((from + PER_PAGE - 1).min(total))),
            path,
            per_page: number(PER_PAGE),
            total: number(total),
            last_page: number(last_page),
        },
    }
}
