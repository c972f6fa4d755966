use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::etag::{self, IfNoneMatch};
use crate::extract::Input;
use crate::idempotency::{self, Idempotent};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_domain::{TaskDescription, TaskPosition, TaskTitle, Timestamp};
use pulseboard_storage::tasks::{self, Task, TaskPatch};
use serde::{Deserialize, Serialize};

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Task)]
pub struct TaskView {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub done: bool,
    pub done_at: Option<String>,
    pub position: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        Self {
            id: t.id,
            title: t.title,
            description: t.description,
            done: t.done,
            done_at: t.done_at.map(Timestamp::rfc3339),
            position: t.position,
            created_at: Timestamp::rfc3339(t.created_at),
            updated_at: Timestamp::rfc3339(t.updated_at),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    done: Option<bool>,
}

fn not_found() -> ApiError {
    ApiError::NotFound("Task not found".into())
}

/// Task ids in paths: anything but a positive integer is simply not a task of this user.
fn task_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(not_found)
}

/// `GET /tasks[?done=]`: with an `ETag` of the body; `If-None-Match` naming it → 304.
#[utoipa::path(
    get,
    path = "/tasks",
    tag = "tasks",
    params(("done" = Option<bool>, Query, description = "only done (true) or open (false) tasks"), ("If-None-Match" = Option<String>, Header, description = "an ETag from an earlier answer: 304 while the body is unchanged")),
    responses(
        (status = 200, description = "the user's tasks, ordered by position (ETag)", body = [TaskView]),
        (status = 304, description = "unchanged since the ETag in If-None-Match"),
        (status = 403, description = "an API token without the tasks:read scope", body = crate::openapi::ErrorBody),
        (status = 422, description = "done is not true or false", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("tasks:read")))
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    if_none_match: IfNoneMatch,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    user.require(Scope::TasksRead)?;
    let Query(q) = query.map_err(|e| ApiError::Validation {
        message: format!(
            "Invalid query: {} (done must be true or false)",
            e.body_text()
        ),
        details: [("done".to_owned(), "must be true or false".to_owned())].into(),
    })?;
    let rows = tasks::list(&state.db, user.id, q.done).await?;
    let views: Vec<TaskView> = rows.into_iter().map(TaskView::from).collect();
    etag::json(&if_none_match, &views)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    title: String,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /tasks`; with an `Idempotency-Key`, a repeat answers the first response (see
/// [`idempotency`]).
#[utoipa::path(
    post,
    path = "/tasks",
    tag = "tasks",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1-255 visible ASCII characters: a retry with the same key and body answers the first response within 24 hours; the same key with another body is 422")),
    request_body(content((NewTask = "application/json"), (NewTask = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "created (or, with Idempotent-Replayed: true, the first answer to this Idempotency-Key)", body = TaskView),
        (status = 403, description = "an API token without the tasks:write scope", body = crate::openapi::ErrorBody),
        (status = 409, description = "a request with this Idempotency-Key is still being processed (Retry-After)", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("tasks:write")))
)]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Idempotent { body, key }: Idempotent<NewTask>,
) -> ApiResult<Response> {
    user.require(Scope::TasksWrite)?;
    let title = TaskTitle::parse(&body.title)?;
    let description = TaskDescription::parse(body.description.as_deref().unwrap_or(""))?;
    let (user_id, now) = (user.id, Timestamp::now());
    if let Some(key) = key {
        let outcome = idempotency::create(&state.db, user_id, key, now, move |tx| {
            Box::pin(async move {
                let task = tasks::create(tx, user_id, &title, &description, now).await?;
                Ok(serde_json::to_string(&TaskView::from(task)).expect("a task serialises"))
            })
        })
        .await?;
        return Ok(match outcome {
            Ok(body) => idempotency::created(body),
            Err(earlier) => idempotency::answer(earlier),
        });
    }
    let task = state
        .db
        .write(move |tx| {
            Box::pin(async move { tasks::create(tx, user_id, &title, &description, now).await })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(TaskView::from(task))).into_response())
}

/// `GET /tasks/{id}`: one task of the user.
#[utoipa::path(
    get,
    path = "/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task's id (a positive integer; anything else is 404)")),
    responses(
        (status = 200, description = "the task", body = TaskView),
        (status = 403, description = "an API token without the tasks:read scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such task of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("tasks:read")))
)]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    user.require(Scope::TasksRead)?;
    let task = tasks::get(&state.db, user.id, task_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(task.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TaskPatch)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    title: Option<String>,
    description: Option<String>,
    done: Option<bool>,
    position: Option<i64>,
}

/// `PATCH /tasks/{id}`: changes any of title, description, done, position.
#[utoipa::path(
    patch,
    path = "/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task's id (a positive integer; anything else is 404)")),
    request_body(description = "the fields to change", content((PatchTask = "application/json"), (PatchTask = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "the updated task", body = TaskView),
        (status = 403, description = "an API token without the tasks:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such task of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("tasks:write")))
)]
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Input(body): Input<PatchTask>,
) -> ApiResult<Json<TaskView>> {
    user.require(Scope::TasksWrite)?;
    let id = task_id(&id)?;
    let patch = TaskPatch {
        title: body.title.as_deref().map(TaskTitle::parse).transpose()?,
        description: body
            .description
            .as_deref()
            .map(TaskDescription::parse)
            .transpose()?,
        done: body.done,
        position: body.position.map(TaskPosition::parse).transpose()?,
    };
    let (user_id, now) = (user.id, Timestamp::now());
    let task = state
        .db
        .write(move |tx| Box::pin(async move { tasks::update(tx, user_id, id, patch, now).await }))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(task.into()))
}

/// `DELETE /tasks/{id}` → 204.
#[utoipa::path(
    delete,
    path = "/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "the task's id (a positive integer; anything else is 404)")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "an API token without the tasks:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such task of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("tasks:write")))
)]
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require(Scope::TasksWrite)?;
    let (user_id, id) = (user.id, task_id(&id)?);
    let deleted = state
        .db
        .write(move |tx| Box::pin(async move { tasks::delete(tx, user_id, id).await }))
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
