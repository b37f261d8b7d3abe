//! HTTP/2 streams served inside their connection's task.
//!
//! hyper hands each HTTP/2 stream to an executor; with tokio's, every request becomes a task of
//! its own, which the runtime's other worker may steal: the stream then runs on one core and
//! wakes its connection on the other, and every response crosses between them. Here the
//! executor is the connection's own: a stream is polled by the task that polls the connection,
//! so a connection and its requests stay on one worker, as an nginx worker keeps its
//! connections. Requests on different connections still run on every worker, and CPU-heavy
//! work leaves the connection for the compute pool as before (`compute`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;

/// A stream's future, as hyper gives it to the executor.
type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper's HTTP/2 connection hands its streams to; they wait here until the
/// connection's [`Driven`] future adopts them.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalStreams {
    shared: Arc<Arrivals>,
}

#[derive(Default)]
struct Arrivals {
    streams: Mutex<Vec<Stream>>,
    /// The connection's task, woken when a stream arrives while it is not being polled.
    task: AtomicWaker,
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrivals").finish_non_exhaustive()
    }
}

impl<F> hyper::rt::Executor<F> for LocalStreams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        self.shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(stream));
        // hyper starts streams while the connection is polled, so this wakes the task that is
        // running; it is here for any other caller.
        self.shared.task.wake();
    }
}

impl LocalStreams {
    /// `conn` (built with this executor) together with its streams, as one future.
    pub(crate) fn drive<C: Future>(&self, conn: C) -> Driven<C> {
        Driven {
            conn: Box::pin(conn),
            arrivals: self.shared.clone(),
            running: FuturesUnordered::new(),
        }
    }
}

/// A connection and the streams it started: ready when the connection ends. Streams still
/// running then are dropped, as hyper drops a stream's response once its connection is gone.
pub(crate) struct Driven<C> {
    conn: Pin<Box<C>>,
    arrivals: Arc<Arrivals>,
    running: FuturesUnordered<Stream>,
}

impl<C> std::fmt::Debug for Driven<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl<C> Driven<C> {
    /// The connection itself (to ask it to shut down gracefully).
    pub(crate) fn conn(&mut self) -> Pin<&mut C> {
        self.conn.as_mut()
    }

    /// Streams started and not yet finished.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.running.len()
    }
}

impl<C: Future> Future for Driven<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        this.arrivals.task.register(cx.waker());
        if let Poll::Ready(ended) = this.conn.as_mut().poll(cx) {
            return Poll::Ready(ended);
        }
        this.running.extend(
            this.arrivals
                .streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain(..),
        );
        // Each stream polled here registers this task to be woken when it can go on; what it
        // sends wakes the connection, which is this task too.
        while let Poll::Ready(Some(())) = this.running.poll_next_unpin(cx) {}
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    /// Streams handed to the executor run when the connection's future is polled, are woken
    /// through it, and the whole is ready when the connection is, whatever streams remain.
    #[tokio::test]
    async fn streams_run_inside_the_connections_future() {
        let streams = LocalStreams::default();
        let done = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let (end_tx, end_rx) = oneshot::channel::<()>();
        let (never_tx, never_rx) = oneshot::channel::<()>();
        let conn = {
            let (streams, done) = (streams.clone(), done.clone());
            async move {
                // A connection that starts three streams, then ends when told to.
                let quick = done.clone();
                streams.execute(async move {
                    quick.fetch_add(1, Ordering::SeqCst);
                });
                let waiting = done.clone();
                streams.execute(async move {
                    let _ = go_rx.await;
                    waiting.fetch_add(1, Ordering::SeqCst);
                });
                streams.execute(async move {
                    let _ = never_rx.await;
                });
                let _ = end_rx.await;
                "ended"
            }
        };
        let mut driven = streams.drive(conn);
        let step = |driven: &mut Driven<_>| {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            Pin::new(driven).poll(&mut cx)
        };
        assert!(step(&mut driven).is_pending());
        assert_eq!(done.load(Ordering::SeqCst), 1, "the quick stream ran");
        assert_eq!(driven.running(), 2);
        go_tx.send(()).unwrap();
        assert!(step(&mut driven).is_pending());
        assert_eq!(done.load(Ordering::SeqCst), 2, "the waiting stream ran on");
        assert_eq!(driven.running(), 1);
        end_tx.send(()).unwrap();
        assert_eq!(step(&mut driven), Poll::Ready("ended"));
        drop(driven);
        assert!(
            never_tx.is_closed(),
            "a stream left running goes with its connection"
        );
    }

    /// A stream that arrives while the connection is not being polled wakes its task.
    #[tokio::test]
    async fn a_stream_arriving_from_outside_wakes_the_connection() {
        let streams = LocalStreams::default();
        let (ran_tx, ran_rx) = oneshot::channel::<()>();
        let driven = streams.drive(std::future::pending::<()>());
        let task = tokio::spawn(driven);
        tokio::task::yield_now().await;
        streams.execute(async move {
            let _ = ran_tx.send(());
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), ran_rx)
            .await
            .expect("the stream ran")
            .unwrap();
        task.abort();
    }
}
