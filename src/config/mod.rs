//! The validated configuration every command starts from, and where its files
//! live. Built once before anything runs: defaults < config file <
//! `VOMO_SYNC_*` environment < command-line flags.

pub mod file;
pub mod layer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use file::LogFormat;
use file::{FileConfig, parse_duration};

/// VOMO's one documented base URL (vomo-api.md §1).
pub const DEFAULT_VOMO_URL: &str = "https://api.vomo.org/v1";

/// Why the configuration could not be built. Each variant names where the bad
/// value came from, so the operator knows what to edit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: cannot read it: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("config file {path} was given but does not exist; create it or drop --config")]
    Missing { path: String },
    #[error("{}", invalid_message(origin, *line, key, message))]
    Invalid { origin: String, line: Option<usize>, key: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{flag}: {message}")]
    Flag { flag: String, message: String },
    #[error(
        "cannot find a home directory for the default config and state paths; set HOME, or pass --config and --state"
    )]
    NoHome,
}

fn invalid_message(origin: &str, line: Option<usize>, key: &str, message: &str) -> String {
    let mut text = format!("config {origin}");
    if let Some(line) = line {
        text.push_str(&format!(", line {line}"));
    }
    if !key.is_empty() {
        text.push_str(&format!(", key `{key}`"));
    }
    text.push_str(": ");
    text.push_str(message.trim_end());
    text
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub state: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

/// The platform directories (XDG on Linux) the defaults are derived from.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl Dirs {
    pub fn platform() -> Result<Self, ConfigError> {
        let dirs = directories::ProjectDirs::from("", "", "vomo-sync").ok_or(ConfigError::NoHome)?;
        Ok(Self { config_dir: dirs.config_dir().to_owned(), data_dir: dirs.data_dir().to_owned() })
    }
}

/// Where the partner state DB lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StateLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StateLocation {
    /// Accepts `postgres://…`, `postgresql://…`, `sqlite:PATH`, `sqlite://PATH`
    /// or a plain file path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty state location; give a file path or a postgres:// URL".to_owned());
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            url::Url::parse(text).map_err(|e| format!("invalid PostgreSQL URL ({e})"))?;
            return Ok(Self::Postgres(text.to_owned()));
        }
        if let Some(path) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if text.contains("://") {
            return Err(format!(
                "unsupported state URL {}; use a file path, sqlite:PATH or postgres://…",
                redact_url(text)
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }

    /// The location as it may be shown: PostgreSQL passwords replaced by `***`.
    pub fn display_redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => redact_url(url),
        }
    }
}

impl fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateLocation({})", self.display_redacted())
    }
}

/// Replaces the password of a URL with `***`; text that is not a URL is kept.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            // Only fails for URLs that cannot carry a password at all.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

/// A URL whose path and query may carry a secret (a webhook's token): only
/// scheme, host and port are shown, e.g. `https://hooks.example.org/…`.
pub fn redact_secret_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = url.path().len() > 1 || url.query().is_some() || url.password().is_some();
            let user = if url.username().is_empty() { "" } else { "***@" };
            format!(
                "{}://{user}{}{port}/{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                if hidden { "…" } else { "" }
            )
        }
        Err(_) => "(an unparseable URL)".to_owned(),
    }
}

/// Settings for talking to VOMO.
#[derive(Debug, Clone, Serialize)]
pub struct VomoSettings {
    /// Default base URL for customers onboarded without `--vomo-url`.
    pub base_url: String,
    #[serde(serialize_with = "serialize_duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "serialize_duration")]
    pub request_timeout: Duration,
    /// Allows a plain `http://` VOMO URL off loopback (the token would
    /// travel in clear text).
    pub allow_insecure_http: bool,
    /// The largest response body read from VOMO (and from any other remote
    /// service); a larger one fails the request.
    pub max_body: u64,
}

/// Settings for the outbound destinations (webhooks, CRMs, the alert webhook).
#[derive(Debug, Clone, Serialize)]
pub struct DestSettings {
    /// Private, loopback and link-local addresses outbound requests may
    /// reach after all (addresses, CIDRs, host:port); everything else of
    /// that kind is refused.
    pub allow_private_hosts: Vec<String>,
}

/// Settings for the process's own log.
#[derive(Debug, Clone, Serialize)]
pub struct LogSettings {
    /// A `tracing` filter directive such as `info` or `vomo_sync=debug`.
    pub level: String,
    pub format: LogFormat,
    /// Where the console writes its rolling log file.
    pub dir: PathBuf,
}

/// How the sync engine paces and retries work.
#[derive(Debug, Clone, Serialize)]
pub struct SyncSettings {
    /// Windows end this long before VOMO's clock, so writes stamped before
    /// the end have committed when we read.
    #[serde(serialize_with = "serialize_duration")]
    pub settle: Duration,
    /// Default poll interval for new customers.
    #[serde(serialize_with = "serialize_duration")]
    pub poll_every: Duration,
    /// Default live-tail interval for new customers (0 = no tail).
    #[serde(serialize_with = "serialize_duration")]
    pub tail_every: Duration,
    /// Default VOMO rate of new customers: `auto` (follow what VOMO
    /// declares) or a cap in requests/s (0 = none).
    pub rate: crate::domain::RateSetting,
    pub max_concurrent_backfills: usize,
    /// Backfills start only inside these UTC hours, e.g. `"22:00-06:00"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill_hours: Option<HourRange>,
    /// Attempts of a failing VOMO request (5xx, timeout, malformed page)
    /// before the run fails.
    pub request_retries: u32,
    #[serde(serialize_with = "serialize_duration")]
    pub retry_base: Duration,
    /// Backoff of automatic DLQ retries: base, doubling up to max.
    #[serde(serialize_with = "serialize_duration")]
    pub dlq_retry_base: Duration,
    #[serde(serialize_with = "serialize_duration")]
    pub dlq_retry_max: Duration,
    /// Largest chunk of a big window walked at once, in users.
    pub chunk_users: u64,
    /// Default reconciliation interval for new customers.
    #[serde(serialize_with = "serialize_duration")]
    pub reconcile_every: Duration,
    /// How far back a reconciliation re-reads.
    #[serde(serialize_with = "serialize_duration")]
    pub reconcile_lookback: Duration,
    /// Default interval of full scans (deletions, drift) for new customers.
    #[serde(serialize_with = "serialize_duration")]
    pub deletion_scan_every: Duration,
    /// A scan that would delete more than this share of a customer's users,
    /// or more than `deletion_guard_max`, waits for an operator.
    pub deletion_guard_share: f64,
    pub deletion_guard_max: u64,
    /// How long an offboarded customer's state is kept for a restore.
    #[serde(serialize_with = "serialize_duration")]
    pub offboard_retention: Duration,
    /// How long a customer's lease lasts without renewal: after a crash,
    /// another instance takes the customer over within this period.
    #[serde(serialize_with = "serialize_duration")]
    pub lease_period: Duration,
    /// How often an instance renews its leases, re-reads customers, writes
    /// its heartbeat row and live figures, and looks for commands (SQLite).
    #[serde(serialize_with = "serialize_duration")]
    pub heartbeat_every: Duration,
    /// VOMO's `Date` is believed only this close to this machine's clock
    /// (and to the last `Date` accepted).
    #[serde(serialize_with = "serialize_duration")]
    pub max_clock_skew: Duration,
}

/// A daily span of UTC hours; may wrap midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    pub start_minute: u32,
    pub end_minute: u32,
}

impl HourRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("invalid hours {text:?}; write them like \"22:00-06:00\" (UTC)");
        let minute = |part: &str| -> Result<u32, String> {
            let (h, m) = part.trim().split_once(':').ok_or_else(err)?;
            let (h, m): (u32, u32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
            if h > 23 || m > 59 {
                return Err(err());
            }
            Ok(h * 60 + m)
        };
        let (start, end) = text.split_once('-').ok_or_else(err)?;
        Ok(Self { start_minute: minute(start)?, end_minute: minute(end)? })
    }

    /// True when `minute_of_day` (UTC) falls inside the span.
    pub fn contains(&self, minute_of_day: u32) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start_minute || minute_of_day < self.end_minute
        }
    }
}

impl Serialize for HourRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        s.serialize_str(&format!("{}-{}", hm(self.start_minute), hm(self.end_minute)))
    }
}

/// Settings of `vomo-sync headless`.
#[derive(Debug, Clone, Serialize)]
pub struct HeadlessSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: std::net::SocketAddr,
}

/// Settings of the console.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleSettings {
    /// `dark` or `light`.
    pub theme: String,
    /// Remapped keys: action name → key (checked when the console starts).
    pub keys: std::collections::BTreeMap<String, String>,
}

fn resolve_console(section: &file::ConsoleSection) -> Result<ConsoleSettings, ConfigError> {
    let theme = section.theme.clone().unwrap_or_else(|| "dark".to_owned());
    if !["dark", "light"].contains(&theme.as_str()) {
        return Err(ConfigError::Invalid {
            origin: "(config file)".to_owned(),
            line: None,
            key: "console.theme".to_owned(),
            message: format!("{theme:?} is not a theme; use \"dark\" or \"light\""),
        });
    }
    Ok(ConsoleSettings { theme, keys: section.keys.clone().unwrap_or_default() })
}

fn resolve_alerts(section: &file::AlertsSection) -> Result<AlertSettings, ConfigError> {
    if let Some(url) = &section.webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::Invalid {
            origin: "(file or VOMO_SYNC_ALERTS_WEBHOOK)".to_owned(),
            line: None,
            key: "alerts.webhook".to_owned(),
            message: format!("{} is not an http:// or https:// URL", redact_secret_url(url)),
        });
    }
    if let Some(command) = &section.command
        && command.first().is_none_or(|program| program.trim().is_empty())
    {
        return Err(ConfigError::Invalid {
            origin: "(file)".to_owned(),
            line: None,
            key: "alerts.command".to_owned(),
            message: "needs a program, e.g. [\"/usr/local/bin/page-oncall\", \"--team\", \"sync\"]"
                .to_owned(),
        });
    }
    Ok(AlertSettings {
        webhook: section.webhook.clone(),
        command: section.command.clone(),
        lag_above: section.lag_above.map_or(Duration::from_secs(3600), |d| d.0),
        dlq_older_than: section.dlq_older_than.map_or(Duration::from_secs(3 * 86_400), |d| d.0),
        cooldown: section.cooldown.map_or(Duration::from_secs(3600), |d| d.0),
    })
}

/// Where and when `headless` sends alerts.
#[derive(Debug, Clone, Serialize)]
pub struct AlertSettings {
    /// POSTed a JSON alert on each transition.
    pub webhook: Option<String>,
    /// Run with the JSON alert on stdin on each transition (program and
    /// arguments, no shell). Neither this nor `webhook`: no alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(serialize_with = "serialize_duration")]
    pub lag_above: Duration,
    #[serde(serialize_with = "serialize_duration")]
    pub dlq_older_than: Duration,
    #[serde(serialize_with = "serialize_duration")]
    pub cooldown: Duration,
}

/// Files the process reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: PathBuf,
    pub config_file_exists: bool,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Paths,
    pub state: StateLocation,
    pub vomo: VomoSettings,
    pub log: LogSettings,
    pub sync: SyncSettings,
    pub headless: HeadlessSettings,
    pub console: ConsoleSettings,
    pub alerts: AlertSettings,
    pub dest: DestSettings,
    /// Non-fatal notes found while loading (unknown variables); shown once
    /// logging is up.
    pub warnings: Vec<String>,
}

impl Config {
    /// Builds the configuration from the process environment and flags.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(overrides, &vars, &Dirs::platform()?)
    }

    /// Builds the configuration from explicit inputs (used by tests).
    pub fn load_from(
        overrides: &Overrides,
        vars: &[(String, String)],
        dirs: &Dirs,
    ) -> Result<Self, ConfigError> {
        let env_config_file =
            vars.iter().find(|(k, _)| k == "VOMO_SYNC_CONFIG").map(|(_, v)| PathBuf::from(v));
        let explicit_file = overrides.config_file.clone().or(env_config_file);
        let config_file = explicit_file.clone().unwrap_or_else(|| dirs.config_dir.join("config.toml"));
        let file_layer = match FileConfig::read(&config_file)? {
            Some(layer) => Some(layer),
            None if explicit_file.is_some() => {
                return Err(ConfigError::Missing { path: config_file.display().to_string() });
            }
            None => None,
        };
        let config_file_exists = file_layer.is_some();
        let (env, warnings) = layer::env_layer(vars)?;
        let merged = file_layer.unwrap_or_default().over(env);
        Self::resolve(merged, overrides, dirs, config_file, config_file_exists, warnings)
    }

    fn resolve(
        merged: FileConfig,
        overrides: &Overrides,
        dirs: &Dirs,
        config_file: PathBuf,
        config_file_exists: bool,
        warnings: Vec<String>,
    ) -> Result<Self, ConfigError> {
        let state = match &overrides.state {
            Some(flag) => StateLocation::parse(flag)
                .map_err(|message| ConfigError::Flag { flag: "--state".to_owned(), message })?,
            None => match merged.state.url {
                Some(url) => StateLocation::parse(&url).map_err(|message| ConfigError::Invalid {
                    origin: "(file or VOMO_SYNC_STATE)".to_owned(),
                    line: None,
                    key: "state.url".to_owned(),
                    message,
                })?,
                None => StateLocation::Sqlite(dirs.data_dir.join("state.db")),
            },
        };
        let base_url = merged.vomo.base_url.unwrap_or_else(|| DEFAULT_VOMO_URL.to_owned());
        validate_base_url(&base_url).map_err(|message| ConfigError::Invalid {
            origin: "(file or VOMO_SYNC_VOMO_BASE_URL)".to_owned(),
            line: None,
            key: "vomo.base_url".to_owned(),
            message,
        })?;
        let sync = resolve_sync(&merged.sync)?;
        let listen_text = merged.headless.listen.unwrap_or_else(|| "127.0.0.1:9187".to_owned());
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            origin: "(file or VOMO_SYNC_HEADLESS_LISTEN)".to_owned(),
            line: None,
            key: "headless.listen".to_owned(),
            message: format!("{listen_text:?} is not an address like 127.0.0.1:9187"),
        })?;
        let console = resolve_console(&merged.console)?;
        let alerts = resolve_alerts(&merged.alerts)?;
        let dest = resolve_dest(&merged.dest)?;
        check_alert_webhook(&alerts, &dest)?;
        let level = overrides.log_level.clone().or(merged.log.level).unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| ConfigError::Flag {
            flag: "log level".to_owned(),
            message: format!("invalid filter {level:?}: {e}"),
        })?;
        Ok(Self {
            paths: Paths {
                config_file,
                config_file_exists,
                data_dir: dirs.data_dir.clone(),
                config_dir: dirs.config_dir.clone(),
            },
            state,
            vomo: VomoSettings {
                base_url,
                connect_timeout: merged.vomo.connect_timeout.map_or(Duration::from_secs(10), |d| d.0),
                request_timeout: merged.vomo.request_timeout.map_or(Duration::from_secs(30), |d| d.0),
                allow_insecure_http: merged.vomo.allow_insecure_http.is_some_and(|b| b.0),
                max_body: max_body(merged.vomo.max_body)?,
            },
            log: LogSettings {
                level,
                format: overrides.log_format.or(merged.log.format).unwrap_or_default(),
                dir: merged.log.dir.unwrap_or_else(|| dirs.data_dir.join("logs")),
            },
            sync,
            headless: HeadlessSettings { listen },
            console,
            alerts,
            dest,
            warnings,
        })
    }

    /// The effective configuration as TOML, secrets redacted, with the paths
    /// of every file the process uses as leading comments.
    pub fn render(&self) -> String {
        #[derive(Serialize)]
        struct View<'a> {
            state: StateView,
            vomo: &'a VomoSettings,
            log: &'a LogSettings,
            sync: &'a SyncSettings,
            headless: &'a HeadlessSettings,
            console: &'a ConsoleSettings,
            alerts: AlertSettings,
            dest: &'a DestSettings,
        }
        #[derive(Serialize)]
        struct StateView {
            url: String,
        }
        let view = View {
            state: StateView { url: self.state.display_redacted() },
            vomo: &self.vomo,
            log: &self.log,
            sync: &self.sync,
            headless: &self.headless,
            console: &self.console,
            alerts: AlertSettings {
                webhook: self.alerts.webhook.as_deref().map(redact_secret_url),
                ..self.alerts.clone()
            },
            dest: &self.dest,
        };
        let file_note = if self.paths.config_file_exists { "" } else { " (not present; defaults apply)" };
        let state_path = match &self.state {
            StateLocation::Sqlite(path) => path.display().to_string(),
            StateLocation::Postgres(_) => format!("PostgreSQL {}", self.state.display_redacted()),
        };
        let body = toml::to_string_pretty(&view).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        format!(
            "# config file: {}{file_note}\n# state:       {state_path}\n# log dir:     {}\n# master key:  {}\n\n{body}",
            self.paths.config_file.display(),
            self.log.dir.display(),
            self.master_key_file().display(),
        )
    }

    /// The key file that encrypts tokens at rest when `VOMO_SYNC_MASTER_KEY`
    /// is not set.
    pub fn master_key_file(&self) -> PathBuf {
        self.paths.config_dir.join("master.key")
    }
}

/// 16 MiB: far above any page VOMO sends (15 users), far below harm.
const DEFAULT_MAX_BODY: u64 = 16 << 20;

fn max_body(raw: Option<file::ByteSize>) -> Result<u64, ConfigError> {
    let value = raw.map_or(DEFAULT_MAX_BODY, |b| b.0);
    if value < 64 << 10 {
        return Err(ConfigError::Invalid {
            origin: "(file or VOMO_SYNC_VOMO_MAX_BODY)".to_owned(),
            line: None,
            key: "vomo.max_body".to_owned(),
            message: format!("{value} bytes is too small for a page of users; use at least 64KiB"),
        });
    }
    Ok(value)
}

fn resolve_dest(section: &file::DestSection) -> Result<DestSettings, ConfigError> {
    let hosts = section.allow_private_hosts.clone().map(|l| l.0).unwrap_or_default();
    crate::outbound::AllowList::parse(&hosts).map_err(|message| ConfigError::Invalid {
        origin: "(file or VOMO_SYNC_DEST_ALLOW_PRIVATE_HOSTS)".to_owned(),
        line: None,
        key: "dest.allow_private_hosts".to_owned(),
        message,
    })?;
    Ok(DestSettings { allow_private_hosts: hosts })
}

/// The alert webhook follows the outbound rules like every destination:
/// an address written in it must be public or allowed.
fn check_alert_webhook(alerts: &AlertSettings, dest: &DestSettings) -> Result<(), ConfigError> {
    let Some(url) = &alerts.webhook else { return Ok(()) };
    let invalid = |message: String| ConfigError::Invalid {
        origin: "(file or VOMO_SYNC_ALERTS_WEBHOOK)".to_owned(),
        line: None,
        key: "alerts.webhook".to_owned(),
        message,
    };
    let parsed = url::Url::parse(url)
        .map_err(|e| invalid(format!("{} is not a URL ({e})", redact_secret_url(url))))?;
    let policy =
        crate::outbound::OutboundPolicy::from_entries(&dest.allow_private_hosts).map_err(&invalid)?;
    policy.check_url(&parsed).map_err(invalid)
}

fn resolve_sync(raw: &file::SyncSection) -> Result<SyncSettings, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        origin: "(file or environment)".to_owned(),
        line: None,
        key: format!("sync.{key}"),
        message,
    };
    let rate = raw.rate.unwrap_or(crate::domain::RateSetting::Auto);
    let backfill_hours = raw
        .backfill_hours
        .as_deref()
        .map(HourRange::parse)
        .transpose()
        .map_err(|m| invalid("backfill_hours", m))?;
    let max_concurrent_backfills = raw.max_concurrent_backfills.map_or(4, |n| n.0);
    if max_concurrent_backfills == 0 {
        return Err(invalid("max_concurrent_backfills", "must be at least 1".into()));
    }
    let chunk_users = raw.chunk_users.map_or(1500, |n| n.0);
    let deletion_guard_share = raw.deletion_guard_share.map_or(0.02, |n| n.0);
    if !(0.0..=1.0).contains(&deletion_guard_share) {
        return Err(invalid(
            "deletion_guard_share",
            format!("{deletion_guard_share} is not a share between 0 and 1"),
        ));
    }
    let lease_period = raw.lease_period.map_or(Duration::from_secs(60), |d| d.0);
    let heartbeat_every = raw.heartbeat_every.map_or(Duration::from_secs(5), |d| d.0);
    if heartbeat_every.is_zero() || heartbeat_every * 3 > lease_period {
        return Err(invalid(
            "heartbeat_every",
            format!(
                "{} must be more than zero and at most a third of lease_period ({}), so a lease is renewed \
                 several times before it can expire",
                humantime::format_duration(heartbeat_every),
                humantime::format_duration(lease_period)
            ),
        ));
    }
    if chunk_users < 15 {
        return Err(invalid("chunk_users", "must be at least 15 (one page)".into()));
    }
    Ok(SyncSettings {
        settle: raw.settle.map_or(Duration::from_secs(120), |d| d.0),
        poll_every: raw.poll_every.map_or(Duration::from_secs(15 * 60), |d| d.0),
        tail_every: raw.tail_every.map_or(Duration::from_secs(10), |d| d.0),
        rate,
        max_concurrent_backfills,
        backfill_hours,
        request_retries: raw.request_retries.map_or(6, |n| n.0),
        retry_base: raw.retry_base.map_or(Duration::from_secs(1), |d| d.0),
        dlq_retry_base: raw.dlq_retry_base.map_or(Duration::from_secs(30), |d| d.0),
        dlq_retry_max: raw.dlq_retry_max.map_or(Duration::from_secs(6 * 3600), |d| d.0),
        chunk_users,
        reconcile_every: raw.reconcile_every.map_or(Duration::from_secs(24 * 3600), |d| d.0),
        reconcile_lookback: raw.reconcile_lookback.map_or(Duration::from_secs(26 * 3600), |d| d.0),
        deletion_scan_every: raw.deletion_scan_every.map_or(Duration::from_secs(7 * 24 * 3600), |d| d.0),
        deletion_guard_share,
        deletion_guard_max: raw.deletion_guard_max.map_or(500, |n| n.0),
        offboard_retention: raw.offboard_retention.map_or(Duration::from_secs(30 * 24 * 3600), |d| d.0),
        lease_period,
        heartbeat_every,
        max_clock_skew: raw.max_clock_skew.map_or(Duration::from_secs(300), |d| d.0),
    })
}

fn validate_base_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL {text:?} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http(s) URL"));
    }
    Ok(())
}

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Parses a duration given on the command line (`--poll-every 15m`).
pub fn parse_duration_flag(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Checks that `path`'s parent exists or can be created.
pub fn ensure_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(tmp: &Path) -> Dirs {
        Dirs { config_dir: tmp.join("cfg"), data_dir: tmp.join("data") }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn write_config(tmp: &Path, text: &str) -> PathBuf {
        let path = tmp.join("cfg").join("config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_without_any_file() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config::load_from(&Overrides::default(), &[], &dirs(tmp.path())).unwrap();
        assert_eq!(config.state, StateLocation::Sqlite(tmp.path().join("data/state.db")));
        assert_eq!(config.vomo.base_url, DEFAULT_VOMO_URL);
        assert_eq!(config.vomo.request_timeout, Duration::from_secs(30));
        assert_eq!(config.log.format, LogFormat::Text);
        assert!(!config.paths.config_file_exists);
    }

    #[test]
    fn flags_beat_environment_beats_file() {
        let tmp = tempfile::tempdir().unwrap();
        write_config(
            tmp.path(),
            "[state]\nurl = \"/from/file.db\"\n[vomo]\nrequest_timeout = \"5s\"\nbase_url = \"http://file/v1\"\n[log]\nformat = \"json\"\n",
        );
        let env = vars(&[("VOMO_SYNC_STATE", "/from/env.db"), ("VOMO_SYNC_VOMO_REQUEST_TIMEOUT", "7s")]);
        let d = dirs(tmp.path());
        let config = Config::load_from(&Overrides::default(), &env, &d).unwrap();
        assert_eq!(config.state, StateLocation::Sqlite("/from/env.db".into()));
        assert_eq!(config.vomo.request_timeout, Duration::from_secs(7));
        assert_eq!(config.vomo.base_url, "http://file/v1");
        assert_eq!(config.log.format, LogFormat::Json);

        let flags = Overrides {
            state: Some("postgres://u:pw@localhost/db".into()),
            log_format: Some(LogFormat::Text),
            ..Overrides::default()
        };
        let config = Config::load_from(&flags, &env, &d).unwrap();
        assert_eq!(config.state, StateLocation::Postgres("postgres://u:pw@localhost/db".into()));
        assert_eq!(config.log.format, LogFormat::Text);
        let shown = config.render();
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(shown.contains("postgres://u:***@localhost/db"), "{shown}");
    }

    #[test]
    fn a_bad_value_names_file_line_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(
            tmp.path(),
            "[vomo]\nbase_url = \"http://x/v1\"\nrequest_timeout = \"5 fortnights\"\n",
        );
        let err = Config::load_from(&Overrides::default(), &[], &dirs(tmp.path())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("vomo.request_timeout"), "{text}");
    }

    #[test]
    fn an_unknown_key_and_a_syntax_error_are_located() {
        let tmp = tempfile::tempdir().unwrap();
        write_config(tmp.path(), "[log]\nlevel = \"info\"\nfromat = \"json\"\n");
        let text = Config::load_from(&Overrides::default(), &[], &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("line 3") && text.contains("fromat"), "{text}");

        write_config(tmp.path(), "[log\nlevel = 1\n");
        let text = Config::load_from(&Overrides::default(), &[], &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("line 1"), "{text}");

        write_config(tmp.path(), "[log]\nformat = \"xml\"\n");
        let text = Config::load_from(&Overrides::default(), &[], &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("line 2") && text.contains("log.format") && text.contains("json"), "{text}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let tmp = tempfile::tempdir().unwrap();
        let env = vars(&[("VOMO_SYNC_VOMO_CONNECT_TIMEOUT", "soon")]);
        let text = Config::load_from(&Overrides::default(), &env, &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("VOMO_SYNC_VOMO_CONNECT_TIMEOUT"), "{text}");
        let env = vars(&[("VOMO_SYNC_STAT", "/typo.db")]);
        let config = Config::load_from(&Overrides::default(), &env, &dirs(tmp.path())).unwrap();
        assert!(config.warnings[0].contains("VOMO_SYNC_STAT"));
    }

    #[test]
    fn an_explicit_config_file_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let flags = Overrides { config_file: Some(tmp.path().join("nope.toml")), ..Overrides::default() };
        let text = Config::load_from(&flags, &[], &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("nope.toml") && text.contains("does not exist"), "{text}");
    }

    #[test]
    fn the_multi_instance_example_parses() {
        let text = include_str!("../../assets/multi-instance.example.toml");
        let layer = FileConfig::parse(text, "assets/multi-instance.example.toml").unwrap();
        assert!(layer.state.url.as_deref().is_some_and(|u| u.starts_with("postgres://")));
        assert_eq!(layer.headless.listen.as_deref(), Some("0.0.0.0:9187"));
    }

    #[test]
    fn the_example_config_parses_and_states_the_defaults() {
        let text = include_str!("../../assets/config.example.toml");
        let layer = FileConfig::parse(text, "assets/config.example.toml").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        let from_example =
            Config::resolve(layer, &Overrides::default(), &d, PathBuf::new(), true, Vec::new()).unwrap();
        let defaults = Config::load_from(&Overrides::default(), &[], &d).unwrap();
        assert_eq!(
            from_example.render().split_once("\n\n").unwrap().1,
            defaults.render().split_once("\n\n").unwrap().1
        );
    }

    #[test]
    fn sync_settings_from_file_and_environment() {
        let tmp = tempfile::tempdir().unwrap();
        write_config(tmp.path(), "[sync]\nrate = 1.5\nbackfill_hours = \"22:00-06:00\"\n");
        let env = vars(&[("VOMO_SYNC_SYNC_MAX_CONCURRENT_BACKFILLS", "2"), ("VOMO_SYNC_SYNC_SETTLE", "5s")]);
        let config = Config::load_from(&Overrides::default(), &env, &dirs(tmp.path())).unwrap();
        assert_eq!(config.sync.rate, crate::domain::RateSetting::Cap(1.5));
        assert_eq!(config.sync.max_concurrent_backfills, 2);
        assert_eq!(config.sync.settle, Duration::from_secs(5));
        let hours = config.sync.backfill_hours.unwrap();
        assert!(hours.contains(23 * 60) && hours.contains(60) && !hours.contains(12 * 60));
        let env = vars(&[("VOMO_SYNC_SYNC_RATE", "fast")]);
        let text = Config::load_from(&Overrides::default(), &env, &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("VOMO_SYNC_SYNC_RATE"), "{text}");
        write_config(tmp.path(), "[sync]\nbackfill_hours = \"late\"\n");
        let text = Config::load_from(&Overrides::default(), &[], &dirs(tmp.path())).unwrap_err().to_string();
        assert!(text.contains("sync.backfill_hours"), "{text}");
    }

    #[test]
    fn state_locations_parse() {
        assert_eq!(StateLocation::parse("sqlite:/a/b.db").unwrap(), StateLocation::Sqlite("/a/b.db".into()));
        assert_eq!(
            StateLocation::parse("sqlite:///a/b.db").unwrap(),
            StateLocation::Sqlite("/a/b.db".into())
        );
        assert!(matches!(StateLocation::parse("postgresql://h/db").unwrap(), StateLocation::Postgres(_)));
        assert!(StateLocation::parse("mysql://u:secret@h/db").unwrap_err().contains("***"));
        assert!(StateLocation::parse(" ").is_err());
    }
}
