//! What every task endpoint shares: the token answer, the status answer, looking a task up by
//! kind, and the seed's "not found" for results.

use axum::Json;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;
use crate::forwarded::{self, ClientAddr};
use crate::tasks::{ANONYMOUS, QueueError, TaskId, TaskKind, TaskRecord, TaskState};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Token {
    /// 32 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub token: String,
}

impl Token {
    /// 201 with the token.
    pub(crate) fn created(id: TaskId) -> Response {
        (
            StatusCode::CREATED,
            Json(Token {
                token: id.to_string(),
            }),
        )
            .into_response()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskStatus {
    pub status: TaskState,
    /// Why the task errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of the upload processed so far (sum-evens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    /// The upload's size (sum-evens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
}

impl From<TaskRecord> for TaskStatus {
    fn from(task: TaskRecord) -> Self {
        let bytes_done = task.bytes_total.map(|total| match task.state {
            TaskState::Finished => total,
            _ => task.bytes_done.unwrap_or(0),
        });
        Self {
            status: task.state,
            error: task.error,
            bytes_done,
            bytes_total: task.bytes_total,
        }
    }
}

const MAX_CLIENT_ID: usize = 64;

/// Who is asking, for fair scheduling ([`crate::turns`]): the client's address (the one a
/// trusted proxy reports, else the peer's: [`ClientAddr`]; for IPv6 its /64), and the
/// `X-Client-Id` it gives, if sane, which names one of the clients behind that address.
pub(crate) fn client_id(parts: &Parts) -> String {
    let headers = &parts.headers;
    let id = headers
        .get("x-client-id")
        .map(|v| v.as_bytes())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_CLIENT_ID
                && id.iter().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@')
                })
        })
        .map(String::from_utf8_lossy);
    let address = ClientAddr::of(parts).map(|ip| format!("addr:{}", forwarded::client_name(ip)));
    match (address, id) {
        (Some(address), Some(id)) => format!("{address} id:{id}"),
        (Some(address), None) => address,
        (None, Some(id)) => format!("id:{id}"),
        (None, None) => ANONYMOUS.into(),
    }
}

/// The task of this kind under this token, if any.
pub(crate) async fn lookup(
    state: &AppState,
    token: Option<&String>,
    kind: TaskKind,
) -> Result<Option<TaskRecord>, ApiError> {
    let Some(id) = token.and_then(|t| TaskId::parse(t)) else {
        return Ok(None);
    };
    let task = state.tasks.queue.get(id).await?;
    Ok(task.filter(|t| t.kind == kind))
}

/// The status of a task of this kind, or 404 `{"error":"unknown token"}`.
pub(crate) async fn status(
    state: &AppState,
    token: Option<&String>,
    kind: TaskKind,
) -> Result<Json<TaskStatus>, ApiError> {
    let task = lookup(state, token, kind)
        .await?
        .ok_or(ApiError::UnknownToken)?;
    Ok(Json(task.into()))
}

/// What a result streams by: a client that reads slowly holds one chunk of it in memory, not
/// the whole file.
const RESULT_CHUNK: usize = 64 * 1024;

/// The result file of a finished task of this kind, as `content_type`, streamed from disk;
/// else the seed's 404.
pub(crate) async fn result(
    state: &AppState,
    token: Option<&String>,
    kind: TaskKind,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let task = lookup(state, token, kind)
        .await?
        .filter(|task| task.state == TaskState::Finished)
        .ok_or(ApiError::ResultNotFound)?;
    match state.tasks.files.open_result(task.id).await {
        Ok(Some((file, len))) => {
            let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                file,
                RESULT_CHUNK,
            ));
            Ok((
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        HeaderValue::from_static(content_type),
                    ),
                    (axum::http::header::CONTENT_LENGTH, HeaderValue::from(len)),
                ],
                body,
            )
                .into_response())
        }
        Ok(None) => Err(ApiError::ResultNotFound),
        Err(err) => Err(ApiError::QueueUnavailable(QueueError::unavailable(
            format!("reading the result: {err}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(client_id: Option<&str>, addr: Option<&str>) -> Parts {
        let mut request = axum::http::Request::post("/randomize");
        if let Some(id) = client_id {
            request = request.header("x-client-id", id);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(addr) = addr {
            parts.extensions.insert(ClientAddr(addr.parse().unwrap()));
        }
        parts
    }

    #[test]
    fn clients_are_their_address_and_the_id_they_give() {
        assert_eq!(
            client_id(&parts(Some("team-a"), Some("192.0.2.1"))),
            "addr:192.0.2.1 id:team-a"
        );
        assert_eq!(client_id(&parts(Some("team-a"), None)), "id:team-a");
        assert_eq!(client_id(&parts(None, Some("192.0.2.1"))), "addr:192.0.2.1");
        assert_eq!(
            client_id(&parts(Some("has space"), Some("::1"))),
            "addr:::/64"
        );
        // Any address of one IPv6 /64 is one client.
        assert_eq!(
            client_id(&parts(None, Some("2001:db8:5:6::7"))),
            client_id(&parts(None, Some("2001:db8:5:6:8:9:a:b")))
        );
        assert_eq!(client_id(&parts(Some(&"x".repeat(65)), None)), "anonymous");
    }
}
