//! The raw shape of the TOML config file and of the `VOMO_SYNC_*` environment
//! overrides: every field optional, unknown keys refused. Parsing errors name
//! the source, the line and the key; validation and defaults live in
//! [`super`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// One layer of settings (the file, or the environment). `None` means "not set
/// here", so layers can be stacked with [`FileConfig::over`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub state: StateSection,
    #[serde(default)]
    pub vomo: VomoSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub headless: HeadlessSection,
    #[serde(default)]
    pub console: ConsoleSection,
    #[serde(default)]
    pub alerts: AlertsSection,
    #[serde(default)]
    pub dest: DestSection,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestSection {
    /// Private, loopback or link-local addresses outbound destinations may
    /// reach: addresses, CIDRs or host:port (a list, or comma-separated
    /// text as the environment gives it).
    pub allow_private_hosts: Option<StringList>,
}

/// A list written as a TOML array or as comma-separated text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        let items = match Raw::deserialize(d)? {
            Raw::List(list) => list,
            Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
        };
        Ok(Self(items.into_iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect()))
    }
}

/// A size in bytes written as a number or with a unit (`"16MiB"`, `"512 KiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Self(n)),
            Raw::Text(text) => parse_byte_size(&text).map(Self).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"16MiB"`-style sizes.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("invalid size {text:?}; write it like \"16MiB\", \"512KiB\" or a number of bytes");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).ok_or_else(bad)
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    pub webhook: Option<String>,
    pub command: Option<Vec<String>>,
    pub lag_above: Option<HumanDuration>,
    pub dlq_older_than: Option<HumanDuration>,
    pub cooldown: Option<HumanDuration>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    pub theme: Option<String>,
    /// Action name → key.
    pub keys: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// A SQLite file path, a `sqlite:` URL or a `postgres://` URL.
    pub url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VomoSection {
    pub base_url: Option<String>,
    pub connect_timeout: Option<HumanDuration>,
    pub request_timeout: Option<HumanDuration>,
    pub allow_insecure_http: Option<Lenient<bool>>,
    pub max_body: Option<ByteSize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub level: Option<String>,
    pub format: Option<LogFormat>,
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    pub settle: Option<HumanDuration>,
    pub poll_every: Option<HumanDuration>,
    pub tail_every: Option<HumanDuration>,
    pub rate: Option<crate::domain::RateSetting>,
    pub max_concurrent_backfills: Option<Lenient<usize>>,
    pub backfill_hours: Option<String>,
    pub request_retries: Option<Lenient<u32>>,
    pub retry_base: Option<HumanDuration>,
    pub dlq_retry_base: Option<HumanDuration>,
    pub dlq_retry_max: Option<HumanDuration>,
    pub chunk_users: Option<Lenient<u64>>,
    pub reconcile_every: Option<HumanDuration>,
    pub reconcile_lookback: Option<HumanDuration>,
    pub deletion_scan_every: Option<HumanDuration>,
    pub deletion_guard_share: Option<Lenient<f64>>,
    pub deletion_guard_max: Option<Lenient<u64>>,
    pub offboard_retention: Option<HumanDuration>,
    pub lease_period: Option<HumanDuration>,
    pub heartbeat_every: Option<HumanDuration>,
    pub max_clock_skew: Option<HumanDuration>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadlessSection {
    pub listen: Option<String>,
}

/// A number written as a TOML number or as text (environment variables are
/// always text).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lenient<T>(pub T);

impl<'de, T> Deserialize<'de> for Lenient<T>
where
    T: std::str::FromStr + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<T> {
            Value(T),
            Text(String),
        }
        match Raw::<T>::deserialize(d)? {
            Raw::Value(value) => Ok(Self(value)),
            Raw::Text(text) => text
                .trim()
                .parse()
                .map(Self)
                .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a valid number"))),
        }
    }
}

/// How non-console commands write their log lines to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A duration written as humans do (`"15m"`, `"120s"`, `"1h 30m"`), or a
/// number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(secs) => Ok(Self(Duration::from_secs(secs))),
            Raw::Text(text) => parse_duration(&text).map(Self).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"15m"`-style durations with a message that says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); write it like \"90s\", \"15m\" or \"1h 30m\""))
}

impl FileConfig {
    /// Reads and parses a config file. A missing file is `Ok(None)`.
    pub fn read(path: &Path) -> Result<Option<Self>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ConfigError::Unreadable { path: path.to_owned(), reason: e.to_string() });
            }
        };
        Self::parse(&text, &path.display().to_string()).map(Some)
    }

    /// Parses TOML text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        let located =
            |message: String, key: String, span: Option<std::ops::Range<usize>>| ConfigError::Invalid {
                origin: source.to_owned(),
                line: span.map(|s| line_of(text, s.start)),
                key,
                message,
            };
        let deserializer = toml::de::Deserializer::parse(text)
            .map_err(|e| located(e.message().to_owned(), String::new(), e.span()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            located(inner.message().to_owned(), key, inner.span())
        })
    }

    /// This layer with `other`'s settings on top where `other` sets them.
    pub fn over(self, other: Self) -> Self {
        Self {
            state: StateSection { url: other.state.url.or(self.state.url) },
            vomo: VomoSection {
                base_url: other.vomo.base_url.or(self.vomo.base_url),
                connect_timeout: other.vomo.connect_timeout.or(self.vomo.connect_timeout),
                request_timeout: other.vomo.request_timeout.or(self.vomo.request_timeout),
                allow_insecure_http: other.vomo.allow_insecure_http.or(self.vomo.allow_insecure_http),
                max_body: other.vomo.max_body.or(self.vomo.max_body),
            },
            log: LogSection {
                level: other.log.level.or(self.log.level),
                format: other.log.format.or(self.log.format),
                dir: other.log.dir.or(self.log.dir),
            },
            sync: SyncSection {
                settle: other.sync.settle.or(self.sync.settle),
                poll_every: other.sync.poll_every.or(self.sync.poll_every),
                tail_every: other.sync.tail_every.or(self.sync.tail_every),
                rate: other.sync.rate.or(self.sync.rate),
                max_concurrent_backfills: other
                    .sync
                    .max_concurrent_backfills
                    .or(self.sync.max_concurrent_backfills),
                backfill_hours: other.sync.backfill_hours.or(self.sync.backfill_hours),
                request_retries: other.sync.request_retries.or(self.sync.request_retries),
                retry_base: other.sync.retry_base.or(self.sync.retry_base),
                dlq_retry_base: other.sync.dlq_retry_base.or(self.sync.dlq_retry_base),
                dlq_retry_max: other.sync.dlq_retry_max.or(self.sync.dlq_retry_max),
                chunk_users: other.sync.chunk_users.or(self.sync.chunk_users),
                reconcile_every: other.sync.reconcile_every.or(self.sync.reconcile_every),
                reconcile_lookback: other.sync.reconcile_lookback.or(self.sync.reconcile_lookback),
                deletion_scan_every: other.sync.deletion_scan_every.or(self.sync.deletion_scan_every),
                deletion_guard_share: other.sync.deletion_guard_share.or(self.sync.deletion_guard_share),
                deletion_guard_max: other.sync.deletion_guard_max.or(self.sync.deletion_guard_max),
                offboard_retention: other.sync.offboard_retention.or(self.sync.offboard_retention),
                lease_period: other.sync.lease_period.or(self.sync.lease_period),
                heartbeat_every: other.sync.heartbeat_every.or(self.sync.heartbeat_every),
                max_clock_skew: other.sync.max_clock_skew.or(self.sync.max_clock_skew),
            },
            headless: HeadlessSection { listen: other.headless.listen.or(self.headless.listen) },
            console: ConsoleSection {
                theme: other.console.theme.or(self.console.theme),
                keys: other.console.keys.or(self.console.keys),
            },
            alerts: AlertsSection {
                webhook: other.alerts.webhook.or(self.alerts.webhook),
                command: other.alerts.command.or(self.alerts.command),
                lag_above: other.alerts.lag_above.or(self.alerts.lag_above),
                dlq_older_than: other.alerts.dlq_older_than.or(self.alerts.dlq_older_than),
                cooldown: other.alerts.cooldown.or(self.alerts.cooldown),
            },
            dest: DestSection {
                allow_private_hosts: other.dest.allow_private_hosts.or(self.dest.allow_private_hosts),
            },
        }
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count() + 1
}
