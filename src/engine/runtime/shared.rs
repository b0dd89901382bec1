//! What every worker of a process shares: the state DB, the HTTP pool for
//! VOMO, the engine's settings, VOMO's clocks, the backfill slots, the
//! customers' budgets (kept across worker restarts) and the event stream —
//! and how a customer's run is prepared from them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{Semaphore, broadcast};

use crate::dest::{Destination, DestinationSpec};
use crate::domain::RateSetting;
use crate::engine::config::EngineConfig;
use crate::engine::error::SyncError;
use crate::engine::run::budget::Budget;
use crate::engine::run::clock::Clocks;
use crate::engine::run::customer::CustomerRuntime;
use crate::engine::run::events::{EngineEvent, EventLevel};
use crate::engine::run::live::Live;
use crate::engine::run::lock::locked;
use crate::engine::run::process::DeliveryTarget;
use crate::store::{Customer, CustomerId, Store};
use crate::vomo::{VomoClient, http_pool};

/// What every worker shares.
pub struct Shared {
    pub store: Store,
    pub http: reqwest::Client,
    pub config: Arc<EngineConfig>,
    pub clocks: Clocks,
    pub backfill_slots: Arc<Semaphore>,
    budgets: Mutex<HashMap<CustomerId, Arc<Budget>>>,
    pub(super) events: broadcast::Sender<EngineEvent>,
}

impl Shared {
    pub fn new(store: Store, config: EngineConfig) -> Result<Arc<Self>, SyncError> {
        let http = http_pool(config.client).map_err(SyncError::Vomo)?;
        let (events, _) = broadcast::channel(1024);
        let max_clock_skew = config.max_clock_skew;
        Ok(Arc::new(Self {
            store,
            http,
            backfill_slots: Arc::new(Semaphore::new(config.max_concurrent_backfills)),
            config: Arc::new(config),
            clocks: Clocks::new(max_clock_skew),
            budgets: Mutex::new(HashMap::new()),
            events,
        }))
    }

    pub fn event(&self, customer: Option<&str>, level: EventLevel, message: impl Into<String>) {
        let event = EngineEvent::new(customer, level, message);
        match level {
            EventLevel::Info => tracing::info!(customer = customer.unwrap_or("-"), "{}", event.message),
            EventLevel::Warn => tracing::warn!(customer = customer.unwrap_or("-"), "{}", event.message),
            EventLevel::Error => tracing::error!(customer = customer.unwrap_or("-"), "{}", event.message),
        }
        let _ = self.events.send(event);
    }

    /// The customer's budget; kept across worker restarts so a rate cut by
    /// 429s and a declared limit learned are not forgotten, replaced when
    /// the customer's rate setting changes.
    pub fn budget(&self, customer: &Customer) -> Arc<Budget> {
        let mut budgets = locked(&self.budgets);
        let setting = RateSetting::of(&customer.settings);
        let entry = budgets.entry(customer.id).or_insert_with(|| Arc::new(Budget::with_setting(setting)));
        if entry.setting() != setting {
            *entry = Arc::new(Budget::with_setting(setting));
        }
        Arc::clone(entry)
    }

    pub(super) fn budget_if_any(&self, id: CustomerId) -> Option<Arc<Budget>> {
        locked(&self.budgets).get(&id).cloned()
    }

    /// Everything a customer's runs need: token, client, destinations.
    /// `lease_owner` is the lease the runs hold (checkpoint commits are
    /// fenced by it), `None` for work that never moves a checkpoint.
    pub async fn prepare(
        &self,
        customer: &Customer,
        live: Arc<Live>,
        lease_owner: Option<&str>,
    ) -> Result<CustomerRuntime, SyncError> {
        let token = self.store.load_token(customer).await?.ok_or_else(|| {
            SyncError::Destination(format!("customer {} has no token (offboarded?)", customer.name))
        })?;
        crate::vomo::check_transport(&customer.vomo_url, self.config.allow_insecure_http)
            .map_err(SyncError::Vomo)?;
        let client = VomoClient::new(self.http.clone(), &customer.vomo_url, &token)
            .map_err(SyncError::Vomo)?
            .with_max_body(self.config.client.max_body)
            .with_rate_observer(self.budget(customer));
        let mut destinations = Vec::new();
        for record in self.store.destinations(customer).await? {
            let text = record.secret.as_deref().unwrap_or(&record.config);
            let spec = DestinationSpec::parse(text).map_err(|e| SyncError::Destination(e.to_string()))?;
            let destination = Destination::connect(
                &record.name,
                &spec,
                &self.config.outbound,
                &customer.settings.writeback_fields,
            )
            .await
            .map_err(|e| SyncError::Destination(format!("{}: {e}", record.name)))?;
            destinations.push(destination);
        }
        let destinations = Arc::new(destinations);
        live.set_destinations(Arc::clone(&destinations));
        Ok(CustomerRuntime {
            budget: self.budget(customer),
            clock: self.clocks.for_url(&customer.vomo_url),
            target: Arc::new(DeliveryTarget {
                store: self.store.clone(),
                customer_id: customer.id,
                customer: customer.name.clone(),
                destinations,
                dlq_backoff: self.config.dlq_retry,
                lease_owner: lease_owner.map(str::to_owned),
            }),
            config: Arc::clone(&self.config),
            customer: customer.clone(),
            client,
            live,
            events: self.events.clone(),
        })
    }

    pub(super) fn lease_expiry(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default()
    }
}
