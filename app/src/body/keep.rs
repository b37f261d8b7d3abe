//! A response body that keeps something until its last frame is handed to the connection (or
//! the body is dropped): a concurrency permit, or the connection's note that a response is
//! going out. One wrapper, so when a body counts as sent is decided in one place.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};

/// What a body keeps while it is sent; it is dropped with the last frame.
pub(crate) trait Keep: Send + Unpin + 'static {
    /// A frame was handed on and more are to come.
    fn progressed(&self) {}
}

pub(crate) struct KeepUntilSent<K: Keep> {
    inner: Body,
    kept: Option<K>,
}

impl<K: Keep> KeepUntilSent<K> {
    pub(crate) fn new(inner: Body, kept: K) -> Self {
        Self {
            inner,
            kept: Some(kept),
        }
    }
}

impl<K: Keep> HttpBody for KeepUntilSent<K> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !self.inner.is_end_stream() => {
                if let Some(kept) = &self.kept {
                    kept.progressed();
                }
            }
            // The last frame (the common case: a body in one frame), the end, or an error.
            Poll::Ready(_) => self.kept = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counts {
        progressed: AtomicUsize,
        dropped: AtomicUsize,
    }

    struct Kept(Arc<Counts>);

    impl Keep for Kept {
        fn progressed(&self) {
            self.0.progressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Drop for Kept {
        fn drop(&mut self) {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn kept_until_the_last_frame_with_progress_before_it() {
        use http_body_util::BodyExt;
        let counts = Arc::new(Counts::default());
        let chunks = (0..3).map(|_| Ok::<_, std::convert::Infallible>(Bytes::from("x")));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let mut body = KeepUntilSent::new(body, Kept(counts.clone()));
        while body.frame().await.is_some() {}
        assert_eq!(counts.dropped.load(Ordering::Relaxed), 1);
        assert!(counts.progressed.load(Ordering::Relaxed) >= 2);

        // A body in one frame: let go with that frame, no progress to report.
        let counts = Arc::new(Counts::default());
        let mut body = KeepUntilSent::new(Body::from("whole"), Kept(counts.clone()));
        assert!(body.frame().await.is_some());
        assert_eq!(counts.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(counts.progressed.load(Ordering::Relaxed), 0);
        assert!(body.frame().await.is_none());
    }
}
