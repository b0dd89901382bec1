//! One-shot operator actions, shared by the CLI and the console: onboarding
//! (token validated with one cheap VOMO call, every destination checked,
//! then stored in one transaction), token replacement, pause and resume,
//! status, and DLQ list/retry/discard. Every action is audited with its
//! actor.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Command;
use super::dlq_retry::{RetryReport, Selection};
use super::fleet::Holding;
use super::settle;
use super::snapshot::{CustomerSnapshot, Holder, build_customer};
use super::supervisor::Shared;
use super::sync::Live;
use super::sync::{Mode, RunReport};
use super::{EngineConfig, SyncError};
use crate::dest::{Destination, DestinationSpec, default_names};
use crate::domain::{ApiToken, CustomerSettings, CustomerStatus, RunKind, VomoUserId};
use crate::store::{
    AuditEntry, Customer, DlqEntry, DlqId, NewCustomer, NewDestination, RunId, Store, StoreError,
};
use crate::vomo::{UserFilter, VomoClient, VomoError};
use tokio_util::sync::CancellationToken;

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

impl From<settle::SettleError> for OpsError {
    fn from(e: settle::SettleError) -> Self {
        match e {
            settle::SettleError::Invalid(message) => Self::Invalid(message),
            settle::SettleError::Store(e) => Self::Store(e),
        }
    }
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

/// What `run_now` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNow {
    Reconcile,
    Deletions { dry_run: bool },
}

/// A lease taken for a one-shot run; given back when done.
struct OpsLease {
    customer: crate::store::CustomerId,
    owner: String,
}

impl OpsLease {
    async fn release(self, store: &Store) {
        if let Err(e) = store.release_lease(self.customer, &self.owner).await {
            tracing::warn!(error = %e, "cannot give the lease back; it expires by itself");
        }
    }
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

    /// Actions inside a running engine, sharing its HTTP client and budgets.
    pub(super) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
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
        validate_writeback(&request.settings.writeback_fields, &request.destinations)?;
        self.validate_token(&request.vomo_url, &request.token).await?;
        let names = default_names(&request.destinations);
        for (name, spec) in names.iter().zip(&request.destinations) {
            check_destination(name, spec, &self.shared.config.outbound, &request.settings.writeback_fields)
                .await?;
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

    /// Onboards from text as an operator typed it (the console's form):
    /// the token and destination specs are parsed here, then checked as
    /// `customer add` checks them.
    pub async fn onboard_text(
        &self,
        name: &str,
        token: &str,
        vomo_url: &str,
        destinations: &[String],
        settings: CustomerSettings,
        actor: &str,
    ) -> Result<(), OpsError> {
        let token = ApiToken::new(token).ok_or_else(|| OpsError::Invalid("the token is empty".into()))?;
        let destinations = destinations
            .iter()
            .map(|d| DestinationSpec::parse(d).map_err(|e| OpsError::Invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let request = OnboardRequest {
            name: name.to_owned(),
            token,
            vomo_url: vomo_url.to_owned(),
            destinations,
            settings,
        };
        self.onboard(&request, actor).await.map(drop)
    }

    /// One cheap VOMO call (a filter no user can match), retried like the
    /// engine retries (a dropped connection, a 5xx or a timeout is no
    /// reason to turn a customer away), whose `Date` must be believable.
    async fn validate_token(&self, vomo_url: &str, token: &ApiToken) -> Result<(), OpsError> {
        let config = &self.shared.config;
        crate::vomo::check_transport(vomo_url, config.allow_insecure_http).map_err(OpsError::Vomo)?;
        let client = VomoClient::new(self.shared.http.clone(), vomo_url, token)
            .map_err(OpsError::Vomo)?
            .with_max_body(config.client.max_body);
        let far_future = Utc::now() + chrono::Duration::days(365 * 50);
        let filter = UserFilter { updated_after: Some(far_future), ..UserFilter::default() };
        let mut attempt = 0;
        let page = loop {
            let error = match client.list_users(&filter, 1).await {
                Ok(page) => break page,
                Err(VomoError::Unauthorized { .. }) => return Err(OpsError::TokenRejected),
                Err(VomoError::Forbidden { .. }) => return Err(OpsError::TokenForbidden),
                Err(e) if !e.is_retryable() || attempt >= config.request_retry.retries => {
                    return Err(OpsError::Vomo(e));
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
        self.shared.clocks.for_url(vomo_url).observe(page.server_time).map_err(|e| {
            OpsError::Invalid(format!(
                "VOMO answered, but its clock cannot be trusted: {e}; nothing was stored"
            ))
        })
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

    /// Every customer's health as the state DB knows it, with the owning
    /// process and the live figures it last published.
    pub async fn status(&self, name: Option<&str>) -> Result<Vec<CustomerSnapshot>, OpsError> {
        if let Some(name) = name {
            self.customer(name).await?;
        }
        let customers = self.store().customers().await?;
        let overview = self.store().overview().await?;
        let synced = self.store().synced_user_counts().await?;
        // Which process runs each customer, and its live figures.
        let fleet =
            super::fleet::Fleet::read(self.store(), Utc::now(), self.shared.config.reload_every).await?;
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
                    Holder { owner, here: false },
                )
            })
            .collect())
    }

    /// Sends `command` to the instance running its customer through the
    /// state DB's command queue and waits for its answer. `Ok(None)` when
    /// no other process runs the customer (the caller may act itself).
    pub async fn forward(&self, command: &Command, actor: &str) -> Result<Option<String>, OpsError> {
        let name = command.customer().unwrap_or_default();
        let customer = self.customer(name).await?;
        let config = &self.shared.config;
        match super::fleet::holding(self.store(), customer.id, &config.owner, config.reload_every).await? {
            Holding::Free => Ok(None),
            Holding::Busy(holder) => Err(OpsError::Invalid(super::fleet::busy(name, &holder))),
            Holding::Worker(holder) => {
                super::queue::send(self.store(), command, actor, &config.owner, &holder)
                    .await
                    .map(Some)
                    .map_err(OpsError::Invalid)
            }
        }
    }

    /// Makes `name`'s read-only health token (replacing any previous one)
    /// and returns it: the only time it is shown; the state DB keeps its
    /// hash.
    pub async fn issue_health_token(&self, name: &str, actor: &str) -> Result<String, OpsError> {
        let customer = self.customer(name).await?;
        let token = super::health::new_health_token();
        self.store().set_health_token(customer.id, &super::health::health_token_hash(&token)).await?;
        let entry = audit(actor, name, "customer.health_token", "new health token".into(), "ok");
        self.store().record_audit(&entry).await?;
        Ok(token)
    }

    /// What offboarding `name` would do: the rows it keeps for the
    /// retention period (or removes with `purge`).
    pub async fn offboard_plan(&self, name: &str) -> Result<Vec<(&'static str, i64)>, OpsError> {
        let customer = self.customer(name).await?;
        Ok(self.store().rows_held(&customer).await?)
    }

    /// Offboards a customer: its token is deleted at once, its state kept
    /// for the retention period (removed now with `purge`). The data in the
    /// customer's own systems is theirs and is not touched. A running engine
    /// stops the customer's work within seconds (it re-reads the state DB).
    pub async fn offboard(&self, name: &str, purge: bool, actor: &str) -> Result<(), OpsError> {
        let customer = self.customer(name).await?;
        if customer.status != CustomerStatus::Offboarded {
            let retention = humantime::format_duration(self.shared.config.offboard_retention);
            let detail = format!("token deleted; state kept for {retention}");
            self.store()
                .offboard_customer(&customer, &audit(actor, name, "customer.offboard", detail, "ok"))
                .await?;
        } else if !purge {
            return Err(OpsError::Invalid(format!(
                "{name} is already offboarded; add --purge to remove its state now"
            )));
        }
        if purge {
            self.purge(&customer, actor, "purged on request").await?;
        }
        Ok(())
    }

    async fn purge(&self, customer: &Customer, actor: &str, why: &str) -> Result<(), OpsError> {
        self.store().purge_customer(customer.id).await?;
        let detail = format!("{why}; everything but the audit log removed");
        self.store().record_audit(&audit(actor, &customer.name, "customer.purge", detail, "ok")).await?;
        Ok(())
    }

    /// Purges customers offboarded longer than the retention period;
    /// returns their names.
    pub async fn purge_expired(&self) -> Result<Vec<String>, OpsError> {
        let retention = chrono::Duration::from_std(self.shared.config.offboard_retention).unwrap_or_default();
        let cutoff = Utc::now() - retention;
        let mut purged = Vec::new();
        for customer in self.store().customers().await? {
            if customer.status == CustomerStatus::Offboarded
                && customer.offboarded_at.is_some_and(|at| at < cutoff)
            {
                self.purge(&customer, "engine", "retention period over").await?;
                purged.push(customer.name);
            }
        }
        Ok(purged)
    }

    /// Brings an offboarded customer back with a new (validated) token; it
    /// resumes from its checkpoint, without a new backfill.
    pub async fn restore(
        &self,
        name: &str,
        token: &ApiToken,
        actor: &str,
    ) -> Result<CustomerStatus, OpsError> {
        let customer = self.customer(name).await?;
        if customer.status != CustomerStatus::Offboarded {
            return Err(OpsError::Invalid(format!("{name} is not offboarded (it is {})", customer.status)));
        }
        self.validate_token(&customer.vomo_url, token).await?;
        let status = resumed_status(self.store(), &customer).await?;
        let detail = format!("new token {}", token.fingerprint());
        let entry = audit(actor, name, "customer.restore", detail, &format!("ok; status {status}"));
        self.store().restore_customer(&customer, token, status, &entry).await?;
        Ok(status)
    }

    /// Runs a reconciliation or full scan of `name` in this process, under
    /// the customer's lease (refused while another process runs it).
    pub async fn run_now(&self, name: &str, mode: RunNow, actor: &str) -> Result<RunReport, OpsError> {
        let customer = self.customer(name).await?;
        if !matches!(customer.status, CustomerStatus::Active | CustomerStatus::Paused) {
            return Err(OpsError::Invalid(format!(
                "{name} is {}; reconciliation and sweeps need a completed backfill and a valid token",
                customer.status
            )));
        }
        let lease = self.take_lease(&customer).await?;
        let runtime = self.shared.prepare(&customer, Arc::new(Live::default()), Some(&lease.owner)).await;
        let result = match runtime {
            Ok(runtime) => {
                let (kind, mode) = match mode {
                    RunNow::Reconcile => (RunKind::Reconcile, Mode::Reconcile),
                    RunNow::Deletions { dry_run } => (RunKind::Deletions, Mode::FullScan { dry_run }),
                };
                runtime.run(kind, mode, &CancellationToken::new()).await.map_err(OpsError::from)
            }
            Err(e) => Err(e.into()),
        };
        lease.release(self.store()).await;
        let report = result?;
        let action = match mode {
            RunNow::Reconcile => "sync.reconcile",
            RunNow::Deletions { dry_run: true } => "sync.deletions.dry_run",
            RunNow::Deletions { dry_run: false } => "sync.deletions",
        };
        let detail = format!("{:?}", report.counts);
        self.store().record_audit(&audit(actor, name, action, detail, "ok")).await?;
        Ok(report)
    }

    /// Carries out (`confirm`) or drops a sweep the mass-deletion guard
    /// stopped. Confirmed users are checked with VOMO once more, one by
    /// one: only those it still does not have are deleted.
    pub async fn settle_deletions(
        &self,
        run_id: RunId,
        confirm: bool,
        actor: &str,
    ) -> Result<(usize, usize), OpsError> {
        let waiting = settle::waiting(self.store(), run_id).await?;
        let result = if confirm {
            let lease = self.take_lease(&waiting.customer).await?;
            let result = self.confirm_deletions(&waiting.customer, &waiting.ids).await;
            lease.release(self.store()).await;
            result?
        } else {
            (0, waiting.ids.len())
        };
        settle::record(self.store(), &waiting, confirm, result, actor).await?;
        Ok(result)
    }

    async fn confirm_deletions(
        &self,
        customer: &Customer,
        ids: &[VomoUserId],
    ) -> Result<(usize, usize), OpsError> {
        let runtime = self.shared.prepare(customer, Arc::new(Live::default()), None).await?;
        Ok(runtime.delete_confirmed(ids).await?)
    }

    /// This process's hold on a customer for a one-shot run.
    async fn take_lease(&self, customer: &Customer) -> Result<OpsLease, OpsError> {
        let owner = format!("{} (cli)", self.shared.config.owner);
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.shared.config.lease_ttl).unwrap_or_default() * 60;
        if self.store().acquire_lease(customer.id, &owner, now, until).await? {
            return Ok(OpsLease { customer: customer.id, owner });
        }
        let holder = self.store().lease(customer.id).await?.and_then(|l| l.owner).unwrap_or_default();
        Err(OpsError::Invalid(format!(
            "{} is being run by another process ({holder}); run this from that process's console, or stop it first",
            customer.name
        )))
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
        let runtime = self.shared.prepare(&customer, Arc::new(Live::default()), None).await?;
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
    outbound: &crate::outbound::OutboundPolicy,
    owned: &[String],
) -> Result<(), OpsError> {
    let fail =
        |reason: String| OpsError::Destination { name: name.to_owned(), shown: spec.display(), reason };
    let destination = Destination::connect(name, spec, outbound, owned).await.map_err(|e| fail(e.message))?;
    let checked = destination.check().await;
    destination.close().await;
    checked.map_err(|e| fail(e.message))
}

/// Write-back needs fields VOMO accepts and a destination that can detect
/// the customer's edits (a PostgreSQL table).
fn validate_writeback(fields: &[String], destinations: &[DestinationSpec]) -> Result<(), OpsError> {
    if fields.is_empty() {
        return Ok(());
    }
    let writable = crate::dest::postgres::WRITABLE;
    if let Some(bad) = fields.iter().find(|f| !writable.contains(&f.as_str())) {
        return Err(OpsError::Invalid(format!(
            "--writeback {bad}: only these fields can be written back to VOMO: {}",
            writable.join(", ")
        )));
    }
    if !destinations.iter().any(|d| matches!(d, DestinationSpec::Postgres { .. })) {
        return Err(OpsError::Invalid(
            "--writeback needs a postgres:// destination, where the customer's edits are detected".into(),
        ));
    }
    Ok(())
}

/// Names are used in commands, logs and file names: keep them plain.
/// A customer name is a safe path segment (file names of the demo, the
/// health URL `/customers/NAME/health`): 1-64 ASCII letters, digits, `-`,
/// `_` or `.`, starting with a letter or digit — so never `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), OpsError> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(OpsError::Invalid(format!(
            "invalid customer name {name:?}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// Where a paused or stopped customer goes back to: backfilling until its
/// first window completes, else active.
async fn resumed_status(store: &Store, customer: &Customer) -> Result<CustomerStatus, StoreError> {
    let done = store.backfill_completed(customer.id).await?;
    Ok(if done { CustomerStatus::Active } else { CustomerStatus::Backfilling })
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
