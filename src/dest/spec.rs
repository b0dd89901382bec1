//! Destination specs as operators write them (`--dest`), how they are
//! stored (the whole spec sealed as a secret, a redacted form for display)
//! and the names destinations are recorded under.

use std::fmt;
use std::path::PathBuf;

use crate::config::redact_url;

/// The default table of the PostgreSQL destination.
pub const DEFAULT_TABLE: &str = "vomo_users";

const ACCEPTED: &str = "accepted forms: postgres://user:password@host/db[?table=NAME], \
     webhook:https://host/path,secret-env=VAR (or ,secret-file=PATH), jsonl:/path/to/file.jsonl, \
     hubspot:token-env=VAR (or token-file=PATH)[,base=URL][,object=contacts][,delete=gdpr|archive][,rate=N][,properties=FILE]";

/// HubSpot's API host (US data centre; EU accounts use `base=https://api-eu1.hubapi.com`).
pub const HUBSPOT_BASE: &str = "https://api.hubapi.com";
/// Requests per rolling 10 seconds a HubSpot destination allows itself by
/// default: 80 % of the 100 HubSpot documents for Free and Starter private
/// apps, leaving room for the customer's other apps on the same account.
pub const HUBSPOT_RATE: u32 = 80;

/// A destination spec that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid destination {shown:?}: {reason}; {ACCEPTED}")]
pub struct SpecError {
    /// The spec with any password redacted.
    pub shown: String,
    pub reason: String,
}

/// Where a secret (a webhook's signing secret, a HubSpot token) comes from.
/// Never the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret now (trailing whitespace trimmed).
    pub fn read(&self) -> Result<String, String> {
        let value = match self {
            Self::Env(name) => {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
            }
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?,
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("the secret from {self} is empty"));
        }
        Ok(value)
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// What a HubSpot destination does with VOMO deletions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HubspotDeletes {
    /// Deleted users are archived; anonymised (erased) users are removed
    /// with HubSpot's GDPR delete.
    #[default]
    Gdpr,
    /// Both are archived (restorable in HubSpot for 90 days).
    Archive,
}

impl HubspotDeletes {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gdpr => "gdpr",
            Self::Archive => "archive",
        }
    }
}

/// A HubSpot destination as written in its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubspotSpec {
    /// The private app's access token.
    pub token: SecretSource,
    /// API base URL, no trailing slash.
    pub base: String,
    pub deletes: HubspotDeletes,
    /// Requests per rolling 10 seconds this destination allows itself.
    pub rate: u32,
    /// A TOML file whose `[dest.hubspot.properties]` table maps VOMO fields
    /// to other HubSpot properties for this customer.
    pub properties: Option<PathBuf>,
}

/// A parsed destination.
#[derive(Clone, PartialEq, Eq)]
pub enum DestinationSpec {
    /// A table in the customer's reporting database, created if absent.
    Postgres { url: String, table: String },
    /// Signed batches POSTed to a URL.
    Webhook { url: String, secret: SecretSource },
    /// One event per line appended to a file.
    Jsonl { path: PathBuf },
    /// Contacts in a HubSpot account, upserted by `vomo_user_id`.
    Hubspot(HubspotSpec),
}

impl fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationSpec({})", self.display())
    }
}

impl DestinationSpec {
    /// Parses a `--dest` value.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let spec = spec.trim();
        let fail = |reason: &str| SpecError { shown: shown_spec(spec), reason: reason.to_owned() };
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let mut url = url::Url::parse(spec).map_err(|e| fail(&format!("not a valid URL ({e})")))?;
            let mut table = DEFAULT_TABLE.to_owned();
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter_map(|(k, v)| {
                    if k == "table" {
                        table = v.into_owned();
                        None
                    } else {
                        Some((k.into_owned(), v.into_owned()))
                    }
                })
                .collect();
            if !valid_table(&table) {
                return Err(fail(&format!(
                    "table {table:?} is not a plain SQL name (letters, digits, _; optionally schema.table)"
                )));
            }
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
            return Ok(Self::Postgres { url: url.to_string(), table });
        }
        if let Some(rest) = spec.strip_prefix("webhook:") {
            let (url, secret) = split_secret(rest).ok_or_else(|| {
                fail("a webhook needs a signing secret: add ,secret-env=VAR or ,secret-file=PATH (never the secret itself)")
            })?;
            let parsed = url::Url::parse(url).map_err(|e| fail(&format!("not a valid URL ({e})")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(fail("a webhook URL must be http(s)"));
            }
            return Ok(Self::Webhook { url: url.to_owned(), secret });
        }
        if let Some(options) = spec.strip_prefix("hubspot:") {
            return parse_hubspot(options).map(Self::Hubspot).map_err(|reason| fail(&reason));
        }
        if let Some(path) = spec.strip_prefix("jsonl:") {
            if path.trim().is_empty() {
                return Err(fail("a JSONL destination needs a file path"));
            }
            return Ok(Self::Jsonl { path: PathBuf::from(path.trim()) });
        }
        Err(fail("unknown kind"))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Webhook { .. } => "webhook",
            Self::Jsonl { .. } => "jsonl",
            Self::Hubspot(_) => "hubspot",
        }
    }

    /// The spec as it may be shown: no password, no webhook query string.
    pub fn display(&self) -> String {
        match self {
            Self::Postgres { url, table } => format!("{} (table {table})", redact_url(url)),
            Self::Webhook { url, secret } => {
                // The query may carry a token: show that there is one, not what.
                let shown = match url.split_once('?') {
                    Some((base, _)) => format!("{base}?…"),
                    None => url.clone(),
                };
                format!("webhook {shown} (secret from {secret})")
            }
            Self::Jsonl { path } => format!("jsonl {}", path.display()),
            Self::Hubspot(h) => format!(
                "hubspot {} (token from {}, delete={}, {} requests/10 s{})",
                redact_url(&h.base),
                h.token,
                h.deletes.as_str(),
                h.rate,
                h.properties
                    .as_ref()
                    .map(|p| format!(", properties from {}", p.display()))
                    .unwrap_or_default()
            ),
        }
    }

    /// The spec in the form `parse` accepts; stored sealed, since URLs may
    /// carry passwords or tokens.
    pub fn to_spec_string(&self) -> String {
        match self {
            // `table` is a plain identifier, so it needs no escaping.
            Self::Postgres { url, table } => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}table={table}")
            }
            Self::Webhook { url, secret } => match secret {
                SecretSource::Env(name) => format!("webhook:{url},secret-env={name}"),
                SecretSource::File(path) => format!("webhook:{url},secret-file={}", path.display()),
            },
            Self::Jsonl { path } => format!("jsonl:{}", path.display()),
            Self::Hubspot(h) => {
                let token = match &h.token {
                    SecretSource::Env(name) => format!("token-env={name}"),
                    SecretSource::File(path) => format!("token-file={}", path.display()),
                };
                let properties =
                    h.properties.as_ref().map(|p| format!(",properties={}", p.display())).unwrap_or_default();
                format!(
                    "hubspot:{token},base={},object=contacts,delete={},rate={}{properties}",
                    h.base,
                    h.deletes.as_str(),
                    h.rate
                )
            }
        }
    }
}

/// A spec as it may appear in an error: passwords redacted, and in a HubSpot
/// spec the value of any unknown option hidden (it may be a token pasted in
/// by mistake).
fn shown_spec(spec: &str) -> String {
    let Some(options) = spec.strip_prefix("hubspot:") else { return redact_url(spec) };
    let known = ["token-env", "token-file", "base", "object", "delete", "rate", "properties"];
    let shown: Vec<String> = options
        .split(',')
        .map(|option| match option.split_once('=') {
            Some((key, value)) if known.contains(&key.trim()) => format!("{key}={}", redact_url(value)),
            Some((key, _)) => format!("{key}=***"),
            None => "***".to_owned(),
        })
        .collect();
    format!("hubspot:{}", shown.join(","))
}

/// `token-env=VAR|token-file=PATH[,base=URL][,object=contacts][,delete=gdpr|archive][,rate=N]
/// [,properties=FILE]`.
fn parse_hubspot(options: &str) -> Result<HubspotSpec, String> {
    let mut token = None;
    let mut base = HUBSPOT_BASE.to_owned();
    let mut deletes = HubspotDeletes::default();
    let mut rate = HUBSPOT_RATE;
    let mut properties = None;
    for option in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) =
            option.split_once('=').ok_or_else(|| format!("option {option:?} is not key=value"))?;
        match (key, value) {
            (_, "") => return Err(format!("option {key} needs a value")),
            ("token-env", name) => token = Some(SecretSource::Env(name.to_owned())),
            ("token-file", path) => token = Some(SecretSource::File(PathBuf::from(path))),
            ("properties", path) => properties = Some(PathBuf::from(path)),
            ("base", url) => base = hubspot_base(url)?,
            ("object", "contacts") => {}
            ("object", other) => {
                return Err(format!("object={other} is not supported; only object=contacts"));
            }
            ("delete", "gdpr") => deletes = HubspotDeletes::Gdpr,
            ("delete", "archive") => deletes = HubspotDeletes::Archive,
            ("delete", other) => return Err(format!("delete={other} is not gdpr or archive")),
            ("rate", n) => {
                rate = n.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                    format!("rate={n} is not a number of requests per 10 seconds between 1 and 1000")
                })?
            }
            (other, _) => return Err(format!("unknown option {other:?}")),
        }
    }
    let token = token.ok_or(
        "a HubSpot destination needs its private app token: add token-env=VAR or token-file=PATH (never the token itself)",
    )?;
    Ok(HubspotSpec { token, base, deletes, rate, properties })
}

/// An http(s) base URL without query or fragment, trailing slash removed.
fn hubspot_base(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("base {url:?} is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("a HubSpot base URL must be http(s)".to_owned());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a HubSpot base URL takes no query or fragment".to_owned());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `URL,secret-env=NAME` or `URL,secret-file=PATH`, split at the last option.
fn split_secret(rest: &str) -> Option<(&str, SecretSource)> {
    let at = rest.rfind(",secret-")?;
    let (url, option) = (&rest[..at], &rest[at + 1..]);
    if let Some(name) = option.strip_prefix("secret-env=") {
        return (!name.is_empty()).then(|| (url, SecretSource::Env(name.to_owned())));
    }
    if let Some(path) = option.strip_prefix("secret-file=") {
        return (!path.is_empty()).then(|| (url, SecretSource::File(PathBuf::from(path))));
    }
    None
}

/// `name` or `schema.name`, each a plain identifier (no quoting needed).
pub fn valid_table(table: &str) -> bool {
    let ident = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = table.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| ident(p))
}

/// Names for a customer's destinations: the kind, numbered when a kind
/// repeats (`jsonl`, `jsonl-2`).
pub fn default_names(specs: &[DestinationSpec]) -> Vec<String> {
    let mut names = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let before = specs[..i].iter().filter(|s| s.kind() == spec.kind()).count();
        names.push(if before == 0 {
            spec.kind().to_owned()
        } else {
            format!("{}-{}", spec.kind(), before + 1)
        });
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_specs_take_the_table_out_of_the_url() {
        let spec = DestinationSpec::parse(
            "postgres://rep:pw@db:5432/reporting?table=crm.volunteers&sslmode=require",
        )
        .unwrap();
        let DestinationSpec::Postgres { url, table } = &spec else { panic!() };
        assert_eq!(table, "crm.volunteers");
        assert_eq!(url, "postgres://rep:pw@db:5432/reporting?sslmode=require");
        assert!(!spec.display().contains("pw@"), "{}", spec.display());
        assert_eq!(DestinationSpec::parse(&spec.to_spec_string()).unwrap(), spec);
        let plain = DestinationSpec::parse("postgresql://db/r").unwrap();
        assert!(matches!(plain, DestinationSpec::Postgres { ref table, .. } if table == DEFAULT_TABLE));
        let err = DestinationSpec::parse("postgres://db/r?table=users;drop").unwrap_err();
        assert!(err.to_string().contains("plain SQL name"));
    }

    #[test]
    fn webhooks_need_a_secret_reference() {
        let spec =
            DestinationSpec::parse("webhook:https://hooks.example/vomo?k=1,secret-env=HOOK_SECRET").unwrap();
        assert_eq!(
            spec,
            DestinationSpec::Webhook {
                url: "https://hooks.example/vomo?k=1".into(),
                secret: SecretSource::Env("HOOK_SECRET".into())
            }
        );
        assert!(!spec.display().contains("k=1"));
        assert!(spec.display().contains("https://hooks.example/vomo?…"), "{}", spec.display());
        assert_eq!(DestinationSpec::parse(&spec.to_spec_string()).unwrap(), spec);
        let file =
            DestinationSpec::parse("webhook:http://127.0.0.1:9/h,secret-file=/etc/vomo/hook.key").unwrap();
        assert!(matches!(file, DestinationSpec::Webhook { secret: SecretSource::File(_), .. }));
        let err = DestinationSpec::parse("webhook:https://hooks.example/vomo").unwrap_err();
        assert!(err.to_string().contains("signing secret"), "{err}");
        assert!(DestinationSpec::parse("webhook:ftp://x/y,secret-env=A").is_err());
    }

    #[test]
    fn unknown_specs_name_the_accepted_forms() {
        let err = DestinationSpec::parse("s3://bucket/users").unwrap_err().to_string();
        assert!(err.contains("postgres://") && err.contains("webhook:") && err.contains("jsonl:"), "{err}");
        assert!(DestinationSpec::parse("jsonl:").is_err());
        assert_eq!(
            DestinationSpec::parse("jsonl:/tmp/a.jsonl").unwrap(),
            DestinationSpec::Jsonl { path: "/tmp/a.jsonl".into() }
        );
    }

    #[test]
    fn hubspot_specs_take_options_and_never_the_token() {
        let spec = DestinationSpec::parse("hubspot:token-env=HS_TOKEN").unwrap();
        let DestinationSpec::Hubspot(h) = &spec else { panic!("{spec:?}") };
        assert_eq!(h.token, SecretSource::Env("HS_TOKEN".into()));
        assert_eq!((h.base.as_str(), h.deletes, h.rate), (HUBSPOT_BASE, HubspotDeletes::Gdpr, HUBSPOT_RATE));
        assert_eq!(DestinationSpec::parse(&spec.to_spec_string()).unwrap(), spec);
        assert_eq!(spec.kind(), "hubspot");
        let full = DestinationSpec::parse(
            "hubspot:token-file=/etc/hs.token,base=http://127.0.0.1:9/,object=contacts,delete=archive,rate=40",
        )
        .unwrap();
        let DestinationSpec::Hubspot(h) = &full else { panic!() };
        assert_eq!(h.base, "http://127.0.0.1:9");
        assert_eq!((h.deletes, h.rate), (HubspotDeletes::Archive, 40));
        assert_eq!(DestinationSpec::parse(&full.to_spec_string()).unwrap(), full);
        assert!(full.display().contains("token from file /etc/hs.token"), "{}", full.display());
        for (bad, says) in [
            ("hubspot:base=https://api.hubapi.com", "token-env=VAR"),
            ("hubspot:token-env=A,object=deals", "only object=contacts"),
            ("hubspot:token-env=A,delete=purge", "gdpr or archive"),
            ("hubspot:token-env=A,base=ftp://x", "http(s)"),
            ("hubspot:token-env=A,rate=0", "between 1 and 1000"),
            ("hubspot:token-env=A,token=pat-na1-secret", "unknown option"),
        ] {
            let err = DestinationSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("pat-na1-secret"), "a pasted token is never echoed: {err}");
        }
    }

    #[test]
    fn names_number_repeated_kinds() {
        let specs = ["jsonl:/a", "jsonl:/b", "webhook:http://h/x,secret-env=S"]
            .map(|s| DestinationSpec::parse(s).unwrap());
        assert_eq!(default_names(&specs), ["jsonl", "jsonl-2", "webhook"]);
    }
}
