//! Per-server, per-tool call statistics: in flight, outcomes, latency.
//!
//! Every `tools/call` routed by the host is counted here, so embedders and the gateway's
//! metrics and status page read the same figures. Entries exist only for tools a server lists
//! (a call is counted after it is routed), at most [`MAX_TOOLS_PER_CLIENT`] per client (further
//! tools count under [`OTHER_TOOL`]), and a client's entries go when `apply` removes it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcp_host_foundation::ClientId;
use serde::Serialize;

/// How many tools of one client get their own entry.
pub const MAX_TOOLS_PER_CLIENT: usize = 1024;
/// The tool name under which calls beyond [`MAX_TOOLS_PER_CLIENT`] are counted.
pub const OTHER_TOOL: &str = "(other)";
/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus `le`).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];
/// How many recent latencies each client keeps for its percentiles.
const RECENT_SAMPLES: usize = 2048;
/// How far back the recent percentiles look.
pub const RECENT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// A result without `isError`.
    Ok,
    /// A result with `isError: true`: the tool ran and failed.
    ToolError,
    /// A JSON-RPC error, or the session failed under the call.
    ProtocolError,
    /// No answer within the timeout.
    Timeout,
    /// The caller gave up (its future was dropped) before the answer came.
    Cancelled,
}

impl CallOutcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [CallOutcome; 5] = [
        CallOutcome::Ok,
        CallOutcome::ToolError,
        CallOutcome::ProtocolError,
        CallOutcome::Timeout,
        CallOutcome::Cancelled,
    ];

    /// The outcome's name, as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::ToolError => "tool_error",
            CallOutcome::ProtocolError => "protocol_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Cancelled => "cancelled",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of one tool's figures.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolStats {
    /// The client that serves it.
    pub client: ClientId,
    /// The tool's own name (or [`OTHER_TOOL`]).
    pub tool: String,
    /// Calls running now.
    pub in_flight: i64,
    /// Finished calls by outcome, in [`CallOutcome::ALL`] order.
    pub finished: [u64; 5],
    /// Cumulative counts of finished calls per [`LATENCY_BUCKETS`] bound, then `+Inf`.
    pub latency_buckets: [u64; 13],
    /// The sum of the finished calls' latencies, in seconds.
    pub latency_sum_seconds: f64,
}

/// Recent latency percentiles of one client's calls.
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentLatency {
    /// Calls finished within [`RECENT_WINDOW`] (at most the last 2048).
    pub n_calls: usize,
    /// Median latency, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// The statistics of every client.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    clients: Mutex<HashMap<ClientId, Arc<ClientStats>>>,
}

#[derive(Debug)]
struct ClientStats {
    tools: Mutex<HashMap<String, Arc<ToolCounters>>>,
    /// What `Sample::started_s` counts from.
    since: Instant,
    /// The latest [`RECENT_SAMPLES`] calls, oldest first; allocated whole at the start, so that
    /// a client's figures take the same memory after its first call as after a million.
    recent: Mutex<VecDeque<Sample>>,
}

/// One recent call, in 8 bytes.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When it started, in whole seconds after [`ClientStats::since`] (enough for a window of
    /// minutes).
    started_s: u32,
    /// How long it took, in microseconds (at most about 71 minutes, longer than any call may
    /// take).
    micros: u32,
}

impl ClientStats {
    fn new() -> ClientStats {
        ClientStats {
            tools: Mutex::new(HashMap::new()),
            since: Instant::now(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_SAMPLES)),
        }
    }
}

#[derive(Debug, Default)]
struct ToolCounters {
    in_flight: AtomicI64,
    finished: [AtomicU64; 5],
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [AtomicU64; 13],
    sum_micros: AtomicU64,
}

/// Counts one call from its start; finishing it (or dropping it: cancelled) records it.
#[derive(Debug)]
pub(crate) struct CallRecord {
    client: Arc<ClientStats>,
    tool: Arc<ToolCounters>,
    started: Instant,
    finished: bool,
}

impl CallStats {
    /// Starts counting a call of `tool` at `client`.
    pub(crate) fn start(&self, client: &ClientId, tool: &str) -> CallRecord {
        let client_stats = lock(&self.clients)
            .entry(client.clone())
            .or_insert_with(|| Arc::new(ClientStats::new()))
            .clone();
        let tool_counters = {
            let mut tools = lock(&client_stats.tools);
            match tools.get(tool) {
                Some(counters) => counters.clone(),
                None if tools.len() < MAX_TOOLS_PER_CLIENT => {
                    tools.entry(tool.to_owned()).or_default().clone()
                }
                None => tools.entry(OTHER_TOOL.to_owned()).or_default().clone(),
            }
        };
        tool_counters.in_flight.fetch_add(1, Ordering::Relaxed);
        CallRecord {
            client: client_stats,
            tool: tool_counters,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Forgets a client's figures (it was removed from the configuration).
    pub(crate) fn forget(&self, client: &ClientId) {
        lock(&self.clients).remove(client);
    }

    /// A snapshot of every tool's figures, sorted by client and tool.
    pub(crate) fn tools(&self) -> Vec<ToolStats> {
        let clients: Vec<(ClientId, Arc<ClientStats>)> = lock(&self.clients)
            .iter()
            .map(|(id, stats)| (id.clone(), stats.clone()))
            .collect();
        let mut snapshot = Vec::new();
        for (client, stats) in clients {
            for (tool, counters) in lock(&stats.tools).iter() {
                let mut cumulative = 0;
                let latency_buckets = std::array::from_fn(|idx| {
                    cumulative += counters.buckets[idx].load(Ordering::Relaxed);
                    cumulative
                });
                snapshot.push(ToolStats {
                    client: client.clone(),
                    tool: tool.clone(),
                    in_flight: counters.in_flight.load(Ordering::Relaxed),
                    finished: std::array::from_fn(|idx| {
                        counters.finished[idx].load(Ordering::Relaxed)
                    }),
                    latency_buckets,
                    latency_sum_seconds: counters.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
                });
            }
        }
        snapshot.sort_by(|a, b| (&a.client, &a.tool).cmp(&(&b.client, &b.tool)));
        snapshot
    }

    /// The recent latency percentiles of a client's calls.
    pub(crate) fn recent(&self, client: &ClientId) -> RecentLatency {
        let Some(stats) = lock(&self.clients).get(client).cloned() else {
            return RecentLatency::default();
        };
        let now_s = stats.since.elapsed().as_secs();
        let mut latencies: Vec<Duration> = lock(&stats.recent)
            .iter()
            .filter(|sample| {
                now_s.saturating_sub(u64::from(sample.started_s)) <= RECENT_WINDOW.as_secs()
            })
            .map(|sample| Duration::from_micros(u64::from(sample.micros)))
            .collect();
        latencies.sort_unstable();
        let percentile = |fraction: f64| -> Option<f64> {
            let last = latencies.len().checked_sub(1)?;
            let idx = ((last as f64) * fraction).round() as usize;
            latencies
                .get(idx.min(last))
                .map(|latency| latency.as_secs_f64() * 1e3)
        };
        RecentLatency {
            n_calls: latencies.len(),
            p50_ms: percentile(0.5),
            p99_ms: percentile(0.99),
        }
    }
}

impl CallRecord {
    /// Records how the call ended.
    pub(crate) fn finish(mut self, outcome: CallOutcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: CallOutcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.started.elapsed();
        let counters = &self.tool;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        counters.finished[outcome.index()].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        counters.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.sum_micros.fetch_add(micros, Ordering::Relaxed);
        let sample = Sample {
            started_s: u32::try_from(self.started.duration_since(self.client.since).as_secs())
                .unwrap_or(u32::MAX),
            micros: u32::try_from(micros).unwrap_or(u32::MAX),
        };
        let mut recent = lock(&self.client.recent);
        if recent.len() >= RECENT_SAMPLES {
            recent.pop_front();
        }
        recent.push_back(sample);
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // Not finished: the caller dropped the call.
        self.record(CallOutcome::Cancelled);
    }
}

/// The outcome of a call that ended with `result`.
pub(crate) fn outcome_of<T>(
    result: &Result<T, mcp_session::Error>,
    is_tool_error: impl FnOnce(&T) -> bool,
) -> CallOutcome {
    match result {
        Ok(value) if is_tool_error(value) => CallOutcome::ToolError,
        Ok(_) => CallOutcome::Ok,
        Err(mcp_session::Error::Timeout { .. }) => CallOutcome::Timeout,
        Err(_) => CallOutcome::ProtocolError,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
