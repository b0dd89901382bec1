//! Switchable misbehaviour of the simulator, reproducible from a seed: 5xx,
//! latency, 429 storms, malformed bodies, users changed between page reads,
//! unstable result order and the spec-defect quirks (vomo-api.md §10.8–9,
//! §10.22). All off by default: a default simulator is a well-behaved VOMO.

use serde::{Deserialize, Serialize};

use super::model::{OrderMode, RemovalMode};

/// The fault and quirk settings, set as a whole through the admin surface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seeds every random decision below; setting faults restarts the RNG.
    pub seed: u64,
    /// Share of VOMO requests answered 500 or 503.
    pub error_rate: f64,
    /// Added to every VOMO request, in milliseconds.
    pub latency_ms: u64,
    /// Share of requests that are slow, and how slow (to exceed client timeouts).
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// The next `storm_requests` requests are answered 429 with
    /// `Retry-After: storm_retry_after`.
    pub storm_requests: u64,
    pub storm_retry_after: u64,
    /// Share of requests answered 429 at random.
    pub rate_429: f64,
    /// Share of requests whose connection drops after the status line: the
    /// body never comes (a reset, a proxy dying mid-answer).
    pub drop_rate: f64,
    /// Share of list pages answered 200 with truncated JSON.
    pub truncate_rate: f64,
    /// Share of list pages answered 200 with an HTML error page.
    pub html_rate: f64,
    /// Share of list reads after page 1 before which a user of the walked
    /// result set is changed: updated (moves out of the window), deleted or
    /// anonymised, by the shares below (the rest are updates).
    pub mutate_rate: f64,
    pub mutate_delete_share: f64,
    pub mutate_anonymise_share: f64,
    /// Share of mutations that create a new user instead (it lands after
    /// the window, like a volunteer signing up mid-walk).
    pub mutate_create_share: f64,
    /// Share of users left out of every listing (a truncated listing); they
    /// are still there by id. Which users is fixed by `seed`.
    pub hide_share: f64,
    pub order: OrderMode,
    pub quirks: Quirks,
    /// Upsert without `role`: reset the role to VOLUNTEER (`true`, the risky
    /// reading of vomo-api.md §10.18) or keep it.
    pub reset_role_on_omit: bool,
    pub membership_removal: RemovalMode,
}

/// Spec defects the client must tolerate (vomo-api.md §4, §5.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quirks {
    pub meta_as_strings: bool,
    pub null_links_as_strings: bool,
    pub ids_as_strings: bool,
}

impl Faults {
    /// True when no fault is active (quirks and order modes aside).
    pub fn is_calm(&self) -> bool {
        self.error_rate == 0.0
            && self.latency_ms == 0
            && self.slow_rate == 0.0
            && self.storm_requests == 0
            && self.rate_429 == 0.0
            && self.drop_rate == 0.0
            && self.truncate_rate == 0.0
            && self.html_rate == 0.0
            && self.mutate_rate == 0.0
            && self.hide_share == 0.0
    }

    /// Whether the truncated-listing fault leaves `id` out.
    pub fn hides(&self, id: i64) -> bool {
        if self.hide_share <= 0.0 {
            return false;
        }
        let mixed = (id as u64 ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        (mixed as f64 / (1u64 << 53) as f64) < self.hide_share
    }
}

/// A per-token rate limit: `requests` per `per_seconds`, GCRA with the whole
/// allowance as burst (Laravel's `throttle:60,1` is 60 per 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl RateLimit {
    /// Parses `3/s`, `60/m`, `1000/h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("invalid rate limit {text:?}; write it like \"3/s\" or \"60/m\"");
        let (count, unit) = text.trim().split_once('/').ok_or_else(err)?;
        let requests: u32 = count.trim().parse().map_err(|_| err())?;
        let per_seconds = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(err()),
        };
        if requests == 0 {
            return Err(err());
        }
        Ok(Self { requests, per_seconds })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per_seconds {
            1 => write!(f, "{}/s", self.requests),
            60 => write!(f, "{}/m", self.requests),
            secs => write!(f, "{} per {secs}s", self.requests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(RateLimit::parse("3/s").unwrap(), RateLimit { requests: 3, per_seconds: 1 });
        assert_eq!(RateLimit::parse("60/m").unwrap().to_string(), "60/m");
        assert!(RateLimit::parse("0/s").is_err());
        assert!(RateLimit::parse("fast").is_err());
    }

    #[test]
    fn faults_deserialise_partially_and_refuse_typos() {
        let f: Faults =
            serde_json::from_str(r#"{"error_rate":0.1,"quirks":{"meta_as_strings":true}}"#).unwrap();
        assert!(!f.is_calm());
        assert!(f.quirks.meta_as_strings);
        assert!(serde_json::from_str::<Faults>(r#"{"eror_rate":0.1}"#).is_err());
    }
}
