//! One-shot operator actions, shared by the CLI and the console: onboarding
//! (token validated with one cheap VOMO call, every destination checked,
//! then stored in one transaction), token replacement, pause and resume,
//! status, and DLQ list/retry/discard. Every action is audited with its
//! actor.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::dlq_retry::{RetryReport, Selection};
use super::snapshot::{CustomerSnapshot, build_customer};
use super::supervisor::Shared;
use super::sync::Live;
use super::{EngineConfig, SyncError};
use crate::dest::{Destination, DestinationSpec, default_names};
use crate::domain::{ApiToken, CustomerSettings, CustomerStatus, epoch};
use crate::store::{AuditEntry, Customer, DlqEntry, DlqId, NewCustomer, NewDestination, Store, StoreError};
use crate::vomo::{UserFilter, VomoClient, VomoError};

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "VOMO rejected this token (401 Unauthorized); nothing was stored. Check that it was copied whole and has not been revoked"
    )]
    TokenRejected,
    #[error(
        "VOMO refused access with this token (403 Forbidden); nothing was stored. Is API access enabled for the customer's organisation?"
    )]
    TokenForbidden,
    #[error("cannot validate the token: {0}; nothing was stored")]
    Vomo(VomoError),
    #[error("destination {name} ({shown}) failed its check: {reason}; nothing was stored")]
    Destination { name: String, shown: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no customer named {0:?}; `vomo-sync customer list` shows them")]
    UnknownCustomer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What onboarding needs.
#[derive(Debug, Clone)]
pub struct OnboardRequest {
    pub name: String,
    pub token: ApiToken,
    pub vomo_url: String,
    pub destinations: Vec<DestinationSpec>,
    pub settings: CustomerSettings,
}

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
    pub payload: serde_json::Value,
}

/// Operator actions over the state DB (no engine needs to run).
pub struct Ops {
    shared: Arc<Shared>,
}

impl Ops {
    pub fn new(store: Store, config: EngineConfig) -> Result<Self, OpsError> {
        Ok(Self { shared: Shared::new(store, config)? })
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    async fn customer(&self, name: &str) -> Result<Customer, OpsError> {
        self.store().customer(name).await?.ok_or_else(|| OpsError::UnknownCustomer(name.to_owned()))
    }

    /// Onboards a customer; its backfill is queued for the engine.
    pub async fn onboard(&self, request: &OnboardRequest, actor: &str) -> Result<Customer, OpsError> {
        validate_name(&request.name)?;
        if self.store().customer(&request.name).await?.is_some() {
            return Err(OpsError::Invalid(format!("a customer named {:?} already exists", request.name)));
        }
        if request.destinations.is_empty() {
            return Err(OpsError::Invalid("give at least one --dest".into()));
        }
        self.validate_token(&request.vomo_url, &request.token).await?;
        let names = default_names(&request.destinations);
        for (name, spec) in names.iter().zip(&request.destinations) {
            check_destination(name, spec, &self.shared.http).await?;
        }
        let destinations: Vec<NewDestination> = names
            .iter()
            .zip(&request.destinations)
            .map(|(name, spec)| NewDestination {
                name: name.clone(),
                kind: spec.kind().to_owned(),
                config: serde_json::json!({ "display": spec.display() }).to_string(),
                secret: Some(spec.to_spec_string()),
            })
            .collect();
        let shown: Vec<String> = request.destinations.iter().map(DestinationSpec::display).collect();
        let audit = audit(
            actor,
            &request.name,
            "customer.add",
            format!("destinations: {}", shown.join(", ")),
            "ok; backfill queued",
        );
        let new = NewCustomer {
            name: &request.name,
            vomo_url: &request.vomo_url,
            settings: &request.settings,
            status: CustomerStatus::Backfilling,
        };
        Ok(self.store().add_customer(&new, &request.token, &destinations, &audit).await?)
    }

    /// One cheap VOMO call: a filter no user can match.
    async fn validate_token(&self, vomo_url: &str, token: &ApiToken) -> Result<(), OpsError> {
        let client = VomoClient::new(self.shared.http.clone(), vomo_url, token).map_err(OpsError::Vomo)?;
        let far_future = Utc::now() + chrono::Duration::days(365 * 50);
        let filter = UserFilter { updated_after: Some(far_future), ..UserFilter::default() };
        match client.list_users(&filter, 1).await {
            Ok(_) => Ok(()),
            Err(VomoError::Unauthorized { .. }) => Err(OpsError::TokenRejected),
            Err(VomoError::Forbidden { .. }) => Err(OpsError::TokenForbidden),
            Err(e) => Err(OpsError::Vomo(e)),
        }
    }

    /// Replaces a customer's token after validating it; a stopped customer
    /// resumes from its checkpoint.
    pub async fn replace_token(
        &self,
        name: &str,
        token: &ApiToken,
        actor: &str,
    ) -> Result<CustomerStatus, OpsError> {
        let customer = self.customer(name).await?;
        if customer.status == CustomerStatus::Offboarded {
            return Err(OpsError::Invalid(format!("{name} is offboarded; restore it instead")));
        }
        self.validate_token(&customer.vomo_url, token).await?;
        self.store().replace_token(&customer, token).await?;
        let mut status = customer.status;
        if status == CustomerStatus::TokenRejected {
            status = resumed_status(self.store(), &customer).await?;
            self.store().set_customer_status(customer.id, status, None).await?;
        }
        let detail = format!("new token {}", token.fingerprint());
        self.store()
            .record_audit(&audit(actor, name, "customer.token", detail, &format!("ok; status {status}")))
            .await?;
        Ok(status)
    }

    /// Pauses (`true`) or resumes a customer.
    pub async fn set_paused(&self, name: &str, pause: bool, actor: &str) -> Result<CustomerStatus, OpsError> {
        let customer = self.customer(name).await?;
        let next = pause_transition(self.store(), &customer, pause).await?;
        self.store().set_customer_status(customer.id, next, None).await?;
        let action = if pause { "customer.pause" } else { "customer.resume" };
        self.store()
            .record_audit(&audit(actor, name, action, String::new(), &format!("ok; status {next}")))
            .await?;
        Ok(next)
    }

    /// Every customer's health as the state DB knows it (no live figures).
    pub async fn status(&self, name: Option<&str>) -> Result<Vec<CustomerSnapshot>, OpsError> {
        if let Some(name) = name {
            self.customer(name).await?;
        }
        let customers = self.store().customers().await?;
        let overview = self.store().overview().await?;
        let synced = self.store().synced_user_counts().await?;
        let live = Live::default();
        Ok(customers
            .iter()
            .filter(|c| name.is_none_or(|n| n == c.name))
            .map(|c| {
                let owned = false;
                build_customer(
                    c,
                    overview.get(&c.id),
                    synced.get(&c.id).copied().unwrap_or(0),
                    &live,
                    None,
                    None,
                    owned,
                    std::time::Duration::MAX,
                )
            })
            .collect())
    }

    /// Pending DLQ entries, of one customer or all.
    pub async fn dlq_list(&self, name: Option<&str>) -> Result<Vec<DlqItem>, OpsError> {
        let customers = self.store().customers().await?;
        let filter = match name {
            Some(name) => Some(
                customers
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| OpsError::UnknownCustomer(name.to_owned()))?
                    .id,
            ),
            None => None,
        };
        let entries = self.store().pending_dlq(filter).await?;
        Ok(entries.into_iter().map(|e| dlq_item(&customers, e)).collect())
    }

    /// Retries chosen DLQ entries of a customer now.
    pub async fn dlq_retry(
        &self,
        name: &str,
        ids: Option<Vec<DlqId>>,
        actor: &str,
    ) -> Result<RetryReport, OpsError> {
        let customer = self.customer(name).await?;
        let runtime = self.shared.prepare(&customer, Arc::new(Live::default())).await?;
        let selection = ids.clone().map_or(Selection::All, Selection::Ids);
        let report = runtime.retry_dlq(&selection).await?;
        let detail = ids.map_or_else(|| "all pending entries".to_owned(), |ids| format!("entries {ids:?}"));
        let result = format!("{} delivered, {} still failing", report.delivered, report.failed);
        self.store().record_audit(&audit(actor, name, "dlq.retry", detail, &result)).await?;
        Ok(report)
    }

    /// Gives up on a DLQ entry, with a note.
    pub async fn dlq_discard(&self, id: DlqId, note: &str, actor: &str) -> Result<DlqEntry, OpsError> {
        if note.trim().is_empty() {
            return Err(OpsError::Invalid("a discard needs a note saying why".into()));
        }
        let entry = self
            .store()
            .dlq_entry(id)
            .await?
            .ok_or_else(|| OpsError::Invalid(format!("no DLQ entry {id}")))?;
        let customer =
            self.store().customer_by_id(entry.customer_id).await?.map(|c| c.name).unwrap_or_default();
        let detail = format!("entry {id} (user {}, {}): {note}", entry.vomo_user_id, entry.destination);
        self.store().discard_dlq(id, note, &audit(actor, &customer, "dlq.discard", detail, "ok")).await?;
        Ok(entry)
    }
}

fn dlq_item(customers: &[Customer], e: DlqEntry) -> DlqItem {
    DlqItem {
        id: e.id,
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
        payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
    }
}

fn audit(actor: &str, customer: &str, action: &str, detail: String, result: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: actor.to_owned(),
        customer: Some(customer.to_owned()),
        action: action.to_owned(),
        detail,
        result: result.to_owned(),
    }
}

/// Connects and checks one destination, closing it afterwards.
pub async fn check_destination(
    name: &str,
    spec: &DestinationSpec,
    http: &reqwest::Client,
) -> Result<(), OpsError> {
    let fail =
        |reason: String| OpsError::Destination { name: name.to_owned(), shown: spec.display(), reason };
    let destination = Destination::connect(name, spec, http).await.map_err(|e| fail(e.message))?;
    let checked = destination.check().await;
    destination.close().await;
    checked.map_err(|e| fail(e.message))
}

/// Names are used in commands, logs and file names: keep them plain.
fn validate_name(name: &str) -> Result<(), OpsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(OpsError::Invalid(format!(
            "invalid customer name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Where a paused or stopped customer goes back to: backfilling until its
/// first window completes, else active.
async fn resumed_status(store: &Store, customer: &Customer) -> Result<CustomerStatus, StoreError> {
    let checkpoint = store.load_checkpoint(customer.id).await?;
    Ok(if checkpoint.watermark == epoch() { CustomerStatus::Backfilling } else { CustomerStatus::Active })
}

/// The status after pausing (`true`) or resuming, or why it is not allowed.
pub async fn pause_transition(
    store: &Store,
    customer: &Customer,
    pause: bool,
) -> Result<CustomerStatus, OpsError> {
    let status = customer.status;
    match (pause, status) {
        (_, CustomerStatus::Offboarded) => Err(OpsError::Invalid(format!("{} is offboarded", customer.name))),
        (true, CustomerStatus::Paused) => {
            Err(OpsError::Invalid(format!("{} is already paused", customer.name)))
        }
        (true, _) => Ok(CustomerStatus::Paused),
        (false, CustomerStatus::Paused) => Ok(resumed_status(store, customer).await?),
        (false, other) => Err(OpsError::Invalid(format!("{} is not paused (it is {other})", customer.name))),
    }
}
