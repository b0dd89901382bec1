//! Typed calls for Projects, Project Dates and participations (vomo-api.md
//! §12.2): the project list, one Project's schedule, today's dates, one
//! date's participants and a user's participations. Every body is hostile
//! until checked: page counts and totals are bounded and must agree, lists
//! are capped, and a decode error names the endpoint and the field (e.g.
//! `data.participants[3].hours`) but never echoes a value, which could be
//! personal data.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire::Meta;
use super::wire_projects::{KeyContext, WireDate, WireParticipation, WireProject};
use super::{
    PAGE_SIZE, RateInfo, VomoClient, VomoError, check_status, endpoint_label, iso_millis, rate_info,
    server_time,
};
use crate::domain::{DateId, Participation, Project, ProjectDate, ProjectId, VomoUserId};

/// More than any organisation has; a larger `meta.total` is a broken or
/// hostile answer, not a reason to plan millions of requests.
const MAX_TOTAL: u64 = 10_000_000;
/// Larger pages than this are not VOMO's (its pages are 15).
const MAX_PER_PAGE: u64 = 1_000;
/// Cap on unpaged arrays: a schedule, a date's participants, bare today.
const MAX_ITEMS: usize = 100_000;

/// Filters of `GET /projects` (vomo-api.md §12.3). `anytime` absent means
/// whatever VOMO's default is (a spec gap): to see every Project, read
/// `anytime=false` and `anytime=true` and take the union
/// ([`ProjectFilter::by_anytime`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectFilter {
    pub updated_after: Option<DateTime<Utc>>,
    pub anytime: Option<bool>,
    pub active: Option<bool>,
    pub published: Option<bool>,
    pub name_like: Option<String>,
    /// `org_slug`, comma-separated; empty sends none.
    pub org_slugs: Vec<String>,
    pub dates_after: Option<DateTime<Utc>>,
    pub dates_before: Option<DateTime<Utc>>,
}

impl ProjectFilter {
    /// Projects changed since `at` (inclusive).
    pub fn updated_since(at: DateTime<Utc>) -> Self {
        Self { updated_after: Some(at), ..Self::default() }
    }

    /// This filter for dated Projects and for anytime ones: their union is
    /// every Project under every reading of an absent `anytime`.
    pub fn by_anytime(&self) -> [Self; 2] {
        [Self { anytime: Some(false), ..self.clone() }, Self { anytime: Some(true), ..self.clone() }]
    }

    fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let times = [
            ("updated_after", self.updated_after),
            ("dates_after", self.dates_after),
            ("dates_before", self.dates_before),
        ];
        let flags = [("anytime", self.anytime), ("active", self.active), ("published", self.published)];
        let mut pairs: Vec<(&'static str, String)> =
            times.into_iter().filter_map(|(k, v)| v.map(|at| (k, iso_millis(&at)))).collect();
        pairs.extend(flags.into_iter().filter_map(|(k, v)| v.map(|b| (k, b.to_string()))));
        if let Some(name) = &self.name_like {
            pairs.push(("name_like", name.clone()));
        }
        if !self.org_slugs.is_empty() {
            pairs.push(("org_slug", self.org_slugs.join(",")));
        }
        pairs
    }
}

/// One page of `GET /projects`.
#[derive(Debug, Clone)]
pub struct ProjectPage {
    pub projects: Vec<Project>,
    pub page: u64,
    pub total: u64,
    pub last_page: u64,
    pub server_time: Option<DateTime<Utc>>,
    pub rate: RateInfo,
}

/// `GET /projects/{id}`: the Project and its whole schedule.
#[derive(Debug, Clone)]
pub struct ProjectDetail {
    pub project: Project,
    /// `all_dates`, as VOMO listed them.
    pub all_dates: Vec<ProjectDate>,
    pub server_time: Option<DateTime<Utc>>,
}

/// `GET /projects/today`, paginated or bare (a spec gap).
#[derive(Debug, Clone)]
pub struct TodayPage {
    pub dates: Vec<ProjectDate>,
    pub page: u64,
    pub total: u64,
    pub last_page: u64,
    /// False when VOMO sent a bare `{data: [...]}`: that one answer is all.
    pub paginated: bool,
    pub server_time: Option<DateTime<Utc>>,
}

/// `GET /projects/date/{id}`: the date and its participants.
#[derive(Debug, Clone)]
pub struct ProjectDateDetail {
    pub date: ProjectDate,
    pub participants: Vec<Participation>,
    pub server_time: Option<DateTime<Utc>>,
}

/// The `participations` of `GET /users/{id}`, decoded strictly.
#[derive(Debug, Clone)]
pub struct UserParticipations {
    pub user_id: VomoUserId,
    pub participations: Vec<Participation>,
    pub server_time: Option<DateTime<Utc>>,
}

/// A successful body, parsed as JSON but not yet typed.
struct Answer {
    value: Value,
    server_time: Option<DateTime<Utc>>,
    rate: RateInfo,
}

impl VomoClient {
    /// One page of Projects matching `filter` (page URLs built here, as for
    /// users).
    pub async fn list_projects(&self, filter: &ProjectFilter, page: u64) -> Result<ProjectPage, VomoError> {
        let (answer, endpoint) = self.get_json("projects", &filter.query_pairs(), Some(page)).await?;
        let (data, meta) = list_parts(answer.value, &endpoint)?;
        let meta = meta.ok_or_else(|| field_error(&endpoint, "meta", "missing"))?;
        let (total, last_page) = check_meta(&meta, data.len(), &endpoint)?;
        let wire: Vec<WireProject> = typed(Value::Array(data), "data", &endpoint)?;
        Ok(ProjectPage {
            projects: wire.into_iter().map(WireProject::into_project).collect(),
            page: meta.current_page.unwrap_or(page),
            total,
            last_page,
            server_time: answer.server_time,
            rate: answer.rate,
        })
    }

    /// One Project with `all_dates`; `NotFound` when VOMO does not have it.
    pub async fn get_project(&self, id: ProjectId) -> Result<ProjectDetail, VomoError> {
        let (answer, endpoint) = self.get_json(&format!("projects/{id}"), &[], None).await?;
        let (value, prefix) = detail_of(answer.value);
        let mut wire: WireProject = typed(value, prefix, &endpoint)?;
        let list = join(prefix, "all_dates");
        let dates = wire.all_dates.take().ok_or_else(|| field_error(&endpoint, &list, "missing"))?;
        bounded(dates.len(), &list, &endpoint)?;
        Ok(ProjectDetail {
            project: wire.into_project(),
            all_dates: dates.iter().map(WireDate::to_date).collect(),
            server_time: answer.server_time,
        })
    }

    /// Today's Project Dates: one page of the envelope, or — when VOMO sends
    /// a bare `{data: [...]}` — all of them (`paginated` false).
    pub async fn projects_today(&self, page: u64) -> Result<TodayPage, VomoError> {
        let (answer, endpoint) = self.get_json("projects/today", &[], Some(page)).await?;
        let (data, meta) = list_parts(answer.value, &endpoint)?;
        let count = data.len();
        let (total, last_page) = match &meta {
            Some(meta) => check_meta(meta, count, &endpoint)?,
            None => (bounded(count, "data", &endpoint)? as u64, 1),
        };
        let wire: Vec<WireDate> = typed(Value::Array(data), "data", &endpoint)?;
        Ok(TodayPage {
            dates: wire.iter().map(WireDate::to_date).collect(),
            page: meta.as_ref().and_then(|m| m.current_page).unwrap_or(if meta.is_some() { page } else { 1 }),
            total,
            last_page,
            paginated: meta.is_some(),
            server_time: answer.server_time,
        })
    }

    /// One Project Date with its participants; `NotFound` when the date is
    /// gone (deleted, or never visible to this token).
    pub async fn get_project_date(&self, id: DateId) -> Result<ProjectDateDetail, VomoError> {
        let (answer, endpoint) = self.get_json(&format!("projects/date/{id}"), &[], None).await?;
        let (value, prefix) = detail_of(answer.value);
        let mut wire: WireDate = typed(value, prefix, &endpoint)?;
        let list = join(prefix, "participants");
        let participants =
            wire.participants.take().ok_or_else(|| field_error(&endpoint, &list, "missing"))?;
        bounded(participants.len(), &list, &endpoint)?;
        let ctx = KeyContext { project_date_id: Some(wire.id), project_id: wire.project_id, user_id: None };
        Ok(ProjectDateDetail {
            date: wire.to_date(),
            participants: into_participations(participants, ctx, &list, &endpoint)?,
            server_time: answer.server_time,
        })
    }

    /// A user's participations from `GET /users/{id}`, every element decoded
    /// (unlike [`VomoClient::get_user`], which keeps them as raw JSON so a
    /// participation VOMO changed the shape of never breaks a user sync).
    pub async fn get_user_participations(&self, id: VomoUserId) -> Result<UserParticipations, VomoError> {
        let (answer, endpoint) = self.get_json(&format!("users/{id}"), &[], None).await?;
        let (mut value, prefix) = detail_of(answer.value);
        let list = join(prefix, "participations");
        let raw = value
            .get_mut("participations")
            .map(Value::take)
            .ok_or_else(|| field_error(&endpoint, &list, "missing"))?;
        // Participations without a user id take this one: it must be right.
        if value.get("id").and_then(lenient_id) != Some(id) {
            return Err(field_error(&endpoint, &join(prefix, "id"), "missing or not the user asked for"));
        }
        let wire: Vec<WireParticipation> = typed(raw, &list, &endpoint)?;
        bounded(wire.len(), &list, &endpoint)?;
        let ctx = KeyContext { user_id: Some(id), ..KeyContext::default() };
        Ok(UserParticipations {
            user_id: id,
            participations: into_participations(wire, ctx, &list, &endpoint)?,
            server_time: answer.server_time,
        })
    }

    /// `GET path?pairs[&page=N]`, status checked, body parsed as JSON.
    async fn get_json(
        &self,
        path: &str,
        pairs: &[(&'static str, String)],
        page: Option<u64>,
    ) -> Result<(Answer, String), VomoError> {
        let mut url = self.url(path);
        if !pairs.is_empty() || page.is_some() {
            let mut query = url.query_pairs_mut();
            for (key, value) in pairs {
                query.append_pair(key, value);
            }
            if let Some(page) = page {
                query.append_pair("page", &page.max(1).to_string());
            }
        }
        let endpoint = endpoint_label(&self.base, &url);
        let reply = self.send(Method::GET, url, None, &endpoint).await?;
        check_status(&reply, &endpoint)?;
        let value = parse_body(&reply.body, &endpoint)?;
        let answer =
            Answer { value, server_time: server_time(&reply.headers), rate: rate_info(&reply.headers) };
        Ok((answer, endpoint))
    }
}

/// An id sent as a number or a string.
fn lenient_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A decode error naming the field (a path such as
/// `data.participants[3].hours`) and the problem, quoting nothing of the
/// body: participation bodies hold personal data.
fn field_error(endpoint: &str, field: &str, problem: &str) -> VomoError {
    VomoError::Decode { endpoint: endpoint.to_owned(), reason: format!("field `{field}`: {problem}") }
}

/// JSON, or an error that says what the body looked like without quoting it.
fn parse_body(body: &[u8], endpoint: &str) -> Result<Value, VomoError> {
    serde_json::from_slice(body).map_err(|e| {
        let problem = if body.trim_ascii_start().starts_with(b"<") {
            "an HTML page, not JSON".to_owned()
        } else if e.is_eof() {
            "truncated JSON".to_owned()
        } else {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        };
        field_error(endpoint, "(body)", &problem)
    })
}

/// Types `value`; on failure names the field path under `prefix`.
fn typed<T: DeserializeOwned>(value: Value, prefix: &str, endpoint: &str) -> Result<T, VomoError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        field_error(endpoint, &join(prefix, &path), &problem_of(&e.into_inner()))
    })
}

/// `data` + `participants[3].hours` → `data.participants[3].hours`; an
/// empty prefix is a bare body.
fn join(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        ("", ".") => "(body)".to_owned(),
        (p, ".") => p.to_owned(),
        ("", rest) => rest.to_owned(),
        (p, rest) if rest.starts_with('[') => format!("{p}{rest}"),
        (p, rest) => format!("{p}.{rest}"),
    }
}

/// serde's message without any value it quotes: "missing field `x`" stays;
/// "invalid type: string \"Ada\", expected u32" becomes "wrong type or
/// value, expected u32"; our own decoders' messages carry no values.
fn problem_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text);
    if text.starts_with("missing field") || text.starts_with("expected ") {
        return text.to_owned();
    }
    match text.rsplit_once(", expected ") {
        Some((_, expected)) => format!("wrong type or value, expected {expected}"),
        None => "wrong type or value".to_owned(),
    }
}

/// `data` (an array) and `meta` of a list answer.
fn list_parts(value: Value, endpoint: &str) -> Result<(Vec<Value>, Option<Meta>), VomoError> {
    let Value::Object(mut map) = value else {
        return Err(field_error(endpoint, "(body)", "not a JSON object"));
    };
    let Some(Value::Array(data)) = map.remove("data") else {
        return Err(field_error(endpoint, "data", "missing or not an array"));
    };
    let meta = match map.remove("meta") {
        None | Some(Value::Null) => None,
        Some(meta) => Some(typed::<Meta>(meta, "meta", endpoint)?),
    };
    Ok((data, meta))
}

/// The object of a detail answer: `{data: {...}}`, or a bare object.
fn detail_of(value: Value) -> (Value, &'static str) {
    match value {
        Value::Object(mut map) if map.get("data").is_some_and(Value::is_object) => {
            (map.remove("data").unwrap_or_default(), "data")
        }
        other => (other, ""),
    }
}

/// Total and last page, checked against each other and the page's size.
fn check_meta(meta: &Meta, items: usize, endpoint: &str) -> Result<(u64, u64), VomoError> {
    let per_page = meta.per_page.filter(|p| *p > 0).unwrap_or(PAGE_SIZE);
    if per_page > MAX_PER_PAGE {
        return Err(field_error(endpoint, "meta.per_page", "implausibly large"));
    }
    if meta.total > MAX_TOTAL {
        return Err(field_error(endpoint, "meta.total", "implausibly large"));
    }
    let computed = meta.total.div_ceil(per_page).max(1);
    if meta.last_page.is_some_and(|last| last != computed) {
        return Err(field_error(endpoint, "meta.last_page", "disagrees with meta.total and meta.per_page"));
    }
    if items as u64 > per_page {
        return Err(field_error(endpoint, "data", "holds more items than meta.per_page"));
    }
    Ok((meta.total, computed))
}

fn bounded(count: usize, field: &str, endpoint: &str) -> Result<usize, VomoError> {
    if count > MAX_ITEMS { Err(field_error(endpoint, field, "implausibly many items")) } else { Ok(count) }
}

fn into_participations(
    wire: Vec<WireParticipation>,
    ctx: KeyContext,
    list: &str,
    endpoint: &str,
) -> Result<Vec<Participation>, VomoError> {
    wire.into_iter()
        .enumerate()
        .map(|(n, w)| {
            w.into_participation(ctx)
                .map_err(|(field, problem)| field_error(endpoint, &format!("{list}[{n}].{field}"), problem))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(total: u64, last_page: Option<u64>) -> Meta {
        serde_json::from_value(serde_json::json!({"total": total, "per_page": 15, "last_page": last_page}))
            .unwrap()
    }

    #[test]
    fn meta_must_be_plausible_and_consistent() {
        assert_eq!(check_meta(&meta(31, Some(3)), 15, "/p").unwrap(), (31, 3));
        assert_eq!(check_meta(&meta(0, None), 0, "/p").unwrap(), (0, 1));
        assert!(check_meta(&meta(31, Some(900)), 15, "/p").is_err(), "last_page beyond the total");
        assert!(check_meta(&meta(MAX_TOTAL + 1, None), 15, "/p").is_err());
        assert!(check_meta(&meta(31, None), 16, "/p").is_err(), "more items than a page");
    }

    #[test]
    fn field_errors_name_the_path_and_never_the_value() {
        let value = serde_json::json!([{"id": 1, "user_id": "Ada Lovelace", "project_date_id": 2}]);
        let e = typed::<Vec<WireParticipation>>(value, "data.participants", "/projects/date/2").unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("data.participants[0].user_id"), "{shown}");
        assert!(shown.contains("/projects/date/2"), "{shown}");
        assert!(!shown.contains("Ada"), "{shown}");
        let e = parse_body(b"<!DOCTYPE html><p>Whoops</p>", "/projects").unwrap_err();
        assert!(e.to_string().contains("HTML page") && !e.to_string().contains("Whoops"), "{e}");
        let e = parse_body(br#"{"data":[{"name":"Ada"#, "/projects").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn filters_and_their_anytime_split() {
        let at = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let filter =
            ProjectFilter { org_slugs: vec!["a".into(), "b".into()], ..ProjectFilter::updated_since(at) };
        let [dated, anytime] = filter.by_anytime();
        let pairs = dated.query_pairs();
        assert!(pairs.contains(&("updated_after", "2030-01-01T00:00:00.000Z".to_owned())));
        assert!(
            pairs.contains(&("anytime", "false".to_owned()))
                && pairs.contains(&("org_slug", "a,b".to_owned()))
        );
        assert!(anytime.query_pairs().contains(&("anytime", "true".to_owned())));
    }
}
