//! The HTTP section: every client (raw floor, rmcp, TypeScript SDK, Python SDK) through every HTTP server (direct, mcp-host, the peers), each pair with a fresh server, in one run.
//!
//! For each repetition, servers and clients are interleaved (rotating who goes first). One pair is
//! one run: start the server in front of the echo server, read its process tree's RSS at rest,
//! run the client process (sampling the tree's RSS all along: the peak is "under load"), then
//! stop the server with SIGTERM (time to exit, processes left). A failing peer is recorded and the
//! run goes on; a failure of mcp-host or of the direct server fails the benchmark.

pub(crate) mod gateway;
pub(crate) mod raw;
pub(crate) mod report;
pub(crate) mod spec;
mod worker;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

pub(crate) use gateway::PeersDir;
use gateway::{log_tail, Gateway};
use spec::{
    GatewayKind, HttpClientKind, HttpClientResult, HttpClientSpec, ScaleRun, SessionsRun,
    ThroughputRun,
};

use crate::procs;

/// The TypeScript client, the Python client and the FastMCP proxy runner, written out at run time
/// where their interpreters find their packages.
const TS_CLIENT: &str = include_str!("../scripts/sdk_client.mjs");
const PY_CLIENT: &str = include_str!("../scripts/sdk_client.py");
const FASTMCP_PROXY: &str = include_str!("../scripts/fastmcp_proxy.py");

/// How long a gateway may rest after it is ready before its RSS is read.
const SETTLE: Duration = Duration::from_millis(300);

/// What the HTTP section runs with.
#[derive(Debug)]
pub(crate) struct Env {
    /// This executable (`http-client` runs the Rust clients).
    pub(crate) exe: PathBuf,
    pub(crate) echo: PathBuf,
    pub(crate) mcp_host: PathBuf,
    pub(crate) peers: Option<PeersDir>,
    pub(crate) marker: String,
    /// Logs, configurations and the written-out Python scripts.
    pub(crate) work: PathBuf,
}

/// How much the HTTP section measures.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HttpPlan {
    pub(crate) reps: usize,
    pub(crate) gateways: Vec<GatewayKind>,
    pub(crate) clients: Vec<HttpClientKind>,
    pub(crate) startups: usize,
    pub(crate) seq_warmup: usize,
    pub(crate) seq_calls: usize,
    pub(crate) seq_max_s: f64,
    pub(crate) throughput: Vec<ThroughputRun>,
    pub(crate) sessions: Option<SessionsRun>,
    /// `mcp-host-bench scale`'s run instead (Rust clients only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scale: Option<ScaleRun>,
    pub(crate) deadline_s: f64,
}

/// One client through one server, once.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HttpRun {
    pub(crate) rep: usize,
    pub(crate) gateway: GatewayKind,
    pub(crate) client: HttpClientKind,
    #[serde(skip)]
    pub(crate) result: Option<HttpClientResult>,
    /// Why the run has no result.
    pub(crate) error: Option<String>,
    pub(crate) rss_rest_kib: Option<u64>,
    pub(crate) rss_peak_kib: Option<u64>,
    pub(crate) exit_ms: Option<f64>,
    pub(crate) exit_timed_out: bool,
    pub(crate) left: Option<usize>,
    pub(crate) elapsed_s: f64,
}

/// The clients that can run with `peers` (the SDK clients need it).
pub(crate) fn available_clients(peers: Option<&PeersDir>) -> anyhow::Result<Vec<HttpClientKind>> {
    let Some(peers) = peers else {
        return Ok(vec![HttpClientKind::RawHttp, HttpClientKind::Rmcp]);
    };
    let sdk = peers
        .ts_client_dir()
        .join("node_modules")
        .join("@modelcontextprotocol")
        .join("sdk")
        .join("package.json");
    if !sdk.is_file() {
        bail!(
            "the TypeScript SDK is not installed in {} (run `cargo xtask bench`, which installs it)",
            peers.ts_client_dir().display()
        );
    }
    if !peers.py_client_python().is_file() {
        bail!(
            "the Python SDK's venv is missing: {} (run `cargo xtask bench`, which installs it)",
            peers.py_client_python().display()
        );
    }
    Ok(HttpClientKind::ALL.to_vec())
}

/// Runs every pair of the plan, `reps` times.
pub(crate) fn measure(env: &Env, plan: &HttpPlan) -> anyhow::Result<Vec<HttpRun>> {
    std::fs::create_dir_all(&env.work)
        .with_context(|| format!("cannot create {}", env.work.display()))?;
    write_scripts(env)?;
    let mut runs = Vec::new();
    let n_gateways = plan.gateways.len();
    let n_clients = plan.clients.len();
    for rep_idx in 0..plan.reps {
        for gateway_offset in 0..n_gateways {
            let gateway = plan.gateways[(rep_idx + gateway_offset) % n_gateways];
            for client_offset in 0..n_clients {
                let client = plan.clients[(rep_idx + client_offset) % n_clients];
                let run = run_pair(env, plan, rep_idx, gateway, client, runs.len())?;
                crate::progress(&format!(
                    "bench: http {}/{} {:<22} {:<8} {:.1} s{}",
                    rep_idx + 1,
                    plan.reps,
                    gateway.name(),
                    client.name(),
                    run.elapsed_s,
                    match &run.error {
                        Some(error) => format!(" FAILED: {}", first_line(error)),
                        None => String::new(),
                    }
                ));
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

fn write_scripts(env: &Env) -> anyhow::Result<()> {
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(env.work.join("sdk_client.py"), PY_CLIENT)?;
    if let Some(peers) = &env.peers {
        if peers.ts_client_dir().is_dir() {
            // Next to its `node_modules`, where node's ESM resolution finds the SDK.
            write(peers.ts_client_dir().join("sdk_client.mjs"), TS_CLIENT)?;
        }
        let peer_dir = peers.0.join("peers");
        if peer_dir.is_dir() {
            write(peer_dir.join("fastmcp_proxy.py"), FASTMCP_PROXY)?;
        }
    }
    Ok(())
}

/// One pair; only ours and the direct server's failures are errors, a peer's is recorded.
fn run_pair(
    env: &Env,
    plan: &HttpPlan,
    rep: usize,
    gateway_kind: GatewayKind,
    client: HttpClientKind,
    run_idx: usize,
) -> anyhow::Result<HttpRun> {
    let started = Instant::now();
    let mut run = HttpRun {
        rep,
        gateway: gateway_kind,
        client,
        result: None,
        error: None,
        rss_rest_kib: None,
        rss_peak_kib: None,
        exit_ms: None,
        exit_timed_out: false,
        left: None,
        elapsed_s: 0.0,
    };
    let outcome = (|| -> anyhow::Result<()> {
        let gateway = Gateway::start(gateway_kind, env, run_idx)?;
        std::thread::sleep(SETTLE);
        run.rss_rest_kib = Some(gateway.tree_rss_kib());
        let sampler = gateway.sample_rss();
        let result = run_client(env, plan, &gateway, client, run_idx);
        run.rss_peak_kib = Some(sampler.finish());
        let log = gateway.log.clone();
        let stopped = gateway.stop()?;
        run.exit_ms = stopped.exit_ms;
        run.exit_timed_out = stopped.exit_ms.is_none();
        run.left = Some(stopped.left);
        let result = result.with_context(|| format!("the gateway's {}", log_tail(&log)))?;
        run.result = Some(result);
        Ok(())
    })();
    run.elapsed_s = started.elapsed().as_secs_f64();
    if let Err(error) = outcome {
        let error = format!("{error:#}");
        if !gateway_kind.is_peer() {
            bail!("{client} through {gateway_kind}: {error}");
        }
        run.error = Some(error);
    }
    Ok(run)
}

/// Runs one client process against `gateway` and parses its result.
fn run_client(
    env: &Env,
    plan: &HttpPlan,
    gateway: &Gateway,
    client: HttpClientKind,
    run_idx: usize,
) -> anyhow::Result<HttpClientResult> {
    let spec = HttpClientSpec {
        url: gateway.url.clone(),
        tool: gateway.tool.clone(),
        text: crate::clients::ECHO_TEXT.to_owned(),
        startups: plan.startups,
        seq_warmup: plan.seq_warmup,
        seq_calls: plan.seq_calls,
        seq_max_s: plan.seq_max_s,
        throughput: plan.throughput.clone(),
        sessions: plan.sessions.clone(),
        scale: plan.scale.clone(),
        deadline_s: plan.deadline_s,
        marker: env.marker.clone(),
    };
    let spec_json = serde_json::to_string(&spec)?;
    // The benchmark runs its clients as processes; the spawn ban is for library crates.
    #[allow(clippy::disallowed_methods)]
    let mut command = match client {
        HttpClientKind::RawHttp | HttpClientKind::Rmcp => {
            let mut command = Command::new(&env.exe);
            command.arg("http-client").arg(client.name());
            command
        }
        HttpClientKind::TsSdk => {
            let dir = env
                .peers
                .as_ref()
                .context("the TypeScript client needs --peers")?
                .ts_client_dir();
            let mut command = Command::new("node");
            command.arg(dir.join("sdk_client.mjs")).current_dir(dir);
            command
        }
        HttpClientKind::PySdk => {
            let python = env
                .peers
                .as_ref()
                .context("the Python client needs --peers")?
                .py_client_python();
            let mut command = Command::new(python);
            command.arg(env.work.join("sdk_client.py"));
            command
        }
    };
    let log = env
        .work
        .join(format!("client-{}-{}-{run_idx}.log", gateway.kind, client));
    let log_file =
        File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    command.arg(&spec_json).stderr(Stdio::from(log_file));
    let timeout = Duration::from_secs_f64(plan.deadline_s) + Duration::from_secs(20);
    let text = procs::run_for_stdout(command, &format!("the {client} client"), timeout)
        .with_context(|| format!("the client's {}", log_tail(&log)))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("the {client} client's output is not a result: {text}"))
}

/// The client process `http-client <kind> <spec-json>`: runs a Rust client and prints its result.
pub(crate) fn client_command(kind: &str, spec: &str) -> anyhow::Result<String> {
    let kind = HttpClientKind::parse(kind).with_context(|| format!("unknown client `{kind}`"))?;
    let spec: HttpClientSpec =
        serde_json::from_str(spec).context("the client spec is not valid")?;
    let result = worker::run(kind, &spec)?;
    Ok(format!("{}\n", serde_json::to_string(&result)?))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
