//! Test harness: the real application on a random port, against a fresh database.
//!
//! Backend: SQLite in a temporary folder by default; PostgreSQL when `DATABASE_URL` is a
//! postgres:// URL, in which case every test gets its own database, dropped afterwards (also when
//! the test fails). If PostgreSQL was asked for and cannot be reached, tests fail loudly.
#![allow(dead_code)]

pub mod proxy;
pub mod smtp;

use figment::providers::{Format, Yaml};
use figment::Figment;
use pulseboard::{App, Running};
use pulseboard_config::{Config, DEFAULTS_YAML};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::PathBuf;

pub const PASSWORD: &str = "correct horse battery";

pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut c = Config::from_figment(Figment::from(Yaml::string(DEFAULTS_YAML)))
        .expect("defaults are valid");
    c.data_dir = data_dir.to_path_buf();
    c.http.host = "127.0.0.1".into();
    c.http.port = 0;
    c.database.url = String::new();
    // Argon2 at full strength makes every registration cost ~50 ms; the tests need it correct,
    // not slow.
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    // Suites register users in parallel; the bounded hashing queue has tests of its own.
    c.auth.hash_queue = 10_000;
    c.jobs.poll_interval_ms = 50;
    c.jobs.backoff_base_ms = 50;
    c.jobs.shutdown_grace_secs = 5;
    c
}

/// A PostgreSQL database made for one test and dropped with it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("pb_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
            panic!("DATABASE_URL asks for PostgreSQL at {admin_url}, but it cannot be reached: {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url, String::new()),
        };
        let base = match base.rfind('/') {
            Some(i) if base[..i].contains("://") && i > base.find("://").unwrap() + 2 => &base[..i],
            _ => base,
        };
        Self {
            url: format!("{base}/{name}{query}"),
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime that is shutting down: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            })
        })
        .join();
    }
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// RabbitMQ for every test of this run: `AMQP_URL` set means the whole suite runs its jobs
/// through the broker (`.ci/run` does that for the job and mail tests).
pub fn amqp_url_from_env() -> Option<String> {
    std::env::var("AMQP_URL").ok().filter(|u| !u.is_empty())
}

/// The broker the RabbitMQ-specific tests use, whether or not the suite runs on it.
pub fn amqp_test_url() -> String {
    amqp_url_from_env()
        .or_else(|| std::env::var("PULSEBOARD_TEST_AMQP_URL").ok())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Queues and exchange under a prefix made for one test, deleted with it.
pub struct AmqpTopology(pub pulseboard_jobs::amqp::AmqpOptions);

impl AmqpTopology {
    pub fn options(url: &str, prefix: &str) -> pulseboard_jobs::amqp::AmqpOptions {
        pulseboard_jobs::amqp::AmqpOptions {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            prefetch: 64,
            quorum: false,
            republish_after: std::time::Duration::from_secs(600),
            poll_interval: std::time::Duration::from_millis(50),
        }
    }
}

impl Drop for AmqpTopology {
    fn drop(&mut self) {
        let opts = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = pulseboard_jobs::amqp::delete_topology(&opts, pulseboard_jobs::ALL_QUEUES)
                    .await;
            })
        })
        .join();
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub app: App,
    pub data_dir: PathBuf,
    running: Option<Running>,
    pub amqp: Option<AmqpTopology>,
    _pg: Option<PgDatabase>,
    _tmp: tempdir::Dir,
}

pub mod tempdir {
    /// A temporary folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir()
                .join(format!("pulseboard-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub struct Options {
    pub worker: bool,
    pub scheduler: bool,
}

impl TestApp {
    /// The API only.
    pub async fn spawn() -> Self {
        Self::spawn_with(
            Options {
                worker: false,
                scheduler: false,
            },
            |_| {},
        )
        .await
    }

    /// API plus a worker.
    pub async fn spawn_with_worker() -> Self {
        Self::spawn_with(
            Options {
                worker: true,
                scheduler: false,
            },
            |_| {},
        )
        .await
    }

    pub async fn spawn_with(opts: Options, tweak: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempdir::Dir::new();
        let mut config = test_config(&tmp.0);
        let pg = match postgres_admin_url() {
            Some(admin) => Some(PgDatabase::create(&admin).await),
            None => None,
        };
        if let Some(pg) = &pg {
            config.database.url = pg.url.clone();
        }
        if let Some(url) = amqp_url_from_env() {
            config.jobs.amqp_url = url;
        }
        tweak(&mut config);
        // A test on RabbitMQ gets queues of its own, unless it chose a prefix (to share them).
        let amqp = (!config.jobs.amqp_url.is_empty()).then(|| {
            if config.jobs.amqp_prefix == "pulseboard" {
                config.jobs.amqp_prefix = format!("pb_test_{}", uuid::Uuid::new_v4().simple());
            }
            AmqpTopology(AmqpTopology::options(
                &config.jobs.amqp_url,
                &config.jobs.amqp_prefix,
            ))
        });
        let data_dir = config.data_dir.clone();
        let app = App::build(config, true).await.expect("app builds");
        let running = pulseboard::start(&app, true, opts.worker, opts.scheduler, None, None)
            .await
            .expect("app starts");
        let base = format!("http://127.0.0.1:{}", running.addr.port());
        Self {
            client: client(),
            base,
            app,
            data_dir,
            running: Some(running),
            amqp,
            _pg: pg,
            _tmp: tmp,
        }
    }

    /// Environment for another `pulseboard` process on the same database (and broker queues).
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "PULSEBOARD_DATA_DIR".into(),
                self.data_dir.display().to_string(),
            ),
            ("DATABASE_URL".into(), self.app.config.database_url()),
            ("AMQP_URL".into(), self.app.config.jobs.amqp_url.clone()),
        ];
        if !self.app.config.jobs.amqp_url.is_empty() {
            env.push((
                "PULSEBOARD_JOBS__AMQP_PREFIX".into(),
                self.app.config.jobs.amqp_prefix.clone(),
            ));
        }
        env
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Another browser: its own cookie jar.
    pub fn new_client(&self) -> reqwest::Client {
        client()
    }

    pub async fn register(&self, client: &reqwest::Client, email: &str) -> Value {
        let r = client
            .post(self.url("/user"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "register {email}");
        r.json().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        self.app.db.close().await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Polls `f` until it returns Some, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `GET url` with an optional `If-None-Match`: (status, ETag, Cache-Control, body bytes).
pub async fn conditional_get(
    c: &reqwest::Client,
    url: String,
    if_none_match: Option<&str>,
) -> (StatusCode, String, String, Vec<u8>) {
    let mut req = c.get(url);
    if let Some(tags) = if_none_match {
        req = req.header("if-none-match", tags);
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (status, etag, cache) = (r.status(), header("etag"), header("cache-control"));
    (status, etag, cache, r.bytes().await.unwrap().to_vec())
}
