//! What an HTTP client process is asked to measure and what it answers, as JSON: the tiny protocol the node and Python clients speak too.
//!
//! A client is started as `<program> [args...] '<HttpClientSpec as JSON>'` and prints one
//! `HttpClientResult` as JSON on stdout. `scripts/sdk_client.mjs` and `scripts/sdk_client.py`
//! implement the same protocol; field names are shared with them, so change all three together.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The HTTP clients compared, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum HttpClientKind {
    /// A hand-written keep-alive HTTP/1.1 loop over one socket per lane: the floor.
    RawHttp,
    /// rmcp's Streamable HTTP client (reqwest, pooled connections).
    Rmcp,
    /// The TypeScript SDK's client (`StreamableHTTPClientTransport`), on node.
    TsSdk,
    /// The Python SDK's client (`streamable_http_client` + `ClientSession`).
    PySdk,
}

impl HttpClientKind {
    pub(crate) const ALL: [HttpClientKind; 4] = [
        HttpClientKind::RawHttp,
        HttpClientKind::Rmcp,
        HttpClientKind::TsSdk,
        HttpClientKind::PySdk,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            HttpClientKind::RawHttp => "raw-http",
            HttpClientKind::Rmcp => "rmcp",
            HttpClientKind::TsSdk => "ts-sdk",
            HttpClientKind::PySdk => "py-sdk",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<HttpClientKind> {
        HttpClientKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
    }
}

impl fmt::Display for HttpClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The HTTP servers the clients reach, each fronting (or being) the echo server, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum GatewayKind {
    /// `bench-echo-server --http`: the echo server's answers served in process, no gateway.
    Direct,
    /// `mcp-host serve --http`.
    McpHost,
    /// supergateway `--outputTransport streamableHttp --stateful`.
    SupergatewayStateful,
    /// supergateway `--outputTransport streamableHttp` (stateless, its default).
    Supergateway,
    /// mcp-proxy from npm, `--server stream`.
    McpProxyNpm,
    /// mcp-proxy from PyPI.
    McpProxyPypi,
    /// FastMCP's proxy (`fastmcp.server.create_proxy`).
    Fastmcp,
}

impl GatewayKind {
    pub(crate) const ALL: [GatewayKind; 7] = [
        GatewayKind::Direct,
        GatewayKind::McpHost,
        GatewayKind::SupergatewayStateful,
        GatewayKind::Supergateway,
        GatewayKind::McpProxyNpm,
        GatewayKind::McpProxyPypi,
        GatewayKind::Fastmcp,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            GatewayKind::Direct => "direct",
            GatewayKind::McpHost => "mcp-host",
            GatewayKind::SupergatewayStateful => "supergateway-stateful",
            GatewayKind::Supergateway => "supergateway",
            GatewayKind::McpProxyNpm => "mcp-proxy-npm",
            GatewayKind::McpProxyPypi => "mcp-proxy-pypi",
            GatewayKind::Fastmcp => "fastmcp",
        }
    }

    /// How the tables label it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            GatewayKind::Direct => "direct",
            GatewayKind::McpHost => "mcp-host",
            GatewayKind::SupergatewayStateful => "supergateway --stateful",
            GatewayKind::Supergateway => "supergateway",
            GatewayKind::McpProxyNpm => "mcp-proxy (npm)",
            GatewayKind::McpProxyPypi => "mcp-proxy (PyPI)",
            GatewayKind::Fastmcp => "FastMCP proxy",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<GatewayKind> {
        GatewayKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
    }

    /// Whether this is a peer (not ours, not the direct baseline).
    pub(crate) fn is_peer(self) -> bool {
        !matches!(self, GatewayKind::Direct | GatewayKind::McpHost)
    }
}

impl fmt::Display for GatewayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One client process's job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HttpClientSpec {
    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub(crate) url: String,
    /// The echo tool's name as this gateway offers it.
    pub(crate) tool: String,
    /// The `text` argument of every call.
    pub(crate) text: String,
    /// Connect + initialize cycles (after one warm-up cycle).
    pub(crate) startups: usize,
    /// Sequential calls not timed, then timed (stopping early after `seq_max_s`).
    pub(crate) seq_warmup: usize,
    pub(crate) seq_calls: usize,
    pub(crate) seq_max_s: f64,
    /// Runs on one session with N calls in flight.
    pub(crate) throughput: Vec<ThroughputRun>,
    /// A run over many sessions at once, if any.
    pub(crate) sessions: Option<SessionsRun>,
    /// `mcp-host-bench scale`'s run, for the Rust clients only (the scripts do not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scale: Option<ScaleRun>,
    /// The client ends itself (exit code 3) after this long.
    pub(crate) deadline_s: f64,
    /// The run's marker, so that a leftover client process can be found; clients ignore it.
    pub(crate) marker: String,
}

/// `in_flight` lanes of back-to-back calls on one session for `warmup_s`, then for `run_s` (timed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ThroughputRun {
    pub(crate) in_flight: usize,
    pub(crate) warmup_s: f64,
    pub(crate) run_s: f64,
}

/// `n_sessions` sessions with `in_flight` lanes each, warmed up, then timed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SessionsRun {
    pub(crate) n_sessions: usize,
    pub(crate) in_flight: usize,
    pub(crate) warmup_s: f64,
    pub(crate) run_s: f64,
}

/// `n_sessions` sessions opened at once (timed: the result's one `startup_ns`), then
/// `seq_calls` sequential calls, each on the next session in turn (the result's `seq_ns`), then
/// `lanes` lanes (lane i on session i % n) for `warmup_s` and `run_s` (the result's one
/// `throughput` entry).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ScaleRun {
    pub(crate) n_sessions: usize,
    pub(crate) seq_calls: usize,
    pub(crate) lanes: usize,
    pub(crate) warmup_s: f64,
    pub(crate) run_s: f64,
}

/// A client process's answer. Durations are in nanoseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct HttpClientResult {
    pub(crate) startup_ns: Vec<u64>,
    pub(crate) seq_ns: Vec<u64>,
    /// `(in_flight, completed calls per second)`.
    pub(crate) throughput: Vec<(usize, f64)>,
    /// Completed calls per second over all sessions of the sessions run.
    pub(crate) sessions_throughput: Option<f64>,
    /// Calls that failed in the throughput and sessions runs (they are not counted as completed).
    /// A failure anywhere else ends the client with an error.
    #[serde(default)]
    pub(crate) failures: u64,
    #[serde(default)]
    pub(crate) first_failure: Option<String>,
}
