//! Byte transport between a host and one MCP server: a child process on stdio, or an in-memory pipe.
//!
//! This is the lowest crate of the workspace.
//! It starts a server as a child process in its own process group, frames its stdout into
//! newline-delimited messages with a bounded line length, drains its stderr into `tracing` while
//! keeping a bounded tail for error reports, and stops it with an escalating
//! close-stdin → SIGTERM → SIGKILL sequence that reports how the process ended.
//! The same [`Transport`] interface is offered over an in-memory duplex pipe for fast tests.
//!
//! **Architecture Invariant:** this crate knows bytes and lines, never JSON-RPC. It is the only
//! crate in the workspace that spawns processes or sends signals.
//!
//! **Architecture Invariant:** no child outlives its [`ChildProcess`]: dropping it kills the whole
//! process group synchronously, without needing a runtime.

mod diagnostics;
mod error;
mod framing;
pub mod orphans;
mod pidfd;
mod process;
mod server_name;
#[cfg(target_os = "linux")]
mod spawn_linux;
mod spawner;
mod stderr;
mod transport;

pub use diagnostics::Diagnostics;
pub use error::Error;
pub use framing::{FrameReader, FrameWriter};
pub use process::{spawn, ChildProcess, CloseStep, ExitReport, GroupKiller, ServerCommand};
pub use server_name::ServerName;
pub use transport::{
    in_memory, BoxedRead, BoxedWrite, PeerIo, Redactor, Transport, TransportOptions,
};

/// Default maximum length of one line read from a server: 16 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024 * 1024;
