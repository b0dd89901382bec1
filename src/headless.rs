//! The unattended front end: serves `/healthz` (the process answers),
//! `/readyz` (the engine has started and no worker is stalled) and
//! `/metrics` (Prometheus/OpenMetrics text: per-customer lag, users synced,
//! requests, 429s, DLQ depth) from the engine's latest snapshot, on a local
//! address. It only observes; it never acts on customers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::EngineSnapshot;

type Snapshots = watch::Receiver<Arc<EngineSnapshot>>;

/// Binds the health and metrics server; it runs until `cancel`.
pub async fn serve(
    listen: SocketAddr,
    snapshots: Snapshots,
    cancel: CancellationToken,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        format!("cannot listen on {listen} for /healthz and /metrics: {e}; choose another --listen")
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(snapshots);
    tokio::spawn(async move {
        let stop = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(local)
}

async fn readyz(State(snapshots): State<Snapshots>) -> Response {
    let snapshot = Arc::clone(&snapshots.borrow());
    if snapshot.at.is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    let stalled: Vec<&str> =
        snapshot.customers.iter().filter(|c| c.stalled).map(|c| c.name.as_str()).collect();
    if stalled.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("stalled: {}\n", stalled.join(", "))).into_response()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CustomerLabel {
    customer: String,
}

async fn metrics(State(snapshots): State<Snapshots>) -> Response {
    let snapshot = Arc::clone(&snapshots.borrow());
    match render_metrics(&snapshot) {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
                .into_response()
        }
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render metrics: {e}\n")).into_response()
        }
    }
}

/// The snapshot as OpenMetrics text. A fresh registry per scrape: the
/// figures already live in the snapshot, so nothing needs registering
/// globally.
pub fn render_metrics(snapshot: &EngineSnapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("vomo_sync");
    let gauge_i = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<CustomerLabel, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let lag = gauge_i(&mut registry, "checkpoint_lag_seconds", "How far the checkpoint trails VOMO's clock");
    let users = gauge_i(&mut registry, "users_synced", "Users mapped and not deleted");
    let dlq = gauge_i(&mut registry, "dlq_depth", "Pending dead-letter entries");
    let dlq_age =
        gauge_i(&mut registry, "dlq_oldest_age_seconds", "Age of the oldest pending dead-letter entry");
    let token_ok = gauge_i(&mut registry, "token_valid", "1 when VOMO last accepted the customer's token");
    let running = gauge_i(&mut registry, "owned_here", "1 when this process works on the customer");
    let requests = Family::<CustomerLabel, Counter>::default();
    registry.register("requests", "VOMO requests sent by this process", requests.clone());
    let limited = Family::<CustomerLabel, Counter>::default();
    registry.register("rate_limited", "429 answers from VOMO", limited.clone());
    let rate = Family::<CustomerLabel, Gauge<f64, AtomicU64>>::default();
    registry.register("budget_effective_requests_per_second", "Request budget in force", rate.clone());
    let now = chrono::Utc::now();
    for c in &snapshot.customers {
        let label = CustomerLabel { customer: c.name.clone() };
        lag.get_or_create(&label).set(c.lag_secs);
        users.get_or_create(&label).set(c.users_synced);
        dlq.get_or_create(&label).set(c.dlq.pending);
        dlq_age.get_or_create(&label).set(c.dlq.oldest.map_or(0, |t| (now - t).num_seconds().max(0)));
        let valid = c.token.as_ref().is_some_and(|t| t.state == crate::domain::TokenState::Valid);
        token_ok.get_or_create(&label).set(i64::from(valid));
        running.get_or_create(&label).set(i64::from(c.owned_here));
        requests.get_or_create(&label).inc_by(c.budget.requests);
        limited.get_or_create(&label).inc_by(c.budget.rate_limited);
        rate.get_or_create(&label).set(c.budget.effective);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}
