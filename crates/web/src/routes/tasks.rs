use crate::auth::CurrentUser;
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

#[derive(Serialize)]
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
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    if_none_match: IfNoneMatch,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    title: String,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /tasks`; with an `Idempotency-Key`, a repeat answers the first response (see
/// [`idempotency`]).
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Idempotent { body, key }: Idempotent<NewTask>,
) -> ApiResult<Response> {
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

pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    let task = tasks::get(state.db.pool(), user.id, task_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(task.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    title: Option<String>,
    description: Option<String>,
    done: Option<bool>,
    position: Option<i64>,
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Input(body): Input<PatchTask>,
) -> ApiResult<Json<TaskView>> {
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

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
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
