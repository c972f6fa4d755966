//! Configuration: the `config.yaml` compiled into the binary, then an optional file, then the
//! environment, each overriding the one before key by key. Everything is validated here, once, at
//! start-up: an invalid value is an error that names the key, the value and what is allowed.

use figment::{
    providers::{Env, Format, Yaml},
    Figment,
};
use serde::Deserialize;
use std::path::PathBuf;

mod validate;

/// The defaults: the repo's `config.yaml`, compiled in.
pub const DEFAULTS_YAML: &str = include_str!("../../../config.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub env: RunMode,
    pub data_dir: PathBuf,
    pub http: Http,
    pub database: Database,
    pub auth: Auth,
    pub jobs: Jobs,
    pub schedules: Schedules,
    pub monitor: Monitor,
    pub mail: Mail,
    pub logging: Logging,
    pub blobs: Blobs,
    pub screenshots: Screenshots,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub host: String,
    pub port: u16,
    pub public_url: String,
    pub json_body_limit_bytes: usize,
    pub upload_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// Multipart uploads (ZIP imports, screenshots) get this long instead of `request_timeout_secs`.
    pub upload_timeout_secs: u64,
    /// ZIP imports one user may have in flight (uploading, pending or in process); more get 429.
    pub imports_per_user: usize,
    /// An upload is refused with 507 unless the uploads folder keeps this many bytes free beyond it.
    pub upload_min_free_bytes: u64,
    pub shutdown_grace_secs: u64,
    /// A connection must send a whole request head (request line and headers) within this long of
    /// connecting, or of its first byte on a kept-alive connection; otherwise it is closed.
    pub header_read_timeout_secs: u64,
    /// A kept-alive connection idle this long between requests is closed.
    pub keep_alive_timeout_secs: u64,
    /// Open connections at once; at the cap no new one is accepted until one closes.
    pub max_connections: usize,
    pub cors_origins: Vec<String>,
    /// Proxies (IP addresses or CIDRs) whose `X-Forwarded-For` / `Forwarded` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    pub refresh_grace_secs: u64,
    pub cookie_secure: CookieSecure,
    /// Failed logins per (account, client address) within the window, then 429.
    pub login_max_failures: u32,
    /// Failed logins per client address (any account) within the window.
    pub login_ip_max_failures: u32,
    /// Failed logins per account from all addresses together: a high ceiling against distributed
    /// guessing that a single address cannot reach (so it cannot lock the owner out).
    pub login_account_max_failures: u32,
    pub login_window_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Password hashes computed at once; 0 = the number of cores.
    pub hash_concurrency: usize,
    /// Logins and registrations that may wait for a hashing slot; beyond them: 503.
    pub hash_queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jobs {
    pub concurrency: usize,
    pub poll_interval_ms: u64,
    pub max_attempts: u32,
    pub timeout_secs: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
    /// A claimed job is leased this long and the lease renewed every third of it while the job
    /// runs: a job whose worker died is taken over after about this long.
    pub lease_secs: u64,
    pub shutdown_grace_secs: u64,
    pub retention_days: u64,
    /// Empty: the queue lives in the database. amqp://…: RabbitMQ carries the jobs.
    pub amqp_url: String,
    /// Broker names: queues `<prefix>.<queue>`, dead letters in `<prefix>.dead`.
    pub amqp_prefix: String,
    /// Unacknowledged messages a worker holds at once from a queue of short jobs (email,
    /// maintenance); queues of long jobs get one per free slot.
    pub amqp_prefetch: u16,
    /// Quorum queues (replicated across a RabbitMQ cluster) instead of classic durable ones.
    pub amqp_quorum: bool,
    /// A job published this long ago and still not picked up is published again.
    pub amqp_republish_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub cron: String,
    pub timezone: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedules {
    pub digest: Schedule,
    /// Availability rounds: every resource without its own check interval.
    pub monitor: Schedule,
    /// Frequent sweep for resources with their own interval whose next check is due.
    pub monitor_due: Schedule,
    pub cleanup: Schedule,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    pub max_retries: u32,
    pub timeout_secs: u64,
    pub max_redirects: u32,
    pub concurrency: usize,
    pub per_host_concurrency: usize,
    /// Resources per check job.
    pub batch_size: usize,
    pub allow_private_targets: bool,
    /// Host names the SSRF guard lets through even when private targets are not allowed.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Raw checks are kept this long, then rolled up into hourly aggregates.
    pub check_retention_days: u32,
    /// Hourly aggregates are kept this long.
    pub aggregate_retention_days: u32,
    /// Bounds of a resource's own `check_interval_secs` (API validation).
    pub min_check_interval_secs: u64,
    pub max_check_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    pub from: String,
    pub smtp_url: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    pub level: String,
    pub format: LogFormat,
    pub file_max_bytes: u64,
    pub file_backups: usize,
    pub buffer_lines: usize,
    pub default_lines: usize,
}

/// Where blobs (screenshots) are stored. Credentials never live here: the `AWS_*` environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blobs {
    /// Empty: `<data_dir>/blobs`; `file:///path`; `s3://bucket[/prefix]`.
    pub url: String,
    /// S3: an S3-compatible endpoint; empty: `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: String,
    /// S3: empty: `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1.
    pub region: String,
    /// S3: allow a plain-http endpoint (local MinIO, test servers).
    pub allow_http: bool,
    /// S3: one request, retries included.
    pub timeout_secs: u64,
}

/// Whether `POST /resources/{uuid}/screenshot/capture` accepts captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// When this process finds Chromium (one process doing everything; 503 otherwise).
    Auto,
    /// Always: the workers have Chromium even if this API process does not (the compose stack).
    Always,
    /// Never: captures are switched off (503).
    Never,
}

/// Screenshot capture with headless Chromium.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Screenshots {
    pub capture: CaptureMode,
    /// Empty: the first of /usr/bin/chromium, chromium, chromium-browser, google-chrome,
    /// google-chrome-stable on PATH.
    pub chromium_path: String,
    /// Pages (captures) open at once per worker process, in its one browser.
    pub max_pages: usize,
    /// One capture: navigation, rendering and the screenshot.
    pub timeout_secs: u64,
    pub viewport_width: u32,
    pub viewport_height: u32,
}

/// An IP address (a /32 or /128) or a CIDR.
fn parse_net(raw: &str) -> Option<ipnet::IpNet> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A configuration problem, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Environment variables that are not config keys but share the prefix.
const NOT_KEYS: &[&str] = &["config", "jwt_secret", "jwt_secret_file"];

impl Config {
    /// Loads the configuration. `file` is the explicit `--config`/`PULSEBOARD_CONFIG` path, which
    /// must exist; without it `./config.yaml` is read when present.
    pub fn load(file: Option<PathBuf>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Yaml::string(DEFAULTS_YAML));
        match file {
            Some(path) => {
                std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                figment = figment.merge(Yaml::file_exact(path));
            }
            None => {
                let path = PathBuf::from("config.yaml");
                if path.is_file() {
                    figment = figment.merge(Yaml::file_exact(path));
                }
            }
        }
        figment = figment
            .merge(Env::prefixed("PULSEBOARD_").split("__").ignore(NOT_KEYS))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(
                Env::raw()
                    .only(&["SMTP_URL"])
                    .map(|_| "mail.smtp_url".into()),
            )
            .merge(
                Env::raw()
                    .only(&["AMQP_URL"])
                    .map(|_| "jobs.amqp_url".into()),
            );
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    /// The database URL to connect to: the configured one, or SQLite in the data folder.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("pulseboard.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }
}

/// Origins a development server also allows, so that a web app served on another local port works
/// out of the box; never in effect in production.
pub const DEVELOPMENT_ORIGINS: &[&str] = &[
    "http://localhost",
    "http://localhost:80",
    "http://127.0.0.1",
];

impl Config {
    /// Browser origins allowed to call the API with credentials (CORS) and to send state-changing
    /// requests (CSRF): `http.cors_origins`, plus [`DEVELOPMENT_ORIGINS`] in development.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self
            .http
            .cors_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        if self.env == RunMode::Development {
            origins.extend(DEVELOPMENT_ORIGINS.iter().map(|o| (*o).to_owned()));
        }
        origins.sort();
        origins.dedup();
        origins
    }

    /// The origin (scheme://host[:port]) of `http.public_url`.
    pub fn public_origin(&self) -> String {
        let url = self.http.public_url.trim_end_matches('/');
        match url.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.split('/').next().unwrap_or(rest);
                format!(
                    "{}://{}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase()
                )
            }
            None => url.to_owned(),
        }
    }

    /// `http.trusted_proxies` parsed (validated at load, so nothing is dropped here).
    pub fn trusted_proxies(&self) -> Vec<ipnet::IpNet> {
        self.http
            .trusted_proxies
            .iter()
            .filter_map(|p| parse_net(p))
            .collect()
    }

    /// Password hashes computed at once: `auth.hash_concurrency`, or the number of cores.
    pub fn hash_concurrency(&self) -> usize {
        match self.auth.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// The error for a key whose value is not allowed, naming the key, the value and the rule.
fn bad(key: &str, value: &dyn std::fmt::Display, allowed: &str) -> Result<(), ConfigError> {
    Err(ConfigError(format!(
        "invalid config key `{key}` = `{value}`: {allowed}"
    )))
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError(format!(
            "invalid config key `{key}` = `0`: must be greater than 0"
        )))
    } else {
        Ok(())
    }
}

/// Hides the password of a URL (`scheme://user:***@host`) before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{host}");
        }
    }
    url.to_owned()
}

fn describe_figment_error(err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(p)) => format!(" (from {})", p.display()),
                    _ if m.name.contains("environment") => {
                        let var = if key.is_empty() {
                            String::new()
                        } else {
                            format!(" PULSEBOARD_{}", key.to_uppercase().replace('.', "__"))
                        };
                        format!(" (from the environment{var})")
                    }
                    _ => String::new(),
                })
                .unwrap_or_default();
            if key.is_empty() {
                format!("invalid configuration{source}: {}", e.kind)
            } else {
                format!("invalid config key `{key}`{source}: {}", e.kind)
            }
        })
        .collect();
    ConfigError(lines.join("\n"))
}

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in_jail() -> Result<Config, ConfigError> {
        Config::load(None)
    }

    #[test]
    fn defaults_are_valid() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let c = load_in_jail().expect("defaults load");
            assert_eq!(c.http.port, 8080);
            assert_eq!(c.monitor.max_retries, 2);
            assert_eq!(c.env, RunMode::Development);
            assert!(c.database_url().starts_with("sqlite://"));
            Ok(())
        });
    }

    #[test]
    fn env_overrides_key_by_key() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("PULSEBOARD_HTTP__PORT", "9000");
            jail.set_env("PULSEBOARD_MONITOR__MAX_RETRIES", "3");
            jail.set_env("PULSEBOARD_DATA_DIR", "/tmp/pb-data");
            jail.set_env("PULSEBOARD_CONFIG", "ignored-here.yaml");
            jail.set_env("DATABASE_URL", "postgres://u@h/db");
            let c = load_in_jail().expect("loads");
            assert_eq!(c.http.port, 9000);
            assert_eq!(c.monitor.max_retries, 3);
            assert_eq!(c.data_dir, PathBuf::from("/tmp/pb-data"));
            assert_eq!(c.database_url(), "postgres://u@h/db");
            assert_eq!(c.http.host, "0.0.0.0", "untouched keys keep their default");
            Ok(())
        });
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("config.yaml", "http:\n  port: 7000\n  host: 127.0.0.1\n")?;
            jail.set_env("PULSEBOARD_HTTP__PORT", "7001");
            let c = load_in_jail().expect("loads");
            assert_eq!(c.http.port, 7001);
            assert_eq!(c.http.host, "127.0.0.1");
            Ok(())
        });
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("PULSEBOARD_HTTP__PORT", "eighty");
            let err = load_in_jail().unwrap_err().0;
            assert!(err.contains("`http.port`"), "{err}");
            assert!(err.contains("PULSEBOARD_HTTP__PORT"), "{err}");
            assert!(err.contains("eighty"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_refused() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("config.yaml", "http:\n  prot: 7000\n")?;
            let err = load_in_jail().unwrap_err().0;
            assert!(err.contains("prot"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn malformed_yaml_is_a_clear_error() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("config.yaml", "http: [unclosed\n")?;
            let err = load_in_jail().unwrap_err().0;
            assert!(err.contains("config.yaml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let err = Config::load(Some("nope.yaml".into())).unwrap_err().0;
            assert!(err.contains("nope.yaml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn semantic_checks_name_key_value_and_rule() {
        let cases = [
            (
                "PULSEBOARD_SCHEDULES__DIGEST__CRON",
                "every day",
                "schedules.digest.cron",
            ),
            (
                "PULSEBOARD_SCHEDULES__MONITOR__TIMEZONE",
                "Mars/Base",
                "schedules.monitor.timezone",
            ),
            ("PULSEBOARD_JOBS__CONCURRENCY", "0", "jobs.concurrency"),
            ("PULSEBOARD_JOBS__LEASE_SECS", "1", "jobs.lease_secs"),
            ("DATABASE_URL", "mysql://x", "database.url"),
            ("AMQP_URL", "redis://x", "jobs.amqp_url"),
            ("PULSEBOARD_JOBS__AMQP_PREFIX", "a b", "jobs.amqp_prefix"),
            ("PULSEBOARD_JOBS__AMQP_PREFETCH", "0", "jobs.amqp_prefetch"),
            (
                "PULSEBOARD_JOBS__AMQP_REPUBLISH_SECS",
                "0",
                "jobs.amqp_republish_secs",
            ),
            (
                "PULSEBOARD_HTTP__CORS_ORIGINS",
                "[http://a.example/path]",
                "http.cors_origins",
            ),
            ("PULSEBOARD_LOGGING__LEVEL", "loud", "logging.level"),
            ("PULSEBOARD_ENV", "staging", "env"),
            ("PULSEBOARD_BLOBS__URL", "gs://bucket", "blobs.url"),
            ("PULSEBOARD_BLOBS__URL", "s3://No_Such", "blobs.url"),
            ("PULSEBOARD_BLOBS__URL", "file://relative", "blobs.url"),
            ("PULSEBOARD_BLOBS__ENDPOINT", "minio:9000", "blobs.endpoint"),
            (
                "PULSEBOARD_BLOBS__ENDPOINT",
                "http://127.0.0.1:9000",
                "blobs.allow_http",
            ),
            (
                "PULSEBOARD_SCREENSHOTS__MAX_PAGES",
                "0",
                "screenshots.max_pages",
            ),
            (
                "PULSEBOARD_SCREENSHOTS__TIMEOUT_SECS",
                "0",
                "screenshots.timeout_secs",
            ),
            (
                "PULSEBOARD_SCREENSHOTS__VIEWPORT_WIDTH",
                "10",
                "screenshots.viewport_width",
            ),
            (
                "PULSEBOARD_HTTP__UPLOAD_TIMEOUT_SECS",
                "5",
                "http.upload_timeout_secs",
            ),
            (
                "PULSEBOARD_HTTP__HEADER_READ_TIMEOUT_SECS",
                "0",
                "http.header_read_timeout_secs",
            ),
            (
                "PULSEBOARD_HTTP__KEEP_ALIVE_TIMEOUT_SECS",
                "0",
                "http.keep_alive_timeout_secs",
            ),
            (
                "PULSEBOARD_HTTP__MAX_CONNECTIONS",
                "0",
                "http.max_connections",
            ),
            (
                "PULSEBOARD_HTTP__MAX_CONNECTIONS",
                "2000000",
                "http.max_connections",
            ),
            (
                "PULSEBOARD_HTTP__TRUSTED_PROXIES",
                "[10.0.0.0/33]",
                "http.trusted_proxies",
            ),
            (
                "PULSEBOARD_HTTP__TRUSTED_PROXIES",
                "[proxy.internal]",
                "http.trusted_proxies",
            ),
            (
                "PULSEBOARD_HTTP__IMPORTS_PER_USER",
                "0",
                "http.imports_per_user",
            ),
            (
                "PULSEBOARD_AUTH__LOGIN_ACCOUNT_MAX_FAILURES",
                "0",
                "auth.login_account_max_failures",
            ),
            (
                "PULSEBOARD_AUTH__LOGIN_ACCOUNT_MAX_FAILURES",
                "3",
                "auth.login_account_max_failures",
            ),
            (
                "PULSEBOARD_AUTH__LOGIN_WINDOW_SECS",
                "700000",
                "auth.login_window_secs",
            ),
            (
                "PULSEBOARD_AUTH__HASH_CONCURRENCY",
                "5000",
                "auth.hash_concurrency",
            ),
        ];
        for (var, value, key) in cases {
            Jail::expect_with(|jail| {
                jail.clear_env();
                jail.set_env(var, value);
                let err = load_in_jail().unwrap_err().0;
                assert!(err.contains(key), "{var}={value}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("smtps://me:secret@mail.example:465"),
            "smtps://me:***@mail.example:465"
        );
        assert_eq!(
            redact_url("postgres://localhost/db"),
            "postgres://localhost/db"
        );
    }
}
