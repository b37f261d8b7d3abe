//! The Paxos seed's message store: `POST /messages` keeps a message under its SHA-256 digest,
//! `GET /messages/{digest}` gives it back.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::params::PathArgs;
use super::table::{BodyLimit, Policy};
use super::{Routes, handlers};
use crate::app::AppState;
use crate::body::{Limit, read_limited, require_content_type};
use crate::error::{ApiError, Bug, ErrorBody, MessageNotFoundBody};
use crate::forwarded::Client;
use crate::store::{Digest, Put};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(
            handlers!(post_message),
            Policy::API.body(BodyLimit::Default),
        )
        .route(handlers!(get_message), Policy::API)
}

/// The body of `POST /messages`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct NewMessage {
    /// Any UTF-8 text, empty included, up to the body limit.
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DigestBody {
    /// Lowercase hex SHA-256 of the message's UTF-8 bytes.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageBody {
    pub message: String,
}

/// Keeps a message under its SHA-256 digest. Posting the same message again is also 201. A
/// 201 means the message is stored: on the embedded store, on disk.
#[utoipa::path(post, path = "/messages", tag = "messages",
    request_body(content = NewMessage, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored", body = DigestBody, links(
            ("GetMessage" = (operation_id = "get_message",
                parameters(("digest" = "$response.body#/digest")),
                description = "The stored message, by the digest returned"))
        )),
        (status = 400, description = "Not JSON, or no string `message`", body = ErrorBody),
        (status = 408, description = "`request body timed out`: no body bytes for --body-timeout", body = ErrorBody),
        (status = 413, description = "Body over the limit (--max-body-bytes)", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 503, description = "`store unavailable`, with Retry-After", body = ErrorBody),
        (status = 507, description = "`insufficient storage`: the embedded store's disk would fall below --min-free-disk, or its client's messages and uploads would pass its --client-share of the room above it, or Redis is at its maxmemory (nothing is kept)", body = ErrorBody),
    ))]
async fn post_message(
    State(state): State<AppState>,
    Limit(limit): Limit,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<DigestBody>), ApiError> {
    require_content_type(
        &headers,
        "application/json",
        "Content-Type must be application/json",
    )?;
    let bytes = read_limited(body, limit, &state.buffered, client).await?;
    // Parsing and hashing a large message is CPU work for a blocking thread, not an I/O one.
    let (message, digest) = if bytes.len() > HASH_ON_THREAD_BYTES {
        tokio::task::spawn_blocking(move || parse_and_hash(&bytes))
            .await
            .map_err(|_| ApiError::Internal(Bug("hashing a message panicked")))??
    } else {
        parse_and_hash(&bytes)?
    };
    // The embedded store's file is on the data directory's filesystem: a message must leave
    // --min-free-disk free, and its client's messages and uploads within its --client-share
    // of the room above it. A message added stays counted (the store deletes none).
    let mut hold = state.disk.hold(client);
    let embedded = state.store.backend() == "embedded";
    if embedded && let Err(no_room) = hold.grow(message.len() as u64) {
        // A message already stored takes no more room: it is answered as any repeat is.
        if !matches!(state.store.get(digest).await, Ok(Some(_))) {
            return Err(no_room.into());
        }
    } else if state.store.put(digest, message, client).await? == Put::Created && embedded {
        hold.keep();
    }
    Ok((
        StatusCode::CREATED,
        Json(DigestBody {
            digest: digest.to_hex(),
        }),
    ))
}

/// Messages up to this size are parsed and hashed where they arrive (tens of microseconds);
/// larger ones on a blocking thread.
const HASH_ON_THREAD_BYTES: usize = 64 * 1024;

fn parse_and_hash(bytes: &[u8]) -> Result<(String, Digest), ApiError> {
    let message = parse(bytes)?;
    let digest = Digest::of(&message);
    Ok((message, digest))
}

/// `{"message": "<string>"}` and nothing less; other members are ignored.
fn parse(bytes: &[u8]) -> Result<String, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}").into()))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object with a string \"message\"".into(),
        ));
    };
    match object.remove("message") {
        Some(Value::String(message)) => Ok(message),
        Some(_) => Err(ApiError::BadRequest("\"message\" must be a string".into())),
        None => Err(ApiError::BadRequest("missing \"message\"".into())),
    }
}

/// The message whose SHA-256 digest this is.
#[utoipa::path(get, path = "/messages/{digest}", tag = "messages",
    params(("digest" = String, Path, description = "64 hex digits, as `POST /messages` returned")),
    responses(
        (status = 200, description = "The original message", body = MessageBody),
        (status = 404, description = "Unknown or malformed digest", body = MessageNotFoundBody),
        (status = 503, description = "`store unavailable`, with Retry-After", body = ErrorBody),
    ))]
async fn get_message(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Json<MessageBody>, ApiError> {
    let digest = args
        .first()
        .and_then(|d| Digest::parse_hex(d))
        .ok_or(ApiError::MessageNotFound)?;
    match state.store.get(digest).await {
        Ok(Some(message)) => Ok(Json(MessageBody { message })),
        Ok(None) => Err(ApiError::MessageNotFound),
        Err(failure) => Err(ApiError::StoreUnavailable(failure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(bytes: &[u8]) -> String {
        match parse(bytes) {
            Err(ApiError::BadRequest(why)) => why.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(parse(br#"{"message":"foo"}"#).unwrap(), "foo");
        assert_eq!(parse(br#"{"message":"","extra":1}"#).unwrap(), "");
        assert_eq!(
            parse(br#"{"message":"\u00e9\ud83d\ude00"}"#).unwrap(),
            "é😀"
        );
        assert!(error(b"").starts_with("invalid JSON"));
        assert!(error(b"{\"message\":").starts_with("invalid JSON"));
        assert!(error(br#"{"message":"\ud800"}"#).starts_with("invalid JSON"));
        assert!(error(b"{\"message\":\"\xff\"}").starts_with("invalid JSON"));
        assert_eq!(error(br#"{}"#), "missing \"message\"");
        assert_eq!(error(br#"{"message":3}"#), "\"message\" must be a string");
        assert_eq!(
            error(br#"{"message":null}"#),
            "\"message\" must be a string"
        );
        assert!(error(br#"["foo"]"#).starts_with("the body must be a JSON object"));
        assert!(error(br#""foo""#).starts_with("the body must be a JSON object"));
    }
}
