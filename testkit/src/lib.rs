//! What glassbox's tests share, so no helper is written twice.
//!
//! # Layout
//!
//! - [`glassbox`]: a glassbox to talk to, in this process ([`InProcess`]: the same
//!   [`glassbox::service::Service`] `glassbox serve` runs, on a free loopback port) or as the real
//!   binary ([`Process`]: for signals, log files and crashes), each behind an [`Endpoint`] with
//!   request helpers.
//! - [`client`]: TLS clients that trust only a given CA.
//! - [`disk`]: a tmpfs that can be filled, for disk-full cases.
//! - [`exposition`]: the Prometheus text format, parsed.
//! - [`servers`]: Redis, nginx and Prometheus on free loopback ports, stopped when dropped.
//! - [`tools`]: free ports, programs on the machine, the repository, waiting for a condition.

pub mod client;
pub mod disk;
pub mod exposition;
pub mod glassbox;
pub mod servers;
pub mod tools;

pub use self::glassbox::{Endpoint, InProcess, Process, read_json_lines};
pub use self::tools::{drill, eventually, free_port, need, repo, which};
