//! A customer's VOMO request budget: a GCRA limiter (`governor`) at the
//! rate the customer's setting (`--rate`) allows, handing permits out by priority
//! (write-back > polling > reconciliation > backfill > live tail) and
//! counting what each class was granted. The rate follows what VOMO
//! declares in `X-RateLimit-*` ([`super::declared`]) — up to the operator's
//! cap, or from a safe start in `auto` — and adapts: a 429 pauses it for
//! `Retry-After` and halves it, and it recovers additively. Every VOMO
//! request of a customer goes through its budget, so the budget holds however
//! many customers the process runs.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use super::declared::Declared;
use super::lock::locked;
use crate::domain::RateSetting;
use crate::vomo::{RateInfo, RateObserver};

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
/// `auto` sends at this until VOMO's answers show what it allows: under
/// Laravel's stock 60 a minute, the slowest limit VOMO is thought to have.
pub const AUTO_START: f64 = 0.9;
/// `auto` with a VOMO that declares nothing: the recipe's 3 req/s, with the
/// 429 adaptation as the only guide.
pub const AUTO_UNDECLARED: f64 = 3.0;
/// `auto` never sends faster than this, whatever VOMO declares.
pub const AUTO_MAX: f64 = 100.0;
/// The backoff never cuts the rate below this share.
const MIN_SHARE: f64 = 0.05;
/// After a 429, every this long without another the backoff gives back a
/// tenth of the rate.
const RECOVERY_STEP: Duration = Duration::from_secs(10);
/// How long a lower-priority request waits before looking again when a
/// higher-priority one is queued.
const DEFER_TICK: Duration = Duration::from_millis(20);
/// The limiter is rebuilt only for a change larger than this share; each
/// rebuild costs up to one request interval.
const RATE_HYSTERESIS: f64 = 0.02;
/// The span over which the used rate is measured.
const USED_SPAN: Duration = Duration::from_secs(60);

struct State {
    /// 1 normally; halved by each 429, recovering additively.
    backoff: f64,
    /// The limiter's rate (0 = unlimited).
    effective: f64,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    paused_until: Option<Instant>,
    last_change: Instant,
    declared: Declared,
    /// An answer came without `X-RateLimit-*`.
    undeclared: bool,
    /// When each of the last minute's permits was granted.
    grants: VecDeque<Instant>,
}

/// Figures for status screens and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetFigures {
    /// `auto`, or the operator's cap.
    pub setting: RateSetting,
    /// Requests per second allowed now (0 = unlimited).
    pub effective: f64,
    /// Requests per second sent over the last minute.
    pub used_per_s: f64,
    /// What VOMO declares, once its answers carried the headers.
    pub declared: Option<DeclaredFigures>,
    pub granted: u64,
    /// `granted` by work class, indexed like [`Priority::ALL`].
    pub granted_by_class: [u64; PRIORITIES],
    pub rate_limited: u64,
    pub paused: bool,
}

/// VOMO's `X-RateLimit-*`, as last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredFigures {
    pub limit: u32,
    pub remaining: u32,
    /// The limit read as requests per second, once the answers tell its window.
    pub per_s: Option<f64>,
    /// How long ago the last answer with the headers arrived.
    pub age: Duration,
}

/// One customer's budget. Cheap to share behind an `Arc`.
pub struct Budget {
    setting: RateSetting,
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
    /// A budget capped at `rate` requests per second (0 = unlimited).
    #[cfg(test)]
    pub fn new(rate: f64) -> Self {
        Self::with_setting(RateSetting::Cap(rate))
    }

    pub fn with_setting(setting: RateSetting) -> Self {
        let budget = Self {
            setting,
            state: Mutex::new(State {
                backoff: 1.0,
                effective: 0.0,
                limiter: None,
                paused_until: None,
                last_change: Instant::now(),
                declared: Declared::default(),
                undeclared: false,
                grants: VecDeque::new(),
            }),
            waiting: Default::default(),
            granted: AtomicU64::new(0),
            granted_by_class: Default::default(),
            rate_limited: AtomicU64::new(0),
        };
        {
            let mut state = budget.state();
            let rate = budget.wanted(&state);
            state.effective = rate;
            state.limiter = limiter_for(rate);
        }
        budget
    }

    pub fn setting(&self) -> RateSetting {
        self.setting
    }

    /// The rate the setting and VOMO's declaration allow, before any
    /// backoff (0 = unlimited).
    fn wanted(&self, state: &State) -> f64 {
        let (auto, cap) = match self.setting {
            RateSetting::Auto => (true, AUTO_MAX),
            RateSetting::Cap(cap) => (false, cap),
        };
        // `target` is `None` only while no answer carried the headers.
        let wanted = match state.declared.target(AUTO_START) {
            Some(target) => target,
            None if auto && state.undeclared => AUTO_UNDECLARED,
            None if auto => AUTO_START,
            // The operator's rate until VOMO's declaration is read.
            None => cap,
        };
        if cap > 0.0 && (wanted <= 0.0 || wanted > cap) { cap } else { wanted }
    }

    /// Moves the limiter to what the setting, the declaration and the backoff
    /// allow, when that differs enough to be worth a new limiter.
    fn retune(&self, state: &mut State) {
        let wanted = self.wanted(state);
        let rate = if wanted > 0.0 { (wanted * state.backoff).max(wanted * MIN_SHARE) } else { 0.0 };
        let current = state.effective;
        let same = if current <= 0.0 || rate <= 0.0 {
            current == rate
        } else {
            ((rate - current) / current).abs() <= RATE_HYSTERESIS
        };
        if same {
            return;
        }
        state.effective = rate;
        state.limiter = limiter_for(rate);
        if let Some(limiter) = &state.limiter {
            // A new limiter starts with a permit in hand; spending it here
            // keeps a change of rate from sending two requests at once.
            let _ = limiter.check();
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
        let now = Instant::now();
        let mut state = self.state();
        state.grants.push_back(now);
        while state.grants.front().is_some_and(|at| now.saturating_duration_since(*at) > USED_SPAN) {
            state.grants.pop_front();
        }
    }

    /// VOMO answered 429: pause for `retry_after` (1 s when absent) and halve
    /// the rate.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        let now = Instant::now();
        state.paused_until =
            Some(now + retry_after.unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(100)));
        state.backoff = (state.backoff / 2.0).max(MIN_SHARE);
        state.last_change = now;
        self.retune(&mut state);
    }

    /// Additive recovery of the backoff.
    fn recover(&self, state: &mut State) {
        if state.backoff < 1.0 {
            let steps = state.last_change.elapsed().as_secs_f64() / RECOVERY_STEP.as_secs_f64();
            if steps >= 1.0 {
                state.backoff = (state.backoff + 0.1 * steps.floor()).min(1.0);
                state.last_change = Instant::now();
            }
        }
        self.retune(state);
    }

    pub fn figures(&self) -> BudgetFigures {
        let state = self.state();
        let declared = state.declared.limit().map(|limit| DeclaredFigures {
            limit,
            remaining: state.declared.remaining().unwrap_or(0),
            per_s: state.declared.per_second(),
            age: state.declared.last_seen().map_or(Duration::ZERO, |at| at.elapsed()),
        });
        let span =
            state.grants.front().map_or(USED_SPAN, |first| first.elapsed().max(Duration::from_secs(1)));
        BudgetFigures {
            setting: self.setting,
            effective: state.effective,
            used_per_s: state.grants.len() as f64 / span.min(USED_SPAN).as_secs_f64(),
            declared,
            granted: self.granted.load(Ordering::Relaxed),
            granted_by_class: std::array::from_fn(|i| self.granted_by_class[i].load(Ordering::Relaxed)),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            paused: state.paused_until.is_some_and(|until| until > Instant::now()),
        }
    }
}

impl RateObserver for Budget {
    /// Every VOMO answer of the customer, as it arrives: what it says of
    /// the limit steers the rate. A 429 spent nothing and is handled by
    /// [`Budget::on_rate_limited`].
    fn answered(&self, status: u16, rate: RateInfo) {
        if status == 429 {
            return;
        }
        let mut state = self.state();
        match (rate.limit, rate.remaining) {
            (Some(limit), Some(remaining)) => {
                state.declared.observe(Instant::now(), limit, remaining);
            }
            _ => state.undeclared = true,
        }
        self.retune(&mut state);
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
