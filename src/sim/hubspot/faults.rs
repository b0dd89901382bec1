//! Switchable misbehaviour of the HubSpot simulator, every decision drawn
//! from one RNG seeded by `seed`, so the same requests in the same order meet
//! the same faults. All off by default.

use serde::{Deserialize, Serialize};

/// The fault settings, set as a whole through the admin surface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubspotFaults {
    /// Seeds every random decision below; setting faults restarts the RNG.
    pub seed: u64,
    /// Share of requests answered 500, 502 (an HTML gateway page), 503 or
    /// 504 before anything is written.
    pub error_rate: f64,
    /// Added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Share of requests that are slow, and how slow (to exceed a client's
    /// timeout).
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Share of requests that are carried out and then lose their
    /// connection before the answer's body arrives: the write happened, the
    /// client cannot know.
    pub drop_rate: f64,
    /// Answer batch writes as a whole even when every input carries an
    /// `objectWriteTraceId` (HubSpot documents multi-status for batch create;
    /// a client must still cope if upsert answers all or nothing).
    pub whole_batch_errors: bool,
}

impl HubspotFaults {
    pub fn is_calm(&self) -> bool {
        self.error_rate == 0.0
            && self.latency_ms == 0
            && self.slow_rate == 0.0
            && self.drop_rate == 0.0
            && !self.whole_batch_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_deserialise_partially_and_refuse_typos() {
        let f: HubspotFaults = serde_json::from_str(r#"{"error_rate":0.1}"#).unwrap();
        assert!(!f.is_calm());
        assert!(HubspotFaults::default().is_calm());
        assert!(serde_json::from_str::<HubspotFaults>(r#"{"eror_rate":0.1}"#).is_err());
    }
}
