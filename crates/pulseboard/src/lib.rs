//! Wiring: configuration, logging, database, and the processes each subcommand runs.

pub mod backup;
pub mod cli;
mod secrets;
mod telemetry;

use anyhow::{bail, Context as _};
use cli::{Cli, Command, UserAction};
use pulseboard_config::{Config, RunMode};
use pulseboard_domain::{Email, Role, Timestamp};
use pulseboard_jobs::amqp::AmqpOptions;
use pulseboard_jobs::scheduler::{Entry, Pending, Scheduler};
use pulseboard_jobs::worker::{Worker, WorkerOptions};
use pulseboard_jobs::{handlers, Context, Queue, QueueOptions, ALL_QUEUES};
use pulseboard_mail::Mailer;
use pulseboard_storage::blobs::{BlobSettings, Blobs};
use pulseboard_storage::{ConnectOptions, Db};
use pulseboard_web::{AppState, Keys};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.clone())?;
    let command = cli.command.unwrap_or(Command::All);
    let _guard = telemetry::init(
        &config,
        matches!(
            command,
            Command::User { .. }
                | Command::Migrate
                | Command::Backup { .. }
                | Command::Restore { .. }
        ),
        telemetry::log_file_name(&command),
    )?;
    match command {
        Command::All => run_processes(config, true, true, true, None, None).await,
        Command::Serve => run_processes(config, true, false, false, None, None).await,
        Command::Worker {
            queues,
            concurrency,
        } => {
            run_processes(
                config,
                false,
                true,
                false,
                queues,
                concurrency.map(usize::from),
            )
            .await
        }
        Command::Scheduler => run_processes(config, false, false, true, None, None).await,
        Command::Migrate => {
            let db = open_db(&config).await?;
            db.migrate().await?;
            println!("migrations applied ({})", db.backend().name());
            Ok(())
        }
        Command::User { action } => {
            let db = open_db(&config).await?;
            db.migrate().await?;
            let (email, role) = match action {
                UserAction::Promote { email } => (email, Role::Admin),
                UserAction::Demote { email } => (email, Role::User),
            };
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if !pulseboard_storage::users::set_role(&db, &email, role, Timestamp::now()).await? {
                bail!("no account with email {email}");
            }
            println!("{email} is now {}", role.as_str());
            Ok(())
        }
        Command::Backup { to } => {
            let report = backup::backup(&config, to).await?;
            for line in &report.lines {
                println!("{line}");
            }
            Ok(())
        }
        Command::Restore { path, force } => {
            let report = backup::restore(&config, &path, force).await?;
            for line in &report.lines {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Opens the database, creating the data folder for SQLite.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
    }
    Ok(Db::connect(
        &url,
        &ConnectOptions {
            max_connections: config.database.max_connections,
            busy_timeout: Duration::from_millis(config.database.busy_timeout_ms),
            connect_timeout: Duration::from_secs(config.database.connect_timeout_secs),
        },
    )
    .await?)
}

/// Everything a running process needs, built once.
pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub queue: Queue,
    pub mailer: Mailer,
    pub keys: Arc<Keys>,
    pub logins: Arc<pulseboard_web::auth::Logins>,
    /// Bounded password hashing, with the start-up dummy hash for unknown emails.
    pub passwords: Arc<pulseboard_web::auth::Passwords>,
    /// Turns "a resource was added" into a due sweep soon (its first check).
    pub due_nudge: pulseboard_jobs::nudge::DueNudge,
    /// ZIP imports being received by this process, per user.
    pub uploading: Arc<pulseboard_web::routes::imports::Uploading>,
    pub signing_key: Arc<Vec<u8>>,
    /// Availability checks and the SSRF guard, shared by the API and every worker of this
    /// process.
    pub checker: Arc<pulseboard_watch::checker::Checker>,
    /// Screenshot images (`blobs.url`: local folder or S3), shared by the API and the workers.
    pub blobs: Blobs,
    /// Screenshot capture: one lazily launched Chromium for the workers of this process.
    pub capturer: Arc<pulseboard_watch::capture::Capturer>,
    /// Deliveries to notification channels, through the checker's SSRF guard.
    pub notifier: Arc<pulseboard_watch::alerts::Notifier>,
    /// Some when RabbitMQ carries the jobs (`jobs.amqp_url` / AMQP_URL).
    pub amqp: Option<AmqpOptions>,
}

impl App {
    pub async fn build(config: Config, migrate: bool) -> anyhow::Result<Self> {
        ensure_writable(&config)?;
        let db = open_db(&config).await?;
        if migrate {
            db.migrate().await?;
        }
        let secret = secrets::jwt_secret(&config)?;
        let mailer = if config.mail.smtp_url.is_empty() {
            Mailer::outbox(&config.mail.from, config.data_dir.join("outbox"))?
        } else {
            Mailer::smtp(
                &config.mail.from,
                &config.mail.smtp_url,
                Duration::from_secs(config.mail.timeout_secs),
            )?
        };
        let queue = Queue::new(
            db.clone(),
            QueueOptions {
                max_attempts: config.jobs.max_attempts,
            },
        );
        let checker = Arc::new(pulseboard_watch::checker::Checker::new(&config.monitor));
        let blobs = open_blobs(&config, std::env::vars())?;
        let notifier = Arc::new(
            pulseboard_watch::alerts::Notifier::new(
                checker.guard().clone(),
                &config.alerts.telegram_api_url,
            )
            .map_err(|e| anyhow::anyhow!("alerts.telegram_api_url: {e}"))?,
        );
        // A capture must end before its job's timeout does, so that it can close its tab.
        let mut shots = config.screenshots.clone();
        shots.timeout_secs = shots
            .timeout_secs
            .min(config.jobs.timeout_secs.saturating_sub(5))
            .max(1);
        let capturer = Arc::new(pulseboard_watch::capture::Capturer::new(
            &shots,
            &config.monitor,
        ));
        let amqp = AmqpOptions::from_config(&config.jobs);
        let passwords = Arc::new(pulseboard_web::auth::Passwords::new(&config));
        let due_nudge = pulseboard_jobs::nudge::DueNudge::start(queue.clone());
        Ok(Self {
            passwords,
            due_nudge,
            uploading: Arc::default(),
            blobs,
            capturer,
            notifier,
            amqp,
            checker,
            config: Arc::new(config),
            db,
            queue,
            mailer,
            keys: Arc::new(Keys::from_secret(&secret)),
            logins: Arc::default(),
            signing_key: Arc::new(secret),
        })
    }

    pub fn state(&self) -> AppState {
        AppState {
            config: self.config.clone(),
            db: self.db.clone(),
            queue: self.queue.clone(),
            keys: self.keys.clone(),
            logins: self.logins.clone(),
            signing_key: self.signing_key.clone(),
            checker: self.checker.clone(),
            blobs: self.blobs.clone(),
            passwords: self.passwords.clone(),
            due_nudge: self.due_nudge.clone(),
            uploading: self.uploading.clone(),
            trusted_proxies: Arc::new(self.config.trusted_proxies()),
        }
    }

    pub fn job_context(&self) -> Context {
        Context {
            db: self.db.clone(),
            queue: self.queue.clone(),
            mailer: self.mailer.clone(),
            public_url: self.config.http.public_url.clone(),
            signing_key: self.signing_key.clone(),
            checker: self.checker.clone(),
            blobs: self.blobs.clone(),
            capturer: self.capturer.clone(),
            notifier: self.notifier.clone(),
            max_attempts: self.config.jobs.max_attempts,
        }
    }

    pub fn worker(
        &self,
        queues: Option<Vec<String>>,
        concurrency: Option<usize>,
    ) -> anyhow::Result<Worker> {
        let j = &self.config.jobs;
        let queues = queues.unwrap_or_else(|| ALL_QUEUES.iter().map(|q| q.to_string()).collect());
        if let Some(unknown) = queues.iter().find(|q| !ALL_QUEUES.contains(&q.as_str())) {
            bail!(
                "unknown queue {unknown:?} in --queues: known queues are {}",
                ALL_QUEUES.join(", ")
            );
        }
        Ok(Worker::new(
            self.job_context(),
            WorkerOptions {
                queues,
                concurrency: concurrency.unwrap_or(j.concurrency),
                poll_interval: Duration::from_millis(j.poll_interval_ms),
                timeout: Duration::from_secs(j.timeout_secs),
                lease: Duration::from_secs(j.lease_secs),
                backoff_base: Duration::from_millis(j.backoff_base_ms),
                backoff_max: Duration::from_secs(j.backoff_max_secs),
                shutdown_grace: Duration::from_secs(j.shutdown_grace_secs),
                amqp: self.amqp.clone(),
            },
        ))
    }

    pub fn scheduler(&self) -> anyhow::Result<Scheduler> {
        let s = &self.config.schedules;
        let retention_days = self.config.jobs.retention_days;
        let mut entries = vec![
            Entry::new("digest", &s.digest.cron, &s.digest.timezone, |_| {
                Pending::of(&handlers::DigestSweep {})
            })
            .map_err(anyhow::Error::msg)?,
            Entry::new("cleanup", &s.cleanup.cron, &s.cleanup.timezone, move |_| {
                Pending::of(&handlers::Cleanup { retention_days })
            })
            .map_err(anyhow::Error::msg)?,
            Entry::new("monitor", &s.monitor.cron, &s.monitor.timezone, |round| {
                Pending::of(&handlers::MonitorSweep { round })
            })
            .map_err(anyhow::Error::msg)?,
            Entry::new(
                "monitor_due",
                &s.monitor_due.cron,
                &s.monitor_due.timezone,
                |at| Pending::of(&handlers::MonitorDue { at }),
            )
            .map_err(anyhow::Error::msg)?
            .quiet(),
        ];
        entries.extend(backup::schedule_entry(&self.config)?);
        Ok(Scheduler::new(self.queue.clone(), entries))
    }
}

/// The blob store `blobs.*` names, with credentials from the `AWS_*` variables of `env`
/// (`std::env::vars()`; tests pass their own).
pub fn open_blobs(
    config: &Config,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Blobs> {
    let b = &config.blobs;
    let settings = BlobSettings {
        url: b.url.clone(),
        local_dir: config.data_dir.join("blobs"),
        endpoint: Some(b.endpoint.clone()),
        region: Some(b.region.clone()),
        allow_http: b.allow_http,
        timeout: Duration::from_secs(b.timeout_secs),
    };
    let blobs = Blobs::open(&settings, env)?;
    tracing::debug!(store = blobs.describe(), "blob store");
    Ok(blobs)
}

/// Fails early, with the path, when the data folder cannot be written (SQLite, outbox, keys).
fn ensure_writable(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").with_context(|| {
        format!(
            "data directory {} is not writable (set PULSEBOARD_DATA_DIR)",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A handle on a running instance (used by `main` and by the tests).
pub struct Running {
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
}

impl Running {
    /// Asks every part to stop and waits until they have.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        while let Some(r) = self.tasks.join_next().await {
            r??;
        }
        Ok(())
    }
}

/// Starts the chosen parts; returns once they are listening/running.
pub async fn start(
    app: &App,
    serve: bool,
    work: bool,
    schedule: bool,
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
) -> anyhow::Result<Running> {
    let (tx, rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    if serve {
        let host = if app.config.http.host == "localhost" {
            "127.0.0.1"
        } else {
            &app.config.http.host
        };
        let bind = format!("{host}:{}", app.config.http.port);
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| {
                format!("cannot listen on {bind} (is the port in use? set PULSEBOARD_HTTP__PORT)")
            })?;
        addr = listener.local_addr()?;
        tracing::info!(%addr, database = app.db.backend().name(), "serving on http://{addr}");
        let state = app.state();
        let mut rx = rx.clone();
        tasks.spawn(async move {
            pulseboard_web::serve(listener, state, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
            .context("HTTP server failed")
        });
    }
    if work {
        let worker = app.worker(queues, concurrency)?;
        let rx = rx.clone();
        let capturer = app.capturer.clone();
        tasks.spawn(async move {
            worker.run(rx).await;
            // The capture browser, if one was launched, goes with the worker.
            capturer.shutdown().await;
            Ok(())
        });
    }
    // Every process relays the outbox to RabbitMQ: jobs enqueued here go out without waiting for
    // another process, and any one process left running is enough to drain it.
    if let Some(amqp) = app.amqp.clone() {
        tracing::info!(prefix = %amqp.prefix, "jobs go through RabbitMQ");
        let (db, wake, rx) = (app.db.clone(), app.queue.notifier(), rx.clone());
        tasks.spawn(async move {
            pulseboard_jobs::amqp::run_relay(db, amqp, wake, rx).await;
            Ok(())
        });
    }
    if schedule {
        let scheduler = app.scheduler()?;
        let rx = rx.clone();
        tasks.spawn(async move {
            scheduler.run(rx).await;
            Ok(())
        });
    }
    Ok(Running {
        addr,
        shutdown: tx,
        tasks,
    })
}

async fn run_processes(
    config: Config,
    serve: bool,
    work: bool,
    schedule: bool,
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
) -> anyhow::Result<()> {
    if config.env == RunMode::Production && config.mail.smtp_url.is_empty() && work {
        tracing::warn!("production mode without SMTP_URL: mail goes to the file outbox");
    }
    if config.env == RunMode::Production && serve && config.http.public_url.starts_with("http://") {
        tracing::warn!(
            public_url = %config.http.public_url,
            "production mode with an http:// public_url: serve the site over https (a TLS \
             proxy) and set http.public_url to its https:// address; cookies are Secure anyway"
        );
    }
    // Only processes that serve run migrations at start; workers and schedulers wait for them.
    let app = App::build(config, serve).await?;
    let running = start(&app, serve, work, schedule, queues, concurrency).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    let grace = Duration::from_secs(
        app.config
            .http
            .shutdown_grace_secs
            .max(app.config.jobs.shutdown_grace_secs)
            + 5,
    );
    match tokio::time::timeout(grace, running.stop()).await {
        Ok(r) => r?,
        Err(_) => tracing::warn!("shutdown took longer than {grace:?}; exiting anyway"),
    }
    app.db.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
