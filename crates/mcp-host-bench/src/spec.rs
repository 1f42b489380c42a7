//! What a worker process is asked to measure, and what it answers: both cross the process boundary as JSON.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The clients compared, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ClientKind {
    /// A hand-written loop over the child's stdio: the floor.
    Raw,
    /// The official Rust SDK's client.
    Rmcp,
    /// `mcp_transport::spawn` + `mcp_session::handshake` + `Session::call_tool`.
    Session,
    /// `mcp_host::McpHost`, calling `srv__echo` through its registry.
    Host,
}

impl ClientKind {
    pub(crate) const ALL: [ClientKind; 4] = [
        ClientKind::Raw,
        ClientKind::Rmcp,
        ClientKind::Session,
        ClientKind::Host,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientKind::Raw => "raw",
            ClientKind::Rmcp => "rmcp",
            ClientKind::Session => "session",
            ClientKind::Host => "host",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ClientKind> {
        ClientKind::ALL.into_iter().find(|kind| kind.name() == text)
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The server a client starts: a program, its arguments, and the name of the echo tool as the client sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// `echo` for the echo server itself, `srv__echo` through the gateway.
    pub(crate) tool: String,
}

/// How much of each measurement to do; a zero skips it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Counts {
    /// Spawn → ready cycles (after one warm-up cycle).
    pub(crate) startups: usize,
    /// Sequential calls not timed, then timed.
    pub(crate) seq_warmup: usize,
    pub(crate) seq_calls: usize,
    /// `(in_flight, total)` throughput runs, each after a warm-up of `in_flight * 4` calls.
    pub(crate) throughput: Vec<(usize, usize)>,
    /// Servers started at once, and how many timed start + stop rounds (after one warm-up round).
    pub(crate) fleet_size: usize,
    pub(crate) fleet_rounds: usize,
}

/// One worker's job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WorkerSpec {
    pub(crate) client: ClientKind,
    pub(crate) target: Target,
    pub(crate) task: Task,
}

/// What a worker measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Task {
    /// Startup, sequential latency, throughput and fleet start/stop, as `Counts` says.
    Suites(Counts),
    /// Resident memory before and after connecting `n_servers` more servers (one is connected first).
    Memory { n_servers: usize },
}

/// A worker's answer. Durations are in nanoseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct WorkerResult {
    pub(crate) startup_ns: Vec<u64>,
    pub(crate) seq_ns: Vec<u64>,
    /// CPU time (user + system, all threads of the client process) and context switches over the
    /// timed sequential calls; the server's are not included.
    pub(crate) seq_usage: Option<Usage>,
    /// `(in_flight, calls per second)`.
    pub(crate) throughput: Vec<(usize, f64)>,
    /// `(in_flight, usage)` over each timed throughput run.
    pub(crate) throughput_usage: Vec<(usize, Usage)>,
    pub(crate) fleet_start_ns: Vec<u64>,
    pub(crate) fleet_stop_ns: Vec<u64>,
    pub(crate) memory: Option<Memory>,
}

/// Resident set sizes of the worker, in KiB.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Memory {
    /// With the runtime up and one server connected.
    pub(crate) before_kib: u64,
    /// After `n_servers` more.
    pub(crate) after_kib: u64,
    pub(crate) n_servers: usize,
}

/// Resources the client process used over a span.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) cpu_ns: u64,
    pub(crate) context_switches: u64,
    pub(crate) n_calls: usize,
}

impl Usage {
    /// What was used between `before` and `self`, over `n_calls` calls.
    pub(crate) fn since(&self, before: &Usage, n_calls: usize) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(before.cpu_ns),
            context_switches: self
                .context_switches
                .saturating_sub(before.context_switches),
            n_calls,
        }
    }

    /// CPU microseconds per call.
    pub(crate) fn cpu_us_per_call(&self) -> Option<f64> {
        (self.n_calls > 0).then(|| self.cpu_ns as f64 / 1e3 / self.n_calls as f64)
    }

    /// Context switches per call.
    pub(crate) fn switches_per_call(&self) -> Option<f64> {
        (self.n_calls > 0).then(|| self.context_switches as f64 / self.n_calls as f64)
    }
}
