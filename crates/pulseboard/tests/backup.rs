//! `pulseboard backup` / `pulseboard restore`: an online copy taken while the server writes, restored
//! into a fresh data folder that a new app then serves.

mod common;

use common::{tempdir, Fetch, Options, TestApp};
use pulseboard::backup;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const EMAIL: &str = "backup@example.com";

fn png() -> Vec<u8> {
    common::png(7, 64)
}

/// The real binary, with only the data folder (SQLite) from the environment.
async fn binary(args: Vec<String>, data_dir: &Path) -> std::process::Output {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pulseboard"))
            .args(&args)
            .env("PULSEBOARD_DATA_DIR", &data_dir)
            .env_remove("DATABASE_URL")
            .env_remove("PULSEBOARD_CONFIG")
            .env_remove("PULSEBOARD_BLOBS__URL")
            .env_remove("PULSEBOARD_JWT_SECRET")
            .env_remove("PULSEBOARD_JWT_SECRET_FILE")
            .current_dir(&data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An app (API only) on SQLite in `data_dir`, whatever DATABASE_URL says.
async fn sqlite_app_on(data_dir: &Path) -> TestApp {
    let dir = data_dir.to_path_buf();
    TestApp::spawn_configured(move |c| {
        c.data_dir = dir;
        c.database.url = String::new();
    })
    .await
}

/// Logs in with a new client and returns it with the titles of the user's tasks.
async fn login_and_list(app: &TestApp) -> (reqwest::Client, Vec<Value>) {
    let c = app.new_client();
    app.login(&c, EMAIL).await;
    let tasks: Vec<Value> = c.get(app.url("/tasks")).fetch_json().await;
    (c, tasks)
}

fn counted(manifest: &Value, table: &str) -> usize {
    manifest["counts"][table].as_u64().unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_while_writing_then_restore_into_a_fresh_folder() {
    let source = tempdir::Dir::new();
    let app = sqlite_app_on(&source.0).await;
    let c = &app.client;
    app.register(c, EMAIL).await;
    for i in 0..5 {
        c.post(app.url("/tasks"))
            .json(&json!({"title": format!("before {i}")}))
            .expect_status(StatusCode::CREATED)
            .await;
    }
    // A resource with an uploaded screenshot (a blob), and one blob written through the API.
    let r = c
        .post(app.url("/resources"))
        .json(&json!({"url": "https://backup.example.com/"}))
        .expect_status(StatusCode::CREATED)
        .await;
    let uuid = r.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    app.upload_screenshot(c, &uuid, png()).await;
    app.app
        .blobs
        .put("extra-blob.bin", b"hello blobs".to_vec())
        .await
        .unwrap();

    // Tasks keep being created while both backups run.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (c, url, stop, written) = (c.clone(), app.url("/tasks"), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                c.post(&url)
                    .json(&json!({"title": format!("during {i}")}))
                    .expect_status(StatusCode::CREATED)
                    .await;
                written.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    common::eventually(10, || async {
        (written.load(Ordering::Relaxed) >= 10).then_some(())
    })
    .await;

    let written_before = written.load(Ordering::Relaxed);
    // 1. Through the library, into a folder of our choice.
    let backups = tempdir::Dir::new();
    let lib_dir = backups.0.join("by-library");
    let report = backup::backup(&app.app.config, Some(lib_dir.clone()))
        .await
        .expect("backup");
    let m = &report.manifest;
    assert_eq!(m["format"], backup::FORMAT);
    assert_eq!(m["backend"], "sqlite");
    assert_eq!(m["database"]["included"], true);
    assert_eq!(m["jwt_key_included"], true);
    assert_eq!(m["blobs"]["files"], 2);
    assert_eq!(counted(m, "users"), 1);
    assert_eq!(counted(m, "resources"), 1);
    assert!(counted(m, "tasks") >= 15, "{m}");
    for f in [
        "pulseboard.db",
        "jwt.key",
        "manifest.json",
        "blobs/extra-blob.bin",
    ] {
        assert!(lib_dir.join(f).is_file(), "{f} in the backup");
    }
    let printed = report.lines.join("\n");
    assert!(printed.contains("backup written to"), "{printed}");
    assert!(printed.contains("1 users"), "{printed}");

    // 2. Through the real binary, to the default folder <data_dir>/backups/pulseboard-<time>.
    let out = binary(vec!["backup".into()], &app.data_dir).await;
    assert!(out.status.success(), "{}", text(&out));
    let out_text = text(&out);
    let default_root = app.data_dir.join("backups");
    let bin_dir = std::fs::read_dir(&default_root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pulseboard-")
        })
        .expect("a default backup folder");
    assert!(
        out_text.contains(&bin_dir.display().to_string()),
        "{out_text}"
    );
    let bin_manifest: Value =
        serde_json::from_slice(&std::fs::read(bin_dir.join("manifest.json")).unwrap()).unwrap();
    assert!(counted(&bin_manifest, "tasks") >= counted(m, "tasks"));

    // The server kept writing while the backups ran.
    assert!(written.load(Ordering::Relaxed) > written_before);
    println!("{out_text}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    app.stop().await;

    // Restore the library's backup into a fresh folder and serve it.
    let target = tempdir::Dir::new();
    let config = common::test_config(&target.0);
    let report = backup::restore(&config, &lib_dir, false)
        .await
        .expect("restore into an empty folder");
    assert!(
        report.lines.join("\n").contains("pulseboard.db"),
        "{:?}",
        report.lines
    );
    let restored = sqlite_app_on(&target.0).await;
    let (rc, tasks) = login_and_list(&restored).await;
    assert_eq!(tasks.len(), counted(m, "tasks"), "the snapshot's tasks");
    assert!(tasks.iter().any(|t| t["title"] == "before 0"));
    let r = rc
        .get(restored.url(&format!("/resources/{uuid}/screenshot")))
        .expect_status(StatusCode::OK)
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), png().as_slice());
    assert_eq!(
        restored
            .app
            .blobs
            .get("extra-blob.bin")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        b"hello blobs"
    );
    // Not under a running server.
    let err = backup::restore(&config, &lib_dir, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("looks in use"), "{err}");
    restored.stop().await;

    // The folder now holds data: the binary's restore refuses it without --force...
    let bin_path = bin_dir.display().to_string();
    let out = binary(vec!["restore".into(), bin_path.clone()], &target.0).await;
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("not empty") && t.contains("--force"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    // ...and replaces it with it, keeping the old database aside.
    let out = binary(
        vec!["restore".into(), bin_path, "--force".into()],
        &target.0,
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("replaced"), "{t}");
    assert!(!target.0.join("pulseboard.db-wal").exists());
    let restored = sqlite_app_on(&target.0).await;
    let (_, tasks) = login_and_list(&restored).await;
    assert_eq!(tasks.len(), counted(&bin_manifest, "tasks"));
    restored.stop().await;
}

#[tokio::test]
async fn restore_names_what_is_wrong() {
    let dir = tempdir::Dir::new();
    let config = common::test_config(&dir.0);
    let err = backup::restore(&config, &dir.0.join("missing"), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let err = backup::restore(&config, &dir.0, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a Pulseboard backup"), "{err}");
    std::fs::write(dir.0.join("manifest.json"), b"{\"format\": \"other\"}").unwrap();
    let err = backup::restore(&config, &dir.0, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a Pulseboard backup"), "{err}");
    // A backup folder is never written over.
    let err = backup::backup(&config, Some(dir.0.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
}

/// PostgreSQL: the database is not dumped (the pg_dump line is printed instead), the files are.
/// On a real server when DATABASE_URL is postgres://, else against an unreachable one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_explains_pg_dump_and_copies_the_files() {
    let app = TestApp::spawn().await;
    app.register(&app.client, EMAIL).await;
    app.app
        .blobs
        .put("pg-blob.bin", b"pg blob".to_vec())
        .await
        .unwrap();
    let mut config = (*app.app.config).clone();
    if common::postgres_admin_url().is_none() {
        config.database.url = "postgres://pb:s3cret@127.0.0.1:1/pulseboard".into();
        config.database.connect_timeout_secs = 2;
    }
    let out = tempdir::Dir::new();
    let dir = out.0.join("pg");
    let report = backup::backup(&config, Some(dir.clone()))
        .await
        .expect("backup");
    let printed = report.lines.join("\n");
    assert!(printed.contains("pg_dump --format=custom"), "{printed}");
    assert!(printed.contains("NOT in this backup"), "{printed}");
    assert!(!printed.contains("s3cret"), "{printed}");
    let m = &report.manifest;
    assert_eq!(m["backend"], "postgres");
    assert_eq!(m["database"]["included"], false);
    assert!(m["database"]["pg_dump_command"]
        .as_str()
        .unwrap()
        .contains("pg_dump"));
    if common::postgres_admin_url().is_some() {
        assert_eq!(counted(m, "users"), 1);
    }
    assert!(!dir.join("pulseboard.db").exists());
    assert_eq!(
        std::fs::read(dir.join("blobs/pg-blob.bin")).unwrap(),
        b"pg blob"
    );
    assert!(dir.join("jwt.key").is_file());
    assert_eq!(m["jwt_key_included"], true);
    app.stop().await;

    // Restoring it explains pg_restore and brings back only the files.
    let target = tempdir::Dir::new();
    let mut tconfig = common::test_config(&target.0);
    tconfig.database.url = config.database.url.clone();
    let report = backup::restore(&tconfig, &dir, false)
        .await
        .expect("restore");
    let printed = report.lines.join("\n");
    assert!(printed.contains("pg_restore"), "{printed}");
    assert!(printed.contains("psql"), "{printed}");
    assert_eq!(
        std::fs::read(target.0.join("blobs/pg-blob.bin")).unwrap(),
        b"pg blob"
    );
    assert_eq!(
        std::fs::read(target.0.join("jwt.key")).unwrap(),
        std::fs::read(dir.join("jwt.key")).unwrap()
    );
}

fn names(dirs: &[std::path::PathBuf]) -> Vec<String> {
    dirs.iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// `backup.keep`: each scheduled backup deletes the oldest beyond it, and only scheduled ones
/// (a `pulseboard backup` folder and an unfinished folder in the same place stay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_keep_the_newest_and_leave_other_folders_alone() {
    let app = TestApp::spawn().await;
    app.register(&app.client, EMAIL).await;
    let out = tempdir::Dir::new();
    let mut config = (*app.app.config).clone();
    config.backup.dir = out.0.clone();
    config.backup.keep = 2;
    let manual = out.0.join("pulseboard-20200101T000000Z");
    backup::backup(&config, Some(manual.clone()))
        .await
        .expect("manual backup");
    let unfinished = out.0.join("20200101T000000Z");
    std::fs::create_dir_all(&unfinished).unwrap();

    let t0 = 1_800_000_000_000; // 2027-01-15T08:00:00Z
    let mut reports = vec![];
    for i in 0..4 {
        reports.push(
            backup::scheduled(&config, t0 + i * 60_000)
                .await
                .expect("scheduled backup"),
        );
    }
    let kept = backup::finished_backups(&out.0);
    assert_eq!(
        names(&kept),
        ["20270115T080200Z", "20270115T080300Z"],
        "the newest two"
    );
    assert!(
        manual.join("manifest.json").is_file(),
        "a manual backup stays"
    );
    assert!(
        unfinished.is_dir(),
        "an unfinished folder is not counted or deleted"
    );
    let last = &reports[3];
    assert_eq!(last.dir, out.0.join("20270115T080300Z"));
    assert!(
        last.lines
            .iter()
            .any(|l| l.starts_with("removed") && l.contains("20270115T080100Z")),
        "{:?}",
        last.lines
    );
    // The same content as `pulseboard backup`.
    let m: Value =
        serde_json::from_slice(&std::fs::read(kept[1].join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], backup::FORMAT);
    assert!(kept[1].join("jwt.key").is_file());
    if common::postgres_admin_url().is_some() {
        assert_eq!(m["database"]["included"], false);
        assert!(
            last.lines.iter().any(|l| l.contains("pg_dump")),
            "{:?}",
            last.lines
        );
    } else {
        assert_eq!(m["database"]["included"], true);
        assert!(kept[1].join("pulseboard.db").is_file());
    }
    assert_eq!(counted(&m, "users"), 1);
    app.stop().await;
}

/// `backup.schedule` in a running scheduler: a backup at each occurrence (every second here),
/// never more than `backup.keep` once a backup has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_takes_backups_on_backup_schedule_and_keeps_backup_keep() {
    let out = tempdir::Dir::new();
    let dir = out.0.clone();
    let app = TestApp::spawn_with(
        Options {
            worker: false,
            scheduler: true,
        },
        move |c| {
            c.backup.schedule = "* * * * * *".into();
            c.backup.dir = dir;
            c.backup.keep = 2;
        },
    )
    .await;
    app.register(&app.client, EMAIL).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut most = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = backup::finished_backups(&out.0);
        // Between a backup's manifest and the pruning after it, keep + 1 exist for a moment.
        most = most.max(now.len());
        seen.extend(names(&now));
        if seen.len() >= 4 && now.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backups seen: {seen:?}, now: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(most <= 3, "at most keep + 1 at any time, saw {most}");
    app.stop().await;
    // Stopping lets a backup already started finish; afterwards the newest two remain.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let left = names(&backup::finished_backups(&out.0));
    seen.extend(left.iter().cloned());
    let newest: Vec<String> = seen.iter().rev().take(2).rev().cloned().collect();
    assert_eq!(left, newest, "the newest two of {seen:?} remain");
}
