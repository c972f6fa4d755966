//! Configuration: the `config.yaml` compiled into the binary, then an optional file, then the
//! environment, each overriding the one before key by key. Everything is validated here, once, at
//! start-up: an invalid value is an error that names the key, the value and what is allowed.

use figment::{
    providers::{Env, Format, Yaml},
    Figment,
};
use serde::Deserialize;
use std::path::PathBuf;

mod sections;
mod validate;

pub use sections::*;

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
    pub backup: Backup,
    pub alerts: Alerts,
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

    /// Where scheduled backups go: `backup.dir`, or `<data_dir>/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        if self.backup.dir.as_os_str().is_empty() {
            self.data_dir.join("backups")
        } else {
            self.backup.dir.clone()
        }
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
            ("PULSEBOARD_BACKUP__SCHEDULE", "nightly", "backup.schedule"),
            ("PULSEBOARD_BACKUP__KEEP", "0", "backup.keep"),
            (
                "PULSEBOARD_ALERTS__TELEGRAM_API_URL",
                "api.telegram.org",
                "alerts.telegram_api_url",
            ),
            (
                "PULSEBOARD_ALERTS__TELEGRAM_API_URL",
                "https://",
                "alerts.telegram_api_url",
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
    fn scheduled_backups_are_off_by_default_and_a_zone_is_checked_with_a_schedule() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let c = load_in_jail().expect("defaults load");
            assert_eq!(c.backup.schedule, "");
            assert_eq!(c.backup_dir(), c.data_dir.join("backups"));
            // Off: a zone nobody uses is not an error.
            jail.set_env("PULSEBOARD_BACKUP__TIMEZONE", "Mars/Base");
            load_in_jail().expect("an unused zone is not checked");
            jail.set_env("PULSEBOARD_BACKUP__SCHEDULE", "0 0 3 * * *");
            let err = load_in_jail().unwrap_err().0;
            assert!(
                err.contains("backup.timezone") && err.contains("Mars/Base"),
                "{err}"
            );
            jail.set_env("PULSEBOARD_BACKUP__TIMEZONE", "Europe/Moscow");
            jail.set_env("PULSEBOARD_BACKUP__DIR", "/srv/backups");
            let c = load_in_jail().expect("a schedule, a zone and a folder");
            assert_eq!(c.backup_dir(), PathBuf::from("/srv/backups"));
            assert_eq!(c.backup.keep, 7);
            Ok(())
        });
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
