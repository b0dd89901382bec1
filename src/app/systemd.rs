//! systemd integration of `vomo-sync headless` (`Type=notify`): READY=1
//! once the engine runs and its endpoints are bound, WATCHDOG=1 while the
//! engine keeps publishing snapshots (a wedged engine stops the pings and
//! systemd restarts it), STOPPING=1 when a drain starts. Outside systemd
//! (no `NOTIFY_SOCKET`) every call does nothing.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::engine::EngineSnapshot;

/// A snapshot older than this means the engine is wedged.
const STALE_AFTER: Duration = Duration::from_secs(30);

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("draining: finishing the pages in flight")]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Pings the watchdog at half its period while snapshots stay fresh.
pub fn spawn_watchdog(mut snapshots: watch::Receiver<Arc<EngineSnapshot>>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let fresh = snapshots
                .borrow_and_update()
                .at
                .is_some_and(|at| (chrono::Utc::now() - at).to_std().is_ok_and(|age| age < STALE_AFTER));
            if fresh {
                notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    "the engine has published no snapshot for {STALE_AFTER:?}; not pinging the watchdog"
                );
            }
        }
    });
}
