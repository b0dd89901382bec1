//! Outbound HTTP to addresses that operators and customers choose: webhook
//! destinations, CRM base URLs and the alert webhook. A URL typed at
//! onboarding must not turn vomo-sync against the network it runs in (an
//! unauthenticated admin endpoint on 127.0.0.1, a cloud metadata service on
//! 169.254.169.254), so such requests may not reach loopback, private
//! (RFC 1918, ULA), link-local or unspecified addresses unless the
//! operator's allow-list names them (`dest.allow_private_hosts`).
//!
//! The rule is checked twice: on the URL (an address written in it) and on
//! every address a host name resolves to, at connect time, by the client's
//! own resolver — so a name that resolves elsewhere later (DNS rebinding)
//! is refused too. Guarded clients follow no redirects (a redirect could
//! point anywhere) and use no proxy (it would resolve the name instead).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// An address range (`10.0.0.0/8`, `127.0.0.1`), any port.
    Net { base: IpAddr, prefix: u8 },
    /// A host name or address, on one port or any.
    Host { host: String, port: Option<u16> },
}

/// The private addresses (and host:port pairs) an operator allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Allowed>,
}

impl AllowList {
    /// Parses entries: addresses, CIDRs, `host:port` or `[v6]:port`.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| parse_entry(e.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(|entries| Self { entries })
    }

    /// True when a request to `host` (as written in the URL) on `port`, at
    /// address `ip`, may go ahead.
    pub fn permits(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        if !is_restricted(ip) {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.entries.iter().any(|entry| match entry {
            Allowed::Net { base, prefix } => in_net(ip, *base, *prefix),
            Allowed::Host { host: allowed, port: allowed_port } => {
                allowed_port.is_none_or(|p| p == port)
                    && (*allowed == host || allowed.parse::<IpAddr>().is_ok_and(|a| a == ip))
            }
        })
    }
}

fn parse_entry(entry: &str) -> Result<Allowed, String> {
    let bad =
        || format!("{entry:?} is not an address, a CIDR (10.0.0.0/8) or host:port (hooks.internal:8443)");
    if let Some((base, prefix)) = entry.split_once('/') {
        let base: IpAddr = base.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        return if prefix <= max { Ok(Allowed::Net { base, prefix }) } else { Err(bad()) };
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(Allowed::Net { base: ip, prefix });
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Ok(Allowed::Host { host: addr.ip().to_string(), port: Some(addr.port()) });
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| bad())?)),
        None => (entry, None),
    };
    let valid = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid {
        return Err(bad());
    }
    Ok(Allowed::Host { host: host.to_ascii_lowercase(), port })
}

fn in_net(ip: IpAddr, base: IpAddr, prefix: u8) -> bool {
    match (canonical(ip), canonical(base)) {
        (IpAddr::V4(ip), IpAddr::V4(base)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(base) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(base)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(base) & mask
        }
        _ => false,
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private (RFC 1918, RFC 6598 shared, ULA), link-local and
/// unspecified addresses: the ones a request from here must not reach on a
/// customer's word.
pub fn is_restricted(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || in_net(IpAddr::V4(v4), IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10)
                || in_net(IpAddr::V4(v4), IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 8)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || in_net(IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7)
                || in_net(IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10)
        }
    }
}

/// How long one outbound request may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What outbound requests to chosen URLs may reach, and how long they may take.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allow: Arc<AllowList>,
    timeout: Duration,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self::new(AllowList::default())
    }
}

impl OutboundPolicy {
    pub fn new(allow: AllowList) -> Self {
        Self { allow: Arc::new(allow), timeout: DEFAULT_TIMEOUT }
    }

    /// The same policy with another request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// From the configured entries (already validated by the config).
    pub fn from_entries(entries: &[String]) -> Result<Self, String> {
        AllowList::parse(entries).map(Self::new)
    }

    /// Checks a URL before anything is sent: http(s) only, and an address
    /// written in it must be allowed. Host names are checked when resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{} is not an http:// or https:// URL", url.scheme()));
        }
        let port = url.port_or_known_default().unwrap_or(0);
        let host = url.host_str().ok_or("the URL has no host")?;
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        match literal {
            Some(ip) if !self.allow.permits(host, ip, port) => Err(refusal(host, ip, port)),
            _ => Ok(()),
        }
    }

    /// A client for requests to `url`: its resolver refuses restricted
    /// addresses the allow-list does not name, and it follows no redirect.
    pub fn client_for(&self, url: &Url) -> Result<reqwest::Client, String> {
        let timeout = self.timeout;
        self.check_url(url)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(0);
        let resolver = GuardedResolver { allow: Arc::clone(&self.allow), host, port };
        reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .user_agent(concat!("vomo-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    }
}

fn refusal(host: &str, ip: IpAddr, port: u16) -> String {
    format!(
        "{host}:{port} is {ip}, a loopback, private or link-local address; outbound requests may not reach it \
         unless dest.allow_private_hosts (VOMO_SYNC_DEST_ALLOW_PRIVATE_HOSTS) names it, e.g. \"{ip}\" or \"{host}:{port}\""
    )
}

/// Resolves names like the system does, then drops what may not be reached.
struct GuardedResolver {
    allow: Arc<AllowList>,
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (allow, host, port) = (Arc::clone(&self.allow), self.host.clone(), self.port);
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port)).await?.collect();
            // Only the destination's own host is expected here (no proxy,
            // no redirects); any other name is checked as if it were it.
            let shown = if name.eq_ignore_ascii_case(&host) { host.as_str() } else { name.as_str() };
            let allowed: Vec<SocketAddr> =
                resolved.iter().copied().filter(|a| allow.permits(shown, a.ip(), port)).collect();
            match (allowed.is_empty(), resolved.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                (true, Some(first)) => Err(refusal(shown, first.ip(), port).into()),
                (true, None) => Err(format!("{name} does not resolve to any address").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn restricted_addresses_are_the_private_kinds() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_restricted(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_restricted(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_allow_list_names_addresses_ranges_and_host_ports() {
        let allow = list(&["10.0.0.0/8", "127.0.0.1:9000", "hooks.internal:8443", "::1"]);
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(allow.permits("x", ip("10.9.9.9"), 80));
        assert!(allow.permits("127.0.0.1", ip("127.0.0.1"), 9000));
        assert!(!allow.permits("127.0.0.1", ip("127.0.0.1"), 9001), "another port");
        assert!(allow.permits("hooks.internal", ip("192.168.0.5"), 8443));
        assert!(!allow.permits("hooks.internal", ip("192.168.0.5"), 80));
        assert!(allow.permits("[::1]", ip("::1"), 1));
        assert!(!allow.permits("x", ip("192.168.0.5"), 80));
        assert!(allow.permits("example.org", ip("93.184.216.34"), 443), "public is always fine");
        assert!(AllowList::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(AllowList::parse(&["no spaces allowed".into()]).is_err());
    }

    #[test]
    fn urls_with_restricted_addresses_are_refused_before_sending() {
        let policy = OutboundPolicy::default();
        let url = Url::parse("http://127.0.0.1:8081/admin/users/1").unwrap();
        let err = policy.check_url(&url).unwrap_err();
        assert!(err.contains("dest.allow_private_hosts"), "{err}");
        assert!(policy.check_url(&Url::parse("http://[fe80::1]/").unwrap()).is_err());
        assert!(policy.check_url(&Url::parse("https://hooks.example.org/x").unwrap()).is_ok());
        let allowed = OutboundPolicy::from_entries(&["127.0.0.1".into()]).unwrap();
        assert!(allowed.check_url(&url).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_restricted_addresses_are_refused_at_connect_time() {
        let policy = OutboundPolicy::default();
        let url = Url::parse("http://localhost:9/hook").unwrap();
        let client = policy.with_timeout(Duration::from_secs(2)).client_for(&url).unwrap();
        let err = client.get(url).send().await.unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("allow_private_hosts"), "{text}");
    }
}
