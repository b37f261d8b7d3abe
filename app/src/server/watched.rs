//! What a connection's watchdog needs to see: a stream that tells its [`Activity`] when bytes
//! arrive and when a write waits for the client, and a response body that holds its request's
//! place until it is sent, telling the activity as it goes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connections::Activity;
use crate::body::keep::{Keep, KeepUntilSent};

/// A stream reporting reads and blocked writes to its connection's activity.
#[derive(Debug)]
pub(crate) struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> WatchedIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    pub(crate) fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Marks a request begun on its connection; finished when dropped (with its response body,
/// or with the request if no response came).
#[derive(Debug)]
pub(crate) struct InRequest(Arc<Activity>);

impl InRequest {
    pub(crate) fn start(activity: &Arc<Activity>) -> Self {
        activity.request_started();
        Self(activity.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request's place on the connection until the last byte is
/// handed to the connection, reporting progress as it goes.
pub(crate) type Sending = KeepUntilSent<Going>;

/// A response going out on its connection: its request stays active until it is dropped.
pub(crate) struct Going(InRequest);

impl Going {
    pub(crate) fn new(request: InRequest) -> Self {
        request.0.sending_started();
        Self(request)
    }
}

impl Keep for Going {
    fn progressed(&self) {
        self.0.0.progressed();
    }
}

impl Drop for Going {
    fn drop(&mut self) {
        self.0.0.sending_finished();
    }
}
