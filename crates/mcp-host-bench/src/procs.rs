//! Worker and client processes run with a deadline, process trees (their RSS, their members), and the check that no process of this run is left behind.
//!
//! Every process a run starts carries the run's marker in its command line (workers and HTTP
//! clients in their spec, echo servers as an argument, gateways in their arguments or their
//! configuration file's name), so leftovers are found by scanning `/proc` for the marker. Besides
//! those, only the process groups and trees of the gateways and clients this run started (each
//! in a group of its own) are ever signalled.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::spec::{WorkerResult, WorkerSpec};

/// Runs `exe worker <spec>` and parses its answer, killing it if it outlives `timeout`.
pub(crate) fn run_worker(
    exe: &Path,
    spec: &WorkerSpec,
    timeout: Duration,
) -> anyhow::Result<WorkerResult> {
    let spec_json = serde_json::to_string(spec)?;
    // The benchmark runs its workers as child processes; the spawn ban is for library crates.
    #[allow(clippy::disallowed_methods)]
    let mut command = Command::new(exe);
    command
        .arg("worker")
        .arg(&spec_json)
        .stderr(Stdio::inherit());
    let text = run_for_stdout(command, &format!("the {} worker", spec.client), timeout)?;
    serde_json::from_str(text.trim()).context("the worker's output is not a result")
}

/// Runs `command` in a process group of its own with no input, and returns what it wrote to
/// stdout; if it outlives `timeout`, its whole group is killed. `what` names it in errors.
///
/// After a normal exit nothing is killed: processes it left behind are for the run's final
/// check to find.
pub(crate) fn run_for_stdout(
    mut command: Command,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    use std::os::unix::process::CommandExt as _;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let mut stdout = child
        .stdout
        .take()
        .context("the child's stdout was not captured")?;
    // Read on a thread so that a large answer cannot fill the pipe while we wait.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} took longer than {timeout:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = match reader.join() {
        Ok(text) => text.with_context(|| format!("cannot read the output of {what}"))?,
        Err(_) => bail!("the thread reading the output of {what} panicked"),
    };
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(text)
}

/// SIGKILL to the process group that `leader` leads.
pub(crate) fn kill_group(leader: u32) {
    if let Ok(pid) = i32::try_from(leader) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Process ids (other than this one) whose command line contains `marker`.
pub(crate) fn processes_with_marker(marker: &str) -> Vec<u32> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| contains(&cmdline, marker.as_bytes()))
        })
        .collect()
}

/// Sends SIGKILL to each of `pids`.
pub(crate) fn kill(pids: &[u32]) {
    for pid in pids {
        if let Ok(pid) = i32::try_from(*pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Every process below `root` (not `root` itself), from the kernel's `/proc/PID/task/TID/children`
/// lists (cheap enough to read every sample), or from every `/proc/*/stat` where those are missing.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut found = vec![root];
    let mut idx = 0;
    while idx < found.len() {
        let parent = found[idx];
        match children(parent) {
            Some(children) => found.extend(children),
            None if idx == 0 => return descendants_by_stat(root),
            None => {}
        }
        idx += 1;
    }
    found.remove(0);
    found
}

/// The children of `pid` (of all its threads), or `None` when the kernel does not list them.
fn children(pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut children = Vec::new();
    let mut listed = false;
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            listed = true;
            children.extend(
                text.split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok()),
            );
        }
    }
    listed.then_some(children)
}

fn descendants_by_stat(root: u32) -> Vec<u32> {
    let parents = parent_map();
    let mut found = vec![root];
    let mut idx = 0;
    while idx < found.len() {
        let parent = found[idx];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        idx += 1;
    }
    found.remove(0);
    found
}

/// `(pid, ppid)` of every live process.
fn parent_map() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let mut fields = after.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            (state != "Z").then_some((pid, ppid))
        })
        .collect()
}

/// Resident memory of `root` and every process below it, in KiB.
pub(crate) fn tree_rss_kib(root: u32) -> u64 {
    std::iter::once(root)
        .chain(descendants(root))
        .filter_map(rss_kib)
        .sum()
}

/// `VmRSS` of one process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether `pid` is a live (not zombie) process.
pub(crate) fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_search() {
        assert!(contains(b"a\0--marker=x1\0", b"x1"));
        assert!(!contains(b"a\0b", b"x1"));
        assert!(!contains(b"a", b""));
    }
}
