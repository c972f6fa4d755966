//! Mail over a real SMTP server on 127.0.0.1: the welcome mail, retries on 4xx, dead letters on
//! 5xx, the digest's content in each case, once per day, time zones, and unsubscribing.

mod common;

use common::{eventually, Options, TestApp};
use common::{smtp::SmtpServer, Fetch};
use pulseboard_jobs::handlers::digest_sweep;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

async fn app_with_smtp(smtp: &SmtpServer, worker: bool) -> TestApp {
    let url = smtp.url();
    TestApp::spawn_with(
        Options {
            worker,
            scheduler: false,
        },
        move |c| {
            c.mail.smtp_url = url;
            c.jobs.max_attempts = 3;
        },
    )
    .await
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    data.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test]
async fn the_welcome_mail_arrives_over_smtp_with_both_parts() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, true).await;
    app.register(&app.client, "new@example.com").await;
    let mails = eventually(10, || async {
        let m = smtp.received();
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mails[0].to, vec!["new@example.com".to_owned()]);
    let data = &mails[0].data;
    assert_eq!(header(data, "Subject"), Some("Welcome to Pulseboard"));
    assert!(
        header(data, "Message-ID").unwrap().contains("welcome-"),
        "{data}"
    );
    assert!(header(data, "Date").is_some());
    assert!(
        data.contains("text/plain") && data.contains("text/html"),
        "{data}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_451_is_retried_and_the_mail_arrives_once() {
    let smtp = SmtpServer::start().await;
    smtp.reply_next(&[451]);
    let app = app_with_smtp(&smtp, true).await;
    app.register(&app.client, "retry@example.com").await;
    eventually(15, || async { (smtp.received().len() == 1).then_some(()) }).await;
    let (status, attempts): (String, i64) = eventually(10, || async {
        let job = app.job_of_kind("welcome_email").await;
        (job.status == "done").then_some((job.status, job.attempts))
    })
    .await;
    assert_eq!((status.as_str(), attempts), ("done", 2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 1, "sent exactly once");
    app.stop().await;
}

#[tokio::test]
async fn a_550_dead_letters_the_mail_with_the_servers_reply() {
    let smtp = SmtpServer::start().await;
    smtp.reply_next(&[550]);
    let app = app_with_smtp(&smtp, true).await;
    app.register(&app.client, "reject@example.com").await;
    let (attempts, error): (i64, String) = eventually(10, || async {
        let job = app.job_of_kind("welcome_email").await;
        (job.status == "dead").then(|| (job.attempts, job.last_error.unwrap_or_default()))
    })
    .await;
    assert_eq!(attempts, 1, "permanent errors are not retried");
    assert!(
        error.contains("550") && error.contains("rejected by test server"),
        "{error}"
    );
    assert!(smtp.received().is_empty());
    app.stop().await;
}

async fn user_with_tasks(
    app: &TestApp,
    email: &str,
    undone: usize,
    done: usize,
) -> reqwest::Client {
    let c = app.new_client();
    app.register(&c, email).await;
    for i in 0..undone + done {
        let t: Value = c
            .post(app.url("/tasks"))
            .json(&json!({"title": format!("{email} task {i}")}))
            .fetch_json()
            .await;
        if i >= undone {
            c.patch(app.url(&format!("/tasks/{}", t["id"])))
                .json(&json!({"done": true}))
                .fetch()
                .await;
        }
    }
    c
}

fn mail_to<'a>(mails: &'a [common::smtp::Received], to: &str) -> Vec<&'a common::smtp::Received> {
    mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .collect()
}

#[tokio::test]
async fn the_digest_says_the_right_thing_in_each_case_once_per_day() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, true).await;
    user_with_tasks(&app, "undone@example.com", 7, 0).await;
    user_with_tasks(&app, "done@example.com", 0, 2).await;
    user_with_tasks(&app, "both@example.com", 1, 3).await;
    user_with_tasks(&app, "idle@example.com", 0, 0).await;
    eventually(10, || async { (smtp.received().len() == 4).then_some(()) }).await; // welcome mails
    let ctx = app.app.job_context();
    // Tomorrow, just after midnight UTC: today's tasks are the report.
    let tomorrow = pulseboard_domain::Timestamp::now() + 86_400_000;
    let (a, b) = tokio::join!(digest_sweep(&ctx, tomorrow), digest_sweep(&ctx, tomorrow));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        4,
        "one digest per user, however many sweeps"
    );
    assert_eq!(digest_sweep(&ctx, tomorrow).await.unwrap(), 0);
    assert_eq!(digest_keys(&app).await.len(), 4, "each user in one batch");
    eventually(15, || async {
        let n: (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM jobs WHERE kind IN ('digest_batch', 'digest_email')",
        )
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
        (n.0 > 0 && n.0 == n.1).then_some(())
    })
    .await;
    let mails = smtp.received();
    let digests: Vec<_> = mails
        .iter()
        .filter(|m| !m.data.contains("Subject: Welcome"))
        .collect();
    assert_eq!(
        digests.len(),
        3,
        "no mail for the user with nothing to report"
    );

    let undone = mail_to(&mails, "undone@example.com");
    let d = &undone.last().unwrap().data;
    assert_eq!(header(d, "Subject"), Some("You have 7 undone tasks"));
    assert!(
        d.contains("undone@example.com task 4") && !d.contains("undone@example.com task 5"),
        "at most 5 titles"
    );
    assert!(d.contains("and 2 more"));
    assert!(header(d, "List-Unsubscribe")
        .unwrap()
        .contains("/unsubscribe?u="));

    let done = &mail_to(&mails, "done@example.com").last().unwrap().data;
    assert_eq!(header(done, "Subject"), Some("Today you completed 2 tasks"));
    assert!(done.contains("done@example.com task 0") && done.contains("done@example.com task 1"));
    assert!(!done.contains("undone"));

    let both = &mail_to(&mails, "both@example.com").last().unwrap().data;
    assert!(
        both.contains("Today you completed 3 tasks") && both.contains("You have 1 undone task"),
        "{both}"
    );
    assert_eq!(
        mail_to(&mails, "both@example.com").len(),
        2,
        "welcome + one digest"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_digest_refused_inside_a_batch_gets_a_job_of_its_own_and_the_others_go_out() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, true).await;
    for who in ["first", "second", "third"] {
        user_with_tasks(&app, &format!("{who}@example.com"), 1, 0).await;
    }
    eventually(10, || async { (smtp.received().len() == 3).then_some(()) }).await; // welcome mails
    smtp.reply_next(&[550]); // the batch's first digest (the first user's) is refused
    let ctx = app.app.job_context();
    assert_eq!(
        digest_sweep(&ctx, pulseboard_domain::Timestamp::now() + 86_400_000)
            .await
            .unwrap(),
        3
    );
    // The first user's digest went to a job of its own, which sent it; the others went out with
    // the batch.
    eventually(15, || async {
        let digests = smtp
            .received()
            .iter()
            .filter(|m| !m.data.contains("Subject: Welcome"))
            .count();
        (digests == 3).then_some(())
    })
    .await;
    for who in ["first", "second", "third"] {
        assert_eq!(
            mail_to(&smtp.received(), &format!("{who}@example.com")).len(),
            2,
            "{who}: welcome + one digest"
        );
    }
    // (Finished jobs are marked done in batches, a moment after their mail went out.)
    eventually(10, || async {
        let jobs: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, status FROM jobs WHERE kind LIKE 'digest_%' ORDER BY kind",
        )
        .fetch_all(&mut *app.sql().await)
        .await
        .unwrap();
        (jobs
            == vec![
                ("digest_batch".to_owned(), "done".to_owned()),
                ("digest_email".to_owned(), "done".to_owned()),
            ])
        .then_some(())
    })
    .await;
    app.stop().await;
}

fn at(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
        * 1000
}

/// `digest:USER:DAY` for every user in every digest batch enqueued so far, sorted.
async fn digest_keys(app: &TestApp) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT payload FROM jobs WHERE kind = 'digest_batch'")
            .fetch_all(&mut *app.sql().await)
            .await
            .unwrap();
    let mut keys: Vec<String> = rows
        .iter()
        .flat_map(|(p,)| {
            let batch: Value = serde_json::from_str(p).unwrap();
            let day = batch["day"].as_str().unwrap().to_owned();
            batch["user_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| format!("digest:{u}:{day}"))
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_user_in_utc_plus_3_gets_the_digest_at_21_utc() {
    let app = TestApp::spawn().await;
    let moscow = user_with_tasks(&app, "msk@example.com", 1, 0).await;
    let msk_id: Value = moscow
        .patch(app.url("/user"))
        .json(&json!({"time_zone": "Europe/Moscow"}))
        .expect_json(StatusCode::OK)
        .await;
    let utc = user_with_tasks(&app, "utc@example.com", 1, 0).await;
    let utc_id: Value = utc.get(app.url("/user")).fetch_json().await;
    let ctx = app.app.job_context();
    digest_sweep(&ctx, at("2030-01-10T20:59:00Z"))
        .await
        .unwrap();
    let (m, u) = (
        msk_id["id"].as_i64().unwrap(),
        utc_id["id"].as_i64().unwrap(),
    );
    assert_eq!(
        digest_keys(&app).await,
        vec![
            format!("digest:{m}:2030-01-09"),
            format!("digest:{u}:2030-01-09")
        ]
    );
    assert_eq!(
        digest_sweep(&ctx, at("2030-01-10T20:59:59Z"))
            .await
            .unwrap(),
        0,
        "not yet midnight in Moscow"
    );
    assert_eq!(
        digest_sweep(&ctx, at("2030-01-10T21:00:30Z"))
            .await
            .unwrap(),
        1,
        "midnight in Moscow"
    );
    assert!(digest_keys(&app)
        .await
        .contains(&format!("digest:{m}:2030-01-10")));
    assert_eq!(
        digest_sweep(&ctx, at("2030-01-10T23:59:59Z"))
            .await
            .unwrap(),
        0,
        "not yet midnight in UTC"
    );
    assert_eq!(
        digest_sweep(&ctx, at("2030-01-11T00:00:01Z"))
            .await
            .unwrap(),
        1,
        "midnight in UTC"
    );
    app.stop().await;
}

#[tokio::test]
async fn settings_validate_and_turning_the_digest_off_is_respected() {
    let app = TestApp::spawn().await;
    let c = user_with_tasks(&app, "quiet@example.com", 2, 0).await;
    for (body, field) in [
        (json!({"time_zone": "Mars/Base"}), "time_zone"),
        (json!({"locale": "fr"}), "locale"),
    ] {
        let e: Value = c
            .patch(app.url("/user"))
            .json(&body)
            .expect_json(StatusCode::UNPROCESSABLE_ENTITY)
            .await;
        assert!(e["details"][field].is_string(), "{e}");
    }
    assert_eq!(
        c.patch(app.url("/user"))
            .json(&json!({"email": "x@y.z"}))
            .fetch_status()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let me: Value = c
        .patch(app.url("/user"))
        .json(&json!({"digest_enabled": false, "locale": "ru"}))
        .fetch_json()
        .await;
    assert_eq!(me["digest_enabled"], false);
    assert_eq!(me["locale"], "ru");
    let ctx = app.app.job_context();
    assert_eq!(
        digest_sweep(&ctx, pulseboard_domain::Timestamp::now() + 86_400_000)
            .await
            .unwrap(),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn the_unsubscribe_link_works_without_login_and_only_when_signed() {
    let app = TestApp::spawn_with_worker().await;
    let c = user_with_tasks(&app, "unsub@example.com", 1, 0).await;
    let me: Value = c.get(app.url("/user")).fetch_json().await;
    let id = me["id"].as_i64().unwrap();
    let link = pulseboard_mail::unsubscribe::link(&app.base, &app.app.signing_key, id);
    let guest = app.new_client();
    let page = guest.get(&link).expect_status(StatusCode::OK).await;
    assert!(
        page.text().await.unwrap().contains("<form method=\"post\""),
        "GET only asks; scanners must not unsubscribe"
    );
    let me: Value = c.get(app.url("/user")).fetch_json().await;
    assert_eq!(me["digest_enabled"], true);
    guest.post(&link).expect_status(StatusCode::OK).await;
    let me: Value = c.get(app.url("/user")).fetch_json().await;
    assert_eq!(me["digest_enabled"], false);
    let forged = app.url(&format!("/unsubscribe?u={}&t={}", id + 1, "00".repeat(32)));
    assert_eq!(
        guest.post(&forged).fetch_status().await,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// Puts the welcome job back in the queue, as a redelivery after a crash would.
async fn run_welcome_job_again(app: &TestApp) {
    sqlx::query(
        "UPDATE jobs SET status = 'queued', run_at = $1, locked_by = NULL, locked_until = NULL, \
         published_at = NULL WHERE kind = 'welcome_email'",
    )
    .bind(pulseboard_domain::Timestamp::now())
    .execute(&mut *app.sql().await)
    .await
    .unwrap();
    app.app.queue.wake();
    eventually(10, || async {
        let job = app.job_of_kind("welcome_email").await;
        (job.status == "done" && job.attempts == 2).then_some(())
    })
    .await;
}

/// The welcome mail's Message-ID, derived from its key ("welcome:USER"), and its mail_log row.
async fn welcome_id_and_log(app: &TestApp, email: &str) -> (String, (String, Option<String>)) {
    let user = app.user(email).await.id;
    let key = format!("welcome:{user}");
    let log: (String, Option<String>) =
        sqlx::query_as("SELECT state, message_id FROM mail_log WHERE message_key = $1")
            .bind(&key)
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    (app.app.mailer.message_id(&key, email), log)
}

#[tokio::test]
async fn the_welcome_mail_has_a_stable_message_id_and_a_forced_rerun_sends_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, true).await;
    app.register(&app.client, "once@example.com").await;
    eventually(10, || async { (smtp.received().len() == 1).then_some(()) }).await;
    // Recorded as sent right after the relay's 250.
    let (id, log) = eventually(5, || async {
        let (id, log) = welcome_id_and_log(&app, "once@example.com").await;
        (log.0 == "sent").then_some((id, log))
    })
    .await;
    let data = &smtp.received()[0].data;
    assert_eq!(header(data, "Message-ID"), Some(id.as_str()), "{data}");
    // Derived from the key, in the sender's domain (mail.from is noreply@localhost).
    assert!(
        id.starts_with("<welcome-") && id.ends_with("@localhost>"),
        "{id}"
    );
    assert_eq!(log, ("sent".to_owned(), Some(id.clone())));

    run_welcome_job_again(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 1, "a sent message is not sent again");
    app.stop().await;
}

#[tokio::test]
async fn a_mail_whose_sending_was_interrupted_goes_again_with_the_same_message_id() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(&smtp, true).await;
    app.register(&app.client, "twice@example.com").await;
    eventually(10, || async { (smtp.received().len() == 1).then_some(()) }).await;
    eventually(5, || async {
        let (_, log) = welcome_id_and_log(&app, "twice@example.com").await;
        (log.0 == "sent").then_some(())
    })
    .await;
    // As if the worker had died between the relay's 250 and recording it.
    sqlx::query("UPDATE mail_log SET state = 'sending'")
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    run_welcome_job_again(&app).await;
    let mails = eventually(10, || async {
        let m = smtp.received();
        (m.len() == 2).then_some(m)
    })
    .await;
    let (id, log) = welcome_id_and_log(&app, "twice@example.com").await;
    assert_eq!(header(&mails[0].data, "Message-ID"), Some(id.as_str()));
    assert_eq!(
        header(&mails[1].data, "Message-ID"),
        Some(id.as_str()),
        "the same Message-ID, so the mailbox shows it once"
    );
    assert_eq!(log.0, "sent");
    app.stop().await;
}
