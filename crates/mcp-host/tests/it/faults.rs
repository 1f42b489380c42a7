//! One client failing while others serve; calls in flight at shutdown; restarts.

use std::sync::Arc;

use mcp_host::{AgentScope, ClientState, Error, McpHost};
use mcp_host_foundation::{ClientConfig, RestartPolicy};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::json;
use tokio::task::JoinSet;

use crate::{args, echo, eventually, fake_client, id, tool_names, PROMPTLY};

#[tokio::test]
async fn one_crashing_client_does_not_disturb_the_others() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let host = McpHost::new(vec![
        fake_client("steady", &fake, &marker),
        fake_client("fragile", &fake, &marker),
    ])
    .unwrap();
    host.initialize().await.unwrap();
    let err = host
        .call_tool("fragile__crash", None, &AgentScope::all())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Call { client, .. } if client == "fragile"),
        "{err:?}"
    );
    eventually("fragile exited", || {
        host.status()
            .iter()
            .any(|client| client.id == id("fragile") && client.state == ClientState::Exited)
    })
    .await;
    let status = host.status();
    let fragile = status
        .iter()
        .find(|client| client.id == id("fragile"))
        .unwrap();
    assert!(
        fragile.exit.as_deref().unwrap().contains("exit status: 6"),
        "{fragile:?}"
    );
    assert!(
        fragile.stderr_tail.contains("crashing in tool crash"),
        "{fragile:?}"
    );
    assert!(fragile.last_error.is_some());
    assert_eq!(fragile.n_tools, 0);
    assert!(!tool_names(&host)
        .iter()
        .any(|name| name.starts_with("fragile__")));
    for round in 0..5 {
        echo(&host, "steady", &format!("round {round}")).await;
    }
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_end_with_shutting_down_when_the_client_stops() {
    let marker = unique_marker();
    let host =
        Arc::new(McpHost::new(vec![fake_client("busy", &FakeConfig::default(), &marker)]).unwrap());
    host.initialize().await.unwrap();
    let mut calls = JoinSet::new();
    for _ in 0..100 {
        let host = host.clone();
        calls.spawn(async move {
            host.call_tool(
                "busy__slow",
                args(json!({ "ms": 60_000 })),
                &AgentScope::all(),
            )
            .await
        });
    }
    let session = host.session(&id("busy")).unwrap().session;
    eventually("100 calls in flight", || session.n_pending() == 100).await;
    host.client_shutdown(&id("busy")).await.unwrap();
    let mut n_ended = 0;
    while let Some(joined) = tokio::time::timeout(PROMPTLY, calls.join_next())
        .await
        .unwrap()
    {
        let err = joined.unwrap().unwrap_err();
        let Error::Call { source, .. } = &err else {
            panic!("unexpected error {err:?}");
        };
        assert!(
            matches!(**source, mcp_session::Error::ShuttingDown { .. }),
            "{err:?}"
        );
        n_ended += 1;
    }
    assert_eq!(n_ended, 100);
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn restart_policy_brings_a_crashed_client_back() {
    let marker = unique_marker();
    let config = ClientConfig {
        restart: RestartPolicy {
            max_restarts: 2,
            initial_backoff_ms: 50,
            max_backoff_ms: 200,
        },
        ..fake_client("phoenix", &FakeConfig::default(), &marker)
    };
    let host = McpHost::new(vec![config]).unwrap();
    host.initialize().await.unwrap();
    for restart in 1..=2 {
        let _ = host
            .call_tool("phoenix__crash", None, &AgentScope::all())
            .await
            .unwrap_err();
        eventually("restarted and ready", || {
            host.status()
                .iter()
                .any(|client| client.state == ClientState::Ready && client.restarts == restart)
        })
        .await;
        echo(&host, "phoenix", "back again").await;
    }
    // The third crash exceeds the policy: the client stays down.
    let _ = host
        .call_tool("phoenix__crash", None, &AgentScope::all())
        .await
        .unwrap_err();
    eventually("given up", || {
        host.status()
            .iter()
            .any(|client| client.state == ClientState::Exited && client.restarts == 2)
    })
    .await;
    assert!(tool_names(&host).is_empty());
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
