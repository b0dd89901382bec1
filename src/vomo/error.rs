//! Typed errors of the VOMO client: one variant per thing the engine reacts to
//! differently (stop the customer, wait, retry, park the record). No variant
//! carries the token or a request header.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::excerpt::excerpt;

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
    /// types, numbers that contradict each other). `reason` names the field
    /// and the user id, never a value (the body holds personal data).
    #[error("cannot decode VOMO's response to {endpoint}: {reason}")]
    Decode { endpoint: String, reason: String },
    /// The body is larger than `vomo.max_body`; nothing of it was used.
    #[error(
        "VOMO's response to {endpoint} is larger than {} (vomo.max_body); refused without reading it whole",
        byte_size(*limit)
    )]
    TooLarge { endpoint: String, limit: u64 },
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

/// 422 field messages bounded like any remote text: at most 20 fields and
/// 5 messages each, every one an excerpt.
pub fn bounded_fields(fields: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    fields
        .into_iter()
        .take(20)
        .map(|(field, msgs)| {
            let msgs = msgs.iter().take(5).map(|m| excerpt(m.as_bytes(), 200)).collect();
            (excerpt(field.as_bytes(), 64), msgs)
        })
        .collect()
}

fn byte_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}
