//! The supervisor's balancing, every heartbeat: re-reading customers and
//! the fleet from the state DB, renewing the leases this process holds
//! (stopping a worker whose lease another took), taking a fair share of the
//! customers nobody runs (a dead local holder's lease is taken over at once)
//! and giving back the excess, writing this process's heartbeat row, and
//! starting and stopping workers. Also housekeeping: customers past their
//! offboarding retention, dead heartbeat rows, old commands.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::door;
use super::fleet::{self, Fleet};
use super::snapshot::StateDbFailure;
use super::supervisor::{
    COUNTS_EVERY, DRAIN_DEADLINE, FORGET_INSTANCES_AFTER, KEEP_COMMANDS, Supervisor, WorkerSlot,
};
use super::worker::{self, WorkerEnd};
use crate::domain::CustomerStatus;
use crate::engine::config::Role;
use crate::engine::run::events::EventLevel;
use crate::store::{Customer, CustomerId};

impl Supervisor {
    /// Brings the running workers in line with the state DB: renews the
    /// leases held, stops what is no longer runnable here, takes up to a
    /// fair share of the customers nobody runs, and gives back the excess.
    pub(super) async fn reconcile(&mut self) {
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
    pub(super) async fn renew_all(&mut self) {
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
    pub(super) async fn give_back_excess(&mut self, share: usize) {
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
    pub(super) fn state_db_trouble(&mut self, error: Option<String>) {
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
    pub(super) async fn heartbeat(&mut self) {
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

    pub(super) async fn refresh(&mut self) -> Result<(), crate::store::StoreError> {
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
    pub(super) fn signature(&self, customer: &Customer) -> String {
        let token = self.overview.get(&customer.id).and_then(|o| o.token.as_ref());
        format!(
            "{}|{}|{:?}|{:?}",
            customer.status,
            customer.updated_at.timestamp_micros(),
            token.map(|t| &t.fingerprint),
            token.and_then(|t| t.validated_at).map(|t| t.timestamp_micros())
        )
    }

    pub(super) async fn spawn(&mut self, customer: &Customer, signature: String) {
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

    pub(super) async fn stop(&mut self, id: CustomerId) {
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
    pub(super) async fn stop_many(&mut self, ids: &[CustomerId]) {
        for id in ids {
            if let Some(slot) = self.workers.get(id) {
                slot.cancel.cancel();
            }
        }
        for id in ids {
            self.stop(*id).await;
        }
    }

    pub(super) async fn stop_all(&mut self) {
        let ids: Vec<CustomerId> = self.workers.keys().copied().collect();
        self.stop_many(&ids).await;
    }

    /// Removes the state of customers offboarded longer than the retention,
    /// heartbeat rows of long-dead processes, and old finished commands.
    pub(super) async fn purge_expired(&self) {
        let now = Utc::now();
        let store = &self.shared.store;
        if let Err(e) = store.forget_instances(None, now - FORGET_INSTANCES_AFTER).await {
            tracing::warn!(error = %e, "cannot remove stale heartbeat rows");
        }
        if let Err(e) = store.prune_commands(now - KEEP_COMMANDS).await {
            tracing::warn!(error = %e, "cannot remove old commands");
        }
        match door::purge_past_retention(&self.shared, now).await {
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
}
