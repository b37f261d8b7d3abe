//! Process CPU, memory, threads and open files in the Prometheus exposition format, read from
//! `/proc/self` at scrape time with the standard `process_*` names.

use std::fmt::Write;

/// Appends the `process_*` families to `out`. Writes nothing where `/proc` is unavailable.
pub fn render(out: &mut String) {
    if let Some(sample) = Sample::read() {
        sample.write(out);
    }
}

/// One reading of the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: i64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

impl Sample {
    #[cfg(target_os = "linux")]
    pub fn read() -> Option<Self> {
        use procfs::process::{LimitValue, Process};
        let me = Process::myself().ok()?;
        let stat = me.stat().ok()?;
        let ticks = procfs::ticks_per_second() as f64;
        let page = procfs::page_size();
        let boot = procfs::boot_time_secs().ok()? as f64;
        let max_fds = match me.limits().ok()?.max_open_files.soft_limit {
            LimitValue::Value(v) => Some(v),
            LimitValue::Unlimited => None,
        };
        Some(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss * page,
            virtual_bytes: stat.vsize,
            threads: stat.num_threads,
            open_fds: me.fd_count().ok()? as u64,
            max_fds,
            start_time_seconds: boot + stat.starttime as f64 / ticks,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Option<Self> {
        None
    }

    fn write(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            format!("{}", self.cpu_seconds),
        );
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_bytes.to_string(),
        );
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_bytes.to_string(),
        );
        family(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            self.threads.to_string(),
        );
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.to_string(),
        );
        if let Some(max) = self.max_fds {
            family(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max.to_string(),
            );
        }
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            format!("{}", self.start_time_seconds),
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = Sample::read().expect("/proc/self is readable on linux");
        assert!(s.resident_bytes > 0);
        assert!(s.threads >= 1);
        assert!(s.open_fds >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 3600.0);
        let mut out = String::new();
        s.write(&mut out);
        assert!(out.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(out.contains("\nprocess_open_fds "));
    }
}
