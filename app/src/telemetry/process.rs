//! Process CPU, memory, threads and open files in the Prometheus exposition format, read from
//! `/proc/self` at scrape time with the standard `process_*` names.

use std::fmt::Write;

/// Appends the `process_*` families to `out`. Writes nothing where `/proc` is unavailable.
pub(crate) fn render(out: &mut String) {
    if let Some(sample) = Sample::read() {
        sample.write(out);
    }
}

/// One reading of the process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: i64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// Clock ticks per second in `/proc`'s CPU times: Linux's USER_HZ, 100 on every architecture
/// glassbox builds for (Prometheus's own procfs library takes the same constant). Asking the
/// C library would need `unsafe`; asking rustix reads the auxiliary vector, which crashes
/// under valgrind.
const USER_HZ: f64 = 100.0;

impl Sample {
    #[cfg(target_os = "linux")]
    pub(crate) fn read() -> Option<Self> {
        use procfs::process::{LimitValue, Process};
        let me = Process::myself().ok()?;
        let stat = me.stat().ok()?;
        let max_fds = match me.limits().ok()?.max_open_files.soft_limit {
            LimitValue::Value(v) => Some(v),
            LimitValue::Unlimited => None,
        };
        let usage = Usage::read()?;
        Some(Self {
            cpu_seconds: usage.cpu_seconds,
            resident_bytes: usage.resident_bytes,
            virtual_bytes: stat.vsize,
            threads: stat.num_threads,
            open_fds: me.fd_count().ok()? as u64,
            max_fds,
            start_time_seconds: boot_time()? + stat.starttime as f64 / USER_HZ,
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

/// The system's boot time, unix seconds (`btime` in `/proc/stat`).
#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// CPU time and resident memory only: what the dashboard samples every second, read from
/// two small files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
}

impl Usage {
    #[cfg(target_os = "linux")]
    pub(crate) fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 14th and 15th fields of the line, the 12th and 13th here.
        let after = &stat[stat.rfind(')')? + 2..];
        let mut fields = after.split(' ').skip(11);
        let utime: f64 = fields.next()?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_seconds: (utime + stime) / USER_HZ,
            resident_bytes: rss_kb * 1024,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Option<Self> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod usage_tests {
    use super::*;

    #[test]
    fn usage_agrees_with_procfs() {
        let me = procfs::process::Process::myself().unwrap();
        let busy = std::time::Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(x, 1);
        let usage = Usage::read().unwrap();
        let stat = me.stat().unwrap();
        let ticks = procfs::ticks_per_second() as f64;
        assert_eq!(ticks, USER_HZ);
        let cpu = (stat.utime + stat.stime) as f64 / ticks;
        assert!(
            (usage.cpu_seconds - cpu).abs() < 0.05,
            "{} vs {cpu}",
            usage.cpu_seconds
        );
        assert!(
            usage.cpu_seconds >= 0.04,
            "the busy loop used CPU: {}",
            usage.cpu_seconds
        );
        let rss = stat.rss * procfs::page_size();
        let diff = usage.resident_bytes.abs_diff(rss) as f64;
        assert!(diff < rss as f64 * 0.1, "{} vs {rss}", usage.resident_bytes);
        let sample = Sample::read().unwrap();
        assert!(sample.start_time_seconds > 1.6e9 && sample.open_fds > 0);
    }
}
