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
        cleanup(async move {
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        });
    }
}

/// Runs a clean-up from `Drop`, which may run inside a runtime that is shutting down: on a
/// thread with a runtime of its own, waited for so that nothing outlives the test.
fn cleanup(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join();
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
        cleanup(async move {
            let _ =
                pulseboard_jobs::amqp::delete_topology(&opts, pulseboard_jobs::ALL_QUEUES).await;
        });
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
        Self::spawn_configured(|_| {}).await
    }

    /// The API only, with `tweak` applied to its configuration.
    pub async fn spawn_configured(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with(
            Options {
                worker: false,
                scheduler: false,
            },
            tweak,
        )
        .await
    }

    /// API plus a worker.
    pub async fn spawn_with_worker() -> Self {
        Self::spawn_with_worker_configured(|_| {}).await
    }

    /// API plus a worker, with `tweak` applied to their configuration.
    pub async fn spawn_with_worker_configured(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with(
            Options {
                worker: true,
                scheduler: false,
            },
            tweak,
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

    /// Registers `email` with [`PASSWORD`] from `client`: the new user and its tokens.
    pub async fn register(&self, client: &reqwest::Client, email: &str) -> Value {
        let r = self.register_response(client, email).await;
        r.json().await.unwrap()
    }

    /// Registers `email`: the whole response (its cookies, for a client without a jar).
    pub async fn register_response(
        &self,
        client: &reqwest::Client,
        email: &str,
    ) -> reqwest::Response {
        self.sign_in("/user", client, email).await
    }

    /// Logs `client` in as `email` (registered with [`PASSWORD`]): the whole response.
    pub async fn login(&self, client: &reqwest::Client, email: &str) -> reqwest::Response {
        self.sign_in("/session", client, email).await
    }

    async fn sign_in(
        &self,
        path: &str,
        client: &reqwest::Client,
        email: &str,
    ) -> reqwest::Response {
        client
            .post(self.url(path))
            .json(&json!({"email": email, "password": PASSWORD}))
            .expect_status(StatusCode::OK)
            .await
    }

    /// `url` added to the watch list of `c`'s user: the resource as the API shows it.
    pub async fn add_resource(&self, c: &reqwest::Client, url: &str) -> Value {
        let r = c
            .post(self.url("/resources"))
            .json(&json!({ "url": url }))
            .fetch()
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "add {url}");
        r.json().await.unwrap()
    }

    /// Enqueues `job` on the app's queue: the new job's id (the test fails when its idempotency
    /// key was already used).
    pub async fn enqueue<J: pulseboard_jobs::Job>(&self, job: &J) -> i64 {
        let id = self.app.queue.enqueue(job).await.unwrap();
        id.expect("a new job, not a duplicate")
    }

    /// Uploads `png` as the screenshot of the resource `uuid` of `c`'s user (201 expected).
    pub async fn upload_screenshot(&self, c: &reqwest::Client, uuid: &str, png: Vec<u8>) {
        c.post(self.url(&format!("/resources/{uuid}")))
            .multipart(file_form(png, "shot.png", "image/png"))
            .expect_status(StatusCode::CREATED)
            .await;
    }

    /// A database connection for a state no API makes (a backdated row) or a check no API shows.
    /// Use a storage function or the HTTP API wherever one exists.
    pub async fn sql(&self) -> pulseboard_storage::PoolConn {
        self.app.db.acquire().await.expect("database connection")
    }

    /// A registered user, as stored.
    pub async fn user(&self, email: &str) -> pulseboard_storage::users::User {
        let parsed = pulseboard_domain::Email::parse(email).unwrap();
        pulseboard_storage::users::by_email(&self.app.db, &parsed)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no user {email}"))
    }

    /// The one job of `kind` (the welcome mail of the only user, …), as stored.
    pub async fn job_of_kind(&self, kind: &str) -> pulseboard_storage::jobs::JobRow {
        let id: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1")
            .bind(kind)
            .fetch_one(&mut *self.sql().await)
            .await
            .unwrap_or_else(|e| panic!("one job of kind {kind}: {e}"));
        pulseboard_storage::jobs::get(&self.app.db, id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The value of a `SELECT COUNT(*) …` that no API reports.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&mut *self.sql().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Makes a registered user an administrator, as `pulseboard user promote` does.
    pub async fn promote(&self, email: &str) {
        self.set_role(email, pulseboard_domain::Role::Admin).await;
    }

    /// Takes administrator rights away again, as `pulseboard user demote` does.
    pub async fn demote(&self, email: &str) {
        self.set_role(email, pulseboard_domain::Role::User).await;
    }

    async fn set_role(&self, email: &str, role: pulseboard_domain::Role) {
        let parsed = pulseboard_domain::Email::parse(email).unwrap();
        let now = pulseboard_domain::Timestamp::now();
        let found = pulseboard_storage::users::set_role(&self.app.db, &parsed, role, now)
            .await
            .unwrap();
        assert!(found, "set the role of {email}: no such user");
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        self.app.db.close().await;
    }
}

/// Sending a request in a test: no answer at all (the app is gone) fails the test, so the
/// scenario reads as requests and assertions instead of `send().await.unwrap()` chains.
pub trait Fetch {
    /// The response, whatever its status.
    fn fetch(self) -> impl std::future::Future<Output = reqwest::Response>;
    /// The response, which must have status `want` (the failure names the request and shows the
    /// body).
    fn expect_status(
        self,
        want: StatusCode,
    ) -> impl std::future::Future<Output = reqwest::Response>;
    /// The JSON body of the response, which must have status `want`.
    fn expect_json(self, want: StatusCode) -> impl std::future::Future<Output = Value>;
    /// Only the status of the response.
    fn fetch_status(self) -> impl std::future::Future<Output = StatusCode>;
    /// The response body as JSON, whatever the status (assert the status first where it matters).
    fn fetch_json<T: serde::de::DeserializeOwned>(self) -> impl std::future::Future<Output = T>;
}

impl Fetch for reqwest::RequestBuilder {
    async fn fetch(self) -> reqwest::Response {
        self.send()
            .await
            .unwrap_or_else(|e| panic!("no answer: {e}"))
    }

    async fn expect_status(self, want: StatusCode) -> reqwest::Response {
        let r = self.fetch().await;
        if r.status() != want {
            let (status, url) = (r.status(), r.url().clone());
            let body = r.text().await.unwrap_or_default();
            panic!("{url}: expected {want}, got {status}: {body}");
        }
        r
    }

    async fn expect_json(self, want: StatusCode) -> Value {
        let r = self.expect_status(want).await;
        let url = r.url().clone();
        r.json()
            .await
            .unwrap_or_else(|e| panic!("{url} answered {want} without JSON: {e}"))
    }

    async fn fetch_status(self) -> StatusCode {
        self.fetch().await.status()
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(self) -> T {
        let r = self.fetch().await;
        let (status, url) = (r.status(), r.url().clone());
        r.json()
            .await
            .unwrap_or_else(|e| panic!("{url} answered {status} without the expected JSON: {e}"))
    }
}

/// A fake server for the rest of the test: every connection on `listener` is served by
/// `serve(state, stream)` in a task of its own, so a connection left hanging (a timeout test)
/// does not hold up the next; what `serve` returns is of no interest.
pub fn serve_each<S, F, Fut>(listener: tokio::net::TcpListener, state: S, serve: F)
where
    S: Clone + Send + 'static,
    F: Fn(S, tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(state.clone(), stream));
        }
    });
}

/// Reads up to the end of an HTTP request head: the bytes read (the head, perhaps the start of
/// the body), or None when the client hung up first.
pub async fn read_head(stream: &mut tokio::net::TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(buf))
}

/// A multipart form with one file in the field `file`, as the web app uploads one.
pub fn file_form(bytes: Vec<u8>, file_name: &str, mime: &str) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(file_name.to_owned())
        .mime_str(mime)
        .unwrap();
    reqwest::multipart::Form::new().part("file", part)
}

/// The PNG signature followed by `len` bytes of `fill`: what the upload's content check accepts.
pub fn png(fill: u8, len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.resize(b.len() + len, fill);
    b
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
    let r = req.fetch().await;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (status, etag, cache) = (r.status(), header("etag"), header("cache-control"));
    (status, etag, cache, r.bytes().await.unwrap().to_vec())
}
