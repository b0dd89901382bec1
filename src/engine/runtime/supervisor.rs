//! The engine's supervisor: one task that owns the customer workers of its
//! process. Its loop ([`Supervisor::run`]) re-reads the state DB and
//! balances the fleet every heartbeat (`balancing.rs`), publishes a snapshot
//! about once a second (`publish.rs`), purges expired customers now and
//! then, and routes operator commands: to its own workers, through the state
//! DB's command queue to the process running the customer, or carried out
//! here; it also carries out the queued commands for its own customers. On
//! shutdown it stops every worker, waits for them within a deadline, and
//! gives the leases back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::command::{Command, CommandError, CommandReply, Done, Routing};
use super::door;
use super::fleet::{self, Fleet, Holding};
use super::queue;
use super::shared::Shared;
use super::snapshot::{EngineSnapshot, StateDbFailure};
use super::worker::{Job, Now, WorkerEnd, WorkerMsg};
use crate::domain::CustomerStatus;
use crate::engine::config::Role;
use crate::engine::ops::customer_named;
use crate::engine::run::dlq_retry::Selection;
use crate::engine::run::events::EventLevel;
use crate::engine::run::live::Live;
use crate::store::{Customer, CustomerId, Overview};

/// Refresh of the synced-user counts (a scan of the mappings).
pub(super) const COUNTS_EVERY: Duration = Duration::from_secs(30);
/// A run without progress for this long is reported as stalled.
pub(super) const STALL_AFTER: Duration = Duration::from_secs(300);
/// How long shutdown waits for workers to finish their page.
pub(super) const DRAIN_DEADLINE: Duration = Duration::from_secs(20);
/// How often customers past their offboarding retention are purged.
pub(super) const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);
/// Heartbeat rows silent this long are removed (crashed processes).
pub(super) const FORGET_INSTANCES_AFTER: chrono::Duration = chrono::Duration::days(1);
/// Finished commands are kept this long (the audit log keeps them for good).
pub(super) const KEEP_COMMANDS: chrono::Duration = chrono::Duration::days(30);

/// A command with its author and a way to answer.
pub(super) struct Envelope {
    pub(super) command: Command,
    pub(super) actor: String,
    pub(super) reply: oneshot::Sender<CommandReply>,
    /// Taken from the state DB's queue: carried out here or refused, never
    /// queued again.
    pub(super) queued: bool,
}

pub(super) struct WorkerSlot {
    pub(super) signature: String,
    pub(super) inbox: mpsc::Sender<WorkerMsg>,
    pub(super) cancel: CancellationToken,
    pub(super) join: JoinHandle<WorkerEnd>,
}

pub(super) struct Supervisor {
    pub(super) shared: Arc<Shared>,
    pub(super) started_at: chrono::DateTime<Utc>,
    /// The other processes at the last reload.
    pub(super) fleet: Fleet,
    pub(super) commands_waiting: Arc<tokio::sync::Notify>,
    pub(super) workers: HashMap<CustomerId, WorkerSlot>,
    pub(super) lives: HashMap<CustomerId, Arc<Live>>,
    pub(super) customers: Vec<Customer>,
    pub(super) overview: HashMap<CustomerId, Overview>,
    pub(super) synced: HashMap<CustomerId, i64>,
    pub(super) synced_at: Option<std::time::Instant>,
    pub(super) synced_activity: u64,
    pub(super) snapshot_tx: watch::Sender<Arc<EngineSnapshot>>,
    /// Set while the supervisor's own state DB reads or writes fail.
    pub(super) state_db_failing: Option<StateDbFailure>,
}

impl Supervisor {
    pub(super) async fn run(mut self, mut inbox: mpsc::Receiver<Envelope>, cancel: CancellationToken) {
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
                let result = answer.await.unwrap_or(Err(CommandError::Stopped));
                let (ok, text) = match &result {
                    Ok(done) => (true, done.message.clone()),
                    Err(e) => (false, e.to_string()),
                };
                if let Err(e) = store.finish_command(row.id, ok, &text, Utc::now()).await {
                    tracing::error!(error = %e, "cannot record the result of command {}", row.id);
                }
            });
        }
    }

    async fn command(&mut self, envelope: Envelope) {
        let Envelope { command, actor, reply, queued } = envelope;
        let result = self.execute(&command, &actor, queued).await;
        let customer = command.customer().map(str::to_owned);
        let queued: String;
        let said = match &result {
            Ok(Pending::Done(done)) => Ok(done.message.as_str()),
            Ok(Pending::Forwarded(_)) => Ok("forwarded to the customer's worker"),
            Ok(Pending::Queued { holder, .. }) => {
                queued = format!("queued for {holder}, which runs the customer");
                Ok(queued.as_str())
            }
            Err(e) => Err(e),
        };
        door::audit(&self.shared, &command, &actor, said).await;
        match result {
            Ok(Pending::Done(done)) => {
                self.shared.event(customer.as_deref(), EventLevel::Info, done.message.clone());
                let _ = reply.send(Ok(done));
            }
            Ok(Pending::Queued { holder, command }) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    let result =
                        queue::send(&shared.store, &command, &actor, &shared.config.owner, &holder).await;
                    let (level, text) = match &result {
                        Ok(done) => (EventLevel::Info, done.message.clone()),
                        Err(e) => (EventLevel::Warn, e.to_string()),
                    };
                    shared.event(customer.as_deref(), level, text);
                    let _ = reply.send(result);
                });
            }
            Ok(Pending::Forwarded(answer)) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    let result = answer.await.unwrap_or(Err(CommandError::Stopped));
                    let (level, text) = match &result {
                        Ok(done) => (EventLevel::Info, done.message.clone()),
                        Err(e) => (EventLevel::Warn, e.to_string()),
                    };
                    shared.event(customer.as_deref(), level, text);
                    let _ = reply.send(result);
                });
            }
            Err(e) => {
                self.shared.event(customer.as_deref(), EventLevel::Warn, e.to_string());
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Where a command goes: carried out here (a change of state, or work
    /// for this process's worker), queued for the process that runs the
    /// customer, or refused.
    async fn execute(
        &mut self,
        command: &Command,
        actor: &str,
        queued: bool,
    ) -> Result<Pending, CommandError> {
        if let Command::Reload = command {
            self.reconcile().await;
            return Ok(Pending::Done(Done::said("customers reloaded")));
        }
        let Routing::Owner(name) = command.routing() else {
            let done = door::change_state(&self.shared, command, actor).await?;
            self.reconcile().await;
            return Ok(Pending::Done(done));
        };
        let customer = customer_named(&self.shared.store, name).await?;
        if !self.workers.contains_key(&customer.id) {
            let config = &self.shared.config;
            match fleet::holding(&self.shared.store, customer.id, &config.owner, config.reload_every).await? {
                Holding::Free => {}
                Holding::Worker(holder) if queued => {
                    return Err(CommandError::Refused(format!(
                        "{name} is now run by {holder}, not here; issue the command again"
                    )));
                }
                Holding::Worker(holder) => return Ok(Pending::Queued { holder, command: command.clone() }),
                Holding::Busy(holder) => return Err(CommandError::Busy(fleet::busy(name, &holder))),
            }
        }
        if let Command::Pause { .. } | Command::Offboard { .. } = command {
            // The worker stops first, so its runs end cleanly and give the
            // lease back; the reload after the change keeps it stopped.
            self.stop(customer.id).await;
            let done = door::change_state(&self.shared, command, actor).await;
            self.reconcile().await;
            return done.map(Pending::Done);
        }
        let (tx, rx) = oneshot::channel();
        let message = match command {
            Command::PollNow { .. } => WorkerMsg::Now(Now::Poll, tx),
            Command::Backfill { .. } => WorkerMsg::Now(Now::Backfill, tx),
            Command::RetryDlq { id, .. } => {
                WorkerMsg::Now(Now::RetryDlq(id.map_or(Selection::All, |id| Selection::Ids(vec![id]))), tx)
            }
            Command::Reconcile { .. } => WorkerMsg::Background(Job::Reconcile, tx),
            Command::DeletionSweep { dry_run, .. } => {
                WorkerMsg::Background(Job::FullScan { dry_run: *dry_run }, tx)
            }
            Command::SettleDeletions { run, confirm, .. } => WorkerMsg::Background(
                Job::Settle { waiting_run: *run, confirm: *confirm, actor: actor.to_owned() },
                tx,
            ),
            _ => return Err(CommandError::Refused(format!("{} is not for a worker", command.action()))),
        };
        let slot = self.workers.get(&customer.id).ok_or_else(|| not_running(&customer))?;
        slot.inbox
            .send(message)
            .await
            .map_err(|_| CommandError::NotRunning(format!("{name}'s worker has stopped")))?;
        Ok(Pending::Forwarded(rx))
    }
}

/// Why a command finds no worker for a customer, and what to do.
fn not_running(customer: &Customer) -> CommandError {
    let name = &customer.name;
    CommandError::NotRunning(match customer.status {
        CustomerStatus::Paused => format!("{name} is paused; resume it first"),
        CustomerStatus::TokenRejected => format!("{name}'s token was rejected; give it a new token first"),
        CustomerStatus::Offboarded => format!("{name} is offboarded; restore it first"),
        CustomerStatus::Onboarding => format!("{name} is still onboarding"),
        CustomerStatus::Backfilling | CustomerStatus::Active => format!(
            "no process runs {name} yet: start `vomo-sync headless` (or a console without --attach); an instance \
             that just started takes its customers within a heartbeat"
        ),
    })
}

/// A command's result now, the worker's answer to come, or a command for
/// another process to carry out through the state DB.
enum Pending {
    Done(Done),
    Forwarded(oneshot::Receiver<CommandReply>),
    Queued { holder: String, command: Command },
}
