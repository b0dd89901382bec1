//! What only the process running a customer knows of its work, in memory:
//! the run in progress and its progress, throughput samples, the chunk
//! sizing learnt, the next poll, the failure streak. Shared between a run
//! and whoever publishes it (the supervisor's snapshots, heartbeat rows).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lock::locked;
use super::window::{ChunkSizer, Progress};
use crate::domain::RunKind;

/// Live figures of a customer's work, shared with the supervisor.
#[derive(Debug, Default)]
pub struct Live {
    pub progress: Progress,
    pub current: std::sync::Mutex<Option<(RunKind, DateTime<Utc>)>>,
    pub requests_total: AtomicU64,
    pub users_total: AtomicU64,
    /// Chunk sizing the walker learned (kept between runs).
    pub sizer: std::sync::Mutex<ChunkSizer>,
    /// Set once the customer's backfill has completed (it never un-completes).
    pub backfill_done: std::sync::atomic::AtomicBool,
    /// The failure streak of the runs (cleared by a successful run).
    pub failure: std::sync::Mutex<Option<RunFailure>>,
    pub next_poll_at: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// When the current run last made progress (for stall detection).
    pub last_progress: std::sync::Mutex<Option<Instant>>,
    /// (time, users read so far) samples for the throughput figure.
    pub samples: std::sync::Mutex<std::collections::VecDeque<(Instant, u64)>>,
    /// The figures of a reconciliation or full scan running beside the
    /// polls, while it runs.
    pub background: std::sync::Mutex<Option<Arc<Live>>>,
    /// The destinations the customer's runs deliver to (their halts and
    /// budgets are shown), once a runtime is prepared.
    pub destinations: std::sync::Mutex<Option<Arc<Vec<crate::dest::Destination>>>>,
    /// The live tail's figures.
    pub tail: std::sync::Mutex<TailFigures>,
}

/// What the live tail (see [`super::tail`]) has done in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailFigures {
    /// The customer's tail interval in seconds (0 = off).
    pub every_secs: u64,
    /// Reads done, changes they delivered, reads handed over to a poll.
    pub reads: u64,
    pub changes: u64,
    pub handovers: u64,
    pub last_read_at: Option<DateTime<Utc>>,
    pub last_change_at: Option<DateTime<Utc>>,
    /// The last read's failure, until a read succeeds.
    pub failing: Option<String>,
}

impl Live {
    pub fn current(&self) -> Option<(RunKind, DateTime<Utc>)> {
        *locked(&self.current)
    }

    pub fn failure(&self) -> Option<RunFailure> {
        locked(&self.failure).clone()
    }

    /// Records a failed run (or a failed start): the streak grows, and
    /// keeps the time it began.
    pub fn record_failure(&self, kind: FailureKind, message: String, run_id: Option<crate::store::RunId>) {
        let mut failure = locked(&self.failure);
        let now = Utc::now();
        let (since, consecutive) = match failure.as_ref() {
            Some(f) => (f.since, f.consecutive.saturating_add(1)),
            None => (now, 1),
        };
        *failure = Some(RunFailure { kind, message, since, last_at: now, consecutive, run_id });
    }

    pub fn clear_failure(&self) {
        *locked(&self.failure) = None;
    }

    pub fn next_poll_at(&self) -> Option<DateTime<Utc>> {
        *locked(&self.next_poll_at)
    }

    pub fn set_next_poll(&self, at: Option<DateTime<Utc>>) {
        *locked(&self.next_poll_at) = at;
    }

    pub fn background(&self) -> Option<Arc<Live>> {
        locked(&self.background).clone()
    }

    pub fn set_background(&self, live: Option<Arc<Live>>) {
        *locked(&self.background) = live;
    }

    pub fn destinations(&self) -> Option<Arc<Vec<crate::dest::Destination>>> {
        locked(&self.destinations).clone()
    }

    pub fn set_destinations(&self, destinations: Arc<Vec<crate::dest::Destination>>) {
        *locked(&self.destinations) = Some(destinations);
    }

    pub fn tail(&self) -> TailFigures {
        locked(&self.tail).clone()
    }

    pub fn last_progress(&self) -> Option<Instant> {
        *locked(&self.last_progress)
    }

    /// Records the users read so far; keeps ten minutes of samples.
    pub fn sample(&self) {
        let users = self.users_total.load(Ordering::Relaxed) + self.progress.users.load(Ordering::Relaxed);
        let mut samples = locked(&self.samples);
        let now = Instant::now();
        if samples.back().is_some_and(|(_, n)| *n != users) {
            *locked(&self.last_progress) = Some(now);
        }
        samples.push_back((now, users));
        while samples.front().is_some_and(|(t, _)| now.duration_since(*t).as_secs() > 600) {
            samples.pop_front();
        }
    }

    /// Users read per minute over the last five minutes.
    pub fn throughput_per_min(&self) -> f64 {
        let samples = locked(&self.samples);
        let Some(&(t_last, n_last)) = samples.back() else { return 0.0 };
        let first = samples.iter().find(|(t, _)| t_last.duration_since(*t).as_secs() <= 300);
        match first {
            Some(&(t0, n0)) if t_last > t0 => {
                (n_last - n0) as f64 * 60.0 / t_last.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// What kind of trouble stops a customer's runs: each needs a different
/// hand (a new token, NTP, the state DB's disk, the destination, VOMO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// VOMO refused the token (401/403).
    Token,
    /// VOMO's `Date` was not believable.
    VomoClock,
    /// VOMO failed or answered nonsense.
    Vomo,
    /// The state DB could not be read or written.
    StateDb,
    /// A destination could not be prepared.
    Destination,
    Internal,
}

impl FailureKind {
    pub fn of(error: &crate::engine::error::SyncError) -> Option<Self> {
        use crate::engine::error::SyncError as E;
        Some(match error {
            E::TokenRejected(_) | E::Forbidden(_) => Self::Token,
            E::Clock(_) => Self::VomoClock,
            E::Vomo(_) => Self::Vomo,
            E::Store(crate::store::StoreError::LeaseLost { .. }) => Self::Internal,
            E::Store(_) => Self::StateDb,
            E::Destination(_) => Self::Destination,
            E::Internal(_) => Self::Internal,
            E::Cancelled => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::VomoClock => "vomo_clock",
            Self::Vomo => "vomo",
            Self::StateDb => "state_db",
            Self::Destination => "destination",
            Self::Internal => "internal",
        }
    }
}

/// A customer's runs failing: since when, how often in a row, the last
/// message and run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    pub kind: FailureKind,
    pub message: String,
    /// The first failure of this streak.
    pub since: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub consecutive: u32,
    pub run_id: Option<crate::store::RunId>,
}
