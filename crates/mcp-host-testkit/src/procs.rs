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
///
/// # Panics
/// Panics when `/proc` cannot be read, or does not show this very process: an empty list must
/// mean that no process carries the marker, never that nobody could look.
pub fn pids_with_marker(marker: &str) -> Vec<u32> {
    match scan_for_marker(Path::new(PROC), std::process::id(), marker) {
        Ok(pids) => pids,
        Err(error) => fail(&error),
    }
}

/// Where the kernel shows its processes.
const PROC: &str = "/proc";

/// [`pids_with_marker`] over the process table at `proc_root`, seen by process `own_pid`.
fn scan_for_marker(proc_root: &Path, own_pid: u32, marker: &str) -> Result<Vec<u32>, String> {
    let entries = std::fs::read_dir(proc_root).map_err(|error| {
        format!(
            "cannot list processes: {} cannot be read ({error})",
            proc_root.display()
        )
    })?;
    let all: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    // A process table that does not hold the process reading it (another pid namespace's
    // `/proc`, or none mounted) would show no leak whatever is running.
    if !all.contains(&own_pid) || read_cmdline(proc_root, own_pid).is_empty() {
        return Err(format!(
            "cannot list processes: {} does not show this process (pid {own_pid})",
            proc_root.display()
        ));
    }
    let mut pids: Vec<u32> = all
        .into_iter()
        .filter(|&pid| pid != own_pid)
        .filter(|&pid| read_cmdline(proc_root, pid).iter().any(|arg| arg == marker))
        .filter(|&pid| {
            matches!(read_state(proc_root, pid), Some(state) if state != 'Z' && state != 'X')
        })
        .collect();
    pids.sort_unstable();
    Ok(pids)
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
    read_cmdline(Path::new(PROC), pid)
}

fn read_cmdline(proc_root: &Path, pid: u32) -> Vec<String> {
    std::fs::read(proc_root.join(pid.to_string()).join("cmdline"))
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
    read_state(Path::new(PROC), pid)
}

fn read_state(proc_root: &Path, pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
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

/// The environment variable that tells a copy of a test binary started by [`in_own_process`]
/// to run the test's body.
const OWN_PROCESS_VAR: &str = "MCP_TEST_OWN_PROCESS";
/// The file that copy creates once the body has returned, so that a test name that matches
/// nothing (and a copy that runs no test) is not taken for a success.
const OWN_PROCESS_DONE_VAR: &str = "MCP_TEST_OWN_PROCESS_DONE";

/// How long the copy of the test binary started by [`in_own_process`] may run.
pub const OWN_PROCESS_TIMEOUT: Duration = Duration::from_secs(300);

/// [`in_own_process`] for a test that may run longer than [`OWN_PROCESS_TIMEOUT`]: its copy
/// may run for `timeout`.
///
/// # Panics
/// Panics when the copy cannot be run, fails, or takes too long.
pub fn in_own_process_within(test_name: &str, timeout: Duration, body: impl FnOnce()) {
    run_in_own_process(test_name, timeout, body);
}

/// Runs `body`, the whole of the test `test_name` (its name as the test harness lists it, e.g.
/// `orphans::sweep_reaches_escaped_helpers`), alone in a process of its own.
///
/// For tests that measure or change the whole process: its resident memory, its children, its
/// process-wide settings (child subreaper). Under `cargo nextest` every test has its own process
/// already and `body` runs at once; under `cargo test`, whose tests share one process, this
/// runs the test binary again with `--exact test_name` and an environment variable that makes
/// that copy run `body`, and fails when the copy fails or runs longer than
/// [`OWN_PROCESS_TIMEOUT`].
///
/// # Panics
/// Panics when the copy cannot be run, fails, or takes too long.
pub fn in_own_process(test_name: &str, body: impl FnOnce()) {
    run_in_own_process(test_name, OWN_PROCESS_TIMEOUT, body);
}

fn run_in_own_process(test_name: &str, timeout: Duration, body: impl FnOnce()) {
    let alone =
        std::env::var_os("NEXTEST_EXECUTION_MODE").is_some_and(|mode| mode == "process-per-test");
    if alone {
        body();
        return;
    }
    if std::env::var_os(OWN_PROCESS_VAR).is_some_and(|name| name == test_name) {
        body();
        if let Some(done) = std::env::var_os(OWN_PROCESS_DONE_VAR) {
            if let Err(error) = std::fs::write(&done, test_name) {
                fail(&format!(
                    "cannot write {}: {error}",
                    Path::new(&done).display()
                ));
            }
        }
        return;
    }
    if let Err(error) = run_test_alone(test_name, timeout) {
        fail(&format!(
            "test `{test_name}` in a process of its own: {error}"
        ));
    }
}

// Test support: the test binary is run again, not a server.
#[allow(clippy::disallowed_methods)]
fn run_test_alone(test_name: &str, timeout: Duration) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|error| format!("no current executable: {error}"))?;
    let scratch = TempDir::new("own-process");
    let done = scratch.path().join("done");
    let mut child = std::process::Command::new(&exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(OWN_PROCESS_VAR, test_name)
        .env(OWN_PROCESS_DONE_VAR, &done)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", exe.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() && done.is_file() => return Ok(()),
            Ok(Some(status)) if status.success() => {
                return Err(format!("{} ran no test of that name", exe.display()))
            }
            Ok(Some(status)) => return Err(format!("it failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it ran longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(LEAK_CHECK_INTERVAL),
            Err(error) => return Err(format!("cannot wait for it: {error}")),
        }
    }
}

/// This process's resident memory in KiB (`VmRSS` of `/proc/self/status`).
///
/// # Panics
/// Panics when it cannot be read: a memory check must not pass because it measured nothing.
pub fn rss_kib() -> u64 {
    match vm_rss_kib(Path::new("/proc/self/status")) {
        Ok(kib) => kib,
        Err(error) => fail(&error),
    }
}

/// The `VmRSS` line of a `/proc/<pid>/status` file, in KiB.
fn vm_rss_kib(status_file: &Path) -> Result<u64, String> {
    let status = std::fs::read_to_string(status_file).map_err(|error| {
        format!(
            "cannot measure memory: {} cannot be read ({error})",
            status_file.display()
        )
    })?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok());
    match kib {
        Some(kib) if kib > 0 => Ok(kib),
        _ => Err(format!(
            "cannot measure memory: {} has no VmRSS line with a size",
            status_file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_process_table_is_an_error_not_an_empty_list() {
        let me = std::process::id();
        let proc_root = Path::new(PROC);
        // The real table shows us, and no process carries a marker nobody used.
        assert_eq!(scan_for_marker(proc_root, me, &unique_marker()), Ok(vec![]));
        // No table at all.
        let missing = scan_for_marker(Path::new("/nonexistent-proc"), me, "m").unwrap_err();
        assert!(missing.contains("cannot be read"), "{missing}");
        // A table that does not show the process reading it (an empty directory).
        let empty = TempDir::new("fake-proc");
        let unseen = scan_for_marker(empty.path(), me, "m").unwrap_err();
        assert!(unseen.contains("does not show this process"), "{unseen}");
    }

    #[test]
    fn an_unreadable_rss_is_an_error_not_zero() {
        assert!(vm_rss_kib(Path::new("/proc/self/status")).unwrap() > 0);
        let missing = vm_rss_kib(Path::new("/nonexistent/status")).unwrap_err();
        assert!(missing.contains("cannot be read"), "{missing}");
        let dir = TempDir::new("fake-status");
        let file = dir.path().join("status");
        std::fs::write(&file, "Name:\tx\nVmRSS:\t  0 kB\n").unwrap();
        assert!(vm_rss_kib(&file).unwrap_err().contains("no VmRSS"));
        std::fs::write(&file, "Name:\tx\n").unwrap();
        assert!(vm_rss_kib(&file).unwrap_err().contains("no VmRSS"));
    }
}
