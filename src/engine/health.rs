//! Customer-facing health (what a customer sees at
//! `/customers/{name}/health`): whether its integration works, in plain
//! words, computed from the engine's snapshot; and the customer's own
//! read-only access token, kept only as a SHA-256 hash.

use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::runtime::snapshot::CustomerSnapshot;
use super::verdict::{Freshness, Reason, Thresholds};
use crate::domain::{CustomerStatus, RunKind, RunOutcome};
use crate::store::{Store, StoreError};

/// The verdict, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Ok,
    Degraded,
    Failing,
}

/// What a customer may see of its integration.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerHealth {
    pub customer: String,
    pub state: HealthState,
    /// One sentence per thing worth knowing, worst first.
    pub reasons: Vec<String>,
    pub last_successful_sync: Option<DateTime<Utc>>,
    /// How far behind VOMO the synced state is; none before the first full
    /// copy is complete.
    pub checkpoint_lag_secs: Option<i64>,
    pub users_synced: i64,
    pub records_pending: i64,
    pub records_failed: i64,
    pub token_state: Option<String>,
    pub next_reconciliation: Option<DateTime<Utc>>,
}

/// A destination's kind as a customer knows it.
fn destination_words(kind: &str) -> &str {
    match kind {
        "hubspot" => "HubSpot",
        "postgres" => "database",
        "webhook" => "webhook",
        other => other,
    }
}

/// A sentence per destination that takes nothing for now.
fn halted_destinations(c: &CustomerSnapshot) -> Vec<String> {
    c.destinations
        .iter()
        .filter(|d| d.halt.is_some())
        .map(|d| {
            format!(
                "Your {} destination does not accept changes from this integration right now (its access was \
                 refused or its daily limit reached); changes wait and are delivered once it accepts them again.",
                destination_words(&d.kind)
            )
        })
        .collect()
}

/// A matter of the engine's verdict as the customer is told it, if the
/// customer is told it at all (some are the partner's business only).
fn customer_words(reason: Reason, c: &CustomerSnapshot) -> Option<(HealthState, String)> {
    let (state, text) = match reason {
        Reason::TokenRejected => (
            HealthState::Failing,
            "VOMO no longer accepts the access token of this integration; nothing syncs until a new token is given to your partner.".to_owned(),
        ),
        Reason::Offboarded => (HealthState::Failing, "This integration has been switched off.".to_owned()),
        Reason::Paused => (HealthState::Degraded, "Syncing is paused by your partner.".to_owned()),
        Reason::Backfilling => (
            HealthState::Degraded,
            "The first full copy of your users is in progress; changes follow once it is complete.".to_owned(),
        ),
        Reason::Stalled
        | Reason::RunsFailing
        | Reason::ClockRefused
        | Reason::StateDbFailing
        | Reason::NoLiveInstance => (
            HealthState::Failing,
            "The last sync attempt failed; it is retried automatically and your partner can see why.".to_owned(),
        ),
        Reason::DlqPermanent => (
            HealthState::Degraded,
            format!("{} records could not be delivered to your system and wait for your partner.", c.dlq.permanent),
        ),
        Reason::DlqRetrying => (
            HealthState::Degraded,
            format!("{} records are waiting to be delivered again.", c.dlq.pending - c.dlq.permanent),
        ),
        Reason::LagHigh => (
            HealthState::Degraded,
            format!("Changes are reaching your system late: about {} behind.", words(c.lag_secs)),
        ),
        // Said per destination below; the rest is the partner's to handle.
        Reason::DestinationHalted
        | Reason::CheckpointAhead
        | Reason::DlqStale
        | Reason::DeletionGuard
        | Reason::ReconcileGaps => return None,
    };
    Some((state, text))
}

/// The health of one customer as of `now`: the engine's verdict
/// (`CustomerSnapshot::verdict`), told in the customer's words.
pub fn customer_health(c: &CustomerSnapshot, thresholds: &Thresholds, now: DateTime<Utc>) -> CustomerHealth {
    let verdict = c.verdict(thresholds, now);
    let mut reasons: Vec<(HealthState, String)> = Vec::new();
    for matter in &verdict.attention {
        if let Some(said) = customer_words(matter.reason, c)
            && !reasons.contains(&said)
        {
            reasons.push(said);
        }
    }
    reasons.extend(halted_destinations(c).into_iter().map(|text| (HealthState::Failing, text)));
    if reasons.is_empty() {
        let working =
            format!("Working: changes in VOMO reach your system within about {}.", words(c.lag_secs));
        reasons.push((HealthState::Ok, working));
    }
    reasons.sort_by_key(|(state, _)| std::cmp::Reverse(*state));
    let state = reasons.first().map_or(HealthState::Ok, |(s, _)| *s);
    let synced_kinds = [RunKind::Backfill, RunKind::Poll, RunKind::Reconcile];
    let last_successful_sync = c
        .last_runs
        .iter()
        .filter(|r| synced_kinds.contains(&r.kind) && r.outcome == RunOutcome::Ok)
        .filter_map(|r| r.finished_at)
        .max();
    let every = Duration::seconds(i64::try_from(c.reconcile_every_secs).unwrap_or(i64::MAX / 2));
    let next_reconciliation = c
        .last_runs
        .iter()
        .filter(|r| r.kind == RunKind::Reconcile)
        .map(|r| r.started_at + every)
        .max()
        .or_else(|| last_successful_sync.map(|at| at + every));
    CustomerHealth {
        customer: c.name.clone(),
        state,
        reasons: reasons.into_iter().map(|(_, text)| text).collect(),
        last_successful_sync,
        checkpoint_lag_secs: match verdict.freshness {
            Freshness::Lag { secs } => Some(secs),
            Freshness::Backfill { .. } => None,
        },
        users_synced: c.users_synced,
        records_pending: c.dlq.pending - c.dlq.permanent,
        records_failed: c.dlq.permanent,
        token_state: c.token.as_ref().map(|t| t.state.as_str().to_owned()),
        next_reconciliation: if c.status == CustomerStatus::Active { next_reconciliation } else { None },
    }
}

fn words(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} seconds"),
        s if s < 7200 => format!("{} minutes", s / 60),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// A new health token: 32 random bytes, hex.
pub fn new_health_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// How health tokens are stored and looked up.
pub fn health_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Finds whose health token a request carries.
#[derive(Clone)]
pub struct HealthAuth {
    store: Store,
}

impl HealthAuth {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The customer `token` belongs to, if any.
    pub async fn customer_of(&self, token: &str) -> Result<Option<String>, StoreError> {
        if token.trim().is_empty() {
            return Ok(None);
        }
        self.store.health_token_owner(&health_token_hash(token)).await
    }
}
