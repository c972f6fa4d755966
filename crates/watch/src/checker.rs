//! The availability checker: one HTTP GET per check, with an SSRF guard.
//!
//! - reqwest over rustls, no system proxy, a connect timeout and a total timeout, at most
//!   `max_redirects` redirects, a fixed User-Agent, and the body read only up to [`BODY_CAP`].
//! - Unless `allow_private_targets` is set, no connection ever reaches a loopback, private,
//!   link-local (incl. 169.254.169.254), unique-local, multicast, broadcast, unspecified,
//!   documentation or other special-purpose address ([`is_forbidden`]: the IANA registries, and
//!   the IPv4 address inside NAT64, 6to4, Teredo, IPv4-mapped and IPv4-compatible IPv6 addresses):
//!   host names go through [`GuardedResolver`] ([`Guard::resolve`]), which drops such addresses
//!   after resolution (so a DNS name pointing at 10.0.0.1 is blocked too); literal IP hosts are
//!   checked before the request and on every redirect hop by the redirect policy. A refusal is
//!   [`ErrorKind::Blocked`]. `allowed_hosts` exempts named hosts (tests, an intranet target the
//!   operator trusts). Screenshot captures use the same guard (`capture`, `proxy`).
//! - Concurrency: a process-wide pool of `concurrency` permits and `per_host_concurrency` permits
//!   per host. A check waits for its host's permit before it takes a pool permit, so checks queued
//!   behind one slow host never hold pool slots the other hosts need.

use pulseboard_config::Monitor;
use pulseboard_domain::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How much of a response body is read (the rest is dropped with the connection).
pub const BODY_CAP: usize = 64 * 1024;

pub const USER_AGENT: &str = concat!(
    "Pulseboard/",
    env!("CARGO_PKG_VERSION"),
    " (availability monitor; +https://github.com/pulseboard)"
);

/// Why a check got no (acceptable) response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    TooManyRedirects,
    Blocked,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::TooManyRedirects => "too_many_redirects",
            ErrorKind::Blocked => "blocked",
            ErrorKind::Other => "other",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub status_code: Option<u16>,
    pub error_kind: Option<ErrorKind>,
    pub response_time_ms: i64,
    pub final_url: Option<String>,
    pub checked_at: i64,
    pub is_available: bool,
}

impl CheckResult {
    fn failed(kind: ErrorKind, started: Instant, checked_at: i64) -> Self {
        Self {
            status_code: None,
            error_kind: Some(kind),
            response_time_ms: started.elapsed().as_millis() as i64,
            final_url: None,
            checked_at,
            is_available: false,
        }
    }
}

const BLOCKED_MARK: &str = "pulseboard-guard: blocked target ";
const DNS_MARK: &str = "pulseboard-dns: cannot resolve ";
const REDIRECTS_MARK: &str = "pulseboard-redirects: ";

/// The address was refused by the SSRF guard.
#[derive(Debug)]
pub struct Blocked(pub String);
impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BLOCKED_MARK}{}", self.0)
    }
}
impl std::error::Error for Blocked {}

#[derive(Debug)]
struct DnsFailure(String);
impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{DNS_MARK}{}", self.0)
    }
}
impl std::error::Error for DnsFailure {}

#[derive(Debug)]
struct TooManyRedirects(u32);
impl std::fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{REDIRECTS_MARK}more than {}", self.0)
    }
}
impl std::error::Error for TooManyRedirects {}

/// True for addresses a check must not reach unless private targets are allowed: the IANA
/// special-purpose blocks ([`FORBIDDEN_V4`], [`FORBIDDEN_V6`]); IPv6 addresses that carry an
/// IPv4 address the guard forbids ([`embedded_v4`]: IPv4-mapped, IPv4-compatible, NAT64, 6to4,
/// Teredo), since on a network that translates or tunnels them they reach that IPv4 host; and
/// any other IPv6 address outside global unicast (2000::/3), which nothing public uses.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// IPv4 blocks no check may reach (IANA IPv4 Special-Purpose Address Registry, plus multicast).
/// The registry's globally reachable entries (AS112, AMT, 192.0.0.9/10 inside 192.0.0/24) are
/// either left out or refused with their block: nothing a monitor needs.
pub const FORBIDDEN_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved
    (Ipv4Addr::new(255, 255, 255, 255), 32), // limited broadcast (inside 240/4 too)
];

/// IPv6 blocks no check may reach (IANA IPv6 Special-Purpose Address Registry, plus the scoped
/// ranges). IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 and 6to4 2002::/16 are not here: they
/// are judged by the IPv4 address they carry ([`embedded_v4`]).
pub const FORBIDDEN_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128), // unspecified
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128), // loopback
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // IPv4/IPv6 translation, local use
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64), // dummy prefix
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (incl. Teredo)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing (SRv6) SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    FORBIDDEN_V4.iter().any(|&block| in_v4(ip, block))
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if FORBIDDEN_V6.iter().any(|&block| in_v6(ip, block)) {
        return true;
    }
    let embedded = embedded_v4(ip);
    if embedded.iter().flatten().any(|&v4| forbidden_v4(v4)) {
        return true;
    }
    // Outside global unicast 2000::/3 only the embeddings above are routable at all.
    embedded == [None, None] && !in_v6(ip, (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3))
}

/// The IPv4 addresses an IPv6 address carries, for the forms that reach them on a network that
/// translates or tunnels: IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d (deprecated,
/// still tunnelled by some stacks), IPv4-translated ::ffff:0:a.b.c.d (SIIT), NAT64 64:ff9b::/96
/// (RFC 6052), 6to4 2002:AABB:CCDD::/48 (RFC 3056), and Teredo 2001:0::/32 (RFC 4380: the server
/// in bits 32..64, the client in the last 32 bits, inverted). Teredo lies inside 2001::/23,
/// which is refused as a whole; it is decoded too so that its endpoints stay judged should that
/// block ever be narrowed.
pub fn embedded_v4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    const COMPATIBLE: u128 = 0; // :: and ::1 are refused by the table before this
    const MAPPED: u128 = 0xffff;
    const TRANSLATED: u128 = 0xffff_0000;
    const NAT64: u128 = 0x0064_ff9b_0000_0000_0000_0000;
    let bits = u128::from(ip);
    let s = ip.segments();
    if let COMPATIBLE | MAPPED | TRANSLATED | NAT64 = bits >> 32 {
        return [Some(Ipv4Addr::from(bits as u32)), None];
    }
    if s[0] == 0x2002 {
        return [Some(Ipv4Addr::from((bits >> 80) as u32)), None];
    }
    if s[0] == 0x2001 && s[1] == 0 {
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(!(bits as u32));
        return [Some(server), Some(client)];
    }
    [None, None]
}

/// The guard's view of the settings.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub allow_private: bool,
    /// Host names (lower case) exempt from the guard.
    pub allowed_hosts: Vec<String>,
}

impl Guard {
    /// True when the guard lets this host through whatever it resolves to (private targets
    /// allowed, or the host is in `allowed_hosts`).
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allow_private
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host.trim_start_matches('[').trim_end_matches(']')))
    }

    /// Checks a URL before a request or a redirect hop: scheme, and literal IP hosts. Host names
    /// are checked after resolution, by the resolver.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Blocked> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Blocked(format!("scheme {}", url.scheme())));
        }
        let Some(host) = url.host() else {
            return Err(Blocked("no host".into()));
        };
        let ip = match host {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return Ok(()),
        };
        if is_forbidden(ip) && !self.host_allowed(&host.to_string()) {
            return Err(Blocked(ip.to_string()));
        }
        Ok(())
    }

    /// The guarded resolution every outgoing connection goes through (checks, the capture
    /// proxy): a literal IP is judged as it is; a name is resolved by the system resolver, and
    /// the addresses the guard forbids are dropped unless the host is allowed. Connect only to
    /// the addresses returned: resolving again could answer differently (DNS rebinding).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            if is_forbidden(ip) && !self.host_allowed(host) {
                return Err(ResolveError::Blocked(Blocked(ip.to_string())));
            }
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => addrs.collect(),
            Err(_) => Vec::new(),
        };
        if addrs.is_empty() {
            return Err(ResolveError::Dns(host.to_owned()));
        }
        if self.host_allowed(host) {
            return Ok(addrs);
        }
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| !is_forbidden(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(ResolveError::Blocked(Blocked(host.to_owned())));
        }
        Ok(allowed)
    }
}

/// Why [`Guard::resolve`] has no address to connect to.
#[derive(Debug)]
pub enum ResolveError {
    /// The name does not resolve.
    Dns(String),
    /// Every address is one the guard forbids.
    Blocked(Blocked),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Dns(host) => write!(f, "cannot resolve {host}"),
            ResolveError::Blocked(b) => b.fmt(f),
        }
    }
}

/// Resolves with the system resolver, then drops the addresses the guard forbids
/// ([`Guard::resolve`]).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match guard.resolve(&host, 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(ResolveError::Dns(host)) => Err(Box::new(DnsFailure(host)) as Box<_>),
                Err(ResolveError::Blocked(b)) => Err(Box::new(b) as Box<_>),
            }
        })
    }
}

/// The redirect decision for one hop (also unit-tested on its own): too many hops, or a hop the
/// guard refuses, ends the check with an error.
pub fn redirect_decision(
    guard: &Guard,
    max_redirects: u32,
    hops_so_far: usize,
    next: &reqwest::Url,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if hops_so_far > max_redirects as usize {
        return Err(Box::new(TooManyRedirects(max_redirects)));
    }
    guard.check_url(next)?;
    Ok(())
}

/// Checks URLs. One per process (it owns the connection pool and the concurrency limits).
pub struct Checker {
    client: reqwest::Client,
    guard: Arc<Guard>,
    pool: Arc<Semaphore>,
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    max_retries: u32,
    retention_days: (u32, u32),
    batch_size: usize,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("guard", &self.guard)
            .finish()
    }
}

impl Checker {
    pub fn new(m: &Monitor) -> Self {
        let guard = Arc::new(Guard {
            allow_private: m.allow_private_targets,
            allowed_hosts: m.allowed_hosts.iter().map(|h| h.to_lowercase()).collect(),
        });
        let timeout = Duration::from_secs(m.timeout_secs.max(1));
        let max_redirects = m.max_redirects;
        let policy_guard = guard.clone();
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                guard: guard.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(
                move |attempt| match redirect_decision(
                    &policy_guard,
                    max_redirects,
                    attempt.previous().len(),
                    attempt.url(),
                ) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                },
            ))
            .build()
            .expect("the HTTP client configuration is valid");
        Self {
            client,
            guard,
            pool: Arc::new(Semaphore::new(m.concurrency.max(1))),
            per_host: m.per_host_concurrency.max(1),
            hosts: Mutex::new(HashMap::new()),
            max_retries: m.max_retries,
            retention_days: (m.check_retention_days, m.aggregate_retention_days),
            batch_size: m.batch_size.max(1),
        }
    }

    /// Consecutive failed checks after which a resource is deleted (`monitor.max_retries`).
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Resources per check job (`monitor.batch_size`).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// (raw checks, hourly aggregates) retention in days.
    pub fn retention_days(&self) -> (u32, u32) {
        self.retention_days
    }

    /// One check under the pool and per-host limits.
    pub async fn check_limited(&self, url: &str) -> CheckResult {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_lowercase))
            .unwrap_or_default();
        let sem = {
            let mut hosts = self.hosts.lock().expect("host limits lock");
            hosts
                .entry(host.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        let result = {
            let _host = sem.acquire().await.expect("never closed");
            let _slot = self.pool.acquire().await.expect("never closed");
            self.check(url).await
        };
        drop(sem);
        let mut hosts = self.hosts.lock().expect("host limits lock");
        if hosts.get(&host).is_some_and(|s| Arc::strong_count(s) == 1) {
            hosts.remove(&host);
        }
        result
    }

    /// One check, now, without the concurrency limits.
    pub async fn check(&self, url: &str) -> CheckResult {
        let checked_at = Timestamp::now();
        let started = Instant::now();
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(_) => return CheckResult::failed(ErrorKind::Other, started, checked_at),
        };
        if self.guard.check_url(&parsed).is_err() {
            return CheckResult::failed(ErrorKind::Blocked, started, checked_at);
        }
        let mut response = match self.client.get(parsed).send().await {
            Ok(r) => r,
            Err(e) => return CheckResult::failed(classify(&e), started, checked_at),
        };
        let response_time_ms = started.elapsed().as_millis() as i64;
        let status = response.status().as_u16();
        let final_url = response.url().to_string();
        // Read a little of the body (some servers only count a request once it is read), never
        // more than the cap; errors while reading do not change the verdict.
        let mut read = 0usize;
        while read < BODY_CAP {
            match response.chunk().await {
                Ok(Some(c)) => read += c.len(),
                _ => break,
            }
        }
        CheckResult {
            status_code: Some(status),
            error_kind: None,
            response_time_ms,
            final_url: Some(final_url),
            checked_at,
            is_available: (200..400).contains(&status),
        }
    }
}

/// Maps a reqwest error to an error kind, looking through its chain of causes.
pub fn classify(e: &reqwest::Error) -> ErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut text = String::new();
    while let Some(s) = source {
        // Our own errors may arrive boxed once more (a `Box<dyn Error>` inside the resolver's
        // error type), where `is` cannot see them: their messages carry a marker as well.
        let msg = s.to_string();
        if s.is::<Blocked>() || msg.starts_with(BLOCKED_MARK) {
            return ErrorKind::Blocked;
        }
        if s.is::<TooManyRedirects>() || msg.starts_with(REDIRECTS_MARK) {
            return ErrorKind::TooManyRedirects;
        }
        if s.is::<DnsFailure>() || msg.starts_with(DNS_MARK) {
            return ErrorKind::Dns;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ErrorKind::Timeout;
            }
        }
        text.push_str(&msg.to_lowercase());
        text.push('\n');
        source = s.source();
    }
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if text.contains("certificate")
        || text.contains("tls")
        || text.contains("handshake")
        || text.contains("invalid peer")
    {
        return ErrorKind::Tls;
    }
    if e.is_redirect() {
        return ErrorKind::TooManyRedirects;
    }
    if e.is_connect() {
        return ErrorKind::Connect;
    }
    ErrorKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be forbidden");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    fn forbidden(ip: &str) -> bool {
        is_forbidden(ip.parse().unwrap())
    }

    /// Every IPv4 block of the table: its first and last address, and the neighbours outside it.
    #[test]
    fn every_special_purpose_v4_block_is_forbidden_and_ends_where_it_should() {
        for (block, first, last, before, after) in [
            ("0/8", "0.0.0.0", "0.255.255.255", None, Some("1.0.0.0")),
            (
                "10/8",
                "10.0.0.0",
                "10.255.255.255",
                Some("9.255.255.255"),
                Some("11.0.0.0"),
            ),
            (
                "100.64/10",
                "100.64.0.0",
                "100.127.255.255",
                Some("100.63.255.255"),
                Some("100.128.0.0"),
            ),
            (
                "127/8",
                "127.0.0.0",
                "127.255.255.255",
                Some("126.255.255.255"),
                Some("128.0.0.0"),
            ),
            (
                "169.254/16",
                "169.254.0.0",
                "169.254.255.255",
                Some("169.253.255.255"),
                Some("169.255.0.0"),
            ),
            (
                "172.16/12",
                "172.16.0.0",
                "172.31.255.255",
                Some("172.15.255.255"),
                Some("172.32.0.0"),
            ),
            (
                "192.0.0/24",
                "192.0.0.0",
                "192.0.0.255",
                Some("191.255.255.255"),
                Some("192.0.1.0"),
            ),
            (
                "192.0.2/24",
                "192.0.2.0",
                "192.0.2.255",
                Some("192.0.1.255"),
                Some("192.0.3.0"),
            ),
            (
                "192.88.99/24",
                "192.88.99.0",
                "192.88.99.255",
                Some("192.88.98.255"),
                Some("192.88.100.0"),
            ),
            (
                "192.168/16",
                "192.168.0.0",
                "192.168.255.255",
                Some("192.167.255.255"),
                Some("192.169.0.0"),
            ),
            (
                "198.18/15",
                "198.18.0.0",
                "198.19.255.255",
                Some("198.17.255.255"),
                Some("198.20.0.0"),
            ),
            (
                "198.51.100/24",
                "198.51.100.0",
                "198.51.100.255",
                Some("198.51.99.255"),
                Some("198.51.101.0"),
            ),
            (
                "203.0.113/24",
                "203.0.113.0",
                "203.0.113.255",
                Some("203.0.112.255"),
                Some("203.0.114.0"),
            ),
            (
                "224/4",
                "224.0.0.0",
                "239.255.255.255",
                Some("223.255.255.255"),
                None,
            ),
            ("240/4", "240.0.0.0", "255.255.255.254", None, None),
            (
                "broadcast",
                "255.255.255.255",
                "255.255.255.255",
                None,
                None,
            ),
        ] {
            assert!(forbidden(first), "{block}: {first}");
            assert!(forbidden(last), "{block}: {last}");
            for outside in [before, after].into_iter().flatten() {
                assert!(!forbidden(outside), "{block}: {outside} is outside");
            }
        }
    }

    #[test]
    fn every_special_purpose_v6_block_is_forbidden_and_ends_where_it_should() {
        for (block, inside, outside) in [
            ("::/128", &["::"][..], &[][..]),
            ("::1/128", &["::1"], &[]),
            (
                "64:ff9b:1::/48",
                &["64:ff9b:1::", "64:ff9b:1:ffff::8.8.8.8"],
                &[],
            ),
            ("100::/64", &["100::", "100::ffff:ffff:ffff:ffff"], &[]),
            ("100:0:0:1::/64", &["100:0:0:1::1"], &[]),
            (
                "2001::/23",
                &[
                    "2001::1",
                    "2001:1::1",
                    "2001:2::1",
                    "2001:1ff:ffff::1",
                    "2001:10::1",
                    "2001:20::1",
                ],
                &["2001:200::1", "2001:4860:4860::8888"],
            ),
            (
                "2001:db8::/32",
                &["2001:db8::", "2001:db8:ffff::1"],
                &["2001:db9::1"],
            ),
            (
                "3fff::/20",
                &["3fff::1", "3fff:fff::1"],
                &["3fff:1000::1", "3ffe:ffff::1"],
            ),
            ("5f00::/16", &["5f00::1", "5f00:ffff::1"], &[]),
            ("fc00::/7", &["fc00::1", "fd12:3456::1", "fdff::1"], &[]),
            ("fe80::/10", &["fe80::1", "febf::1"], &[]),
            ("fec0::/10", &["fec0::1", "feff::1"], &[]),
            ("ff00::/8", &["ff02::1", "ff0e::1", "ffff::1"], &[]),
        ] {
            for ip in inside {
                assert!(forbidden(ip), "{block}: {ip}");
            }
            for ip in outside {
                assert!(!forbidden(ip), "{block}: {ip} is outside");
            }
        }
        // Global unicast outside those blocks is allowed; anything outside 2000::/3 that carries
        // no IPv4 address is not routable and refused.
        for ip in [
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2620:fe::fe",
            "3ffe::1",
        ] {
            assert!(!forbidden(ip), "{ip}");
        }
        for ip in [
            "1::1",
            "4000::1",
            "8000::1",
            "fbff::1",
            "64:ff9b::1:0:0:1",
            "::1:0:0:1",
        ] {
            assert!(forbidden(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_addresses_that_embed_ipv4_are_judged_by_that_ipv4() {
        // Each form, carrying loopback, a private address, the metadata address and a public one.
        for (form, carry) in [
            (
                "NAT64",
                (|v4: &str| format!("64:ff9b::{v4}")) as fn(&str) -> String,
            ),
            ("IPv4-mapped", |v4| format!("::ffff:{v4}")),
            ("IPv4-compatible", |v4| format!("::{v4}")),
            ("IPv4-translated", |v4| format!("::ffff:0:{v4}")),
            ("6to4", |v4| {
                let o: Ipv4Addr = v4.parse().unwrap();
                let [a, b, c, d] = o.octets();
                format!("2002:{:02x}{:02x}:{:02x}{:02x}::1", a, b, c, d)
            }),
        ] {
            for v4 in [
                "127.0.0.1",
                "10.1.2.3",
                "169.254.169.254",
                "192.168.0.1",
                "0.0.0.0",
            ] {
                let ip = carry(v4);
                assert!(forbidden(&ip), "{form}: {ip} carries {v4}");
            }
            let ip = carry("8.8.8.8");
            assert!(!forbidden(&ip), "{form}: {ip} carries a public address");
        }
        // The spellings from the issue.
        for ip in [
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "::127.0.0.1",
            "::7f00:1",
            "0:0:0:0:0:ffff:7f00:1",
        ] {
            assert!(forbidden(ip), "{ip}");
        }

        // The decoding itself.
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            embedded_v4(v6("64:ff9b::a9fe:a9fe")),
            [v4("169.254.169.254"), None]
        );
        assert_eq!(embedded_v4(v6("::ffff:10.0.0.1")), [v4("10.0.0.1"), None]);
        assert_eq!(embedded_v4(v6("::10.0.0.1")), [v4("10.0.0.1"), None]);
        assert_eq!(
            embedded_v4(v6("2002:c000:0201:1::5")),
            [v4("192.0.2.1"), None]
        );
        // Teredo (RFC 4380's example): server 65.54.227.120, client 192.0.2.45 (inverted bits).
        assert_eq!(
            embedded_v4(v6("2001:0:4136:e378:8000:63bf:3fff:fdd2")),
            [v4("65.54.227.120"), v4("192.0.2.45")]
        );
        assert_eq!(embedded_v4(v6("2606:4700::1111")), [None, None]);
        assert_eq!(
            embedded_v4(v6("64:ff9b:0:1::7f00:1")),
            [None, None],
            "not the /96"
        );
        // Teredo is refused whatever it carries (2001::/23).
        assert!(forbidden("2001:0:4136:e378:8000:63bf:f7f7:f7f7"));
    }

    #[test]
    fn urls_with_such_literal_hosts_are_blocked_before_any_connection() {
        let guard = Guard::default();
        for u in [
            "http://[64:ff9b::7f00:1]:8080/",
            "http://[2002:7f00:1::1]/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[2001:db8::1]/",
            "http://[fe80::1]/",
            "http://198.18.0.1/",
            "http://192.0.2.1/",
        ] {
            assert!(guard.check_url(&url(u)).is_err(), "{u}");
        }
        assert!(guard.check_url(&url("http://[2606:4700::1111]/")).is_ok());
        assert!(
            guard.check_url(&url("http://[64:ff9b::808:808]/")).is_ok(),
            "NAT64 of 8.8.8.8"
        );
    }

    #[tokio::test]
    async fn guarded_resolution_judges_literal_ips_and_resolved_names() {
        let guard = Guard::default();
        for host in [
            "127.0.0.1",
            "[::1]",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "localhost",
        ] {
            assert!(
                matches!(guard.resolve(host, 80).await, Err(ResolveError::Blocked(_))),
                "{host}"
            );
        }
        assert!(matches!(
            guard.resolve("nonexistent.invalid", 80).await,
            Err(ResolveError::Dns(_))
        ));
        let public = guard.resolve("93.184.216.34", 443).await.unwrap();
        assert_eq!(public, vec!["93.184.216.34:443".parse().unwrap()]);
        // An allowed host gets every address it resolves to, with the port asked for.
        let named = Guard {
            allow_private: false,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        };
        let local = named.resolve("localhost", 8080).await.unwrap();
        assert!(
            !local.is_empty()
                && local
                    .iter()
                    .all(|a| a.port() == 8080 && a.ip().is_loopback())
        );
        assert!(named.resolve("127.0.0.1", 1).await.is_ok());
        assert!(
            named.resolve("127.0.0.2", 1).await.is_err(),
            "only the named address"
        );
    }

    #[test]
    fn redirect_policy_checks_every_hop() {
        let guard = Guard::default();
        assert!(redirect_decision(&guard, 5, 1, &url("https://example.com/x")).is_ok());
        let e = redirect_decision(&guard, 5, 1, &url("http://10.0.0.1/")).unwrap_err();
        assert!(e.is::<Blocked>());
        let e = redirect_decision(&guard, 5, 1, &url("http://[::1]:8080/")).unwrap_err();
        assert!(e.is::<Blocked>());
        let e = redirect_decision(&guard, 5, 1, &url("http://169.254.169.254/latest")).unwrap_err();
        assert!(e.is::<Blocked>());
        let e = redirect_decision(&guard, 5, 1, &url("file:///etc/passwd")).unwrap_err();
        assert!(e.is::<Blocked>());
        let e = redirect_decision(&guard, 2, 3, &url("https://example.com/")).unwrap_err();
        assert!(e.is::<TooManyRedirects>());
        let open = Guard {
            allow_private: true,
            allowed_hosts: vec![],
        };
        assert!(redirect_decision(&open, 5, 1, &url("http://10.0.0.1/")).is_ok());
    }
}
