//! Request bodies read the way the contract wants: the content type checked first, the size
//! held to the route's limit, and every refusal a JSON error instead of axum's plain-text
//! rejections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::error::{ApiError, Bug, Overload};

pub(crate) mod guard;
pub(crate) mod keep;
pub(crate) mod unread;

/// The largest body the request's route takes, in bytes, from the route table: the middleware
/// puts it on every request that may carry a body (any method but GET and HEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub usize);

impl Limit {
    /// The limit the middleware put on this request.
    pub(crate) fn of(parts: &Parts) -> Result<usize, ApiError> {
        parts
            .extensions
            .get::<Limit>()
            .map(|limit| limit.0)
            .ok_or(ApiError::Internal(Bug("the request carries no body limit")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Limit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Limit::of(parts).map(Limit)
    }
}

/// Whether `Content-Type` is `expected` (any case, parameters such as `charset` allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// Passes when `Content-Type` is `expected`; otherwise 415 with `refusal` as the error.
pub(crate) fn require_content_type(
    headers: &HeaderMap,
    expected: &str,
    refusal: &'static str,
) -> Result<(), ApiError> {
    if has_content_type(headers, expected) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(refusal))
    }
}

/// How much of a refused body is read and dropped so its client gets to see the refusal.
pub(crate) const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
/// How long draining a refused body may take.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Bytes held in memory at once against a limit: request bodies across requests
/// (`--max-buffered-bytes`), which routes that read a whole body (`/messages`, `/randomize`)
/// take from as bytes arrive and an upload's spool takes its blocks from
/// ([`crate::tasks::spool`]); also the upload blocks kept for sums (`sum_evens::held`).
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` as one share, given back when it is dropped; `None` past the limit.
    pub(crate) fn try_take(self: &Arc<Self>, bytes: usize) -> Option<Taken> {
        let mut taken = Taken {
            budget: self.clone(),
            bytes: 0,
        };
        taken.try_grow(bytes).then_some(taken)
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Taken {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Taken {
    /// Takes `bytes` more into this share; `false` (and nothing taken) past the limit.
    pub(crate) fn try_grow(&mut self, bytes: usize) -> bool {
        let budget = &self.budget;
        let before = budget.used.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > budget.limit {
            budget.used.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        self.bytes += bytes;
        true
    }

    /// Bytes this share holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A whole body in memory, counted against the budget until dropped.
#[derive(Debug)]
pub(crate) struct Buffered {
    bytes: Bytes,
    _held: Taken,
}

impl std::ops::Deref for Buffered {
    type Target = Bytes;

    fn deref(&self) -> &Bytes {
        &self.bytes
    }
}

/// The whole body, at most `limit` bytes: 413 beyond, 408 if the client stops sending, 400 if
/// it breaks off, 503 when the bodies held in memory reach `budget`. The unread rest of a
/// refused body goes back to the middleware, which drains it ([`guard`]).
pub(crate) async fn read_limited(
    mut body: Body,
    limit: usize,
    budget: &Arc<Budget>,
) -> Result<Buffered, ApiError> {
    let mut held = Taken {
        budget: budget.clone(),
        bytes: 0,
    };
    // A declared length is reserved at once, so the buffer is never copied to grow (a copy
    // holds the old buffer and the new one at the same time, and leaves the old one to the
    // allocator). That reserves address space only: pages are taken as bytes land, and the
    // budget counts them as they do, below.
    let declared = body
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= limit);
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    // What the budget holds for this body.
    let mut counted = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| read_failed(&err, "could not read the request body"))?;
        if let Ok(data) = frame.into_data() {
            let needed = bytes.len() + data.len();
            if needed > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if needed > counted {
                // The budget counts what may be in memory, not only what arrived: it grows
                // in doublings, each taken before the bytes it covers, up to the declared
                // length (or the limit; both are within the limit, as `needed` is by now).
                let ceiling = declared.unwrap_or(limit).max(needed);
                let capacity = needed.max(counted * 2).min(ceiling);
                if !held.try_grow(capacity - counted) {
                    return Err(ApiError::Overloaded(Overload::BodyMemory));
                }
                counted = capacity;
                if capacity > bytes.capacity() {
                    bytes.reserve_exact(capacity - bytes.len());
                }
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Buffered {
        bytes: Bytes::from(bytes),
        _held: held,
    })
}

/// The error for a body that could not be read: 408 for the body timeout, else 400 with
/// `what` and the cause.
pub(crate) fn read_failed(err: &axum::Error, what: &str) -> ApiError {
    match guard::timed_out(err) {
        Some(timeout) => ApiError::BodyTimeout(timeout),
        None => ApiError::BadRequest(format!("{what}: {err}").into()),
    }
}

/// Reads and drops the rest of a refused body, up to [`DRAIN_LIMIT`] bytes and [`DRAIN_TIME`],
/// and only while bytes keep coming (`stall`: the body timeout). Over HTTP/1.1 a server that
/// answers and closes while its client is still sending makes the client's next write fail
/// before it reads the answer (nginx's lingering close exists for the same reason); over
/// HTTP/2 the stream is reset after the answer, which some clients take for an error. Past the
/// bounds that happens anyway.
pub(crate) async fn drain(mut body: Body, stall: Duration) {
    let mut left = DRAIN_LIMIT;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(stall, body.frame()).await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            match left.checked_sub(data.len()) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        let check = |h: &HeaderMap| require_content_type(h, "application/json", "json please");
        assert!(matches!(
            check(&headers),
            Err(ApiError::UnsupportedMediaType("json please"))
        ));
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(check(&headers).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert!(check(&headers).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn limits() {
        let budget = Budget::new(1000);
        let body = || Body::from(vec![b'x'; 100]);
        assert_eq!(read_limited(body(), 100, &budget).await.unwrap().len(), 100);
        assert!(matches!(
            read_limited(body(), 99, &budget).await,
            Err(ApiError::PayloadTooLarge { limit: 99 })
        ));
        assert_eq!(budget.used(), 0, "a refused body gives its bytes back");
    }

    #[tokio::test]
    async fn bodies_in_memory_share_one_budget() {
        let budget = Budget::new(250);
        let body = || Body::from(vec![b'x'; 100]);
        let first = read_limited(body(), 1000, &budget).await.unwrap();
        let second = read_limited(body(), 1000, &budget).await.unwrap();
        assert_eq!(budget.used(), 200);
        assert!(matches!(
            read_limited(body(), 1000, &budget).await,
            Err(ApiError::Overloaded(Overload::BodyMemory))
        ));
        assert_eq!(budget.used(), 200, "the refused one holds nothing");
        drop(first);
        assert_eq!(budget.used(), 100);
        assert_eq!(
            read_limited(body(), 1000, &budget).await.unwrap().len(),
            100
        );
        drop(second);
    }

    #[tokio::test]
    async fn the_budget_counts_the_buffer_as_it_grows() {
        let budget = Budget::new(10_000);
        let chunks =
            (0..3).map(|_| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 100])));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let read = read_limited(body, 1000, &budget).await.unwrap();
        assert_eq!(read.len(), 300);
        // 100, then doubled to 200, then to 400: what is allocated is what is counted.
        assert_eq!(budget.used(), 400);
        drop(read);
        assert_eq!(budget.used(), 0);
    }

    /// Chunks of a body whose length was declared.
    struct Declared(std::collections::VecDeque<Bytes>, u64);

    impl HttpBody for Declared {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.1)
        }
    }

    #[tokio::test]
    async fn a_declared_body_is_counted_up_to_its_length() {
        let budget = Budget::new(10_000);
        let chunks = (0..3).map(|_| Bytes::from(vec![b'x'; 100])).collect();
        let read = read_limited(Body::new(Declared(chunks, 300)), 1000, &budget)
            .await
            .unwrap();
        assert_eq!(read.len(), 300);
        // 100, doubled to 200, then the declared 300 rather than 400.
        assert_eq!(budget.used(), 300);
        drop(read);
        // Past the budget, a declared body is refused as an undeclared one is.
        let small = Budget::new(150);
        let chunks = (0..3).map(|_| Bytes::from(vec![b'x'; 100])).collect();
        assert!(matches!(
            read_limited(Body::new(Declared(chunks, 300)), 1000, &small).await,
            Err(ApiError::Overloaded(Overload::BodyMemory))
        ));
        assert_eq!(small.used(), 0);
    }
}
