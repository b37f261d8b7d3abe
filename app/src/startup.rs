//! Start-up failures told to a person: one sentence on stderr that says what failed and which
//! flag (and its `GLASSBOX_*` variable) fixes it, and an exit status of its own per kind of
//! failure, so a supervisor or a script can tell a taken port from a broken certificate.
//!
//! Code that can fail while the service starts wraps its error in a [`StartupError`];
//! `main` finds it anywhere in the error's chain.

use std::fmt;

/// What kind of start-up failure; each has its own exit status (from BSD's sysexits.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Flags that do not go together, or a value no flag parser could refuse alone.
    Usage,
    /// A listen address that cannot be had: taken, not this machine's, or privileged.
    Address,
    /// A directory that cannot be created or written.
    Directory,
    /// A certificate or key that cannot be read or used.
    Certificate,
}

impl Failure {
    /// The process exit status: 64 (EX_USAGE), 69 (EX_UNAVAILABLE), 73 (EX_CANTCREAT),
    /// 78 (EX_CONFIG). Failures after start-up exit 1; clap's own parse errors exit 2.
    pub fn exit_status(self) -> u8 {
        match self {
            Self::Usage => 64,
            Self::Address => 69,
            Self::Directory => 73,
            Self::Certificate => 78,
        }
    }
}

/// A start-up failure: the sentence, the flag that fixes it, and the error underneath.
#[derive(Debug)]
pub struct StartupError {
    failure: Failure,
    what: String,
    flag: &'static str,
    source: anyhow::Error,
}

impl StartupError {
    /// `what` says what failed, in words (the cause is added from `source`); `flag` is the
    /// long flag that fixes it, such as `--bind`.
    pub fn new(
        failure: Failure,
        what: impl Into<String>,
        flag: &'static str,
        source: impl Into<anyhow::Error>,
    ) -> Self {
        Self {
            failure,
            what: what.into(),
            flag,
            source: source.into(),
        }
    }

    pub fn failure(&self) -> Failure {
        self.failure
    }

    pub fn flag(&self) -> &'static str {
        self.flag
    }

    /// The one line for stderr: what failed, why, and what to set.
    pub fn sentence(&self) -> String {
        // The chain's messages, leaving out one its outer message already repeats.
        let mut cause = String::new();
        for message in self.source.chain().map(ToString::to_string) {
            if !cause.contains(&message) {
                if !cause.is_empty() {
                    cause.push_str(": ");
                }
                cause.push_str(&message);
            }
        }
        let cause = cause.trim_end_matches('.');
        format!(
            "{}: {cause}; set {} (or {}) to fix it.",
            self.what,
            self.flag,
            env_var(self.flag)
        )
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sentence())
    }
}

impl std::error::Error for StartupError {}

/// The environment variable of a long flag: `--data-dir` is `GLASSBOX_DATA_DIR`.
pub fn env_var(flag: &str) -> String {
    format!(
        "GLASSBOX_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// The start-up error in `err`'s chain, if any.
pub fn find(err: &anyhow::Error) -> Option<&StartupError> {
    err.chain().find_map(|e| e.downcast_ref::<StartupError>())
}

/// Checks that `dir` exists (creating it) and that a file can be written in it.
pub fn writable_dir(dir: &std::path::Path, what: &str, flag: &'static str) -> anyhow::Result<()> {
    let fail = |source: std::io::Error| {
        StartupError::new(
            Failure::Directory,
            format!("cannot write the {what} {}", dir.display()),
            flag,
            source,
        )
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".glassbox-write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_names_its_variable() {
        assert_eq!(env_var("--data-dir"), "GLASSBOX_DATA_DIR");
        assert_eq!(env_var("--bind"), "GLASSBOX_BIND");
    }

    #[test]
    fn the_sentence_says_what_why_and_which_flag() {
        let err = StartupError::new(
            Failure::Address,
            "cannot listen on 127.0.0.1:8443",
            "--bind",
            std::io::Error::from(std::io::ErrorKind::AddrInUse),
        );
        let line = err.sentence();
        assert!(
            line.starts_with("cannot listen on 127.0.0.1:8443: "),
            "{line}"
        );
        assert!(
            line.ends_with("set --bind (or GLASSBOX_BIND) to fix it."),
            "{line}"
        );
        let wrapped = anyhow::Error::new(err).context("starting");
        assert_eq!(find(&wrapped).map(|e| e.failure()), Some(Failure::Address));
    }

    #[test]
    fn exit_statuses_are_distinct() {
        let all = [
            Failure::Usage,
            Failure::Address,
            Failure::Directory,
            Failure::Certificate,
        ];
        let mut codes: Vec<u8> = all.iter().map(|f| f.exit_status()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
