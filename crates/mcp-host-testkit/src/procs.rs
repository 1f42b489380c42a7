//! Process helpers for tests: locating the fake server binary, and finding processes a test leaked.
//!
//! Tests put a [`unique_marker`] in the argv of every process they start, then check with
//! [`assert_no_process_left`] that no live process still carries it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::fake::FakeConfig;

/// Name of the fake server binary built from this crate.
pub const FAKE_SERVER_BIN: &str = "mcp-fake-server";

/// How long [`assert_no_process_left`] waits for marked processes to disappear.
pub const LEAK_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`assert_no_process_left`] looks at `/proc`.
pub const LEAK_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// Returns a string that is unique per call, to be put in a test process's argv (`--marker <marker>`).
pub fn unique_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("mcp-test-{}-{counter}-{nanos}", std::process::id())
}

/// Pids of live (non-zombie) processes other than ours with an argv element exactly equal to `marker`.
pub fn pids_with_marker(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own_pid = std::process::id();
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own_pid)
        .filter(|&pid| cmdline(pid).iter().any(|arg| arg == marker))
        .filter(|&pid| pid_alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    matches!(process_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// Waits until no live process carries `marker`, polling every [`LEAK_CHECK_INTERVAL`] for up to [`LEAK_CHECK_TIMEOUT`].
///
/// # Panics
/// Panics with the pids and command lines of the processes still alive after the timeout.
///
/// # Cancel safety
/// Cancel safe: it only reads `/proc`.
pub async fn assert_no_process_left(marker: &str) {
    let deadline = Instant::now() + LEAK_CHECK_TIMEOUT;
    loop {
        let pids = pids_with_marker(marker);
        if pids.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            report_leak(marker, &pids);
        }
        tokio::time::sleep(LEAK_CHECK_INTERVAL).await;
    }
}

/// Blocking variant of [`assert_no_process_left`], for synchronous tests and `Drop` impls of test fixtures.
///
/// # Panics
/// Panics with the pids and command lines of the processes still alive after the timeout.
pub fn assert_no_process_left_blocking(marker: &str) {
    let deadline = Instant::now() + LEAK_CHECK_TIMEOUT;
    loop {
        let pids = pids_with_marker(marker);
        if pids.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            report_leak(marker, &pids);
        }
        std::thread::sleep(LEAK_CHECK_INTERVAL);
    }
}

/// The fake server's arguments for `config`, plus `--marker <marker>`.
pub fn fake_server_args(config: &FakeConfig, marker: &str) -> Vec<String> {
    let mut args = config.to_args();
    args.push("--marker".to_owned());
    args.push(marker.to_owned());
    args
}

/// Path of the `mcp-fake-server` binary next to the running test executable, built first if needed.
///
/// Cargo does not build another crate's binaries for a test, so this runs
/// `$CARGO build --bin mcp-fake-server` (once per test process) into the test's own target directory
/// and profile when the binary is missing or older than this crate's sources.
///
/// # Panics
/// Panics when the binary cannot be located or built, since no fake-server test can run then.
pub fn fake_server_path() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PATH.get_or_init(locate_or_build_fake_server) {
        Ok(path) => path.clone(),
        Err(error) => fail(&format!("cannot provide {FAKE_SERVER_BIN}: {error}")),
    }
}

/// The argv of a process, from `/proc/<pid>/cmdline` (empty if it is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&byte| byte == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The state letter from `/proc/<pid>/stat` (`R`, `S`, `Z`, ...), read after the `(comm)` field.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_comm) = stat.rsplit_once(')')?;
    after_comm.trim_start().chars().next()
}

fn report_leak(marker: &str, pids: &[u32]) -> ! {
    let processes: Vec<String> = pids
        .iter()
        .map(|&pid| format!("  pid {pid}: {}", cmdline(pid).join(" ")))
        .collect();
    fail(&format!(
        "processes with marker {marker} still alive after {LEAK_CHECK_TIMEOUT:?}:\n{}",
        processes.join("\n")
    ))
}

// Test support: a leak or a missing fake server must fail the calling test.
#[allow(clippy::panic)]
fn fail(message: &str) -> ! {
    panic!("{message}")
}

fn locate_or_build_fake_server() -> Result<PathBuf, String> {
    let test_exe =
        std::env::current_exe().map_err(|error| format!("no current executable: {error}"))?;
    let mut profile_dir = test_exe
        .parent()
        .ok_or("test executable has no parent directory")?;
    if matches!(
        profile_dir.file_name().and_then(|name| name.to_str()),
        Some("deps" | "examples")
    ) {
        profile_dir = profile_dir.parent().ok_or("deps directory has no parent")?;
    }
    let path = profile_dir.join(FAKE_SERVER_BIN);
    if is_fresh(&path) {
        return Ok(path);
    }
    build_fake_server(profile_dir)?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("cargo build did not produce {}", path.display()))
    }
}

/// Whether `binary` exists and is newer than every source of this crate.
fn is_fresh(binary: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|metadata| metadata.modified()) else {
        return false;
    };
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    newest_mtime(&manifest_dir.join("src"))
        .into_iter()
        .chain(newest_mtime(&manifest_dir.join("Cargo.toml")))
        .all(|modified| modified <= built)
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| newest_mtime(&entry.ok()?.path()))
        .max()
}

/// Builds the fake server into `profile_dir` (`<target-dir>[/<triple>]/<profile>`).
// Test support: cargo must be run to build the fake server; this is not a server spawn.
#[allow(clippy::disallowed_methods)]
fn build_fake_server(profile_dir: &Path) -> Result<(), String> {
    let profile_name = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or("profile directory has no name")?;
    let parent = profile_dir
        .parent()
        .ok_or("profile directory has no parent")?;
    // Cargo tags the root of a target directory; below it sits either the profile or `<triple>/<profile>`.
    let (target_dir, triple) = if parent.join("CACHEDIR.TAG").exists() {
        (parent, None)
    } else {
        let triple = parent.file_name().and_then(|name| name.to_str());
        (parent.parent().ok_or("target directory not found")?, triple)
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .args(["--bin", FAKE_SERVER_BIN, "--target-dir"])
        .arg(target_dir);
    match profile_name {
        "debug" => command.args(["--profile", "dev"]),
        other => command.args(["--profile", other]),
    };
    if let Some(triple) = triple {
        command.args(["--target", triple]);
    }
    let output = command
        .output()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A fresh directory under the system's temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/<tag>-<unique marker>`.
    ///
    /// # Panics
    ///
    /// If the directory cannot be created (test support code).
    #[allow(clippy::expect_used)]
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{tag}-{}", unique_marker()));
        std::fs::create_dir_all(&path).expect("cannot create a temporary directory");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This process's resident memory in KiB (`VmRSS` of `/proc/self/status`), or 0 if unreadable.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
