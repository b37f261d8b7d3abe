//! A body sent to a route that reads none ([`BodyLimit::Unread`](crate::routes::table::BodyLimit)):
//! the middleware reads and drops it while the route's handler runs. Left unread until the
//! handler returned, it would wait in a buffer: over HTTP/2 in its stream's window, up to
//! `--h2-stream-window` a stream for as long as the handler takes (a `GET /sleep/60000` sent
//! with 8 MiB held its 8 MiB for the minute), and as many as a client has connections.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::error::ApiError;

use super::read_failed;

/// The body a route will not read, and the most of it that is taken (`--max-body-bytes`).
pub(crate) struct Unread {
    pub(crate) body: Body,
    pub(crate) limit: usize,
}

/// Runs `route` while reading and dropping `unread`, and answers as the route does, or: 413
/// as soon as the body passes its limit, 408 when it stalls for the body timeout (the guard
/// under it times it out), 400 when it breaks off. Either way the route's future is dropped.
/// What the body still holds when the answer is ready goes back to the middleware with it,
/// which drains it as for any route that left its body unread.
pub(crate) async fn alongside(route: impl Future<Output = Response>, unread: Unread) -> Response {
    let Unread { mut body, limit } = unread;
    let mut route = std::pin::pin!(route);
    let mut read = 0usize;
    loop {
        tokio::select! {
            biased;
            response = &mut route => return response,
            frame = body.frame() => match frame {
                None => return route.await,
                Some(Ok(frame)) => {
                    read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                    if read > limit {
                        return ApiError::PayloadTooLarge { limit }.into_response();
                    }
                }
                Some(Err(err)) => {
                    return read_failed(&err, "the request body broke off").into_response();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;
    use futures_util::StreamExt;
    use http_body::Frame;

    use super::*;

    /// A body of `chunks`, then open (`stall`) or ended.
    fn body(chunks: Vec<&'static [u8]>, stall: bool) -> Body {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, axum::BoxError>(Frame::data(Bytes::from_static(chunk)))),
        );
        let tail = if stall {
            futures_util::stream::pending().boxed()
        } else {
            futures_util::stream::empty().boxed()
        };
        Body::new(http_body_util::StreamBody::new(frames.chain(tail)))
    }

    /// `body` to be read alongside a route, with a limit of six bytes.
    fn unread(body: Body) -> Unread {
        Unread { body, limit: 6 }
    }

    /// A route that answers `status` after `seconds`.
    async fn route(seconds: u64, status: StatusCode) -> Response {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        status.into_response()
    }

    #[tokio::test(start_paused = true)]
    async fn the_route_answers_when_the_body_ends_within_its_limit() {
        let answer = alongside(
            route(5, StatusCode::ACCEPTED),
            unread(body(vec![b"abc", b"def"], false)),
        )
        .await;
        assert_eq!(answer.status(), 202);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_past_its_limit_is_a_413_without_waiting_for_the_route() {
        let start = tokio::time::Instant::now();
        let answer = alongside(
            route(60, StatusCode::OK),
            unread(body(vec![b"abc", b"defg"], true)),
        )
        .await;
        assert_eq!(answer.status(), 413);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_that_answers_first_answers_while_the_body_is_still_coming() {
        let answer = alongside(route(1, StatusCode::OK), unread(body(vec![b"abc"], true))).await;
        assert_eq!(answer.status(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_for_the_body_timeout_is_a_408_without_waiting_for_the_route() {
        let start = tokio::time::Instant::now();
        let guarded = crate::body::guard::Guarded::new(
            body(vec![b"abc"], true),
            Duration::from_secs(5),
            false,
            std::sync::Arc::default(),
        );
        let answer = alongside(route(60, StatusCode::OK), unread(Body::new(guarded))).await;
        assert_eq!(answer.status(), 408);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
