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

/// Makes this process adopt the orphaned descendants of its children (`PR_SET_CHILD_SUBREAPER`).
pub fn become_child_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// The process ids of this process's direct children (including adopted orphans), from `/proc`.
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
/// # Cancel safety
///
/// Cancelling stops the waiting; the signals are already sent.
pub async fn kill_remaining_children(timeout: Duration) -> Vec<u32> {
    let children = direct_children();
    for &pid in &children {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting = children.clone();
    while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
        waiting.retain(|&pid| {
            let Ok(raw) = i32::try_from(pid) else {
                return false;
            };
            match waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                // Reaped now, or reaped by someone else (tokio) already.
                _ => false,
            }
        });
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    children
}
