//! Contract tests against glassbox in this process: no outside program needed.

pub mod admin;
pub mod compression;
mod dashboard;
pub mod deepgram;
mod faults;
pub mod lifecycle;
pub mod math;
pub mod messages;
pub mod sum_evens;
pub mod tasks;
pub mod telemetry;
pub mod tls;
