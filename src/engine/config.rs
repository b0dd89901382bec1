//! How the engine runs: its settings from the configuration, the role of
//! the process, and who it is (the lease owner id, the OS user).

use std::time::Duration;

use super::run::fetch::RetryPolicy;
use crate::config::{Config, HourRange};
use crate::vomo::ClientSettings;

/// How the engine runs, from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub client: ClientSettings,
    pub settle: Duration,
    pub max_concurrent_backfills: usize,
    pub backfill_hours: Option<HourRange>,
    pub request_retry: RetryPolicy,
    pub dlq_retry: RetryPolicy,
    pub dlq_retry_max: Duration,
    pub chunk_users: u64,
    /// How often the supervisor re-reads customers from the state DB (new
    /// customers, pauses, replaced tokens made by other processes).
    pub reload_every: Duration,
    /// Lease period; leases are renewed at every reload.
    pub lease_ttl: Duration,
    /// A worker runs customers; an attached console only watches and sends
    /// commands to the instances that run them.
    pub role: Role,
    /// Who owns leases: host, process and a random tag.
    pub owner: String,
    /// How far back a reconciliation re-reads.
    pub reconcile_lookback: Duration,
    /// The mass-deletion guard: a share of a customer's users, capped.
    pub deletion_guard_share: f64,
    pub deletion_guard_max: u64,
    /// How long an offboarded customer's state is kept.
    pub offboard_retention: Duration,
    /// VOMO's `Date` is believed only this close to this machine's clock.
    pub max_clock_skew: Duration,
    /// Allows plain `http://` VOMO URLs off loopback.
    pub allow_insecure_http: bool,
    /// What outbound destinations (webhooks, CRMs) may reach.
    pub outbound: crate::outbound::OutboundPolicy,
    /// What needs a human: the lag and DLQ-age limits (`alerts.lag_above`,
    /// `alerts.dlq_older_than`) and how recent a heartbeat must be.
    pub thresholds: super::thresholds::Thresholds,
}

impl EngineConfig {
    pub fn from_config(config: &Config) -> Self {
        let sync = &config.sync;
        Self {
            client: ClientSettings {
                connect_timeout: config.vomo.connect_timeout,
                request_timeout: config.vomo.request_timeout,
                max_body: config.vomo.max_body,
            },
            settle: sync.settle,
            max_concurrent_backfills: sync.max_concurrent_backfills,
            backfill_hours: sync.backfill_hours,
            request_retry: RetryPolicy { retries: sync.request_retries, base: sync.retry_base },
            dlq_retry: RetryPolicy { retries: u32::MAX, base: sync.dlq_retry_base },
            dlq_retry_max: sync.dlq_retry_max,
            chunk_users: sync.chunk_users,
            reload_every: sync.heartbeat_every,
            lease_ttl: sync.lease_period,
            role: Role::Worker,
            owner: default_owner(),
            reconcile_lookback: sync.reconcile_lookback,
            deletion_guard_share: sync.deletion_guard_share,
            deletion_guard_max: sync.deletion_guard_max,
            offboard_retention: sync.offboard_retention,
            max_clock_skew: sync.max_clock_skew,
            allow_insecure_http: config.vomo.allow_insecure_http,
            // The config validated the entries already.
            outbound: crate::outbound::OutboundPolicy::from_entries(&config.dest.allow_private_hosts)
                .unwrap_or_default(),
            thresholds: super::thresholds::Thresholds::new(
                config.alerts.lag_above,
                config.alerts.dlq_older_than,
                sync.heartbeat_every,
            ),
        }
    }
}

/// What a process does with the customers of the state DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes its fair share of customers and runs them.
    Worker,
    /// Runs nothing; shows every customer from the workers' heartbeat rows
    /// and sends commands through the state DB (`console --attach`).
    Attached,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Attached => "attached",
        }
    }
}

/// `host:pid:tag`, unique per process.
pub fn default_owner() -> String {
    let host = whoami::hostname().unwrap_or_else(|_| "unknown-host".into());
    let tag: u32 = rand::random();
    format!("{host}:{}:{tag:08x}", std::process::id())
}

/// The OS user, the actor of CLI and console actions in the audit log.
pub fn os_user() -> String {
    whoami::username().unwrap_or_else(|_| std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}
