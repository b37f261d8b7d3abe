//! The SpaceTime seed's task endpoints: `POST /randomize` queues a PNG, `/randomize/{token}/status`
//! says where the task is, `/randomize/{token}/result` gives the shuffled PNG.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::read_limited;
use super::params::PathArgs;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::randomize::{self, ImageError};
use crate::tasks::{TaskId, TaskKind, TaskRecord, TaskState, now_ms};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit))
        .routes(routes!(status))
        .routes(routes!(result))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// 32 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStatus {
    pub status: TaskState,
    /// Why the task errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `{"message":"not found"}`, the seed's body for a result that is not there.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultNotFound {
    pub message: String,
}

/// Queues a PNG for randomizing: its 60×60 tiles are shuffled, the edge strips no whole tile
/// covers stay. The header is checked before anything is queued.
#[utoipa::path(post, path = "/randomize", tag = "tasks",
    request_body(content = Vec<u8>, content_type = "image/png", description = "The PNG file"),
    responses(
        (status = 201, description = "Queued", body = Token),
        (status = 400, description = "Not `Content-Type: image/png`, empty, or not a PNG", body = ErrorBody),
        (status = 413, description = "Over --max-image-bytes, or more pixels than --max-image-pixels", body = ErrorBody),
        (status = 503, description = "The queue is full (with Retry-After) or unreachable", body = ErrorBody),
    ))]
async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = now_ms();
    let is_png = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("image/png"));
    if !is_png {
        return Err(ApiError::BadRequest(
            "Content-Type must be image/png".into(),
        ));
    }
    let png = read_limited(body, state.config.max_image_bytes).await?;
    if png.is_empty() {
        return Err(ApiError::BadRequest(
            "the body is empty: send a PNG file".into(),
        ));
    }
    match randomize::inspect(&png, state.config.max_image_pixels) {
        Ok(_) => {}
        Err(err @ ImageError::Invalid(_)) => return Err(ApiError::BadRequest(err.to_string())),
        Err(err @ ImageError::TooManyPixels { .. }) => {
            return Ok((
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": err.to_string()})),
            )
                .into_response());
        }
    }
    let task = TaskRecord::new(TaskId::random(), TaskKind::Randomize, received);
    let id = task.id;
    state.tasks.submit(task, &png).await?;
    Ok((
        StatusCode::CREATED,
        Json(Token {
            token: id.to_string(),
        }),
    )
        .into_response())
}

/// The task of this kind under this token, if any.
async fn lookup(state: &AppState, token: Option<&String>) -> Result<Option<TaskRecord>, ApiError> {
    let Some(id) = token.and_then(|t| TaskId::parse(t)) else {
        return Ok(None);
    };
    let task = state.tasks.queue.get(id).await?;
    Ok(task.filter(|t| t.kind == TaskKind::Randomize))
}

/// Where the task is: requested → received (a worker took it) → finished or errored.
#[utoipa::path(get, path = "/randomize/{token}/status", tag = "tasks",
    params(("token" = String, Path, description = "As `POST /randomize` returned it")),
    responses(
        (status = 200, description = "The task's state; `error` says why it errored", body = TaskStatus),
        (status = 404, description = "`unknown token` (also once a result has expired)", body = ErrorBody),
        (status = 503, description = "The queue is unreachable", body = ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Json<TaskStatus>, ApiError> {
    let task = lookup(&state, args.first())
        .await?
        .ok_or(ApiError::UnknownToken)?;
    Ok(Json(TaskStatus {
        status: task.state,
        error: task.error,
    }))
}

/// The randomized PNG, once the task has finished.
#[utoipa::path(get, path = "/randomize/{token}/result", tag = "tasks",
    params(("token" = String, Path, description = "As `POST /randomize` returned it")),
    responses(
        (status = 200, description = "The randomized image", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "Not finished, errored, or unknown", body = ResultNotFound),
        (status = 503, description = "The queue is unreachable", body = ErrorBody),
    ))]
async fn result(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Response, ApiError> {
    let not_found =
        || (StatusCode::NOT_FOUND, Json(json!({"message": "not found"}))).into_response();
    let Some(task) = lookup(&state, args.first()).await? else {
        return Ok(not_found());
    };
    if task.state != TaskState::Finished {
        return Ok(not_found());
    }
    match state.tasks.files.read_result(task.id).await {
        Ok(Some(png)) => Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response()),
        Ok(None) => Ok(not_found()),
        Err(err) => {
            tracing::error!(token = %task.id, error = %err, "reading a result failed");
            Err(ApiError::QueueUnavailable)
        }
    }
}
