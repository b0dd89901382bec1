//! Everything a run of one customer needs — its VOMO client, budget and
//! clock, its delivery target, the engine's settings, its live figures, the
//! event stream — and what every part of a run does with it: announce what
//! happens, record a failure, tell a backfill from a poll.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;

use super::budget::Budget;
use super::clock::ServerClock;
use super::events::{EngineEvent, EventLevel};
use super::live::{FailureKind, Live};
use super::process::DeliveryTarget;
use crate::domain::RunKind;
use crate::engine::config::EngineConfig;
use crate::engine::error::SyncError;
use crate::store::Customer;
use crate::vomo::VomoClient;

/// Everything a run of one customer needs.
#[derive(Clone)]
pub struct CustomerRuntime {
    pub customer: Customer,
    pub client: VomoClient,
    pub budget: Arc<Budget>,
    pub clock: Arc<ServerClock>,
    pub target: Arc<DeliveryTarget>,
    pub config: Arc<EngineConfig>,
    pub live: Arc<Live>,
    pub events: broadcast::Sender<EngineEvent>,
}

impl CustomerRuntime {
    /// Logs and broadcasts something this customer's work did or saw.
    pub fn event(&self, level: EventLevel, message: impl Into<String>) {
        self.run_event(level, None, message);
    }

    /// [`Self::event`] naming the run it is about, in the log's fields.
    pub fn run_event(&self, level: EventLevel, run: Option<crate::store::RunId>, message: impl Into<String>) {
        let event = EngineEvent::new(Some(&self.customer.name), level, message);
        let (customer, message) = (self.customer.name.as_str(), event.message.as_str());
        match level {
            EventLevel::Info => tracing::info!(customer, run, "{message}"),
            EventLevel::Warn => tracing::warn!(customer, run, "{message}"),
            EventLevel::Error => tracing::error!(customer, run, "{message}"),
        }
        // No receivers is normal (headless without a console).
        let _ = self.events.send(event);
    }

    /// The kind of an advancing run now: backfill until one has completed
    /// (however many runs it takes: a backfill resumed after a crash is
    /// still a backfill), polls after.
    pub async fn advancing_kind(&self) -> Result<RunKind, SyncError> {
        if self.live.backfill_done.load(Ordering::Relaxed) {
            return Ok(RunKind::Poll);
        }
        let done = self.target.store.backfill_completed(self.customer.id).await?;
        self.live.backfill_done.store(done, Ordering::Relaxed);
        Ok(if done { RunKind::Poll } else { RunKind::Backfill })
    }

    /// Records a failure of `what` (a run, or the work before one) in the
    /// live figures and logs it with the customer, the run and the cause:
    /// no failure is silent, whether or not a run could be recorded.
    pub async fn note_failure(
        &self,
        what: &str,
        run_id: Option<crate::store::RunId>,
        error: SyncError,
    ) -> SyncError {
        let Some(failure) = FailureKind::of(&error) else { return error };
        let text = self.failure_text(&error).await;
        self.live.record_failure(failure, text.clone(), run_id);
        self.run_event(EventLevel::Error, run_id, format!("{what} failed: {text}"));
        error
    }

    /// A failed run in words, with where the checkpoint stays.
    pub(super) async fn failure_text(&self, error: &SyncError) -> String {
        if matches!(error, SyncError::TokenRejected(_) | SyncError::Forbidden(_)) {
            return error.to_string();
        }
        match self.target.store.load_checkpoint(self.customer.id).await {
            Ok(checkpoint) => format!(
                "{error}; checkpoint kept at {}",
                crate::domain::format_rfc3339(&checkpoint.watermark)
            ),
            Err(_) => error.to_string(),
        }
    }
}
