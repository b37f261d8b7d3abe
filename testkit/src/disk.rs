//! A small filesystem that can fill up: a tmpfs mounted by the test (which needs root) and
//! unmounted when dropped, for what glassbox does when the disk is full.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted on a directory.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB on `path` (created if missing). `None`, with the reason
    /// printed, when this process cannot mount (not root, or no `mount`): the caller skips.
    pub fn mount(path: &Path, mib: u32) -> Option<Tmpfs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        std::fs::create_dir_all(path).expect("the mount point");
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m"),
                "glassbox-test",
            ])
            .arg(path)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            Ok(output) => {
                eprintln!(
                    "skipped: mount -t tmpfs failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("skipped: cannot run mount: {err}");
                None
            }
        }
    }

    /// Fills the filesystem with `name` until a write fails for want of space; returns the
    /// file's path (remove it to give the space back).
    pub fn fill(&self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        let mut file = std::fs::File::create(&path).expect("the filler file");
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::StorageFull => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        // The last pages: whatever a smaller write still finds.
        while let Ok(1..) = file.write(&block[..512]) {}
        path
    }

    /// [`Tmpfs::fill`], then gives `bytes` back: the filesystem is left with about that much
    /// free space.
    pub fn fill_leaving(&self, name: &str, bytes: u64) -> PathBuf {
        let path = self.fill(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("the filler file");
        let len = file.metadata().expect("its size").len();
        file.set_len(len.saturating_sub(bytes))
            .expect("giving space back");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, so a file some thread still holds open cannot keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
