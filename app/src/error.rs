//! The errors handlers return, each turned into the body the contract names.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::tasks::QueueError;

/// An error a client gets to see. The cause, if any, goes to the log, not the body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `{"error":"not found"}`.
    #[error("not found")]
    NotFound,
    /// 400 in the Deepgram envelope: `{"result":"failed","reason":...}`.
    #[error("{0}")]
    Failed(&'static str),
    /// 400 `{"error":"invalid number: <x>"}` for the math endpoints.
    #[error("invalid number: {0}")]
    InvalidNumber(String),
    /// 502 `{"error":"numbers API failed: <why>"}` when `/total` cannot get its numbers.
    #[error("numbers API failed: {0}")]
    Upstream(String),
    /// 413 `{"error":"request body too large","limit_bytes":N}`.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 400 `{"error":"<why>"}` for a body that does not say what the endpoint needs.
    #[error("{0}")]
    BadRequest(String),
    /// 415 `{"error":"<what the endpoint takes>"}`.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// 404 `{"err_msg":"Message not found"}`, the Paxos seed's body.
    #[error("Message not found")]
    MessageNotFound,
    /// 503 `{"error":"store unavailable"}` with `Retry-After`; the cause is logged.
    #[error("store unavailable")]
    StoreUnavailable,
    /// 503 `{"error":"queue unavailable"}` with `Retry-After`; the cause is logged.
    #[error("queue unavailable")]
    QueueUnavailable,
    /// 507 `{"error":"not enough disk space for the upload"}`; the partial upload is removed.
    #[error("not enough disk space for the upload")]
    InsufficientStorage,
    /// 404 `{"error":"unknown token"}` for a task token nobody issued (or that expired).
    #[error("unknown token")]
    UnknownToken,
    /// 503 with `Retry-After` when the concurrency limit is reached.
    #[error("overloaded")]
    Overloaded { retry_after_secs: u32 },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => not_found(),
            ApiError::Failed(reason) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"result": "failed", "reason": reason})),
            )
                .into_response(),
            ApiError::InvalidNumber(_) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            ApiError::Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": "request body too large", "limit_bytes": limit})),
            )
                .into_response(),
            ApiError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            ApiError::MessageNotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({"err_msg": "Message not found"})),
            )
                .into_response(),
            ApiError::StoreUnavailable => unavailable("store unavailable", 1),
            ApiError::QueueUnavailable => unavailable("queue unavailable", 1),
            ApiError::InsufficientStorage => (
                StatusCode::INSUFFICIENT_STORAGE,
                Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            ApiError::UnknownToken => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "unknown token"})),
            )
                .into_response(),
            ApiError::Overloaded { retry_after_secs } => {
                unavailable("overloaded, retry later", retry_after_secs)
            }
        }
    }
}

/// A full queue is an overload (503 with `Retry-After`); a failing one is unavailable.
impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Full => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            QueueError::Unavailable(why) => {
                tracing::warn!(error = %why, "the task queue failed");
                ApiError::QueueUnavailable
            }
        }
    }
}

/// 503 `{"error":reason}` with `Retry-After`.
fn unavailable(reason: &str, retry_after_secs: u32) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": reason})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// 404 `{"error":"not found"}`, also the router's fallback.
pub fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

/// The body of a 405; the router sets the status and the `Allow` header.
pub fn method_not_allowed_body() -> Json<serde_json::Value> {
    Json(json!({"error": "method not allowed"}))
}

/// `{"error":"..."}`: the body of 404s, 405s, 413s, 503s and the math endpoints' 400s.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `{"err_msg":"Message not found"}`, as the Paxos seed answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageNotFoundBody {
    pub err_msg: String,
}

/// Always `"failed"`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailedTag {
    Failed,
}

/// The Deepgram envelope's failure: `{"result":"failed","reason":"..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Failed {
    pub result: FailedTag,
    pub reason: String,
}
