//! The VOMO API client. Knows HTTP and VOMO's wire format; knows nothing of
//! jobs, the state DB or destinations. One [`VomoClient`] per customer token;
//! they share one connection pool. The client never retries: it returns typed
//! errors and the engine decides (budgets, backoff, stopping on 401). The
//! Projects calls are in [`projects`].

pub mod error;
pub mod projects;
pub mod wire;
pub mod wire_projects;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

pub use error::VomoError;
pub use projects::{
    ProjectDateDetail, ProjectDetail, ProjectFilter, ProjectPage, TodayPage, UserParticipations,
};

use crate::domain::{ApiToken, User, VomoUserId};
use crate::excerpt::{EXCERPT_BYTES, excerpt};

/// VOMO's fixed page size (vomo-api.md §4).
pub const PAGE_SIZE: u64 = 15;

/// The largest body read by default (`vomo.max_body`).
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;
/// More users than any organisation has: a larger `meta.total` is a lie.
const MAX_PLAUSIBLE_TOTAL: u64 = 100_000_000;
/// VOMO's page size is fixed at 15; a page claiming far more is refused.
const MAX_PLAUSIBLE_PER_PAGE: u64 = 100;
/// How much of a malformed user's JSON is kept for the DLQ.
const RAW_USER_BYTES: usize = 2048;

/// Timeouts for every VOMO request.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// The largest body read; larger ones fail the request.
    pub max_body: u64,
}

/// Builds the HTTP connection pool shared by every customer's client.
pub fn http_pool(settings: ClientSettings) -> Result<reqwest::Client, VomoError> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .user_agent(concat!("vomo-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| VomoError::Transport { endpoint: "(client setup)".into(), reason: e.to_string() })
}

/// Filters of `GET /users`; all inclusive, combined with AND (vomo-api.md §5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub name_like: Option<String>,
    pub email_like: Option<String>,
}

impl UserFilter {
    /// Users whose `updated_at` lies in `[from, to]`.
    pub fn updated_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self { updated_after: Some(from), updated_before: Some(to), ..Self::default() }
    }

    fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let times = [
            ("updated_after", self.updated_after),
            ("updated_before", self.updated_before),
            ("created_after", self.created_after),
            ("created_before", self.created_before),
        ];
        let mut pairs: Vec<(&'static str, String)> =
            times.into_iter().filter_map(|(k, v)| v.map(|at| (k, iso_millis(&at)))).collect();
        if let Some(name) = &self.name_like {
            pairs.push(("name_like", name.clone()));
        }
        if let Some(email) = &self.email_like {
            pairs.push(("email_like", email.clone()));
        }
        pairs
    }
}

/// The form every docs example sends (`Date.toISOString()`).
fn iso_millis(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What VOMO says about the caller's rate budget (`X-RateLimit-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
}

/// Told of every answer VOMO gives a client (the customer's budget, which
/// learns the declared limit from it).
pub trait RateObserver: Send + Sync {
    /// `status` and the `X-RateLimit-*` of one answer, before its body is read.
    fn answered(&self, status: u16, rate: RateInfo);
}

/// A user VOMO listed whose id is readable but whose fields are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedUser {
    pub id: VomoUserId,
    /// Its `updated_at`, when that much is readable.
    pub updated_at: Option<DateTime<Utc>>,
    /// Which field and why, without its value (no personal data).
    pub reason: String,
    /// The start of the record as VOMO sent it (for the DLQ only).
    pub raw: String,
}

/// One page of `GET /users`.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Listed users that could not be read (they still count as seen).
    pub malformed: Vec<MalformedUser>,
    pub page: u64,
    /// `meta.total`: users matching the filter across all pages.
    pub total: u64,
    /// `meta.last_page`, or computed from `total` when VOMO leaves it out.
    pub last_page: u64,
    /// VOMO's clock, from the `Date` header.
    pub server_time: Option<DateTime<Utc>>,
    pub rate: RateInfo,
}

/// `GET /users/{id}`: the list fields plus the detail-only arrays.
#[derive(Debug, Clone)]
pub struct UserDetail {
    pub user: User,
    pub participations: Vec<serde_json::Value>,
    pub profile_field_values: Vec<serde_json::Value>,
}

/// The full record `POST /users` needs (five fields are required, so every
/// update resends them).
#[derive(Debug, Clone)]
pub struct UpsertRequest {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub birthday: String,
    pub gender: String,
    /// Always sent: VOMO may demote a user when `role` is omitted.
    pub role: String,
    pub phone: Option<String>,
    pub org: Option<String>,
}

/// Whether `POST /users` created the user (201) or updated one (200).
#[derive(Debug, Clone)]
pub enum UpsertOutcome {
    Created(UserDetail),
    Updated(UserDetail),
}

/// A client bound to one customer's token and base URL.
#[derive(Clone)]
pub struct VomoClient {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    max_body: u64,
    observer: Option<std::sync::Arc<dyn RateObserver>>,
}

/// Refuses a VOMO URL over which the token would travel in clear text: a
/// plain `http://` URL whose host is not loopback (the simulator's), unless
/// the operator allowed it (`vomo.allow_insecure_http`).
pub fn check_transport(base_url: &str, allow_insecure_http: bool) -> Result<(), VomoError> {
    let bad = |reason: String| VomoError::BadBaseUrl { url: base_url.to_owned(), reason };
    let url = Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() == "http" && !loopback && !allow_insecure_http {
        return Err(bad(
            "plain http:// off this machine would send the customer's token in clear text; use https://, \
             or set vomo.allow_insecure_http = true (VOMO_SYNC_VOMO_ALLOW_INSECURE_HTTP=true) if you must"
                .into(),
        ));
    }
    Ok(())
}

impl std::fmt::Debug for VomoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VomoClient").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl VomoClient {
    /// A client for `base_url` (e.g. `https://api.vomo.org/v1`) and `token`.
    pub fn new(http: reqwest::Client, base_url: &str, token: &ApiToken) -> Result<Self, VomoError> {
        let bad = |reason: String| VomoError::BadBaseUrl { url: base_url.to_owned(), reason };
        let mut base = Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("not an http(s) URL".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| bad("the token contains characters that cannot go in a header".into()))?;
        // Keeps the header out of reqwest's and hyper's debug output.
        auth.set_sensitive(true);
        Ok(Self { http, base, auth, max_body: DEFAULT_MAX_BODY, observer: None })
    }

    /// The same client telling `observer` of every answer.
    #[must_use]
    pub fn with_rate_observer(mut self, observer: std::sync::Arc<dyn RateObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same client reading bodies of at most `max_body` bytes.
    #[must_use]
    pub fn with_max_body(mut self, max_body: u64) -> Self {
        self.max_body = max_body;
        self
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// One page of users matching `filter`. Builds the page URL itself rather
    /// than following `links.next`, which might drop the filters.
    pub async fn list_users(&self, filter: &UserFilter, page: u64) -> Result<UserPage, VomoError> {
        let mut url = self.url("users");
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in filter.query_pairs() {
                query.append_pair(key, &value);
            }
            query.append_pair("page", &page.max(1).to_string());
        }
        let endpoint = endpoint_label(&self.base, &url);
        let reply = self.send(Method::GET, url, None, &endpoint).await?;
        check_status(&reply, &endpoint)?;
        let server_time = server_time(&reply.headers);
        let rate = rate_info(&reply.headers);
        let (meta, users, malformed) = decode_user_list(&reply.body, &endpoint)?;
        let page = page.max(1);
        let last_page = check_page(&meta, page, users.len() + malformed.len())
            .and_then(|last_page| {
                let stamps = users
                    .iter()
                    .map(|u| (u.id, u.updated_at))
                    .chain(malformed.iter().filter_map(|m| Some((m.id, m.updated_at?))));
                check_in_window(filter, stamps).map(|()| last_page)
            })
            .map_err(|reason| VomoError::Decode { endpoint: endpoint.clone(), reason })?;
        Ok(UserPage { users, malformed, page, total: meta.total, last_page, server_time, rate })
    }

    /// One user's detail; `NotFound` when VOMO no longer has it.
    pub async fn get_user(&self, id: VomoUserId) -> Result<UserDetail, VomoError> {
        let url = self.url(&format!("users/{id}"));
        let endpoint = endpoint_label(&self.base, &url);
        let reply = self.send(Method::GET, url, None, &endpoint).await?;
        check_status(&reply, &endpoint)?;
        let envelope: wire::DetailEnvelope = decode(&reply.body, &endpoint)?;
        let wire = match envelope {
            wire::DetailEnvelope::Wrapped { data } | wire::DetailEnvelope::Bare(data) => data,
        };
        Ok(detail(wire))
    }

    /// Create-or-update by e-mail (`POST /users`).
    pub async fn upsert_user(&self, request: &UpsertRequest) -> Result<UpsertOutcome, VomoError> {
        let url = self.url("users");
        let endpoint = endpoint_label(&self.base, &url);
        let body = wire::UpsertBody {
            first_name: &request.first_name,
            last_name: &request.last_name,
            email: &request.email,
            birthday: &request.birthday,
            gender: &request.gender,
            role: &request.role,
            phone: request.phone.as_deref(),
            org: request.org.as_deref(),
        };
        let json = serde_json::to_vec(&body)
            .map_err(|e| VomoError::Transport { endpoint: endpoint.clone(), reason: e.to_string() })?;
        let reply = self.send(Method::POST, url, Some(json), &endpoint).await?;
        check_status(&reply, &endpoint)?;
        let envelope: wire::UpsertEnvelope = decode(&reply.body, &endpoint)?;
        let detail = detail(envelope.data);
        Ok(if reply.status == StatusCode::CREATED {
            UpsertOutcome::Created(detail)
        } else {
            UpsertOutcome::Updated(detail)
        })
    }

    fn url(&self, path: &str) -> Url {
        // `base` always ends with '/', and `path` is relative, so this cannot
        // fail; fall back to the base rather than panic.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<Vec<u8>>,
        endpoint: &str,
    ) -> Result<Reply, VomoError> {
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(json) = json {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(json);
        }
        let mut response = request.send().await.map_err(|e| transport_error(&e, endpoint))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(observer) = &self.observer {
            observer.answered(status.as_u16(), rate_info(&headers));
        }
        let too_large = || VomoError::TooLarge { endpoint: endpoint.to_owned(), limit: self.max_body };
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(too_large());
        }
        // Read chunk by chunk, so a body that never ends costs at most the cap.
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e, endpoint))? {
            if (body.len() + chunk.len()) as u64 > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, headers, body: body.freeze() })
    }
}

/// Decodes a `GET /users` page. The whole page at once when it is well
/// formed (the fast path); otherwise user by user, so one unreadable user
/// does not hide the others: a user whose id can be read is returned as
/// malformed, a user without a readable id fails the page.
fn decode_user_list(
    body: &[u8],
    endpoint: &str,
) -> Result<(wire::Meta, Vec<User>, Vec<MalformedUser>), VomoError> {
    if let Ok(envelope) = serde_json::from_slice::<wire::ListEnvelope>(body) {
        let users = envelope.data.into_iter().map(wire::WireUser::into_user).collect();
        return Ok((envelope.meta, users, Vec::new()));
    }
    let envelope: wire::LooseListEnvelope = decode(body, endpoint)?;
    let (mut users, mut malformed) = (Vec::new(), Vec::new());
    for (index, value) in envelope.data.into_iter().enumerate() {
        match wire::decode_user(value) {
            Ok(user) => users.push(user),
            Err(bad) => match bad.id {
                Some(id) => malformed.push(MalformedUser {
                    id,
                    updated_at: bad.updated_at,
                    reason: format!("user {id}: {}", bad.reason),
                    raw: excerpt(bad.raw.as_bytes(), RAW_USER_BYTES),
                }),
                None => {
                    return Err(VomoError::Decode {
                        endpoint: endpoint.to_owned(),
                        reason: format!("user #{} of the page has no readable id: {}", index + 1, bad.reason),
                    });
                }
            },
        }
    }
    Ok((envelope.meta, users, malformed))
}

/// Checks a page's `meta` against itself and against what the page holds;
/// returns the page's last page. A walk must never be steered by numbers
/// that contradict each other: a `last_page` of 10^12 over empty pages
/// would walk forever.
fn check_page(meta: &wire::Meta, page: u64, listed: usize) -> Result<u64, String> {
    let per_page = meta.per_page.unwrap_or(PAGE_SIZE);
    if per_page == 0 || per_page > MAX_PLAUSIBLE_PER_PAGE {
        return Err(format!("meta.per_page is {per_page}, VOMO's pages hold {PAGE_SIZE} users"));
    }
    let listed = listed as u64;
    if listed > per_page {
        return Err(format!("page {page} lists {listed} users, more than its per_page of {per_page}"));
    }
    if meta.total > MAX_PLAUSIBLE_TOTAL {
        return Err(format!("meta.total is {}, more than any organisation holds", meta.total));
    }
    let computed_last = meta.total.div_ceil(per_page).max(1);
    let last_page = meta.last_page.unwrap_or(computed_last).max(1);
    if last_page != computed_last {
        return Err(format!(
            "meta.last_page is {last_page} but meta.total {} at {per_page} per page makes {computed_last}",
            meta.total
        ));
    }
    if let Some(current) = meta.current_page
        && current != page
    {
        return Err(format!("VOMO answered page {current} to a request for page {page}"));
    }
    if listed > 0 && (page - 1) * per_page + listed > meta.total {
        return Err(format!("page {page} lists {listed} users, beyond the {} meta.total claims", meta.total));
    }
    if listed == 0 && page < last_page {
        return Err(format!("page {page} is empty but meta.last_page claims {last_page} pages"));
    }
    Ok(last_page)
}

/// Checks that every user a page lists lies in the `updated_at` window it
/// was asked for. A VOMO that ignores the filter (a renamed parameter is
/// ignored, not refused) answers every window with the same users; a walk
/// steered by those answers would narrow its windows forever and a
/// checkpoint moved on them would claim a window nobody read. VOMO compares
/// at second precision, so a second of slack either side.
fn check_in_window(
    filter: &UserFilter,
    stamps: impl Iterator<Item = (VomoUserId, DateTime<Utc>)>,
) -> Result<(), String> {
    let slack = chrono::TimeDelta::seconds(1);
    for (id, updated_at) in stamps {
        let early =
            filter.updated_after.filter(|after| updated_at + slack < *after).map(|b| ("updated_after", b));
        let late = filter
            .updated_before
            .filter(|before| updated_at > *before + slack)
            .map(|b| ("updated_before", b));
        if let Some((name, bound)) = early.or(late) {
            return Err(format!(
                "user {id} was updated at {}, outside the requested {name}={}: VOMO is not applying its \
                 updated_after/updated_before filter, so no window it answers can be trusted",
                crate::domain::format_rfc3339(&updated_at),
                iso_millis(&bound)
            ));
        }
    }
    Ok(())
}

fn detail(wire: wire::WireUser) -> UserDetail {
    let participations = wire.participations.clone().unwrap_or_default();
    let profile_field_values = wire.profile_field_values.clone().unwrap_or_default();
    UserDetail { user: wire.into_user(), participations, profile_field_values }
}

/// `GET /users?page=2&…`: the request as errors name it, relative to the base.
fn endpoint_label(base: &Url, url: &Url) -> String {
    let path = url.path().strip_prefix(base.path()).unwrap_or(url.path());
    match url.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    }
}

fn transport_error(error: &reqwest::Error, endpoint: &str) -> VomoError {
    let endpoint = endpoint.to_owned();
    let reason = source_chain(error);
    if error.is_timeout() {
        VomoError::Timeout { endpoint }
    } else if error.is_connect() {
        VomoError::Connect { endpoint, reason }
    } else {
        VomoError::Transport { endpoint, reason }
    }
}

/// The error and its causes on one line ("error sending request: connection refused").
fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        let text = err.to_string();
        // reqwest appends " for url (…)"; the endpoint is named elsewhere.
        let text = text.split(" for url (").next().unwrap_or(&text).to_owned();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

fn check_status(reply: &Reply, endpoint: &str) -> Result<(), VomoError> {
    let status = reply.status;
    if status.is_success() {
        return Ok(());
    }
    let endpoint = endpoint.to_owned();
    // An error body is copied into messages, logs and the DLQ: an excerpt
    // of it, never all of it.
    let body: wire::ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    let message = body
        .message
        .as_deref()
        .map_or_else(|| quote_body(&reply.body), |m| excerpt(m.as_bytes(), EXCERPT_BYTES));
    Err(match status.as_u16() {
        401 => VomoError::Unauthorized { endpoint },
        403 => VomoError::Forbidden { endpoint, message },
        404 => VomoError::NotFound { endpoint },
        422 => {
            VomoError::Validation { endpoint, message, fields: error::bounded_fields(body.field_messages()) }
        }
        429 => VomoError::RateLimited { endpoint, retry_after: retry_after(&reply.headers) },
        code @ 500..=599 => VomoError::Server { endpoint, status: code, excerpt: quote_body(&reply.body) },
        code => VomoError::UnexpectedStatus { endpoint, status: code, excerpt: quote_body(&reply.body) },
    })
}

/// Decodes a success body. The error names the field (its path) and what
/// was wrong, never the value found there: a body is full of personal data.
fn decode<T: DeserializeOwned>(body: &[u8], endpoint: &str) -> Result<T, VomoError> {
    // A body that is not JSON at all (a proxy's HTML error page) holds no
    // user data; its start tells the operator what answered.
    if !body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| matches!(b, b'{' | b'[')) {
        return Err(VomoError::Decode {
            endpoint: endpoint.to_owned(),
            reason: format!("the body is not JSON; it starts: {}", quote_body(body)),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| VomoError::Decode {
        endpoint: endpoint.to_owned(),
        reason: wire::describe_error(&e.path().to_string(), e.inner()),
    })
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?.with_timezone(&Utc);
    (at - Utc::now()).to_std().ok()
}

fn server_time(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(text).ok().map(|at| at.with_timezone(&Utc))
}

fn rate_info(headers: &HeaderMap) -> RateInfo {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse().ok();
    RateInfo { limit: number("x-ratelimit-limit"), remaining: number("x-ratelimit-remaining") }
}

/// A body quoted in an error message: an excerpt, or a note that it was empty.
fn quote_body(body: &[u8]) -> String {
    let said = excerpt(body, EXCERPT_BYTES);
    if said.is_empty() { "(empty body)".to_owned() } else { said }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_sent_as_iso_millis() {
        let at = DateTime::parse_from_rfc3339("2025-03-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let pairs = UserFilter::updated_between(at, at).query_pairs();
        assert_eq!(pairs[0], ("updated_after", "2025-03-01T00:00:00.000Z".to_owned()));
        assert_eq!(pairs[1].0, "updated_before");
    }

    #[test]
    fn endpoint_labels_are_relative_to_the_base() {
        let base = Url::parse("http://h:1/v1/").unwrap();
        let url = Url::parse("http://h:1/v1/users?page=2").unwrap();
        assert_eq!(endpoint_label(&base, &url), "/users?page=2");
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }

    #[test]
    fn client_debug_hides_the_token() {
        let http = reqwest::Client::new();
        let token = ApiToken::new("super-secret-token-value-1234").unwrap();
        let client = VomoClient::new(http, "http://127.0.0.1:1/v1", &token).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert_eq!(client.base_url(), "http://127.0.0.1:1/v1/");
    }
}
