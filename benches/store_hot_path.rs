//! Benchmark of the state DB's hot path: look up the mappings of a 15-user
//! page and write them back (one transaction), with 1,000,000 existing
//! mappings, on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench store_hot_path` (PostgreSQL is started like the
//! tests do; `BENCH_MAPPINGS` changes the table size).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic on failure

#[path = "../tests/common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::{RngExt, SeedableRng};
use vomo_sync::config::StateLocation;
use vomo_sync::domain::{ApiToken, ContentHash, CustomerSettings};
use vomo_sync::store::{AuditEntry, CustomerStatus, KeySource, MappingWrite, MasterKey, NewCustomer, Store};

const PAGE: usize = 15;
const ROUNDS: usize = 2_000;

fn write(id: i64, n: u64) -> MappingWrite {
    let mut hash = [0u8; 16];
    hash[..8].copy_from_slice(&n.to_le_bytes());
    MappingWrite {
        vomo_user_id: id,
        email: format!("user{id}@example.org"),
        content_hash: ContentHash(hash),
        vomo_updated_at: Utc::now(),
        external_ids: BTreeMap::from([("jsonl".to_owned(), id.to_string())]),
        synced_at: Utc::now(),
        deleted_at: None,
    }
}

async fn bench(label: &str, location: StateLocation, mappings: i64) {
    let mut store = Store::open(&location).await.unwrap();
    store.unlock(MasterKey::generate(), &KeySource::Env).await.unwrap();
    let settings = CustomerSettings::default();
    let new = NewCustomer {
        name: "bench",
        vomo_url: "http://x/v1",
        settings: &settings,
        status: CustomerStatus::Active,
    };
    let audit = AuditEntry {
        at: Utc::now(),
        actor: "bench".into(),
        customer: Some("bench".into()),
        action: "customer.add".into(),
        detail: String::new(),
        result: "ok".into(),
    };
    let customer = store
        .add_customer(&new, &ApiToken::new("bench-token-0123456789").unwrap(), &[], &audit)
        .await
        .unwrap();

    let fill_started = Instant::now();
    let batch: i64 = 5_000;
    let mut next = 1;
    while next <= mappings {
        let writes: Vec<MappingWrite> =
            (next..(next + batch).min(mappings + 1)).map(|id| write(id, 0)).collect();
        store.commit_window(customer.id, &writes, None, None).await.unwrap();
        next += batch;
    }
    let fill = fill_started.elapsed();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut latencies = Vec::with_capacity(ROUNDS);
    let started = Instant::now();
    for round in 0..ROUNDS {
        let ids: Vec<i64> = (0..PAGE).map(|_| rng.random_range(1..=mappings)).collect();
        let t = Instant::now();
        let found = store.lookup_mappings(customer.id, &ids).await.unwrap();
        assert_eq!(found.len(), ids.iter().collect::<std::collections::BTreeSet<_>>().len());
        let writes: Vec<MappingWrite> = ids.iter().map(|id| write(*id, round as u64 + 1)).collect();
        // Every tenth page completes a window and moves the checkpoint too.
        let advance = (round % 10 == 9).then(Utc::now);
        store.commit_window(customer.id, &writes, advance, None).await.unwrap();
        latencies.push(t.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<10} {mappings} mappings (filled in {:.1}s): lookup+upsert of a {PAGE}-user page: median {:.2} ms, p95 {:.2} ms, p99 {:.2} ms; {:.0} pages/s = {:.0} users/s",
        fill.as_secs_f64(),
        ms(pct(0.5)),
        ms(pct(0.95)),
        ms(pct(0.99)),
        ROUNDS as f64 / total.as_secs_f64(),
        (ROUNDS * PAGE) as f64 / total.as_secs_f64(),
    );
    store.close().await;
}

fn main() {
    let mappings: i64 =
        std::env::var("BENCH_MAPPINGS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        bench("SQLite", StateLocation::Sqlite(dir.path().join("bench.db")), mappings).await;
        match pg::fresh_database().await {
            Some(url) => bench("PostgreSQL", StateLocation::Postgres(url), mappings).await,
            None => println!("PostgreSQL  skipped: not available"),
        }
    });
}
