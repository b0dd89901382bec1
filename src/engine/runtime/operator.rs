//! The CLI's way through the one door: an [`Operator`] sends a [`Command`]
//! to the process that owns its customer, through the state DB's command
//! queue (that process carries it out and audits it, naming this one); when
//! no process owns the customer, it carries the command out itself, with
//! the same code the engine uses, under a short lease of its own (so no
//! engine takes the customer meanwhile). Commands that only change the
//! state DB are carried out here in any case.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::command::{Command, CommandError, CommandReply, Routing};
use super::door;
use super::fleet::{self, Holding};
use super::queue;
use super::shared::Shared;
use crate::engine::config::EngineConfig;
use crate::engine::ops::customer_named;
use crate::store::{Customer, Store};

/// How long a CLI run may hold a customer's lease (long runs renew it by
/// ending: a reconciliation of a large customer takes minutes).
const CLI_LEASE: Duration = Duration::from_secs(3600);

/// Sends commands for a process that runs no engine (the CLI).
pub struct Operator {
    shared: Arc<Shared>,
}

impl Operator {
    pub fn new(store: Store, config: EngineConfig) -> Result<Self, CommandError> {
        Ok(Self { shared: Shared::new(store, config)? })
    }

    /// Carries `command` out, here or where the customer runs, and answers.
    /// Whatever is carried out here is audited here; what another process
    /// carries out, that process audits.
    pub async fn send(&self, command: Command, actor: &str) -> CommandReply {
        let (reply, here) = self.route(&command, actor).await;
        if here {
            door::audit(&self.shared, &command, actor, reply.as_ref().map(|d| d.message.as_str())).await;
        }
        reply
    }

    /// Purges customers whose offboarding retention is over (what running
    /// engines do every ten minutes); returns their names.
    pub async fn purge_expired(&self) -> Result<Vec<String>, CommandError> {
        door::purge_past_retention(&self.shared, Utc::now()).await
    }

    /// The reply, and whether the command was carried out in this process.
    async fn route(&self, command: &Command, actor: &str) -> (CommandReply, bool) {
        let Routing::Owner(name) = command.routing() else {
            return (door::change_state(&self.shared, command, actor).await, true);
        };
        let customer = match customer_named(&self.shared.store, name).await {
            Ok(customer) => customer,
            Err(e) => return (Err(e), true),
        };
        let config = &self.shared.config;
        match fleet::holding(&self.shared.store, customer.id, &config.owner, config.reload_every).await {
            Err(e) => (Err(e.into()), true),
            Ok(Holding::Busy(holder)) => (Err(CommandError::Busy(fleet::busy(name, &holder))), true),
            Ok(Holding::Worker(holder)) => {
                (queue::send(&self.shared.store, command, actor, &config.owner, &holder).await, false)
            }
            Ok(Holding::Free) => (self.here(&customer, command, actor).await, true),
        }
    }

    /// Carries out a command no process runs the customer for, under a
    /// lease of this process's own.
    async fn here(&self, customer: &Customer, command: &Command, actor: &str) -> CommandReply {
        let owner = format!("{} (cli)", self.shared.config.owner);
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(CLI_LEASE).unwrap_or_default();
        if !self.shared.store.acquire_lease(customer.id, &owner, now, until).await? {
            let holder =
                self.shared.store.lease(customer.id).await?.and_then(|l| l.owner).unwrap_or_default();
            return Err(CommandError::Busy(fleet::busy(&customer.name, &holder)));
        }
        let reply = match command {
            Command::Pause { .. } | Command::Offboard { .. } => {
                door::change_state(&self.shared, command, actor).await
            }
            _ => door::run_here(&self.shared, customer, command, actor, &owner).await,
        };
        if let Err(e) = self.shared.store.release_lease(customer.id, &owner).await {
            tracing::warn!(error = %e, "cannot give the lease back; it expires by itself");
        }
        reply
    }
}
