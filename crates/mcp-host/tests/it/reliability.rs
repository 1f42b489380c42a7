//! Faults at the host level: crash loops with restart, shutdown while clients still start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_host::{ClientState, McpHost};
use mcp_host_foundation::{ClientConfig, RestartPolicy};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};

use crate::{eventually, fake_client, id, PROMPTLY};

#[tokio::test]
async fn crash_loop_backs_off_and_gives_up() {
    let marker = unique_marker();
    let dies_soon = FakeConfig {
        exit_after_ms: Some(50),
        ..FakeConfig::default()
    };
    let config = ClientConfig {
        restart: RestartPolicy {
            max_restarts: 3,
            initial_backoff_ms: 20,
            max_backoff_ms: 1_000,
        },
        ..fake_client("looping", &dies_soon, &marker)
    };
    let host = McpHost::new(vec![config]).unwrap();
    let mut events = host.subscribe_status();
    host.initialize().await.unwrap();
    let started = Instant::now();
    eventually("gave up after 3 restarts", || {
        host.status()
            .iter()
            .any(|client| client.state == ClientState::Exited && client.restarts == 3)
    })
    .await;
    // Backoffs of 20, 40 and 80 ms on top of three 50 ms lifetimes.
    assert!(started.elapsed() >= Duration::from_millis(20 + 40 + 80));
    let mut n_restarting = 0;
    while let Ok(event) = events.try_recv() {
        if event.client == id("looping") && event.state == ClientState::Restarting {
            n_restarting += 1;
        }
    }
    assert_eq!(n_restarting, 3);
    let status = host.status();
    let looping = &status[0];
    assert!(
        looping.exit.as_deref().unwrap().contains("exit status: 7"),
        "{looping:?}"
    );
    assert!(
        looping.stderr_tail.contains("exiting on schedule"),
        "{looping:?}"
    );
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_clients_are_still_starting() {
    let marker = unique_marker();
    let slow = FakeConfig {
        init_delay_ms: 30_000,
        ..FakeConfig::default()
    };
    let configs = (0..3)
        .map(|idx| fake_client(&format!("slow{idx}"), &slow, &marker))
        .collect();
    let host = Arc::new(McpHost::new(configs).unwrap());
    let mut starting = tokio::task::JoinSet::new();
    {
        let host = host.clone();
        starting.spawn(async move { host.initialize().await });
    }
    eventually("all three spawned", || {
        mcp_host_testkit::pids_with_marker(&marker).len() == 3
    })
    .await;
    let started = Instant::now();
    let report = tokio::time::timeout(PROMPTLY, host.shutdown())
        .await
        .unwrap();
    assert!(report.killed.is_empty(), "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The clients that were starting report that they were stopped.
    let initialized = tokio::time::timeout(PROMPTLY, starting.join_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let report = initialized.unwrap();
    assert!(report.ready.is_empty());
    assert_eq!(report.failed.len(), 3);
    assert_no_process_left(&marker).await;
}
