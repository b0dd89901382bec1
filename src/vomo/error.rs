//! Typed errors of the VOMO client: one variant per thing the engine reacts to
//! differently (stop the customer, wait, retry, park the record). No variant
//! carries the token or a request header.

use std::collections::BTreeMap;
use std::time::Duration;

/// What went wrong talking to VOMO.
#[derive(Debug, thiserror::Error)]
pub enum VomoError {
    /// 401: the token is missing, unknown, revoked or expired. Never retried.
    #[error("VOMO rejected the token (401 Unauthorized) on {endpoint}")]
    Unauthorized { endpoint: String },
    /// 403: the token is valid but not allowed. Never retried.
    #[error("VOMO refused access (403 Forbidden) on {endpoint}: {message}")]
    Forbidden { endpoint: String, message: String },
    #[error("not found (404) on {endpoint}")]
    NotFound { endpoint: String },
    /// 429: over the rate limit; wait `retry_after` (VOMO's `Retry-After`).
    #[error("rate limited (429) on {endpoint}{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { endpoint: String, retry_after: Option<Duration> },
    /// 422: VOMO refused the data; `fields` maps field → messages.
    #[error("VOMO refused the data (422) on {endpoint}: {}", format_fields(message, fields))]
    Validation { endpoint: String, message: String, fields: BTreeMap<String, Vec<String>> },
    /// 5xx.
    #[error("VOMO server error {status} on {endpoint}: {excerpt}")]
    Server { endpoint: String, status: u16, excerpt: String },
    /// Any other unexpected status.
    #[error("unexpected status {status} from VOMO on {endpoint}: {excerpt}")]
    UnexpectedStatus { endpoint: String, status: u16, excerpt: String },
    #[error("timed out talking to VOMO on {endpoint}")]
    Timeout { endpoint: String },
    #[error("cannot connect to VOMO for {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("transport error talking to VOMO on {endpoint}: {reason}")]
    Transport { endpoint: String, reason: String },
    /// The body was not what VOMO documents (HTML page, truncated JSON, wrong
    /// types). `excerpt` is the start of the body.
    #[error("cannot decode VOMO's response to {endpoint}: {reason}; body starts: {excerpt}")]
    Decode { endpoint: String, reason: String, excerpt: String },
    /// A body whose shape or values are wrong at `field` (a path such as
    /// `data.participants[3].hours`). Unlike `Decode` it quotes nothing of
    /// the body: participation bodies hold personal data.
    #[error("cannot decode VOMO's response to {endpoint}: {field}: {problem}")]
    DecodeField { endpoint: String, field: String, problem: String },
    #[error("invalid VOMO base URL {url}: {reason}")]
    BadBaseUrl { url: String, reason: String },
}

impl VomoError {
    /// Worth trying again after a pause (the engine decides how long).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Connect { .. }
                | Self::Transport { .. }
                | Self::Decode { .. }
                | Self::DecodeField { .. }
        )
    }

    /// The token is no good: stop this customer until an operator acts.
    pub fn is_token_problem(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::Forbidden { .. })
    }
}

fn format_fields(message: &str, fields: &BTreeMap<String, Vec<String>>) -> String {
    if fields.is_empty() {
        return message.to_owned();
    }
    let parts: Vec<String> =
        fields.iter().map(|(field, msgs)| format!("{field}: {}", msgs.join("; "))).collect();
    format!("{message} ({})", parts.join(", "))
}

/// At most `max` characters of a body, on one line, for error messages.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".to_owned();
    }
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
