//! Remote servers (Streamable HTTP) in the host, next to local ones.

use mcp_host::{AgentScope, ClientState, McpHost};
use mcp_host_foundation::{ClientConfig, RestartPolicy};
use mcp_host_testkit::fake_http::{FakeHttpConfig, FakeHttpServer};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::json;

use crate::{args, echo, eventually, fake_client, id, tool_names, PROMPTLY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_remote_servers_share_one_host() {
    let marker = unique_marker();
    let remote = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let host = McpHost::new(vec![
        fake_client("local", &FakeConfig::default(), &marker),
        ClientConfig::remote("remote", remote.url()),
    ])
    .unwrap();
    let report = tokio::time::timeout(PROMPTLY, host.initialize())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.ready.len(), 2, "{report:?}");
    let names = tool_names(&host);
    assert!(names.contains(&"remote__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"remote__slow".to_owned()), "{names:?}");
    assert!(names.contains(&"local__echo".to_owned()), "{names:?}");
    echo(&host, "local", "near").await;
    echo(&host, "remote", "far").await;

    let status = host.status();
    let remote_status = status.iter().find(|s| s.id == id("remote")).unwrap();
    assert_eq!(remote_status.state, ClientState::Ready);
    assert_eq!(remote_status.pid, None);
    assert_eq!(
        remote_status.protocol_version.as_deref(),
        Some("2025-11-25")
    );

    let shutdown = tokio::time::timeout(PROMPTLY, host.shutdown())
        .await
        .unwrap();
    assert_eq!(shutdown.exits.len(), 2, "{shutdown:?}");
    assert_eq!(remote.log().deleted, ["session-1"]);
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_remote_server_is_reconnected_by_the_restart_policy() {
    let remote = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let config = ClientConfig {
        restart: RestartPolicy {
            max_restarts: 3,
            initial_backoff_ms: 20,
            max_backoff_ms: 200,
        },
        ..ClientConfig::remote("remote", remote.url())
    };
    let host = McpHost::new(vec![config]).unwrap();
    host.initialize().await.unwrap();
    echo(&host, "remote", "before").await;

    // The server restarts and forgets its sessions: the next request gets 404, the session is
    // lost, and the restart policy opens a new one.
    remote.forget_sessions();
    let lost = host
        .call_tool(
            "remote__echo",
            args(json!({"text": "lost"})),
            &AgentScope::all(),
        )
        .await;
    assert!(lost.is_err(), "{lost:?}");
    eventually("the client is back", || {
        host.status()
            .iter()
            .any(|client| client.state == ClientState::Ready && client.restarts == 1)
    })
    .await;
    echo(&host, "remote", "after").await;
    let sessions = remote.log().sessions;
    assert_eq!(
        sessions.len(),
        2,
        "a second HTTP session was opened: {sessions:?}"
    );
    let status = host.status();
    assert!(
        status[0]
            .exit
            .as_deref()
            .unwrap_or_default()
            .contains("disconnected")
            || status[0].stderr_tail.contains("404"),
        "{status:?}"
    );
    tokio::time::timeout(PROMPTLY, host.shutdown())
        .await
        .unwrap();
}
