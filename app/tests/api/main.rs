//! The glassbox crate's integration tests, in one binary with two parts:
//!
//! - [`contract`]: every endpoint's success and error bodies, telemetry that counts what was
//!   sent, limits, TLS, restarts, against glassbox serving in this process on a free loopback
//!   port (`testkit::InProcess`). They need nothing but Rust: `cargo test -p glassbox --test api
//!   contract` runs them on a bare machine.
//! - [`e2e`]: what needs the real binary (signals, crashes, log files and stdout, commands) or
//!   a real outside program: Redis, nginx, Prometheus's promtool, Chromium, curl, schemathesis;
//!   each program's tests are in a file of their own.

// Items shared between the modules of this one test binary.
#![allow(unreachable_pub)]

mod contract;
mod e2e;
