//! A worker: one fresh process that measures one client kind and prints a `WorkerResult` as JSON.
//!
//! Running each client in its own process keeps them from sharing a runtime, an allocator's
//! state or page cache effects, and makes the resident memory figure mean something.
//! The runtime is tokio's multi-threaded one with its default worker count, as `#[tokio::main]`
//! gives an application; the measuring loop runs on the main thread through `block_on`.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::clients::{
    bounded, Client, HostClient, RawClient, RmcpClient, SessionClient, STEP_TIMEOUT,
};
use crate::spec::{ClientKind, Counts, Memory, Target, Task, Usage, WorkerResult, WorkerSpec};

/// The environment variable that selects the runtime flavour (`current-thread`; else multi-threaded).
pub(crate) const RUNTIME_VAR: &str = "MCP_HOST_BENCH_RUNTIME";

/// Bound on one whole sequential or throughput run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `spec` on a fresh runtime and returns what it measured.
pub(crate) fn run(spec: &WorkerSpec) -> anyhow::Result<WorkerResult> {
    // `MCP_HOST_BENCH_RUNTIME=current-thread` runs everything on one thread, to see what the
    // hand-offs between threads cost; the figures in BENCHMARKS.md use the default.
    let mut builder = match std::env::var(RUNTIME_VAR).as_deref() {
        Ok("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.enable_all().build().context("cannot start tokio")?;
    let result = runtime.block_on(async {
        match spec.client {
            ClientKind::Raw => run_task::<RawClient>(&spec.target, &spec.task).await,
            ClientKind::Rmcp => run_task::<RmcpClient>(&spec.target, &spec.task).await,
            ClientKind::Session => run_task::<SessionClient>(&spec.target, &spec.task).await,
            ClientKind::Host => run_task::<HostClient>(&spec.target, &spec.task).await,
        }
    });
    // Tasks still on the runtime (rmcp's kill-on-drop helpers, say) get a bounded moment to end.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Measures sequential calls only, for profilers: `n_calls` after `n_calls / 10` of warm-up.
pub(crate) fn profile(
    kind: ClientKind,
    target: &Target,
    n_calls: usize,
) -> anyhow::Result<WorkerResult> {
    let counts = Counts {
        startups: 0,
        seq_warmup: n_calls / 10,
        seq_calls: n_calls,
        throughput: Vec::new(),
        fleet_size: 0,
        fleet_rounds: 0,
    };
    run(&WorkerSpec {
        client: kind,
        target: target.clone(),
        task: Task::Suites(counts),
    })
}

async fn run_task<C: Client>(target: &Target, task: &Task) -> anyhow::Result<WorkerResult> {
    match task {
        Task::Suites(counts) => suites::<C>(target, counts).await,
        Task::Memory { n_servers } => memory::<C>(target, *n_servers).await,
    }
}

async fn suites<C: Client>(target: &Target, counts: &Counts) -> anyhow::Result<WorkerResult> {
    let mut result = WorkerResult::default();
    if counts.startups > 0 {
        // The first cycle warms the page cache and the allocator; it is not counted.
        for cycle_idx in 0..=counts.startups {
            let started = Instant::now();
            let client = C::start(target, 0).await?;
            let elapsed = started.elapsed();
            client.stop().await?;
            if cycle_idx > 0 {
                result.startup_ns.push(nanos(elapsed));
            }
        }
    }
    if counts.seq_calls > 0 {
        let mut client = C::start(target, 0).await?;
        let mut samples = Vec::with_capacity(counts.seq_calls);
        let outcome = bounded("sequential calls", RUN_TIMEOUT, async {
            for _ in 0..counts.seq_warmup {
                client.call().await?;
            }
            let before = usage()?;
            for _ in 0..counts.seq_calls {
                let started = Instant::now();
                client.call().await?;
                samples.push(nanos(started.elapsed()));
            }
            let after = usage()?;
            Ok(after.since(&before, counts.seq_calls))
        })
        .await;
        client.stop().await?;
        result.seq_usage = Some(outcome?);
        result.seq_ns = samples;
    }
    if !counts.throughput.is_empty() {
        let mut client = C::start(target, 0).await?;
        let mut rates = Vec::new();
        let mut usages = Vec::new();
        let outcome = bounded("throughput", RUN_TIMEOUT, async {
            for &(in_flight, total) in &counts.throughput {
                client.call_many(in_flight, in_flight * 4).await?;
                let before = usage()?;
                let started = Instant::now();
                client.call_many(in_flight, total).await?;
                let seconds = started.elapsed().as_secs_f64();
                let after = usage()?;
                rates.push((in_flight, total as f64 / seconds.max(1e-9)));
                usages.push((in_flight, after.since(&before, total)));
            }
            Ok(())
        })
        .await;
        client.stop().await?;
        outcome?;
        result.throughput = rates;
        result.throughput_usage = usages;
    }
    if counts.fleet_size > 0 {
        for round_idx in 0..=counts.fleet_rounds {
            let started = Instant::now();
            let fleet = bounded(
                "fleet start",
                STEP_TIMEOUT,
                C::start_fleet(target, counts.fleet_size),
            )
            .await?;
            let start_elapsed = started.elapsed();
            let stopping = Instant::now();
            bounded("fleet stop", STEP_TIMEOUT, C::stop_fleet(fleet)).await?;
            let stop_elapsed = stopping.elapsed();
            if round_idx > 0 {
                result.fleet_start_ns.push(nanos(start_elapsed));
                result.fleet_stop_ns.push(nanos(stop_elapsed));
            }
        }
    }
    Ok(result)
}

async fn memory<C: Client>(target: &Target, n_servers: usize) -> anyhow::Result<WorkerResult> {
    // One server first, so that code pages and lazily built state are counted before, not per server.
    let mut fleet = bounded("fleet start", STEP_TIMEOUT, C::start_fleet(target, 1)).await?;
    settle().await;
    let before_kib = resident_kib()?;
    let grown = bounded(
        "fleet grow",
        STEP_TIMEOUT,
        C::grow_fleet(&mut fleet, target, n_servers),
    )
    .await;
    settle().await;
    let after_kib = resident_kib();
    bounded("fleet stop", STEP_TIMEOUT, C::stop_fleet(fleet)).await?;
    grown?;
    Ok(WorkerResult {
        memory: Some(Memory {
            before_kib,
            after_kib: after_kib?,
            n_servers,
        }),
        ..WorkerResult::default()
    })
}

/// Lets background tasks (stderr drains, drivers) reach their idle state before a reading.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
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

/// CPU time and context switches of this whole process (every thread) so far.
pub(crate) fn usage() -> anyhow::Result<Usage> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).context("getrusage")?;
    let micros = |time: nix::sys::time::TimeVal| {
        u64::try_from(time.tv_sec()).unwrap_or(0) * 1_000_000
            + u64::try_from(time.tv_usec()).unwrap_or(0)
    };
    let switches = usage.voluntary_context_switches() + usage.involuntary_context_switches();
    Ok(Usage {
        cpu_ns: (micros(usage.user_time()) + micros(usage.system_time())) * 1000,
        context_switches: u64::try_from(switches).unwrap_or(0),
        n_calls: 0,
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
