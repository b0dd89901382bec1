//! The engine's supervisor: one task that owns the customer workers. It
//! re-reads customers from the state DB every few seconds (new customers,
//! pauses, replaced tokens — also when made by another process), holds a
//! lease for every customer it runs (one writer per customer), routes
//! operator commands, and publishes a snapshot about once a second. On
//! shutdown it stops every worker, waits for them within a deadline, and
//! gives the leases back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::clock::Clocks;
use super::command::{Command, CommandReply};
use super::dlq_retry::Selection;
use super::process::DeliveryTarget;
use super::snapshot::{CustomerSnapshot, EngineEvent, EngineSnapshot, EventLevel};
use super::sync::{CustomerRuntime, Live, RunReport};
use super::worker::{self, Job, WorkerEnd, WorkerMsg};
use super::{EngineConfig, SyncError};
use crate::dest::{Destination, DestinationSpec};
use crate::domain::CustomerStatus;
use crate::store::{AuditEntry, Customer, CustomerId, Overview, Store};
use crate::vomo::{VomoClient, http_pool};

/// Refresh of the synced-user counts (a scan of the mappings).
const COUNTS_EVERY: Duration = Duration::from_secs(30);
/// A run without progress for this long is reported as stalled.
const STALL_AFTER: Duration = Duration::from_secs(300);
/// How long shutdown waits for workers to finish their page.
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);
/// How often customers past their offboarding retention are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// What every worker shares.
pub struct Shared {
    pub store: Store,
    pub http: reqwest::Client,
    pub config: Arc<EngineConfig>,
    pub clocks: Clocks,
    pub backfill_slots: Arc<Semaphore>,
    budgets: Mutex<HashMap<CustomerId, Arc<Budget>>>,
    events: broadcast::Sender<EngineEvent>,
}

impl Shared {
    pub fn new(store: Store, config: EngineConfig) -> Result<Arc<Self>, SyncError> {
        let http = http_pool(config.client).map_err(SyncError::Vomo)?;
        let (events, _) = broadcast::channel(1024);
        Ok(Arc::new(Self {
            store,
            http,
            backfill_slots: Arc::new(Semaphore::new(config.max_concurrent_backfills)),
            config: Arc::new(config),
            clocks: Clocks::default(),
            budgets: Mutex::new(HashMap::new()),
            events,
        }))
    }

    pub fn event(&self, customer: Option<&str>, level: EventLevel, message: impl Into<String>) {
        let event = EngineEvent::new(customer, level, message);
        match level {
            EventLevel::Info => tracing::info!(customer = customer.unwrap_or("-"), "{}", event.message),
            EventLevel::Warn => tracing::warn!(customer = customer.unwrap_or("-"), "{}", event.message),
            EventLevel::Error => tracing::error!(customer = customer.unwrap_or("-"), "{}", event.message),
        }
        let _ = self.events.send(event);
    }

    /// The customer's budget; kept across worker restarts so a rate cut by
    /// 429s is not forgotten, replaced when the configured rate changes.
    pub fn budget(&self, customer: &Customer) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rate = customer.settings.rate_per_s;
        let entry = budgets.entry(customer.id).or_insert_with(|| Arc::new(Budget::new(rate)));
        if (entry.figures().configured - rate).abs() > f64::EPSILON {
            *entry = Arc::new(Budget::new(rate));
        }
        Arc::clone(entry)
    }

    fn budget_if_any(&self, id: CustomerId) -> Option<Arc<Budget>> {
        self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned()
    }

    /// Everything a customer's runs need: token, client, destinations.
    pub async fn prepare(&self, customer: &Customer, live: Arc<Live>) -> Result<CustomerRuntime, SyncError> {
        let token = self.store.load_token(customer).await?.ok_or_else(|| {
            SyncError::Destination(format!("customer {} has no token (offboarded?)", customer.name))
        })?;
        let client =
            VomoClient::new(self.http.clone(), &customer.vomo_url, &token).map_err(SyncError::Vomo)?;
        let mut destinations = Vec::new();
        for record in self.store.destinations(customer).await? {
            let text = record.secret.as_deref().unwrap_or(&record.config);
            let spec = DestinationSpec::parse(text).map_err(|e| SyncError::Destination(e.to_string()))?;
            let destination =
                Destination::connect(&record.name, &spec, &self.http, &customer.settings.writeback_fields)
                    .await
                    .map_err(|e| SyncError::Destination(format!("{}: {e}", record.name)))?;
            destinations.push(destination);
        }
        Ok(CustomerRuntime {
            budget: self.budget(customer),
            clock: self.clocks.for_url(&customer.vomo_url),
            target: Arc::new(DeliveryTarget {
                store: self.store.clone(),
                customer_id: customer.id,
                customer: customer.name.clone(),
                destinations: Arc::new(destinations),
                dlq_backoff: self.config.dlq_retry,
            }),
            config: Arc::clone(&self.config),
            customer: customer.clone(),
            client,
            live,
            events: self.events.clone(),
        })
    }

    fn lease_expiry(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default()
    }
}

/// A command with its author and a way to answer.
struct Envelope {
    command: Command,
    actor: String,
    reply: oneshot::Sender<CommandReply>,
}

/// What front ends hold: commands in, snapshots and events out.
pub struct EngineHandle {
    commands: mpsc::Sender<Envelope>,
    snapshot: watch::Receiver<Arc<EngineSnapshot>>,
    events: broadcast::Sender<EngineEvent>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl EngineHandle {
    /// Adds a message to the event stream (front ends' log panes), e.g. a
    /// hint from the process hosting the engine.
    pub fn announce(&self, customer: Option<&str>, level: EventLevel, message: impl Into<String>) {
        let _ = self.events.send(EngineEvent::new(customer, level, message));
    }

    /// Sends a command and waits for its one-line answer.
    pub async fn send(&self, command: Command, actor: &str) -> CommandReply {
        let (reply, answer) = oneshot::channel();
        let envelope = Envelope { command, actor: actor.to_owned(), reply };
        self.commands.send(envelope).await.map_err(|_| "the engine has stopped".to_owned())?;
        answer.await.map_err(|_| "the engine stopped before answering".to_owned())?
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<EngineSnapshot> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// A receiver that wakes on every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<EngineSnapshot>> {
        self.snapshot.clone()
    }

    pub fn events(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// Stops every worker (finishing or abandoning the page in flight,
    /// committing what was acknowledged) and waits for the engine to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct WorkerSlot {
    signature: String,
    inbox: mpsc::Sender<WorkerMsg>,
    cancel: CancellationToken,
    join: JoinHandle<WorkerEnd>,
}

/// Starts the engine for every customer of the state DB.
pub struct Engine;

impl Engine {
    pub async fn start(store: Store, config: EngineConfig) -> Result<EngineHandle, SyncError> {
        let shared = Shared::new(store, config)?;
        let (commands, inbox) = mpsc::channel(64);
        let (snapshot_tx, snapshot) = watch::channel(Arc::new(EngineSnapshot::default()));
        let cancel = CancellationToken::new();
        let events = shared.events.clone();
        let mut supervisor = Supervisor {
            shared,
            workers: HashMap::new(),
            lives: HashMap::new(),
            customers: Vec::new(),
            overview: HashMap::new(),
            synced: HashMap::new(),
            synced_at: None,
            synced_activity: 0,
            snapshot_tx,
        };
        supervisor.reconcile().await;
        supervisor.publish();
        let task = tokio::spawn(supervisor.run(inbox, cancel.clone()));
        Ok(EngineHandle { commands, snapshot, events, cancel, task: Mutex::new(Some(task)) })
    }
}

struct Supervisor {
    shared: Arc<Shared>,
    workers: HashMap<CustomerId, WorkerSlot>,
    lives: HashMap<CustomerId, Arc<Live>>,
    customers: Vec<Customer>,
    overview: HashMap<CustomerId, Overview>,
    synced: HashMap<CustomerId, i64>,
    synced_at: Option<std::time::Instant>,
    synced_activity: u64,
    snapshot_tx: watch::Sender<Arc<EngineSnapshot>>,
}

impl Supervisor {
    async fn run(mut self, mut inbox: mpsc::Receiver<Envelope>, cancel: CancellationToken) {
        let mut reload = tokio::time::interval(self.shared.config.reload_every);
        // A slow reload must not be followed by a burst of catch-up reloads.
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_EVERY);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                envelope = inbox.recv() => match envelope {
                    Some(envelope) => self.command(envelope).await,
                    None => break,
                },
                _ = reload.tick() => self.reconcile().await,
                _ = tick.tick() => self.publish(),
                _ = housekeeping.tick() => self.purge_expired().await,
            }
        }
        self.stop_all().await;
        self.publish();
    }

    /// Brings the running workers in line with the state DB.
    async fn reconcile(&mut self) {
        if let Err(e) = self.refresh().await {
            self.shared.event(None, EventLevel::Error, format!("cannot read the state DB: {e}"));
            return;
        }
        let customers = self.customers.clone();
        for customer in &customers {
            let signature = self.signature(customer);
            let runnable = matches!(customer.status, CustomerStatus::Backfilling | CustomerStatus::Active)
                && self.overview.get(&customer.id).is_some_and(|o| o.token.is_some());
            let (finished, changed) = match self.workers.get(&customer.id) {
                Some(slot) => (slot.join.is_finished(), slot.signature != signature),
                None => (false, false),
            };
            if finished || changed || (!runnable && self.workers.contains_key(&customer.id)) {
                self.stop(customer.id).await;
            }
            if runnable && !self.workers.contains_key(&customer.id) {
                self.spawn(customer, signature).await;
            } else if self.workers.contains_key(&customer.id) {
                self.renew(customer).await;
            }
        }
        let known: Vec<CustomerId> = customers.iter().map(|c| c.id).collect();
        let gone: Vec<CustomerId> = self.workers.keys().filter(|id| !known.contains(id)).copied().collect();
        for id in gone {
            self.stop(id).await;
        }
    }

    async fn refresh(&mut self) -> Result<(), crate::store::StoreError> {
        let store = &self.shared.store;
        self.customers = store.customers().await?;
        self.overview = store.overview().await?;
        // Counting scans the mappings: do it when runs have read users since
        // the last count, and otherwise only now and then.
        let activity: u64 =
            self.lives.values().map(|l| l.users_total.load(std::sync::atomic::Ordering::Relaxed)).sum();
        if activity != self.synced_activity || self.synced_at.is_none_or(|at| at.elapsed() >= COUNTS_EVERY) {
            self.synced = store.synced_user_counts().await?;
            self.synced_at = Some(std::time::Instant::now());
            self.synced_activity = activity;
        }
        Ok(())
    }

    /// Changes to these restart a worker (status, settings, a new token).
    fn signature(&self, customer: &Customer) -> String {
        let token = self.overview.get(&customer.id).and_then(|o| o.token.as_ref());
        format!(
            "{}|{}|{:?}|{:?}",
            customer.status,
            customer.updated_at.timestamp_micros(),
            token.map(|t| &t.fingerprint),
            token.and_then(|t| t.validated_at).map(|t| t.timestamp_micros())
        )
    }

    async fn spawn(&mut self, customer: &Customer, signature: String) {
        let owner = &self.shared.config.owner;
        match self
            .shared
            .store
            .acquire_lease(customer.id, owner, Utc::now(), self.shared.lease_expiry())
            .await
        {
            Ok(true) => {}
            Ok(false) => return, // another process runs this customer
            Err(e) => {
                self.shared.event(
                    Some(&customer.name),
                    EventLevel::Error,
                    format!("cannot take the lease: {e}"),
                );
                return;
            }
        }
        if let Err(e) =
            self.shared.store.abort_running_runs(customer.id, "the process running it stopped").await
        {
            tracing::warn!(customer = %customer.name, error = %e, "cannot close stale runs");
        }
        let live = Arc::clone(self.lives.entry(customer.id).or_default());
        let (inbox_tx, inbox) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let join = tokio::spawn(worker::run(
            Arc::clone(&self.shared),
            customer.clone(),
            live,
            inbox,
            cancel.clone(),
        ));
        self.workers.insert(customer.id, WorkerSlot { signature, inbox: inbox_tx, cancel, join });
    }

    async fn renew(&mut self, customer: &Customer) {
        let owner = &self.shared.config.owner;
        let renewed =
            self.shared.store.renew_lease(customer.id, owner, Utc::now(), self.shared.lease_expiry()).await;
        if matches!(renewed, Ok(false)) {
            self.shared.event(
                Some(&customer.name),
                EventLevel::Warn,
                "lease lost to another process; stopping here",
            );
            self.stop(customer.id).await;
        }
    }

    async fn stop(&mut self, id: CustomerId) {
        let Some(slot) = self.workers.remove(&id) else { return };
        slot.cancel.cancel();
        match tokio::time::timeout(DRAIN_DEADLINE, slot.join).await {
            Ok(Ok(WorkerEnd::TokenProblem(why))) => tracing::info!(customer = id, "worker ended: {why}"),
            Ok(_) => {}
            Err(_) => tracing::warn!(customer = id, "worker did not stop within the deadline"),
        }
        let _ = self.shared.store.release_lease(id, &self.shared.config.owner).await;
    }

    async fn stop_all(&mut self) {
        let ids: Vec<CustomerId> = self.workers.keys().copied().collect();
        for slot in self.workers.values() {
            slot.cancel.cancel();
        }
        for id in ids {
            self.stop(id).await;
        }
    }

    async fn command(&mut self, envelope: Envelope) {
        let Envelope { command, actor, reply } = envelope;
        let result = self.execute(&command, &actor).await;
        let customer = command.customer().map(str::to_owned);
        let audit = AuditEntry {
            at: Utc::now(),
            actor,
            customer: customer.clone(),
            action: command.action().to_owned(),
            detail: format!("{command:?}"),
            result: match &result {
                Ok(Pending::Done(text)) => text.clone(),
                Ok(Pending::Forwarded(_)) => "forwarded to the customer's worker".to_owned(),
                Err(e) => format!("refused: {e}"),
            },
        };
        let audited = command.audits_itself() && result.is_ok();
        if !audited && let Err(e) = self.shared.store.record_audit(&audit).await {
            tracing::error!(error = %e, "cannot write the audit log");
        }
        let level = if result.is_ok() { EventLevel::Info } else { EventLevel::Warn };
        match result {
            Ok(Pending::Done(text)) => {
                self.shared.event(customer.as_deref(), level, text.clone());
                let _ = reply.send(Ok(text));
            }
            Ok(Pending::Forwarded(answer)) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    let result = answer.await.unwrap_or_else(|_| Err("the worker stopped".into()));
                    let text = match &result {
                        Ok(t) => t.clone(),
                        Err(e) => e.clone(),
                    };
                    shared.event(customer.as_deref(), EventLevel::Info, text);
                    let _ = reply.send(result);
                });
            }
            Err(e) => {
                self.shared.event(customer.as_deref(), level, e.clone());
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn execute(&mut self, command: &Command, actor: &str) -> Result<Pending, String> {
        if let Command::Reload = command {
            self.reconcile().await;
            return Ok(Pending::Done("customers reloaded".into()));
        }
        let name = command.customer().unwrap_or_default();
        let customer = self
            .shared
            .store
            .customer(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no customer named {name:?}"))?;
        let (tx, rx) = oneshot::channel();
        let message = match command {
            Command::Pause { .. } => return self.pause(&customer, true).await.map(Pending::Done),
            Command::Resume { .. } => return self.pause(&customer, false).await.map(Pending::Done),
            Command::PollNow { .. } => WorkerMsg::PollNow(tx),
            Command::Backfill { .. } => WorkerMsg::Backfill(tx),
            Command::RetryDlq { id, .. } => {
                WorkerMsg::RetryDlq(id.map_or(Selection::All, |id| Selection::Ids(vec![id])), tx)
            }
            Command::Reconcile { .. } => WorkerMsg::Background(Job::Reconcile, tx),
            Command::DeletionSweep { dry_run, .. } => {
                WorkerMsg::Background(Job::FullScan { dry_run: *dry_run }, tx)
            }
            Command::SettleDeletions { run, confirm, .. } => WorkerMsg::Background(
                Job::Settle { waiting_run: *run, confirm: *confirm, actor: actor.to_owned() },
                tx,
            ),
            Command::Offboard { purge, .. } => {
                return self.offboard(&customer, *purge, actor).await.map(Pending::Done);
            }
            Command::Reload => return Ok(Pending::Done(String::new())),
        };
        let slot = self
            .workers
            .get(&customer.id)
            .ok_or_else(|| format!("{name} is not running in this process (status {})", customer.status))?;
        slot.inbox.send(message).await.map_err(|_| format!("{name}'s worker has stopped"))?;
        Ok(Pending::Forwarded(rx))
    }

    /// Stops the customer's worker first (its runs end cleanly and give
    /// the lease back), then offboards it.
    async fn offboard(&mut self, customer: &Customer, purge: bool, actor: &str) -> Result<String, String> {
        self.stop(customer.id).await;
        let ops = super::ops::Ops::from_shared(Arc::clone(&self.shared));
        ops.offboard(&customer.name, purge, actor).await.map_err(|e| e.to_string())?;
        self.reconcile().await;
        let retention = humantime::format_duration(self.shared.config.offboard_retention);
        Ok(if purge {
            format!("{} offboarded and purged (the audit log keeps its history)", customer.name)
        } else {
            format!("{} offboarded: token deleted; its state is kept for {retention}", customer.name)
        })
    }

    /// Removes the state of customers offboarded longer than the retention.
    async fn purge_expired(&self) {
        let ops = super::ops::Ops::from_shared(Arc::clone(&self.shared));
        match ops.purge_expired().await {
            Ok(purged) => {
                for name in purged {
                    self.shared.event(Some(&name), EventLevel::Info, "retention period over: state purged");
                }
            }
            Err(e) => {
                self.shared.event(None, EventLevel::Error, format!("cannot purge expired customers: {e}"))
            }
        }
    }

    async fn pause(&mut self, customer: &Customer, pause: bool) -> Result<String, String> {
        let store = &self.shared.store;
        let next = super::ops::pause_transition(store, customer, pause).await.map_err(|e| e.to_string())?;
        store.set_customer_status(customer.id, next, None).await.map_err(|e| e.to_string())?;
        self.reconcile().await;
        Ok(format!("{} is now {next}", customer.name))
    }

    /// Publishes a fresh snapshot from the cached state DB figures and the
    /// workers' live figures.
    fn publish(&self) {
        let customers = self
            .customers
            .iter()
            .map(|c| {
                let live = self.lives.get(&c.id).cloned().unwrap_or_default();
                live.sample();
                let budget = self.shared.budget_if_any(c.id);
                super::snapshot::build_customer(
                    c,
                    self.overview.get(&c.id),
                    self.synced.get(&c.id).copied().unwrap_or(0),
                    &live,
                    budget.as_deref(),
                    self.shared.clocks.for_url(&c.vomo_url).now(),
                    self.workers.contains_key(&c.id),
                    STALL_AFTER,
                )
            })
            .collect::<Vec<CustomerSnapshot>>();
        let snapshot =
            EngineSnapshot { at: Some(Utc::now()), owner: self.shared.config.owner.clone(), customers };
        self.snapshot_tx.send_replace(Arc::new(snapshot));
    }
}

/// A command's result now, or the worker's answer to come.
enum Pending {
    Done(String),
    Forwarded(oneshot::Receiver<CommandReply>),
}

/// One customer's result of `headless --once`.
#[derive(Debug)]
pub struct OnceOutcome {
    pub customer: String,
    pub result: Result<Option<RunReport>, String>,
    pub note: Option<String>,
}
