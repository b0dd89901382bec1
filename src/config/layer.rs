//! Where each setting comes from: defaults, then the config file, then
//! `VOMO_SYNC_*` environment variables, then command-line flags. This module
//! reads the environment into a [`FileConfig`] layer and names the variable in
//! every error.

use super::ConfigError;
use super::file::FileConfig;

/// Environment variables that override config keys: (variable, section, key).
pub const ENV_KEYS: &[(&str, &str, &str)] = &[
    ("VOMO_SYNC_STATE", "state", "url"),
    ("VOMO_SYNC_VOMO_BASE_URL", "vomo", "base_url"),
    ("VOMO_SYNC_VOMO_CONNECT_TIMEOUT", "vomo", "connect_timeout"),
    ("VOMO_SYNC_VOMO_REQUEST_TIMEOUT", "vomo", "request_timeout"),
    ("VOMO_SYNC_VOMO_ALLOW_INSECURE_HTTP", "vomo", "allow_insecure_http"),
    ("VOMO_SYNC_VOMO_MAX_BODY", "vomo", "max_body"),
    ("VOMO_SYNC_LOG_LEVEL", "log", "level"),
    ("VOMO_SYNC_LOG_FORMAT", "log", "format"),
    ("VOMO_SYNC_LOG_DIR", "log", "dir"),
    ("VOMO_SYNC_SYNC_SETTLE", "sync", "settle"),
    ("VOMO_SYNC_SYNC_POLL_EVERY", "sync", "poll_every"),
    ("VOMO_SYNC_SYNC_TAIL_EVERY", "sync", "tail_every"),
    ("VOMO_SYNC_SYNC_RATE", "sync", "rate"),
    ("VOMO_SYNC_SYNC_MAX_CONCURRENT_BACKFILLS", "sync", "max_concurrent_backfills"),
    ("VOMO_SYNC_SYNC_BACKFILL_HOURS", "sync", "backfill_hours"),
    ("VOMO_SYNC_SYNC_REQUEST_RETRIES", "sync", "request_retries"),
    ("VOMO_SYNC_SYNC_RETRY_BASE", "sync", "retry_base"),
    ("VOMO_SYNC_SYNC_DLQ_RETRY_BASE", "sync", "dlq_retry_base"),
    ("VOMO_SYNC_SYNC_DLQ_RETRY_MAX", "sync", "dlq_retry_max"),
    ("VOMO_SYNC_SYNC_CHUNK_USERS", "sync", "chunk_users"),
    ("VOMO_SYNC_SYNC_RECONCILE_EVERY", "sync", "reconcile_every"),
    ("VOMO_SYNC_SYNC_RECONCILE_LOOKBACK", "sync", "reconcile_lookback"),
    ("VOMO_SYNC_SYNC_DELETION_SCAN_EVERY", "sync", "deletion_scan_every"),
    ("VOMO_SYNC_SYNC_DELETION_GUARD_SHARE", "sync", "deletion_guard_share"),
    ("VOMO_SYNC_SYNC_DELETION_GUARD_MAX", "sync", "deletion_guard_max"),
    ("VOMO_SYNC_SYNC_OFFBOARD_RETENTION", "sync", "offboard_retention"),
    ("VOMO_SYNC_SYNC_LEASE_PERIOD", "sync", "lease_period"),
    ("VOMO_SYNC_SYNC_HEARTBEAT_EVERY", "sync", "heartbeat_every"),
    ("VOMO_SYNC_SYNC_MAX_CLOCK_SKEW", "sync", "max_clock_skew"),
    ("VOMO_SYNC_DEST_ALLOW_PRIVATE_HOSTS", "dest", "allow_private_hosts"),
    ("VOMO_SYNC_HEADLESS_LISTEN", "headless", "listen"),
    ("VOMO_SYNC_ALERTS_WEBHOOK", "alerts", "webhook"),
    ("VOMO_SYNC_ALERTS_LAG_ABOVE", "alerts", "lag_above"),
    ("VOMO_SYNC_ALERTS_DLQ_OLDER_THAN", "alerts", "dlq_older_than"),
    ("VOMO_SYNC_ALERTS_COOLDOWN", "alerts", "cooldown"),
];

/// `VOMO_SYNC_*` variables that are read elsewhere and are not config keys.
pub const OTHER_ENV: &[&str] = &["VOMO_SYNC_CONFIG", "VOMO_SYNC_MASTER_KEY"];

/// Builds the environment layer. `vars` is the process environment (a
/// parameter so tests can pass their own); returns the layer and warnings
/// about `VOMO_SYNC_*` variables that mean nothing to us.
pub fn env_layer(vars: &[(String, String)]) -> Result<(FileConfig, Vec<String>), ConfigError> {
    let mut table = toml::Table::new();
    let mut warnings = Vec::new();
    let mut var_of_key = Vec::new();
    for (name, value) in vars.iter().filter(|(name, _)| name.starts_with("VOMO_SYNC_")) {
        if let Some((var, section, key)) = ENV_KEYS.iter().find(|(var, ..)| var == name) {
            var_of_key.push((format!("{section}.{key}"), *var));
            let entry =
                table.entry((*section).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(section_table) = entry {
                section_table.insert((*key).to_owned(), toml::Value::String(value.clone()));
            }
        } else if !OTHER_ENV.contains(&name.as_str()) {
            warnings.push(format!(
                "ignoring unknown environment variable {name}; known ones: {}",
                ENV_KEYS.iter().map(|(var, ..)| *var).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let text = toml::to_string(&table)
        .map_err(|e| ConfigError::Env { var: "VOMO_SYNC_*".to_owned(), message: e.to_string() })?;
    let layer = FileConfig::parse(&text, "the environment").map_err(|e| match e {
        ConfigError::Invalid { key, message, .. } => ConfigError::Env {
            var: var_of_key
                .iter()
                .find(|(k, _)| *k == key)
                .map_or_else(|| key.clone(), |(_, var)| (*var).to_owned()),
            message,
        },
        other => other,
    })?;
    Ok((layer, warnings))
}
