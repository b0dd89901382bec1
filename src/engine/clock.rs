//! VOMO's clock as seen from here. Window ends are computed from VOMO's
//! `Date` header, never from the local clock against VOMO's timestamps: every
//! response updates the offset between VOMO's clock and ours, and "VOMO now"
//! is our clock plus that offset. One clock per VOMO base URL, shared by every
//! customer on it, so a process learns the time once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// The offset of one VOMO server's clock from ours.
#[derive(Debug, Default)]
pub struct ServerClock {
    offset_ms: Mutex<Option<i64>>,
}

impl ServerClock {
    /// Records VOMO's time from a response (`Date` has whole seconds; the
    /// half-second of uncertainty is far inside the settle margin).
    pub fn observe(&self, server_time: Option<DateTime<Utc>>) {
        if let Some(at) = server_time {
            let offset = (at - Utc::now()).num_milliseconds();
            *self.offset_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(offset);
        }
    }

    /// VOMO's current time, if a response has told us.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        let offset = *self.offset_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        offset.map(|ms| Utc::now() + Duration::milliseconds(ms))
    }
}

/// Clocks by base URL.
#[derive(Debug, Default, Clone)]
pub struct Clocks {
    by_url: Arc<Mutex<HashMap<String, Arc<ServerClock>>>>,
}

impl Clocks {
    pub fn for_url(&self, base_url: &str) -> Arc<ServerClock> {
        let mut map = self.by_url.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(base_url.trim_end_matches('/').to_owned()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_follows_the_server() {
        let clock = ServerClock::default();
        assert!(clock.now().is_none());
        clock.observe(Some(Utc::now() - Duration::hours(1)));
        let lag = Utc::now() - clock.now().unwrap();
        assert!((lag - Duration::hours(1)).num_seconds().abs() <= 1);
        let clocks = Clocks::default();
        assert!(Arc::ptr_eq(&clocks.for_url("http://h/v1/"), &clocks.for_url("http://h/v1")));
    }
}
