//! The log file: one per day (`glassbox.2026-12-04.log`), a new part when a file reaches its
//! size limit (`glassbox.2026-12-04.part0001.log`, names that sort in writing order), and the
//! oldest files removed while there are more than `--log-keep-files` or more bytes than
//! `--log-max-total-bytes`. Written by the log writer's file thread only.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use time::{Date, OffsetDateTime};

use super::logging::{FILE_PREFIX, FILE_SUFFIX};
use crate::page_cache::Trail;

/// How many files to keep and how big they may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A file that reaches this many bytes is closed and the next part begins.
    pub file_bytes: u64,
    /// The most bytes all log files may hold together.
    pub total_bytes: u64,
    /// The most log files kept.
    pub files: usize,
}

/// The open log file and where the next line goes.
#[derive(Debug)]
pub struct LogFile {
    dir: PathBuf,
    limits: Limits,
    day: Date,
    part: u32,
    file: File,
    written: u64,
    /// The last byte written ended a line (taken as so for a file just opened).
    at_line_start: bool,
    /// Keeps only the file's tail in the page cache.
    cached: Trail,
}

impl LogFile {
    /// Opens (appends to) today's newest part in `dir`, and removes files over the limits.
    pub fn open(dir: &Path, limits: Limits) -> io::Result<Self> {
        let day = today();
        let part = existing(dir)?
            .iter()
            .filter(|f| f.day == day)
            .map(|f| f.part)
            .max()
            .unwrap_or(0);
        let (file, written) = open_part(dir, day, part)?;
        let log = Self {
            dir: dir.to_path_buf(),
            limits,
            day,
            part,
            file,
            written,
            at_line_start: true,
            cached: Trail::at(written),
        };
        log.enforce()?;
        Ok(log)
    }

    /// Starts the next file: a new day's first, or the day's next part.
    fn roll(&mut self, day: Date) -> io::Result<()> {
        self.file.flush()?;
        self.part = if day == self.day { self.part + 1 } else { 0 };
        self.day = day;
        let (file, written) = open_part(&self.dir, day, self.part)?;
        self.file = file;
        self.written = written;
        self.at_line_start = true;
        self.cached = Trail::at(written);
        self.enforce()
    }

    /// How much of `buf` goes into this file: all of it if it fits, else the whole lines that
    /// fit. A line already begun is finished here whatever its length, so no line is split
    /// across files.
    fn fitting(&self, buf: &[u8]) -> usize {
        if !self.at_line_start {
            return line_end(buf).unwrap_or(buf.len());
        }
        let room = self.limits.file_bytes.saturating_sub(self.written);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        if buf.len() <= room {
            return buf.len();
        }
        buf[..room]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    }

    /// Removes the oldest files (never the one being written) while over a limit.
    fn enforce(&self) -> io::Result<()> {
        let mut files = existing(&self.dir)?;
        files.sort_by_key(|f| (f.day, f.part));
        let mut total: u64 = files.iter().map(|f| f.bytes).sum();
        let mut count = files.len();
        for file in &files {
            let over = count > self.limits.files.max(1) || total > self.limits.total_bytes;
            let current = file.day == self.day && file.part == self.part;
            if !over || current {
                break;
            }
            std::fs::remove_file(&file.path)?;
            total -= file.bytes;
            count -= 1;
        }
        Ok(())
    }
}

impl Write for LogFile {
    /// Writes whole lines: a file ends on a line boundary and holds at most its limit, or one
    /// line when a single line is longer than that. What does not fit begins the next part.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let day = today();
        if day != self.day && self.at_line_start {
            self.roll(day)?;
        }
        let mut take = self.fitting(buf);
        if take == 0 && self.written > 0 {
            self.roll(day)?;
            take = self.fitting(buf);
        }
        if take == 0 {
            // One line longer than a whole file: it gets a file of its own.
            take = line_end(buf).unwrap_or(buf.len());
        }
        let n = self.file.write(&buf[..take])?;
        self.written += n as u64;
        if n > 0 {
            self.at_line_start = buf[n - 1] == b'\n';
        }
        self.cached.written(&self.file, self.written);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The length of `buf`'s first line, its newline included.
fn line_end(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n').map(|i| i + 1)
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn name(day: Date, part: u32) -> String {
    let date = format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    if part == 0 {
        format!("{FILE_PREFIX}.{date}.{FILE_SUFFIX}")
    } else {
        format!("{FILE_PREFIX}.{date}.part{part:04}.{FILE_SUFFIX}")
    }
}

fn open_part(dir: &Path, day: Date, part: u32) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name(day, part)))?;
    let written = file.metadata()?.len();
    Ok((file, written))
}

/// A log file found in the directory.
#[derive(Debug)]
struct Existing {
    path: PathBuf,
    day: Date,
    part: u32,
    bytes: u64,
}

/// The log files in `dir` (other files are left alone).
fn existing(dir: &Path) -> io::Result<Vec<Existing>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((day, part)) = parse(&name.to_string_lossy()) else {
            continue;
        };
        found.push(Existing {
            path: entry.path(),
            day,
            part,
            bytes: entry.metadata()?.len(),
        });
    }
    Ok(found)
}

/// The day and part of a log file's name.
fn parse(name: &str) -> Option<(Date, u32)> {
    let rest = name
        .strip_prefix(FILE_PREFIX)?
        .strip_prefix('.')?
        .strip_suffix(FILE_SUFFIX)?
        .strip_suffix('.')?;
    let (date, part) = match rest.split_once('.') {
        Some((date, part)) => (date, part.strip_prefix("part")?.parse().ok()?),
        None => (rest, 0),
    };
    let mut fields = date.splitn(3, '-');
    let year = fields.next()?.parse().ok()?;
    let month: u8 = fields.next()?.parse().ok()?;
    let day = fields.next()?.parse().ok()?;
    let day = Date::from_calendar_date(year, month.try_into().ok()?, day).ok()?;
    Some((day, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_sort_in_writing_order_and_parse_back() {
        let day = Date::from_calendar_date(2026, time::Month::December, 4).unwrap();
        let mut written: Vec<String> = (0..12).map(|part| name(day, part)).collect();
        assert_eq!(written[0], "glassbox.2026-12-04.log");
        assert_eq!(written[11], "glassbox.2026-12-04.part0011.log");
        let order = written.clone();
        written.sort();
        assert_eq!(written, order);
        for (part, file) in order.iter().enumerate() {
            assert_eq!(parse(file), Some((day, part as u32)));
        }
        assert_eq!(parse("glassbox.log"), None);
        assert_eq!(parse("other.2026-12-04.log"), None);
    }

    #[test]
    fn files_roll_by_size_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a log").unwrap();
        let limits = Limits {
            file_bytes: 100,
            total_bytes: 350,
            files: 10,
        };
        let mut log = LogFile::open(dir.path(), limits).unwrap();
        let line = [b'x'; 49];
        for _ in 0..20 {
            log.write_all(&line).unwrap();
            log.write_all(b"\n").unwrap();
        }
        log.flush().unwrap();
        let logs: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| n.ends_with(".log"))
            .collect();
        let total: u64 = logs
            .iter()
            .map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len())
            .sum();
        // Each file holds two lines (100 bytes), the total stays within 350 bytes plus the
        // file being written, and the newest parts are the ones kept.
        assert!(total <= 350 + 100, "{total} bytes in {logs:?}");
        assert!(logs.len() >= 3, "{logs:?}");
        assert!(logs.last().unwrap().contains("part0009"), "{logs:?}");
        assert!(names(dir.path()).contains(&"notes.txt".to_owned()));

        // At most `files` files.
        let limits = Limits {
            file_bytes: 100,
            total_bytes: u64::MAX,
            files: 2,
        };
        let mut log = LogFile::open(dir.path(), limits).unwrap();
        for _ in 0..6 {
            log.write_all(&[b'y'; 99]).unwrap();
            log.write_all(b"\n").unwrap();
        }
        let logs = names(dir.path())
            .into_iter()
            .filter(|n| n.ends_with(".log"))
            .count();
        assert_eq!(logs, 2);
    }

    #[test]
    fn a_batch_is_split_at_a_line_so_no_file_passes_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            file_bytes: 100,
            total_bytes: u64::MAX,
            files: 100,
        };
        let mut log = LogFile::open(dir.path(), limits).unwrap();
        // One batch of seven 30-byte lines, then a line longer than a file, written in two
        // pieces, then one more short line.
        let line = format!("{}\n", "x".repeat(29));
        log.write_all(line.repeat(7).as_bytes()).unwrap();
        log.write_all(&[b'y'; 150]).unwrap();
        log.write_all(b"yyyy\n").unwrap();
        log.write_all(line.as_bytes()).unwrap();
        log.flush().unwrap();
        let contents: Vec<String> = names(dir.path())
            .iter()
            .map(|n| std::fs::read_to_string(dir.path().join(n)).unwrap())
            .collect();
        let lengths: Vec<usize> = contents.iter().map(String::len).collect();
        assert_eq!(lengths, [90, 90, 30, 155, 30], "{contents:?}");
        assert!(contents.iter().all(|c| c.ends_with('\n')), "{contents:?}");
        assert_eq!(contents.concat().lines().count(), 9);
    }
}
