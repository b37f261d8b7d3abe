//! The request body as the middleware hands it to a route. Two things happen to it whatever the
//! route does:
//!
//! - A client that stops sending is cut off: a body that brings no byte for `--body-timeout`
//!   ends with [`TimedOut`], which the route answers with 408 (and drops the body, its memory
//!   and its permit with it).
//! - A body the route did not read to its end goes back to the middleware (through
//!   [`Leftover`]), which reads and drops the rest, bounded, before the response leaves. A
//!   server that answers while its client is still sending makes HTTP/1.1 clients fail their
//!   next write and HTTP/2 clients get a `RST_STREAM` they may take for an error (curl 7.88
//!   drops the answer): so every refusal, whichever layer makes it, lets its answer arrive.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A body that brought no byte for the configured time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client sent no body bytes for {0:?} (--body-timeout)")]
pub(crate) struct TimedOut(pub Duration);

/// Where a route's unfinished body goes when the route drops it.
#[derive(Debug, Default)]
pub(crate) struct Leftover(Mutex<Option<Body>>);

impl Leftover {
    /// The unread rest of the body, if the route left one.
    pub(crate) fn take(&self) -> Option<Body> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Wraps a request body with the body timeout and hands it back to `leftover` when dropped
/// before its end.
pub(crate) struct Guarded {
    inner: Option<Body>,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    leftover: Arc<Leftover>,
    timed_out: bool,
    /// The client sent `Expect: 100-continue`: until the body is first read it sends nothing,
    /// and an unread body is not drained (reading it would ask for it).
    waits_for_continue: bool,
    read: bool,
}

impl Guarded {
    pub(crate) fn new(
        inner: Body,
        timeout: Duration,
        waits_for_continue: bool,
        leftover: Arc<Leftover>,
    ) -> Self {
        Self {
            inner: Some(inner),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            leftover,
            timed_out: false,
            waits_for_continue,
            read: false,
        }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.read {
            this.read = true;
            // The clock starts when the route asks for the body (a client waiting for
            // `100 Continue` is asked only now).
            let next = Instant::now() + this.timeout;
            this.deadline.as_mut().reset(next);
        }
        if this.timed_out {
            return Poll::Ready(Some(Err(TimedOut(this.timeout).into())));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timed_out = true;
                    // Nothing more is read from it: dropping it closes the request stream.
                    this.inner = None;
                    Poll::Ready(Some(Err(TimedOut(this.timeout).into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !inner.is_end_stream()
            && (self.read || !self.waits_for_continue)
        {
            *self.leftover.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(inner);
        }
    }
}

/// Whether a body error (as a route's body reader sees it) is the body timeout.
pub(crate) fn timed_out(err: &(dyn std::error::Error + 'static)) -> Option<TimedOut> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(timeout) = err.downcast_ref::<TimedOut>() {
            return Some(*timeout);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::BodyExt;

    /// A body that sends `chunks` and then stays open (a client that stopped sending).
    fn stalled(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<_> = chunks
            .iter()
            .map(|chunk| Ok::<_, BoxError>(Frame::data(Bytes::from_static(chunk))))
            .collect();
        let stream = futures_util::stream::iter(frames).chain(futures_util::stream::pending());
        Body::new(http_body_util::StreamBody::new(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_after_its_last_byte() {
        let leftover = Arc::new(Leftover::default());
        let mut body = Guarded::new(
            stalled(&[b"abc", b"def"]),
            Duration::from_secs(5),
            false,
            leftover.clone(),
        );
        let start = Instant::now();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "abc"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "def"
        );
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(timed_out(&*err), Some(TimedOut(Duration::from_secs(5))));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        drop(body);
        assert!(leftover.take().is_none(), "a timed-out body is not drained");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unread_body_goes_back_to_the_middleware() {
        let leftover = Arc::new(Leftover::default());
        let body = Guarded::new(
            stalled(&[b"abc"]),
            Duration::from_secs(5),
            false,
            leftover.clone(),
        );
        drop(body);
        let mut rest = leftover.take().expect("the unread body is handed back");
        assert_eq!(
            rest.frame().await.unwrap().unwrap().into_data().unwrap(),
            "abc"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_never_asked_for_is_not_drained() {
        let leftover = Arc::new(Leftover::default());
        let body = Guarded::new(stalled(&[]), Duration::from_secs(5), true, leftover.clone());
        drop(body);
        assert!(
            leftover.take().is_none(),
            "draining would send 100 Continue and ask for the body the route refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_body_leaves_nothing() {
        let leftover = Arc::new(Leftover::default());
        let mut body = Guarded::new(
            Body::from("whole"),
            Duration::from_secs(5),
            false,
            leftover.clone(),
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "whole"
        );
        assert!(body.frame().await.is_none());
        drop(body);
        assert!(leftover.take().is_none());
    }

    #[test]
    fn the_timeout_is_found_behind_axums_error() {
        let err = axum::Error::new(TimedOut(Duration::from_secs(1)));
        assert_eq!(timed_out(&err), Some(TimedOut(Duration::from_secs(1))));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert_eq!(timed_out(&other), None);
    }
}
