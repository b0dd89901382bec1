//! VOMO's clock as seen from here, believed only within bounds. Window ends
//! are computed from VOMO's `Date` header, never from the local clock
//! against VOMO's timestamps: every response updates the offset between
//! VOMO's clock and ours, and "VOMO now" is our clock plus that offset. One
//! clock per VOMO base URL, shared by every customer on it.
//!
//! A `Date` is hostile input like any other: one from the far future would
//! move a checkpoint past every later edit (silent loss), one from the past
//! would make every poll "ok" while reading nothing. So a `Date` is accepted
//! only when it is within `max_skew` of this machine's clock (either way)
//! and not more than `max_skew` behind the last `Date` accepted for that
//! URL. A refused `Date` never becomes the reference: the run that saw it
//! fails loudly and moves nothing. A response without a usable `Date` keeps
//! the offset learnt earlier; with none learnt yet, the run fails (the local
//! clock alone never decides where a window ends).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::lock::locked;
use crate::domain::{format_rfc3339, span_words};

/// Why VOMO's clock was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "VOMO's response carried no usable Date header and no earlier one was accepted; \
         without VOMO's clock no window can be closed (is a proxy stripping Date?)"
    )]
    NoDate,
    #[error(
        "VOMO's Date says {}, {} ahead of this machine's clock (more than the allowed {}); \
         check the clocks (NTP) of both",
        format_rfc3339(said), span_words(by.num_seconds()), span_words(max.num_seconds())
    )]
    Ahead { said: DateTime<Utc>, by: Duration, max: Duration },
    #[error(
        "VOMO's Date says {}, {} behind this machine's clock (more than the allowed {}); \
         check the clocks (NTP) of both",
        format_rfc3339(said), span_words(by.num_seconds()), span_words(max.num_seconds())
    )]
    Behind { said: DateTime<Utc>, by: Duration, max: Duration },
    #[error(
        "VOMO's Date says {}, {} before the Date it sent earlier ({}); a clock does not run backwards",
        format_rfc3339(said), span_words(by.num_seconds()), format_rfc3339(earlier)
    )]
    Backwards { said: DateTime<Utc>, by: Duration, earlier: DateTime<Utc> },
}

#[derive(Debug, Default)]
struct Reading {
    offset_ms: Option<i64>,
    last_accepted: Option<DateTime<Utc>>,
}

/// The offset of one VOMO server's clock from ours.
#[derive(Debug)]
pub struct ServerClock {
    max_skew: Duration,
    reading: Mutex<Reading>,
}

impl Default for ServerClock {
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(300))
    }
}

impl ServerClock {
    pub fn new(max_skew: std::time::Duration) -> Self {
        let max_skew = Duration::from_std(max_skew).unwrap_or_else(|_| Duration::minutes(5));
        Self { max_skew, reading: Mutex::new(Reading::default()) }
    }

    fn reading(&self) -> std::sync::MutexGuard<'_, Reading> {
        locked(&self.reading)
    }

    /// Records VOMO's time from a response, if it is believable (`Date` has
    /// whole seconds; the half-second of uncertainty is far inside the
    /// settle margin).
    pub fn observe(&self, server_time: Option<DateTime<Utc>>) -> Result<(), ClockError> {
        self.observe_at(server_time, Utc::now())
    }

    fn observe_at(&self, server_time: Option<DateTime<Utc>>, local: DateTime<Utc>) -> Result<(), ClockError> {
        let mut reading = self.reading();
        let Some(said) = server_time else {
            return if reading.offset_ms.is_some() { Ok(()) } else { Err(ClockError::NoDate) };
        };
        let max = self.max_skew;
        if said > local + max {
            return Err(ClockError::Ahead { said, by: said - local, max });
        }
        if said < local - max {
            return Err(ClockError::Behind { said, by: local - said, max });
        }
        if let Some(earlier) = reading.last_accepted
            && said < earlier - max
        {
            return Err(ClockError::Backwards { said, by: earlier - said, earlier });
        }
        reading.offset_ms = Some((said - local).num_milliseconds());
        reading.last_accepted = Some(reading.last_accepted.map_or(said, |e| e.max(said)));
        Ok(())
    }

    /// VOMO's current time, if an accepted response has told us.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        let offset = self.reading().offset_ms;
        offset.map(|ms| Utc::now() + Duration::milliseconds(ms))
    }
}

/// Clocks by base URL.
#[derive(Debug, Clone)]
pub struct Clocks {
    max_skew: std::time::Duration,
    by_url: Arc<Mutex<HashMap<String, Arc<ServerClock>>>>,
}

impl Default for Clocks {
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(300))
    }
}

impl Clocks {
    pub fn new(max_skew: std::time::Duration) -> Self {
        Self { max_skew, by_url: Arc::default() }
    }

    pub fn for_url(&self, base_url: &str) -> Arc<ServerClock> {
        let mut map = locked(&self.by_url);
        let skew = self.max_skew;
        Arc::clone(
            map.entry(base_url.trim_end_matches('/').to_owned())
                .or_insert_with(|| Arc::new(ServerClock::new(skew))),
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_offset_follows_the_server() {
        let clock = ServerClock::default();
        assert!(clock.now().is_none());
        clock.observe(Some(Utc::now() - Duration::minutes(3))).unwrap();
        let lag = Utc::now() - clock.now().unwrap();
        assert!((lag - Duration::minutes(3)).num_seconds().abs() <= 1);
        let clocks = Clocks::default();
        assert!(Arc::ptr_eq(&clocks.for_url("http://h/v1/"), &clocks.for_url("http://h/v1")));
    }

    #[test]
    fn a_date_far_ahead_or_behind_is_refused_and_never_becomes_the_reference() {
        let clock = ServerClock::default();
        let local = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let future = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
        let err = clock.observe_at(Some(future), local).unwrap_err();
        assert!(matches!(err, ClockError::Ahead { .. }));
        let text = err.to_string();
        assert!(text.contains("2100-01-01T00:00:00Z") && text.contains("73 years ahead"), "{text}");
        assert!(clock.now().is_none(), "a refused Date is not the reference");
        let past = Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).unwrap();
        assert!(matches!(clock.observe_at(Some(past), local), Err(ClockError::Behind { .. })));
        assert_eq!(clock.observe_at(None, local), Err(ClockError::NoDate), "nothing learnt yet");
        clock.observe_at(Some(local + Duration::seconds(90)), local).unwrap();
        assert_eq!(clock.observe_at(None, local), Ok(()), "the learnt offset stays");
    }

    #[test]
    fn a_date_running_back_past_the_last_accepted_one_is_refused() {
        let clock = ServerClock::default();
        let local = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        clock.observe_at(Some(local + Duration::minutes(4)), local).unwrap();
        // Within 5 minutes of this machine, but 8 minutes before the last one.
        let back = local - Duration::minutes(4);
        assert!(matches!(clock.observe_at(Some(back), local), Err(ClockError::Backwards { .. })));
        clock.observe_at(Some(local + Duration::minutes(1)), local).unwrap();
    }
}
