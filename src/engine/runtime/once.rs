//! `headless --once`: the due work of every customer — its backfill, or one
//! poll — plus its due DLQ retries, run to completion, customers side by side
//! under the backfill cap, with live progress for progress bars.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::advance::advancing_run;
use super::fleet::{LeaseAttempt, acquire_lease};
use super::shared::Shared;
use crate::domain::CustomerStatus;
use crate::engine::config::EngineConfig;
use crate::engine::error::SyncError;
use crate::engine::run::dlq_retry::{self, Selection};
use crate::engine::run::events::EventLevel;
use crate::engine::run::execute::RunReport;
use crate::engine::run::live::Live;
use crate::store::{Customer, Store};

/// Progress of one customer in a `--once` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnceProgress {
    pub customer: String,
    pub pages: u64,
    pub users: u64,
    /// Users in the window (0 until its first page is read).
    pub total: u64,
    pub finished: bool,
}

/// A `--once` run in progress.
pub struct OnceRun {
    lives: Vec<(String, Arc<Live>)>,
    tasks: JoinSet<OnceOutcome>,
    finished: Vec<OnceOutcome>,
}

impl OnceRun {
    /// Starts the due work of every runnable customer.
    pub async fn start(
        store: Store,
        config: EngineConfig,
        cancel: CancellationToken,
    ) -> Result<Self, SyncError> {
        let shared = Shared::new(store, config)?;
        let mut run = Self { lives: Vec::new(), tasks: JoinSet::new(), finished: Vec::new() };
        for customer in shared.store.customers().await? {
            if !matches!(customer.status, CustomerStatus::Backfilling | CustomerStatus::Active) {
                continue;
            }
            let owner = &shared.config.owner;
            match acquire_lease(&shared.store, &customer, owner, shared.config.lease_ttl).await? {
                LeaseAttempt::Acquired => {}
                LeaseAttempt::TakenOver { from } => shared.event(
                    Some(&customer.name),
                    EventLevel::Warn,
                    format!("took over the lease of {from}, which is gone (no such process on this machine)"),
                ),
                LeaseAttempt::Held { holder, expires_at } => {
                    let left = (expires_at - Utc::now()).num_seconds().max(0);
                    run.finished.push(OnceOutcome {
                        customer: customer.name.clone(),
                        result: Ok(None),
                        note: Some(format!(
                            "skipped: {holder} holds its lease (it expires in {left} s unless renewed); \
                             nothing was read"
                        )),
                        skipped: true,
                    });
                    continue;
                }
            }
            let live = Arc::new(Live::default());
            run.lives.push((customer.name.clone(), Arc::clone(&live)));
            run.tasks.spawn(one_customer(Arc::clone(&shared), customer, live, cancel.clone()));
        }
        Ok(run)
    }

    /// Live progress of every customer started.
    pub fn progress(&self) -> Vec<OnceProgress> {
        self.lives
            .iter()
            .map(|(customer, live)| OnceProgress {
                customer: customer.clone(),
                pages: live.progress.pages.load(Ordering::Relaxed),
                users: live.progress.users.load(Ordering::Relaxed) + live.users_total.load(Ordering::Relaxed),
                total: live.progress.total.load(Ordering::Relaxed),
                finished: self.finished.iter().any(|o| &o.customer == customer),
            })
            .collect()
    }

    /// Waits for the next customer to finish; `false` when all have.
    pub async fn next(&mut self) -> bool {
        match self.tasks.join_next().await {
            Some(Ok(outcome)) => {
                self.finished.push(outcome);
                true
            }
            Some(Err(e)) => {
                self.finished.push(OnceOutcome {
                    customer: "?".into(),
                    result: Err(format!("task failed: {e}")),
                    note: None,
                    skipped: false,
                });
                true
            }
            None => false,
        }
    }

    /// Every outcome, by customer name.
    pub fn outcomes(mut self) -> Vec<OnceOutcome> {
        self.finished.sort_by(|a, b| a.customer.cmp(&b.customer));
        self.finished
    }
}

async fn one_customer(
    shared: Arc<Shared>,
    customer: Customer,
    live: Arc<Live>,
    cancel: CancellationToken,
) -> OnceOutcome {
    let name = customer.name.clone();
    let result = async {
        let _ = shared.store.abort_running_runs(customer.id, "the process running it stopped").await;
        let runtime = shared.prepare(&customer, Arc::clone(&live), Some(&shared.config.owner)).await?;
        let report = advancing_run(&shared, &runtime, false, &cancel).await?;
        dlq_retry::retry_dlq(&runtime, &Selection::Due).await?;
        Ok::<_, SyncError>(report)
    }
    .await;
    let _ = shared.store.release_lease(customer.id, &shared.config.owner).await;
    let skipped = matches!(result, Ok(None));
    let note = skipped.then(|| "skipped: outside the backfill hours (sync.backfill_hours)".to_owned());
    // The recorded failure says more (where the checkpoint stays).
    let result = result.map_err(|e| live.failure().map_or_else(|| e.to_string(), |f| f.message));
    OnceOutcome { customer: name, result, note, skipped }
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
