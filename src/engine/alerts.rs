//! Alerts: conditions worth paging someone about, per customer — token
//! rejected, lag above a threshold, DLQ entries older than a limit, a
//! reconciliation that found gaps, a deletion sweep stopped by the guard —
//! computed from engine snapshots. An alert fires on the transition into a
//! condition, and a condition that clears and comes back within the
//! cool-down does not fire again, so a flapping customer pages once. With
//! several instances on one state DB each sees every transition; the
//! [`AlertLedger`] lets only the first to claim it send it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::runtime::snapshot::{CustomerSnapshot, EngineSnapshot};
use super::verdict::{Reason, Thresholds};

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    TokenRejected,
    LagHigh,
    DlqStale,
    ReconcileGaps,
    DeletionGuard,
    /// VOMO's `Date` is not believable: nothing moves until it is.
    ClockRefused,
    /// The state DB keeps failing the customer's runs.
    StateDbFailing,
    /// The checkpoint stands in VOMO's future.
    CheckpointAhead,
    /// A destination takes nothing for now (its token rejected, its
    /// permissions or its daily allowance gone); changes wait in the DLQ.
    DestinationHalted,
}

/// How often an alert may repeat. Its thresholds are the engine's
/// ([`Thresholds`], carried by every snapshot), the same the console and the
/// health page judge by.
#[derive(Debug, Clone, Copy)]
pub struct AlertRules {
    /// A condition that clears and returns within this does not fire again.
    pub cooldown: Duration,
}

/// One alert to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub customer: String,
    pub kind: AlertKind,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The alert a matter of the engine's verdict raises, if any. A failing
/// VOMO is retried and shows as lag; a backfill, a pause or DLQ entries
/// still being retried page nobody.
fn alert_kind(reason: Reason, c: &CustomerSnapshot) -> Option<AlertKind> {
    Some(match reason {
        Reason::TokenRejected => AlertKind::TokenRejected,
        Reason::LagHigh => AlertKind::LagHigh,
        Reason::DlqStale => AlertKind::DlqStale,
        Reason::ReconcileGaps => AlertKind::ReconcileGaps,
        Reason::DeletionGuard => AlertKind::DeletionGuard,
        Reason::ClockRefused => AlertKind::ClockRefused,
        // One failure may be a blip.
        Reason::StateDbFailing if c.failure.as_ref().is_some_and(|f| f.consecutive >= 2) => {
            AlertKind::StateDbFailing
        }
        Reason::CheckpointAhead => AlertKind::CheckpointAhead,
        Reason::DestinationHalted => AlertKind::DestinationHalted,
        _ => return None,
    })
}

/// The conditions a customer is in now, with a sentence each: the
/// engine's verdict (`CustomerSnapshot::verdict`), filtered to what pages.
pub fn conditions(
    c: &CustomerSnapshot,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
) -> Vec<(AlertKind, String)> {
    let mut found: Vec<(AlertKind, String)> = Vec::new();
    for matter in c.verdict(thresholds, now).attention {
        if let Some(kind) = alert_kind(matter.reason, c)
            && !found.iter().any(|(k, _)| *k == kind)
        {
            found.push((kind, format!("{}: {}", c.name, matter.text)));
        }
    }
    found.sort_by_key(|(kind, _)| *kind);
    found
}

/// Remembers which conditions are on, and when each last fired.
#[derive(Debug, Default)]
pub struct Alerter {
    active: BTreeSet<(String, AlertKind)>,
    fired: HashMap<(String, AlertKind), DateTime<Utc>>,
}

impl Alerter {
    /// The alerts a new snapshot calls for.
    pub fn observe(
        &mut self,
        snapshot: &EngineSnapshot,
        rules: &AlertRules,
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        let cooldown = chrono::Duration::from_std(rules.cooldown).unwrap_or(chrono::Duration::MAX);
        let mut now_active = BTreeSet::new();
        let mut alerts = Vec::new();
        for customer in &snapshot.customers {
            for (kind, message) in conditions(customer, &snapshot.thresholds, now) {
                let key = (customer.name.clone(), kind);
                let new = !self.active.contains(&key);
                let quiet = self.fired.get(&key).is_none_or(|at| now - *at >= cooldown);
                if new && quiet {
                    self.fired.insert(key.clone(), now);
                    alerts.push(Alert { customer: customer.name.clone(), kind, message, at: now });
                }
                now_active.insert(key);
            }
        }
        self.active = now_active;
        alerts
    }
}

/// Alerts sent, shared through the state DB by every instance.
#[derive(Debug, Clone)]
pub struct AlertLedger {
    store: crate::store::Store,
}

impl AlertLedger {
    pub fn new(store: crate::store::Store) -> Self {
        Self { store }
    }

    /// True when this process should send `alert`: no instance sent it
    /// within the cool-down. A state DB error sends it anyway — a duplicate
    /// page beats a missed one.
    pub async fn claim(&self, alert: &Alert, cooldown: Duration) -> bool {
        let quiet_since = chrono::Duration::from_std(cooldown)
            .ok()
            .and_then(|c| alert.at.checked_sub_signed(c))
            .unwrap_or_else(crate::domain::epoch);
        let kind = serde_json::to_value(alert.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
        let kind = kind.unwrap_or_else(|| format!("{:?}", alert.kind));
        match self.store.claim_alert(&alert.customer, &kind, alert.at, quiet_since).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the alerts sent by other instances; sending");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{CustomerStatus, RunCounts, RunKind, RunOutcome, TokenState};
    use crate::engine::run::live::FailureKind;
    use crate::engine::runtime::snapshot::{BudgetView, DlqView, RunView, TokenView};

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn customer(status: CustomerStatus) -> CustomerSnapshot {
        CustomerSnapshot {
            name: "acme".into(),
            status,
            status_reason: None,
            vomo_url: String::new(),
            watermark: at(0),
            lag_secs: 30,
            checkpoint_ahead_secs: None,
            in_flight: None,
            users_synced: 10,
            throughput_per_min: 0.0,
            budget: BudgetView::default(),
            token: Some(TokenView {
                fingerprint: "…abcd".into(),
                state: TokenState::Valid,
                validated_at: None,
            }),
            dlq: DlqView::default(),
            current: None,
            background: None,
            last_runs: Vec::new(),
            next_poll_at: None,
            failure: None,
            owned_here: true,
            owner: None,
            owner_seen_at: None,
            stalled: false,
            requests_total: 0,
            destinations: Vec::new(),
            reconcile_every_secs: 86_400,
            tail: None,
        }
    }

    fn snapshot(c: CustomerSnapshot) -> EngineSnapshot {
        EngineSnapshot { at: None, owner: String::new(), customers: vec![c], ..Default::default() }
    }

    const RULES: AlertRules = AlertRules { cooldown: Duration::from_secs(3600) };

    fn limits() -> Thresholds {
        Thresholds::default()
    }

    #[test]
    fn an_alert_fires_once_per_transition_and_flapping_is_held_back() {
        let mut alerter = Alerter::default();
        let ok = snapshot(customer(CustomerStatus::Active));
        let bad = snapshot(customer(CustomerStatus::TokenRejected));
        assert!(alerter.observe(&ok, &RULES, at(0)).is_empty());
        let fired = alerter.observe(&bad, &RULES, at(1));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].kind, AlertKind::TokenRejected);
        assert!(alerter.observe(&bad, &RULES, at(2)).is_empty(), "still rejected: no repeat");
        assert!(alerter.observe(&ok, &RULES, at(3)).is_empty());
        assert!(alerter.observe(&bad, &RULES, at(4)).is_empty(), "back within the cool-down: held back");
        assert!(alerter.observe(&ok, &RULES, at(70)).is_empty());
        assert_eq!(alerter.observe(&bad, &RULES, at(71)).len(), 1, "after the cool-down it fires again");
    }

    #[test]
    fn every_condition_is_recognised() {
        let mut c = customer(CustomerStatus::Active);
        c.lag_secs = 7200;
        c.dlq = DlqView { pending: 2, permanent: 1, oldest: Some(at(0) - chrono::Duration::days(4)) };
        let run = |id, kind, outcome, counts: RunCounts| RunView {
            id,
            kind,
            outcome,
            started_at: at(0),
            finished_at: None,
            counts,
            requests_used: 0,
            message: None,
        };
        c.last_runs = vec![
            run(1, RunKind::Reconcile, RunOutcome::Ok, RunCounts { drift: 2, ..RunCounts::default() }),
            run(2, RunKind::Deletions, RunOutcome::NeedsConfirmation, RunCounts::default()),
        ];
        let kinds: Vec<AlertKind> = conditions(&c, &limits(), at(0)).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [AlertKind::LagHigh, AlertKind::DlqStale, AlertKind::ReconcileGaps, AlertKind::DeletionGuard]
        );
    }

    #[test]
    fn a_refused_clock_a_failing_state_db_and_a_future_checkpoint_raise_alerts() {
        let failing = |kind, consecutive| {
            let mut c = customer(CustomerStatus::Active);
            c.failure = Some(crate::engine::RunFailure {
                kind,
                message: "VOMO's Date says 2100-01-01T00:00:00Z, 73 years ahead".into(),
                since: at(0),
                last_at: at(0),
                consecutive,
                run_id: Some(3),
            });
            conditions(&c, &limits(), at(0)).into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(failing(FailureKind::VomoClock, 1), [AlertKind::ClockRefused]);
        assert_eq!(failing(FailureKind::StateDb, 1), [], "one failure may be a blip");
        assert_eq!(failing(FailureKind::StateDb, 2), [AlertKind::StateDbFailing]);
        assert_eq!(failing(FailureKind::Vomo, 5), [], "VOMO failing is retried; its lag alerts");
        let mut ahead = customer(CustomerStatus::Active);
        ahead.checkpoint_ahead_secs = Some(73 * 31_557_600);
        let alerts: Vec<_> = conditions(&ahead, &limits(), at(0));
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].1.contains("73 years in VOMO's future"), "{}", alerts[0].1);
    }

    #[test]
    fn a_halted_destination_raises_an_alert_naming_it_and_what_to_do() {
        let mut c = customer(CustomerStatus::Active);
        c.destinations = vec![crate::engine::DestinationView {
            name: "hubspot".into(),
            kind: "hubspot".into(),
            halt: Some(crate::engine::DestinationHalt {
                reason: "token_rejected".into(),
                message: "HubSpot answered 401".into(),
                hint: "put a valid token where its spec points".into(),
                since: at(0),
                retry_at: at(5),
            }),
            budget: None,
        }];
        let alerts = conditions(&c, &limits(), at(1));
        assert_eq!(alerts.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [AlertKind::DestinationHalted]);
        assert!(alerts[0].1.contains("destination hubspot halted (token rejected)"), "{}", alerts[0].1);
        c.destinations[0].halt = None;
        assert!(conditions(&c, &limits(), at(1)).is_empty(), "a working destination is no condition");
    }
}
