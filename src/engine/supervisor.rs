//! The engine's supervisor: one task that owns the customer workers. Every
//! heartbeat period it re-reads customers from the state DB (new customers,
//! pauses, replaced tokens — also when made by another process), renews the
//! leases of the customers it runs (one writer per customer), takes its fair
//! share of the customers nobody runs and gives back what exceeds it, and
//! writes its heartbeat row with its customers' live figures. It routes
//! operator commands: to its own workers, or through the state DB's command
//! queue to the process running the customer; and it carries out queued
//! commands for its own customers. It publishes a snapshot about once a
//! second. On shutdown it stops every worker, waits for them within a
//! deadline, and gives the leases back.

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
use super::fleet::{self, Fleet, Holding};
use super::process::DeliveryTarget;
use super::snapshot::{
    CustomerSnapshot, EngineEvent, EngineSnapshot, EventLevel, Holder, LiveFigures, StateDbFailure,
};
use super::sync::{CustomerRuntime, Live, RunReport};
use super::worker::{self, Job, WorkerEnd, WorkerMsg};
use super::{EngineConfig, Role, SyncError, queue};
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
/// How often the command queue is looked at without a notification.
const COMMAND_POLL: Duration = Duration::from_secs(1);
/// Heartbeat rows silent this long are removed (crashed processes).
const FORGET_INSTANCES_AFTER: chrono::Duration = chrono::Duration::days(1);
/// Finished commands are kept this long (the audit log keeps them for good).
const KEEP_COMMANDS: chrono::Duration = chrono::Duration::days(30);

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
        let max_clock_skew = config.max_clock_skew;
        Ok(Arc::new(Self {
            store,
            http,
            backfill_slots: Arc::new(Semaphore::new(config.max_concurrent_backfills)),
            config: Arc::new(config),
            clocks: Clocks::new(max_clock_skew),
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
    /// `lease_owner` is the lease the runs hold (checkpoint commits are
    /// fenced by it), `None` for work that never moves a checkpoint.
    pub async fn prepare(
        &self,
        customer: &Customer,
        live: Arc<Live>,
        lease_owner: Option<&str>,
    ) -> Result<CustomerRuntime, SyncError> {
        let token = self.store.load_token(customer).await?.ok_or_else(|| {
            SyncError::Destination(format!("customer {} has no token (offboarded?)", customer.name))
        })?;
        crate::vomo::check_transport(&customer.vomo_url, self.config.allow_insecure_http)
            .map_err(SyncError::Vomo)?;
        let client = VomoClient::new(self.http.clone(), &customer.vomo_url, &token)
            .map_err(SyncError::Vomo)?
            .with_max_body(self.config.client.max_body);
        let mut destinations = Vec::new();
        for record in self.store.destinations(customer).await? {
            let text = record.secret.as_deref().unwrap_or(&record.config);
            let spec = DestinationSpec::parse(text).map_err(|e| SyncError::Destination(e.to_string()))?;
            let destination = Destination::connect(
                &record.name,
                &spec,
                &self.config.outbound,
                &customer.settings.writeback_fields,
            )
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
                lease_owner: lease_owner.map(str::to_owned),
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
    /// Taken from the state DB's queue: carried out here or refused, never
    /// queued again.
    queued: bool,
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
        let envelope = Envelope { command, actor: actor.to_owned(), reply, queued: false };
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
        let commands_waiting = Arc::new(tokio::sync::Notify::new());
        let mut supervisor = Supervisor {
            started_at: Utc::now(),
            fleet: Fleet::default(),
            commands_waiting: Arc::clone(&commands_waiting),
            shared,
            workers: HashMap::new(),
            lives: HashMap::new(),
            customers: Vec::new(),
            overview: HashMap::new(),
            synced: HashMap::new(),
            synced_at: None,
            synced_activity: 0,
            snapshot_tx,
            state_db_failing: None,
        };
        // Be seen before taking customers, so instances starting together
        // count each other in their fair shares.
        supervisor.heartbeat().await;
        supervisor.reconcile().await;
        supervisor.publish();
        spawn_command_listener(&supervisor.shared, commands_waiting, cancel.clone());
        let task = tokio::spawn(supervisor.run(inbox, cancel.clone()));
        Ok(EngineHandle { commands, snapshot, events, cancel, task: Mutex::new(Some(task)) })
    }
}

/// Wakes the supervisor when a command may be waiting in the state DB:
/// on `NOTIFY` (PostgreSQL) or every second (SQLite, or a lost listener).
fn spawn_command_listener(shared: &Shared, waiting: Arc<tokio::sync::Notify>, cancel: CancellationToken) {
    if shared.config.role != Role::Worker {
        return;
    }
    let mut signal = shared.store.command_signal();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = signal.wait(COMMAND_POLL) => waiting.notify_one(),
            }
        }
    });
}

struct Supervisor {
    shared: Arc<Shared>,
    started_at: chrono::DateTime<Utc>,
    /// The other processes at the last reload.
    fleet: Fleet,
    commands_waiting: Arc<tokio::sync::Notify>,
    workers: HashMap<CustomerId, WorkerSlot>,
    lives: HashMap<CustomerId, Arc<Live>>,
    customers: Vec<Customer>,
    overview: HashMap<CustomerId, Overview>,
    synced: HashMap<CustomerId, i64>,
    synced_at: Option<std::time::Instant>,
    synced_activity: u64,
    snapshot_tx: watch::Sender<Arc<EngineSnapshot>>,
    /// Set while the supervisor's own state DB reads or writes fail.
    state_db_failing: Option<StateDbFailure>,
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
                _ = reload.tick() => {
                    self.reconcile().await;
                    self.heartbeat().await;
                    self.run_queued().await;
                }
                () = self.commands_waiting.notified() => self.run_queued().await,
                _ = tick.tick() => self.publish(),
                _ = housekeeping.tick() => self.purge_expired().await,
            }
        }
        self.stop_all().await;
        let stale = Utc::now() - FORGET_INSTANCES_AFTER;
        if let Err(e) = self.shared.store.forget_instances(Some(&self.shared.config.owner), stale).await {
            tracing::warn!(error = %e, "cannot remove this instance's heartbeat row; it ages out by itself");
        }
        self.publish();
    }

    /// Brings the running workers in line with the state DB: renews the
    /// leases held, stops what is no longer runnable here, takes up to a
    /// fair share of the customers nobody runs, and gives back the excess.
    async fn reconcile(&mut self) {
        if let Err(e) = self.refresh().await {
            self.shared.event(None, EventLevel::Error, format!("cannot read the state DB: {e}"));
            self.state_db_trouble(Some(e.to_string()));
            return;
        }
        self.renew_all().await;
        let customers = self.customers.clone();
        let mut runnable = Vec::new();
        for customer in &customers {
            let signature = self.signature(customer);
            let is_runnable = matches!(customer.status, CustomerStatus::Backfilling | CustomerStatus::Active)
                && self.overview.get(&customer.id).is_some_and(|o| o.token.is_some());
            let (finished, changed) = match self.workers.get(&customer.id) {
                Some(slot) => (slot.join.is_finished(), slot.signature != signature),
                None => (false, false),
            };
            if finished || changed || (!is_runnable && self.workers.contains_key(&customer.id)) {
                self.stop(customer.id).await;
            }
            if is_runnable {
                runnable.push((customer, signature));
            }
        }
        let known: Vec<CustomerId> = customers.iter().map(|c| c.id).collect();
        let gone: Vec<CustomerId> = self.workers.keys().filter(|id| !known.contains(id)).copied().collect();
        for id in gone {
            self.stop(id).await;
        }
        if self.shared.config.role != Role::Worker {
            return;
        }
        let me = self.shared.config.owner.clone();
        let share = fleet::fair_share(runnable.len(), self.fleet.live_workers(&me));
        for (customer, signature) in runnable {
            if self.workers.len() >= share {
                break;
            }
            let held_elsewhere = self.fleet.holder(customer.id).is_some_and(|h| h != me);
            if !self.workers.contains_key(&customer.id) && !held_elsewhere {
                self.spawn(customer, signature).await;
            }
        }
        self.give_back_excess(share).await;
    }

    /// Renews every lease this process holds in one statement; a worker
    /// whose lease another process took over is stopped at once.
    async fn renew_all(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        let owner = &self.shared.config.owner;
        let held = match self.shared.store.renew_leases(owner, Utc::now(), self.shared.lease_expiry()).await {
            Ok(held) => held,
            Err(e) => {
                // Checkpoint commits are fenced by the lease, so working on
                // until the DB answers again cannot corrupt anything.
                self.shared.event(None, EventLevel::Error, format!("cannot renew leases: {e}"));
                return;
            }
        };
        let lost: Vec<CustomerId> = self.workers.keys().filter(|id| !held.contains(id)).copied().collect();
        for id in &lost {
            let name = self.customers.iter().find(|c| c.id == *id).map(|c| c.name.clone());
            self.shared.event(
                name.as_deref(),
                EventLevel::Warn,
                "lease lost to another process; stopping here",
            );
        }
        self.stop_many(&lost).await;
    }

    /// Hands customers beyond `share` back to the fleet (after another
    /// instance joined): every idle one at once, at most one with a run in
    /// progress per reload (it resumes elsewhere from its checkpoint).
    async fn give_back_excess(&mut self, share: usize) {
        let excess = self.workers.len().saturating_sub(share);
        if excess == 0 {
            return;
        }
        let mut ids: Vec<(bool, CustomerId)> = self
            .workers
            .keys()
            .map(|id| (self.lives.get(id).is_some_and(|l| l.current().is_some()), *id))
            .collect();
        // Idle first; among them the newest customers.
        ids.sort_by_key(|(busy, id)| (*busy, std::cmp::Reverse(*id)));
        let mut busy_given = false;
        let mut giving = Vec::new();
        for (busy, id) in ids.into_iter().take(excess) {
            if busy {
                if busy_given {
                    break;
                }
                busy_given = true;
            }
            giving.push(id);
        }
        self.stop_many(&giving).await;
        tracing::info!(excess, share, "gave customers back for other instances to take");
    }

    /// Notes the state DB failing (or working again) for the snapshot.
    fn state_db_trouble(&mut self, error: Option<String>) {
        let was_failing = self.state_db_failing.is_some();
        self.state_db_failing = error.map(|message| StateDbFailure {
            since: self.state_db_failing.as_ref().map_or_else(Utc::now, |f| f.since),
            message,
        });
        // Said at once: the next scheduled snapshot may wait for the DB.
        if was_failing != self.state_db_failing.is_some() {
            self.publish();
        }
    }

    /// Writes this process's heartbeat row with its customers' live figures.
    async fn heartbeat(&mut self) {
        let figures = self
            .customers
            .iter()
            .filter(|c| self.workers.contains_key(&c.id))
            .map(|c| (c.name.clone(), self.live_figures(c.id)))
            .collect();
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let row = fleet::heartbeat_row(&config.owner, config.role, self.started_at, Utc::now(), figures);
        match self.shared.store.heartbeat_instance(&row).await {
            Ok(()) => self.state_db_trouble(None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the heartbeat row");
                self.state_db_trouble(Some(format!("cannot write the heartbeat row: {e}")));
            }
        }
        // Commands claimed by processes that died will never be answered:
        // say so, so their issuers stop waiting.
        let now = Utc::now();
        let alive_since = fleet::alive_since(now, config.reload_every);
        if let Err(e) = self.shared.store.fail_orphaned_commands(alive_since, now).await {
            tracing::warn!(error = %e, "cannot close commands of stopped instances");
        }
    }

    fn live_figures(&self, id: CustomerId) -> LiveFigures {
        let live = self.lives.get(&id).cloned().unwrap_or_default();
        LiveFigures::of(&live, self.shared.budget_if_any(id).as_deref(), STALL_AFTER)
    }

    /// Carries out the queued commands for customers this process runs.
    async fn run_queued(&mut self) {
        if self.shared.config.role != Role::Worker || self.workers.is_empty() {
            return;
        }
        let owner = self.shared.config.owner.clone();
        let pending = match self.shared.store.pending_commands_for(&owner).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the command queue");
                return;
            }
        };
        for row in pending {
            match self.shared.store.claim_command(row.id, &owner, Utc::now()).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim command {}", row.id);
                    continue;
                }
            }
            let (reply, answer) = oneshot::channel();
            match queue::decode(&row) {
                Ok(command) => {
                    let actor = format!("{} via {}", row.actor, row.issued_by);
                    self.command(Envelope { command, actor, reply, queued: true }).await;
                }
                Err(why) => {
                    let _ = reply.send(Err(why));
                }
            }
            let store = self.shared.store.clone();
            tokio::spawn(async move {
                let result =
                    answer.await.unwrap_or_else(|_| Err("the engine stopped before answering".into()));
                let (ok, text) = match &result {
                    Ok(t) => (true, t.as_str()),
                    Err(e) => (false, e.as_str()),
                };
                if let Err(e) = store.finish_command(row.id, ok, text, Utc::now()).await {
                    tracing::error!(error = %e, "cannot record the result of command {}", row.id);
                }
            });
        }
    }

    async fn refresh(&mut self) -> Result<(), crate::store::StoreError> {
        let store = &self.shared.store;
        self.customers = store.customers().await?;
        self.overview = store.overview().await?;
        self.fleet = Fleet::read(store, Utc::now(), self.shared.config.reload_every).await?;
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
        let config = &self.shared.config;
        match fleet::acquire_lease(&self.shared.store, customer, &config.owner, config.lease_ttl).await {
            Ok(fleet::LeaseAttempt::Acquired) => {}
            Ok(fleet::LeaseAttempt::TakenOver { from }) => self.shared.event(
                Some(&customer.name),
                EventLevel::Warn,
                format!("took over the lease of {from}, which is gone (no such process on this machine)"),
            ),
            Ok(fleet::LeaseAttempt::Held { .. }) => return, // another process runs this customer
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

    /// Stops several workers: all are told at once, then awaited, so the
    /// drains overlap instead of adding up.
    async fn stop_many(&mut self, ids: &[CustomerId]) {
        for id in ids {
            if let Some(slot) = self.workers.get(id) {
                slot.cancel.cancel();
            }
        }
        for id in ids {
            self.stop(*id).await;
        }
    }

    async fn stop_all(&mut self) {
        let ids: Vec<CustomerId> = self.workers.keys().copied().collect();
        self.stop_many(&ids).await;
    }

    async fn command(&mut self, envelope: Envelope) {
        let Envelope { command, actor, reply, queued } = envelope;
        let result = self.execute(&command, &actor, queued).await;
        let customer = command.customer().map(str::to_owned);
        let audit = AuditEntry {
            at: Utc::now(),
            actor: actor.clone(),
            customer: customer.clone(),
            action: command.action().to_owned(),
            detail: format!("{command:?}"),
            result: match &result {
                Ok(Pending::Done(text)) => text.clone(),
                Ok(Pending::Forwarded(_)) => "forwarded to the customer's worker".to_owned(),
                Ok(Pending::Queued { holder, .. }) => format!("queued for {holder}, which runs the customer"),
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
            Ok(Pending::Queued { holder, command }) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    let result =
                        queue::send(&shared.store, &command, &actor, &shared.config.owner, &holder).await;
                    let (level, text) = match &result {
                        Ok(t) => (EventLevel::Info, t.clone()),
                        Err(e) => (EventLevel::Warn, e.clone()),
                    };
                    shared.event(customer.as_deref(), level, text);
                    let _ = reply.send(result);
                });
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

    async fn execute(&mut self, command: &Command, actor: &str, queued: bool) -> Result<Pending, String> {
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
        if !self.workers.contains_key(&customer.id) {
            let config = &self.shared.config;
            match fleet::holding(&self.shared.store, customer.id, &config.owner, config.reload_every)
                .await
                .map_err(|e| e.to_string())?
            {
                Holding::Free => {}
                Holding::Worker(holder) if queued => {
                    return Err(format!("{name} is now run by {holder}, not here; issue the command again"));
                }
                Holding::Worker(holder) => return Ok(Pending::Queued { holder, command: command.clone() }),
                Holding::Busy(holder) => return Err(fleet::busy(name, &holder)),
            }
        }
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
        let slot = self.workers.get(&customer.id).ok_or_else(|| not_running(&customer))?;
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

    /// Removes the state of customers offboarded longer than the retention,
    /// heartbeat rows of long-dead processes, and old finished commands.
    async fn purge_expired(&self) {
        let now = Utc::now();
        let store = &self.shared.store;
        if let Err(e) = store.forget_instances(None, now - FORGET_INSTANCES_AFTER).await {
            tracing::warn!(error = %e, "cannot remove stale heartbeat rows");
        }
        if let Err(e) = store.prune_commands(now - KEEP_COMMANDS).await {
            tracing::warn!(error = %e, "cannot remove old commands");
        }
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

    /// Publishes a fresh snapshot from the cached state DB figures, the
    /// workers' live figures, and those other processes publish.
    fn publish(&self) {
        let me = self.shared.config.owner.as_str();
        let customers = self
            .customers
            .iter()
            .map(|c| {
                let here = self.workers.contains_key(&c.id);
                if let Some(live) = self.lives.get(&c.id).filter(|_| here) {
                    live.sample();
                }
                let (figures, owner) = if here {
                    (Some(self.live_figures(c.id)), Some(me))
                } else {
                    let owner = self.fleet.holder(c.id);
                    (owner.and_then(|o| self.fleet.figures(o, &c.name)).cloned(), owner)
                };
                super::snapshot::build_customer(
                    c,
                    self.overview.get(&c.id),
                    self.synced.get(&c.id).copied().unwrap_or(0),
                    figures.as_ref(),
                    self.shared.clocks.for_url(&c.vomo_url).now(),
                    Holder { owner, here },
                )
            })
            .collect::<Vec<CustomerSnapshot>>();
        let snapshot = EngineSnapshot {
            at: Some(Utc::now()),
            owner: me.to_owned(),
            customers,
            state_db_failing: self.state_db_failing.clone(),
        };
        self.snapshot_tx.send_replace(Arc::new(snapshot));
    }
}

/// Why a command finds no worker for a customer, and what to do.
fn not_running(customer: &Customer) -> String {
    let name = &customer.name;
    match customer.status {
        CustomerStatus::Paused => format!("{name} is paused; resume it first"),
        CustomerStatus::TokenRejected => format!("{name}'s token was rejected; give it a new token first"),
        CustomerStatus::Offboarded => format!("{name} is offboarded; restore it first"),
        CustomerStatus::Onboarding => format!("{name} is still onboarding"),
        CustomerStatus::Backfilling | CustomerStatus::Active => format!(
            "no process runs {name} yet: start `vomo-sync headless` (or a console without --attach); an instance \
             that just started takes its customers within a heartbeat"
        ),
    }
}

/// A command's result now, the worker's answer to come, or a command for
/// another process to carry out through the state DB.
enum Pending {
    Done(String),
    Forwarded(oneshot::Receiver<CommandReply>),
    Queued { holder: String, command: Command },
}

/// One customer's result of `headless --once`.
#[derive(Debug)]
pub struct OnceOutcome {
    pub customer: String,
    pub result: Result<Option<RunReport>, String>,
    pub note: Option<String>,
    /// Nothing was done for the customer (its lease is held elsewhere, or
    /// its backfill may not start at this hour).
    pub skipped: bool,
}
