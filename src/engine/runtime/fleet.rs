//! The other processes on the same state DB, as one instance sees them at
//! its last reload: which process holds each customer's lease, how many
//! workers are alive (for fair shares), and the live figures each worker
//! publishes in its heartbeat row. Also builds this process's own row.
//! PostgreSQL is the whole coordination plane: no process talks to another
//! except through these rows (design.md §3.7).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::snapshot::LiveFigures;
use crate::engine::config::Role;
use crate::engine::thresholds::ALIVE_PERIODS;
use crate::store::{CustomerId, InstanceRow, Store, StoreError};

/// What a worker's heartbeat row carries: its customers' live figures.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Figures {
    customers: BTreeMap<String, LiveFigures>,
}

/// The fleet at one moment.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    /// Unexpired leases: customer → owner.
    holders: HashMap<CustomerId, String>,
    /// Live workers' published figures: owner → customer name → figures.
    figures: HashMap<String, BTreeMap<String, LiveFigures>>,
    live_workers: usize,
    /// When the last process to hold each customer's lease last showed
    /// life (its lease renewal or its heartbeat row, whichever is newer),
    /// also once that lease has expired.
    last_seen: HashMap<CustomerId, DateTime<Utc>>,
}

impl Fleet {
    /// Reads leases and heartbeat rows.
    pub async fn read(
        store: &Store,
        now: DateTime<Utc>,
        heartbeat_every: Duration,
    ) -> Result<Self, StoreError> {
        let leases = store.leases().await?;
        let mut last_seen: HashMap<CustomerId, DateTime<Utc>> = leases
            .iter()
            .filter(|l| l.owner.is_some())
            .filter_map(|l| Some((l.customer_id, l.heartbeat_at?)))
            .collect();
        // A lease of a process known to be gone is free: taken over at once.
        let holders: HashMap<CustomerId, String> = leases
            .into_iter()
            .filter(|l| l.expires_at > now)
            .filter_map(|l| l.owner.map(|o| (l.customer_id, o)))
            .filter(|(_, owner)| !provably_dead(owner))
            .collect();
        let mut figures = HashMap::new();
        let mut heartbeats: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut live_workers = 0;
        for row in store.instances_since(alive_since(now, heartbeat_every)).await? {
            if row.role != Role::Worker.as_str() {
                continue;
            }
            live_workers += 1;
            heartbeats.insert(row.owner.clone(), row.heartbeat_at);
            // A row this version cannot read shows no figures, nothing worse.
            let parsed: Figures = serde_json::from_str(&row.figures).unwrap_or_default();
            figures.insert(row.owner, parsed.customers);
        }
        // A holder's heartbeat row may be newer than its last lease renewal.
        for (customer, owner) in &holders {
            if let Some(beat) = heartbeats.get(owner) {
                let seen = last_seen.entry(*customer).or_insert(*beat);
                *seen = (*seen).max(*beat);
            }
        }
        Ok(Self { holders, figures, live_workers, last_seen })
    }

    /// When the last holder of `customer`'s lease last showed life.
    pub fn last_seen(&self, customer: CustomerId) -> Option<DateTime<Utc>> {
        self.last_seen.get(&customer).copied()
    }

    /// The process holding `customer`'s unexpired lease.
    pub fn holder(&self, customer: CustomerId) -> Option<&str> {
        self.holders.get(&customer).map(String::as_str)
    }

    /// The figures `owner` last published for `customer`.
    pub fn figures(&self, owner: &str, customer: &str) -> Option<&LiveFigures> {
        self.figures.get(owner).and_then(|c| c.get(customer))
    }

    /// Live worker processes, counting this worker (`me`) even when its
    /// own row is not written yet.
    pub fn live_workers(&self, me: &str) -> usize {
        self.live_workers + usize::from(!self.figures.contains_key(me))
    }
}

/// Who holds a customer's lease now, read afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holding {
    /// Nobody, or only `me`.
    Free,
    /// A live worker process, which takes queued commands.
    Worker(String),
    /// Something else: a one-shot CLI run, or a process that stopped
    /// heartbeating but whose lease has not expired yet.
    Busy(String),
}

/// Who, other than `me`, holds `customer`'s unexpired lease.
pub(crate) async fn holding(
    store: &Store,
    customer: CustomerId,
    me: &str,
    heartbeat_every: Duration,
) -> Result<Holding, StoreError> {
    let now = Utc::now();
    let holder = store
        .lease(customer)
        .await?
        .filter(|l| l.expires_at > now)
        .and_then(|l| l.owner)
        .filter(|o| o != me && !provably_dead(o));
    let Some(holder) = holder else { return Ok(Holding::Free) };
    let alive = store.instances_since(alive_since(now, heartbeat_every)).await?;
    Ok(if alive.iter().any(|i| i.owner == holder && i.role == Role::Worker.as_str()) {
        Holding::Worker(holder)
    } else {
        Holding::Busy(holder)
    })
}

/// True when `owner` (`host:pid:tag`) names a process on this machine that
/// no longer exists: its lease need not be waited out. Elsewhere, or where
/// it cannot be told (no `/proc`), a holder is presumed alive; a reused pid
/// only makes us wait for the lease to expire, never take a live one.
pub(crate) fn provably_dead(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(_tag), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    let this_host = whoami::hostname().unwrap_or_default();
    let proc = std::path::Path::new("/proc");
    host == this_host
        && pid != std::process::id()
        && proc.join("self").exists()
        && !proc.join(pid.to_string()).exists()
}

/// How an attempt to take a customer's lease went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseAttempt {
    Acquired,
    /// Taken from a process on this machine that is gone (audited).
    TakenOver {
        from: String,
    },
    /// A live (or unknowable) process holds it until `expires_at`.
    Held {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// Takes `customer`'s lease for `me`: free, expired or ours as usual; held
/// by a process on this machine that is gone, taken over at once with an
/// audit entry instead of waiting out its expiry.
pub(crate) async fn acquire_lease(
    store: &Store,
    customer: &crate::store::Customer,
    me: &str,
    ttl: Duration,
) -> Result<LeaseAttempt, StoreError> {
    let now = Utc::now();
    let expiry = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    if store.acquire_lease(customer.id, me, now, expiry).await? {
        return Ok(LeaseAttempt::Acquired);
    }
    let Some(lease) = store.lease(customer.id).await? else {
        return Ok(LeaseAttempt::Held { holder: "(unknown)".into(), expires_at: now });
    };
    let holder = lease.owner.unwrap_or_default();
    if !provably_dead(&holder) {
        return Ok(LeaseAttempt::Held { holder, expires_at: lease.expires_at });
    }
    let audit = crate::store::AuditEntry {
        at: now,
        actor: me.to_owned(),
        customer: Some(customer.name.clone()),
        action: "lease.taken_over".into(),
        detail: format!("{holder} is gone (no such process on this machine)"),
        result: "lease taken over without waiting for its expiry".into(),
    };
    Ok(if store.take_over_lease(customer.id, &holder, me, now, expiry, &audit).await? {
        LeaseAttempt::TakenOver { from: holder }
    } else {
        let lease = store.lease(customer.id).await?;
        LeaseAttempt::Held {
            holder: lease.as_ref().and_then(|l| l.owner.clone()).unwrap_or_default(),
            expires_at: lease.map_or(now, |l| l.expires_at),
        }
    })
}

/// Why a command cannot go to a customer's lease holder.
pub(crate) fn busy(name: &str, holder: &str) -> String {
    format!(
        "{name} is held by {holder}, which takes no commands (a one-shot run, or an instance that stopped and \
         whose lease has not expired yet); try again in a minute"
    )
}

/// Heartbeats older than this mean the process is gone.
pub(crate) fn alive_since(now: DateTime<Utc>, heartbeat_every: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(heartbeat_every * ALIVE_PERIODS).unwrap_or_default()
}

/// How many of `runnable` customers one of `workers` live workers should
/// run: an even split, rounded up so the shares always cover every customer.
pub(crate) fn fair_share(runnable: usize, workers: usize) -> usize {
    runnable.div_ceil(workers.max(1))
}

/// This process's heartbeat row.
pub(crate) fn heartbeat_row(
    owner: &str,
    role: Role,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    customers: BTreeMap<String, LiveFigures>,
) -> InstanceRow {
    let figures = Figures { customers };
    InstanceRow {
        owner: owner.to_owned(),
        role: role.as_str().to_owned(),
        started_at,
        heartbeat_at: now,
        // Serialising plain data cannot fail; an empty object is harmless.
        figures: serde_json::to_string(&figures).unwrap_or_else(|_| "{}".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_customer_and_differ_by_at_most_one() {
        for runnable in 0..120 {
            for workers in 1..7 {
                let share = fair_share(runnable, workers);
                assert!(share * workers >= runnable, "{runnable} over {workers}");
                assert!(share * workers < runnable + workers, "{runnable} over {workers}: {share} too big");
            }
        }
        assert_eq!(fair_share(50, 0), 50, "no live worker counted: this one takes all");
    }

    #[test]
    fn only_a_gone_process_on_this_machine_is_provably_dead() {
        let host = whoami::hostname().unwrap();
        // Pids are below 2^22 on Linux; this one cannot exist.
        assert!(provably_dead(&format!("{host}:4194999:abcd")));
        assert!(!provably_dead(&format!("{host}:{}:abcd", std::process::id())), "this process");
        assert!(!provably_dead(&format!("{host}:1:abcd")), "init is alive");
        assert!(!provably_dead("elsewhere.example:4194999:abcd"), "another machine: cannot tell");
        assert!(!provably_dead("garbage"));
    }

    #[test]
    fn a_heartbeat_row_round_trips_its_figures() {
        let mut customers = BTreeMap::new();
        customers.insert("acme".to_owned(), LiveFigures { requests_total: 7, ..LiveFigures::default() });
        let now = Utc::now();
        let row = heartbeat_row("h:1:a", Role::Worker, now, now, customers);
        let parsed: Figures = serde_json::from_str(&row.figures).unwrap();
        assert_eq!(parsed.customers["acme"].requests_total, 7);
        assert_eq!(row.role, "worker");
    }
}
