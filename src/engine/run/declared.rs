//! The rate limit VOMO declares for a customer's token, learned from the
//! `X-RateLimit-Limit` / `X-RateLimit-Remaining` headers of its answers.
//!
//! The headers give a count but not its window: Laravel's stock throttle
//! sends `60` for 60 a minute, a 3-a-second throttle sends `3`
//! (vomo-api.md §3). The window is read off how much `Remaining` is given
//! back while we spend it: between two answers the server gave back what
//! `Remaining` gained plus the requests answered. A window `W` cannot give
//! back more than `limit × (span / W + 1)` in a span, whether it refills
//! smoothly (GCRA) or all at once (Laravel's fixed window), so more than
//! that rules it out. The reading starts at the slowest window (per hour)
//! and only ever moves faster. While the reading is not the fastest and
//! half the allowance is left, the allowance is spent at the count's full
//! rate: those requests are granted whatever the window, and they are what
//! proves a faster one. Pure logic over explicit instants, so it is tested
//! without a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The windows a declared count may be per, slowest reading first.
const WINDOWS_SECS: [f64; 3] = [3600.0, 60.0, 1.0];
/// Answers older than this no longer count as evidence: long enough to see
/// two fixed minute windows.
const EVIDENCE_SPAN: Duration = Duration::from_secs(120);
/// A window is ruled out only by this much more than it can give back
/// (answers arrive a few milliseconds from when the server counted them).
const MARGIN: f64 = 1.1;
/// The share of the declared rate the budget sends at: close enough for a
/// backfill at ≥ 95 % of it, far enough that a request arriving a few
/// milliseconds early is not refused.
pub const TARGET_SHARE: f64 = 0.98;
/// Below this share of the allowance left, the budget slows so `Remaining`
/// recovers before it reaches zero (someone else spends the same token),
/// and stops spending the allowance fast.
const LOW_WATER: f64 = 0.5;
/// The slowest the headroom rule goes, as a share of the rate.
const MIN_HEADROOM_FACTOR: f64 = 0.25;

/// One answer's headers, as received.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    remaining: u32,
}

/// What VOMO has declared so far; see the module header.
#[derive(Debug, Default, Clone)]
pub struct Declared {
    limit: Option<u32>,
    samples: VecDeque<Sample>,
    /// How many of [`WINDOWS_SECS`], slowest first, the answers ruled out.
    ruled_out: usize,
}

impl Declared {
    /// Records one answer that counted against the limit (a 429 does not).
    pub fn observe(&mut self, at: Instant, limit: u32, remaining: u32) {
        if limit == 0 {
            return;
        }
        if self.limit != Some(limit) {
            // A new limit: what was learned of the old one says nothing.
            *self = Self { limit: Some(limit), ..Self::default() };
        }
        self.samples.push_back(Sample { at, remaining: remaining.min(limit) });
        while self.samples.len() > 2
            && self.samples.front().is_some_and(|s| at.saturating_duration_since(s.at) > EVIDENCE_SPAN)
        {
            self.samples.pop_front();
        }
        while self.ruled_out + 1 < WINDOWS_SECS.len() && self.rules_out(WINDOWS_SECS[self.ruled_out]) {
            self.ruled_out += 1;
        }
    }

    /// Whether the samples gave back more than a window of `window_secs` can.
    fn rules_out(&self, window_secs: f64) -> bool {
        let (Some(limit), Some(first), Some(last)) = (self.limit, self.samples.front(), self.samples.back())
        else {
            return false;
        };
        let span = last.at.saturating_duration_since(first.at).as_secs_f64();
        let answered = (self.samples.len() - 1) as f64;
        // One request less for the allowance's integer rounding.
        let given_back = f64::from(last.remaining) - f64::from(first.remaining) + answered - 1.0;
        given_back > MARGIN * f64::from(limit) * (span / window_secs + 1.0)
    }

    /// The count VOMO declares (`X-RateLimit-Limit`), once it has.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// `X-RateLimit-Remaining` of the latest answer.
    pub fn remaining(&self) -> Option<u32> {
        self.samples.back().map(|s| s.remaining)
    }

    /// When the latest answer with the headers arrived.
    pub fn last_seen(&self) -> Option<Instant> {
        self.samples.back().map(|s| s.at)
    }

    /// The declared limit as requests per second under the current reading.
    pub fn per_second(&self) -> Option<f64> {
        Some(f64::from(self.limit?) / WINDOWS_SECS[self.ruled_out])
    }

    /// Whether the answers have shown the window is a second: no faster
    /// reading is left to find.
    pub fn fastest_reading(&self) -> bool {
        self.ruled_out + 1 == WINDOWS_SECS.len()
    }

    /// The rate to send at, `None` before an answer carried the headers.
    /// While a faster reading may exist and half the allowance is left,
    /// the allowance goes at (a little under) the count's full rate.
    /// Otherwise a little under the declared rate, slower while the
    /// allowance runs low; never under `floor`, the rate any VOMO is assumed
    /// to allow, while the reading is still the slowest, or when the count
    /// is too small to spend (one or two: no API allows that per minute).
    pub fn target(&self, floor: f64) -> Option<f64> {
        let limit = f64::from(self.limit?);
        let remaining = f64::from(self.remaining()?);
        let spendable = limit >= 3.0;
        if spendable && !self.fastest_reading() && remaining >= limit * LOW_WATER {
            return Some(limit * TARGET_SHARE);
        }
        let declared = self.per_second()?;
        let floored = !spendable || self.ruled_out == 0;
        let mut target = if floored { declared.max(floor) } else { declared } * TARGET_SHARE;
        // A count of one or two is always nearly spent; only a larger
        // allowance tells headroom apart.
        if spendable {
            target *= (remaining / (limit * LOW_WATER)).clamp(MIN_HEADROOM_FACTOR, 1.0);
        }
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GCRA server of `limit` per `window` answering a client that sends
    /// at what the learner's target says (or `fixed` when given) for
    /// `seconds`; panics on a request the server would refuse.
    fn run(limit: u32, window: f64, fixed: Option<f64>, seconds: u64) -> (Declared, u32) {
        let start = Instant::now();
        let refill = f64::from(limit) / window;
        let mut tokens = f64::from(limit);
        let mut declared = Declared::default();
        let (mut at, mut sent) = (start, 0u32);
        while at < start + Duration::from_secs(seconds) {
            if sent > 0 {
                let rate = fixed.unwrap_or_else(|| declared.target(0.9).unwrap_or(0.9));
                let gap = Duration::from_secs_f64(1.0 / rate);
                tokens = (tokens + refill * gap.as_secs_f64()).min(f64::from(limit));
                at += gap;
            }
            assert!(tokens >= 1.0, "request {sent} refused: {declared:?}");
            tokens -= 1.0;
            declared.observe(at, limit, tokens.floor() as u32);
            sent += 1;
        }
        (declared, sent)
    }

    #[test]
    fn one_answer_reads_the_slowest_window_and_spends_the_allowance() {
        let mut declared = Declared::default();
        declared.observe(Instant::now(), 10, 9);
        assert_eq!(declared.limit(), Some(10));
        assert_eq!(declared.per_second(), Some(10.0 / 3600.0));
        assert_eq!(
            declared.target(0.9),
            Some(10.0 * TARGET_SHARE),
            "half the allowance may go at its full rate"
        );
    }

    #[test]
    fn per_second_limits_are_read_within_seconds_and_sent_at_close_to_them() {
        for limit in [1, 3, 10] {
            let (declared, sent) = run(limit, 1.0, None, 60);
            assert!(declared.fastest_reading(), "limit {limit}: {declared:?}");
            let target = declared.target(0.9).unwrap();
            assert!(target >= 0.95 * f64::from(limit) && target <= f64::from(limit), "{limit}: {target}");
            assert!(f64::from(sent) >= 0.95 * 60.0 * f64::from(limit), "limit {limit}: {sent} in 60 s");
        }
    }

    #[test]
    fn laravel_sixty_a_minute_is_read_as_one_a_second_and_never_overrun() {
        let (declared, sent) = run(60, 60.0, None, 300);
        assert_eq!(declared.per_second(), Some(1.0), "{declared:?}");
        // 300 s at one a second plus the allowance spent at the start.
        assert!((300..=300 + 60).contains(&sent), "{sent}");
    }

    #[test]
    fn sixty_a_second_is_found_by_spending_the_allowance() {
        let (declared, sent) = run(60, 1.0, None, 10);
        assert!(declared.fastest_reading(), "{declared:?}");
        assert!(sent > 500, "{sent}");
    }

    #[test]
    fn a_fixed_window_reset_does_not_read_as_a_faster_window() {
        // Laravel's fixed window: 60 a minute, spent at 2 a second, back to
        // 60 when the minute turns.
        let start = Instant::now();
        let mut declared = Declared::default();
        let mut remaining = 60u32;
        for i in 0..400u32 {
            let at = start + Duration::from_millis(500) * i;
            if i % 120 == 40 {
                remaining = 60; // the minute turned
            }
            if remaining == 0 {
                continue; // a 429, which the learner is not told of
            }
            remaining -= 1;
            declared.observe(at, 60, remaining);
        }
        assert_eq!(declared.per_second(), Some(1.0), "{declared:?}");
    }

    #[test]
    fn the_allowance_running_low_slows_the_target() {
        let (mut declared, _) = run(10, 1.0, None, 10);
        let full = declared.target(0.9).unwrap();
        declared.observe(Instant::now() + Duration::from_secs(11), 10, 1);
        let low = declared.target(0.9).unwrap();
        assert!(low < full * 0.3, "{full} -> {low}");
    }

    #[test]
    fn a_new_limit_forgets_the_old_evidence() {
        let (mut declared, _) = run(10, 1.0, None, 10);
        declared.observe(Instant::now() + Duration::from_secs(11), 5, 4);
        assert_eq!((declared.limit(), declared.fastest_reading()), (Some(5), false));
    }
}
