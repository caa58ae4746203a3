//! Third-party programs in tests: finding the tools a test drives (real servers, clients,
//! relays), and stopping the processes it starts, even when the test fails half-way.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The full path of `tool`: `PATH`, then the sbin directories test runners often leave out.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The tools `test` needs, or `None` after saying which is missing and which Debian
/// `packages` provide them. Missing tools fail the test in CI (`CI` set): there the test
/// must run.
pub fn require_tools<const N: usize>(
    test: &str,
    names: [&str; N],
    packages: &str,
) -> Option<[PathBuf; N]> {
    let found = names.map(find_tool);
    if let Some(i) = found.iter().position(Option::is_none) {
        let msg = format!("{test}: {} not installed (Debian: {packages})", names[i]);
        assert!(std::env::var_os("CI").is_none(), "{msg}: required in CI");
        eprintln!("skipping {msg}");
        return None;
    }
    Some(found.map(Option::unwrap_or_default))
}

/// A process a test started: stopped with [`Running::terminate`], killed on drop otherwise.
#[derive(Debug)]
pub struct Running(Option<Child>);

impl Running {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Running {
        Running(Some(child))
    }

    /// Whether the process is still running (false once stopped or exited).
    pub fn is_running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `patience` for the process to exit by itself; its exit status, or `None`
    /// if it still runs (it is left running).
    pub fn exited_within(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(Ok(Some(status))) = self.0.as_mut().map(Child::try_wait) {
                self.0 = None;
                return Some(status);
            }
            if self.0.is_none() || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id (0 once stopped).
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Gives the process back (to kill it some other way); `None` once stopped.
    pub fn take(&mut self) -> Option<Child> {
        self.0.take()
    }

    /// SIGTERM, as a service manager stops a server, then up to `grace` for it to exit.
    /// Returns its exit status, or `None` if it had to be killed (or was stopped already).
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.0.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `peregrine-<name>-<pid>` (emptied first if a crashed run left it).
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("peregrine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
