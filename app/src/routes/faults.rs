//! The `/faults` API (`--allow-faults`; on `--admin-bind` when it is set): start, list and end
//! the faults of [`crate::faults`]. Without `--allow-faults` every `/faults` path answers 404,
//! as an unknown path does.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::PathArgs;
use super::table::{BodyLimit, Policy};
use super::{Routes, handlers};
use crate::app::AppState;
use crate::body::{Limit, read_limited, require_content_type};
use crate::error::{ApiError, ErrorBody};
use crate::faults::{FaultSpec, FaultView};
use crate::forwarded::Client;

pub(crate) fn routes() -> Routes {
    Routes::new().route(handlers!(list), Policy::ADMIN).route(
        handlers!(put, delete),
        Policy::ADMIN.body(BodyLimit::Default),
    )
}

/// Longest fault name.
const MAX_NAME: usize = 64;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FaultBody {
    pub fault: FaultView,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FaultsBody {
    /// The active faults, oldest first. They live in this process's memory: a restart clears
    /// them.
    pub faults: Vec<FaultView>,
}

/// The active faults.
#[utoipa::path(get, path = "/faults", tag = "faults",
    responses(
        (status = 200, description = "The active faults", body = FaultsBody),
        (status = 404, description = "`--allow-faults` is off", body = ErrorBody),
    ))]
async fn list(State(state): State<AppState>) -> Result<Json<FaultsBody>, ApiError> {
    allowed(&state)?;
    Ok(Json(FaultsBody {
        faults: state.faults.active(),
    }))
}

/// Starts the fault `name`, or replaces the one of that name. It lasts until deleted, until
/// `duration_s` has passed, or until the process restarts (faults are kept in memory only).
#[utoipa::path(put, path = "/faults/{name}", tag = "faults",
    params(("name" = String, Path, description = "1 to 64 of `A-Za-z0-9-_.`")),
    request_body(content = FaultSpec, content_type = "application/json"),
    responses(
        (status = 201, description = "Started", body = FaultBody),
        (status = 400, description = "A bad name, or settings that are not JSON, unknown, out of range or missing for the kind", body = ErrorBody),
        (status = 404, description = "`--allow-faults` is off", body = ErrorBody),
        (status = 413, description = "Body over the limit (--max-body-bytes)", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    ))]
async fn put(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
    Limit(limit): Limit,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<FaultBody>), ApiError> {
    allowed(&state)?;
    let name = name(&args)?;
    require_content_type(
        &headers,
        "application/json",
        "Content-Type must be application/json",
    )?;
    let bytes = read_limited(body, limit, &state.buffered, client).await?;
    let spec = FaultSpec::parse(&bytes, &state.routes)
        .map_err(|err| ApiError::BadRequest(err.0.into()))?;
    let fault = state.faults.put(name.to_owned(), spec);
    Ok((StatusCode::CREATED, Json(FaultBody { fault })))
}

/// Ends the fault `name`.
#[utoipa::path(delete, path = "/faults/{name}", tag = "faults",
    params(("name" = String, Path, description = "The fault's name")),
    responses(
        (status = 204, description = "Ended"),
        (status = 400, description = "Not a fault name", body = ErrorBody),
        (status = 404, description = "`unknown fault`, or `--allow-faults` is off", body = ErrorBody),
    ))]
async fn delete(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<StatusCode, ApiError> {
    allowed(&state)?;
    let name = name(&args)?;
    match state.faults.delete(name) {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::UnknownFault),
    }
}

fn allowed(state: &AppState) -> Result<(), ApiError> {
    match state.config.allow_faults {
        true => Ok(()),
        false => Err(ApiError::NotFound),
    }
}

/// The `{name}` segment, when it is a fault name.
fn name(args: &[String]) -> Result<&str, ApiError> {
    let name = args.first().map_or("", String::as_str);
    let valid = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match valid {
        true => Ok(name),
        false => Err(ApiError::BadRequest(
            format!("a fault name is 1 to {MAX_NAME} of A-Za-z0-9-_.").into(),
        )),
    }
}
