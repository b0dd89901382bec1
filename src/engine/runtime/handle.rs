//! What front ends hold — an [`EngineHandle`]: commands in, snapshots and
//! events out — and [`Engine::start`], which starts the supervisor and the
//! listener that wakes it when a command is queued for this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::command::{Command, CommandError, CommandReply};
use super::fleet::Fleet;
use super::shared::Shared;
use super::snapshot::EngineSnapshot;
use super::supervisor::{Envelope, Supervisor};
use crate::engine::config::{EngineConfig, Role};
use crate::engine::error::SyncError;
use crate::engine::ops::{DlqItem, Ops};
use crate::engine::run::events::{EngineEvent, EventLevel};
use crate::engine::run::lock::locked;
use crate::store::Store;

/// How often the command queue is looked at without a notification.
const COMMAND_POLL: Duration = Duration::from_secs(1);

/// What front ends hold: commands in, snapshots and events out.
pub struct EngineHandle {
    commands: mpsc::Sender<Envelope>,
    snapshot: watch::Receiver<Arc<EngineSnapshot>>,
    events: broadcast::Sender<EngineEvent>,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    /// For read-only questions the state DB answers.
    shared: Arc<Shared>,
}

impl EngineHandle {
    /// Adds a message to the event stream (front ends' log panes), e.g. a
    /// hint from the process hosting the engine.
    pub fn announce(&self, customer: Option<&str>, level: EventLevel, message: impl Into<String>) {
        let _ = self.events.send(EngineEvent::new(customer, level, message));
    }

    /// Sends a command through the one door and waits for its answer.
    pub async fn send(&self, command: Command, actor: &str) -> CommandReply {
        let (reply, answer) = oneshot::channel();
        let envelope = Envelope { command, actor: actor.to_owned(), reply, queued: false };
        self.commands.send(envelope).await.map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }

    /// One DLQ entry (a read-only question).
    pub async fn dlq_item(&self, id: crate::store::DlqId) -> Result<DlqItem, CommandError> {
        Ops::from_shared(Arc::clone(&self.shared)).dlq_item(id).await
    }

    /// A customer's pending DLQ entries (a read-only question).
    pub async fn dlq_entries(&self, customer: &str) -> Result<Vec<DlqItem>, CommandError> {
        Ops::from_shared(Arc::clone(&self.shared)).dlq_list(Some(customer)).await
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
        let task = locked(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
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
            shared: Arc::clone(&shared),
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
        Ok(EngineHandle { commands, snapshot, events, cancel, task: Mutex::new(Some(task)), shared })
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
