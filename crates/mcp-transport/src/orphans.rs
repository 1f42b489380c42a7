//! Reaching processes that escaped their server's process group, where Linux allows it.
//!
//! A server's helper that calls `setsid` (or starts its own process group) is out of reach of
//! the group signals in [`ChildProcess::close`](crate::ChildProcess::close). Linux offers one way
//! back: a *child subreaper* adopts the orphaned descendants of its children, so once the server
//! itself has exited, the escaped helper becomes a direct child of the host and can be killed.
//! This is process-wide, so it is only for programs that own every child they have (the
//! `mcp-host` command), never for a library embedded in someone else's process.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::pidfd::PidFd;

/// Makes this process adopt the orphaned descendants of its children (`PR_SET_CHILD_SUBREAPER`).
pub fn become_child_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// The process ids of this process's direct children (including adopted orphans), from `/proc`.
///
/// Blocking: it reads `/proc` (call it from a blocking thread in async code).
pub fn direct_children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me))
        .collect();
    children.sort_unstable();
    children
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last `)`.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Sends SIGKILL to every remaining direct child of this process and reaps them, waiting at most
/// `timeout`. Returns the pids that were killed.
///
/// Only for a process whose children are all MCP servers and their adopted helpers, after the
/// servers themselves were closed: anything still there escaped the orderly shutdown.
///
/// The children are listed from `/proc` on tokio's blocking pool (it is file I/O), and each is
/// pinned by a pidfd and checked to be our child again before it is signalled, so a process
/// that took the id of a child that ended meanwhile is never hit. On kernels without pidfds
/// (before 5.3) the ids are signalled as listed.
///
/// # Cancel safety
///
/// Cancelling stops the waiting; the signals already sent stay sent (a listing in progress
/// finishes on the blocking pool and is dropped).
pub async fn kill_remaining_children(timeout: Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + timeout;
    let listing = tokio::task::spawn_blocking(pin_direct_children);
    let children = match tokio::time::timeout_at(deadline, listing).await {
        Ok(Ok(children)) => children,
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "listing the remaining child processes failed");
            return Vec::new();
        }
        Err(_) => {
            tracing::warn!("listing the remaining child processes took too long");
            return Vec::new();
        }
    };
    let pids: Vec<u32> = children.iter().map(Child::pid).collect();
    for child in &children {
        child.kill();
    }
    let mut waiting = children;
    while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
        waiting.retain(|child| !child.try_reap());
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    pids
}

/// A direct child found in `/proc`.
enum Child {
    /// Pinned by a pidfd, and checked to be our child after pinning.
    Pinned(PidFd),
    /// Only its id, as listed (no pidfds on this kernel).
    Listed(u32),
}

impl Child {
    fn pid(&self) -> u32 {
        match self {
            Child::Pinned(pidfd) => pidfd.pid(),
            Child::Listed(pid) => *pid,
        }
    }

    fn kill(&self) {
        match self {
            Child::Pinned(pidfd) => {
                let _ = pidfd.signal(Some(Signal::SIGKILL));
            }
            Child::Listed(pid) => {
                if let Ok(pid) = i32::try_from(*pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }

    /// Reaps the child if it has exited; true when it is gone (reaped now, or by someone else,
    /// tokio say, already).
    fn try_reap(&self) -> bool {
        match self {
            Child::Pinned(pidfd) => !matches!(pidfd.try_reap(), Ok(None)),
            Child::Listed(pid) => {
                let Ok(raw) = i32::try_from(*pid) else {
                    return true;
                };
                !matches!(
                    waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            }
        }
    }
}

/// The direct children of this process, each pinned and checked again (blocking: reads `/proc`).
fn pin_direct_children() -> Vec<Child> {
    let me = std::process::id();
    direct_children()
        .into_iter()
        .filter_map(|pid| match PidFd::open(pid) {
            // The id may have changed hands between the listing and the pinning: the pinned
            // process must be our child too.
            Ok(pidfd) => (parent_of(pid) == Some(me)).then_some(Child::Pinned(pidfd)),
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => None,
            Err(_) => Some(Child::Listed(pid)),
        })
        .collect()
}
