//! Destinations: the customers' external systems. Each takes a batch of
//! changes and returns one result per change — the id the destination gave
//! the user, or an error classed retryable or permanent — so the engine can
//! acknowledge, or park in the DLQ, record by record. Every write is an
//! idempotent upsert keyed by the VOMO user id, so replays are harmless.
//! Destinations know nothing of VOMO or the state DB.
//!
//! Specs (`--dest`): `postgres://…[?table=NAME]`, `webhook:URL[,secret-env=NAME
//! | ,secret-file=PATH]`, `jsonl:PATH`, `hubspot:token-env=NAME|token-file=PATH
//! [,base=URL][,object=contacts][,delete=gdpr|archive][,rate=N]`.

mod halt;
pub mod hubspot;
mod jsonl;
pub mod postgres;
mod spec;
pub mod webhook;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::domain::{Change, FailureClass, format_rfc3339};
use crate::outbound::OutboundPolicy;
pub use halt::{HaltState, PROBE_AFTER};
pub use spec::{
    DestinationSpec, HUBSPOT_BASE, HUBSPOT_RATE, HubspotDeletes, HubspotSpec, SecretSource, SpecError,
    default_names, valid_table,
};

/// Why one change (or a whole batch) did not reach a destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DestError {
    pub class: FailureClass,
    pub message: String,
    /// Set when the failure is about the destination as a whole, not this
    /// change: every further change would fail the same way until someone
    /// acts (or, for the daily limit, until a time). The engine should stop
    /// sending to this destination and say so, as it does when VOMO rejects
    /// a customer's token. Such errors are classed retryable, so changes
    /// parked meanwhile go through once the cause is gone.
    pub halt: Option<Halt>,
}

/// Why a destination cannot take any change for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// The destination rejected its credentials (HTTP 401): the token is
    /// wrong, expired or revoked; an operator must replace it.
    TokenRejected,
    /// The credentials lack permissions (HTTP 403), e.g. HubSpot scopes;
    /// `missing_scopes` names them when the destination said which.
    Forbidden { missing_scopes: Vec<String> },
    /// The destination's daily request allowance is used up; nothing is
    /// sent before `until`.
    DailyLimit { until: DateTime<Utc> },
}

impl DestError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { class: FailureClass::Retryable, message: message.into(), halt: None }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { class: FailureClass::Permanent, message: message.into(), halt: None }
    }
}

/// The result for one change: the destination's id for the user, or why not.
pub type Outcome = Result<String, DestError>;

/// A connected destination.
pub struct Destination {
    name: String,
    spec: DestinationSpec,
    inner: Inner,
    /// Set while the destination said it cannot take anything (a halt).
    breaker: halt::Breaker,
}

enum Inner {
    Postgres(postgres::PostgresDest),
    Webhook(webhook::WebhookDest),
    Jsonl(jsonl::JsonlDest),
    Hubspot(hubspot::HubspotDest),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination").field("name", &self.name).field("spec", &self.spec.display()).finish()
    }
}

impl Destination {
    /// Prepares a destination (pools, file handles, secrets). Does not write.
    /// `outbound` says which addresses HTTP destinations may reach (each
    /// gets a client of its own that checks them at connect time); `owned`
    /// are fields the customer's system owns (write-back), which only the
    /// PostgreSQL destination keeps apart.
    pub async fn connect(
        name: &str,
        spec: &DestinationSpec,
        outbound: &OutboundPolicy,
        owned: &[String],
    ) -> Result<Self, DestError> {
        let inner = match spec {
            DestinationSpec::Postgres { url, table } => {
                Inner::Postgres(postgres::PostgresDest::connect(url, table, owned).await?)
            }
            DestinationSpec::Webhook { url, secret } => {
                Inner::Webhook(webhook::WebhookDest::new(url, secret, outbound)?)
            }
            DestinationSpec::Jsonl { path } => Inner::Jsonl(jsonl::JsonlDest::new(path)),
            DestinationSpec::Hubspot(h) => {
                // Its own client, bound by the outbound rules like a webhook's.
                let base = url::Url::parse(&h.base)
                    .map_err(|e| DestError::permanent(format!("HubSpot base URL: {e}")))?;
                let http = outbound
                    .client_for(&base)
                    .map_err(|reason| DestError::permanent(format!("HubSpot {}: {reason}", h.base)))?;
                Inner::Hubspot(hubspot::HubspotDest::new(h, http)?)
            }
        };
        Ok(Self { name: name.to_owned(), spec: spec.clone(), inner, breaker: halt::Breaker::default() })
    }

    /// The name changes are recorded under (DLQ, external ids).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &DestinationSpec {
        &self.spec
    }

    /// Onboarding check: reachable and writable, without writing a user.
    pub async fn check(&self) -> Result<(), DestError> {
        match &self.inner {
            Inner::Postgres(d) => d.check().await,
            Inner::Webhook(d) => d.check().await,
            Inner::Jsonl(d) => d.check().await,
            Inner::Hubspot(d) => d.check().await,
        }
    }

    /// Applies `changes` of `customer`; one outcome per change, in order.
    /// While the destination is halted nothing is sent and every change
    /// fails at once with the same retryable error (see [`halt`]).
    pub async fn apply(&self, customer: &str, changes: &[Change], synced_at: DateTime<Utc>) -> Vec<Outcome> {
        if changes.is_empty() {
            return Vec::new();
        }
        match self.breaker.admit(Utc::now()) {
            halt::Admission::Refuse(error) => return vec![Err(error); changes.len()],
            halt::Admission::Send { probe: true } => self.before_probe(customer),
            halt::Admission::Send { probe: false } => {}
        }
        let outcomes = match &self.inner {
            Inner::Postgres(d) => d.apply(changes, synced_at).await,
            Inner::Webhook(d) => d.apply(customer, changes, synced_at).await,
            Inner::Jsonl(d) => d.apply(customer, changes, synced_at).await,
            Inner::Hubspot(d) => d.apply(changes).await,
        };
        debug_assert_eq!(outcomes.len(), changes.len());
        if let Some(state) = self.breaker.observe(&outcomes, Utc::now()) {
            tracing::error!(customer, destination = %self.name, reason = state.reason, error = %state.message,
                retry_at = %format_rfc3339(&state.retry_at), "destination halted: {}", state.hint);
        }
        outcomes
    }

    /// Before a halted destination is tried again: a token it reads from a
    /// file or the environment is read anew.
    fn before_probe(&self, customer: &str) {
        if let Inner::Hubspot(d) = &self.inner
            && d.reload_token()
        {
            tracing::info!(customer, destination = %self.name, "a new HubSpot token was read; trying it");
        }
    }

    /// Why the destination takes nothing now, if it said so.
    pub fn halt(&self) -> Option<HaltState> {
        self.breaker.state()
    }

    /// True while a halt keeps batches from being sent (before its next try).
    pub fn held_back(&self) -> bool {
        matches!(self.breaker.admit(Utc::now()), halt::Admission::Refuse(_))
    }

    /// Lets the next batch try a halted destination at once (an operator's
    /// DLQ retry).
    pub fn try_now(&self) {
        self.breaker.try_now(Utc::now());
    }

    /// Users whose copy here is missing or differs from `users`; empty for
    /// destinations that cannot be read back (webhooks, JSONL).
    pub async fn missing_or_different(&self, users: &[&crate::domain::User]) -> Result<Vec<i64>, DestError> {
        match &self.inner {
            Inner::Postgres(d) => d.missing_or_different(users).await,
            Inner::Hubspot(d) => d.missing_or_different(users).await,
            Inner::Webhook(_) | Inner::Jsonl(_) => Ok(Vec::new()),
        }
    }

    /// The request budget of a destination that has one (HubSpot): rate,
    /// requests, 429s by policy, the daily allowance and a daily stop.
    pub fn budget_figures(&self) -> Option<hubspot::BudgetFigures> {
        match &self.inner {
            Inner::Hubspot(d) => Some(d.figures()),
            Inner::Postgres(_) | Inner::Webhook(_) | Inner::Jsonl(_) => None,
        }
    }

    /// Customer edits of owned fields waiting to be written back to VOMO.
    pub async fn pending_edits(
        &self,
    ) -> Result<Vec<(i64, std::collections::BTreeMap<String, Option<String>>)>, DestError> {
        match &self.inner {
            Inner::Postgres(d) => d.pending_edits().await,
            Inner::Webhook(_) | Inner::Jsonl(_) | Inner::Hubspot(_) => Ok(Vec::new()),
        }
    }

    /// Records owned-field values as written back to VOMO.
    pub async fn mark_written(
        &self,
        id: i64,
        values: &std::collections::BTreeMap<String, Option<String>>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), DestError> {
        match &self.inner {
            Inner::Postgres(d) => d.mark_written(id, values, updated_at).await,
            Inner::Webhook(_) | Inner::Jsonl(_) | Inner::Hubspot(_) => Ok(()),
        }
    }

    /// True when this destination can detect customer edits (write-back).
    pub fn supports_writeback(&self) -> bool {
        matches!(self.inner, Inner::Postgres(_))
    }

    /// Closes pools and flushes files.
    pub async fn close(&self) {
        if let Inner::Postgres(d) = &self.inner {
            d.close().await;
        }
    }
}

/// The one event shape of webhook and JSONL destinations:
/// `{"type", "customer", "vomo_user_id", "user": {…} | null, "synced_at"}`.
/// A deletion's `user` is always `null`, also for an erasure whose change
/// carries the anonymised account: the receiver erases what it holds.
pub fn event_json(customer: &str, change: &Change, synced_at: DateTime<Utc>) -> Value {
    let user = change.user.as_ref().filter(|_| change.kind != crate::domain::ChangeKind::Deleted);
    json!({
        "type": change.kind.as_str(),
        "customer": customer,
        "vomo_user_id": change.vomo_user_id,
        "user": user.map(|u| serde_json::to_value(u).unwrap_or(Value::Null)),
        // To the millisecond: freshness is measured in seconds.
        "synced_at": synced_at.trunc_subsecs(3).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    })
}
