//! Every VOMO request of a customer, with the reactions vomo-api.md §7
//! recommends: through the customer's budget; 429 honours `Retry-After`;
//! 5xx, timeouts, connection errors and malformed pages are retried with
//! exponential backoff and jitter a bounded number of times; 401 and 403 stop
//! at once, with no retry. Requests are counted for the run record.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Priority};
use super::clock::{ClockError, ServerClock};
use crate::domain::{VomoUserId, whole_second};
use crate::engine::error::SyncError;
use crate::vomo::{UpsertOutcome, UpsertRequest, UserDetail, UserFilter, UserPage, VomoClient, VomoError};

/// 429s tolerated for one request before the run gives up.
const MAX_RATE_LIMITED: u32 = 50;
/// Cap of one backoff sleep.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How failing requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first before giving up.
    pub retries: u32,
    /// First backoff; doubles per attempt (with ±50 % jitter).
    pub base: Duration,
}

impl RetryPolicy {
    /// The sleep before retry `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF);
        exp.mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

/// A customer's VOMO access for one run.
pub struct Fetcher {
    client: VomoClient,
    budget: Arc<Budget>,
    clock: Arc<ServerClock>,
    policy: RetryPolicy,
    cancel: CancellationToken,
    requests: AtomicU64,
}

impl Fetcher {
    pub fn new(
        client: VomoClient,
        budget: Arc<Budget>,
        clock: Arc<ServerClock>,
        policy: RetryPolicy,
        cancel: CancellationToken,
    ) -> Self {
        Self { client, budget, clock, policy, cancel, requests: AtomicU64::new(0) }
    }

    /// Requests sent so far (429s and retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// One page of users.
    pub async fn list(
        &self,
        priority: Priority,
        filter: &UserFilter,
        page: u64,
    ) -> Result<UserPage, SyncError> {
        let page = self.call(priority, || self.client.list_users(filter, page)).await?;
        // A page whose clock is not believable is not used at all.
        self.clock.observe(page.server_time)?;
        Ok(page)
    }

    /// One user's detail; `None` when VOMO says 404.
    pub async fn get_user(
        &self,
        priority: Priority,
        id: VomoUserId,
    ) -> Result<Option<UserDetail>, SyncError> {
        match self.call(priority, || self.client.get_user(id)).await {
            Ok(detail) => Ok(Some(detail)),
            Err(SyncError::Vomo(VomoError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create-or-update a user in VOMO (write-back).
    pub async fn upsert(
        &self,
        priority: Priority,
        request: &UpsertRequest,
    ) -> Result<UpsertOutcome, SyncError> {
        self.call(priority, || self.client.upsert_user(request)).await
    }

    /// VOMO's current time, whole seconds. When no response has told us yet,
    /// one cheap request (no user can be updated after the far future) asks.
    pub async fn server_now(&self, priority: Priority) -> Result<DateTime<Utc>, SyncError> {
        if let Some(now) = self.clock.now() {
            return Ok(whole_second(now));
        }
        let far_future = Utc::now() + chrono::Duration::days(365 * 50);
        let filter = UserFilter { updated_after: Some(far_future), ..UserFilter::default() };
        let page = self.call(priority, || self.client.list_users(&filter, 1)).await?;
        self.clock.observe(page.server_time)?;
        let now = self.clock.now().ok_or(ClockError::NoDate)?;
        Ok(whole_second(now))
    }

    /// Runs `op` through the budget with the retry rules.
    async fn call<T, F, Fut>(&self, priority: Priority, op: F) -> Result<T, SyncError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, VomoError>>,
    {
        let (mut failures, mut limited) = (0, 0);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return Err(SyncError::Cancelled),
                () = self.budget.acquire(priority) => {}
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let result = tokio::select! {
                () = self.cancel.cancelled() => return Err(SyncError::Cancelled),
                result = op() => result,
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            match &error {
                VomoError::Unauthorized { .. } => return Err(SyncError::TokenRejected(error)),
                VomoError::Forbidden { .. } => return Err(SyncError::Forbidden(error)),
                VomoError::RateLimited { retry_after, .. } if limited < MAX_RATE_LIMITED => {
                    limited += 1;
                    tracing::debug!(retry_after = ?retry_after, "VOMO rate limit; waiting");
                    self.budget.on_rate_limited(*retry_after);
                }
                e if e.is_retryable() && failures < self.policy.retries => {
                    failures += 1;
                    let wait = self.policy.backoff(failures);
                    tracing::warn!(error = %e, attempt = failures, wait_ms = wait.as_millis() as u64, "VOMO request failed; retrying");
                    tokio::select! {
                        () = self.cancel.cancelled() => return Err(SyncError::Cancelled),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                _ => return Err(SyncError::Vomo(error)),
            }
        }
    }
}
