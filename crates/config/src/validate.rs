//! Validation of every key, one function per section: an invalid value is an error that names the
//! key, the value and what is allowed.

use super::{bad, parse_net, positive, redact_url, Config, ConfigError};
use std::str::FromStr;

impl Config {
    /// Every key, section by section; the first problem found is the error.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.validate_http()?;
        self.validate_database()?;
        self.validate_auth()?;
        self.validate_security()?;
        self.validate_jobs()?;
        self.validate_schedules()?;
        self.validate_backup()?;
        self.validate_monitor()?;
        self.validate_alerts()?;
        self.validate_mail()?;
        self.validate_logging()?;
        self.validate_blobs_and_screenshots()
    }

    /// The data folder and the `http` section.
    fn validate_http(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", &"", "must be a folder path");
        }
        if self.http.host.parse::<std::net::IpAddr>().is_err() && self.http.host != "localhost" {
            return bad(
                "http.host",
                &self.http.host,
                "must be an IP address to listen on, e.g. 0.0.0.0 or 127.0.0.1",
            );
        }
        if !(self.http.public_url.starts_with("http://")
            || self.http.public_url.starts_with("https://"))
        {
            return bad(
                "http.public_url",
                &self.http.public_url,
                "must start with http:// or https://",
            );
        }
        for origin in &self.http.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.trim_end_matches('/').contains(['?', '#', ' '])
                && origin.matches('/').count() == 2;
            if !ok {
                return bad(
                    "http.cors_origins",
                    origin,
                    "each origin must be scheme://host[:port] with no path, e.g. http://localhost:3000",
                );
            }
        }
        positive(
            "http.json_body_limit_bytes",
            self.http.json_body_limit_bytes as u64,
        )?;
        positive(
            "http.upload_limit_bytes",
            self.http.upload_limit_bytes as u64,
        )?;
        positive("http.request_timeout_secs", self.http.request_timeout_secs)?;
        positive("http.imports_per_user", self.http.imports_per_user as u64)?;
        if self.http.upload_timeout_secs < self.http.request_timeout_secs {
            return bad(
                "http.upload_timeout_secs",
                &self.http.upload_timeout_secs,
                "must be at least http.request_timeout_secs",
            );
        }
        positive(
            "http.header_read_timeout_secs",
            self.http.header_read_timeout_secs,
        )?;
        positive(
            "http.keep_alive_timeout_secs",
            self.http.keep_alive_timeout_secs,
        )?;
        if !(1..=1_000_000).contains(&self.http.max_connections) {
            return bad(
                "http.max_connections",
                &self.http.max_connections,
                "must be from 1 to 1000000 (and below the open-file limit, ulimit -n)",
            );
        }
        Ok(())
    }

    /// The `database` section.
    fn validate_database(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return bad(
                "database.url",
                &redact_url(url),
                "must be empty (SQLite in data_dir), sqlite://path or postgres://user@host/db",
            );
        }
        positive(
            "database.max_connections",
            self.database.max_connections as u64,
        )?;
        Ok(())
    }

    /// The `auth` section (the login defences are in `validate_security`).
    fn validate_auth(&self) -> Result<(), ConfigError> {
        positive(
            "auth.access_token_ttl_secs",
            self.auth.access_token_ttl_secs,
        )?;
        positive(
            "auth.refresh_token_ttl_days",
            self.auth.refresh_token_ttl_days,
        )?;
        positive(
            "auth.login_max_failures",
            self.auth.login_max_failures as u64,
        )?;
        positive(
            "auth.login_ip_max_failures",
            self.auth.login_ip_max_failures as u64,
        )?;
        positive("auth.login_window_secs", self.auth.login_window_secs)?;
        if self.auth.login_window_secs > 7 * 86_400 {
            return bad(
                "auth.login_window_secs",
                &self.auth.login_window_secs,
                "must be at most 604800 (a week)",
            );
        }
        if self.auth.argon2_memory_kib < 8 {
            return bad(
                "auth.argon2_memory_kib",
                &self.auth.argon2_memory_kib,
                "must be at least 8",
            );
        }
        positive("auth.argon2_iterations", self.auth.argon2_iterations as u64)?;
        Ok(())
    }

    /// The `jobs` section.
    fn validate_jobs(&self) -> Result<(), ConfigError> {
        positive("jobs.concurrency", self.jobs.concurrency as u64)?;
        positive("jobs.poll_interval_ms", self.jobs.poll_interval_ms)?;
        positive("jobs.max_attempts", self.jobs.max_attempts as u64)?;
        positive("jobs.timeout_secs", self.jobs.timeout_secs)?;
        // Workers renew the leases of running jobs every lease_secs / 3, so a lease is independent
        // of how long a job runs; it needs room for a late renewal or two, not for the job.
        if self.jobs.lease_secs < 2 {
            return bad(
                "jobs.lease_secs",
                &self.jobs.lease_secs,
                "must be at least 2 (leases are renewed every lease_secs / 3)",
            );
        }
        let amqp = &self.jobs.amqp_url;
        if !(amqp.is_empty() || amqp.starts_with("amqp://") || amqp.starts_with("amqps://")) {
            return bad(
                "jobs.amqp_url",
                &redact_url(amqp),
                "must be empty (queue in the database), amqp://user:pass@host:5672/%2f or amqps://…:5671/%2f",
            );
        }
        if self.jobs.amqp_prefix.is_empty()
            || !self
                .jobs
                .amqp_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return bad(
                "jobs.amqp_prefix",
                &self.jobs.amqp_prefix,
                "must be letters, digits, '.', '_' or '-'",
            );
        }
        positive("jobs.amqp_prefetch", self.jobs.amqp_prefetch as u64)?;
        positive("jobs.amqp_republish_secs", self.jobs.amqp_republish_secs)?;
        Ok(())
    }

    /// The `schedules` section: cron expressions with seconds and IANA time zones.
    fn validate_schedules(&self) -> Result<(), ConfigError> {
        for (name, s) in [
            ("digest", &self.schedules.digest),
            ("monitor", &self.schedules.monitor),
            ("monitor_due", &self.schedules.monitor_due),
            ("cleanup", &self.schedules.cleanup),
        ] {
            if let Err(e) = cron::Schedule::from_str(&s.cron) {
                return bad(
                    &format!("schedules.{name}.cron"),
                    &s.cron,
                    &format!("must be a cron expression with seconds, e.g. \"0 0 0 * * *\" ({e})"),
                );
            }
            if s.timezone.parse::<chrono_tz::Tz>().is_err() {
                return bad(
                    &format!("schedules.{name}.timezone"),
                    &s.timezone,
                    "must be an IANA time zone name, e.g. UTC or Europe/Moscow",
                );
            }
        }
        Ok(())
    }

    /// The `backup` section: an empty schedule is off, so its time zone is checked only with one.
    fn validate_backup(&self) -> Result<(), ConfigError> {
        let b = &self.backup;
        if !b.schedule.trim().is_empty() {
            if let Err(e) = cron::Schedule::from_str(&b.schedule) {
                return bad(
                    "backup.schedule",
                    &b.schedule,
                    &format!(
                        "must be empty (off) or a cron expression with seconds, e.g. \"0 0 3 * * *\" ({e})"
                    ),
                );
            }
            if b.timezone.parse::<chrono_tz::Tz>().is_err() {
                return bad(
                    "backup.timezone",
                    &b.timezone,
                    "must be an IANA time zone name, e.g. UTC or Europe/Moscow",
                );
            }
        }
        if b.keep == 0 {
            return bad("backup.keep", &b.keep, "must be at least 1");
        }
        Ok(())
    }

    /// The `alerts` section.
    fn validate_alerts(&self) -> Result<(), ConfigError> {
        let url = &self.alerts.telegram_api_url;
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
        if host.is_none_or(str::is_empty) || url.chars().any(|c| c.is_whitespace()) {
            return bad(
                "alerts.telegram_api_url",
                url,
                "must be an http:// or https:// URL, e.g. https://api.telegram.org",
            );
        }
        Ok(())
    }

    /// The `monitor` section.
    fn validate_monitor(&self) -> Result<(), ConfigError> {
        positive("monitor.max_retries", self.monitor.max_retries as u64)?;
        positive("monitor.timeout_secs", self.monitor.timeout_secs)?;
        positive("monitor.concurrency", self.monitor.concurrency as u64)?;
        positive(
            "monitor.per_host_concurrency",
            self.monitor.per_host_concurrency as u64,
        )?;
        positive("monitor.batch_size", self.monitor.batch_size as u64)?;
        positive(
            "monitor.check_retention_days",
            self.monitor.check_retention_days as u64,
        )?;
        positive(
            "monitor.aggregate_retention_days",
            self.monitor.aggregate_retention_days as u64,
        )?;
        positive(
            "monitor.min_check_interval_secs",
            self.monitor.min_check_interval_secs,
        )?;
        if self.monitor.max_check_interval_secs < self.monitor.min_check_interval_secs {
            return bad(
                "monitor.max_check_interval_secs",
                &self.monitor.max_check_interval_secs,
                "must be at least monitor.min_check_interval_secs",
            );
        }
        Ok(())
    }

    /// The `mail` section.
    fn validate_mail(&self) -> Result<(), ConfigError> {
        if !self.mail.from.contains('@') {
            return bad(
                "mail.from",
                &self.mail.from,
                "must be an address like \"Name <noreply@example.com>\"",
            );
        }
        let smtp = &self.mail.smtp_url;
        if !(smtp.is_empty() || smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
            return bad(
                "mail.smtp_url",
                &redact_url(smtp),
                "must be empty (file outbox), smtp://user:pass@host:587 (STARTTLS) or smtps://…:465",
            );
        }
        Ok(())
    }

    /// The `logging` section.
    fn validate_logging(&self) -> Result<(), ConfigError> {
        if !["error", "warn", "info", "debug", "trace"].contains(&self.logging.level.as_str())
            && !self.logging.level.contains('=')
        {
            return bad(
                "logging.level",
                &self.logging.level,
                "must be error, warn, info, debug, trace or a filter like info,pulseboard=debug",
            );
        }
        if self.logging.file_max_bytes < 1024 {
            return bad(
                "logging.file_max_bytes",
                &self.logging.file_max_bytes,
                "must be at least 1024",
            );
        }
        positive("logging.buffer_lines", self.logging.buffer_lines as u64)?;
        if self.logging.default_lines == 0 || self.logging.default_lines > self.logging.buffer_lines
        {
            return bad(
                "logging.default_lines",
                &self.logging.default_lines,
                "must be between 1 and logging.buffer_lines",
            );
        }
        Ok(())
    }

    /// The keys of the login defences and the proxy list.
    fn validate_security(&self) -> Result<(), ConfigError> {
        for p in &self.http.trusted_proxies {
            if parse_net(p).is_none() {
                return Err(ConfigError(format!(
                    "invalid config key `http.trusted_proxies` entry `{p}`: each entry must be an IP \
                     address or a CIDR such as 10.0.0.0/8 or ::1/128"
                )));
            }
        }
        positive(
            "auth.login_account_max_failures",
            self.auth.login_account_max_failures as u64,
        )?;
        if self.auth.login_account_max_failures < self.auth.login_max_failures {
            return Err(ConfigError(format!(
                "invalid config key `auth.login_account_max_failures` = `{}`: must be at least \
                 auth.login_max_failures ({}), or one address could lock an account's owner out",
                self.auth.login_account_max_failures, self.auth.login_max_failures
            )));
        }
        if self.auth.hash_concurrency > 1024 {
            return Err(ConfigError(format!(
                "invalid config key `auth.hash_concurrency` = `{}`: must be 0 (the number of \
                 cores) to 1024",
                self.auth.hash_concurrency
            )));
        }
        Ok(())
    }

    fn validate_blobs_and_screenshots(&self) -> Result<(), ConfigError> {
        let b = &self.blobs;
        let url = b.url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-'
                })
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !bucket_ok {
                return bad(
                    "blobs.url",
                    &url,
                    "the bucket must be 3-63 lower-case letters, digits, '.' or '-' (s3://bucket[/prefix])",
                );
            }
            let prefix = prefix.trim_matches('/');
            let prefix_ok = prefix.is_empty()
                || prefix.split('/').all(|seg| {
                    !seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg.bytes().all(|c| c.is_ascii_graphic() && c != b'\\')
                });
            if !prefix_ok {
                return bad(
                    "blobs.url",
                    &url,
                    "the prefix must be folder names separated by '/', e.g. s3://bucket/pulseboard",
                );
            }
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return bad(
                    "blobs.url",
                    &url,
                    "file:// needs an absolute path, e.g. file:///var/lib/pulseboard/blobs",
                );
            }
        } else if !url.is_empty() {
            return bad(
                "blobs.url",
                &url,
                "must be empty (<data_dir>/blobs), file:///absolute/path or s3://bucket[/prefix]",
            );
        }
        let endpoint = b.endpoint.trim();
        if !endpoint.is_empty() {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return bad(
                    "blobs.endpoint",
                    &endpoint,
                    "must be empty (AWS_ENDPOINT_URL or AWS) or http(s)://host[:port]",
                );
            }
            if endpoint.starts_with("http://") && !b.allow_http {
                return bad(
                    "blobs.allow_http",
                    &b.allow_http,
                    "must be true to use the plain-http endpoint in blobs.endpoint",
                );
            }
        }
        positive("blobs.timeout_secs", b.timeout_secs)?;
        let s = &self.screenshots;
        if !(1..=16).contains(&s.max_pages) {
            return bad(
                "screenshots.max_pages",
                &s.max_pages,
                "must be from 1 to 16",
            );
        }
        positive("screenshots.timeout_secs", s.timeout_secs)?;
        if !(320..=3840).contains(&s.viewport_width) {
            return bad(
                "screenshots.viewport_width",
                &s.viewport_width,
                "must be from 320 to 3840 pixels",
            );
        }
        if !(200..=2160).contains(&s.viewport_height) {
            return bad(
                "screenshots.viewport_height",
                &s.viewport_height,
                "must be from 200 to 2160 pixels",
            );
        }
        Ok(())
    }
}
