//! A server a benchmark starts: its own process group (so workers it forks are measured and
//! stopped with it), ready once its port accepts connections, stopped when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::cpu;

#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) port: u16,
    child: Child,
}

impl Server {
    /// Runs `program args` (after `pin`, a `taskset` prefix or nothing) and waits until
    /// `port` accepts connections.
    pub(crate) fn start(
        name: &str,
        pin: &[String],
        program: &Path,
        args: &[String],
        port: u16,
    ) -> Result<Self> {
        Self::start_command(name, command(pin, program, args), port)
    }

    /// Runs `command` in a process group of its own and waits until `port` accepts.
    pub(crate) fn start_command(name: &str, mut command: Command, port: u16) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        command
            .process_group(0)
            .stdout(Stdio::null())
            .stdin(Stdio::null());
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let mut server = Self {
            name: name.to_owned(),
            port,
            child,
        };
        server.wait_for_port()?;
        Ok(server)
    }

    fn wait_for_port(&mut self) -> Result<()> {
        // Generous: a server under valgrind takes seconds to start.
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before listening ({status})", self.name);
            }
            if Instant::now() > deadline {
                bail!("{} never listened on port {}", self.name, self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://localhost:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// CPU clock ticks the server's processes have used so far.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        cpu::group_ticks(self.pid())
    }

    /// Stops the server with SIGTERM and waits for it (SIGKILL after 30 s).
    pub(crate) fn stop(mut self) -> Result<()> {
        self.terminate();
        Ok(())
    }

    fn terminate(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// `program args`, after `pin` when it is not empty.
pub(crate) fn command(pin: &[String], program: &Path, args: &[String]) -> Command {
    match pin.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program).args(args);
            command
        }
        None => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}
