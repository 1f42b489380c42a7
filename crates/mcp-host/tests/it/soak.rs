//! Soak / chaos: many servers (local processes and remote HTTP ones), many callers, servers
//! killed (or, remote, restarted so that they forget their sessions) at random; nothing lost,
//! nothing left.
//!
//! Runs for `MCP_HOST_SOAK_SECONDS` (default 5, the short form in `cargo xtask ci`);
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

/// It measures the resident memory of the whole process, so it runs in a process of its own.
#[test]
fn soak_with_random_kills() {
    let seconds: u64 = std::env::var("MCP_HOST_SOAK_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
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
    let mut configs: Vec<ClientConfig> = (0..N_SERVERS)
        .map(|idx| ClientConfig {
            shutdown_grace_ms: 500,
            call_timeout_ms: 10_000,
            restart: restart.clone(),
            ..crate::fake_client(&format!("s{idx}"), &FakeConfig::default(), &marker)
        })
        .collect();
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
    let host = Arc::new(McpHost::new(configs).unwrap());
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

    // Warm-up without chaos, then measure.
    let mut warmup = run_callers(Duration::from_secs(1), 1);
    while warmup.join_next().await.is_some() {}
    let rss_after_warmup = mcp_host_testkit::rss_kib();

    let mut callers = run_callers(Duration::from_secs(seconds), 99);
    let mut chaos_rng = Rng(0x5eed);
    let mut n_kills = 0u64;
    let mut n_remote_restarts = 0u64;
    let chaos_until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < chaos_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let rss_at_end = mcp_host_testkit::rss_kib();
    let report = host.shutdown().await;
    assert_no_process_left(&marker).await;
    for remote in remotes {
        remote.stop().await;
    }

    let issued = tally.issued.load(Ordering::Relaxed);
    let ok = tally.ok.load(Ordering::Relaxed);
    let typed_errors = tally.typed_errors.load(Ordering::Relaxed);
    let lost = tally.timed_out_in_test.load(Ordering::Relaxed);
    eprintln!(
        "soak: {seconds} s, {N_SERVERS} local + {N_REMOTE} remote servers, {N_CALLERS} callers, \
         {n_kills} kills, {n_remote_restarts} remote restarts; \
         calls issued {issued} = ok {ok} + typed errors {typed_errors} + lost {lost}; \
         processes left 0; RSS after warm-up {rss_after_warmup} KiB, at end {rss_at_end} KiB; \
         {} exits reported, {} killed at shutdown",
        report.exits.len(),
        report.killed.len()
    );
    assert_eq!(lost, 0, "calls that never ended");
    assert_eq!(issued, ok + typed_errors);
    assert!(ok > 0);
    assert!(n_kills > 0);
    assert!(
        rss_at_end <= rss_after_warmup + 32 * 1024,
        "RSS grew from {rss_after_warmup} KiB to {rss_at_end} KiB"
    );
}
