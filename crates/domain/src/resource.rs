use crate::FieldError;
use std::collections::BTreeMap;
use url::{Host, Url};

/// The URL of a watched web resource: an absolute `http` or `https` URL with a host, normalised so
/// that two spellings of one address compare equal (scheme and host lower-cased, IDN hosts in
/// punycode, default ports and `.`/`..` path segments removed, fragment dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceUrl {
    url: Url,
    domain_zone: String,
}

impl ResourceUrl {
    /// Longest URL accepted, in bytes after normalisation (what browsers and servers reliably handle).
    pub const MAX_LEN: usize = 2048;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new("url", m);
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(err("URL must not be empty"));
        }
        if raw.len() > Self::MAX_LEN * 3 {
            return Err(err(&format!(
                "URL must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        // WHATWG parsing forgives `http:host` and `https:///host`; an address to watch is written
        // out in full.
        let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
        let rest = if lower.starts_with("https://") {
            &raw[8..]
        } else if lower.starts_with("http://") {
            &raw[7..]
        } else if raw.contains("://") || (raw.contains(':') && !raw.starts_with('/')) {
            return Err(err("URL must start with http:// or https://"));
        } else {
            return Err(err(
                "URL must be absolute, starting with http:// or https://",
            ));
        };
        if rest.is_empty() || rest.starts_with(['/', '\\']) {
            return Err(err("URL must have a host"));
        }
        let mut url = Url::parse(raw).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => {
                err("URL must be absolute, starting with http:// or https://")
            }
            url::ParseError::IdnaError => err("URL has an invalid international domain name"),
            url::ParseError::EmptyHost => err("URL must have a host"),
            other => FieldError::new("url", format!("Not a valid URL: {other}")),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err("URL must start with http:// or https://"));
        }
        let zone = match url.host() {
            None => return Err(err("URL must have a host")),
            Some(Host::Domain("")) => return Err(err("URL must have a host")),
            Some(Host::Domain(d)) => domain_zone(d),
            Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => String::new(),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("URL must not contain a user name or password"));
        }
        url.set_fragment(None);
        if url.as_str().len() > Self::MAX_LEN {
            return Err(err(&format!(
                "URL must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self {
            url,
            domain_zone: zone,
        })
    }

    /// The normalised URL.
    pub fn full_url(&self) -> &str {
        self.url.as_str()
    }

    /// `http` or `https`.
    pub fn protocol(&self) -> &str {
        self.url.scheme()
    }

    /// The host: a lower-case (punycode) domain name, an IPv4 address or a bracketed IPv6 address.
    pub fn domain(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The public suffix of the host (`com`, `org`, `co.uk`) from the Public Suffix List; the last
    /// label for a suffix the list does not know; empty for an IP address.
    pub fn domain_zone(&self) -> &str {
        &self.domain_zone
    }

    /// The path, always starting with `/`.
    pub fn url_path(&self) -> &str {
        self.url.path()
    }

    /// The query as key → value (decoded); when a key repeats, the last value wins.
    pub fn query_params(&self) -> BTreeMap<String, String> {
        self.url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn as_url(&self) -> &Url {
        &self.url
    }
}

impl std::fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.full_url())
    }
}

fn domain_zone(host: &str) -> String {
    let host = host.trim_end_matches('.');
    match psl::suffix(host.as_bytes()) {
        Some(s) if s.is_known() => String::from_utf8_lossy(s.trim().as_bytes()).into_owned(),
        _ => host.rsplit('.').next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> ResourceUrl {
        ResourceUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn seed_example() {
        let u = ok("https://vk.com");
        assert_eq!(u.full_url(), "https://vk.com/");
        assert_eq!(u.protocol(), "https");
        assert_eq!(u.domain(), "vk.com");
        assert_eq!(u.domain_zone(), "com");
        assert_eq!(u.url_path(), "/");
        assert!(u.query_params().is_empty());
    }

    #[test]
    fn parts_and_query() {
        let u = ok("  HTTP://Example.ORG:80/a/./b/../c?x=1&y=two%20words&x=3#frag ");
        assert_eq!(u.full_url(), "http://example.org/a/c?x=1&y=two%20words&x=3");
        assert_eq!(u.protocol(), "http");
        assert_eq!(u.domain(), "example.org");
        assert_eq!(u.domain_zone(), "org");
        assert_eq!(u.url_path(), "/a/c");
        let q = u.query_params();
        assert_eq!(q["x"], "3");
        assert_eq!(q["y"], "two words");
        assert_eq!(ok("https://x.org:8443/").full_url(), "https://x.org:8443/");
    }

    #[test]
    fn public_suffixes() {
        assert_eq!(ok("https://news.bbc.co.uk/").domain_zone(), "co.uk");
        assert_eq!(ok("https://www.gov.uk/").domain_zone(), "gov.uk");
        assert_eq!(ok("https://example.com./").domain_zone(), "com");
        assert_eq!(ok("https://host.internal/").domain_zone(), "internal");
        assert_eq!(ok("http://localhost:8080/").domain_zone(), "localhost");
        assert_eq!(ok("http://127.0.0.1/").domain_zone(), "");
        assert_eq!(ok("http://[::1]:81/").domain(), "[::1]");
        assert_eq!(ok("http://[::1]:81/").domain_zone(), "");
    }

    #[test]
    fn idn_hosts_become_punycode() {
        let u = ok("https://пример.рф/путь?ключ=значение");
        assert_eq!(u.domain(), "xn--e1afmkfd.xn--p1ai");
        assert_eq!(u.domain_zone(), "xn--p1ai");
        assert_eq!(
            u.full_url(),
            "https://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C?%D0%BA%D0%BB%D1%8E%D1%87=%D0%B7%D0%BD%D0%B0%D1%87%D0%B5%D0%BD%D0%B8%D0%B5"
        );
        assert_eq!(u.url_path(), "/%D0%BF%D1%83%D1%82%D1%8C");
        assert_eq!(u.query_params()["ключ"], "значение");
        // Same address, two spellings.
        assert_eq!(u, ok("https://XN--E1AFMKFD.xn--p1ai/путь?ключ=значение"));
    }

    #[test]
    fn refuses_what_is_not_an_absolute_http_url() {
        for raw in [
            "",
            "   ",
            "vk.com",
            "/relative/path",
            "ftp://example.com/",
            "mailto:a@b.c",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://",
            "https:///path",
            "http://exa mple.com/",
            "http://user:pw@example.com/",
            "http://-invalid-.xn--/",
            "http:example.com",
            "https:\\\\example.com",
            "HTTPS://",
        ] {
            let e = ResourceUrl::parse(raw).expect_err(raw);
            assert_eq!(e.field, "url", "{raw}");
        }
        let long = format!("https://example.com/{}", "a".repeat(ResourceUrl::MAX_LEN));
        assert!(ResourceUrl::parse(&long).is_err());
    }
}
