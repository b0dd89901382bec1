//! The records the state DB stores and returns. Enum columns are text in the
//! DB (readable with any SQL client) and typed here.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::{ContentHash, CustomerSettings, VomoUserId, Window};
pub use crate::domain::{CustomerStatus, FailureClass, RunKind, RunOutcome, TokenState};

pub type CustomerId = i64;
pub type DlqId = i64;
pub type RunId = i64;

crate::domain::text_enum!(
    /// Life of a DLQ entry.
    DlqStatus {
        Pending => "pending",
        Resolved => "resolved",
        Superseded => "superseded",
        Discarded => "discarded",
    }
);

/// A customer row.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub status: CustomerStatus,
    pub status_reason: Option<String>,
    pub vomo_url: String,
    pub settings: CustomerSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub offboarded_at: Option<DateTime<Utc>>,
}

/// What onboarding stores for a new customer.
#[derive(Debug, Clone)]
pub struct NewCustomer<'a> {
    pub name: &'a str,
    pub vomo_url: &'a str,
    pub settings: &'a CustomerSettings,
    pub status: CustomerStatus,
}

/// A token as stored: ciphertext and what may be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub fingerprint: String,
    pub state: TokenState,
    pub validated_at: Option<DateTime<Utc>>,
}

/// A destination row. `secret` is decrypted on read; it is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct DestinationRecord {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// The destination's settings as JSON (no secrets).
    pub config: String,
    pub secret: Option<String>,
}

impl fmt::Debug for DestinationRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A destination to store at onboarding.
#[derive(Clone)]
pub struct NewDestination {
    pub name: String,
    pub kind: String,
    pub config: String,
    pub secret: Option<String>,
}

/// Where a customer's stream stands: everything with `updated_at` before
/// `watermark` is synced; `in_flight` is the window being walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub watermark: DateTime<Utc>,
    pub in_flight: Option<Window>,
    pub updated_at: DateTime<Utc>,
}

/// What the integration knows about one VOMO user of one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub vomo_user_id: VomoUserId,
    pub email: String,
    pub content_hash: ContentHash,
    pub vomo_updated_at: DateTime<Utc>,
    /// Destination name → the id the destination gave the user.
    pub external_ids: BTreeMap<String, String>,
    pub first_synced_at: DateTime<Utc>,
    pub last_synced_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A mapping to write (insert or replace). `first_synced_at` is kept when the
/// mapping exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingWrite {
    pub vomo_user_id: VomoUserId,
    pub email: String,
    pub content_hash: ContentHash,
    pub vomo_updated_at: DateTime<Utc>,
    pub external_ids: BTreeMap<String, String>,
    pub synced_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A dead-letter entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqEntry {
    pub id: DlqId,
    pub customer_id: CustomerId,
    pub vomo_user_id: VomoUserId,
    pub destination: String,
    pub change_kind: String,
    /// The full change as JSON, enough to replay it.
    pub payload: String,
    pub content_hash: ContentHash,
    pub class: FailureClass,
    pub message: String,
    pub attempts: i32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub status: DlqStatus,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A failed change to park.
#[derive(Debug, Clone)]
pub struct NewDlqEntry {
    pub vomo_user_id: VomoUserId,
    pub destination: String,
    pub change_kind: String,
    pub payload: String,
    pub content_hash: ContentHash,
    pub vomo_updated_at: DateTime<Utc>,
    pub class: FailureClass,
    pub message: String,
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// Depth and age of a customer's pending DLQ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DlqDepth {
    pub pending: i64,
    pub permanent: i64,
    pub oldest: Option<DateTime<Utc>>,
}

/// One run of some work for a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub customer_id: CustomerId,
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    /// Named counters (users seen, created, updated, …).
    pub counts: crate::domain::RunCounts,
    pub requests_used: i64,
    pub message: Option<String>,
}

/// An audit-log line: who did what to which customer, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub customer: Option<String>,
    pub action: String,
    pub detail: String,
    pub result: String,
}
