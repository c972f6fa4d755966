//! The sections of the configuration, one struct per top-level key of `config.yaml`; re-exported
//! from the crate root, so their paths are `pulseboard_config::Http` and so on.

use serde::Deserialize;
use std::path::PathBuf;

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

/// Scheduled backups, taken by the process that runs the scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// A cron expression with seconds; empty: no scheduled backups.
    pub schedule: String,
    pub timezone: String,
    /// Empty: `<data_dir>/backups` (see `Config::backup_dir`).
    pub dir: PathBuf,
    /// Scheduled backups kept; the oldest beyond are deleted after each new one.
    pub keep: usize,
}

/// Notification channels (`/channels`). Their HTTP deliveries pass the SSRF guard of `monitor`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// The Telegram Bot API base URL (a local fake in tests, or a self-hosted Bot API server).
    pub telegram_api_url: String,
}
