//! HTTP to HubSpot for one destination: every request through the budget,
//! one at a time, with the token as a sensitive `Authorization` header; the
//! answer read to at most 16 MiB and parsed as hostile input; HubSpot's
//! error body cut to a short excerpt. 429s are waited out (10-second policy)
//! or stop the destination for the day; 5xx, timeouts and lost connections
//! are retried a few times (every call here is idempotent: upserts by a
//! unique property, updates by id, reads, archives, GDPR deletes).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::budget::{Budget, WINDOW};
use crate::excerpt::{EXCERPT_BYTES, excerpt, excerpt_hiding};

/// The most of an answer ever read.
const BODY_CAP: usize = 16 * 1024 * 1024;
/// A backstop for a shared client built without a request timeout.
const BACKSTOP: Duration = Duration::from_secs(120);
/// Attempts per call for 5xx, timeouts and lost connections.
const ATTEMPTS: u32 = 4;
/// Waits after 10-second-policy 429s before giving up on a call.
const RATE_LIMIT_RETRIES: u32 = 3;

/// A successful answer (2xx, 207 included).
#[derive(Debug)]
pub struct Reply {
    pub body: Value,
}

/// HubSpot's error body, every field optional, texts cut to an excerpt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubspotError {
    pub category: Option<String>,
    pub message: String,
    pub policy: Option<String>,
    pub correlation_id: Option<String>,
    /// From a `MISSING_SCOPES` answer's `errors[].context.requiredScopes`.
    pub required_scopes: Vec<String>,
}

impl HubspotError {
    /// Reads an error object (a whole answer or one entry of `errors[]`).
    pub fn from_json(value: &Value) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(quoted);
        let required_scopes = value
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/context/requiredScopes").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(quoted)
            .collect();
        Self {
            category: text("category").or_else(|| text("errorType")),
            message: text("message").unwrap_or_default(),
            policy: text("policyName"),
            correlation_id: text("correlationId"),
            required_scopes,
        }
    }

    /// `CATEGORY: message (correlationId …)`.
    pub fn describe(&self) -> String {
        let mut text = match &self.category {
            Some(category) => format!("{category}: {}", self.message),
            None => self.message.clone(),
        };
        if let Some(id) = &self.correlation_id {
            text.push_str(&format!(" (correlationId {id})"));
        }
        text
    }
}

/// Why a call failed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// HubSpot answered with an error status.
    Status { status: StatusCode, error: HubspotError },
    /// No (complete) answer: connection, TLS, timeout, a cut-off body.
    Transport(String),
    /// The account's daily allowance is used up until then.
    DailyLimit { until: DateTime<Utc> },
}

impl CallError {
    /// Worth trying again later (the engine's DLQ retry).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::UNAUTHORIZED
                    || *status == StatusCode::FORBIDDEN
            }
            Self::Transport(_) | Self::DailyLimit { .. } => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Status { status, error } => format!("HubSpot answered {status}: {}", error.describe()),
            Self::Transport(reason) => format!("HubSpot: {reason}"),
            Self::DailyLimit { until } => format!(
                "HubSpot's daily request limit for this account is reached; no requests until {} \
                 (HubSpot resets it at midnight in the account's time zone)",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}

/// One destination's connection to HubSpot.
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Replaced when the operator puts a new token where the spec points
    /// (see [`Client::replace_token`]); never shown.
    token: std::sync::RwLock<SecretString>,
    budget: Arc<Budget>,
    /// One request in flight: a 429 stops the next request, not several.
    in_flight: tokio::sync::Mutex<()>,
}

impl Client {
    pub fn new(http: reqwest::Client, base: &str, token: SecretString, budget: Arc<Budget>) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: std::sync::RwLock::new(token),
            budget,
            in_flight: tokio::sync::Mutex::new(()),
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The token itself (for the token-info call, which names it in its body).
    pub fn token(&self) -> SecretString {
        self.token.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Uses `token` from now on; true when it differs from the old one.
    pub fn replace_token(&self, token: SecretString) -> bool {
        let mut held = self.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = held.expose_secret() != token.expose_secret();
        *held = token;
        changed
    }

    /// One call with HubSpot's limits honoured and transient failures retried.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, CallError> {
        let mut failures = 0;
        let mut limited = 0;
        loop {
            self.budget.acquire().await.map_err(|until| CallError::DailyLimit { until })?;
            let (result, headers) = self.once(method.clone(), path, body).await;
            if let Some(headers) = &headers {
                self.budget.observe_daily(header_u64(headers, "x-hubspot-ratelimit-daily"), {
                    header_u64(headers, "x-hubspot-ratelimit-daily-remaining")
                });
            }
            let error = match result {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            if let CallError::Status { status: StatusCode::TOO_MANY_REQUESTS, error: body } = &error {
                if body.policy.as_deref() == Some("DAILY") {
                    return Err(CallError::DailyLimit { until: self.budget.on_daily_limit() });
                }
                let policy = body.policy.clone().unwrap_or_else(|| "UNNAMED".to_owned());
                self.budget.on_rate_limited(&policy, wait_after_429(headers.as_ref()));
                limited += 1;
                if limited > RATE_LIMIT_RETRIES {
                    return Err(error);
                }
                continue;
            }
            failures += 1;
            if !transient(&error) || failures >= ATTEMPTS {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(200 << failures)).await;
        }
    }

    /// One request; the answer's headers when there was an answer.
    async fn once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (Result<Reply, CallError>, Option<HeaderMap>) {
        let _one = self.in_flight.lock().await;
        let mut auth = match HeaderValue::from_str(&format!("Bearer {}", self.token().expose_secret())) {
            Ok(value) => value,
            Err(_) => {
                return (Err(CallError::Transport("the token is not a valid header value".into())), None);
            }
        };
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let mut response = match tokio::time::timeout(BACKSTOP, request.send()).await {
            Err(_) => {
                return (
                    Err(CallError::Transport(format!("no answer within {} s", BACKSTOP.as_secs()))),
                    None,
                );
            }
            Ok(Err(e)) => return (Err(CallError::Transport(transport_reason(&e))), None),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match read_capped(&mut response).await {
            Ok(bytes) => bytes,
            Err(reason) => return (Err(CallError::Transport(reason)), Some(headers)),
        };
        (self.interpret(status, &bytes), Some(headers))
    }

    fn interpret(&self, status: StatusCode, bytes: &[u8]) -> Result<Reply, CallError> {
        let parsed = serde_json::from_slice::<Value>(bytes).ok();
        if status.is_success() {
            let body = match parsed {
                Some(body) => body,
                None if bytes.iter().all(u8::is_ascii_whitespace) => Value::Null,
                None => {
                    let said = self.quote(bytes);
                    return Err(CallError::Transport(format!(
                        "HubSpot answered {status} with a body that is not JSON: {said}"
                    )));
                }
            };
            return Ok(Reply { body });
        }
        let mut error = match parsed {
            Some(body @ Value::Object(_)) => HubspotError::from_json(&body),
            _ => HubspotError { message: self.quote(bytes), ..HubspotError::default() },
        };
        error.message = self.hide_token(&error.message);
        Err(CallError::Status { status, error })
    }

    /// Blanks the token should HubSpot (or a proxy) ever echo it.
    /// An answer's body quoted in a message, with the token blanked should
    /// HubSpot echo it.
    fn quote(&self, bytes: &[u8]) -> String {
        excerpt_hiding(bytes, EXCERPT_BYTES, &[self.token().expose_secret()])
    }

    fn hide_token(&self, text: &str) -> String {
        let token = self.token();
        let token = token.expose_secret();
        if token.is_empty() { text.to_owned() } else { text.replace(token, "***") }
    }
}

fn transient(error: &CallError) -> bool {
    match error {
        CallError::Status { status, .. } => {
            status.is_server_error() || *status == StatusCode::REQUEST_TIMEOUT
        }
        CallError::Transport(_) => true,
        CallError::DailyLimit { .. } => false,
    }
}

/// `Retry-After` when sent, else HubSpot's interval header, else the window.
fn wait_after_429(headers: Option<&HeaderMap>) -> Duration {
    let Some(headers) = headers else { return WINDOW };
    if let Some(secs) = header_u64(headers, RETRY_AFTER.as_str()) {
        return Duration::from_secs(secs.clamp(1, 60));
    }
    header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
        .map_or(WINDOW, |ms| Duration::from_millis(ms.clamp(1000, 60_000)))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The body, refused beyond [`BODY_CAP`].
async fn read_capped(response: &mut reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(BACKSTOP, response.chunk()).await {
            Err(_) => return Err("the answer stalled".to_owned()),
            Ok(Err(e)) => return Err(format!("the answer was cut off ({})", transport_reason(&e))),
            Ok(Ok(None)) => return Ok(bytes),
            Ok(Ok(Some(chunk))) => chunk,
        };
        if bytes.len() + chunk.len() > BODY_CAP {
            return Err(format!("the answer exceeds {} MiB", BODY_CAP / (1024 * 1024)));
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// A transport failure with its causes, without the URL.
fn transport_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer within the request timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() { kind.to_owned() } else { format!("{kind} ({})", quoted(&causes.join(": "))) }
}

/// A field of HubSpot's answer quoted in a message.
fn quoted(text: &str) -> String {
    excerpt(text.as_bytes(), EXCERPT_BYTES)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_bodies_are_read_field_by_field() {
        let body = json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call.",
            "correlationId": "abc",
            "category": "MISSING_SCOPES",
            "errors": [{"message": "One or more…", "context": {"requiredScopes": ["crm.objects.contacts.write"]}}],
        });
        let error = HubspotError::from_json(&body);
        assert_eq!(error.category.as_deref(), Some("MISSING_SCOPES"));
        assert_eq!(error.required_scopes, ["crm.objects.contacts.write"]);
        assert!(error.describe().contains("(correlationId abc)"));
        let limited = HubspotError::from_json(&json!({"errorType": "RATE_LIMIT", "policyName": "DAILY"}));
        assert_eq!(
            (limited.category.as_deref(), limited.policy.as_deref()),
            (Some("RATE_LIMIT"), Some("DAILY"))
        );
        assert_eq!(HubspotError::from_json(&json!([1, 2])), HubspotError::default());
    }

    #[test]
    fn waits_after_429_follow_the_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(wait_after_429(Some(&headers)), WINDOW);
        headers.insert("x-hubspot-ratelimit-interval-milliseconds", HeaderValue::from(10_000));
        assert_eq!(wait_after_429(Some(&headers)), Duration::from_secs(10));
        headers.insert(RETRY_AFTER, HeaderValue::from(3));
        assert_eq!(wait_after_429(Some(&headers)), Duration::from_secs(3));
    }
}
