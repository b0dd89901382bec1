//! The unattended front end: serves `/healthz` (the process answers),
//! `/readyz` (the engine has started and no worker is stalled),
//! `/metrics` (Prometheus/OpenMetrics text: per-customer lag, users synced,
//! requests, 429s, DLQ depth) and `/customers/{name}/health` (a customer's
//! own view, JSON or HTML, behind that customer's read-only token) from the
//! engine's latest snapshot. It only observes; it never acts on customers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
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
use crate::engine::health::{CustomerHealth, HealthAuth, HealthState, customer_health};

type Snapshots = watch::Receiver<Arc<EngineSnapshot>>;

/// What the routes read.
#[derive(Clone)]
struct Served {
    snapshots: Snapshots,
    auth: HealthAuth,
}

impl axum::extract::FromRef<Served> for Snapshots {
    fn from_ref(served: &Served) -> Self {
        served.snapshots.clone()
    }
}

/// Binds the health and metrics server; it runs until `cancel`.
pub async fn serve(
    listen: SocketAddr,
    snapshots: Snapshots,
    auth: HealthAuth,
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
        .route("/customers/{name}/health", get(customer_health_page))
        .with_state(Served { snapshots, auth });
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
    match snapshot.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// `GET /customers/{name}/health`: the token (Bearer, or `?token=` for a
/// browser) must be that customer's: none or an unknown one is 401, another
/// customer's name is 404 (whether it exists is not told).
async fn customer_health_page(
    State(served): State<Served>,
    Path(name): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = bearer.or_else(|| query.get("token").cloned()).unwrap_or_default();
    let owner = match served.auth.customer_of(&token).await {
        Ok(owner) => owner,
        Err(e) => {
            tracing::error!(error = %e, "cannot check a health token");
            return (StatusCode::SERVICE_UNAVAILABLE, "cannot check the token now; try again\n")
                .into_response();
        }
    };
    let Some(owner) = owner else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid health token is required (Authorization: Bearer <token> or ?token=)\n",
        )
            .into_response();
    };
    let snapshot = Arc::clone(&served.snapshots.borrow());
    let found = (owner == name).then(|| snapshot.customer(&name)).flatten();
    let Some(customer) = found else {
        return (StatusCode::NOT_FOUND, "no such customer for this token\n").into_response();
    };
    let health = customer_health(customer, &snapshot.thresholds, chrono::Utc::now());
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], health_html(&health)).into_response();
    }
    axum::Json(health).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A small self-contained page for people.
fn health_html(h: &CustomerHealth) -> String {
    let (word, colour) = match h.state {
        HealthState::Ok => ("Working", "#1a7f37"),
        HealthState::Degraded => ("Degraded", "#9a6700"),
        HealthState::Failing => ("Failing", "#cf222e"),
    };
    let reasons: String = h.reasons.iter().map(|r| format!("<li>{}</li>", escape(r))).collect();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(|| "—".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}: VOMO sync health</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">\
         <h1>{name}</h1><p style=\"font-size:1.5em;color:{colour}\"><strong>{word}</strong></p><ul>{reasons}</ul>\
         <table><tr><td>Last successful sync</td><td>{last}</td></tr>\
         <tr><td>Behind VOMO by</td><td>{lag}</td></tr><tr><td>Users synced</td><td>{users}</td></tr>\
         <tr><td>Records waiting to be delivered again</td><td>{pending}</td></tr>\
         <tr><td>Records that failed</td><td>{failed}</td></tr><tr><td>Access token</td><td>{token}</td></tr>\
         <tr><td>Next reconciliation</td><td>{next}</td></tr></table></body></html>\n",
        name = escape(&h.customer),
        last = when(h.last_successful_sync),
        lag = h.checkpoint_lag_secs.map_or_else(|| "—".to_owned(), |s| format!("{s} s")),
        users = h.users_synced,
        pending = h.records_pending,
        failed = h.records_failed,
        token = escape(h.token_state.as_deref().unwrap_or("none")),
        next = when(h.next_reconciliation),
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CustomerLabel {
    customer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    customer: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabel {
    customer: String,
    destination: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    customer: String,
    destination: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    customer: String,
    state: String,
}

/// The engine's verdict on each customer, as the console and `status` show
/// it: its state, whether it needs a human, and a backfill's progress.
fn verdict_metrics(
    registry: &mut Registry,
    snapshot: &EngineSnapshot,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<crate::engine::verdict::Verdict> {
    let state = Family::<StateLabel, Gauge>::default();
    registry.register("customer_state", "1 for the state the engine judges the customer in", state.clone());
    let attention = Family::<CustomerLabel, Gauge>::default();
    registry.register(
        "needs_attention",
        "1 when something about the customer needs a human",
        attention.clone(),
    );
    let progress = Family::<CustomerLabel, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "backfill_progress_ratio",
        "How much of an unfinished backfill is done",
        progress.clone(),
    );
    let verdicts: Vec<_> = snapshot.customers.iter().map(|c| c.verdict(&snapshot.thresholds, now)).collect();
    for (c, verdict) in snapshot.customers.iter().zip(&verdicts) {
        let label = CustomerLabel { customer: c.name.clone() };
        let named = StateLabel { customer: c.name.clone(), state: verdict.state.as_str().replace(' ', "_") };
        state.get_or_create(&named).set(1);
        attention.get_or_create(&label).set(i64::from(verdict.needs_attention()));
        if let crate::engine::verdict::Freshness::Backfill { percent: Some(p), .. } = verdict.freshness {
            progress.get_or_create(&label).set(f64::from(p) / 100.0);
        }
    }
    verdicts
}

/// Per destination: halted or not, and the figures of a destination's own
/// request budget (HubSpot's), beside VOMO's per-customer ones.
fn destination_metrics(registry: &mut Registry, snapshot: &EngineSnapshot) {
    let halted = Family::<DestinationLabel, Gauge>::default();
    registry.register(
        "destination_halted",
        "1 while a destination takes nothing (token rejected, permissions or daily limit gone)",
        halted.clone(),
    );
    let requests = Family::<DestinationLabel, Counter>::default();
    registry.register(
        "destination_requests",
        "Requests sent to a destination with its own budget",
        requests.clone(),
    );
    let rate = Family::<DestinationLabel, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "destination_budget_effective_requests_per_10s",
        "A destination's own request budget in force",
        rate.clone(),
    );
    let remaining = Family::<DestinationLabel, Gauge>::default();
    registry.register(
        "destination_daily_remaining",
        "Requests left today as the destination last reported",
        remaining.clone(),
    );
    let limited = Family::<PolicyLabel, Counter>::default();
    registry.register(
        "destination_rate_limited",
        "429 answers from a destination, by its policy",
        limited.clone(),
    );
    for c in &snapshot.customers {
        for d in &c.destinations {
            let label = DestinationLabel {
                customer: c.name.clone(),
                destination: d.name.clone(),
                kind: d.kind.clone(),
            };
            halted.get_or_create(&label).set(i64::from(d.halt.is_some()));
            let Some(budget) = &d.budget else { continue };
            requests.get_or_create(&label).inc_by(budget.requests);
            rate.get_or_create(&label).set(budget.effective_per_10s);
            if let Some(left) = budget.daily_remaining {
                remaining.get_or_create(&label).set(i64::try_from(left).unwrap_or(i64::MAX));
            }
            for (policy, n) in &budget.rate_limited {
                let label = PolicyLabel {
                    customer: c.name.clone(),
                    destination: d.name.clone(),
                    policy: policy.clone(),
                };
                limited.get_or_create(&label).inc_by(*n);
            }
        }
    }
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
    let by_class = Family::<ClassLabel, Counter>::default();
    registry.register(
        "class_requests",
        "VOMO requests sent by this process, by work class (writeback, poll, reconcile, backfill, tail)",
        by_class.clone(),
    );
    let limited = Family::<CustomerLabel, Counter>::default();
    registry.register("rate_limited", "429 answers from VOMO", limited.clone());
    let rate = Family::<CustomerLabel, Gauge<f64, AtomicU64>>::default();
    registry.register("budget_effective_requests_per_second", "Request budget in force", rate.clone());
    let tail_changes = Family::<CustomerLabel, Counter>::default();
    registry.register(
        "tail_changes",
        "Changes the live tail delivered between verified polls",
        tail_changes.clone(),
    );
    let tail_age = gauge_i(&mut registry, "tail_last_read_age_seconds", "Age of the live tail's last read");
    let now = chrono::Utc::now();
    let verdicts = verdict_metrics(&mut registry, snapshot, now);
    for (c, verdict) in snapshot.customers.iter().zip(&verdicts) {
        let label = CustomerLabel { customer: c.name.clone() };
        // A lag only once the first full copy is complete; before that the
        // backfill's progress says how far it is.
        if let crate::engine::verdict::Freshness::Lag { secs } = verdict.freshness {
            lag.get_or_create(&label).set(secs);
        }
        users.get_or_create(&label).set(c.users_synced);
        dlq.get_or_create(&label).set(c.dlq.pending);
        dlq_age.get_or_create(&label).set(c.dlq.oldest.map_or(0, |t| (now - t).num_seconds().max(0)));
        let valid = c.token.as_ref().is_some_and(|t| t.state == crate::domain::TokenState::Valid);
        token_ok.get_or_create(&label).set(i64::from(valid));
        running.get_or_create(&label).set(i64::from(c.owned_here));
        requests.get_or_create(&label).inc_by(c.budget.requests);
        for (class, n) in c.budget.by_class.each() {
            by_class.get_or_create(&ClassLabel { customer: c.name.clone(), class: class.as_str() }).inc_by(n);
        }
        limited.get_or_create(&label).inc_by(c.budget.rate_limited);
        if let Some(tail) = &c.tail {
            tail_changes.get_or_create(&label).inc_by(tail.changes);
            if let Some(at) = tail.last_read_at {
                tail_age.get_or_create(&label).set((now - at).num_seconds().max(0));
            }
        }
        rate.get_or_create(&label).set(c.budget.effective);
    }
    budget_metrics(&mut registry, snapshot);
    destination_metrics(&mut registry, snapshot);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// The rate VOMO declares beside the rate used. A declaration not yet read
/// (no headers, or too few answers to tell its window) is left out, not
/// shown as zero.
fn budget_metrics(registry: &mut Registry, snapshot: &EngineSnapshot) {
    let used = Family::<CustomerLabel, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "budget_used_requests_per_second",
        "VOMO requests sent over the last minute",
        used.clone(),
    );
    let declared = Family::<CustomerLabel, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "rate_declared_requests_per_second",
        "The rate limit VOMO declares (X-RateLimit-*), read as requests per second",
        declared.clone(),
    );
    let remaining = Family::<CustomerLabel, Gauge>::default();
    registry.register(
        "rate_declared_remaining",
        "X-RateLimit-Remaining of VOMO's latest answer",
        remaining.clone(),
    );
    for c in &snapshot.customers {
        let label = CustomerLabel { customer: c.name.clone() };
        used.get_or_create(&label).set(c.budget.used_per_s);
        if let Some(d) = &c.budget.declared {
            remaining.get_or_create(&label).set(i64::from(d.remaining));
            if let Some(per_s) = d.per_s {
                declared.get_or_create(&label).set(per_s);
            }
        }
    }
}

/// Sends alerts (see [`crate::engine::alerts`]) to `webhook` as JSON, one
/// POST per alert, retried a few times; a receiver that stays down is
/// logged, never blocks the engine.
pub fn spawn_alerts(
    mut snapshots: Snapshots,
    rules: crate::engine::alerts::AlertRules,
    sinks: AlertSinks,
    ledger: crate::engine::alerts::AlertLedger,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let sinks = Arc::new(sinks);
        let mut alerter = crate::engine::alerts::Alerter::default();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = snapshots.changed() => if changed.is_err() { return },
            }
            let snapshot = Arc::clone(&snapshots.borrow_and_update());
            if snapshot.at.is_none() {
                continue;
            }
            for alert in alerter.observe(&snapshot, &rules, chrono::Utc::now()) {
                if !ledger.claim(&alert, rules.cooldown).await {
                    tracing::info!(customer = %alert.customer, kind = ?alert.kind, "alert already sent by another instance");
                    continue;
                }
                tracing::warn!(customer = %alert.customer, kind = ?alert.kind, "alert: {}", alert.message);
                let sinks = Arc::clone(&sinks);
                tokio::spawn(async move {
                    if let Some(webhook) = &sinks.webhook {
                        deliver(webhook, &alert).await;
                    }
                    if let Some(command) = &sinks.command {
                        run_command(command, &alert).await;
                    }
                });
            }
        }
    });
}

/// Where alerts go: a webhook, a command, or both.
#[derive(Debug, Clone, Default)]
pub struct AlertSinks {
    pub webhook: Option<AlertWebhook>,
    /// Program and arguments; run with the alert as JSON on stdin.
    pub command: Option<Vec<String>>,
}

impl AlertSinks {
    pub fn any(&self) -> bool {
        self.webhook.is_some() || self.command.is_some()
    }
}

/// The alert webhook: its URL (often with a secret in its path or query,
/// so only ever logged redacted) and a client bound by the outbound rules.
#[derive(Debug, Clone)]
pub struct AlertWebhook {
    url: url::Url,
    shown: String,
    http: reqwest::Client,
}

impl AlertWebhook {
    /// Checks the URL against the outbound rules (private addresses need
    /// the operator's allow-list) and prepares its client.
    pub fn new(url: &str, outbound: &crate::outbound::OutboundPolicy) -> Result<Self, String> {
        let shown = crate::config::redact_secret_url(url);
        let parsed =
            url::Url::parse(url).map_err(|e| format!("alerts.webhook {shown}: invalid URL ({e})"))?;
        let http = outbound
            .clone()
            .with_timeout(std::time::Duration::from_secs(10))
            .client_for(&parsed)
            .map_err(|reason| format!("alerts.webhook {shown}: {reason}"))?;
        Ok(Self { url: parsed, shown, http })
    }
}

async fn deliver(webhook: &AlertWebhook, alert: &crate::engine::alerts::Alert) {
    let shown = webhook.shown.as_str();
    for attempt in 0..4u32 {
        match webhook.http.post(webhook.url.clone()).json(alert).send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::warn!(webhook = shown, status = %response.status(), attempt, "the alert webhook refused an alert")
            }
            Err(e) => {
                let e = e.without_url();
                tracing::warn!(webhook = shown, error = %e, attempt, "cannot reach the alert webhook");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(2u64.pow(attempt))).await;
    }
    tracing::error!(customer = %alert.customer, webhook = shown, "alert not delivered after 4 attempts: {}", alert.message);
}

/// Runs the alert command with the alert as JSON on stdin (and the customer
/// and kind in `VOMO_SYNC_ALERT_*`), within 30 s.
async fn run_command(command: &[String], alert: &crate::engine::alerts::Alert) {
    use tokio::io::AsyncWriteExt;
    let Some((program, args)) = command.split_first() else { return };
    let kind = serde_json::to_value(alert.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .env("VOMO_SYNC_ALERT_CUSTOMER", &alert.customer)
        .env("VOMO_SYNC_ALERT_KIND", kind.unwrap_or_default())
        .env("VOMO_SYNC_ALERT_MESSAGE", &alert.message)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(error = %e, program = %program, "cannot start the alert command: {}", alert.message);
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let body = serde_json::to_vec(alert).unwrap_or_default();
        // A command that does not read its input is fine.
        let _ = stdin.write_all(&body).await;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => {
            tracing::error!(%status, program = %program, "the alert command failed: {}", alert.message)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, program = %program, "the alert command failed: {}", alert.message)
        }
        Err(_) => tracing::error!(program = %program, "the alert command took over 30 s and was stopped"),
    }
}
