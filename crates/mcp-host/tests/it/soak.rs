//! Soak / chaos: many servers (local processes and remote HTTP ones), many callers, servers
//! killed (or, remote, restarted so that they forget their sessions) at random, and the
//! configuration reloaded with a server of a new id each time; nothing lost, nothing left,
//! nothing kept.
//!
//! Runs for `MCP_HOST_SOAK_SECONDS` (default 30, the form in `cargo xtask ci`: about 650 kills,
//! 180 remote restarts, 25 reloads and 27,000 calls, so that a leak of 600 bytes per restart or
//! 20 bytes per call fails it; the issue #13 soak lost 1.3 MiB of heap in it before its fix);
//! `cargo xtask soak --minutes N` runs the long form.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_host::{AgentScope, McpHost};
use mcp_host_foundation::{ClientConfig, RestartPolicy};
use mcp_host_testkit::fake_http::{FakeHttpConfig, FakeHttpServer};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use mcp_session::RequestOptions;
use serde_json::json;
use tokio::task::JoinSet;

use crate::{args, PROMPTLY};

const N_SERVERS: usize = 20;
/// Remote servers (the testkit's fake Streamable HTTP server), named `r0`, `r1`, ….
const N_REMOTE: usize = 4;
const N_CALLERS: usize = 8;
/// How often a server is killed (or, remote, restarted).
const CHAOS_TICK: Duration = Duration::from_millis(25);
/// Every this many ticks, the configuration is reloaded with a new extra server.
const RELOAD_EVERY: u64 = 40;
/// How much the bytes allocated and not freed may grow from the warm-up to the end.
const MAX_HEAP_GROWTH_KIB: i64 = 512;
/// How much the resident size may grow (the heap, plus what the allocator keeps).
const MAX_RSS_GROWTH_KIB: u64 = 8 * 1024;

/// A small deterministic generator (xorshift), so no randomness crate is needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default)]
struct Tally {
    issued: AtomicU64,
    ok: AtomicU64,
    typed_errors: AtomicU64,
    timed_out_in_test: AtomicU64,
}

/// What the process holds: the live heap and the resident size, in KiB.
#[derive(Clone, Copy, Debug)]
struct Memory {
    heap_kib: u64,
    rss_kib: u64,
}

/// Waits until every client is ready (a killed one restarts within its backoff), so that two
/// measurements see the same sessions open.
async fn all_ready(host: &McpHost) {
    crate::eventually("every client ready", || {
        host.status()
            .iter()
            .all(|status| status.state == mcp_host::ClientState::Ready)
    })
    .await;
}

fn memory() -> Memory {
    Memory {
        heap_kib: crate::heap::live_kib(),
        rss_kib: mcp_host_testkit::rss_kib(),
    }
}

/// It measures the heap and resident memory of the whole process, so it runs in a process of its
/// own.
#[test]
fn soak_with_random_kills() {
    let seconds: u64 = std::env::var("MCP_HOST_SOAK_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(30);
    mcp_host_testkit::in_own_process_within(
        "soak::soak_with_random_kills",
        Duration::from_secs(seconds + 300),
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(soak_with_random_kills_alone(seconds));
        },
    );
}

#[allow(clippy::print_stderr)] // The soak figures are the point of the run.
async fn soak_with_random_kills_alone(seconds: u64) {
    let marker = unique_marker();
    let restart = RestartPolicy {
        max_restarts: u32::MAX,
        initial_backoff_ms: 10,
        max_backoff_ms: 200,
    };
    let local = |id: String| ClientConfig {
        shutdown_grace_ms: 500,
        call_timeout_ms: 10_000,
        restart: restart.clone(),
        ..crate::fake_client(&id, &FakeConfig::default(), &marker)
    };
    let mut configs: Vec<ClientConfig> =
        (0..N_SERVERS).map(|idx| local(format!("s{idx}"))).collect();
    let mut remotes = Vec::new();
    for idx in 0..N_REMOTE {
        let remote = FakeHttpServer::start(FakeHttpConfig::default())
            .await
            .unwrap();
        configs.push(ClientConfig {
            call_timeout_ms: 10_000,
            restart: restart.clone(),
            ..ClientConfig::remote(format!("r{idx}"), remote.url())
        });
        remotes.push(remote);
    }
    let host = Arc::new(McpHost::new(configs.clone()).unwrap());
    host.initialize().await.unwrap();
    let tally = Arc::new(Tally::default());

    let run_callers = |duration: Duration, seed: u64| {
        let mut callers = JoinSet::new();
        for caller_idx in 0..N_CALLERS {
            let host = host.clone();
            let tally = tally.clone();
            callers.spawn(async move {
                let mut rng = Rng(seed + caller_idx as u64 * 7919 + 1);
                let scope = AgentScope::all();
                let options = RequestOptions::with_timeout(Duration::from_secs(10));
                let until = Instant::now() + duration;
                while Instant::now() < until {
                    let server = rng.below(N_SERVERS + N_REMOTE);
                    let delay_ms = rng.below(20);
                    let name = if server < N_SERVERS {
                        format!("s{server}__echo")
                    } else {
                        format!("r{}__echo", server - N_SERVERS)
                    };
                    let text = format!("{caller_idx}-{}", rng.next());
                    tally.issued.fetch_add(1, Ordering::Relaxed);
                    let call = host.call_tool_with(
                        &name,
                        args(json!({ "text": text, "delay_ms": delay_ms })),
                        &scope,
                        &options,
                    );
                    match tokio::time::timeout(PROMPTLY, call).await {
                        Ok(Ok(result)) => {
                            assert_eq!(result.text(), text, "a reply went to the wrong caller");
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(_)) => {
                            tally.typed_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            tally.timed_out_in_test.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        callers
    };
    // The fake HTTP servers live in this process: their records are dropped as they come, so
    // that only the host's memory is measured.
    let drain_remote_logs = || {
        for remote in &remotes {
            remote.take_log();
        }
    };

    // Warm-up without chaos, with one reload, then measure.
    let mut warmup = run_callers(Duration::from_secs(2), 1);
    let mut extra = 0u64;
    let reload = |extra: u64| {
        let mut wanted = configs.clone();
        wanted.push(local(format!("extra{extra}")));
        let host = host.clone();
        async move { host.apply(wanted).await.unwrap() }
    };
    reload(extra).await;
    while warmup.join_next().await.is_some() {}
    all_ready(&host).await;
    drain_remote_logs();
    let after_warmup = memory();

    let mut callers = run_callers(Duration::from_secs(seconds), 99);
    let mut chaos_rng = Rng(0x5eed);
    let mut n_kills = 0u64;
    let mut n_remote_restarts = 0u64;
    let mut n_reloads = 0u64;
    let mut n_failed_starts = 0usize;
    let mut tick = 0u64;
    let chaos_until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < chaos_until {
        tokio::time::sleep(CHAOS_TICK).await;
        tick += 1;
        drain_remote_logs();
        if tick % RELOAD_EVERY == 0 {
            // The previous extra server is removed, a new one (a new id) added.
            extra += 1;
            let report = reload(extra).await;
            assert_eq!(report.added.len() + report.failed.len(), 1, "{report:?}");
            assert_eq!(report.removed.len(), 1, "{report:?}");
            n_failed_starts += report.failed.len();
            n_reloads += 1;
            continue;
        }
        let victim = chaos_rng.below(N_SERVERS + N_REMOTE);
        if victim >= N_SERVERS {
            // A remote server "restarts": it forgets its sessions (404 from then on).
            remotes[victim - N_SERVERS].forget_sessions();
            n_remote_restarts += 1;
            continue;
        }
        let victim = mcp_host_foundation::ClientId::new(&format!("s{victim}")).unwrap();
        if let Some(session) = host.session(&victim) {
            if session.killer.as_ref().is_some_and(|killer| killer.kill()) {
                n_kills += 1;
            }
        }
    }
    while let Some(joined) = tokio::time::timeout(PROMPTLY, callers.join_next())
        .await
        .unwrap()
    {
        joined.unwrap();
    }
    all_ready(&host).await;
    drain_remote_logs();
    let at_end = memory();
    let n_status = host.status().len();
    let n_clients = host.clients().len();
    let n_stats = host.call_stats().len();
    let report = host.shutdown().await;
    assert_no_process_left(&marker).await;
    for remote in remotes {
        remote.stop().await;
    }

    let issued = tally.issued.load(Ordering::Relaxed);
    let ok = tally.ok.load(Ordering::Relaxed);
    let typed_errors = tally.typed_errors.load(Ordering::Relaxed);
    let lost = tally.timed_out_in_test.load(Ordering::Relaxed);
    let n_restarts = n_kills + n_remote_restarts + 2 * n_reloads;
    let heap_growth = at_end.heap_kib as i64 - after_warmup.heap_kib as i64;
    eprintln!(
        "soak: {seconds} s, {N_SERVERS} local + {N_REMOTE} remote servers, {N_CALLERS} callers, \
         {n_kills} kills, {n_remote_restarts} remote restarts, {n_reloads} reloads \
         ({n_failed_starts} failed starts); \
         calls issued {issued} = ok {ok} + typed errors {typed_errors} + lost {lost}; \
         processes left 0; after warm-up: heap {} KiB, RSS {} KiB; at end: heap {} KiB, \
         RSS {} KiB ({:.0} bytes of heap per kill, restart or reload); \
         {n_clients} clients, {n_status} status records, {n_stats} tool statistics; \
         {} exits reported, {} killed at shutdown",
        after_warmup.heap_kib,
        after_warmup.rss_kib,
        at_end.heap_kib,
        at_end.rss_kib,
        heap_growth.max(0) as f64 * 1024.0 / n_restarts.max(1) as f64,
        report.exits.len(),
        report.killed.len()
    );
    assert_eq!(lost, 0, "calls that never ended");
    assert_eq!(issued, ok + typed_errors);
    assert!(ok > 0);
    assert!(n_kills > 0 && n_remote_restarts > 0 && n_reloads > 0);
    // Every id the host ever saw is forgotten once removed: 24 servers and the current extra.
    assert_eq!(n_clients, N_SERVERS + N_REMOTE + 1);
    assert_eq!(n_status, N_SERVERS + N_REMOTE + 1);
    assert!(
        heap_growth <= MAX_HEAP_GROWTH_KIB,
        "the heap grew from {} KiB to {} KiB",
        after_warmup.heap_kib,
        at_end.heap_kib
    );
    assert!(
        at_end.rss_kib <= after_warmup.rss_kib + MAX_RSS_GROWTH_KIB,
        "RSS grew from {} KiB to {} KiB",
        after_warmup.rss_kib,
        at_end.rss_kib
    );
}
