//! A customer's VOMO request budget: a GCRA limiter (`governor`) at the
//! configured rate that adapts — a 429 pauses it for `Retry-After` and halves
//! the rate, which then recovers additively — and hands permits out by
//! priority (write-back > polling > reconciliation > backfill > live tail),
//! counting what each class was granted. Every VOMO
//! request of a customer goes through its budget, so the budget holds however
//! many customers the process runs.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use super::lock::locked;

/// Work classes, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// The live tail: only fresher data, never needed for correctness.
    Tail = 0,
    Backfill = 1,
    Reconcile = 2,
    Poll = 3,
    Writeback = 4,
}

const PRIORITIES: usize = 5;

impl Priority {
    /// Every class, lowest first (the index of each is its value).
    pub const ALL: [Self; PRIORITIES] =
        [Self::Tail, Self::Backfill, Self::Reconcile, Self::Poll, Self::Writeback];

    /// The class's name in metrics and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tail => "tail",
            Self::Backfill => "backfill",
            Self::Reconcile => "reconcile",
            Self::Poll => "poll",
            Self::Writeback => "writeback",
        }
    }
}
/// The rate never drops below this share of the configured rate.
const MIN_SHARE: f64 = 0.05;
/// After a 429, every this long without another the rate grows by a tenth
/// of the configured rate.
const RECOVERY_STEP: Duration = Duration::from_secs(10);
/// How long a lower-priority request waits before looking again when a
/// higher-priority one is queued.
const DEFER_TICK: Duration = Duration::from_millis(20);

struct State {
    effective: f64,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    paused_until: Option<Instant>,
    last_change: Instant,
}

/// Figures for status screens and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetFigures {
    /// Requests per second configured (0 = unlimited).
    pub configured: f64,
    /// Requests per second allowed now (lower after 429s).
    pub effective: f64,
    pub granted: u64,
    /// `granted` by work class, indexed like [`Priority::ALL`].
    pub granted_by_class: [u64; PRIORITIES],
    pub rate_limited: u64,
    pub paused: bool,
}

/// One customer's budget. Cheap to share behind an `Arc`.
pub struct Budget {
    configured: f64,
    state: Mutex<State>,
    waiting: [AtomicUsize; PRIORITIES],
    granted: AtomicU64,
    granted_by_class: [AtomicU64; PRIORITIES],
    rate_limited: AtomicU64,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Budget({:?})", self.figures())
    }
}

/// Decrements a waiting counter however `acquire` ends (cancellation included).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn limiter_for(rate: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    if rate <= 0.0 || !rate.is_finite() {
        return None;
    }
    // One request per period, no burst: requests are spread evenly, so a
    // server-side GCRA at the same rate never sees us early.
    let period = Duration::from_secs_f64(1.0 / rate);
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::MIN);
    Some(Arc::new(DefaultDirectRateLimiter::direct(quota)))
}

impl Budget {
    /// A budget of `rate` requests per second; 0 means unlimited.
    pub fn new(rate: f64) -> Self {
        Self {
            configured: rate,
            state: Mutex::new(State {
                effective: rate,
                limiter: limiter_for(rate),
                paused_until: None,
                last_change: Instant::now(),
            }),
            waiting: Default::default(),
            granted: AtomicU64::new(0),
            granted_by_class: Default::default(),
            rate_limited: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few numbers; a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is recovered.
        locked(&self.state)
    }

    /// Waits for a permit to send one request at `priority`.
    pub async fn acquire(&self, priority: Priority) {
        let slot = &self.waiting[priority as usize];
        slot.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(slot);
        loop {
            let higher_waiting =
                self.waiting[priority as usize + 1..].iter().any(|w| w.load(Ordering::SeqCst) > 0);
            if higher_waiting {
                tokio::time::sleep(DEFER_TICK).await;
                continue;
            }
            let (limiter, paused_until) = {
                let mut state = self.state();
                self.recover(&mut state);
                (state.limiter.clone(), state.paused_until)
            };
            if let Some(until) = paused_until.filter(|until| *until > Instant::now()) {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            let Some(limiter) = limiter else { break };
            match limiter.check() {
                Ok(()) => break,
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now())).await;
                }
            }
        }
        self.granted.fetch_add(1, Ordering::Relaxed);
        self.granted_by_class[priority as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// VOMO answered 429: pause for `retry_after` (1 s when absent) and halve
    /// the rate.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        let now = Instant::now();
        state.paused_until =
            Some(now + retry_after.unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(100)));
        if self.configured > 0.0 {
            state.effective = (state.effective / 2.0).max(self.configured * MIN_SHARE);
            state.limiter = limiter_for(state.effective);
        }
        state.last_change = now;
    }

    /// Additive recovery towards the configured rate.
    fn recover(&self, state: &mut State) {
        if self.configured <= 0.0 || state.effective >= self.configured {
            return;
        }
        let steps = state.last_change.elapsed().as_secs_f64() / RECOVERY_STEP.as_secs_f64();
        if steps >= 1.0 {
            state.effective = (state.effective + self.configured * 0.1 * steps.floor()).min(self.configured);
            state.limiter = limiter_for(state.effective);
            state.last_change = Instant::now();
        }
    }

    pub fn figures(&self) -> BudgetFigures {
        let state = self.state();
        BudgetFigures {
            configured: self.configured,
            effective: state.effective,
            granted: self.granted.load(Ordering::Relaxed),
            granted_by_class: std::array::from_fn(|i| self.granted_by_class[i].load(Ordering::Relaxed)),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            paused: state.paused_until.is_some_and(|until| until > Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_spread_at_the_configured_rate() {
        let budget = Budget::new(20.0);
        let started = Instant::now();
        for _ in 0..11 {
            budget.acquire(Priority::Poll).await;
        }
        let elapsed = started.elapsed();
        // 11 permits at 20/s: the first at once, then one every 50 ms.
        assert!(elapsed >= Duration::from_millis(480), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
        assert_eq!(budget.figures().granted, 11);
        assert_eq!(budget.figures().granted_by_class[Priority::Poll as usize], 11);
    }

    #[tokio::test]
    async fn a_429_pauses_and_halves_then_recovers() {
        let budget = Budget::new(10.0);
        budget.on_rate_limited(Some(Duration::from_millis(300)));
        let figures = budget.figures();
        assert_eq!((figures.effective, figures.rate_limited, figures.paused), (5.0, 1, true));
        let started = Instant::now();
        budget.acquire(Priority::Poll).await;
        assert!(started.elapsed() >= Duration::from_millis(290), "waited out Retry-After");
        {
            let mut state = budget.state();
            state.last_change = Instant::now() - RECOVERY_STEP * 3;
        }
        budget.acquire(Priority::Poll).await;
        assert!((budget.figures().effective - 8.0).abs() < 1e-9, "{:?}", budget.figures());
    }

    #[tokio::test]
    async fn higher_priorities_go_first() {
        let budget = Arc::new(Budget::new(10.0));
        budget.acquire(Priority::Backfill).await; // uses the immediate permit
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |priority: Priority, label: &'static str| {
            let (budget, order) = (Arc::clone(&budget), Arc::clone(&order));
            tokio::spawn(async move {
                budget.acquire(priority).await;
                order.lock().unwrap().push(label);
            })
        };
        let low = spawn(Priority::Backfill, "backfill");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let high = spawn(Priority::Writeback, "writeback");
        low.await.unwrap();
        high.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["writeback", "backfill"]);
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let budget = Budget::new(0.0);
        let started = Instant::now();
        for _ in 0..1000 {
            budget.acquire(Priority::Backfill).await;
        }
        assert!(started.elapsed() < Duration::from_millis(200));
    }
}
