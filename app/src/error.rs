//! The errors handlers return. Each becomes the body the contract names, and carries its cause
//! to the request's own access line: the response holds an [`ErrorCause`] that the middleware
//! writes into that line, next to the request id, instead of a separate log line nobody could
//! join to the request.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::body::guard::TimedOut;
use crate::numbers::TotalError;
use crate::randomize::ImageError;
use crate::store::StoreFailure;
use crate::tasks::QueueError;

/// An error a client gets to see. The client sees the contract's body; the access line of the
/// request also gets the cause behind it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 404 `{"error":"not found"}`.
    #[error("not found")]
    NotFound,
    /// 405 `{"error":"method not allowed"}`; the router sets `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 400 in the Deepgram envelope: `{"result":"failed","reason":...}`.
    #[error("{0}")]
    Failed(&'static str),
    /// 400 `{"error":"invalid number: <x>"}` for the math endpoints.
    #[error("invalid number: {0}")]
    InvalidNumber(String),
    /// 400 `{"error":"<why>"}` for a request that does not say what the endpoint needs.
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// 408 `{"error":"request body timed out"}`: the client stopped sending its body.
    #[error("request body timed out")]
    BodyTimeout(#[source] TimedOut),
    /// 413 `{"error":"request body too large","limit_bytes":N}`.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 431 `{"error":"request head too large","limit_bytes":N}`: the request line and headers
    /// are over `--max-head-bytes`.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    /// 413 `{"error":"<why>"}`: an image with more pixels than `--max-image-pixels`.
    #[error("{0}")]
    ImageTooLarge(ImageError),
    /// 415 `{"error":"<what the endpoint takes>"}`.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// 404 `{"err_msg":"Message not found"}`, the Paxos seed's body.
    #[error("Message not found")]
    MessageNotFound,
    /// 404 `{"message":"not found"}`, the SpaceTime seed's body for a result that is not there.
    #[error("result not found")]
    ResultNotFound,
    /// 404 `{"error":"unknown token"}` for a task token nobody issued (or that expired).
    #[error("unknown token")]
    UnknownToken,
    /// 404 `{"error":"unknown fault"}`: `DELETE /faults/{name}` with no such fault.
    #[error("unknown fault")]
    UnknownFault,
    /// 502 `{"error":"numbers API failed: <why>"}` when `/total` cannot get its numbers.
    #[error("numbers API failed: {0}")]
    Upstream(TotalError),
    /// 503 `{"error":"store unavailable"}` with `Retry-After`.
    #[error("store unavailable")]
    StoreUnavailable(#[source] StoreFailure),
    /// 503 `{"error":"queue unavailable"}` with `Retry-After`.
    #[error("queue unavailable")]
    QueueUnavailable(#[source] QueueError),
    /// 503 `{"error":"overloaded, retry later"}` with `Retry-After`.
    #[error("overloaded, retry later")]
    Overloaded(#[source] Overload),
    /// 507 `{"error":"insufficient storage"}`: the disk is full, or a write would cross
    /// `--min-free-disk`; nothing partial is kept.
    #[error("insufficient storage")]
    InsufficientStorage(#[source] std::io::Error),
    /// 500 `{"error":"internal error"}`: a bug, described in the access line.
    #[error("internal error")]
    Internal(#[source] Bug),
}

/// What was full when a request was refused as an overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Overload {
    #[error("every --max-concurrency permit is taken")]
    Concurrency,
    #[error("this client holds its --client-share of the --max-concurrency permits")]
    ClientShare,
    #[error("request bodies in memory reached --max-buffered-bytes")]
    BodyMemory,
    #[error(
        "this client's request bodies in memory reached its --client-share of --max-buffered-bytes"
    )]
    ClientBodyMemory,
    #[error("the queue holds --queue-capacity tasks")]
    QueueFull,
    #[error("this client has its --client-share of the --queue-capacity places waiting")]
    QueueClientShare,
}

impl Overload {
    #[cfg(test)]
    pub(crate) const ALL: [Self; 6] = [
        Self::Concurrency,
        Self::ClientShare,
        Self::BodyMemory,
        Self::ClientBodyMemory,
        Self::QueueFull,
        Self::QueueClientShare,
    ];

    /// The bound that refused, as `glassbox_overloads_total` labels it.
    pub(crate) fn bound(self) -> &'static str {
        match self {
            Self::Concurrency => "permits",
            Self::ClientShare => "client_permits",
            Self::BodyMemory => "body_memory",
            Self::ClientBodyMemory => "client_body_memory",
            Self::QueueFull => "queue",
            Self::QueueClientShare => "client_queue",
        }
    }
}

/// Something the code should never do, in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Bug(pub &'static str);

/// Why a request failed, as its access line says it: the error the client saw and every cause
/// behind it, joined by `": "`. A response carries it as an extension from the handler to the
/// middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCause(pub String);

impl ErrorCause {
    /// `error` and its chain of sources.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self(text)
    }

    /// Adds the cause to `response`.
    pub fn attach(self, response: &mut Response) {
        response.extensions_mut().insert(self);
    }
}

/// The body shapes the contract names for errors.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Error {
        error: Cow<'a, str>,
    },
    TooLarge {
        error: &'static str,
        limit_bytes: usize,
    },
    Failed {
        result: FailedTag,
        reason: &'static str,
    },
    ErrMsg {
        err_msg: &'static str,
    },
    Message {
        message: &'static str,
    },
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NotFound
            | Self::MessageNotFound
            | Self::ResultNotFound
            | Self::UnknownToken
            | Self::UnknownFault => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Failed(_) | Self::InvalidNumber(_) | Self::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } | Self::ImageTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::StoreUnavailable(_) | Self::QueueUnavailable(_) | Self::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Body<'_> {
        match self {
            Self::Failed(reason) => Body::Failed {
                result: FailedTag::Failed,
                reason,
            },
            Self::PayloadTooLarge { limit } => Body::TooLarge {
                error: "request body too large",
                limit_bytes: *limit,
            },
            Self::HeadTooLarge { limit } => Body::TooLarge {
                error: "request head too large",
                limit_bytes: *limit,
            },
            Self::MessageNotFound => Body::ErrMsg {
                err_msg: "Message not found",
            },
            Self::ResultNotFound => Body::Message {
                message: "not found",
            },
            Self::BadRequest(why) => Body::Error {
                error: Cow::Borrowed(why),
            },
            Self::UnsupportedMediaType(why) => Body::Error {
                error: Cow::Borrowed(why),
            },
            // The default shape; for the 5xx this is all the client sees of the cause.
            _ => Body::Error {
                error: Cow::Owned(self.to_string()),
            },
        }
    }

    /// Seconds a client should wait before trying again, for the 503s.
    fn retry_after(&self) -> Option<u32> {
        matches!(self.status(), StatusCode::SERVICE_UNAVAILABLE).then_some(1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        ErrorCause::of(&self).attach(&mut response);
        // Which bound refused, for the middleware to count.
        if let Self::Overloaded(overload) = self {
            response.extensions_mut().insert(overload);
        }
        response
    }
}

/// A full store is out of room (507), as a full disk is; a failing one is unavailable (503).
impl From<StoreFailure> for ApiError {
    fn from(failure: StoreFailure) -> Self {
        if failure.error.kind == crate::store::ErrorKind::Full {
            ApiError::InsufficientStorage(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                failure,
            ))
        } else {
            ApiError::StoreUnavailable(failure)
        }
    }
}

/// A full queue is an overload (503 with `Retry-After`); a failing one is unavailable.
impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Full => ApiError::Overloaded(Overload::QueueFull),
            QueueError::ClientShare => ApiError::Overloaded(Overload::QueueClientShare),
            QueueError::NoSpace(why) => ApiError::InsufficientStorage(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                why,
            )),
            unavailable => ApiError::QueueUnavailable(unavailable),
        }
    }
}

/// `{"error":"..."}`: the body of 404s, 405s, 413s, 431s, 503s and the math endpoints' 400s.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: String,
}

/// `{"err_msg":"Message not found"}`, as the Paxos seed answered.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageNotFoundBody {
    pub err_msg: String,
}

/// `{"message":"not found"}`, the SpaceTime seed's body for a result that is not there.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResultNotFoundBody {
    pub message: String,
}

/// Always `"failed"`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FailedTag {
    Failed,
}

/// The Deepgram envelope's failure: `{"result":"failed","reason":"..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Failed {
    pub result: FailedTag,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ErrorKind, StoreError};

    #[test]
    fn an_overload_names_its_bound_on_the_response() {
        let bounds: std::collections::HashSet<_> = Overload::ALL.map(Overload::bound).into();
        assert_eq!(bounds.len(), Overload::ALL.len(), "one label per bound");
        for overload in Overload::ALL {
            let response = ApiError::Overloaded(overload).into_response();
            assert_eq!(response.status(), 503);
            assert_eq!(response.extensions().get::<Overload>(), Some(&overload));
        }
        let response = ApiError::MessageNotFound.into_response();
        assert_eq!(response.extensions().get::<Overload>(), None);
    }

    async fn answer(error: ApiError) -> (u16, serde_json::Value, Option<String>, Option<String>) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .map(|c| c.0.clone());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap(), retry, cause)
    }

    #[tokio::test]
    async fn each_error_has_the_contracts_body_and_its_cause() {
        let refused = StoreFailure {
            backend: "redis",
            operation: "put",
            error: StoreError::new(ErrorKind::Connection, "Connection refused (os error 111)"),
        };
        let cases = [
            (
                ApiError::StoreUnavailable(refused),
                503,
                r#"{"error":"store unavailable"}"#,
                "store unavailable: redis put: connection: Connection refused (os error 111)",
            ),
            (
                ApiError::Failed("sleep too long"),
                400,
                r#"{"result":"failed","reason":"sleep too long"}"#,
                "sleep too long",
            ),
            (
                ApiError::PayloadTooLarge { limit: 9 },
                413,
                r#"{"error":"request body too large","limit_bytes":9}"#,
                "request body larger than 9 bytes",
            ),
            (
                ApiError::HeadTooLarge { limit: 16 },
                431,
                r#"{"error":"request head too large","limit_bytes":16}"#,
                "request head larger than 16 bytes",
            ),
            (
                ApiError::MessageNotFound,
                404,
                r#"{"err_msg":"Message not found"}"#,
                "Message not found",
            ),
            (
                ApiError::ResultNotFound,
                404,
                r#"{"message":"not found"}"#,
                "result not found",
            ),
            (
                QueueError::Full.into(),
                503,
                r#"{"error":"overloaded, retry later"}"#,
                "overloaded, retry later: the queue holds --queue-capacity tasks",
            ),
            (
                QueueError::ClientShare.into(),
                503,
                r#"{"error":"overloaded, retry later"}"#,
                "overloaded, retry later: this client has its --client-share of the \
                 --queue-capacity places waiting",
            ),
            (
                ApiError::Internal(Bug("no body limit")),
                500,
                r#"{"error":"internal error"}"#,
                "internal error: no body limit",
            ),
        ];
        for (error, status, body, cause) in cases {
            let (got_status, got_body, retry, got_cause) = answer(error).await;
            assert_eq!(got_status, status, "{body}");
            assert_eq!(
                got_body,
                serde_json::from_str::<serde_json::Value>(body).unwrap()
            );
            assert_eq!(got_cause.as_deref(), Some(cause));
            assert_eq!(retry.is_some(), status == 503, "{body}");
        }
    }
}
