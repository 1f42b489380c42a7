//! What the host can tell about each client: state, server, counts, uptime, errors.

use std::fmt;
use std::time::{Duration, Instant};

use mcp_host_foundation::ClientId;
use mcp_session::protocol::Implementation;
use serde::Serialize;

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientState {
    /// Spawned; the handshake is running.
    Starting,
    /// Handshake done; components registered; serving.
    Ready,
    /// Failed to start (see `last_error`).
    Failed,
    /// Its server went away by itself (see `exit_status` and `stderr_tail`).
    Exited,
    /// Waiting to be restarted after an unexpected exit.
    Restarting,
    /// Being shut down by the host.
    Stopping,
    /// Shut down by the host.
    Stopped,
}

impl fmt::Display for ClientState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientState::Starting => "starting",
            ClientState::Ready => "ready",
            ClientState::Failed => "failed",
            ClientState::Exited => "exited",
            ClientState::Restarting => "restarting",
            ClientState::Stopping => "stopping",
            ClientState::Stopped => "stopped",
        })
    }
}

/// A snapshot of one client's status.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientStatus {
    /// The client.
    pub id: ClientId,
    /// Its state.
    pub state: ClientState,
    /// Whether the host needs it to start.
    pub required: bool,
    /// The protocol revision in use.
    pub protocol_version: Option<String>,
    /// The server's name and version.
    pub server_info: Option<Implementation>,
    /// Its server's process id, while it runs.
    pub pid: Option<u32>,
    /// Tools registered under its name.
    pub n_tools: usize,
    /// Prompts registered under its name.
    pub n_prompts: usize,
    /// Resources and templates registered under its name.
    pub n_resources: usize,
    /// How long its last startup took, in milliseconds.
    pub startup_ms: Option<u64>,
    /// How long it has been ready, in milliseconds.
    pub uptime_ms: Option<u64>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// The last error (secrets masked), with its causes.
    pub last_error: Option<String>,
    /// How its server's process ended, if it did.
    pub exit: Option<String>,
    /// The last lines its server wrote to stderr (secrets masked).
    pub stderr_tail: String,
}

/// A change of a client's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    /// The client.
    pub client: ClientId,
    /// Its new state.
    pub state: ClientState,
}

/// The mutable record behind [`ClientStatus`].
#[derive(Clone, Debug)]
pub(crate) struct StatusRecord {
    pub(crate) state: ClientState,
    pub(crate) required: bool,
    pub(crate) protocol_version: Option<String>,
    pub(crate) server_info: Option<Implementation>,
    pub(crate) pid: Option<u32>,
    pub(crate) started_at: Option<Instant>,
    pub(crate) startup: Option<Duration>,
    pub(crate) ready_at: Option<Instant>,
    pub(crate) restarts: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) exit: Option<String>,
    pub(crate) stderr_tail: String,
}

impl StatusRecord {
    pub(crate) fn new(required: bool) -> StatusRecord {
        StatusRecord {
            state: ClientState::Starting,
            required,
            protocol_version: None,
            server_info: None,
            pid: None,
            started_at: Some(Instant::now()),
            startup: None,
            ready_at: None,
            restarts: 0,
            last_error: None,
            exit: None,
            stderr_tail: String::new(),
        }
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
