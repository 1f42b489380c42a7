//! What an operator looks at: probes (`/healthz`, `/readyz`), Prometheus metrics (`/metrics`),
//! and a status page (`/` and `/status`, with `/status.json`).
//!
//! Everything is read from the host when asked (its status records, its call statistics, its
//! servers' `/proc` entries): the gateway keeps only what the host cannot know (HTTP requests
//! by status, open sessions, reloads).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use mcp_host::{CallOutcome, ClientState, ClientStatus, McpHost, LATENCY_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::reload::{ReloadRecord, ReloadState};

/// The paths of the probes, which `--probes-without-auth` leaves open.
pub(crate) const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The figures only the gateway knows.
#[derive(Debug)]
pub(crate) struct Observer {
    host: Arc<McpHost>,
    reload: Option<Arc<ReloadState>>,
    started: Instant,
    /// Client connections open now (HTTP sessions, or the one stdio client).
    sessions_open: AtomicUsize,
    sessions_total: AtomicU64,
    /// HTTP responses by status code (a few dozen codes at most).
    http_responses: Mutex<BTreeMap<u16, u64>>,
    /// Set when the gateway is stopping: not ready for new sessions.
    draining: std::sync::atomic::AtomicBool,
}

impl Observer {
    pub(crate) fn new(host: Arc<McpHost>, reload: Option<Arc<ReloadState>>) -> Arc<Observer> {
        Arc::new(Observer {
            host,
            reload,
            started: Instant::now(),
            sessions_open: AtomicUsize::new(0),
            sessions_total: AtomicU64::new(0),
            http_responses: Mutex::new(BTreeMap::new()),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Counts a client connection until the guard is dropped.
    pub(crate) fn session_opened(self: &Arc<Self>) -> SessionGuard {
        self.sessions_open.fetch_add(1, Ordering::Relaxed);
        self.sessions_total.fetch_add(1, Ordering::Relaxed);
        SessionGuard {
            observer: self.clone(),
        }
    }

    pub(crate) fn http_response(&self, status: StatusCode) {
        *lock(&self.http_responses)
            .entry(status.as_u16())
            .or_default() += 1;
    }

    /// The gateway is stopping: `/readyz` says so from now on.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// `GET /readyz`: 200 when every required server is ready, else 503 naming those that are not.
    pub(crate) fn readiness(&self) -> Response {
        if self.draining.load(Ordering::Relaxed) {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ready": false, "draining": true }).to_string(),
            )
                .into_response();
            set_content_type(&mut response, "application/json");
            return response;
        }
        let not_ready: Vec<Value> = self
            .host
            .status()
            .into_iter()
            .filter(|status| status.required && status.state != ClientState::Ready)
            .map(|status| json!({ "server": status.id, "state": status.state }))
            .collect();
        let (code, body) = if not_ready.is_empty() {
            (StatusCode::OK, json!({ "ready": true }))
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ready": false, "notReady": not_ready }),
            )
        };
        let mut response = (code, body.to_string()).into_response();
        set_content_type(&mut response, "application/json");
        response
    }

    /// `GET /metrics`, in Prometheus' text format.
    pub(crate) async fn metrics(&self) -> Response {
        let snapshot = self.snapshot().await;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut text = String::new();
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        {
            tracing::warn!(%error, "cannot encode the metrics");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let mut response = text.into_response();
        set_content_type(&mut response, "text/plain; version=0.0.4; charset=utf-8");
        response
    }

    /// `GET /status.json`: `mcp-host status --json` plus the live figures.
    pub(crate) async fn status_json(&self) -> Response {
        let page = self.status_page().await;
        let mut response = serde_json::to_string_pretty(&page)
            .unwrap_or_default()
            .into_response();
        set_content_type(&mut response, "application/json");
        response
    }

    /// `GET /` and `GET /status`: the same as one HTML page.
    pub(crate) async fn status_html(&self) -> Response {
        let page = self.status_page().await;
        let mut response = render_html(&page).into_response();
        set_content_type(&mut response, "text/html; charset=utf-8");
        // The page is the gateway's own: no framing by another site, no scripts from elsewhere.
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    async fn status_page(&self) -> StatusPage {
        let snapshot = self.snapshot().await;
        let servers = snapshot
            .servers
            .iter()
            .map(|server| {
                let latency = self.host.recent_latency(&server.status.id);
                let n_calls = snapshot
                    .tools
                    .iter()
                    .filter(|tool| tool.client == server.status.id)
                    .map(|tool| tool.finished.iter().sum::<u64>())
                    .sum();
                ServerPage {
                    status: server.status.clone(),
                    n_calls,
                    recent_p50_ms: latency.p50_ms,
                    recent_p99_ms: latency.p99_ms,
                    rss_bytes: server.processes.map(|processes| processes.rss_bytes),
                    n_processes: server.processes.map(|processes| processes.count),
                    stderr_tail_live: server.stderr_tail.clone(),
                }
            })
            .collect();
        StatusPage {
            gateway: GatewayPage {
                version: env!("CARGO_PKG_VERSION"),
                uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                sessions_open: snapshot.sessions_open,
                config_file: self
                    .reload
                    .as_ref()
                    .map(|state| state.path().display().to_string()),
                last_reload: self.reload.as_ref().and_then(|state| state.last()),
            },
            servers,
        }
    }

    /// Everything a scrape or the page shows, read now.
    async fn snapshot(&self) -> Snapshot {
        let statuses = self.host.status();
        let pids: Vec<Option<u32>> = statuses.iter().map(|status| status.pid).collect();
        // Reading /proc is blocking I/O: off the async threads.
        let mut reading = JoinSet::new();
        reading.spawn_blocking(move || process_groups(&pids));
        let groups = match reading.join_next().await {
            Some(Ok(groups)) => groups,
            _ => Vec::new(),
        };
        let servers = statuses
            .into_iter()
            .enumerate()
            .map(|(idx, status)| {
                let session = self.host.session(&status.id);
                ServerSnapshot {
                    stderr_bytes: session
                        .as_ref()
                        .map(|client| client.session.diagnostics().stderr_bytes()),
                    stderr_tail: session
                        .as_ref()
                        .map(|client| client.session.diagnostics().stderr_tail())
                        .unwrap_or_default(),
                    processes: groups.get(idx).copied().flatten(),
                    status,
                }
            })
            .collect();
        let (reloads_applied, reloads_refused) = self
            .reload
            .as_ref()
            .map(|state| state.counts())
            .map_or((0, 0), |counts| (counts.applied, counts.refused));
        Snapshot {
            servers,
            tools: self.host.call_stats(),
            sessions_open: self.sessions_open.load(Ordering::Relaxed),
            sessions_total: self.sessions_total.load(Ordering::Relaxed),
            http_responses: lock(&self.http_responses).clone(),
            reloads_applied,
            reloads_refused,
        }
    }
}

/// Keeps a connection counted as open.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    observer: Arc<Observer>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.observer.sessions_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A server's process group, read from `/proc`.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Processes {
    count: usize,
    rss_bytes: u64,
}

#[derive(Debug)]
struct ServerSnapshot {
    status: ClientStatus,
    stderr_bytes: Option<u64>,
    stderr_tail: String,
    processes: Option<Processes>,
}

/// The figures of one scrape, encoded by [`Collector::encode`].
#[derive(Debug)]
struct Snapshot {
    servers: Vec<ServerSnapshot>,
    tools: Vec<mcp_host::ToolStats>,
    sessions_open: usize,
    sessions_total: u64,
    http_responses: BTreeMap<u16, u64>,
    reloads_applied: u64,
    reloads_refused: u64,
}

/// The metric name prefix.
const PREFIX: &str = "mcp_gateway_";

/// The states a server can be in, as the `state` label.
const STATES: [ClientState; 7] = [
    ClientState::Starting,
    ClientState::Ready,
    ClientState::Failed,
    ClientState::Exited,
    ClientState::Restarting,
    ClientState::Stopping,
    ClientState::Stopped,
];

type Labels = Vec<(&'static str, String)>;

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let server_label =
            |status: &ClientStatus| -> Labels { vec![("server", status.id.to_string())] };

        let state_rows: Vec<(Labels, i64)> = self
            .servers
            .iter()
            .flat_map(|server| {
                STATES.iter().map(move |state| {
                    (
                        vec![
                            ("server", server.status.id.to_string()),
                            ("state", state.to_string()),
                        ],
                        i64::from(server.status.state == *state),
                    )
                })
            })
            .collect();
        gauges(
            &mut encoder,
            "server_state",
            "1 for the state each server is in (starting, ready, failed, exited, restarting, stopping, stopped)",
            &state_rows,
        )?;
        let up: Vec<(Labels, i64)> = self
            .servers
            .iter()
            .map(|server| {
                (
                    server_label(&server.status),
                    i64::from(server.status.state == ClientState::Ready),
                )
            })
            .collect();
        gauges(
            &mut encoder,
            "server_up",
            "1 while the server is ready",
            &up,
        )?;
        let restarts: Vec<(Labels, u64)> = self
            .servers
            .iter()
            .map(|server| {
                (
                    server_label(&server.status),
                    u64::from(server.status.restarts),
                )
            })
            .collect();
        counters(
            &mut encoder,
            "server_restarts",
            "Restarts of the server by its restart policy",
            &restarts,
        )?;
        let tools: Vec<(Labels, i64)> = self
            .servers
            .iter()
            .map(|server| (server_label(&server.status), to_i64(server.status.n_tools)))
            .collect();
        gauges(
            &mut encoder,
            "server_tools",
            "Tools the server lists (after filters)",
            &tools,
        )?;
        let stderr: Vec<(Labels, u64)> = self
            .servers
            .iter()
            .filter_map(|server| Some((server_label(&server.status), server.stderr_bytes?)))
            .collect();
        counters(
            &mut encoder,
            "server_stderr_bytes",
            "Bytes the server's current process wrote to stderr",
            &stderr,
        )?;
        let rss: Vec<(Labels, i64)> = self
            .servers
            .iter()
            .filter_map(|server| {
                Some((
                    server_label(&server.status),
                    to_i64(server.processes?.rss_bytes),
                ))
            })
            .collect();
        gauges(
            &mut encoder,
            "server_resident_memory_bytes",
            "Resident memory of the server's whole process group",
            &rss,
        )?;
        let n_processes: Vec<(Labels, i64)> = self
            .servers
            .iter()
            .filter_map(|server| {
                Some((
                    server_label(&server.status),
                    to_i64(server.processes?.count),
                ))
            })
            .collect();
        gauges(
            &mut encoder,
            "server_processes",
            "Processes in the server's process group",
            &n_processes,
        )?;

        let tool_labels = |stats: &mcp_host::ToolStats| -> Labels {
            vec![
                ("server", stats.client.to_string()),
                ("tool", stats.tool.clone()),
            ]
        };
        let started: Vec<(Labels, u64)> = self
            .tools
            .iter()
            .map(|stats| {
                let finished: u64 = stats.finished.iter().sum();
                let in_flight = u64::try_from(stats.in_flight).unwrap_or(0);
                (tool_labels(stats), finished + in_flight)
            })
            .collect();
        counters(
            &mut encoder,
            "calls_started",
            "Tool calls started",
            &started,
        )?;
        let finished: Vec<(Labels, u64)> = self
            .tools
            .iter()
            .flat_map(|stats| {
                CallOutcome::ALL
                    .iter()
                    .enumerate()
                    .map(move |(idx, outcome)| {
                        let mut labels = tool_labels(stats);
                        labels.push(("outcome", outcome.as_str().to_owned()));
                        (labels, stats.finished[idx])
                    })
            })
            .collect();
        counters(
            &mut encoder,
            "calls_finished",
            "Tool calls finished, by outcome (ok, tool_error, protocol_error, timeout, cancelled)",
            &finished,
        )?;
        let mut in_flight: BTreeMap<String, i64> = BTreeMap::new();
        for stats in &self.tools {
            *in_flight.entry(stats.client.to_string()).or_default() += stats.in_flight;
        }
        let in_flight: Vec<(Labels, i64)> = in_flight
            .into_iter()
            .map(|(server, n)| (vec![("server", server)], n))
            .collect();
        gauges(
            &mut encoder,
            "calls_in_flight",
            "Tool calls running now",
            &in_flight,
        )?;
        {
            let name = format!("{PREFIX}call_duration_seconds");
            let mut metric = encoder.encode_descriptor(
                &name,
                "Duration of tool calls",
                None,
                prometheus_client::metrics::MetricType::Histogram,
            )?;
            for stats in &self.tools {
                let labels = tool_labels(stats);
                let mut family = metric.encode_family(&labels)?;
                // The encoder adds the buckets up itself: give it each bucket's own count.
                let mut below = 0;
                let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(stats.latency_buckets.iter().map(|cumulative| {
                        let own = cumulative.saturating_sub(below);
                        below = *cumulative;
                        own
                    }))
                    .collect();
                let count = stats.latency_buckets.last().copied().unwrap_or(0);
                family.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    stats.latency_sum_seconds,
                    count,
                    &buckets,
                    None,
                )?;
            }
        }

        gauges(
            &mut encoder,
            "sessions_open",
            "Client sessions open now",
            &[(Vec::new(), to_i64(self.sessions_open))],
        )?;
        counters(
            &mut encoder,
            "sessions",
            "Client sessions opened",
            &[(Vec::new(), self.sessions_total)],
        )?;
        let http: Vec<(Labels, u64)> = self
            .http_responses
            .iter()
            .map(|(code, n)| (vec![("code", code.to_string())], *n))
            .collect();
        counters(
            &mut encoder,
            "http_responses",
            "HTTP responses by status code",
            &http,
        )?;
        counters(
            &mut encoder,
            "reloads",
            "Configuration reloads, by outcome (applied, refused)",
            &[
                (
                    vec![("outcome", "applied".to_owned())],
                    self.reloads_applied,
                ),
                (
                    vec![("outcome", "refused".to_owned())],
                    self.reloads_refused,
                ),
            ],
        )?;
        Ok(())
    }
}

fn gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let name = format!("{PREFIX}{name}");
    let mut metric = encoder.encode_descriptor(
        &name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let name = format!("{PREFIX}{name}");
    let mut metric = encoder.encode_descriptor(
        &name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn to_i64(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Reads the process group of each server (by the leader's pid, which is the group's id) from
/// `/proc`: how many processes, and their resident memory.
fn process_groups(pids: &[Option<u32>]) -> Vec<Option<Processes>> {
    let wanted: HashMap<u32, usize> = pids
        .iter()
        .enumerate()
        .filter_map(|(idx, pid)| Some(((*pid)?, idx)))
        .collect();
    let mut found: Vec<Option<Processes>> = vec![None; pids.len()];
    if wanted.is_empty() {
        return found;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parentheses: the fields follow its last `)`.
        let Some(fields) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        // After the command: state, ppid, pgrp.
        let Some(pgrp) = fields
            .split_whitespace()
            .nth(2)
            .and_then(|pgrp| pgrp.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(idx) = wanted.get(&pgrp) else {
            continue;
        };
        let rss_bytes = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|value| {
                        value
                            .trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
            })
            .unwrap_or(0)
            * 1024;
        let group = found[*idx].get_or_insert(Processes {
            count: 0,
            rss_bytes: 0,
        });
        group.count += 1;
        group.rss_bytes += rss_bytes;
    }
    found
}

/// What `/status.json` answers and the page shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPage {
    gateway: GatewayPage,
    servers: Vec<ServerPage>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GatewayPage {
    version: &'static str,
    uptime_ms: u64,
    sessions_open: usize,
    config_file: Option<String>,
    last_reload: Option<ReloadRecord>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerPage {
    #[serde(flatten)]
    status: ClientStatus,
    n_calls: u64,
    recent_p50_ms: Option<f64>,
    recent_p99_ms: Option<f64>,
    rss_bytes: Option<u64>,
    n_processes: Option<usize>,
    /// The running process's stderr tail (`stderrTail` is the last exited one's).
    stderr_tail_live: String,
}

/// The status table's columns, and whether each is numeric (right-aligned).
const COLUMNS: [(&str, bool); 11] = [
    ("Server", false),
    ("State", false),
    ("PID", true),
    ("Uptime", false),
    ("Restarts", true),
    ("Tools", true),
    ("Calls", true),
    ("p50", true),
    ("p99", true),
    ("Memory", true),
    ("Last error · stderr", false),
];

/// The status page: one table, refreshed every 5 s, readable from a phone to a wide screen.
fn render_html(page: &StatusPage) -> String {
    let mut html = String::with_capacity(8 * 1024);
    html.push_str(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<meta http-equiv=\"refresh\" content=\"5\">",
        "<title>mcp-host gateway</title><style>",
        "body{font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}",
        "header{background:#1d2330;color:#fff;padding:14px 20px}header h1{font-size:18px;margin:0 0 4px}",
        "header p{margin:0;color:#c5cad6;font-size:13px}main{padding:16px 20px}",
        ".wrap{overflow-x:auto;background:#fff;border:1px solid #dde1e8;border-radius:8px}",
        "table{border-collapse:collapse;width:100%;min-width:760px}",
        "th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #eef0f4;vertical-align:top}",
        "th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6478;background:#fafbfc}",
        "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}",
        ".state{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600}",
        ".ready{background:#dcf5e3;color:#13652f}.starting,.restarting,.stopping{background:#fff2cc;color:#7a5a00}",
        ".failed,.exited{background:#fde0e0;color:#9b1c1c}.stopped{background:#e8eaef;color:#4a5263}",
        ".err{color:#9b1c1c;font-size:13px;max-width:360px}details pre{white-space:pre-wrap;font-size:12px;",
        "background:#f3f4f7;padding:8px;border-radius:6px;max-height:240px;overflow:auto}",
        "section{margin-top:18px}h2{font-size:15px;margin:0 0 8px}",
        "th.num{text-align:right}",
        "@media (max-width:700px){main{padding:10px}header{padding:12px}body{font-size:14px}",
        "table{min-width:0}thead{display:none}table,tbody,tr,td{display:block}",
        "tr{border-bottom:1px solid #dde1e8;padding:6px 0}td{border:0;padding:3px 12px}",
        "td[data-label]::before{content:attr(data-label);display:inline-block;width:7em;color:#5b6478;font-size:12px;text-transform:uppercase}",
        "td.num{text-align:left}.err{max-width:none}}",
        "</style></head><body>"
    ));
    let gateway = &page.gateway;
    let _ = write!(
        html,
        "<header><h1>mcp-host gateway</h1><p>version {} · up {} · {} session{} open",
        escape(gateway.version),
        duration_text(gateway.uptime_ms),
        gateway.sessions_open,
        if gateway.sessions_open == 1 { "" } else { "s" }
    );
    if let Some(file) = &gateway.config_file {
        let _ = write!(html, " · configuration {}", escape(file));
    }
    html.push_str("</p></header><main><div class=\"wrap\"><table><thead><tr>");
    for (column, numeric) in COLUMNS {
        let _ = write!(
            html,
            "<th{}>{column}</th>",
            if numeric { " class=\"num\"" } else { "" }
        );
    }
    html.push_str("</tr></thead><tbody>");
    for server in &page.servers {
        let status = &server.status;
        let state = status.state.to_string();
        let _ = write!(
            html,
            "<tr id=\"server-{id}\"><td><strong>{id}</strong>{implementation}</td>\
             <td data-label=\"State\"><span class=\"state {state}\">{state}</span></td>\
             <td class=\"num\" data-label=\"PID\">{pid}</td><td data-label=\"Uptime\">{uptime}</td>\
             <td class=\"num\" data-label=\"Restarts\">{restarts}</td>\
             <td class=\"num\" data-label=\"Tools\">{tools}</td><td class=\"num\" data-label=\"Calls\">{calls}</td>\
             <td class=\"num\" data-label=\"p50\">{p50}</td><td class=\"num\" data-label=\"p99\">{p99}</td>\
             <td class=\"num\" data-label=\"Memory\">{memory}</td>\
             <td class=\"err\">{error}",
            id = escape(status.id.as_str()),
            implementation = status
                .server_info
                .as_ref()
                .map(|info| format!("<br><small>{} {}</small>", escape(&info.name), escape(&info.version)))
                .unwrap_or_default(),
            pid = status.pid.map(|pid| pid.to_string()).unwrap_or_else(|| "–".to_owned()),
            uptime = status.uptime_ms.map(duration_text).unwrap_or_else(|| "–".to_owned()),
            restarts = status.restarts,
            tools = status.n_tools,
            calls = server.n_calls,
            p50 = millis_text(server.recent_p50_ms),
            p99 = millis_text(server.recent_p99_ms),
            memory = server
                .rss_bytes
                .map(|bytes| format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0)))
                .unwrap_or_else(|| "–".to_owned()),
            error = status.last_error.as_deref().map(escape).unwrap_or_default(),
        );
        let tail = if server.stderr_tail_live.is_empty() {
            &status.stderr_tail
        } else {
            &server.stderr_tail_live
        };
        if !tail.is_empty() {
            let _ = write!(
                html,
                "<details><summary>stderr</summary><pre>{}</pre></details>",
                escape(tail)
            );
        }
        html.push_str("</td></tr>");
    }
    if page.servers.is_empty() {
        html.push_str("<tr><td colspan=\"11\">No servers are configured.</td></tr>");
    }
    html.push_str("</tbody></table></div>");
    if let Some(reload) = &gateway.last_reload {
        let _ = write!(
            html,
            "<section><h2>Last reload</h2><p>{} — added {}, removed {}, restarted {}{}{}</p></section>",
            match reload.outcome {
                crate::reload::ReloadOutcome::Applied => "applied",
                crate::reload::ReloadOutcome::Refused => "refused",
            },
            list_text(&reload.added),
            list_text(&reload.removed),
            list_text(&reload.restarted),
            if reload.failed.is_empty() {
                String::new()
            } else {
                format!(
                    "; failed {}",
                    escape(
                        &reload
                            .failed
                            .iter()
                            .map(|(server, _)| server.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                )
            },
            reload
                .error
                .as_deref()
                .map(|error| format!("<br><span class=\"err\">{}</span>", escape(error)))
                .unwrap_or_default(),
        );
    }
    html.push_str("</main></body></html>\n");
    html
}

fn list_text(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        escape(&names.join(", "))
    }
}

fn millis_text(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.0} ms"),
        None => "–".to_owned(),
    }
}

fn duration_text(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds / 60),
        3600..=86_399 => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} d {} h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn set_content_type(response: &mut Response, value: &'static str) {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(5_000), "5 s");
        assert_eq!(duration_text(125_000), "2 min");
        assert_eq!(duration_text(3_725_000), "1 h 2 min");
        assert_eq!(duration_text(90_000_000), "1 d 1 h");
    }
}
