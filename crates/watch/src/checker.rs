//! The availability checker: one HTTP GET per check, with an SSRF guard.
//!
//! - reqwest over rustls, no system proxy, a connect timeout and a total timeout, at most
//!   `max_redirects` redirects, a fixed User-Agent, and the body read only up to [`BODY_CAP`].
//! - Unless `allow_private_targets` is set, no connection ever reaches a loopback, private,
//!   link-local (incl. 169.254.169.254), unique-local, multicast, broadcast, unspecified,
//!   documentation or other special-purpose address ([`crate::guard`]: the IANA registries, and
//!   the IPv4 address inside NAT64, 6to4, Teredo, IPv4-mapped and IPv4-compatible IPv6 addresses):
//!   host names go through [`GuardedResolver`] ([`Guard::resolve`]), which drops such addresses
//!   after resolution (so a DNS name pointing at 10.0.0.1 is blocked too); literal IP hosts are
//!   checked before the request and on every redirect hop by the redirect policy. A refusal is
//!   [`ErrorKind::Blocked`]. `allowed_hosts` exempts named hosts (tests, an intranet target the
//!   operator trusts). Screenshot captures use the same guard ([`Checker::guard`]).
//! - Concurrency: a process-wide pool of `concurrency` permits and `per_host_concurrency` permits
//!   per host. A check waits for its host's permit before it takes a pool permit, so checks queued
//!   behind one slow host never hold pool slots the other hosts need.

use crate::guard::{Blocked, Guard, ResolveError, BLOCKED_MARK};
use pulseboard_config::Monitor;
use pulseboard_domain::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
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

const DNS_MARK: &str = "pulseboard-dns: cannot resolve ";
const REDIRECTS_MARK: &str = "pulseboard-redirects: ";

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
        let guard = Arc::new(Guard::from_config(m));
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

    /// The process's SSRF guard (from `monitor`), for every other outbound request: captures and
    /// the checks a request makes before it queues one.
    pub fn guard(&self) -> &Arc<Guard> {
        &self.guard
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
