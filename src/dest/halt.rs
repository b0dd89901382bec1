//! A destination that said it cannot take any change for now (its token
//! rejected, its permissions missing, its daily allowance spent) is not sent
//! another batch until it may have recovered: every change meanwhile fails
//! at once with the same retryable error, so the engine parks it in the DLQ
//! without a request. After [`PROBE_AFTER`] (or, for a daily limit, at the
//! time the destination named) one batch is let through as a probe; a batch
//! that gets any change through clears the halt.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{DestError, Halt, Outcome};
use crate::domain::{FailureClass, format_rfc3339};

/// How long a destination with a rejected token or missing permissions is
/// left alone before one batch tries again (the token source is read anew
/// first, so a replaced token is picked up without a restart).
pub const PROBE_AFTER: Duration = Duration::minutes(5);

/// What is known of a halted destination, for the engine and its screens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaltState {
    /// What the destination said, as it said it.
    #[serde(skip)]
    pub halt: Halt,
    /// `token_rejected`, `forbidden` or `daily_limit`.
    pub reason: &'static str,
    /// The destination's own words, cut to an excerpt, never a secret.
    pub message: String,
    /// What an operator should do.
    pub hint: String,
    pub since: DateTime<Utc>,
    /// When the next batch is let through.
    pub retry_at: DateTime<Utc>,
}

impl HaltState {
    fn new(halt: &Halt, message: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let (reason, hint, retry_at) = match halt {
            Halt::TokenRejected => (
                "token_rejected",
                "the destination rejected its token: put a valid one where its spec points (token-env / \
                 token-file); it is read again before the next try"
                    .to_owned(),
                now + PROBE_AFTER,
            ),
            Halt::Forbidden { missing_scopes } if !missing_scopes.is_empty() => (
                "forbidden",
                format!(
                    "the destination's token lacks the scope(s) {}; grant them and put the new token \
                     where the spec points",
                    missing_scopes.join(", ")
                ),
                now + PROBE_AFTER,
            ),
            Halt::Forbidden { .. } => (
                "forbidden",
                "the destination refused the token's permissions; grant them and put the new token where \
                 the spec points"
                    .to_owned(),
                now + PROBE_AFTER,
            ),
            Halt::DailyLimit { until } => (
                "daily_limit",
                format!(
                    "the daily request allowance is used up; sending resumes at {}",
                    format_rfc3339(until)
                ),
                (*until).max(now),
            ),
        };
        Self { halt: halt.clone(), reason, message: message.to_owned(), hint, since, retry_at }
    }

    /// The error every change gets while the destination is halted: the
    /// same halt, classed retryable, saying nothing was sent.
    fn error(&self) -> DestError {
        DestError {
            class: FailureClass::Retryable,
            message: format!(
                "destination halted since {} ({}); not sent, next try at {}",
                format_rfc3339(&self.since),
                self.message,
                format_rfc3339(&self.retry_at)
            ),
            halt: Some(self.halt.clone()),
        }
    }
}

/// The halt of one destination, shared by every run of its customer.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<Option<HaltState>>,
}

/// What [`Breaker::admit`] decided for a batch.
pub enum Admission {
    /// Send it; `probe` when it tries a halted destination again.
    Send { probe: bool },
    /// Do not send: the outcome of every change.
    Refuse(DestError),
}

impl Breaker {
    pub fn state(&self) -> Option<HaltState> {
        self.locked().clone()
    }

    /// Whether a batch may be sent now.
    pub fn admit(&self, now: DateTime<Utc>) -> Admission {
        match self.locked().as_ref() {
            None => Admission::Send { probe: false },
            Some(state) if now >= state.retry_at => Admission::Send { probe: true },
            Some(state) => Admission::Refuse(state.error()),
        }
    }

    /// Learns from a batch's outcomes: a halt (re)arms the breaker, any
    /// change delivered clears it. Returns the new halt when one began.
    pub fn observe(&self, outcomes: &[Outcome], now: DateTime<Utc>) -> Option<HaltState> {
        let halted = outcomes.iter().find_map(|o| o.as_ref().err().and_then(|e| Some((e.halt.as_ref()?, e))));
        let mut state = self.locked();
        match halted {
            Some((halt, error)) => {
                let since = state.as_ref().map_or(now, |s| s.since);
                let began = state.is_none();
                let next = HaltState::new(halt, &error.message, since, now);
                *state = Some(next.clone());
                began.then_some(next)
            }
            None => {
                if outcomes.iter().any(Result::is_ok) {
                    *state = None;
                }
                None
            }
        }
    }

    /// Lets the next batch through at once (an operator's retry).
    pub fn try_now(&self, now: DateTime<Utc>) {
        if let Some(state) = self.locked().as_mut() {
            state.retry_at = now;
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, Option<HaltState>> {
        // A few plain values, consistent at every unlock.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halted(halt: Halt) -> Outcome {
        Err(DestError {
            class: FailureClass::Retryable,
            message: "HubSpot answered 401".into(),
            halt: Some(halt),
        })
    }

    #[test]
    fn a_halt_refuses_until_the_probe_and_a_delivery_clears_it() {
        let breaker = Breaker::default();
        let t0 = Utc::now();
        assert!(matches!(breaker.admit(t0), Admission::Send { probe: false }));
        let began = breaker.observe(&[Ok("1".into()), halted(Halt::TokenRejected)], t0).unwrap();
        assert_eq!((began.reason, began.since, began.retry_at), ("token_rejected", t0, t0 + PROBE_AFTER));
        let Admission::Refuse(error) = breaker.admit(t0 + Duration::seconds(1)) else { panic!("sent") };
        assert!(error.halt == Some(Halt::TokenRejected) && error.class == FailureClass::Retryable);
        assert!(error.message.contains("halted since") && error.message.contains("401"), "{}", error.message);
        assert!(matches!(breaker.admit(t0 + PROBE_AFTER), Admission::Send { probe: true }));
        // The probe fails again: still halted since t0, next try later.
        let t1 = t0 + PROBE_AFTER;
        assert!(breaker.observe(&[halted(Halt::TokenRejected)], t1).is_none());
        assert_eq!(breaker.state().map(|s| (s.since, s.retry_at)), Some((t0, t1 + PROBE_AFTER)));
        // A failure without a halt changes nothing; a delivery clears it.
        breaker.observe(&[Err(DestError::permanent("bad e-mail"))], t1);
        assert!(breaker.state().is_some());
        breaker.observe(&[Ok("7".into())], t1);
        assert!(breaker.state().is_none());
    }

    #[test]
    fn a_daily_limit_waits_for_its_time_and_an_operator_can_try_now() {
        let breaker = Breaker::default();
        let t0 = Utc::now();
        let until = t0 + Duration::hours(3);
        let state = breaker.observe(&[halted(Halt::DailyLimit { until })], t0).unwrap();
        assert_eq!((state.reason, state.retry_at), ("daily_limit", until));
        assert!(matches!(breaker.admit(until - Duration::seconds(1)), Admission::Refuse(_)));
        breaker.try_now(t0);
        assert!(matches!(breaker.admit(t0), Admission::Send { probe: true }));
        let scopes = breaker.observe(
            &[halted(Halt::Forbidden { missing_scopes: vec!["crm.objects.contacts.write".into()] })],
            t0,
        );
        assert!(scopes.is_none(), "still the same halt episode");
        assert!(breaker.state().unwrap().hint.contains("crm.objects.contacts.write"));
    }
}
