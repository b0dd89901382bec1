//! Publishing what this process knows as an [`EngineSnapshot`]: the state
//! DB's figures cached at the last reload, the live figures of its own
//! workers, and those other processes published in their heartbeat rows.

use std::sync::Arc;

use chrono::Utc;

use super::snapshot::{CustomerSnapshot, EngineSnapshot, Holder, LiveFigures};
use super::supervisor::{STALL_AFTER, Supervisor};
use crate::store::CustomerId;

impl Supervisor {
    pub(super) fn live_figures(&self, id: CustomerId) -> LiveFigures {
        let live = self.lives.get(&id).cloned().unwrap_or_default();
        LiveFigures::of(&live, self.shared.budget_if_any(id).as_deref(), STALL_AFTER)
    }

    /// Publishes a fresh snapshot from the cached state DB figures, the
    /// workers' live figures, and those other processes publish.
    pub(super) fn publish(&self) {
        let me = self.shared.config.owner.as_str();
        let customers = self
            .customers
            .iter()
            .map(|c| {
                let here = self.workers.contains_key(&c.id);
                if let Some(live) = self.lives.get(&c.id).filter(|_| here) {
                    live.sample();
                }
                let (figures, owner) = if here {
                    (Some(self.live_figures(c.id)), Some(me))
                } else {
                    let owner = self.fleet.holder(c.id);
                    (owner.and_then(|o| self.fleet.figures(o, &c.name)).cloned(), owner)
                };
                super::snapshot::build_customer(
                    c,
                    self.overview.get(&c.id),
                    self.synced.get(&c.id).copied().unwrap_or(0),
                    figures.as_ref(),
                    self.shared.clocks.for_url(&c.vomo_url).now(),
                    Holder { owner, here, seen_at: self.fleet.last_seen(c.id) },
                )
            })
            .collect::<Vec<CustomerSnapshot>>();
        let snapshot = EngineSnapshot {
            at: Some(Utc::now()),
            owner: me.to_owned(),
            thresholds: self.shared.config.thresholds,
            customers,
            state_db_failing: self.state_db_failing.clone(),
        };
        self.snapshot_tx.send_replace(Arc::new(snapshot));
    }
}
