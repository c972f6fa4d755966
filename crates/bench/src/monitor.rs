//! `monitor-10k` / `monitor-100k`: one availability round over N resources (issue #7).
//!
//! The harness serves the targets itself, from one listener per loopback address 127.0.0.2 …
//! 127.0.0.(1 + HOSTS), all on one port, so the checker's per-host limit (keyed by host name)
//! sees HOSTS distinct hosts, as it would on the internet. Resource i behaves by `i % 10`:
//! 0–6 answer 200 at once, 7 answers 500, 8 answers 200 after 2 s, 9 points at 127.0.1.x where
//! nothing listens (connection refused). The resources are seeded straight into the database
//! (as an import would write them); then the harness enqueues one `MonitorSweep`, as the
//! scheduler does at a round's time, and measures until every resource has its check: the
//! round's duration, checks per second, the server's CPU seconds per 1,000 checks, and the
//! latency of `GET /resources` (a user paging through the list, ~80 req/s) while it runs.

use crate::server::Server;
use crate::Sample;
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Distinct target hosts (loopback addresses).
const HOSTS: usize = 200;
/// A slow target answers after this long.
const SLOW: Duration = Duration::from_secs(2);
/// A round still running after this long is stopped and reported as far as it got.
const LIMIT: Duration = Duration::from_secs(300);

/// The target servers; they stop with the harness.
pub struct Targets {
    pub port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Targets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Targets {
    pub async fn start() -> Result<Self> {
        // One port that is free on every address: take one on the first, then bind the others.
        'attempt: for _ in 0..20 {
            let first = TcpListener::bind("127.0.0.2:0").await?;
            let port = first.local_addr()?.port();
            let mut listeners = vec![first];
            for h in 1..HOSTS {
                match TcpListener::bind((host(h).as_str(), port)).await {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'attempt,
                }
            }
            let tasks = listeners
                .into_iter()
                .map(|l| {
                    tokio::spawn(async move {
                        while let Ok((stream, _)) = l.accept().await {
                            tokio::spawn(async move {
                                let _ = serve(stream).await;
                            });
                        }
                    })
                })
                .collect();
            return Ok(Self { port, tasks });
        }
        bail!("no port free on all of 127.0.0.2..{}", HOSTS + 1)
    }

    /// The URL of resource `i` (see the module docs).
    pub fn url(&self, i: usize) -> String {
        let h = (i / 10) % HOSTS;
        match i % 10 {
            0..=6 => format!("http://{}:{}/ok/{i}", host(h), self.port),
            7 => format!("http://{}:{}/error/{i}", host(h), self.port),
            8 => format!("http://{}:{}/slow/{i}", host(h), self.port),
            _ => format!("http://127.0.1.{}:{}/refused/{i}", 2 + h % 250, self.port),
        }
    }
}

fn host(h: usize) -> String {
    format!("127.0.0.{}", 2 + h)
}

async fn serve(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let path = String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let status = if path.starts_with("/error/") {
        "500 Internal Server Error"
    } else {
        if path.starts_with("/slow/") {
            tokio::time::sleep(SLOW).await;
        }
        "200 OK"
    };
    let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

/// What one round measured.
pub struct Round {
    pub sample: Sample,
    pub notes: Vec<String>,
}

/// Environment of the server under test: private targets allowed (they are on 127.0.0.x), and
/// no round fired by the scheduler on its own (the harness fires the one it measures).
pub fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PULSEBOARD_MONITOR__ALLOW_PRIVATE_TARGETS", "true"),
        ("PULSEBOARD_SCHEDULES__MONITOR__CRON", "0 0 0 1 1 *"),
    ]
}

pub async fn round(server: &Server, n: usize) -> Result<Round> {
    let targets = Targets::start().await?;
    let client = server.client();
    server.register(&client, "monitor@example.com").await?;
    let db = server.connect_db().await?;
    let (user_id,): (i64,) = sqlx_query_one(
        &db,
        "SELECT id FROM users WHERE email = 'monitor@example.com'",
    )
    .await?;

    // Seed: N resources, in transactions of 10,000 rows, as an import would insert them.
    let seeded = Instant::now();
    let now = pulseboard_domain::Timestamp::now();
    let details = serde_json::json!({"source": "bench"});
    for block in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = db.begin().await?;
        for chunk in block.chunks(500) {
            let urls = chunk
                .iter()
                .map(|&i| pulseboard_domain::ResourceUrl::parse(&targets.url(i)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("bad target URL: {}", e.message))?;
            pulseboard_storage::imports::insert_batch(&mut tx, user_id, &urls, &details, now)
                .await?;
        }
        tx.commit().await?;
    }
    eprintln!(
        "  seeded {n} resources in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    // Readers during the round: four users paging through their first 100 pages, ~80 req/s.
    let done = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut readers = vec![];
    for r in 0..4u64 {
        let (client, base, done, latencies) = (
            client.clone(),
            server.base.clone(),
            done.clone(),
            latencies.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut i = r * 25;
            while !done.load(Ordering::Relaxed) {
                let page = 1 + (i * 7) % 100;
                let t = Instant::now();
                let resp = client
                    .get(format!("{base}/resources?page={page}&per_page=10"))
                    .send()
                    .await?;
                if resp.status().as_u16() != 200 {
                    bail!("GET /resources: {}", resp.status());
                }
                resp.bytes().await?;
                latencies
                    .lock()
                    .unwrap()
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        }));
    }

    // The round: what the scheduler enqueues at a round's time.
    let cpu_before = server.cpu_seconds()?;
    let started = Instant::now();
    let queue = pulseboard_jobs::Queue::new(
        db.clone(),
        pulseboard_jobs::QueueOptions { max_attempts: 3 },
    );
    queue
        .enqueue(&pulseboard_jobs::handlers::MonitorSweep {
            round: pulseboard_domain::Timestamp::now(),
        })
        .await?;
    let mut checked = 0;
    while started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        (checked,) = sqlx_query_one(&db, "SELECT COUNT(*) FROM checks").await?;
        if checked >= n as i64 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu_before;
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.await??;
    }
    let outcomes: Vec<(Option<i64>, Option<String>, i64)> = sqlx::query_as(
        "SELECT status_code, error_kind, COUNT(*) FROM checks \
         GROUP BY status_code, error_kind ORDER BY 3 DESC",
    )
    .fetch_all(&mut *db.acquire().await?)
    .await?;
    db.close().await;
    drop(targets);

    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]
        }
    };
    let finished = checked >= n as i64;
    let outcome_text: Vec<String> = outcomes
        .iter()
        .map(|(code, kind, count)| match (code, kind) {
            (Some(c), _) => format!("{c}: {count}"),
            (None, Some(k)) => format!("{k}: {count}"),
            (None, None) => format!("none: {count}"),
        })
        .collect();
    let mut notes = vec![format!(
        "round of {n}: {} {secs:.1} s, {:.0} checks/s, server CPU {cpu:.1} s = {:.2} CPU s per 1,000 checks; \
         GET /resources during the round: {} requests, p50 {:.1} ms, p99 {:.1} ms; outcomes: {}",
        if finished { "finished in" } else { "NOT finished, stopped after" },
        checked as f64 / secs,
        cpu * 1000.0 / checked.max(1) as f64,
        lat.len(),
        pct(0.5),
        pct(0.99),
        outcome_text.join(", ")
    )];
    if !finished {
        notes.push(format!("only {checked} of {n} checks were done"));
    }
    Ok(Round {
        sample: Sample {
            per_sec: checked as f64 / secs,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
        },
        notes,
    })
}

async fn sqlx_query_one(db: &pulseboard_storage::Db, sql: &str) -> Result<(i64,)> {
    sqlx::query_as(sql)
        .fetch_one(&mut *db.acquire().await?)
        .await
        .with_context(|| sql.to_owned())
}
