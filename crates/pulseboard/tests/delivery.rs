//! What `docker compose up` would start is known to start: every Pulseboard service of
//! docker-compose.yml is run here with its exact command and environment (from the compose file and
//! .env.example), outside Docker. Only what is specific to the host is swapped: the database URL (a
//! fresh database of the backend under test instead of the `postgres` container), the data folder,
//! the port, and the bind address (127.0.0.1: tests never listen on other interfaces).

mod common;

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `.env.example`, with the secrets it leaves empty filled in as an operator would.
fn dot_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join(".env.example")).unwrap();
    let mut env: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
        })
        .collect();
    for secret in [
        "PULSEBOARD_JWT_SECRET",
        "POSTGRES_PASSWORD",
        "RABBITMQ_PASSWORD",
    ] {
        let v = env.entry(secret.into()).or_default();
        if v.is_empty() {
            *v = "0123456789abcdef0123456789abcdef0123456789abcdef".into();
        }
    }
    env
}

/// Compose interpolation: `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`.
fn interpolate(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').expect("closed ${…}");
            let expr = &r[..end];
            rest = &r[end + 1..];
            let value = if let Some((n, d)) = expr.split_once(":-") {
                env.get(n)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| interpolate(d, env))
            } else if let Some((n, msg)) = expr.split_once(":?") {
                let v = env.get(n).filter(|v| !v.is_empty()).cloned();
                v.unwrap_or_else(|| panic!("compose would refuse to start: {msg}"))
            } else {
                env.get(expr).cloned().unwrap_or_default()
            };
            out.push_str(&value);
        } else {
            out.push('$');
        }
    }
    out.push_str(rest);
    out
}

struct Service {
    name: String,
    command: Vec<String>,
    env: BTreeMap<String, String>,
}

fn pulseboard_services() -> Vec<Service> {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    doc.apply_merge().unwrap();
    let dot = dot_env();
    let mut out = vec![];
    for (name, svc) in doc["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap().to_owned();
        let dockerfile = svc["build"]["dockerfile"].as_str().unwrap_or("");
        if dockerfile != "Dockerfile" {
            continue; // postgres, rabbitmq, the nginx frontend
        }
        let command = svc["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}: command must be a list"))
            .iter()
            .map(|v| interpolate(v.as_str().unwrap(), &dot))
            .collect();
        // env_file: .env first, then `environment:` over it, as compose does.
        let mut env = dot.clone();
        if let Some(map) = svc["environment"].as_mapping() {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => String::new(),
                };
                env.insert(k.as_str().unwrap().to_owned(), interpolate(&v, &dot));
            }
        }
        out.push(Service { name, command, env });
    }
    out
}

fn spawn(svc: &Service, database_url: &str, data_dir: &Path, port: u16) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    cmd.args(&svc.command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &svc.env {
        cmd.env(k, v);
    }
    assert!(
        svc.env["DATABASE_URL"].contains("@postgres:5432/"),
        "{}: compose points at the postgres service",
        svc.name
    );
    cmd.env("DATABASE_URL", database_url)
        .env("PULSEBOARD_DATA_DIR", data_dir)
        .env("PULSEBOARD_LOGGING__LEVEL", "warn");
    if svc.env.contains_key("PULSEBOARD_HTTP__PORT") {
        cmd.env("PULSEBOARD_HTTP__PORT", port.to_string())
            .env("PULSEBOARD_HTTP__HOST", "127.0.0.1");
    }
    cmd.current_dir(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

#[tokio::test]
async fn every_compose_service_starts_with_its_exact_command_and_environment() {
    let services = pulseboard_services();
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "migrate",
        "task-tracker-backend",
        "task-tracker-scheduler",
        "task-tracker-email-sender",
        "task-tracker-monitor",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from docker-compose.yml: {names:?}"
        );
    }
    let tmp = common::tempdir::Dir::new();
    let pg = match common::postgres_admin_url() {
        Some(admin) => Some(common::PgDatabase::create(&admin).await),
        None => None,
    };
    let database_url = pg
        .as_ref()
        .map(|p| p.url.clone())
        .unwrap_or_else(|| format!("sqlite://{}/compose.db?mode=rwc", tmp.0.display()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // The one-shot migrate service runs first and must succeed.
    let migrate = services.iter().find(|s| s.name == "migrate").unwrap();
    let child = spawn(migrate, &database_url, &tmp.0, port);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut running: Vec<(&str, Child)> = services
        .iter()
        .filter(|s| s.name != "migrate")
        .map(|s| (s.name.as_str(), spawn(s, &database_url, &tmp.0, port)))
        .collect();

    // The backend answers its health checks.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "task-tracker-backend never became ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything else is still up a moment later (a bad flag or key would have exited already).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, child) in running.iter_mut() {
        assert!(child.try_wait().unwrap().is_none(), "{name} exited early");
    }
    // And stops cleanly on SIGTERM, as `docker compose stop` asks.
    for (_, child) in &running {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
    }
    for (name, child) in running {
        let pid = child.id();
        let waited = tokio::task::spawn_blocking(move || {
            let out = child.wait_with_output().unwrap();
            (
                out.status,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        });
        let (status, stderr) = tokio::time::timeout(Duration::from_secs(30), waited)
            .await
            .unwrap_or_else(|_| panic!("{name} (pid {pid}) did not stop within 30 s of SIGTERM"))
            .unwrap();
        assert!(status.success(), "{name} exited with {status}: {stderr}");
    }
}
