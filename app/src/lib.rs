//! glassbox: five interview services behind one TLS endpoint, with telemetry you can trust.
//!
//! # Layout
//!
//! - [`service`]: the one startup path. `prepare` checks the configuration and makes what both
//!   roles need; `Service::serve` and `Service::worker` build on it; `Service::run` serves a
//!   bound listener until a shutdown future completes and stops everything it started. The
//!   `serve`, `worker`, `certs` and `openapi` commands end to end.
//! - [`config`]: the command line and `GLASSBOX_*` environment, one struct, validated once;
//!   flags grouped under headings, each subcommand's help showing its own groups.
//! - [`startup`]: start-up failures as one sentence naming the flag that fixes them, with an
//!   exit status per kind.
//! - [`certs`]: the local CA and server certificate in `certs/`; [`tls`]: rustls settings, and
//!   the served certificate (the local CA's or `--tls-cert`'s), reloaded when its files change.
//! - `server`: accept, TLS, HTTP/1.1 and HTTP/2, graceful shutdown; `server::connections`:
//!   the registry and per-connection watchdog behind `--max-connections`, `--idle-timeout`,
//!   `--header-read-timeout` and `--write-timeout`; `server::accept`: the open-file limit and
//!   shedding when descriptors run out; `server::arrivals`: `--max-connection-rate` per client.
//! - `routes`: the endpoints by seed family, each registered with its policy in the route table
//!   (`routes::table`: body limit and timeout, shed or not, listener, optional trailing slash),
//!   which the middleware (and so `--admin-bind`'s split), the router, the OpenAPI document,
//!   `/status` and the dashboard read.
//! - `app`: the state every handler shares; `middleware`: request ids, the route's policy,
//!   telemetry; `body`: request bodies held to their route's limit and, in all, to
//!   `--max-buffered-bytes`; `body::guard`: the body timeout, and unread bodies drained so
//!   refusals reach the client; `forwarded`: the client behind a trusted proxy; `limiter`: the
//!   concurrency limit and each client's share of it.
//! - `error`: the error every handler returns, its contract body, and the cause it carries to
//!   the request's access line.
//! - [`telemetry`]: access logs (with no capability whole: `telemetry::redact`), `/status`
//!   statistics, Prometheus metrics, the log ring, the log file rolled by day and size
//!   (`telemetry::log_file`).
//! - `dashboard`: the built-in live dashboard's sampler, timeline and embedded page.
//! - `health`: the checks behind `/health`, with the probe writes' cache; `disk`: free space
//!   against `--min-free-disk`.
//! - `math`: Fibonacci, factorial, Ackermann on big integers; `numbers`: `/total`'s numbers API
//!   and shared sum; [`compute`]: the bounded pool CPU-heavy work runs on.
//! - `store`: the message store behind `/messages`, embedded (redb) or Redis; `redb_file`: a
//!   redb file that reopens itself after an I/O failure (the store's and the queue's).
//! - [`sum_evens`]: the exact sum of the even numbers of a file, chunked and fairly scheduled;
//!   numbers too long for 128 bits are added in decimal, in linear time.
//! - `randomize`: the PNG tile shuffle; `tasks`: the task queue, its backends and workers.
//!
//! Modules in brackets are public: `main`, the tests' `testkit`, the benchmarks and the fuzz
//! target use them. The rest is the crate's own.

pub(crate) mod app;
pub(crate) mod body;
pub mod certs;
pub mod compute;
pub mod config;
pub(crate) mod dashboard;
pub(crate) mod direct_io;
pub(crate) mod disk;
pub(crate) mod error;
pub(crate) mod faults;
pub(crate) mod forwarded;
pub(crate) mod health;
pub(crate) mod limiter;
pub(crate) mod math;
pub(crate) mod middleware;
pub(crate) mod numbers;
pub(crate) mod page_cache;
pub(crate) mod randomize;
pub(crate) mod redb_file;
pub(crate) mod redis_memory;
pub(crate) mod routes;
pub(crate) mod server;
pub mod service;
pub mod startup;
pub(crate) mod store;
pub mod sum_evens;
pub(crate) mod tasks;
pub mod telemetry;
pub mod tls;
pub(crate) mod turns;
