//! `mcp-host-bench noisy`: does a client over its quota slow the others down? (issue #15)
//!
//! One `mcp-host serve --http` fronts the echo server for three gateway clients: `quiet` and
//! `greedy` without quotas, and `noisy`, allowed 60 calls a minute. The quiet client makes
//! sequential `tools/call`s (the raw keep-alive HTTP client) under four conditions, in a rotating
//! order over the repetitions:
//!
//! - alone;
//! - while `noisy` calls at 10 times its quota (10 a second on one connection, its bucket emptied
//!   first, so nearly all of its calls are refused);
//! - while `noisy` calls without pause on four connections (all refused but one a second);
//! - while `greedy`, which has no quota, calls without pause on four connections (all served):
//!   what the quiet client would see if the noisy one had no quota.
//!
//! The figures are the quiet client's p50 and p99 under each condition and their ratios to
//! "alone", medians over the repetitions, in one run. Nothing is asserted: on a 2-core machine the
//! noisy client's own CPU competes with the gateway's, so "flat out" shows that cost too.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::http::raw::{open_session as open, Connection, Endpoint};
use crate::report::quantile;
use crate::{procs, progress, RunOptions};

const QUIET_TOKEN_VAR: &str = "MCP_HOST_BENCH_QUIET_TOKEN";
const NOISY_TOKEN_VAR: &str = "MCP_HOST_BENCH_NOISY_TOKEN";
const GREEDY_TOKEN_VAR: &str = "MCP_HOST_BENCH_GREEDY_TOKEN";
/// The noisy client's quota.
const CALLS_PER_MINUTE: u32 = 60;
/// Connections of a client calling without pause.
const FLAT_OUT_LANES: usize = 4;
/// Bounds on the gateway becoming ready, on one condition's measurement, and on its exit.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls the noisy client makes at most to empty its bucket (it holds 60).
const MAX_DRAIN_CALLS: u64 = 10_000;

/// Who else is calling while the quiet client measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Condition {
    Alone,
    TenTimesQuota,
    FlatOutOverQuota,
    FlatOutUnlimited,
}

impl Condition {
    const ALL: [Condition; 4] = [
        Condition::Alone,
        Condition::TenTimesQuota,
        Condition::FlatOutOverQuota,
        Condition::FlatOutUnlimited,
    ];

    fn describe(self) -> &'static str {
        match self {
            Condition::Alone => "alone",
            Condition::TenTimesQuota => "noisy client at 10× its quota (10 calls/s)",
            Condition::FlatOutOverQuota => "noisy client flat out, over its quota (4 connections)",
            Condition::FlatOutUnlimited => "a client without quota flat out (4 connections)",
        }
    }
}

/// The other client's calls during one measurement.
#[derive(Debug, Default, Serialize)]
struct OtherCalls {
    answered: u64,
    refused: u64,
    failed: u64,
    per_second: f64,
}

/// One measurement of the quiet client.
#[derive(Debug, Serialize)]
struct Sample {
    rep: usize,
    condition: Condition,
    calls: usize,
    p50_us: f64,
    p99_us: f64,
    other: OtherCalls,
}

/// Runs the benchmark and writes `results.md` and `results.json`.
pub(crate) fn run(options: &RunOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_before = crate::load_average();
    let dir = crate::exe_dir()?;
    let out = match &options.out {
        Some(out) => out.clone(),
        None => crate::default_out(
            &dir,
            Some(if options.smoke {
                "noisy-smoke"
            } else {
                "noisy"
            }),
        )?,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let marker = crate::run_marker();
    let echo = crate::echo_target(&dir, &marker)?;
    let mcp_host = dir.join("mcp-host");
    if !mcp_host.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p mcp-host-cli`",
            mcp_host.display()
        );
    }
    let (reps, warmup, calls) = match (options.smoke, options.reps) {
        (true, _) => (1, 20, 200),
        (false, reps) => (reps.unwrap_or(5), 300, 3000),
    };
    let tokens = Tokens {
        quiet: format!("quiet-{marker}"),
        noisy: format!("noisy-{marker}"),
        greedy: format!("greedy-{marker}"),
    };
    let config = out.join("gateway.json");
    let text = serde_json::json!({
        "mcpServers": { "srv": { "command": echo.program, "args": echo.args } },
        "gateway": { "clients": {
            "quiet": { "token": format!("${{env:{QUIET_TOKEN_VAR}}}") },
            "greedy": { "token": format!("${{env:{GREEDY_TOKEN_VAR}}}") },
            "noisy": {
                "token": format!("${{env:{NOISY_TOKEN_VAR}}}"),
                "quota": { "callsPerMinute": CALLS_PER_MINUTE },
            },
        }},
    });
    std::fs::write(&config, serde_json::to_string_pretty(&text)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log = out.join("gateway.log");
    let mut gateway = Gateway::start(&mcp_host, &config, &log, &tokens)?;
    let tool = mcp_host::naming::namespaced("srv", &echo.tool);
    let measured = (|| -> anyhow::Result<Vec<Sample>> {
        let url = gateway.wait_ready(&log)?;
        let base = Endpoint::parse(&url)?;
        let mut samples = Vec::new();
        for rep in 0..reps {
            for offset in 0..Condition::ALL.len() {
                let condition = Condition::ALL[(rep + offset) % Condition::ALL.len()];
                let mut sample = measure(&base, &tokens, &tool, condition, warmup, calls)
                    .with_context(|| format!("{} (repetition {rep})", condition.describe()))?;
                sample.rep = rep;
                progress(&format!(
                    "noisy: rep {rep}, {}: quiet p50 {:.1} µs, p99 {:.1} µs; other: {} answered, {} refused, {} failed",
                    condition.describe(),
                    sample.p50_us,
                    sample.p99_us,
                    sample.other.answered,
                    sample.other.refused,
                    sample.other.failed
                ));
                samples.push(sample);
            }
        }
        Ok(samples)
    })();
    let left = gateway.stop(&marker);
    let samples = measured?;
    let left = left?;
    if left > 0 {
        bail!("{left} processes of the run were left after the gateway exited");
    }
    let table = table(&samples, reps, calls, &load_before, started.elapsed());
    std::fs::write(out.join("results.md"), &table)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&samples)?,
    )?;
    crate::write_stdout(&table)?;
    progress(&format!("noisy: results in {}", out.display()));
    Ok(())
}

struct Tokens {
    quiet: String,
    noisy: String,
    greedy: String,
}

/// One condition: the other client (if any) starts, then the quiet one measures.
fn measure(
    base: &Endpoint,
    tokens: &Tokens,
    tool: &str,
    condition: Condition,
    warmup: usize,
    calls: usize,
) -> anyhow::Result<Sample> {
    let quiet = base.clone().with_bearer(&tokens.quiet);
    let other = match condition {
        Condition::Alone => None,
        Condition::TenTimesQuota | Condition::FlatOutOverQuota => {
            Some(base.clone().with_bearer(&tokens.noisy))
        }
        Condition::FlatOutUnlimited => Some(base.clone().with_bearer(&tokens.greedy)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    // The other client on a thread and a runtime of its own, so that it never shares a scheduler
    // with the quiet one.
    let other_thread = match other {
        None => None,
        Some(endpoint) => {
            let (their_stop, counts, tool) = (stop.clone(), counts.clone(), tool.to_owned());
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let handle = std::thread::spawn(move || {
                current_thread()?.block_on(other_client(
                    endpoint,
                    condition,
                    &tool,
                    &their_stop,
                    &counts,
                    ready_tx,
                ))
            });
            match ready_rx.recv_timeout(STEP_TIMEOUT) {
                Ok(()) => {}
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(match handle.join() {
                        Ok(Err(error)) => error,
                        _ => anyhow::anyhow!("the other client did not start"),
                    });
                }
            }
            Some(handle)
        }
    };
    let since = Instant::now();
    let before = counts.snapshot();
    let measured = current_thread().and_then(|runtime| {
        runtime.block_on(async {
            tokio::time::timeout(STEP_TIMEOUT, quiet_client(&quiet, tool, warmup, calls))
                .await
                .context("the quiet client's calls took too long")?
        })
    });
    let after = counts.snapshot();
    let elapsed = since.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(handle) = other_thread {
        match handle.join() {
            Ok(outcome) => outcome?,
            Err(_) => bail!("the other client's thread panicked"),
        }
    }
    let mut samples = measured?;
    samples.sort_unstable();
    let us = |q| quantile(&samples, q).map_or(0.0, |ns| ns as f64 / 1000.0);
    let answered = after.0 - before.0;
    let refused = after.1 - before.1;
    Ok(Sample {
        rep: 0,
        condition,
        calls: samples.len(),
        p50_us: us(0.5),
        p99_us: us(0.99),
        other: OtherCalls {
            answered,
            refused,
            failed: after.2 - before.2,
            per_second: (answered + refused) as f64 / elapsed.max(1e-9),
        },
    })
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a runtime")
}

/// Answered, refused and failed calls of the other client.
#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.answered.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn call_message(tool: &str, id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": tool, "arguments": { "text": "hello" } },
    }))
    .unwrap_or_default()
}

/// The quiet client: `warmup` calls, then `calls` timed ones; every one must be answered.
async fn quiet_client(
    endpoint: &Endpoint,
    tool: &str,
    warmup: usize,
    calls: usize,
) -> anyhow::Result<Vec<u64>> {
    let (mut connection, session) = open(endpoint).await?;
    let mut samples = Vec::with_capacity(calls);
    for id in 1..=(warmup + calls) as u64 {
        let message = call_message(tool, id);
        let started = Instant::now();
        connection
            .post_request(session.as_deref(), &message)
            .await
            .context("a call of the quiet client failed")?;
        let took = started.elapsed();
        if id > warmup as u64 {
            samples.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    Ok(samples)
}

/// The other client: empties the noisy client's bucket first, says it is ready, then calls at the
/// condition's pace until told to stop.
async fn other_client(
    endpoint: Endpoint,
    condition: Condition,
    tool: &str,
    stop: &AtomicBool,
    counts: &Counts,
    ready: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let lanes = match condition {
        Condition::Alone => return Ok(()),
        Condition::TenTimesQuota => 1,
        Condition::FlatOutOverQuota | Condition::FlatOutUnlimited => FLAT_OUT_LANES,
    };
    let mut sessions = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        sessions.push(open(&endpoint).await?);
    }
    if condition != Condition::FlatOutUnlimited {
        let (connection, session) = &mut sessions[0];
        let mut drained = false;
        for id in 0..MAX_DRAIN_CALLS {
            connection
                .request("POST", session.as_deref(), &call_message(tool, id))
                .await?;
            if !contains(connection.body(), b"\"result\"") {
                drained = true;
                break;
            }
        }
        if !drained {
            bail!("the noisy client was never refused in {MAX_DRAIN_CALLS} calls: is its quota applied?");
        }
    }
    let _ = ready.send(());
    let pace = match condition {
        // 10 times a quota of one call a second.
        Condition::TenTimesQuota => Some(Duration::from_secs(60) / (10 * CALLS_PER_MINUTE)),
        _ => None,
    };
    let lane_futures = sessions
        .into_iter()
        .enumerate()
        .map(|(lane, (connection, session))| {
            lane_loop(
                &endpoint, connection, session, tool, lane, pace, stop, counts,
            )
        });
    futures::future::try_join_all(lane_futures).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn lane_loop(
    endpoint: &Endpoint,
    mut connection: Connection,
    session: Option<String>,
    tool: &str,
    lane: usize,
    pace: Option<Duration>,
    stop: &AtomicBool,
    counts: &Counts,
) -> anyhow::Result<()> {
    let mut ticker = pace.map(|pace| {
        let mut ticker = tokio::time::interval(pace);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut id = (lane as u64 + 1) << 32;
    let mut failures_in_a_row = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        id += 1;
        let answer = tokio::time::timeout(
            STEP_TIMEOUT,
            connection.request("POST", session.as_deref(), &call_message(tool, id)),
        )
        .await;
        match answer {
            Ok(Ok(answer))
                if answer.status == 200 && contains(connection.body(), b"\"result\"") =>
            {
                counts.answered.fetch_add(1, Ordering::Relaxed);
                failures_in_a_row = 0;
            }
            Ok(Ok(answer)) if answer.status == 429 || contains(connection.body(), b"\"error\"") => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                failures_in_a_row = 0;
            }
            _ => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                failures_in_a_row += 1;
                if failures_in_a_row > 100 {
                    bail!("the other client failed 100 calls in a row");
                }
                // The connection may be closed: a new one (the session stays).
                connection = Connection::connect(endpoint).await?;
            }
        }
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The `mcp-host serve --http` under test.
struct Gateway {
    child: Option<Child>,
}

impl Gateway {
    fn start(
        program: &Path,
        config: &Path,
        log: &Path,
        tokens: &Tokens,
    ) -> anyhow::Result<Gateway> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        // The benchmark starts the gateway it measures; the spawn ban is for library crates.
        #[allow(clippy::disallowed_methods)]
        let mut command = Command::new(program);
        command
            .arg("--config")
            .arg(config)
            .args(["serve", "--http", "127.0.0.1:0"])
            .env(QUIET_TOKEN_VAR, &tokens.quiet)
            .env(NOISY_TOKEN_VAR, &tokens.noisy)
            .env(GREEDY_TOKEN_VAR, &tokens.greedy)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Gateway { child: Some(child) })
    }

    /// Its URL, from its "listening on" line.
    fn wait_ready(&mut self, log: &Path) -> anyhow::Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                bail!(
                    "mcp-host exited before it was ready ({status}); its log: {}",
                    crate::http::gateway::log_tail(log)
                );
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find_map(|line| line.split("listening on ").nth(1))
            {
                return Ok(url.trim().to_owned());
            }
            if Instant::now() >= deadline {
                bail!(
                    "mcp-host was not ready after {READY_TIMEOUT:?}; its log: {}",
                    crate::http::gateway::log_tail(log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, a bounded wait (then SIGKILL), and the run's processes still alive after it.
    fn stop(&mut self, marker: &str) -> anyhow::Result<usize> {
        let Some(mut child) = self.child.take() else {
            return Ok(0);
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mcp-host did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = crate::wait_for_leftovers(marker, Duration::from_secs(5));
        procs::kill(&left);
        Ok(left.len())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Markdown table: medians over the repetitions, and ratios to "alone".
fn table(
    samples: &[Sample],
    reps: usize,
    calls: usize,
    load_before: &str,
    took: Duration,
) -> String {
    let median = |condition: Condition, pick: fn(&Sample) -> f64| -> f64 {
        let mut values: Vec<f64> = samples
            .iter()
            .filter(|sample| sample.condition == condition)
            .map(pick)
            .collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let alone_p50 = median(Condition::Alone, |s| s.p50_us);
    let alone_p99 = median(Condition::Alone, |s| s.p99_us);
    let mut out = format!(
        "# A client over its quota (issue #15)\n\n\
         The quiet client's sequential `tools/call` through `mcp-host serve --http` (raw keep-alive HTTP client), \
         {calls} calls per measurement, medians of {reps} repetitions; load average {load_before} at the start, \
         {} at the end; {:.0} s in all.\n\n\
         | while | quiet p50 (µs) | p99 (µs) | p50 / alone | p99 / alone | the other client's calls/s (answered, refused) |\n\
         |---|---|---|---|---|---|\n",
        crate::load_average(),
        took.as_secs_f64()
    );
    let ratio = |value: f64, base: f64| if base > 0.0 { value / base } else { 0.0 };
    for condition in Condition::ALL {
        let p50 = median(condition, |s| s.p50_us);
        let p99 = median(condition, |s| s.p99_us);
        let other = if condition == Condition::Alone {
            "–".to_owned()
        } else {
            let rate = median(condition, |s| s.other.per_second);
            let answered: u64 = samples
                .iter()
                .filter(|s| s.condition == condition)
                .map(|s| s.other.answered)
                .sum();
            let refused: u64 = samples
                .iter()
                .filter(|s| s.condition == condition)
                .map(|s| s.other.refused)
                .sum();
            format!("{rate:.0} ({answered} answered, {refused} refused in all)")
        };
        out.push_str(&format!(
            "| {} | {p50:.1} | {p99:.1} | {:.2} | {:.2} | {other} |\n",
            condition.describe(),
            ratio(p50, alone_p50),
            ratio(p99, alone_p99),
        ));
    }
    out
}
