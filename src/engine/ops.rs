//! Read-only questions about customers, answered from the state DB (no
//! engine needs to run): status with each customer's owning process and
//! its published figures, pending DLQ entries, what offboarding would
//! keep. And onboarding's validation, used by the command that onboards:
//! the name, the token (one cheap VOMO call, retried like the engine does),
//! the destinations (each connected and checked), write-back fields.
//! Everything that changes state is a [`Command`](super::Command).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::config::EngineConfig;
use super::runtime::command::CommandError;
use super::runtime::fleet;
use super::runtime::shared::Shared;
use super::runtime::snapshot::{CustomerSnapshot, Holder, build_customer};
use crate::dest::{Destination, DestinationSpec};
use crate::domain::{ApiToken, CustomerStatus};
use crate::store::{Customer, DlqEntry, DlqId, Store, StoreError};
use crate::vomo::{UserFilter, VomoClient, VomoError};

/// A DLQ entry as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DlqItem {
    pub id: DlqId,
    pub customer: String,
    pub vomo_user_id: i64,
    pub destination: String,
    pub change: String,
    pub class: String,
    pub message: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The stored payload, or `null` when it is not JSON (shown as such).
    pub payload: serde_json::Value,
}

/// Read-only queries over the state DB.
pub struct Ops {
    shared: Arc<Shared>,
}

impl Ops {
    pub fn new(store: Store, config: EngineConfig) -> Result<Self, CommandError> {
        Ok(Self { shared: Shared::new(store, config)? })
    }

    /// Queries inside a running engine, sharing its state DB and clocks.
    pub(super) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    async fn customer(&self, name: &str) -> Result<Customer, CommandError> {
        customer_named(self.store(), name).await
    }

    /// Every customer's health as the state DB knows it, with the owning
    /// process and the live figures it last published.
    pub async fn status(&self, name: Option<&str>) -> Result<Vec<CustomerSnapshot>, CommandError> {
        if let Some(name) = name {
            self.customer(name).await?;
        }
        let customers = self.store().customers().await?;
        let overview = self.store().overview().await?;
        let synced = self.store().synced_user_counts().await?;
        // Which process runs each customer, and its live figures.
        let fleet = fleet::Fleet::read(self.store(), Utc::now(), self.shared.config.reload_every).await?;
        Ok(customers
            .iter()
            .filter(|c| name.is_none_or(|n| n == c.name))
            .map(|c| {
                let owner = fleet.holder(c.id);
                build_customer(
                    c,
                    overview.get(&c.id),
                    synced.get(&c.id).copied().unwrap_or(0),
                    owner.and_then(|o| fleet.figures(o, &c.name)),
                    None,
                    Holder { owner, here: false, seen_at: fleet.last_seen(c.id) },
                )
            })
            .collect())
    }

    /// What offboarding `name` would do: the rows it keeps for the
    /// retention period (or removes with `purge`).
    pub async fn offboard_plan(&self, name: &str) -> Result<Vec<(&'static str, i64)>, CommandError> {
        let customer = self.customer(name).await?;
        Ok(self.store().rows_held(&customer).await?)
    }

    /// One DLQ entry, whatever its status (to find its customer).
    pub async fn dlq_item(&self, id: DlqId) -> Result<DlqItem, CommandError> {
        let entry = self.store().dlq_entry(id).await?.ok_or_else(|| {
            CommandError::Refused(format!("no DLQ entry {id}; `vomo-sync dlq list` shows them"))
        })?;
        Ok(dlq_item(&self.store().customers().await?, entry))
    }

    /// Pending DLQ entries, of one customer or all.
    pub async fn dlq_list(&self, name: Option<&str>) -> Result<Vec<DlqItem>, CommandError> {
        let customers = self.store().customers().await?;
        let filter = match name {
            Some(name) => Some(
                customers
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| CommandError::UnknownCustomer(name.to_owned()))?
                    .id,
            ),
            None => None,
        };
        let entries = self.store().pending_dlq(filter).await?;
        Ok(entries.into_iter().map(|e| dlq_item(&customers, e)).collect())
    }
}

/// The customer named `name`, or why not.
pub(super) async fn customer_named(store: &Store, name: &str) -> Result<Customer, CommandError> {
    store.customer(name).await?.ok_or_else(|| CommandError::UnknownCustomer(name.to_owned()))
}

fn dlq_item(customers: &[Customer], e: DlqEntry) -> DlqItem {
    DlqItem {
        id: e.id,
        // A pending entry's customer exists (purging removes its entries).
        customer: customers
            .iter()
            .find(|c| c.id == e.customer_id)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        vomo_user_id: e.vomo_user_id,
        destination: e.destination,
        change: e.change_kind,
        class: e.class.to_string(),
        message: e.message,
        attempts: e.attempts,
        created_at: e.created_at,
        next_retry_at: e.next_retry_at,
        // A payload that is not JSON is shown as null, never dropped: the
        // entry (and its message) stays listed.
        payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
    }
}

/// One cheap VOMO call (a filter no user can match), retried like the
/// engine retries (a dropped connection, a 5xx or a timeout is no reason to
/// turn a customer away), whose `Date` must be believable.
pub(super) async fn validate_token(
    shared: &Shared,
    vomo_url: &str,
    token: &ApiToken,
) -> Result<(), CommandError> {
    let config = &shared.config;
    crate::vomo::check_transport(vomo_url, config.allow_insecure_http).map_err(CommandError::Vomo)?;
    let client = VomoClient::new(shared.http.clone(), vomo_url, token)
        .map_err(CommandError::Vomo)?
        .with_max_body(config.client.max_body);
    let far_future = Utc::now() + chrono::Duration::days(365 * 50);
    let filter = UserFilter { updated_after: Some(far_future), ..UserFilter::default() };
    let mut attempt = 0;
    let page = loop {
        let error = match client.list_users(&filter, 1).await {
            Ok(page) => break page,
            Err(VomoError::Unauthorized { .. }) => return Err(CommandError::TokenRejected),
            Err(VomoError::Forbidden { .. }) => return Err(CommandError::TokenForbidden),
            Err(e) if !e.is_retryable() || attempt >= config.request_retry.retries => {
                return Err(CommandError::Vomo(e));
            }
            Err(e) => e,
        };
        attempt += 1;
        let wait = match &error {
            VomoError::RateLimited { retry_after: Some(wait), .. } => *wait,
            _ => config.request_retry.backoff(attempt),
        };
        tracing::warn!(error = %error, attempt, wait_ms = wait.as_millis() as u64, "validating the token failed; retrying");
        tokio::time::sleep(wait).await;
    };
    shared.clocks.for_url(vomo_url).observe(page.server_time).map_err(|e| {
        CommandError::Refused(format!(
            "VOMO answered, but its clock cannot be trusted: {e}; nothing was stored"
        ))
    })
}

/// Connects and checks one destination, closing it afterwards.
pub async fn check_destination(
    name: &str,
    spec: &DestinationSpec,
    outbound: &crate::outbound::OutboundPolicy,
    owned: &[String],
) -> Result<(), CommandError> {
    let fail =
        |reason: String| CommandError::Destination { name: name.to_owned(), shown: spec.display(), reason };
    let destination = Destination::connect(name, spec, outbound, owned).await.map_err(|e| fail(e.message))?;
    let checked = destination.check().await;
    destination.close().await;
    checked.map_err(|e| fail(e.message))
}

/// Write-back needs fields VOMO accepts and a destination that can detect
/// the customer's edits (a PostgreSQL table).
pub(super) fn validate_writeback(
    fields: &[String],
    destinations: &[DestinationSpec],
) -> Result<(), CommandError> {
    if fields.is_empty() {
        return Ok(());
    }
    let writable = crate::dest::postgres::WRITABLE;
    if let Some(bad) = fields.iter().find(|f| !writable.contains(&f.as_str())) {
        return Err(CommandError::Refused(format!(
            "--writeback {bad}: only these fields can be written back to VOMO: {}",
            writable.join(", ")
        )));
    }
    if !destinations.iter().any(|d| matches!(d, DestinationSpec::Postgres { .. })) {
        return Err(CommandError::Refused(
            "--writeback needs a postgres:// destination, where the customer's edits are detected".into(),
        ));
    }
    Ok(())
}

/// A customer name is a safe path segment (file names of the demo, the
/// health URL `/customers/NAME/health`): 1-64 ASCII letters, digits, `-`,
/// `_` or `.`, starting with a letter or digit — so never `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), CommandError> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::Refused(format!(
            "invalid customer name {name:?}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// Where a paused or stopped customer goes back to: backfilling until its
/// first window completes, else active.
pub(super) async fn resumed_status(store: &Store, customer: &Customer) -> Result<CustomerStatus, StoreError> {
    let done = store.backfill_completed(customer.id).await?;
    Ok(if done { CustomerStatus::Active } else { CustomerStatus::Backfilling })
}

/// The status after pausing (`true`) or resuming, or why it is not allowed.
pub(super) async fn pause_transition(
    store: &Store,
    customer: &Customer,
    pause: bool,
) -> Result<CustomerStatus, CommandError> {
    let refused = |why: String| Err(CommandError::Refused(why));
    match (pause, customer.status) {
        (_, CustomerStatus::Offboarded) => refused(format!("{} is offboarded", customer.name)),
        (true, CustomerStatus::Paused) => refused(format!("{} is already paused", customer.name)),
        (true, _) => Ok(CustomerStatus::Paused),
        (false, CustomerStatus::Paused) => Ok(resumed_status(store, customer).await?),
        (false, other) => refused(format!("{} is not paused (it is {other})", customer.name)),
    }
}
