//! `cargo run -p bench --release -- <scenario|all> [--runs N] [--seconds S] [--postgres URL]`
//!
//! Starts the real `pulseboard` binary (target/release) on 127.0.0.1 with a fresh data folder and
//! database, seeds data through the API, drives bounded load from this process and prints one
//! markdown row per scenario: throughput and latency as the median of the runs (with the spread),
//! and the server's CPU seconds and peak RSS read from /proc.

mod chart;
mod digest;
mod logins;
mod monitor;
mod server;

use anyhow::{bail, Context, Result};
use server::Server;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    runs: usize,
    seconds: u64,
    connections: usize,
    postgres: Option<String>,
}

#[derive(Clone, Copy)]
struct Sample {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Row {
    scenario: String,
    backend: String,
    samples: Vec<Sample>,
    unit: &'static str,
    cpu_s: f64,
    peak_rss_mb: f64,
    target: &'static str,
    /// Figures that do not fit the table's columns (printed below it).
    notes: Vec<String>,
}

/// The broker of `jobs-noop-amqp` (RabbitMQ's defaults on this machine) and the queue names it uses.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const AMQP_PREFIX: &str = "pb_bench";

/// Jobs per second that `jobs-steady` enqueues: well below what either queue drains, so the
/// latency it reports is a job's wait under load, not a backlog's.
const STEADY_RATE: u32 = 1_000;

const SCENARIOS: &[&str] = &[
    "tasks-read",
    "tasks-write",
    "resources-post",
    "import-100k",
    "import-1m",
    "resources-list",
    "jobs-noop",
    "jobs-noop-amqp",
    "jobs-steady",
    "jobs-steady-amqp",
    "idle-rss",
    "monitor-10k",
    "monitor-100k",
    "digest-100k",
    "concurrency",
    "login-burst",
];

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Opts {
        runs: 3,
        seconds: 5,
        connections: 64,
        postgres: None,
    };
    let mut chosen = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => opts.runs = it.next().context("--runs N")?.parse()?,
            "--seconds" => opts.seconds = it.next().context("--seconds S")?.parse()?,
            "--connections" => opts.connections = it.next().context("--connections N")?.parse()?,
            "--postgres" => opts.postgres = Some(it.next().context("--postgres URL")?.clone()),
            "all" => chosen.extend(SCENARIOS.iter().map(|s| s.to_string())),
            s if SCENARIOS.contains(&s) => chosen.push(s.to_owned()),
            other => bail!(
                "unknown argument {other:?}; scenarios: all, {}",
                SCENARIOS.join(", ")
            ),
        }
    }
    if chosen.is_empty() {
        bail!("name a scenario: all, {}", SCENARIOS.join(", "));
    }
    let bin = server::binary()?;
    println!("| scenario | backend | throughput (median, min–max) | p50 | p99 | server CPU s | peak RSS | target |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut notes = vec![];
    for name in chosen {
        let row = run(&name, &bin, &opts)
            .await
            .with_context(|| format!("scenario {name}"))?;
        print_row(&row);
        notes.extend(
            row.notes
                .iter()
                .map(|n| format!("- {} ({}): {n}", row.scenario, row.backend)),
        );
    }
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("{n}");
        }
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_row(r: &Row) {
    let tp: Vec<f64> = r.samples.iter().map(|s| s.per_sec).collect();
    let (min, max) = (
        tp.iter().cloned().fold(f64::MAX, f64::min),
        tp.iter().cloned().fold(0.0, f64::max),
    );
    let p50 = median(r.samples.iter().map(|s| s.p50_ms).collect());
    let p99 = median(r.samples.iter().map(|s| s.p99_ms).collect());
    let lat = |v: f64| {
        if v.is_nan() {
            "—".to_owned()
        } else {
            format!("{v:.1} ms")
        }
    };
    println!(
        "| {} | {} | {:.0} {} ({:.0}–{:.0}, n={}) | {} | {} | {:.1} | {:.0} MB | {} |",
        r.scenario,
        r.backend,
        median(tp.clone()),
        r.unit,
        min,
        max,
        tp.len(),
        lat(p50),
        lat(p99),
        r.cpu_s,
        r.peak_rss_mb,
        r.target
    );
}

/// Drives `make_request` from `connections` concurrent loops for `seconds`.
async fn load<F, Fut>(connections: usize, seconds: u64, make_request: F) -> Result<Sample>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let f = Arc::new(make_request);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = vec![];
    for c in 0..connections {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                f(c, i).await?;
                lat.push(t.elapsed().as_micros() as u32);
                i += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = vec![];
    for h in handles {
        all.extend(h.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    Ok(Sample {
        per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// 100k resources through a ZIP import, then marked as a monitoring round would leave them:
/// 70% up, 30% down.
async fn seed_resources(server: &Server, client: &reqwest::Client) -> Result<()> {
    server.register(client, "bench@example.com").await?;
    server.import(client, 100_000).await?;
    let db = server.connect_db().await?;
    sqlx::query("UPDATE resources SET last_is_available = (id % 10 < 7)")
        .execute(&mut *db.acquire().await?)
        .await?;
    if db.backend() == pulseboard_storage::Backend::Postgres {
        // What autovacuum does within a minute or so of a bulk change: statistics, and the
        // visibility map that lets the page's index-only scan skip the table.
        sqlx::query("VACUUM ANALYZE resources")
            .execute(&mut *db.acquire().await?)
            .await?;
    }
    db.close().await;
    Ok(())
}

/// `GET /resources` with both filters, spread over the first 300 pages of what
/// [`seed_resources`] made, from `connections` clients for `seconds`.
async fn list_load(
    client: &reqwest::Client,
    base: &str,
    connections: usize,
    seconds: u64,
) -> Result<Sample> {
    let (client, base) = (client.clone(), base.to_owned());
    load(connections, seconds, move |c, i| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let page = 1 + (c as u64 * 7919 + i * 31) % 300;
            ok(
                client
                    .get(format!(
                        "{base}/resources?page={page}&per_page=10\
                         &domain_zone=org&availability=true"
                    ))
                    .send()
                    .await?,
                200,
            )?
            .bytes()
            .await?;
            Ok(())
        }
    })
    .await
}

fn ok(r: reqwest::Response, want: u16) -> Result<reqwest::Response> {
    if r.status().as_u16() != want {
        bail!("expected {want}, got {} from {}", r.status(), r.url());
    }
    Ok(r)
}

async fn run(name: &str, bin: &std::path::Path, o: &Opts) -> Result<Row> {
    let backend = if o.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    }
    .to_owned();
    let mut samples = vec![];
    let mut cpu = 0.0;
    let mut rss = 0.0;
    let (unit, target) = match name {
        "tasks-read" => ("req/s", "≥ 10,000 req/s, p99 ≤ 25 ms"),
        "tasks-write" => ("req/s", "≥ 3,000 req/s"),
        "resources-post" => ("req/s", "≥ 3,000 req/s"),
        "import-100k" => ("URLs/s", "100k in ≤ 3 s"),
        "import-1m" => ("URLs/s", "1M in ≤ 30 s, peak RSS < 200 MB"),
        "resources-list" => ("req/s", "≥ 5,000 req/s"),
        "jobs-noop" => ("jobs/s", "≥ 2,000 jobs/s (SQLite)"),
        "jobs-noop-amqp" => ("jobs/s", "≥ 5,000 jobs/s (RabbitMQ)"),
        "jobs-steady" | "jobs-steady-amqp" => ("jobs/s", "report p50/p99 latency"),
        "monitor-10k" => ("checks/s", "round of 10k ≤ 10 s, API p99 < 50 ms"),
        "monitor-100k" => ("checks/s", "round of 100k ≤ 60 s, API p99 < 50 ms"),
        "digest-100k" => ("mails/s", "≤ 60 s, peak RSS < 200 MB (SQLite)"),
        "concurrency" => ("req/s", "chart: docs/benchmarks-concurrency.svg"),
        "login-burst" => (
            "logins/s",
            "peak RSS ≤ 200 MB (300 at once); GET /user p99 ≤ 10 ms; unknown/known 0.9–1.1",
        ),
        _ => ("", "—"),
    };
    let mut notes = vec![];
    let mut sweeps: Vec<Vec<(usize, Sample)>> = vec![];
    let env = match name {
        "monitor-10k" | "monitor-100k" => monitor::server_env(),
        "digest-100k" => digest::server_env(),
        "login-burst" => logins::server_env(),
        "jobs-noop-amqp" | "jobs-steady-amqp" => vec![
            ("AMQP_URL", AMQP_URL),
            ("PULSEBOARD_JOBS__AMQP_PREFIX", AMQP_PREFIX),
        ],
        _ => vec![],
    };
    let amqp = name.ends_with("-amqp");
    let backend = if amqp {
        format!("{backend}+rabbitmq")
    } else {
        backend
    };
    for _ in 0..o.runs {
        let server = Server::start(bin, o.postgres.as_deref(), &env).await?;
        let client = server.client();
        let base = server.base.clone();
        let sample = match name {
            "tasks-read" | "tasks-write" => {
                server.register(&client, "bench@example.com").await?;
                let mut ids = vec![];
                for i in 0..50 {
                    let t: serde_json::Value = ok(
                        client
                            .post(format!("{base}/tasks"))
                            .json(&serde_json::json!({"title": format!("task {i}")}))
                            .send()
                            .await?,
                        201,
                    )?
                    .json()
                    .await?;
                    ids.push(t["id"].as_i64().unwrap());
                }
                let ids = Arc::new(ids);
                let write = name == "tasks-write";
                load(o.connections, o.seconds, move |c, i| {
                    let (client, base, ids) = (client.clone(), base.clone(), ids.clone());
                    async move {
                        if write {
                            let id = ids[(c + i as usize) % ids.len()];
                            ok(
                                client
                                    .patch(format!("{base}/tasks/{id}"))
                                    .json(&serde_json::json!({"title": format!("t{c}-{i}")}))
                                    .send()
                                    .await?,
                                200,
                            )?;
                        } else {
                            ok(client.get(format!("{base}/tasks")).send().await?, 200)?
                                .bytes()
                                .await?;
                        }
                        Ok(())
                    }
                })
                .await?
            }
            "resources-post" => {
                server.register(&client, "bench@example.com").await?;
                load(o.connections, o.seconds, move |c, i| {
                    let (client, base) = (client.clone(), base.clone());
                    async move {
                        let url = format!("https://site{c}-{i}.example.org/page?q={i}");
                        ok(
                            client
                                .post(format!("{base}/resources"))
                                .json(&serde_json::json!({"url": url}))
                                .send()
                                .await?,
                            201,
                        )?;
                        Ok(())
                    }
                })
                .await?
            }
            "import-100k" | "import-1m" => {
                server.register(&client, "bench@example.com").await?;
                let n = if name == "import-1m" {
                    1_000_000
                } else {
                    100_000
                };
                let secs = server.import(&client, n).await?.as_secs_f64();
                Sample {
                    per_sec: n as f64 / secs,
                    p50_ms: f64::NAN,
                    p99_ms: f64::NAN,
                }
            }
            "resources-list" => {
                seed_resources(&server, &client).await?;
                list_load(&client, &base, o.connections, o.seconds).await?
            }
            "concurrency" => {
                seed_resources(&server, &client).await?;
                let sweep = chart::sweep(&client, &base, o.seconds.min(3)).await?;
                let at_64 = sweep
                    .iter()
                    .find(|(c, _)| *c == 64)
                    .map(|(_, s)| *s)
                    .context("no 64-connection level")?;
                sweeps.push(sweep);
                at_64
            }
            "jobs-noop" => server.drain_noop_jobs(20_000).await?,
            "jobs-noop-amqp" => server.drain_noop_jobs(20_000).await?,
            "jobs-steady" | "jobs-steady-amqp" => {
                server
                    .steady_noop_jobs(STEADY_RATE, Duration::from_secs(o.seconds))
                    .await?
            }
            "monitor-10k" | "monitor-100k" => {
                let n = if name == "monitor-10k" {
                    10_000
                } else {
                    100_000
                };
                let r = monitor::round(&server, n).await?;
                notes.extend(r.notes);
                r.sample
            }
            "digest-100k" => {
                let r = digest::run(&server, 100_000).await?;
                notes.extend(r.notes);
                r.sample
            }
            "login-burst" => {
                let r = logins::run(&server).await?;
                notes.extend(r.notes);
                r.sample
            }
            "idle-rss" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Sample {
                    per_sec: 0.0,
                    p50_ms: f64::NAN,
                    p99_ms: f64::NAN,
                }
            }
            other => bail!("unknown scenario {other}"),
        };
        let (c, r) = server.stop().await?;
        if amqp {
            // The same queue names every run: leave none behind (once the server is gone, or
            // its relay would declare them again).
            let opts = pulseboard_jobs::amqp::AmqpOptions {
                url: AMQP_URL.into(),
                prefix: AMQP_PREFIX.into(),
                prefetch: 1,
                quorum: false,
                republish_after: Duration::from_secs(600),
                poll_interval: Duration::from_millis(250),
            };
            pulseboard_jobs::amqp::delete_topology(&opts, pulseboard_jobs::ALL_QUEUES).await?;
        }
        cpu += c / o.runs as f64;
        rss = f64::max(rss, r);
        samples.push(sample);
    }
    if name == "concurrency" {
        let points: Vec<(usize, Sample)> = chart::LEVELS
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let at =
                    |f: fn(&Sample) -> f64| median(sweeps.iter().map(|s| f(&s[i].1)).collect());
                let sample = Sample {
                    per_sec: at(|s| s.per_sec),
                    p50_ms: at(|s| s.p50_ms),
                    p99_ms: at(|s| s.p99_ms),
                };
                (c, sample)
            })
            .collect();
        for (c, s) in &points {
            notes.push(format!(
                "{c} connections: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms",
                s.per_sec, s.p50_ms, s.p99_ms
            ));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/benchmarks-concurrency.svg");
        chart::draw(
            &path,
            &format!(
                "GET /resources?domain_zone=org&availability=true over 100k rows ({backend}, median of {})",
                o.runs
            ),
            &points,
        )?;
        notes.push("chart written to docs/benchmarks-concurrency.svg".into());
    }
    Ok(Row {
        scenario: name.to_owned(),
        backend,
        samples,
        unit,
        cpu_s: cpu,
        peak_rss_mb: rss,
        target,
        notes,
    })
}
