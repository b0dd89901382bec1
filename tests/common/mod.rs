//! Shared test helpers: a simulator on loopback and clients bound to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

pub mod pg;
pub mod sync;

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
    ClientSettings { connect_timeout: Duration::from_secs(2), request_timeout: timeout }
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
