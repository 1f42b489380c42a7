//! `mcp-host-bench scale`: how one `McpHost` grows with its servers, and `mcp-host serve --http` with its sessions.
//!
//! Stdio: 1, 10, 100 and 500 echo servers in one `McpHost` (each size in a fresh worker process,
//! `scale-worker`): start-up (`McpHost::new` + `initialize`), the host process's RSS and the whole
//! tree's, sequential `tools/call` p50 (each call to the next server in turn), throughput with
//! 256 calls in flight spread over every server, and shutdown.
//! HTTP: 1, 16 and 256 sessions on a fresh `mcp-host serve --http` (the raw HTTP client): the
//! time to open them all at once, the gateway tree's RSS under load, sequential p50 (each call on
//! the next session in turn) and throughput with 256 calls in flight spread over the sessions.
//! Every figure is also divided by the size, so that growth worse than linear shows; the charts
//! draw each figure by size on log-log axes with a dashed line for linear growth.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use mcp_host::{AgentScope, McpHost};
use mcp_host_foundation::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::clients::{bounded, echo_arguments, ECHO_TOOL, GRACE};
use crate::http::spec::{GatewayKind, HttpClientKind, ScaleRun};
use crate::http::{self, HttpPlan};
use crate::report::{number, quantile, Series};
use crate::spec::Target;
use crate::{procs, svg, worker, RunOptions};

/// In-flight calls of every throughput figure.
const IN_FLIGHT: usize = 256;

/// One stdio size, measured by a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StdioSpec {
    target: Target,
    n_servers: usize,
    seq_calls: usize,
    warmup_s: f64,
    run_s: f64,
}

/// What a stdio worker measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct StdioResult {
    n_servers: usize,
    startup_ms: f64,
    /// CPU time of the host process (all its threads, user + system) during the start: spawning
    /// (the `fork` happens in it; each child's `exec` does not), handshakes, registries.
    startup_cpu_ms: f64,
    /// The worker's RSS with the host ready, and of the whole tree.
    rss_host_kib: u64,
    rss_tree_kib: u64,
    seq_p50_us: f64,
    seq_p99_us: f64,
    throughput: f64,
    /// The host process's context switches per call during the throughput run.
    switches_per_call: f64,
    shutdown_ms: f64,
}

/// One HTTP size.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HttpScaleResult {
    n_sessions: usize,
    open_ms: f64,
    rss_rest_kib: Option<u64>,
    rss_load_kib: Option<u64>,
    seq_p50_us: f64,
    seq_p99_us: f64,
    throughput: f64,
    failures: u64,
}

/// Everything `scale` measured, as written to `results.json`.
#[derive(Debug, Serialize)]
struct ScaleReport {
    machine: crate::report::Machine,
    stdio: Vec<StdioResult>,
    http: Vec<HttpScaleResult>,
    elapsed_s: f64,
}

/// Runs `scale`.
pub(crate) fn run(options: &RunOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_before = crate::load_average();
    let dir = crate::exe_dir()?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let out = match &options.out {
        Some(out) => out.clone(),
        None => crate::default_out(
            &dir,
            Some(if options.smoke {
                "scale-smoke"
            } else {
                "scale"
            }),
        )?,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let marker = crate::run_marker();
    let echo = crate::echo_target(&dir, &marker)?;
    let (stdio_sizes, http_sizes, seq_calls, warmup_s, run_s): (&[usize], &[usize], _, _, _) =
        if options.smoke {
            (&[1, 10], &[1, 16], 200, 0.05, 0.3)
        } else {
            (&[1, 10, 100, 500], &[1, 16, 256], 3000, 0.3, 2.0)
        };
    let outcome = (|| -> anyhow::Result<_> {
        let mut stdio = Vec::new();
        for &n_servers in stdio_sizes {
            let spec = StdioSpec {
                target: echo.clone(),
                n_servers,
                seq_calls,
                warmup_s,
                run_s,
            };
            let step = Instant::now();
            #[allow(clippy::disallowed_methods)]
            let mut command = std::process::Command::new(&exe);
            command
                .arg("scale-worker")
                .arg(serde_json::to_string(&spec)?)
                .stderr(std::process::Stdio::inherit());
            let text = procs::run_for_stdout(
                command,
                &format!("the scale worker for {n_servers} servers"),
                Duration::from_secs(600),
            )?;
            let result: StdioResult =
                serde_json::from_str(text.trim()).context("the scale worker's output")?;
            crate::progress(&format!(
                "bench: scale stdio {n_servers:>4} servers {:.1?}",
                step.elapsed()
            ));
            stdio.push(result);
        }
        let env = http::Env {
            exe: exe.clone(),
            echo: echo.program.clone(),
            mcp_host: dir.join("mcp-host"),
            peers: None,
            marker: marker.clone(),
            work: out.join("http"),
        };
        let mut http_results = Vec::new();
        for &n_sessions in http_sizes {
            let plan = HttpPlan {
                reps: 1,
                gateways: vec![GatewayKind::McpHost],
                clients: vec![HttpClientKind::RawHttp],
                startups: 0,
                seq_warmup: 0,
                seq_calls: 0,
                seq_max_s: 0.0,
                throughput: Vec::new(),
                sessions: None,
                scale: Some(ScaleRun {
                    n_sessions,
                    seq_calls,
                    lanes: IN_FLIGHT,
                    warmup_s,
                    run_s,
                }),
                deadline_s: 300.0,
            };
            let runs = http::measure(&env, &plan)?;
            let run = runs.into_iter().next().context("no HTTP run")?;
            let result = run.result.context("the HTTP run has no result")?;
            let mut seq = result.seq_ns.clone();
            seq.sort_unstable();
            http_results.push(HttpScaleResult {
                n_sessions,
                open_ms: result.startup_ns.last().copied().unwrap_or(0) as f64 / 1e6,
                rss_rest_kib: run.rss_rest_kib,
                rss_load_kib: run.rss_peak_kib,
                seq_p50_us: quantile(&seq, 0.5).unwrap_or(0) as f64 / 1e3,
                seq_p99_us: quantile(&seq, 0.99).unwrap_or(0) as f64 / 1e3,
                throughput: result.throughput.first().map_or(0.0, |(_, rate)| *rate),
                failures: result.failures,
            });
        }
        Ok((stdio, http_results))
    })();
    let leftovers = crate::wait_for_leftovers(&marker, Duration::from_secs(3));
    if !leftovers.is_empty() {
        procs::kill(&leftovers);
    }
    let (stdio, http_results) = outcome?;
    if !leftovers.is_empty() {
        bail!("processes of this run were still alive at the end and were killed: {leftovers:?}");
    }
    let report = ScaleReport {
        machine: crate::machine(options, load_before),
        stdio,
        http: http_results,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let markdown = markdown(&report);
    crate::write_stdout(&markdown)?;
    write(&out.join("results.md"), &markdown)?;
    write(
        &out.join("results.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write(&out.join("scale-stdio.svg"), &stdio_chart(&report.stdio))?;
    write(&out.join("scale-http.svg"), &http_chart(&report.http))?;
    crate::progress(&format!(
        "bench: scale results in {} in {:.1?}",
        out.display(),
        started.elapsed()
    ));
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The worker process `scale-worker <spec-json>`: one stdio size.
pub(crate) fn worker_command(spec: &str) -> anyhow::Result<String> {
    let spec: StdioSpec = serde_json::from_str(spec).context("the scale spec is not valid")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")?;
    let result = runtime.block_on(bounded(
        "the scale worker",
        Duration::from_secs(540),
        measure_stdio(&spec),
    ));
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(format!("{}\n", serde_json::to_string(&result?)?))
}

async fn measure_stdio(spec: &StdioSpec) -> anyhow::Result<StdioResult> {
    let configs = (0..spec.n_servers)
        .map(|server_idx| ClientConfig {
            args: spec.target.args.clone(),
            shutdown_grace_ms: u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX),
            ..ClientConfig::new(
                format!("srv{server_idx}"),
                spec.target.program.to_string_lossy(),
            )
        })
        .collect();
    let host = McpHost::new(configs)?;
    let started = Instant::now();
    let usage_before = worker::usage()?;
    let report = bounded("host initialize", Duration::from_secs(300), async {
        Ok(host.initialize().await?)
    })
    .await?;
    let startup = started.elapsed();
    let startup_usage = worker::usage()?.since(&usage_before, spec.n_servers);
    if let Some((client, error)) = report.failed.first() {
        bail!(
            "{} of {} clients failed to start; {client}: {}",
            report.failed.len(),
            spec.n_servers,
            mcp_host::error_chain(error)
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_host_kib = resident_kib()?;
    let rss_tree_kib = procs::tree_rss_kib(std::process::id());
    let tools: Vec<String> = (0..spec.n_servers)
        .map(|server_idx| mcp_host::naming::namespaced(&format!("srv{server_idx}"), ECHO_TOOL))
        .collect();
    let scope = AgentScope::all();
    let call = |call_idx: usize| {
        let tool = &tools[call_idx % tools.len()];
        let host = &host;
        let scope = &scope;
        async move {
            host.call_tool(tool, Some(echo_arguments()), scope).await?;
            anyhow::Ok(())
        }
    };
    let measured = bounded("calls", Duration::from_secs(240), async {
        // Every server once, then some more, before timing.
        for call_idx in 0..spec.n_servers + 100 {
            call(call_idx).await?;
        }
        let mut samples = Vec::with_capacity(spec.seq_calls);
        for call_idx in 0..spec.seq_calls {
            let started = Instant::now();
            call(call_idx).await?;
            samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        samples.sort_unstable();
        let lanes = |seconds: f64| {
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let call = &call;
            futures::future::join_all((0..IN_FLIGHT).map(move |lane_idx| async move {
                let mut n_calls = 0u64;
                let mut call_idx = lane_idx;
                while Instant::now() < deadline {
                    call(call_idx).await?;
                    call_idx += IN_FLIGHT;
                    n_calls += 1;
                }
                anyhow::Ok(n_calls)
            }))
        };
        for outcome in lanes(spec.warmup_s).await {
            outcome?;
        }
        let before = worker::usage()?;
        let started = Instant::now();
        let mut n_calls = 0;
        for outcome in lanes(spec.run_s).await {
            n_calls += outcome?;
        }
        let rate = n_calls as f64 / started.elapsed().as_secs_f64();
        let usage = worker::usage()?.since(&before, usize::try_from(n_calls).unwrap_or(usize::MAX));
        Ok((samples, rate, usage.switches_per_call().unwrap_or(0.0)))
    })
    .await;
    let stopping = Instant::now();
    let shutdown = bounded("host shutdown", Duration::from_secs(120), async {
        Ok(host.shutdown().await)
    })
    .await?;
    let shutdown_ms = stopping.elapsed().as_secs_f64() * 1e3;
    if !shutdown.killed.is_empty() {
        bail!("the host had to kill {} servers", shutdown.killed.len());
    }
    let (samples, throughput, switches_per_call) = measured?;
    Ok(StdioResult {
        n_servers: spec.n_servers,
        startup_ms: startup.as_secs_f64() * 1e3,
        startup_cpu_ms: startup_usage.cpu_ns as f64 / 1e6,
        switches_per_call,
        rss_host_kib,
        rss_tree_kib,
        seq_p50_us: quantile(&samples, 0.5).unwrap_or(0) as f64 / 1e3,
        seq_p99_us: quantile(&samples, 0.99).unwrap_or(0) as f64 / 1e3,
        throughput,
        shutdown_ms,
    })
}

/// This process's resident set size, from `/proc/self/status`.
fn resident_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line in /proc/self/status")
}

fn markdown(report: &ScaleReport) -> String {
    let mut out = String::new();
    let machine = &report.machine;
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), Linux {}, {}; load average {} before, {} after; {:.0} s in all.\n",
        machine.n_cpus,
        machine.cpu_model,
        machine.kernel,
        machine.rustc,
        machine.load_average_before,
        machine.load_average_after,
        report.elapsed_s
    );
    out.push_str("| stdio servers in one McpHost | start (ms) | start per server (ms) | host CPU in start per server (ms) | host RSS (MiB) | host RSS per added server (KiB) | tree RSS (MiB) | p50 (µs) | p99 (µs) | calls/s, 256 in flight | host context switches per call | shutdown (ms) |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let first = report.stdio.first();
    for result in &report.stdio {
        let n = result.n_servers as f64;
        let per_added = first
            .filter(|first| first.n_servers < result.n_servers)
            .map(|first| {
                (result.rss_host_kib as f64 - first.rss_host_kib as f64)
                    / (result.n_servers - first.n_servers) as f64
            });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            result.n_servers,
            number(Some(result.startup_ms), 1),
            number(Some(result.startup_ms / n), 2),
            number(Some(result.startup_cpu_ms / n), 2),
            number(Some(result.rss_host_kib as f64 / 1024.0), 1),
            number(per_added, 1),
            number(Some(result.rss_tree_kib as f64 / 1024.0), 1),
            number(Some(result.seq_p50_us), 1),
            number(Some(result.seq_p99_us), 1),
            number(Some(result.throughput), 0),
            number(Some(result.switches_per_call), 2),
            number(Some(result.shutdown_ms), 1),
        );
    }
    out.push_str("\nHost RSS is the worker process's (the host and its runtime); per added server, against the smallest size; the tree adds the echo servers themselves.\n\n");
    out.push_str("| HTTP sessions on mcp-host serve --http | open all (ms) | open per session (ms) | tree RSS at rest (MiB) | tree RSS under load (MiB) | p50 (µs) | p99 (µs) | calls/s, 256 in flight | failed calls |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for result in &report.http {
        let n = result.n_sessions as f64;
        let mib = |kib: Option<u64>| kib.map(|kib| kib as f64 / 1024.0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            result.n_sessions,
            number(Some(result.open_ms), 1),
            number(Some(result.open_ms / n), 2),
            number(mib(result.rss_rest_kib), 1),
            number(mib(result.rss_load_kib), 1),
            number(Some(result.seq_p50_us), 1),
            number(Some(result.seq_p99_us), 1),
            number(Some(result.throughput), 0),
            result.failures,
        );
    }
    let growth = |pairs: Vec<(f64, f64)>| -> Option<f64> {
        // The exponent b of y = a·x^b between the first and the last size.
        let (first, last) = (pairs.first()?, pairs.last()?);
        (last.0 > first.0 && first.1 > 0.0 && last.1 > 0.0)
            .then(|| (last.1 / first.1).ln() / (last.0 / first.0).ln())
    };
    let stdio_startup = growth(
        report
            .stdio
            .iter()
            .map(|result| (result.n_servers as f64, result.startup_ms))
            .collect(),
    );
    let stdio_startup_cpu = growth(
        report
            .stdio
            .iter()
            .map(|result| (result.n_servers as f64, result.startup_cpu_ms))
            .collect(),
    );
    let stdio_p50 = growth(
        report
            .stdio
            .iter()
            .map(|result| (result.n_servers as f64, result.seq_p50_us))
            .collect(),
    );
    let http_open = growth(
        report
            .http
            .iter()
            .map(|result| (result.n_sessions as f64, result.open_ms))
            .collect(),
    );
    let _ = writeln!(
        out,
        "\nGrowth exponents (figure ∝ size^b from the smallest to the largest size; 1 is linear): stdio start {}, host CPU in start {}, stdio p50 {}, HTTP open {}.",
        number(stdio_startup, 2),
        number(stdio_startup_cpu, 2),
        number(stdio_p50, 2),
        number(http_open, 2)
    );
    out
}

fn stdio_chart(results: &[StdioResult]) -> String {
    let series = |name: &str, pick: &dyn Fn(&StdioResult) -> f64| Series {
        name: name.to_owned(),
        points: results
            .iter()
            .map(|result| (result.n_servers as f64, pick(result)))
            .collect(),
    };
    svg::scale_chart(
        "One McpHost with N stdio echo servers",
        "servers",
        &[
            series("start (ms)", &|result| result.startup_ms),
            series("host CPU in start (ms)", &|result| result.startup_cpu_ms),
            series("host RSS (MiB)", &|result| {
                result.rss_host_kib as f64 / 1024.0
            }),
            series("p50 (µs)", &|result| result.seq_p50_us),
            series("k calls/s, 256 in flight", &|result| {
                result.throughput / 1e3
            }),
            series("shutdown (ms)", &|result| result.shutdown_ms),
        ],
        &[true, true, true, false, false, true],
    )
}

fn http_chart(results: &[HttpScaleResult]) -> String {
    let series = |name: &str, pick: &dyn Fn(&HttpScaleResult) -> f64| Series {
        name: name.to_owned(),
        points: results
            .iter()
            .map(|result| (result.n_sessions as f64, pick(result)))
            .collect(),
    };
    svg::scale_chart(
        "mcp-host serve --http with N sessions",
        "sessions",
        &[
            series("open all (ms)", &|result| result.open_ms),
            series("tree RSS under load (MiB)", &|result| {
                result.rss_load_kib.unwrap_or(0) as f64 / 1024.0
            }),
            series("p50 (µs)", &|result| result.seq_p50_us),
            series("k calls/s, 256 in flight", &|result| {
                result.throughput / 1e3
            }),
        ],
        &[true, true, false, false],
    )
}
