//! The SSRF guard every outbound request of Watch passes (availability checks, and the capture
//! browser through its proxy): which addresses no request may reach unless
//! `monitor.allow_private_targets` is set ([`is_forbidden`]: the IANA special-purpose registries,
//! and the IPv4 address inside NAT64, 6to4, Teredo, IPv4-mapped and IPv4-compatible IPv6
//! addresses), the check of a URL before a request or a redirect hop ([`Guard::check_url`]), and
//! the guarded resolution every connection goes through ([`Guard::resolve`]).
//! `monitor.allowed_hosts` exempts named hosts (tests, an intranet target the operator trusts).
//! One [`Guard`] per process, built from the settings by [`Guard::from_config`] and held by the
//! [`crate::checker::Checker`] ([`crate::checker::Checker::guard`]).

use pulseboard_config::Monitor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Starts the message of a [`Blocked`] error: the checker recognises the refusal by it where
/// the error arrives boxed once more than a downcast can see.
pub(crate) const BLOCKED_MARK: &str = "pulseboard-guard: blocked target ";

/// The address was refused by the SSRF guard.
#[derive(Debug)]
pub struct Blocked(pub String);
impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BLOCKED_MARK}{}", self.0)
    }
}
impl std::error::Error for Blocked {}

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
    /// The guard of `monitor.allow_private_targets` and `monitor.allowed_hosts` (names compared
    /// in lower case).
    pub fn from_config(m: &Monitor) -> Self {
        Self {
            allow_private: m.allow_private_targets,
            allowed_hosts: m.allowed_hosts.iter().map(|h| h.to_lowercase()).collect(),
        }
    }

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

#[cfg(test)]
mod tests;
