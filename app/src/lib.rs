//! glassbox: five interview services behind one TLS endpoint, with telemetry you can trust.
//!
//! # Layout
//!
//! - [`config`]: the command line and `GLASSBOX_*` environment, one struct.
//! - [`certs`]: the local CA and server certificate in `certs/`; [`tls`]: rustls settings.
//! - [`server`]: accept, TLS, HTTP/1.1 and HTTP/2, graceful shutdown.
//! - [`app`]: shared state and building the service; [`routes`]: the endpoints by seed family.
//! - [`middleware`]: request ids, load shedding, body limit; [`forwarded`]: the client behind a
//!   trusted proxy; [`limiter`]: the concurrency
//!   limit; [`error`]: error bodies.
//! - [`telemetry`]: access logs, `/status` statistics, Prometheus metrics, the log ring.
//! - [`dashboard`]: the built-in live dashboard's sampler, timeline and embedded page.
//! - [`health`]: the checks behind `/health`.
//! - [`math`]: Fibonacci, factorial, Ackermann on big integers; [`numbers`]: `/total`'s numbers
//!   API and shared sum; [`compute`]: the bounded pool CPU-heavy work runs on.
//! - [`store`]: the message store behind `/messages`, embedded (redb) or Redis.
//! - [`sum_evens`]: the exact sum of the even numbers of a file, chunked and fairly scheduled.
//! - [`randomize`]: the PNG tile shuffle; [`tasks`]: the task queue, its backends and workers.
//! - [`service`]: the `serve` and `certs` commands end to end.

pub(crate) mod app;
pub(crate) mod body;
pub mod certs;
pub mod compute;
pub mod config;
pub(crate) mod dashboard;
pub(crate) mod error;
pub(crate) mod forwarded;
pub(crate) mod health;
pub(crate) mod limiter;
pub(crate) mod math;
pub(crate) mod middleware;
pub(crate) mod numbers;
pub(crate) mod randomize;
pub(crate) mod routes;
pub(crate) mod server;
pub mod service;
pub(crate) mod store;
pub mod sum_evens;
pub(crate) mod tasks;
pub mod telemetry;
pub mod tls;
