//! CPU time and memory: of a running server from `/proc` (every process of its group), of a
//! client that has exited from the kernel's account of waited-for children, and a server's
//! peak resident memory sampled while a measurement runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};

/// Clock ticks (user + system) of every process in process group `pgid`.
pub(crate) fn group_ticks(pgid: u32) -> u64 {
    let Ok(processes) = procfs::process::all_processes() else {
        return 0;
    };
    processes
        .filter_map(Result::ok)
        .filter_map(|process| process.stat().ok())
        .filter(|stat| u32::try_from(stat.pgrp).ok() == Some(pgid))
        .map(|stat| stat.utime + stat.stime)
        .sum()
}

/// Seconds of CPU in `ticks` clock ticks.
pub(crate) fn tick_seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second() as f64
}

/// Microseconds of CPU per request, from a tick count over `requests`.
pub(crate) fn micros_per_request(ticks: u64, requests: u64) -> f64 {
    tick_seconds(ticks) * 1e6 / requests.max(1) as f64
}

/// User + system CPU of every child this process has waited for, so far.
pub(crate) fn children_cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |usage| {
        let time = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        time(usage.user_time()) + time(usage.system_time())
    })
}

/// Resident memory of process `pid`, in kB.
pub(crate) fn rss_kb(pid: u32) -> u64 {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .ok()
        .and_then(|status| status.vmrss)
        .unwrap_or(0)
}

/// Samples a process's resident memory every 100 ms until [`PeakRss::stop`].
#[derive(Debug)]
pub(crate) struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

impl PeakRss {
    pub(crate) fn start(pid: u32) -> Self {
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (stopped, seen) = (stop.clone(), peak.clone());
        let sampler = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                seen.fetch_max(rss_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            peak,
            sampler,
        }
    }

    /// The peak, in MB.
    pub(crate) fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.join();
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_and_memory() {
        let me = std::process::id();
        assert!(rss_kb(me) > 0);
        // A child that burns a little CPU shows up once waited for.
        let before = children_cpu();
        std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(children_cpu() > before);
        assert!((micros_per_request(procfs::ticks_per_second(), 4) - 250_000.0).abs() < 1e-6);
    }
}
