//! HubSpot's request limits for private apps: a rolling ten-second window
//! (`TEN_SECONDLY_ROLLING`) and a daily count (`DAILY`), both per account and
//! shared by every app of it. The window is an exact sliding log of accepted
//! requests, so a client is judged exactly as HubSpot describes it: at most
//! `ten_secondly` requests in any ten seconds. Refused requests do not count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The rolling window's length (`X-HubSpot-RateLimit-Interval-Milliseconds`).
pub const WINDOW: Duration = Duration::from_secs(10);

/// Limits of the simulated account; `None` switches a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub ten_secondly: Option<u32>,
    pub daily: Option<u64>,
}

impl Default for Limits {
    /// HubSpot's documented private-app limits for Free and Starter
    /// accounts: 100 requests per 10 seconds and 250,000 per day.
    fn default() -> Self {
        Self { ten_secondly: Some(100), daily: Some(250_000) }
    }
}

/// Which limit refused a request (`policyName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Policy {
    #[serde(rename = "TEN_SECONDLY_ROLLING")]
    TenSecondlyRolling,
    #[serde(rename = "DAILY")]
    Daily,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            Self::Daily => "DAILY",
        }
    }

    /// HubSpot's message for this policy.
    pub fn message(self) -> &'static str {
        match self {
            Self::TenSecondlyRolling => "You have reached your ten_secondly_rolling limit.",
            Self::Daily => "You have reached your daily limit.",
        }
    }
}

/// What the `X-HubSpot-RateLimit-*` headers of one answer say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    pub max: Option<u32>,
    pub remaining: Option<u32>,
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

/// The account's usage.
#[derive(Debug, Default)]
pub struct Usage {
    window: VecDeque<Instant>,
    day: i64,
    day_count: u64,
}

impl Usage {
    /// Counts a request at `now` (`day` = the account's current day number)
    /// or says which policy refuses it.
    pub fn admit(&mut self, limits: Limits, now: Instant, day: i64) -> Result<Headroom, (Policy, Headroom)> {
        if day != self.day {
            self.day = day;
            self.day_count = 0;
        }
        while self.window.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            self.window.pop_front();
        }
        let in_window = u32::try_from(self.window.len()).unwrap_or(u32::MAX);
        let headroom = |extra: u32, extra_day: u64| Headroom {
            max: limits.ten_secondly,
            remaining: limits.ten_secondly.map(|m| m.saturating_sub(in_window + extra)),
            daily: limits.daily,
            daily_remaining: limits.daily.map(|d| d.saturating_sub(self.day_count + extra_day)),
        };
        if limits.daily.is_some_and(|d| self.day_count >= d) {
            return Err((Policy::Daily, headroom(0, 0)));
        }
        if limits.ten_secondly.is_some_and(|m| in_window >= m) {
            return Err((Policy::TenSecondlyRolling, headroom(0, 0)));
        }
        let admitted = headroom(1, 1);
        self.window.push_back(now);
        self.day_count += 1;
        Ok(admitted)
    }

    /// Forgets today's count and the window (an admin reset, "midnight").
    pub fn reset(&mut self) {
        self.window.clear();
        self.day_count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_rolls_and_the_day_resets() {
        let limits = Limits { ten_secondly: Some(3), daily: Some(5) };
        let mut usage = Usage::default();
        let start = Instant::now();
        for i in 0..3 {
            let headroom = usage.admit(limits, start + Duration::from_secs(i), 1).unwrap();
            assert_eq!(headroom.remaining, Some(2 - i as u32));
        }
        let (policy, _) = usage.admit(limits, start + Duration::from_secs(9), 1).unwrap_err();
        assert_eq!(policy, Policy::TenSecondlyRolling);
        // The first request leaves the window ten seconds after it was made.
        assert!(usage.admit(limits, start + Duration::from_secs(10), 1).is_ok());
        assert!(usage.admit(limits, start + Duration::from_secs(21), 1).is_ok());
        let (policy, headroom) = usage.admit(limits, start + Duration::from_secs(40), 1).unwrap_err();
        assert_eq!((policy, headroom.daily_remaining), (Policy::Daily, Some(0)));
        assert!(usage.admit(limits, start + Duration::from_secs(41), 2).is_ok(), "a new day");
    }
}
