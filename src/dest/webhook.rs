//! Webhook destination: each batch is one signed `POST {"events": [...]}` to
//! the customer's URL, and the verifier a receiver (and our tests) uses to
//! check that signature.
//!
//! Signature: `X-Vomo-Sync-Signature: sha256=<hex>` where `<hex>` is the
//! lowercase hex HMAC-SHA256, keyed with the shared secret, of
//! `"<timestamp>.<body>"`, and `<timestamp>` is the Unix seconds sent in
//! `X-Vomo-Sync-Timestamp`. Signing the timestamp with the body lets a
//! receiver refuse replays of an old request.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{DestError, Outcome, SecretSource, event_json};
use crate::config::redact_url;
use crate::domain::{Change, FailureClass};
use crate::excerpt::{EXCERPT_BYTES, excerpt_hiding};
use crate::outbound::OutboundPolicy;

/// Unix seconds at which the request was signed.
pub const TIMESTAMP_HEADER: &str = "X-Vomo-Sync-Timestamp";
/// `sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Vomo-Sync-Signature";
const SIGNATURE_PREFIX: &str = "sha256=";
/// A backstop beside the client's timeout: no receiver may stall a batch
/// for longer than this.
const BACKSTOP: Duration = Duration::from_secs(120);

type HmacSha256 = Hmac<Sha256>;

/// The HMAC keyed with `secret`. The key is padded (or, beyond one block,
/// hashed) to one block here exactly as RFC 2104 prescribes, which makes
/// construction infallible instead of a `Result` no key can fail.
fn keyed(secret: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if secret.len() > block.len() {
        let digest = Sha256::digest(secret);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    HmacSha256::new(&block)
}

fn mac_of(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(secret.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The full `X-Vomo-Sync-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac_of(secret, &timestamp.to_string(), body).finalize().into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {TIMESTAMP_HEADER} header is not a whole number of Unix seconds")]
    BadTimestamp,
    #[error(
        "the request was signed {age_secs} s from now, outside the {tolerance_secs} s tolerance (a replay or a wrong clock)"
    )]
    Stale { age_secs: i64, tolerance_secs: u64 },
    #[error("the {SIGNATURE_HEADER} header is not sha256=<64 hex digits>")]
    BadSignatureFormat,
    #[error("the signature does not match the body (wrong secret or altered body)")]
    Mismatch,
}

/// Checks a request as a receiver should: the timestamp must be within
/// `tolerance` of `now` (either side), and the signature must be the
/// HMAC-SHA256 of `"<timestamp header>.<raw body>"` under `secret`, compared
/// in constant time. Pass the body bytes exactly as received, before any
/// JSON parsing.
pub fn verify(
    secret: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp_header = timestamp_header.trim();
    let timestamp: i64 = timestamp_header.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let age_secs = now.timestamp().saturating_sub(timestamp);
    if age_secs.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::Stale { age_secs, tolerance_secs: tolerance.as_secs() });
    }
    let hex_tag =
        signature_header.trim().strip_prefix(SIGNATURE_PREFIX).ok_or(VerifyError::BadSignatureFormat)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_tag, &mut tag).map_err(|_| VerifyError::BadSignatureFormat)?;
    mac_of(secret, timestamp_header, body).verify_slice(&tag).map_err(|_| VerifyError::Mismatch)
}

pub struct WebhookDest {
    url: String,
    /// The URL as it may be shown: password and query string (often a token) hidden.
    shown: String,
    secret: SecretString,
    http: reqwest::Client,
}

/// Why one POST failed.
enum PostError {
    /// The receiver answered with a non-2xx status.
    Status { status: StatusCode, excerpt: String },
    /// No answer: connection, TLS, timeout.
    Transport(String),
}

impl WebhookDest {
    /// Reads the secret now, so a missing one is reported at onboarding and
    /// not at the first batch.
    pub fn new(url: &str, secret: &SecretSource, outbound: &OutboundPolicy) -> Result<Self, DestError> {
        let value = secret.read().map_err(|reason| {
            DestError::permanent(format!("webhook {}: no signing secret: {reason}", shown(url)))
        })?;
        let parsed = url::Url::parse(url)
            .map_err(|e| DestError::permanent(format!("webhook {}: invalid URL ({e})", shown(url))))?;
        // Its own client: the address check at connect time needs the
        // destination's host and port, and webhooks follow no redirect.
        let http = outbound
            .client_for(&parsed)
            .map_err(|reason| DestError::permanent(format!("webhook {}: {reason}", shown(url))))?;
        Ok(Self { url: url.to_owned(), shown: shown(url), secret: SecretString::from(value), http })
    }

    /// POSTs a signed empty batch; the receiver must answer 2xx.
    pub async fn check(&self) -> Result<(), DestError> {
        self.post(&[]).await.map_err(|e| {
            let mut error = self.error(&e);
            if let PostError::Status { .. } = e {
                error
                    .message
                    .push_str(r#"; the receiver must accept an empty batch {"events": []} with a 2xx"#);
            }
            error
        })
    }

    /// Sends `changes` as one batch; after a permanent refusal of a batch of
    /// several, resends them one at a time so only the refused ones fail.
    pub async fn apply(&self, customer: &str, changes: &[Change], synced_at: DateTime<Utc>) -> Vec<Outcome> {
        let events: Vec<Value> = changes.iter().map(|c| event_json(customer, c, synced_at)).collect();
        let ok = |c: &Change| Ok(c.vomo_user_id.to_string());
        match self.post(&events).await {
            Ok(()) => changes.iter().map(ok).collect(),
            Err(e) => {
                let error = self.error(&e);
                if error.class == FailureClass::Permanent && changes.len() > 1 && about_events(&e) {
                    return self.one_by_one(changes, &events).await;
                }
                changes.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }

    /// Each event alone, in order. After a retryable failure the rest are
    /// not tried (the receiver is down; each would wait out a timeout).
    async fn one_by_one(&self, changes: &[Change], events: &[Value]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut down: Option<DestError> = None;
        for (change, event) in changes.iter().zip(events) {
            if let Some(error) = &down {
                outcomes.push(Err(error.clone()));
                continue;
            }
            match self.post(std::slice::from_ref(event)).await {
                Ok(()) => outcomes.push(Ok(change.vomo_user_id.to_string())),
                Err(e) => {
                    let mut error = self.error(&e);
                    error.message = format!("user {}: {}", change.vomo_user_id, error.message);
                    if error.class == FailureClass::Retryable {
                        down = Some(error.clone());
                    }
                    outcomes.push(Err(error));
                }
            }
        }
        outcomes
    }

    /// One signed POST of `{"events": events}`.
    async fn post(&self, events: &[Value]) -> Result<(), PostError> {
        let body = serde_json::to_vec(&json!({ "events": events }))
            .map_err(|e| PostError::Transport(format!("cannot encode the batch: {e}")))?;
        let timestamp = Utc::now().timestamp();
        let secret = self.secret.expose_secret();
        let signed = sign(secret, timestamp, &body);
        let mut signature = HeaderValue::from_str(&signed)
            .map_err(|e| PostError::Transport(format!("cannot build the signature header: {e}")))?;
        signature.set_sensitive(true);
        let request = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send();
        let mut response = match tokio::time::timeout(BACKSTOP, request).await {
            Err(_) => return Err(PostError::Transport(format!("no answer within {} s", BACKSTOP.as_secs()))),
            Ok(Err(e)) => return Err(PostError::Transport(transport_reason(e))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let excerpt = excerpt(&mut response, &[secret, &signed]).await;
        Err(PostError::Status { status, excerpt })
    }

    fn error(&self, e: &PostError) -> DestError {
        match e {
            PostError::Status { status, excerpt } => {
                let said = if excerpt.is_empty() { String::new() } else { format!(": {excerpt}") };
                let message = format!("webhook {} answered {status}{said}", self.shown);
                DestError { class: status_class(*status), message, halt: None }
            }
            PostError::Transport(reason) => DestError::retryable(format!("webhook {}: {reason}", self.shown)),
        }
    }
}

/// Whether a permanent refusal may concern some events only. 401, 404, 405
/// and 410 concern the endpoint or the signature: every event alone would
/// get the same answer, so splitting the batch would only multiply requests.
fn about_events(e: &PostError) -> bool {
    match e {
        PostError::Status { status, .. } => !matches!(status.as_u16(), 401 | 404 | 405 | 410),
        PostError::Transport(_) => false,
    }
}

/// 408 (timeout) and 429 (rate limit) and 5xx heal with time; other 4xx say
/// this request will never be accepted.
fn status_class(status: StatusCode) -> FailureClass {
    if status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
    {
        FailureClass::Permanent
    } else {
        FailureClass::Retryable
    }
}

/// A transport failure without the URL (which may carry a token in its
/// query) but with its underlying cause.
fn transport_reason(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer within the request timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() { kind.to_owned() } else { format!("{kind} ({})", causes.join(": ")) }
}

/// The first characters of the answer on one line, read no further than
/// needed, with the secret and signature blanked should a receiver echo them.
async fn excerpt(response: &mut reqwest::Response, hidden: &[&str]) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt_hiding(&bytes, EXCERPT_BYTES, hidden)
}

/// `url` with its password and query string (often a token) hidden.
fn shown(url: &str) -> String {
    match url::Url::parse(&redact_url(url)) {
        Ok(mut parsed) if parsed.query().is_some() => {
            // Appended after formatting: `set_query` would percent-encode it.
            parsed.set_query(None);
            format!("{parsed}?…")
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classed() {
        assert_eq!(status_class(StatusCode::BAD_REQUEST), FailureClass::Permanent);
        assert_eq!(status_class(StatusCode::NOT_FOUND), FailureClass::Permanent);
        assert_eq!(status_class(StatusCode::REQUEST_TIMEOUT), FailureClass::Retryable);
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), FailureClass::Retryable);
        assert_eq!(status_class(StatusCode::BAD_GATEWAY), FailureClass::Retryable);
    }

    #[test]
    fn shown_urls_hide_the_query() {
        assert_eq!(shown("https://h.example/x?token=abc"), "https://h.example/x?…");
        assert_eq!(shown("http://h/x"), "http://h/x");
        assert_eq!(shown("https://u:pw@h/x"), "https://u:***@h/x");
    }
}
