//! Shared test helpers: a simulator on loopback and clients bound to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

pub mod hostile;
pub mod hubspot;
pub mod pg;
pub mod sync;

use std::path::Path;
use std::time::Duration;

use vomo_sync::domain::ApiToken;
use vomo_sync::sim::{self, OrgSpec, SimConfig, SimHandle};
use vomo_sync::vomo::{ClientSettings, VomoClient, http_pool};

/// A simulator with the given organisations (slug, users), seed 7.
pub async fn sim_with(orgs: &[(&str, usize)]) -> SimHandle {
    sim::start(SimConfig {
        orgs: orgs.iter().map(|(slug, users)| OrgSpec { slug: (*slug).to_owned(), users: *users }).collect(),
        seed: 7,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

pub fn settings(timeout: Duration) -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: timeout,
        max_body: vomo_sync::vomo::DEFAULT_MAX_BODY,
    }
}

/// A client for `org`'s first token.
pub fn client_for(sim: &SimHandle, org: &str) -> VomoClient {
    let token = sim.token(org).expect("org has a token");
    client_with_token(sim, &token, Duration::from_secs(10))
}

pub fn client_with_token(sim: &SimHandle, token: &str, timeout: Duration) -> VomoClient {
    let http = http_pool(settings(timeout)).expect("http pool");
    VomoClient::new(http, sim.base_url(), &ApiToken::new(token).expect("token")).expect("client")
}

/// The master key of every `vomo-sync` process a test starts.
pub const MASTER_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `program` (the `vomo-sync` binary, or a wrapper) as tests run it: a
/// private HOME, the test master key, no settle margin (the simulator
/// commits at once), fast retries, and nothing inherited from the caller's
/// `VOMO_SYNC_*`, `XDG_*` or `RUST_LOG`.
pub fn test_command(home: &Path, program: &str) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("VOMO_SYNC_") || k.starts_with("XDG_")) {
        command.env_remove(key);
    }
    command
        .env("HOME", home)
        .env_remove("RUST_LOG")
        .env("VOMO_SYNC_MASTER_KEY", MASTER_KEY)
        .env("VOMO_SYNC_SYNC_SETTLE", "0s")
        .env("VOMO_SYNC_SYNC_RETRY_BASE", "10ms")
        .env("VOMO_SYNC_SYNC_DLQ_RETRY_BASE", "100ms")
        // Test destinations (webhook receivers) listen on loopback.
        .env("VOMO_SYNC_DEST_ALLOW_PRIVATE_HOSTS", "127.0.0.1");
    command
}
