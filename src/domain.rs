//! Plain data shared by every layer: VOMO users, time windows, changes and the
//! token wrapper. No IO and no async here, so every layer may depend on it.
//! Projects, Project Dates and participations live in [`projects`].

pub mod projects;

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

pub use projects::{DateId, DateRef, Hours, Participation, Project, ProjectDate, ProjectId};

/// A VOMO user id. Ids are only unique within VOMO, never across customers.
pub type VomoUserId = i64;

/// The e-mail domain and prefix VOMO uses when it anonymises an account in
/// place instead of deleting it (vomo-api.md §6).
const ANONYMISED_PREFIX: &str = "vomodeleteduser";
const ANONYMISED_DOMAIN: &str = "@vomo.org";

/// A VOMO user in the list shape (`UserResource`, vomo-api.md §5.4).
///
/// Optional fields are `None` when VOMO left them out or sent `null`; status and
/// role values are kept as VOMO's text because no enum is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: VomoUserId,
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub email: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    #[serde(serialize_with = "serialize_vomo_time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "serialize_vomo_time")]
    pub updated_at: DateTime<Utc>,
    pub user_status: Option<String>,
    pub membership_status: Option<String>,
    pub membership_role: Option<String>,
}

impl User {
    /// True for accounts VOMO anonymised on a deletion request
    /// (`vomodeleteduser<digits>@vomo.org`); downstream they are deletions.
    pub fn is_anonymised(&self) -> bool {
        let email = self.email.to_ascii_lowercase();
        email.starts_with(ANONYMISED_PREFIX) && email.ends_with(ANONYMISED_DOMAIN)
    }

    /// A digest of every field of this version of the user. Two reads hash the
    /// same exactly when a destination would store the same row, so an unchanged
    /// user costs no destination write.
    pub fn content_hash(&self) -> ContentHash {
        const ABSENT: &str = "\u{0}";
        let mut hasher = Sha256::new();
        hasher.update(self.id.to_le_bytes());
        let fields = [
            self.first_name.as_str(),
            &self.last_name,
            &self.full_name,
            &self.email,
            self.address.as_deref().unwrap_or(ABSENT),
            self.phone.as_deref().unwrap_or(ABSENT),
            self.birthday.as_deref().unwrap_or(ABSENT),
            self.gender.as_deref().unwrap_or(ABSENT),
            self.user_status.as_deref().unwrap_or(ABSENT),
            self.membership_status.as_deref().unwrap_or(ABSENT),
            self.membership_role.as_deref().unwrap_or(ABSENT),
        ];
        for field in fields {
            // Length-prefixed so ("ab", "c") and ("a", "bc") differ.
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        hasher.update(self.created_at.timestamp().to_le_bytes());
        hasher.update(self.updated_at.timestamp().to_le_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        ContentHash(bytes)
    }
}

/// A 128-bit digest of a user version (truncated SHA-256: collisions between
/// two versions of one user are not a realistic concern at this width).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 16]);

impl ContentHash {
    /// A hash of arbitrary bytes (what identifies an unreadable record).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// VOMO renders timestamps as `YYYY-MM-DDTHH:MM:SS+00:00` (vomo-api.md §10.12).
pub fn format_vomo_time(at: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written out rather than through `format`: parsing the pattern each time
    // shows up in profiles of large syncs.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn serialize_vomo_time<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_vomo_time(at))
}

/// RFC 3339 in UTC with whole seconds, the form used in our own output.
pub fn format_rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The Unix epoch: where every customer's checkpoint starts, so the backfill is
/// simply the first window.
pub fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(0, 0).single().unwrap_or_default()
}

/// Truncates to the whole second; VOMO filters and timestamps are
/// second-precision.
pub fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(at.timestamp(), 0).single().unwrap_or(at)
}

/// A closed range of `updated_at` seconds, both ends inclusive, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// A window over whole seconds; `from` after `to` yields `None`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Self> {
        let (from, to) = (whole_second(from), whole_second(to));
        (from <= to).then_some(Self { from, to })
    }

    /// Number of whole seconds the window covers (at least 1).
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).num_seconds() + 1
    }

    /// Splits at `at`: `[from, at-1s]` and `[at, to]`. `None` when `at` is not
    /// strictly inside, i.e. when the window is a single second.
    pub fn split_at(&self, at: DateTime<Utc>) -> Option<(Self, Self)> {
        let at = whole_second(at);
        if at <= self.from || at > self.to {
            return None;
        }
        let left_end = at - chrono::Duration::seconds(1);
        Some((Self { from: self.from, to: left_end }, Self { from: at, to: self.to }))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} .. {}]", format_rfc3339(&self.from), format_rfc3339(&self.to))
    }
}

/// What a destination is told about one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    #[serde(rename = "user.created")]
    Created,
    #[serde(rename = "user.updated")]
    Updated,
    #[serde(rename = "user.deleted")]
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "user.created",
            Self::Updated => "user.updated",
            Self::Deleted => "user.deleted",
        }
    }
}

/// How fast vomo-sync may call VOMO for a customer: `auto` follows the
/// limit VOMO declares in `X-RateLimit-*` from a safe start; a number is a
/// cap in requests per second (0 = none) that a lower declared limit still
/// undercuts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSetting {
    Auto,
    Cap(f64),
}

impl RateSetting {
    /// The setting as a customer's settings store it.
    pub fn apply(self, settings: &mut CustomerSettings) {
        match self {
            Self::Auto => settings.rate_auto = true,
            Self::Cap(rate) => (settings.rate_auto, settings.rate_per_s) = (false, rate),
        }
    }

    pub fn of(settings: &CustomerSettings) -> Self {
        if settings.rate_auto { Self::Auto } else { Self::Cap(settings.rate_per_s) }
    }
}

impl std::str::FromStr for RateSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        match text.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(Self::Cap(rate)),
            _ => Err(format!(
                "{text:?} is not a request rate; use \"auto\" (follow what VOMO declares), a number of requests per second, or 0 for no cap"
            )),
        }
    }
}

impl fmt::Display for RateSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cap(rate) if *rate <= 0.0 => f.write_str("unlimited"),
            Self::Cap(rate) => write!(f, "{rate}/s"),
        }
    }
}

impl Serialize for RateSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Cap(rate) => s.serialize_f64(*rate),
        }
    }
}

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(rate) => rate.to_string(),
            Raw::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Per-customer sync settings, stored as JSON with the customer. Fields added
/// later get their default when an older row is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomerSettings {
    /// The most VOMO requests per second for this customer (0 = no cap);
    /// less when VOMO declares less. Ignored when `rate_auto`.
    pub rate_per_s: f64,
    /// Follow the limit VOMO declares in `X-RateLimit-*`, from a safe start
    /// (`--rate auto`). Rows stored before it existed read `false`: their
    /// rate stays the cap it was set as.
    pub rate_auto: bool,
    /// How often to poll for changes, in seconds.
    pub poll_every_secs: u64,
    /// How often the live tail reads between polls, in seconds (0 = off).
    pub tail_every_secs: u64,
    /// How often to reconcile the recent past, in seconds.
    pub reconcile_every_secs: u64,
    /// How often to scan every user for deletions and drift, in seconds.
    pub deletion_scan_every_secs: u64,
    /// Fields the customer's system owns and writes back to VOMO (e.g.
    /// `phone`); empty = one-way sync.
    pub writeback_fields: Vec<String>,
}

impl Default for CustomerSettings {
    fn default() -> Self {
        Self {
            rate_per_s: 3.0,
            rate_auto: false,
            poll_every_secs: 15 * 60,
            tail_every_secs: 10,
            reconcile_every_secs: 24 * 3600,
            deletion_scan_every_secs: 7 * 24 * 3600,
            writeback_fields: Vec::new(),
        }
    }
}

/// One user's change, as the engine hands it to destinations. `user` is the
/// version to write, or `None` for a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub vomo_user_id: VomoUserId,
    pub user: Option<User>,
}

/// Whether a failed change is worth retrying automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Timeouts, 5xx, 429, a destination that is down: retried with backoff.
    Retryable,
    /// Validation errors and other 4xx: wait for an operator.
    Permanent,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FailureClass {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "retryable" => Ok(Self::Retryable),
            "permanent" => Ok(Self::Permanent),
            other => Err(format!("unknown failure class {other:?}")),
        }
    }
}

/// A customer's VOMO API token. The value is only reachable through
/// [`ApiToken::expose`]; `Debug` and `Display` show the fingerprint alone.
#[derive(Clone)]
pub struct ApiToken(SecretString);

impl PartialEq for ApiToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl ApiToken {
    /// Wraps a token, trimming the whitespace a token file usually ends with.
    pub fn new(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| Self(SecretString::from(trimmed.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The last four characters, the only part of a token ever displayed.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.expose())
    }
}

/// `…abcd` for a secret ending in `abcd`; short secrets show nothing.
pub fn fingerprint_of(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("…{tail}")
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({})", self.fingerprint())
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// Declares a text-backed enum with `as_str`, `Display` and `FromStr`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }
    };
}

pub(crate) use text_enum;

text_enum!(
    /// Where a customer is in its lifecycle.
    CustomerStatus {
        Onboarding => "onboarding",
        Backfilling => "backfilling",
        Active => "active",
        Paused => "paused",
        TokenRejected => "token_rejected",
        Offboarded => "offboarded",
    }
);

text_enum!(
    /// What VOMO last said about a customer's token.
    TokenState {
        Valid => "valid",
        Rejected => "rejected",
        Forbidden => "forbidden",
        Unchecked => "unchecked",
    }
);

text_enum!(
    /// Kinds of work recorded as runs.
    RunKind {
        Backfill => "backfill",
        Poll => "poll",
        Reconcile => "reconcile",
        Deletions => "deletions",
        Writeback => "writeback",
        DlqRetry => "dlq_retry",
    }
);

text_enum!(
    /// How a run ended.
    RunOutcome {
        Running => "running",
        Ok => "ok",
        Failed => "failed",
        Aborted => "aborted",
        NeedsConfirmation => "needs_confirmation",
        Confirmed => "confirmed",
        Dismissed => "dismissed",
    }
);

/// A duration for people, in one unit: "42s", "3m", "2h", "4d".
pub fn duration_text(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// What a run counted. Stored as a JSON object in the run history (old
/// rows without a field read it as 0); every reader names fields, none
/// looks counts up by string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Users read (with repeats when pages shifted).
    pub users_seen: i64,
    pub created: i64,
    pub updated: i64,
    pub deleted: i64,
    pub unchanged: i64,
    pub dlq_parked: i64,
    /// Reconciliation causes: changes the polls should have delivered.
    pub missed_create: i64,
    pub missed_update: i64,
    /// Content that changed without `updated_at` moving.
    pub drift: i64,
    /// Differences already owned by a pending DLQ entry.
    pub dlq_held: i64,
    /// Rows a readable destination lost or that were changed there.
    pub lost_downstream: i64,
    /// The walk: chunks completed, walks that failed verification, probes
    /// split before walking, crowded seconds accepted unverified.
    pub chunks: i64,
    pub failed_walks: i64,
    pub probes_split: i64,
    pub unverified_accepted: i64,
    /// A full scan's deletion check.
    pub deletion_candidates: i64,
    pub moved_mid_scan: i64,
    pub confirmed_gone: i64,
    pub deletion_threshold: i64,
    /// Users VOMO counted in the run's window when it was first read (0
    /// until known): with `users_seen`, how much of a stopped backfill is
    /// left.
    pub window_total: i64,
}

impl RunCounts {
    /// What a reconciliation found and repaired.
    pub fn repaired(&self) -> i64 {
        self.missed_create + self.missed_update + self.drift + self.lost_downstream
    }
}

/// A count as a stored number (counts never come near `i64::MAX`).
pub fn count_of(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A span in words for messages (`73 years`, `2 days`, `5 minutes`, `1 second`).
pub fn span_words(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    let (n, unit) = match secs {
        s if s < 120 => (s, "second"),
        s if s < 7_200 => (s / 60, "minute"),
        s if s < 172_800 => (s / 3_600, "hour"),
        s if s < 2 * 31_557_600 => (s / 86_400, "day"),
        s => (s / 31_557_600, "year"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// A user for unit tests across the crate.
#[cfg(test)]
pub(crate) fn sample_user() -> User {
    #[allow(clippy::unwrap_used)] // a fixed, valid date
    let at = Utc.with_ymd_and_hms(2025, 11, 19, 10, 15, 0).unwrap();
    User {
        id: 7,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        full_name: "Ada Lovelace".into(),
        email: "ada@example.org".into(),
        address: None,
        phone: Some("555".into()),
        birthday: Some("1815-12-10".into()),
        gender: Some("F".into()),
        created_at: at,
        updated_at: at,
        user_status: Some("VERIFIED".into()),
        membership_status: Some("ACCEPTED".into()),
        membership_role: Some("VOLUNTEER".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        sample_user()
    }

    #[test]
    fn hash_changes_with_any_field_and_not_otherwise() {
        let a = user();
        assert_eq!(a.content_hash(), user().content_hash());
        let mut b = user();
        b.phone = None;
        assert_ne!(a.content_hash(), b.content_hash());
        let mut c = user();
        c.updated_at += chrono::Duration::seconds(1);
        assert_ne!(a.content_hash(), c.content_hash());
        let mut d = user();
        d.first_name = "Ad".into();
        d.last_name = "aLovelace".into();
        assert_ne!(a.content_hash(), d.content_hash());
        let hex = a.content_hash().to_hex();
        assert_eq!(ContentHash::from_hex(&hex), Some(a.content_hash()));
    }

    #[test]
    fn anonymised_accounts_are_recognised() {
        let mut u = user();
        assert!(!u.is_anonymised());
        u.email = "VomoDeletedUser1234@vomo.org".into();
        assert!(u.is_anonymised());
        u.email = "vomodeleteduser1234@vomo.org.evil.com".into();
        assert!(!u.is_anonymised());
    }

    #[test]
    fn token_debug_shows_only_fingerprint() {
        let token = ApiToken::new("  eyJhbGciOiJIUzI1NiJ9.secret-part-xyz9\n").unwrap();
        let shown = format!("{token:?} {token}");
        assert!(!shown.contains("secret-part"), "{shown}");
        assert!(shown.contains("…xyz9"), "{shown}");
        assert_eq!(token.expose(), "eyJhbGciOiJIUzI1NiJ9.secret-part-xyz9");
        assert!(ApiToken::new("  \n").is_none());
    }

    #[test]
    fn windows_split_on_whole_seconds() {
        let from = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let to = from + chrono::Duration::seconds(10);
        let w = Window::new(from, to).unwrap();
        assert_eq!(w.seconds(), 11);
        let (l, r) = w.split_at(from + chrono::Duration::seconds(5)).unwrap();
        assert_eq!(l.to, from + chrono::Duration::seconds(4));
        assert_eq!(r.from, from + chrono::Duration::seconds(5));
        assert_eq!(l.seconds() + r.seconds(), w.seconds());
        assert!(w.split_at(from).is_none());
        let single = Window::new(from, from).unwrap();
        assert!(single.split_at(from).is_none());
        assert!(Window::new(to, from).is_none());
    }

    #[test]
    fn user_serialises_with_vomo_timestamps() {
        let json = serde_json::to_value(user()).unwrap();
        assert_eq!(json["updated_at"], "2025-11-19T10:15:00+00:00");
        assert_eq!(json["id"], 7);
    }
}
