//! The limits beyond which something about a customer needs a human, and
//! how recent a heartbeat must be for a process to count as alive. A leaf:
//! the verdict, the snapshot, the fleet and the config all name it, and it
//! names none of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Heartbeat periods within which a process counts as alive (the fleet
/// counts live workers, the verdict live owners, by the same rule).
pub(crate) const ALIVE_PERIODS: u32 = 3;

/// The limits beyond which something needs a human. One place: alerts, the
/// console and the health page use the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A complete customer whose checkpoint trails VOMO by more than this.
    pub lag_above_secs: i64,
    /// A DLQ entry older than this.
    pub dlq_older_than_secs: i64,
    /// A process counts as alive while its heartbeat is younger than this.
    pub alive_within_secs: i64,
}

impl Thresholds {
    pub fn new(lag_above: Duration, dlq_older_than: Duration, heartbeat_every: Duration) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            lag_above_secs: secs(lag_above),
            dlq_older_than_secs: secs(dlq_older_than),
            alive_within_secs: secs(heartbeat_every * ALIVE_PERIODS).max(1),
        }
    }
}

impl Default for Thresholds {
    /// The configuration's defaults: lag 1 h, DLQ 3 days, heartbeat 5 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(3600), Duration::from_secs(3 * 86_400), Duration::from_secs(5))
    }
}
