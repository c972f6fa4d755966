//! Admin-only views of the job queues (our Flower).

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pulseboard_domain::Timestamp;
use pulseboard_storage::jobs;
use serde_json::{json, Value};

/// `GET /admin/queues`: jobs per queue and state, and the dead jobs (administrators).
#[utoipa::path(
    get,
    path = "/admin/queues",
    tag = "admin",
    responses(
        (status = 200, description = "jobs per queue and state, and the dead jobs", body = Object),
        (status = 403, description = "not an administrator (or a token without the admin scope)", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("admin")))
)]
pub async fn queues(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    user.require_admin(&state).await?;
    let mut queues = serde_json::Map::new();
    for (queue, status, n) in jobs::counts(&state.db).await? {
        let entry = queues
            .entry(queue)
            .or_insert_with(|| json!({"queued": 0, "running": 0, "done": 0, "dead": 0}));
        entry[status] = json!(n);
    }
    let dead: Vec<Value> = jobs::dead(&state.db, 100)
        .await?
        .into_iter()
        .map(|j| {
            json!({
                "id": j.id, "queue": j.queue, "kind": j.kind, "payload": serde_json::from_str::<Value>(&j.payload).unwrap_or(Value::Null),
                "attempts": j.attempts, "last_error": j.last_error,
                "created_at": Timestamp::rfc3339(j.created_at), "updated_at": Timestamp::rfc3339(j.updated_at),
            })
        })
        .collect();
    // Running jobs whose worker stopped renewing their lease (died, hung or lost the database):
    // the next claim takes them over.
    let stale: Vec<Value> = jobs::stale(&state.db, Timestamp::now(), 100)
        .await?
        .into_iter()
        .map(|j| {
            json!({
                "id": j.id, "queue": j.queue, "kind": j.kind, "attempts": j.attempts,
                "locked_by": j.locked_by, "lease_expired_at": Timestamp::rfc3339(j.locked_until),
            })
        })
        .collect();
    // With RabbitMQ, also what waits in the broker (messages not yet delivered to a worker).
    let (backend, broker) =
        match pulseboard_jobs::amqp::AmqpOptions::from_config(&state.config.jobs) {
            None => ("database", Value::Null),
            Some(amqp) => {
                let depths = tokio::time::timeout(
                    std::time::Duration::from_secs(3),
                    pulseboard_jobs::amqp::depths(&amqp, pulseboard_jobs::ALL_QUEUES),
                )
                .await;
                let broker = match depths {
                    Ok(Ok(d)) => json!({
                        "connected": true,
                        "messages": d
                            .into_iter()
                            .map(|(queue, n)| (queue, json!(n)))
                            .collect::<serde_json::Map<String, Value>>(),
                    }),
                    Ok(Err(e)) => json!({"connected": false, "error": e.to_string()}),
                    Err(_) => json!({"connected": false, "error": "no answer within 3 s"}),
                };
                ("rabbitmq", broker)
            }
        };
    Ok(Json(
        json!({ "backend": backend, "broker": broker, "queues": queues, "dead": dead, "stale": stale }),
    ))
}

fn job_id(raw: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("No dead job with that id".into()))
}

/// `POST /admin/jobs/{id}/retry`: queues a dead job again.
#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/retry",
    tag = "admin",
    params(("id" = String, Path, description = "the dead job's id")),
    responses(
        (status = 202, description = "queued again"),
        (status = 403, description = "not an administrator (or a token without the admin scope)", body = crate::openapi::ErrorBody),
        (status = 404, description = "no dead job with that id", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("admin")))
)]
pub async fn retry(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require_admin(&state).await?;
    if jobs::requeue_dead(&state.db, job_id(&id)?, Timestamp::now()).await? {
        state.queue.wake();
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::NotFound("No dead job with that id".into()))
    }
}

/// `DELETE /admin/jobs/{id}`: removes a dead job.
#[utoipa::path(
    delete,
    path = "/admin/jobs/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "the dead job's id")),
    responses(
        (status = 204, description = "discarded"),
        (status = 403, description = "not an administrator (or a token without the admin scope)", body = crate::openapi::ErrorBody),
        (status = 404, description = "no dead job with that id", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("admin")))
)]
pub async fn discard(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require_admin(&state).await?;
    if jobs::discard_dead(&state.db, job_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("No dead job with that id".into()))
    }
}
