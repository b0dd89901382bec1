//! One HubSpot destination's request budget. HubSpot limits an account, not
//! an app: every app of the customer's account shares 100 requests per
//! rolling ten seconds (Free/Starter) and a daily allowance. The budget is a
//! GCRA limiter (`governor`) at a safe share of that, one request per period
//! with no burst, so even a rolling window never sees more than the rate.
//!
//! A `TEN_SECONDLY_ROLLING` 429 (another app used the account's room)
//! pauses every request for the interval HubSpot names and halves the rate,
//! which then recovers by a tenth every quiet ten seconds. A `DAILY` 429, or
//! a `X-HubSpot-RateLimit-Daily-Remaining` of 0, stops the destination until
//! the next half hour: HubSpot resets the day at midnight in the account's
//! time zone, which we do not know, and every zone's midnight falls on a
//! half hour, so at most one request per half hour is spent finding out.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

/// HubSpot's rolling window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The rate never drops below this share of the configured rate.
const MIN_SHARE: f64 = 0.05;
/// Every quiet window after a 429 gives back a tenth of the configured rate.
const RECOVERY_STEP: Duration = WINDOW;

/// Figures for the console and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetFigures {
    /// Requests per 10 seconds configured.
    pub configured_per_10s: f64,
    /// Requests per 10 seconds allowed now (lower after 429s).
    pub effective_per_10s: f64,
    /// Requests sent (each retry counts).
    pub requests: u64,
    /// 429 answers by `policyName`.
    pub rate_limited: BTreeMap<String, u64>,
    /// Paused after a 429 right now.
    pub paused: bool,
    /// What HubSpot last reported in `X-HubSpot-RateLimit-Daily(-Remaining)`.
    pub daily_limit: Option<u64>,
    pub daily_remaining: Option<u64>,
    /// Stopped for the day until this instant.
    pub daily_stop_until: Option<DateTime<Utc>>,
}

struct State {
    effective: f64,
    limiter: Arc<DefaultDirectRateLimiter>,
    paused_until: Option<Instant>,
    last_change: Instant,
    daily_stop_until: Option<DateTime<Utc>>,
    daily_limit: Option<u64>,
    daily_remaining: Option<u64>,
    requests: u64,
    rate_limited: BTreeMap<String, u64>,
}

/// A destination's budget; shared by all its requests.
pub struct Budget {
    configured: f64,
    state: Mutex<State>,
}

/// Requests per second → a limiter that spaces them evenly.
fn limiter_for(per_second: f64) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    Arc::new(DefaultDirectRateLimiter::direct(quota.allow_burst(NonZeroU32::MIN)))
}

/// The next half-hour boundary after `now` (UTC).
pub fn next_half_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    let half_hour = chrono::Duration::minutes(30);
    now.duration_trunc(half_hour).map_or(now + half_hour, |start| start + half_hour)
}

impl Budget {
    /// A budget of `per_10s` requests per rolling ten seconds.
    pub fn new(per_10s: u32) -> Self {
        let per_second = f64::from(per_10s.max(1)) / WINDOW.as_secs_f64();
        Self {
            configured: per_second,
            state: Mutex::new(State {
                effective: per_second,
                limiter: limiter_for(per_second),
                paused_until: None,
                last_change: Instant::now(),
                daily_stop_until: None,
                daily_limit: None,
                daily_remaining: None,
                requests: 0,
                rate_limited: BTreeMap::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A few numbers; a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a permit; `Err(until)` while stopped for the day.
    pub async fn acquire(&self) -> Result<(), DateTime<Utc>> {
        loop {
            let (limiter, paused_until) = {
                let mut state = self.state();
                if let Some(until) = state.daily_stop_until {
                    if Utc::now() < until {
                        return Err(until);
                    }
                    state.daily_stop_until = None;
                }
                self.recover(&mut state);
                (Arc::clone(&state.limiter), state.paused_until)
            };
            if let Some(until) = paused_until.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            match limiter.check() {
                Ok(()) => break,
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now())).await
                }
            }
        }
        self.state().requests += 1;
        Ok(())
    }

    /// A `TEN_SECONDLY_ROLLING` (or unnamed) 429: pause for `wait` and halve the rate.
    pub fn on_rate_limited(&self, policy: &str, wait: Duration) {
        let mut state = self.state();
        *state.rate_limited.entry(policy.to_owned()).or_default() += 1;
        let now = Instant::now();
        state.paused_until = Some(state.paused_until.map_or(now + wait, |p| p.max(now + wait)));
        state.effective = (state.effective / 2.0).max(self.configured * MIN_SHARE);
        state.limiter = limiter_for(state.effective);
        state.last_change = now;
    }

    /// A `DAILY` 429: stop until the next half hour. Returns that instant.
    pub fn on_daily_limit(&self) -> DateTime<Utc> {
        let mut state = self.state();
        *state.rate_limited.entry("DAILY".to_owned()).or_default() += 1;
        let until = next_half_hour(Utc::now());
        state.daily_stop_until = Some(until);
        state.daily_remaining = Some(0);
        until
    }

    /// Records the daily figures of an answer; a remaining 0 stops the
    /// destination before HubSpot has to refuse it.
    pub fn observe_daily(&self, limit: Option<u64>, remaining: Option<u64>) {
        let mut state = self.state();
        if limit.is_some() {
            state.daily_limit = limit;
        }
        if remaining.is_some() {
            state.daily_remaining = remaining;
        }
        if remaining == Some(0) && state.daily_stop_until.is_none() {
            state.daily_stop_until = Some(next_half_hour(Utc::now()));
        }
    }

    /// Additive recovery after 429s: a tenth of the configured rate per quiet window.
    fn recover(&self, state: &mut State) {
        if state.effective >= self.configured {
            return;
        }
        let quiet = state.last_change.elapsed();
        if quiet < RECOVERY_STEP {
            return;
        }
        let steps = (quiet.as_secs_f64() / RECOVERY_STEP.as_secs_f64()).floor();
        state.effective = (state.effective + steps * self.configured / 10.0).min(self.configured);
        state.limiter = limiter_for(state.effective);
        state.last_change = Instant::now();
    }

    pub fn figures(&self) -> BudgetFigures {
        let state = self.state();
        let per_10s = |per_second: f64| per_second * WINDOW.as_secs_f64();
        BudgetFigures {
            configured_per_10s: per_10s(self.configured),
            effective_per_10s: per_10s(state.effective),
            requests: state.requests,
            rate_limited: state.rate_limited.clone(),
            paused: state.paused_until.is_some_and(|p| p > Instant::now()),
            daily_limit: state.daily_limit,
            daily_remaining: state.daily_remaining,
            daily_stop_until: state.daily_stop_until.filter(|u| *u > Utc::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_day_is_probed_on_half_hours() {
        let at = |h, m, s| Utc.with_ymd_and_hms(2025, 3, 1, h, m, s).unwrap();
        assert_eq!(next_half_hour(at(10, 12, 5)), at(10, 30, 0));
        assert_eq!(next_half_hour(at(10, 30, 0)), at(11, 0, 0));
        assert_eq!(next_half_hour(at(23, 59, 59)), Utc.with_ymd_and_hms(2025, 3, 2, 0, 0, 0).unwrap());
    }

    #[tokio::test]
    async fn a_429_halves_the_rate_and_a_daily_stop_refuses_at_once() {
        let budget = Budget::new(80);
        budget.acquire().await.unwrap();
        budget.on_rate_limited("TEN_SECONDLY_ROLLING", Duration::from_millis(1));
        let figures = budget.figures();
        assert!((figures.effective_per_10s - 40.0).abs() < 1e-9, "{figures:?}");
        assert_eq!(figures.rate_limited.get("TEN_SECONDLY_ROLLING"), Some(&1));
        budget.observe_daily(Some(250_000), Some(0));
        let until = budget.acquire().await.unwrap_err();
        assert!(until > Utc::now() && until <= Utc::now() + chrono::Duration::minutes(30));
        assert_eq!(budget.figures().daily_stop_until, Some(until));
        assert_eq!(budget.figures().requests, 1, "a refused acquire sends nothing");
    }
}
