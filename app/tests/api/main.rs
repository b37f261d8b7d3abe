//! End-to-end tests: each starts the real binary on a free port and talks TLS to it.

// The helpers are shared between the modules of this one test binary.
#![allow(unreachable_pub)]

mod browser;
mod dashboard;
mod deepgram;
mod helpers;
mod lifecycle;
mod logql;
mod math;
mod messages;
mod schemathesis;
mod servers;
mod sum_evens;
mod tasks;
mod telemetry;
mod tls;
