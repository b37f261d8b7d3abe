//! The SpaceTime seed's follow-up task: `POST /sum-evens` streams a text file of numbers to disk
//! and queues it; `/sum-evens/{token}/status` reports progress in bytes; `/sum-evens/{token}/result`
//! gives the exact sum of the even numbers.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::Response;
use http_body_util::BodyExt;

use super::params::PathArgs;
use super::table::{BodyLimit, Policy};
use super::tasks::{self, TaskStatus, Token};
use super::{Routes, handlers};
use crate::app::AppState;
use crate::body::{Limit, has_content_type, memory_refusal, read_failed};
use crate::error::{ApiError, ErrorBody, ResultNotFoundBody};
use crate::forwarded::ClientAddr;
use crate::sum_evens::SumEvensResult;
use crate::tasks::{QueueError, TaskId, TaskKind, TaskRecord, now_ms, spool};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(handlers!(submit), Policy::API.body(BodyLimit::Upload))
        .route(handlers!(status), Policy::API)
        .route(handlers!(result), Policy::API)
}

/// While an upload is spooled, its hold on the disk grows by this much (checking the free
/// space and its client's share) each time it arrives at what it holds.
const DISK_HELD_AHEAD: u64 = 1 << 20;

/// The request's `Content-Length`, when it has a sane one.
fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn storage_error(err: std::io::Error) -> ApiError {
    if err.kind() == std::io::ErrorKind::StorageFull {
        ApiError::InsufficientStorage(err)
    } else {
        ApiError::QueueUnavailable(QueueError::unavailable(format!(
            "storing the upload: {err}"
        )))
    }
}

/// Streams a text file of integers to disk (never whole in memory) and queues the sum of its
/// even numbers. Integers are decimal, of any length, with an optional sign, separated by ASCII
/// whitespace or commas. Clients share the workers fairly: their addresses take turns, and
/// the clients an address names with `X-Client-Id` take that address's turns.
#[utoipa::path(post, path = "/sum-evens", tag = "tasks", operation_id = "sum_evens_submit",
    request_body(content = String, content_type = "text/plain", description = "The numbers"),
    params(("X-Client-Id" = Option<String>, Header,
        description = "Which client behind the caller's address is asking, for fair scheduling (up to 64 of `A-Za-z0-9-_.:@`): it divides the address's turns and adds none")),
    responses(
        (status = 201, description = "Stored and queued", body = Token, links(
            ("SumEvensStatus" = (operation_id = "sum_evens_status",
                parameters(("token" = "$response.body#/token")),
                description = "The task's state, by the token returned")),
            ("SumEvensResult" = (operation_id = "sum_evens_result",
                parameters(("token" = "$response.body#/token")),
                description = "The task's result once it is finished"))
        )),
        (status = 400, description = "Not `Content-Type: text/plain`, or the upload broke off", body = ErrorBody),
        (status = 408, description = "`request body timed out`: no body bytes for --body-timeout", body = ErrorBody),
        (status = 413, description = "Over --max-upload-bytes (nothing is kept)", body = ErrorBody),
        (status = 503, description = "The queue is full, or the client's address has its --client-share of the queue's places waiting (both checked before the upload is read, and again when it has been stored), or --max-buffered-bytes has no 2 MiB left for the upload's blocks (each with Retry-After), or the queue is unreachable", body = ErrorBody),
        (status = 507, description = "`insufficient storage`: the upload would cross --min-free-disk, or take its client's uploads and payloads past its --client-share of the room above it (both checked from Content-Length before the upload is read, and every MiB while it is), the disk filled up, or a Redis queue is at its maxmemory (nothing is kept)", body = ErrorBody),
    ))]
async fn submit(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let received = now_ms();
    let (parts, mut body) = request.into_parts();
    let is_text = has_content_type(&parts.headers, "text/plain");
    if !is_text {
        return Err(ApiError::BadRequest(
            "Content-Type must be text/plain".into(),
        ));
    }
    let client = tasks::client_id(&parts);
    // A full queue, or a client with its share of it waiting, is told before it uploads.
    state.tasks.queue.room_for(&client).await?;
    let id = TaskId::random();
    let limit = Limit::of(&parts)?;
    let address = ClientAddr::of(&parts);
    // What the upload holds of the disk, within --min-free-disk and its client's share of the
    // room above it. What the client says it will send must fit before a byte of it is
    // spooled; what it sends is held a MiB ahead of the spool.
    let mut hold = state.tasks.files.disk.hold(address);
    hold.check(declared_length(&parts.headers).unwrap_or(0))?;
    let failed = |err| {
        state.tasks.write_failed();
        storage_error(err)
    };
    // Its blocks come out of the memory for request bodies.
    let memory = state
        .buffered
        .try_take(address, spool::LEAST_MEMORY)
        .map_err(memory_refusal)?;
    let mut spool = state.tasks.files.spool(id, memory).await.map_err(failed)?;
    // With workers here, the sum starts on the chunks as they land; the task's worker
    // finishes it.
    let sums = state.tasks.incoming.as_ref();
    let mut incoming = match sums {
        Some(sums) => Some(sums.begin(&client, spool.reader().map_err(failed)?)),
        None => None,
    };
    // The blocks the spool writes are summed where they are, not read back.
    if let Some(held) = incoming.as_ref().and_then(|incoming| incoming.held()) {
        spool.keep_blocks(held);
    }
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| read_failed(&err, "the upload broke off"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let before = total;
        total += data.len() as u64;
        if total > limit as u64 {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while hold.bytes() < total {
            hold.grow(DISK_HELD_AHEAD)?;
        }
        if let Some(incoming) = &mut incoming {
            incoming.written(before, &data);
        }
        spool.write(&data).await.map_err(failed)?;
        if let Some(incoming) = &mut incoming {
            incoming.landed(spool.landed());
        }
    }
    if let Some(incoming) = &incoming {
        // The last chunk is summed while the file is synced.
        spool.flush().await.map_err(failed)?;
        incoming.finish(total);
    }
    spool.commit().await.map_err(failed)?;
    let mut task = TaskRecord::new(id, TaskKind::SumEvens, received);
    task.client = Some(client);
    task.bytes_total = Some(total);
    if let (Some(sums), Some(incoming)) = (sums, incoming) {
        sums.keep(id, incoming);
    }
    state.tasks.enqueue(task, hold).await.inspect_err(|_| {
        if let Some(sums) = sums {
            sums.forget(id);
        }
    })?;
    Ok(Token::created(id))
}

/// Where the task is, with `bytes_done` of `bytes_total`; an errored task says which token was
/// bad and its byte offset.
#[utoipa::path(get, path = "/sum-evens/{token}/status", tag = "tasks", operation_id = "sum_evens_status",
    params(("token" = String, Path, description = "As `POST /sum-evens` returned it")),
    responses(
        (status = 200, description = "The task's state and progress", body = TaskStatus),
        (status = 404, description = "`unknown token` (also once a result has expired)", body = ErrorBody),
        (status = 503, description = "The queue is unreachable", body = ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Json<TaskStatus>, ApiError> {
    tasks::status(&state, args.first(), TaskKind::SumEvens).await
}

/// The exact sum of the even numbers, with counts, once the task has finished.
#[utoipa::path(get, path = "/sum-evens/{token}/result", tag = "tasks", operation_id = "sum_evens_result",
    params(("token" = String, Path, description = "As `POST /sum-evens` returned it")),
    responses(
        (status = 200, description = "The sum (a decimal string: it may be any size) and counts", body = SumEvensResult),
        (status = 404, description = "Not finished, errored, or unknown", body = ResultNotFoundBody),
        (status = 503, description = "The queue is unreachable", body = ErrorBody),
    ))]
async fn result(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Response, ApiError> {
    tasks::result(&state, args.first(), TaskKind::SumEvens, "application/json").await
}
