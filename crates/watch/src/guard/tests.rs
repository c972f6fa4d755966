//! The guard's address tables, URL checks and resolution, block by block.

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
