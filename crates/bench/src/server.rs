//! The server under test: the real release binary in its own process, on a free port, with a fresh
//! data folder (and a fresh PostgreSQL database when asked).

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("target/release/pulseboard");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "pulseboard", "--quiet"])
        .current_dir(&root)
        .status()?;
    if !status.success() || !bin.exists() {
        bail!("cannot build target/release/pulseboard");
    }
    Ok(bin)
}

pub struct Server {
    pub base: String,
    child: Child,
    data: PathBuf,
    db: Option<(String, String)>,
    database_url: String,
}

impl Server {
    pub async fn start(
        bin: &Path,
        postgres: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> Result<Self> {
        let data = std::env::temp_dir().join(format!("pb-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let (database_url, db) = match postgres {
            Some(admin) => {
                let name = format!("pb_bench_{}", uuid::Uuid::new_v4().simple());
                psql(admin, &format!("CREATE DATABASE {name}"))?;
                let base = &admin[..admin.rfind('/').context("postgres URL needs a database")?];
                (format!("{base}/{name}"), Some((admin.to_owned(), name)))
            }
            None => (
                format!("sqlite://{}/pulseboard.db?mode=rwc", data.display()),
                None,
            ),
        };
        let mut cmd = Command::new(bin);
        cmd.arg("all")
            .env("PULSEBOARD_DATA_DIR", &data)
            .env("PULSEBOARD_HTTP__HOST", "127.0.0.1")
            .env("PULSEBOARD_HTTP__PORT", port.to_string())
            .env("PULSEBOARD_LOGGING__LEVEL", "warn")
            .env("PULSEBOARD_AUTH__LOGIN_IP_MAX_FAILURES", "1000000")
            .env("DATABASE_URL", &database_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let s = Server {
            base: format!("http://127.0.0.1:{port}"),
            child,
            data,
            db,
            database_url,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/readyz", s.base))
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            if Instant::now() > deadline {
                bail!("server did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(s)
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .pool_max_idle_per_host(256)
            .build()
            .unwrap()
    }

    pub async fn register(&self, client: &reqwest::Client, email: &str) -> Result<()> {
        let r = client
            .post(format!("{}/user", self.base))
            .json(&serde_json::json!({"email": email, "password": "benchmark password"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("register: {}", r.status());
        }
        Ok(())
    }

    /// Uploads a ZIP of `n` distinct URLs (a quarter each in .org, .com, .net and .io) and waits
    /// for the import to succeed. Returns the time from the start of the upload to `succeeded`.
    pub async fn import(&self, client: &reqwest::Client, n: usize) -> Result<Duration> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("urls.csv", zip::write::SimpleFileOptions::default())?;
        writeln!(zip, "url")?;
        for i in 0..n {
            let zone = ["org", "com", "net", "io"][i % 4];
            writeln!(zip, "https://host{i}.example.{zone}/path/{i}?id={i}")?;
        }
        let bytes = zip.finish()?.into_inner();
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name("urls.zip")
            .mime_str("application/zip")?;
        let started = Instant::now();
        let r = client
            .post(format!("{}/resources", self.base))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("upload: {} {}", r.status(), r.text().await?);
        }
        let id = r.json::<serde_json::Value>().await?["request_id"]
            .as_str()
            .context("request_id")?
            .to_owned();
        loop {
            let s: serde_json::Value = client
                .get(format!("{}/processing-requests/{id}", self.base))
                .send()
                .await?
                .json()
                .await?;
            match s["status"].as_str() {
                Some("succeeded") => return Ok(started.elapsed()),
                Some("failed") => bail!("import failed: {s}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Enqueues `n` no-op jobs straight into the queue, then times the running server's worker
    /// draining them. Reports jobs/s and enqueue-to-finish latency percentiles.
    pub async fn drain_noop_jobs(&self, n: usize) -> Result<super::Sample> {
        let db = pulseboard_storage::Db::connect(
            &self.database_url,
            &pulseboard_storage::ConnectOptions {
                max_connections: 4,
                busy_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(5),
            },
        )
        .await?;
        let queue = pulseboard_jobs::Queue::new(
            db.clone(),
            pulseboard_jobs::QueueOptions { max_attempts: 3 },
        );
        let started = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let mut tx = db.begin().await?;
            for _ in chunk {
                queue
                    .enqueue_in(&mut tx, &pulseboard_jobs::handlers::Noop::default())
                    .await?;
            }
            tx.commit().await?;
        }
        loop {
            let (left,): (i64,) = sqlx_count(&db).await?;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let lat = pulseboard_storage::jobs::latencies(&db).await?;
        db.close().await;
        Ok(latency_sample(n as f64 / secs, &lat))
    }

    /// Enqueues no-op jobs at `rate` per second for `secs` from this process (as a `serve` process
    /// enqueues for a `worker` one), in a transaction every 10 ms, then waits for them all;
    /// returns the achieved rate and the enqueue-to-finish latency of every job.
    pub async fn steady_noop_jobs(&self, rate: u32, secs: Duration) -> Result<super::Sample> {
        let db = self.connect_db().await?;
        let queue = pulseboard_jobs::Queue::new(
            db.clone(),
            pulseboard_jobs::QueueOptions { max_attempts: 3 },
        );
        let per_tick = (rate / 100).max(1) as usize;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < secs {
            tick.tick().await;
            let mut tx = db.begin().await?;
            for _ in 0..per_tick {
                queue
                    .enqueue_in(&mut tx, &pulseboard_jobs::handlers::Noop::default())
                    .await?;
            }
            tx.commit().await?;
            n += per_tick;
        }
        let enqueueing = started.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(60);
        while sqlx_count(&db).await?.0 > 0 {
            if Instant::now() > deadline {
                bail!("jobs left unfinished 60 s after the last enqueue");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lat = pulseboard_storage::jobs::latencies(&db).await?;
        db.close().await;
        if lat.len() < n {
            bail!("{} of {n} jobs finished", lat.len());
        }
        Ok(latency_sample(n as f64 / enqueueing, &lat))
    }

    /// A small pool on the server's database, for seeding and watching from the harness.
    pub async fn connect_db(&self) -> Result<pulseboard_storage::Db> {
        Ok(pulseboard_storage::Db::connect(
            &self.database_url,
            &pulseboard_storage::ConnectOptions {
                max_connections: 4,
                busy_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            },
        )
        .await?)
    }

    /// The server's CPU seconds (user + system) so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        Ok((fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / 100.0)
    }

    /// The server's data folder (outbox, SQLite file).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Stops the server; returns its CPU seconds and peak RSS in MB.
    pub async fn stop(mut self) -> Result<(f64, f64)> {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let hwm_kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
        if let Some((admin, name)) = &self.db {
            psql(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )?;
        }
        Ok((ticks / 100.0, hwm_kb / 1024.0))
    }
}

/// A jobs sample: `per_sec` and the p50/p99 of sorted latencies in ms (NaN when there are none).
fn latency_sample(per_sec: f64, sorted_ms: &[i64]) -> super::Sample {
    let pct = |p: f64| match sorted_ms.len() {
        0 => f64::NAN,
        n => sorted_ms[((n as f64 * p) as usize).min(n - 1)] as f64,
    };
    super::Sample {
        per_sec,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

async fn sqlx_count(db: &pulseboard_storage::Db) -> Result<(i64,)> {
    Ok((pulseboard_storage::jobs::unfinished(db).await?,))
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let ok = Command::new("psql")
        .args([url, "-qtAc", sql])
        .status()?
        .success();
    if !ok {
        bail!("psql failed: {sql}");
    }
    Ok(())
}
