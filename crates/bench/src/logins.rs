//! `login-burst`: what a flood of logins costs the server, at the production Argon2 cost
//! (m = 19 MiB, t = 2) and the default hashing bound (one slot per core, a queue of 32).
//!
//! - 300 logins at once for unknown emails from 300 addresses: how many were checked (401) and how
//!   many turned away (503), and the server's peak RSS (the row's RSS column);
//! - `GET /user` latency from a logged-in client while 50 logins run at once (the row's p50/p99);
//! - the median time of a login for an unknown email against one for a known email with a wrong
//!   password, alternated, 30 each: their ratio should be 1.

use super::{Sample, Server};
use anyhow::Result;
use std::time::{Duration, Instant};

pub struct Outcome {
    pub sample: Sample,
    pub notes: Vec<String>,
}

/// The server env: addresses come from X-Forwarded-For (the harness is its "proxy").
pub fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![("PULSEBOARD_HTTP__TRUSTED_PROXIES", "[127.0.0.0/8]")]
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    addr: &str,
    email: &str,
    password: &str,
) -> Result<u16> {
    Ok(client
        .post(format!("{base}/session"))
        .header("x-forwarded-for", addr)
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?
        .status()
        .as_u16())
}

fn addr(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65_536 % 256, i / 256 % 256, i % 256)
}

pub async fn run(server: &Server) -> Result<Outcome> {
    let base = server.base.clone();
    let me = server.client();
    server.register(&me, "known@example.com").await?;
    let mut notes = vec![];

    // 300 at once, unknown emails.
    let flood = server.client();
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..300).map(|i| {
        let (c, b) = (flood.clone(), base.clone());
        async move {
            login(
                &c,
                &b,
                &addr(1000 + i),
                &format!("ghost{i}@example.com"),
                "x",
            )
            .await
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let count = |s: u16| {
        answers
            .iter()
            .filter(|a| matches!(a, Ok(x) if *x == s))
            .count()
    };
    notes.push(format!(
        "300 parallel logins in {:.2} s: {} checked (401), {} turned away (503), {} other",
        elapsed.as_secs_f64(),
        count(401),
        count(503),
        300 - count(401) - count(503)
    ));

    // GET /user while 50 logins run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let burst = {
        let (c, b) = (flood.clone(), base.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = futures_util::future::join_all((0..50).map(|i| {
                let (c, b) = (c.clone(), b.clone());
                async move {
                    login(
                        &c,
                        &b,
                        &addr(5000 + i),
                        "known@example.com",
                        "wrong password",
                    )
                    .await
                }
            }))
            .await;
            (started.elapsed(), r)
        })
    };
    let mut lat = vec![];
    let started = Instant::now();
    while !burst.is_finished() || lat.len() < 20 {
        let t = Instant::now();
        let r = me.get(format!("{base}/user")).send().await?;
        anyhow::ensure!(r.status() == 200, "GET /user: {}", r.status());
        r.bytes().await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (burst_time, _) = burst.await?;
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let sample = Sample {
        per_sec: 50.0 / burst_time.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    };
    notes.push(format!(
        "GET /user during a 50-login burst: {} requests in {:.2} s, p50 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        started.elapsed().as_secs_f64(),
        sample.p50_ms,
        sample.p99_ms
    ));

    // Unknown vs known email, one at a time, alternated so that drift hits both alike.
    let (mut unknown, mut known) = (vec![], vec![]);
    for i in 0..30 {
        let t = Instant::now();
        login(
            &flood,
            &base,
            &addr(9000 + i),
            &format!("nobody{i}@example.com"),
            "wrong password",
        )
        .await?;
        unknown.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        login(
            &flood,
            &base,
            &addr(9500 + i),
            "known@example.com",
            "wrong password",
        )
        .await?;
        known.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (mu, mk) = (super::median(unknown), super::median(known));
    notes.push(format!(
        "login median: unknown email {mu:.1} ms, known email + wrong password {mk:.1} ms, ratio {:.2}",
        mu / mk
    ));
    Ok(Outcome { sample, notes })
}
