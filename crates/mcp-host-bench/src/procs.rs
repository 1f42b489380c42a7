//! Worker processes run with a deadline, and the check that no process of this run is left behind.
//!
//! Every process a run starts carries the run's marker in its command line (workers in their
//! spec, echo servers as an argument, the gateway in its configuration file's name), so
//! leftovers are found by scanning `/proc` for the marker and nothing else is ever signalled.

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
    let mut child = Command::new(exe)
        .arg("worker")
        .arg(&spec_json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let mut stdout = child
        .stdout
        .take()
        .context("the worker's stdout was not captured")?;
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
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the {} worker took longer than {timeout:?} and was killed",
                spec.client
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = match reader.join() {
        Ok(text) => text.context("cannot read the worker's output")?,
        Err(_) => bail!("the thread reading the worker's output panicked"),
    };
    if !status.success() {
        bail!("the {} worker failed ({status})", spec.client);
    }
    serde_json::from_str(text.trim()).context("the worker's output is not a result")
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
