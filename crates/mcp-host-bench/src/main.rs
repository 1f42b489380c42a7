//! `mcp-host-bench`: mcp-host against rmcp and a raw stdio loop, in one run, against one fast echo server.
//!
//! `mcp-host-bench run` (what `cargo xtask bench` calls) re-executes this binary as a worker
//! process for every client kind and repetition (`mcp-host-bench worker <spec-json>`), interleaving
//! the kinds, then prints a Markdown table with medians and ratios and writes `results.json` and
//! `latency.svg` into the output directory. `mcp-host-bench profile <client> [calls]` runs only
//! sequential calls in this process, for `valgrind --tool=callgrind` or `perf`.
//!
//! The HTTP section (`http.rs`) runs the raw HTTP floor, rmcp's Streamable HTTP client and, with
//! `--peers DIR` (installed by `cargo xtask bench`), the TypeScript and Python SDK clients through
//! `mcp-host serve --http`, the direct HTTP echo server and the peer gateways; its guard fails the
//! run when a client's sequential p50 through mcp-host exceeds 3 × its p50 direct.
//! `mcp-host-bench scale` measures how the host and the HTTP gateway grow with servers and sessions.
//! `mcp-host-bench noisy` measures what a gateway client over its quota costs the others.
//!
//! The echo server (`bench-echo-server`) and the `mcp-host` binary (for the gateway figure) are
//! expected next to this executable, as `cargo build --bins` leaves them.

mod clients;
mod http;
mod noisy;
mod procs;
mod report;
mod scale;
mod spec;
mod svg;
mod worker;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use crate::http::spec::{GatewayKind, SessionsRun, ThroughputRun};
use crate::http::{HttpPlan, PeersDir};
use crate::report::{Collected, Machine, Report, Settings};
use crate::spec::{ClientKind, Counts, Target, Task, WorkerResult, WorkerSpec};

const USAGE: &str = "\
Usage: mcp-host-bench <command>

Commands:
  run [--smoke] [--out DIR] [--reps N] [--rustc VERSION] [--sections stdio,http]
      [--peers DIR] [--gateways NAME,...] [--http-reps N]
            measure every client and print the tables; results.json, results.md and the SVG
            charts go to DIR (default: <target>/bench, or <target>/bench/smoke with --smoke).
            --peers names the directory `cargo xtask bench` installs the SDK clients and the
            peer gateways into; without it the HTTP section runs the Rust clients only.
            --gateways picks HTTP servers among direct, mcp-host, supergateway-stateful,
            supergateway, mcp-proxy-npm, mcp-proxy-pypi, fastmcp (default: all with --peers,
            direct and mcp-host in a smoke run or without --peers)
  scale [--smoke] [--out DIR] [--rustc VERSION]
            1, 10, 100 and 500 stdio echo servers in one McpHost, and 1, 16 and 256 HTTP
            sessions on `mcp-host serve --http`: start-up, RSS, p50 and throughput per size;
            results go to DIR (default: <target>/bench/scale)
  noisy [--smoke] [--reps N] [--out DIR]
            a quiet client's sequential p50/p99 through `mcp-host serve --http`, alone and
            while another client calls at 10× its quota, flat out over its quota, and flat
            out without quota; results go to DIR (default: <target>/bench/noisy)
  http-client <raw-http|rmcp> <spec-json>
            internal: one HTTP client process
  profile <raw|rmcp|session|host|gateway> [CALLS]
            sequential calls only, in this process (for callgrind or perf); default 20000 calls;
            `gateway` is the raw client through `mcp-host serve`, which runs under the command
            in MCP_HOST_BENCH_GATEWAY_WRAPPER if set (e.g. `valgrind --tool=callgrind`)
  worker <spec-json>
            internal: one measurement in a fresh process
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["run", rest @ ..] => parse_run(rest).and_then(|options| run(&options)),
        ["scale", rest @ ..] => parse_run(rest).and_then(|options| scale::run(&options)),
        ["noisy", rest @ ..] => parse_run(rest).and_then(|options| noisy::run(&options)),
        ["worker", spec] => worker_command(spec),
        ["scale-worker", spec] => scale::worker_command(spec).and_then(|text| write_stdout(&text)),
        ["http-client", kind, spec] => {
            http::client_command(kind, spec).and_then(|text| write_stdout(&text))
        }
        ["profile", client, rest @ ..] => profile_command(client, rest),
        [] | ["help" | "-h" | "--help"] => write_stdout(USAGE),
        _ => {
            progress(&format!(
                "error: unknown arguments: {}\n\n{USAGE}",
                args.join(" ")
            ));
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            progress(&format!("error: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Options of `run` (and `scale`, which takes `--smoke`, `--out` and `--rustc`).
#[derive(Debug)]
struct RunOptions {
    smoke: bool,
    out: Option<PathBuf>,
    reps: Option<usize>,
    rustc: Option<String>,
    stdio: bool,
    http: bool,
    peers: Option<PathBuf>,
    gateways: Option<Vec<GatewayKind>>,
    http_reps: Option<usize>,
}

fn parse_run(args: &[&str]) -> anyhow::Result<RunOptions> {
    let mut options = RunOptions {
        smoke: false,
        out: None,
        reps: None,
        rustc: None,
        stdio: true,
        http: true,
        peers: None,
        gateways: None,
        http_reps: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--smoke" => options.smoke = true,
            "--out" => {
                options.out = Some(PathBuf::from(
                    args.next().context("--out needs a directory")?,
                ))
            }
            "--reps" => {
                let reps = args.next().context("--reps needs a number")?;
                options.reps = Some(reps.parse().with_context(|| format!("--reps {reps}"))?);
            }
            "--rustc" => {
                options.rustc = Some((*args.next().context("--rustc needs a version")?).to_owned())
            }
            "--sections" => {
                let sections = args
                    .next()
                    .context("--sections needs stdio, http or both")?;
                options.stdio = false;
                options.http = false;
                for section in sections.split(',') {
                    match section {
                        "stdio" => options.stdio = true,
                        "http" => options.http = true,
                        other => bail!("unknown section `{other}` (stdio, http)"),
                    }
                }
            }
            "--peers" => {
                options.peers = Some(PathBuf::from(
                    args.next().context("--peers needs a directory")?,
                ))
            }
            "--gateways" => {
                let names = args.next().context("--gateways needs names")?;
                let gateways = names
                    .split(',')
                    .map(|name| {
                        GatewayKind::parse(name)
                            .with_context(|| format!("unknown gateway `{name}`"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                options.gateways = Some(gateways);
            }
            "--http-reps" => {
                let reps = args.next().context("--http-reps needs a number")?;
                options.http_reps = Some(
                    reps.parse()
                        .with_context(|| format!("--http-reps {reps}"))?,
                );
            }
            other => bail!("unknown option `{other}`"),
        }
    }
    Ok(options)
}

fn worker_command(spec: &str) -> anyhow::Result<()> {
    let spec: WorkerSpec = serde_json::from_str(spec).context("the worker spec is not valid")?;
    let result = worker::run(&spec)?;
    write_stdout(&format!("{}\n", serde_json::to_string(&result)?))
}

/// The environment variable with a command (split at spaces) that `profile gateway` runs the
/// gateway under, such as `valgrind --tool=callgrind --callgrind-out-file=gateway.%p.out`.
const GATEWAY_WRAPPER_VAR: &str = "MCP_HOST_BENCH_GATEWAY_WRAPPER";

fn profile_command(client: &str, rest: &[&str]) -> anyhow::Result<()> {
    let through_gateway = client == "gateway";
    let kind = if through_gateway {
        ClientKind::Raw
    } else {
        ClientKind::parse(client).with_context(|| format!("unknown client `{client}`"))?
    };
    let n_calls = match rest {
        [] => 20_000,
        [calls] => calls.parse().with_context(|| format!("calls: {calls}"))?,
        _ => bail!("profile takes a client and at most a number of calls"),
    };
    let dir = exe_dir()?;
    let echo = echo_target(&dir, "profile")?;
    let gateway_config = std::env::temp_dir().join(format!(
        "mcp-host-bench-profile-gateway-{}.json",
        std::process::id()
    ));
    let target = if through_gateway {
        let mut target = gateway_target(&dir, &gateway_config, &echo)?;
        if let Ok(wrapper) = std::env::var(GATEWAY_WRAPPER_VAR) {
            let mut words = wrapper.split_whitespace().map(str::to_owned);
            if let Some(program) = words.next() {
                let mut args: Vec<String> = words.collect();
                args.push(target.program.to_string_lossy().into_owned());
                args.append(&mut target.args);
                target.program = PathBuf::from(program);
                target.args = args;
            }
        }
        target
    } else {
        echo
    };
    let started = Instant::now();
    let result = worker::profile(kind, &target, n_calls);
    if through_gateway {
        let _ = std::fs::remove_file(&gateway_config);
    }
    let result = result?;
    let mut samples = result.seq_ns;
    samples.sort_unstable();
    let p50 = report::quantile(&samples, 0.5).unwrap_or(0);
    let usage = result.seq_usage.unwrap_or_default();
    write_stdout(&format!(
        "{client}: {n_calls} sequential calls, p50 {:.1} µs, client CPU {:.1} µs and {:.2} context switches per call, {:.1?} in all\n",
        p50 as f64 / 1e3,
        usage.cpu_us_per_call().unwrap_or(0.0),
        usage.switches_per_call().unwrap_or(0.0),
        started.elapsed()
    ))
}

/// The directory of this executable, where its sibling binaries are.
fn exe_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    Ok(exe
        .parent()
        .context("this executable has no directory")?
        .to_path_buf())
}

/// The echo server, with the run's marker as its argument.
fn echo_target(dir: &Path, marker: &str) -> anyhow::Result<Target> {
    let program = dir.join("bench-echo-server");
    if !program.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p mcp-host-bench --bins`",
            program.display()
        );
    }
    Ok(Target {
        program,
        args: vec![format!("--bench-marker={marker}")],
        tool: clients::ECHO_TOOL.to_owned(),
    })
}

/// How much each kind of run measures.
struct Plan {
    reps: usize,
    counts: Counts,
    memory_servers: usize,
    memory_reps: usize,
    worker_timeout: Duration,
}

fn plan(options: &RunOptions) -> Plan {
    if options.smoke {
        Plan {
            reps: options.reps.unwrap_or(1),
            counts: Counts {
                startups: 1,
                seq_warmup: 2,
                seq_calls: 20,
                throughput: vec![(1, 4), (16, 32), (256, 256)],
                fleet_size: 3,
                fleet_rounds: 1,
            },
            memory_servers: 3,
            memory_reps: 1,
            worker_timeout: Duration::from_secs(60),
        }
    } else {
        Plan {
            reps: options.reps.unwrap_or(7),
            counts: Counts {
                startups: 10,
                seq_warmup: 500,
                seq_calls: 5000,
                throughput: vec![(1, 2000), (16, 16_000), (256, 51_200)],
                fleet_size: 50,
                fleet_rounds: 2,
            },
            memory_servers: 50,
            memory_reps: 5,
            worker_timeout: Duration::from_secs(300),
        }
    }
}

/// The HTTP section's plan for these options: the smoke measures a little of everything
/// through ours and the direct server; the full run measures every pair three times.
fn http_plan(options: &RunOptions, peers: Option<&PeersDir>) -> anyhow::Result<HttpPlan> {
    let clients = http::available_clients(peers)?;
    let gateways = match &options.gateways {
        Some(gateways) => gateways.clone(),
        None if options.smoke || peers.is_none() => vec![GatewayKind::Direct, GatewayKind::McpHost],
        None => GatewayKind::ALL.to_vec(),
    };
    let throughput = |warmup_s: f64, run_s: f64| {
        [1, 16, 256]
            .map(|in_flight| ThroughputRun {
                in_flight,
                warmup_s,
                run_s,
            })
            .to_vec()
    };
    Ok(if options.smoke {
        HttpPlan {
            reps: options.http_reps.unwrap_or(1),
            gateways,
            clients,
            startups: 2,
            seq_warmup: 20,
            seq_calls: 200,
            seq_max_s: 1.0,
            throughput: throughput(0.05, 0.2),
            sessions: Some(SessionsRun {
                n_sessions: 8,
                in_flight: 4,
                warmup_s: 0.05,
                run_s: 0.2,
            }),
            scale: None,
            deadline_s: 60.0,
        }
    } else {
        HttpPlan {
            reps: options.http_reps.unwrap_or(3),
            gateways,
            clients,
            startups: 10,
            seq_warmup: 100,
            seq_calls: 2000,
            seq_max_s: 2.0,
            throughput: throughput(0.2, 1.0),
            sessions: Some(SessionsRun {
                n_sessions: 64,
                in_flight: 4,
                warmup_s: 0.3,
                run_s: 1.5,
            }),
            scale: None,
            deadline_s: 240.0,
        }
    })
}

/// `<target>/bench` (or `<target>/bench/<sub>`) for an executable in `<target>/<profile>/`.
fn default_out(dir: &Path, sub: Option<&str>) -> anyhow::Result<PathBuf> {
    let target_dir = dir
        .parent()
        .context("this executable is not in a target directory")?;
    let bench = target_dir.join("bench");
    Ok(match sub {
        Some(sub) => bench.join(sub),
        None => bench,
    })
}

/// A marker unique to this run, carried by every process it starts.
fn run_marker() -> String {
    format!(
        "mcp-host-bench-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

fn machine(options: &RunOptions, load_before: String) -> Machine {
    Machine {
        n_cpus: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: cpu_model(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        rustc: options
            .rustc
            .clone()
            .unwrap_or_else(|| "rustc (version not given)".to_owned()),
        load_average_before: load_before,
        load_average_after: load_average(),
    }
}

fn run(options: &RunOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_before = load_average();
    let dir = exe_dir()?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let out = match &options.out {
        Some(out) => out.clone(),
        // <target>/<profile>/mcp-host-bench → <target>/bench.
        None => default_out(&dir, options.smoke.then_some("smoke"))?,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let marker = run_marker();
    let echo = echo_target(&dir, &marker)?;
    let gateway_config = out.join(format!("gateway-{marker}.json"));
    let gateway = gateway_target(&dir, &gateway_config, &echo)?;
    let plan = plan(options);
    let peers = options.peers.clone().map(PeersDir);
    let http_plan = if options.http {
        Some(http_plan(options, peers.as_ref())?)
    } else {
        None
    };
    if options.http && peers.is_none() {
        progress("bench: note: no --peers: the HTTP section runs the Rust clients only (raw-http, rmcp), without the SDK clients and the peers");
    }
    let http_env = http::Env {
        exe: exe.clone(),
        echo: echo.program.clone(),
        mcp_host: dir.join("mcp-host"),
        peers: peers.clone(),
        marker: marker.clone(),
        work: out.join("http"),
    };

    let outcome = (|| -> anyhow::Result<_> {
        let stdio = if options.stdio {
            Some(measure(&exe, &plan, &echo, &gateway)?)
        } else {
            None
        };
        let http_runs = match &http_plan {
            Some(http_plan) => Some(http::measure(&http_env, http_plan)?),
            None => None,
        };
        Ok((stdio, http_runs))
    })();
    // Whatever happened, nothing this run started may outlive it.
    let leftovers = wait_for_leftovers(&marker, Duration::from_secs(3));
    if !leftovers.is_empty() {
        procs::kill(&leftovers);
    }
    let _ = std::fs::remove_file(&gateway_config);
    let (stdio, http_runs) = outcome?;
    if !leftovers.is_empty() {
        bail!("processes of this run were still alive at the end and were killed: {leftovers:?}");
    }

    let (collected, gateway_results) = stdio.unwrap_or_default();
    let clients: Vec<_> = ClientKind::ALL
        .iter()
        .zip(&collected)
        .map(|(kind, collected)| report::client_figures(*kind, collected))
        .collect();
    // The raw client's own runs are the direct side of the gateway comparison.
    let raw_suites = collected.first().map_or(&[][..], |raw| &raw.suites[..]);
    let gateway_figures = report::gateway_figures(raw_suites, &gateway_results);
    let targets = report::check_targets(&clients, &gateway_figures);
    let mut latency_by_percentile: Vec<_> = ClientKind::ALL
        .iter()
        .zip(&collected)
        .map(|(kind, collected)| report::series(series_name(*kind), &collected.suites))
        .collect();
    if !gateway_results.is_empty() {
        latency_by_percentile.push(report::series("raw via mcp-host serve", &gateway_results));
    }
    let http_report = match (&http_plan, http_runs) {
        (Some(http_plan), Some(runs)) => Some(http::report::build(
            http_plan,
            peers.as_ref().map(PeersDir::versions).unwrap_or_default(),
            runs,
        )),
        _ => None,
    };
    let report = Report {
        machine: machine(options, load_before),
        settings: Settings {
            smoke: options.smoke,
            repetitions: plan.reps,
            startups_per_repetition: plan.counts.startups,
            sequential_calls_per_repetition: plan.counts.seq_calls,
            sequential_warmup_calls: plan.counts.seq_warmup,
            throughput_runs: plan.counts.throughput.clone(),
            fleet_size: plan.counts.fleet_size,
            fleet_rounds_per_repetition: plan.counts.fleet_rounds,
            memory_servers: plan.memory_servers,
            memory_repetitions: plan.memory_reps,
            elapsed_s: started.elapsed().as_secs_f64(),
        },
        clients,
        gateway: gateway_figures,
        targets,
        latency_by_percentile,
        http: http_report,
    };
    let markdown = report::markdown(&report);
    write_stdout(&markdown)?;
    let json_path = out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let mut charts = Vec::new();
    if options.stdio {
        charts.push((
            out.join("latency.svg"),
            svg::latency_chart(
                "Sequential tools/call latency by percentile (echo server on stdio)",
                &report.latency_by_percentile,
            ),
        ));
    }
    if let Some(http_report) = &report.http {
        for (client, series) in &http_report.latency_by_percentile {
            charts.push((
                out.join(format!("latency-http-{client}.svg")),
                svg::latency_chart(
                    &format!(
                        "Sequential tools/call latency by percentile over HTTP, {client} client"
                    ),
                    series,
                ),
            ));
        }
    }
    for (path, chart) in &charts {
        std::fs::write(path, chart).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(out.join("results.md"), &markdown)
        .with_context(|| format!("cannot write {}", out.join("results.md").display()))?;
    progress(&format!(
        "bench: wrote {}, results.md and {} chart(s) in {} in {:.1?}",
        json_path.display(),
        charts.len(),
        out.display(),
        started.elapsed()
    ));
    if let Some(http_report) = &report.http {
        let failed: Vec<String> = http_report
            .guard
            .iter()
            .filter(|check| !check.ok)
            .map(|check| {
                format!(
                    "{}: {} µs through mcp-host against {} µs direct ({}, limit {} ×)",
                    check.client,
                    report::number(check.mcp_host_p50_us, 0),
                    report::number(check.direct_p50_us, 0),
                    check
                        .ratio
                        .map_or_else(|| "no ratio".to_owned(), |ratio| format!("{ratio:.2} ×")),
                    check.limit
                )
            })
            .collect();
        if !failed.is_empty() {
            bail!(
                "the HTTP guard failed: sequential p50 through mcp-host / direct is over its limit for {}",
                failed.join("; ")
            );
        }
    }
    Ok(())
}

fn series_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Raw => "raw",
        ClientKind::Rmcp => "rmcp",
        ClientKind::Session => "mcp-session",
        ClientKind::Host => "McpHost",
    }
}

/// Runs every worker: suites per repetition (client kinds interleaved, rotating who goes first),
/// the gateway per repetition, then memory.
fn measure(
    exe: &Path,
    plan: &Plan,
    echo: &Target,
    gateway: &Target,
) -> anyhow::Result<(Vec<Collected>, Vec<WorkerResult>)> {
    let mut collected: Vec<Collected> = ClientKind::ALL
        .iter()
        .map(|_| Collected::default())
        .collect();
    let mut gateway_results = Vec::new();
    let n_kinds = ClientKind::ALL.len();
    for rep_idx in 0..plan.reps {
        for offset in 0..n_kinds {
            let kind_idx = (rep_idx + offset) % n_kinds;
            let kind = ClientKind::ALL[kind_idx];
            let spec = WorkerSpec {
                client: kind,
                target: echo.clone(),
                task: Task::Suites(plan.counts.clone()),
            };
            let step = Instant::now();
            let result = procs::run_worker(exe, &spec, plan.worker_timeout)
                .with_context(|| format!("repetition {} of {kind}", rep_idx + 1))?;
            progress(&format!(
                "bench: repetition {}/{} {kind:<8} {:.1?}",
                rep_idx + 1,
                plan.reps,
                step.elapsed()
            ));
            collected[kind_idx].suites.push(result);
        }
        let gateway_counts = Counts {
            startups: 0,
            fleet_size: 0,
            fleet_rounds: 0,
            ..plan.counts.clone()
        };
        let spec = WorkerSpec {
            client: ClientKind::Raw,
            target: gateway.clone(),
            task: Task::Suites(gateway_counts),
        };
        let step = Instant::now();
        let result = procs::run_worker(exe, &spec, plan.worker_timeout)
            .with_context(|| format!("repetition {} of the gateway", rep_idx + 1))?;
        progress(&format!(
            "bench: repetition {}/{} gateway  {:.1?}",
            rep_idx + 1,
            plan.reps,
            step.elapsed()
        ));
        gateway_results.push(result);
    }
    for rep_idx in 0..plan.memory_reps {
        for (kind_idx, kind) in ClientKind::ALL.into_iter().enumerate() {
            let spec = WorkerSpec {
                client: kind,
                target: echo.clone(),
                task: Task::Memory {
                    n_servers: plan.memory_servers,
                },
            };
            let result = procs::run_worker(exe, &spec, plan.worker_timeout)
                .with_context(|| format!("memory of {kind}"))?;
            progress(&format!(
                "bench: memory {}/{} {kind}",
                rep_idx + 1,
                plan.memory_reps
            ));
            collected[kind_idx].memory.push(result);
        }
    }
    Ok((collected, gateway_results))
}

/// `mcp-host --config <config_path> serve`, aggregating one echo server as `srv`; writes the configuration.
///
/// The configuration file's name carries the run's marker, so the gateway process can be found too.
fn gateway_target(dir: &Path, config_path: &Path, echo: &Target) -> anyhow::Result<Target> {
    let program = dir.join("mcp-host");
    if !program.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p mcp-host-cli --bins`",
            program.display()
        );
    }
    let config = serde_json::json!({
        "mcpServers": {
            "srv": { "command": echo.program, "args": echo.args }
        }
    });
    std::fs::write(config_path, serde_json::to_string_pretty(&config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    Ok(Target {
        program,
        args: vec![
            "--config".to_owned(),
            config_path.to_string_lossy().into_owned(),
            "serve".to_owned(),
        ],
        tool: mcp_host::naming::namespaced("srv", clients::ECHO_TOOL),
    })
}

/// Processes carrying `marker` that are still alive after waiting up to `timeout` for them to go.
fn wait_for_leftovers(marker: &str, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = procs::processes_with_marker(marker);
        if pids.is_empty() || Instant::now() >= deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes results to stdout (the table, a worker's JSON).
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes one line of progress or error to stderr; a failing stderr is ignored.
pub(crate) fn progress(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned())
}

fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
