//! The SpaceTime seed's task endpoints: `POST /randomize` queues a PNG, `/randomize/{token}/status`
//! says where the task is, `/randomize/{token}/result` gives the shuffled PNG.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::Response;

use super::params::PathArgs;
use super::table::{BodyLimit, Policy};
use super::tasks::{self, TaskStatus, Token};
use super::{Routes, handlers};
use crate::app::AppState;
use crate::body::{Limit, has_content_type, read_limited};
use crate::error::{ApiError, ErrorBody, ResultNotFoundBody};
use crate::forwarded::ClientAddr;
use crate::randomize::{self, ImageError};
use crate::tasks::{TaskId, TaskKind, TaskRecord, now_ms};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(handlers!(submit), Policy::API.body(BodyLimit::Image))
        .route(handlers!(status), Policy::API)
        .route(handlers!(result), Policy::API)
}

/// A PNG file's bytes as the document states a body: a string of `image/png` (OpenAPI 3.1), not
/// the array of integers a `Vec<u8>` would be.
struct PngBytes;

impl utoipa::PartialSchema for PngBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .content_media_type("image/png")
            .into()
    }
}

impl utoipa::ToSchema for PngBytes {}

/// Queues a PNG for randomizing: its 60×60 tiles are shuffled, the edge strips no whole tile
/// covers stay. The header is checked before anything is queued.
#[utoipa::path(post, path = "/randomize", tag = "tasks", operation_id = "randomize_submit",
    request_body(content = inline(PngBytes), content_type = "image/png", description = "The PNG file"),
    params(("X-Client-Id" = Option<String>, Header,
        description = "Which client behind the caller's address is asking: waiting tasks are taken round robin between addresses, then between the clients an address names")),
    responses(
        (status = 201, description = "Queued", body = Token, links(
            ("RandomizeStatus" = (operation_id = "randomize_status",
                parameters(("token" = "$response.body#/token")),
                description = "The task's state, by the token returned")),
            ("RandomizeResult" = (operation_id = "randomize_result",
                parameters(("token" = "$response.body#/token")),
                description = "The task's result once it is finished"))
        )),
        (status = 400, description = "Not `Content-Type: image/png`, empty, or not a PNG", body = ErrorBody),
        (status = 408, description = "`request body timed out`: no body bytes for --body-timeout", body = ErrorBody),
        (status = 413, description = "Over --max-image-bytes, or more pixels than --max-image-pixels", body = ErrorBody),
        (status = 503, description = "The queue is full, or the client's address has its --client-share of the queue's places waiting (both with Retry-After, and both checked before the image is read), or the queue is unreachable", body = ErrorBody),
        (status = 507, description = "`insufficient storage`: the image would leave less than --min-free-disk, or take its client's payloads past its --client-share of the room above it, or a Redis queue is at its maxmemory (nothing is kept)", body = ErrorBody),
    ))]
async fn submit(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let received = now_ms();
    let (parts, body) = request.into_parts();
    let is_png = has_content_type(&parts.headers, "image/png");
    if !is_png {
        return Err(ApiError::BadRequest(
            "Content-Type must be image/png".into(),
        ));
    }
    let name = tasks::client_id(&parts);
    // A full queue, or a client with its share of it waiting, is told before it uploads.
    state.tasks.queue.room_for(&name).await?;
    let client = ClientAddr::of(&parts);
    let png = read_limited(body, Limit::of(&parts)?, &state.buffered, client).await?;
    if png.is_empty() {
        return Err(ApiError::BadRequest(
            "the body is empty: send a PNG file".into(),
        ));
    }
    match randomize::inspect(&png, state.config.max_image_pixels) {
        Ok(_) => {}
        Err(err @ ImageError::Invalid(_)) => {
            return Err(ApiError::BadRequest(err.to_string().into()));
        }
        Err(err @ ImageError::TooManyPixels { .. }) => return Err(ApiError::ImageTooLarge(err)),
    }
    let mut task = TaskRecord::new(TaskId::random(), TaskKind::Randomize, received);
    task.client = Some(name);
    let id = task.id;
    let hold = state.tasks.files.disk.hold(client);
    state.tasks.submit(task, &png, hold).await?;
    Ok(Token::created(id))
}

/// Where the task is: requested → received (a worker took it) → finished or errored.
#[utoipa::path(get, path = "/randomize/{token}/status", tag = "tasks", operation_id = "randomize_status",
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
    tasks::status(&state, args.first(), TaskKind::Randomize).await
}

/// The randomized PNG, once the task has finished.
#[utoipa::path(get, path = "/randomize/{token}/result", tag = "tasks", operation_id = "randomize_result",
    params(("token" = String, Path, description = "As `POST /randomize` returned it")),
    responses(
        (status = 200, description = "The randomized image", content_type = "image/png", body = inline(PngBytes)),
        (status = 404, description = "Not finished, errored, or unknown", body = ResultNotFoundBody),
        (status = 503, description = "The queue is unreachable", body = ErrorBody),
    ))]
async fn result(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Response, ApiError> {
    tasks::result(&state, args.first(), TaskKind::Randomize, "image/png").await
}
