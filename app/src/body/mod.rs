//! Request bodies read the way the contract wants: the content type checked first, the size
//! held to the route's limit, and every refusal a JSON error instead of axum's plain-text
//! rejections.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::error::{ApiError, Bug, Overload};
use crate::limiter::{self, Full};

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
///
/// A shared budget also bounds each client (an address; for IPv6 its /64) to its share, so a
/// few slow uploads from one client cannot hold every byte: clients are counted in the
/// concurrency limiter's hashed slots ([`limiter::slot`]).
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// The most one client may hold; `limit` when clients are not counted.
    per_client: usize,
    /// Bytes held per client slot, when clients are counted (else empty).
    by_client: Box<[AtomicUsize]>,
}

impl Budget {
    /// A budget of `limit` bytes in all.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Self::shared(limit, limit)
    }

    /// A budget of `limit` bytes, at most `per_client` of them held by one client.
    pub(crate) fn shared(limit: usize, per_client: usize) -> Arc<Self> {
        let per_client = per_client.clamp(1, limit.max(1));
        let slots = if per_client < limit {
            limiter::SLOTS
        } else {
            0
        };
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            per_client,
            by_client: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most one client may hold.
    pub(crate) fn per_client(&self) -> usize {
        self.per_client
    }

    /// Takes `bytes` as one share of `client` (when known), given back when it is dropped;
    /// refused past the limit, or past the client's share.
    pub(crate) fn try_take(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        bytes: usize,
    ) -> Result<Taken, Full> {
        let slot = client
            .filter(|_| !self.by_client.is_empty())
            .map(limiter::slot);
        let mut taken = Taken {
            budget: self.clone(),
            slot,
            bytes: 0,
        };
        taken.try_grow(bytes).map(|()| taken)
    }
}

/// Bytes taken from a [`Budget`] for one client, given back when dropped.
#[derive(Debug)]
pub(crate) struct Taken {
    budget: Arc<Budget>,
    /// The client's counter, when the client is counted.
    slot: Option<usize>,
    bytes: usize,
}

impl Taken {
    /// Takes `bytes` more into this share; refused (and nothing taken) past the limit, or
    /// past the client's share.
    pub(crate) fn try_grow(&mut self, bytes: usize) -> Result<(), Full> {
        let budget = &self.budget;
        let before = budget.used.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > budget.limit {
            budget.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(Full::All);
        }
        if let Some(slot) = self.slot {
            let held = budget.by_client[slot].fetch_add(bytes, Ordering::AcqRel);
            if held + bytes > budget.per_client {
                budget.by_client[slot].fetch_sub(bytes, Ordering::AcqRel);
                budget.used.fetch_sub(bytes, Ordering::AcqRel);
                return Err(Full::Client);
            }
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Bytes this share holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.budget.by_client[slot].fetch_sub(self.bytes, Ordering::AcqRel);
        }
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The refusal for a body that would take more memory than `full` lets it.
pub(crate) fn memory_refusal(full: Full) -> ApiError {
    ApiError::Overloaded(match full {
        Full::All => Overload::BodyMemory,
        Full::Client => Overload::ClientBodyMemory,
    })
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
/// it breaks off, 503 when the bodies held in memory reach `budget`, or `client`'s share of
/// it. The unread rest of a refused body goes back to the middleware, which drains it
/// ([`guard`]).
pub(crate) async fn read_limited(
    mut body: Body,
    limit: usize,
    budget: &Arc<Budget>,
    client: Option<IpAddr>,
) -> Result<Buffered, ApiError> {
    let mut held = budget.try_take(client, 0).map_err(memory_refusal)?;
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
                held.try_grow(capacity - counted).map_err(memory_refusal)?;
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
        assert_eq!(
            read_limited(body(), 100, &budget, None)
                .await
                .unwrap()
                .len(),
            100
        );
        assert!(matches!(
            read_limited(body(), 99, &budget, None).await,
            Err(ApiError::PayloadTooLarge { limit: 99 })
        ));
        assert_eq!(budget.used(), 0, "a refused body gives its bytes back");
    }

    #[tokio::test]
    async fn bodies_in_memory_share_one_budget() {
        let budget = Budget::new(250);
        let body = || Body::from(vec![b'x'; 100]);
        let first = read_limited(body(), 1000, &budget, None).await.unwrap();
        let second = read_limited(body(), 1000, &budget, None).await.unwrap();
        assert_eq!(budget.used(), 200);
        assert!(matches!(
            read_limited(body(), 1000, &budget, None).await,
            Err(ApiError::Overloaded(Overload::BodyMemory))
        ));
        assert_eq!(budget.used(), 200, "the refused one holds nothing");
        drop(first);
        assert_eq!(budget.used(), 100);
        assert_eq!(
            read_limited(body(), 1000, &budget, None)
                .await
                .unwrap()
                .len(),
            100
        );
        drop(second);
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share_of_the_budget() {
        let a = Some(IpAddr::from([192, 0, 2, 1]));
        let b = Some(IpAddr::from([192, 0, 2, 2]));
        let budget = Budget::shared(400, 200);
        let body = || Body::from(vec![b'x'; 100]);
        let first = read_limited(body(), 1000, &budget, a).await.unwrap();
        let _second = read_limited(body(), 1000, &budget, a).await.unwrap();
        assert!(matches!(
            read_limited(body(), 1000, &budget, a).await,
            Err(ApiError::Overloaded(Overload::ClientBodyMemory))
        ));
        assert_eq!(budget.used(), 200, "the refused one holds nothing");
        let _other = read_limited(body(), 1000, &budget, b).await.unwrap();
        drop(first);
        let _third = read_limited(body(), 1000, &budget, a).await.unwrap();
        // An unknown client is bounded by the budget in all only.
        let _unknown = read_limited(body(), 1000, &budget, None).await.unwrap();
        assert!(matches!(
            read_limited(body(), 1000, &budget, b).await,
            Err(ApiError::Overloaded(Overload::BodyMemory))
        ));
        assert_eq!(budget.used(), 400);
    }

    #[test]
    fn a_budget_without_shares_counts_no_clients() {
        assert!(Budget::new(100).by_client.is_empty());
        assert!(Budget::shared(100, 100).by_client.is_empty());
        assert_eq!(Budget::shared(100, 0).per_client(), 1);
        assert_eq!(Budget::shared(100, 50).by_client.len(), limiter::SLOTS);
    }

    #[tokio::test]
    async fn the_budget_counts_the_buffer_as_it_grows() {
        let budget = Budget::new(10_000);
        let chunks =
            (0..3).map(|_| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 100])));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let read = read_limited(body, 1000, &budget, None).await.unwrap();
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
        let read = read_limited(Body::new(Declared(chunks, 300)), 1000, &budget, None)
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
            read_limited(Body::new(Declared(chunks, 300)), 1000, &small, None).await,
            Err(ApiError::Overloaded(Overload::BodyMemory))
        ));
        assert_eq!(small.used(), 0);
    }
}
