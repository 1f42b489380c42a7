//! Call statistics: every routed `tools/call` is counted by outcome, with its latency.

use std::time::Duration;

use mcp_host::{AgentScope, CallOutcome, McpHost};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use mcp_session::RequestOptions;

use crate::{args, fake_client, id};

fn finished(host: &McpHost, tool: &str, outcome: CallOutcome) -> u64 {
    let idx = CallOutcome::ALL.iter().position(|o| *o == outcome).unwrap();
    host.call_stats()
        .iter()
        .find(|stats| stats.tool == tool)
        .map_or(0, |stats| stats.finished[idx])
}

#[tokio::test]
async fn calls_are_counted_by_outcome() {
    let marker = unique_marker();
    let host = McpHost::new(vec![fake_client("s", &FakeConfig::default(), &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();

    host.call_tool("s__echo", args(serde_json::json!({"text": "hi"})), &scope)
        .await
        .unwrap();
    let raw = host
        .call_tool_raw("s__fail", None, &scope, &RequestOptions::default())
        .await
        .unwrap();
    assert!(raw.get().contains("isError"));
    let error = host
        .call_tool("s__add", args(serde_json::json!({"a": "x"})), &scope)
        .await;
    let timeout = RequestOptions {
        timeout: Some(Duration::from_millis(50)),
        on_progress: None,
    };
    let timed_out = host
        .call_tool_with(
            "s__slow",
            args(serde_json::json!({"ms": 5000})),
            &scope,
            &timeout,
        )
        .await;
    assert!(timed_out.is_err());
    // A call whose caller gives up.
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        host.call_tool("s__slow", args(serde_json::json!({"ms": 5000})), &scope),
    )
    .await;
    assert!(dropped.is_err());
    // An unknown tool is not routed, so not counted (the label set stays bounded).
    assert!(host.call_tool("s__nope", None, &scope).await.is_err());

    assert_eq!(finished(&host, "echo", CallOutcome::Ok), 1);
    assert_eq!(finished(&host, "fail", CallOutcome::ToolError), 1);
    let add_outcome = if error.is_ok_and(|result| result.is_tool_error()) {
        CallOutcome::ToolError
    } else {
        CallOutcome::ProtocolError
    };
    assert_eq!(finished(&host, "add", add_outcome), 1);
    assert_eq!(finished(&host, "slow", CallOutcome::Timeout), 1);
    assert_eq!(finished(&host, "slow", CallOutcome::Cancelled), 1);
    let stats = host.call_stats();
    assert!(stats.iter().all(|stats| stats.in_flight == 0), "{stats:?}");
    assert!(!stats.iter().any(|stats| stats.tool == "nope"));
    let echo = stats.iter().find(|stats| stats.tool == "echo").unwrap();
    assert_eq!(echo.client, id("s"));
    assert_eq!(*echo.latency_buckets.last().unwrap(), 1);
    let recent = host.recent_latency(&id("s"));
    assert_eq!(recent.n_calls, 5);
    assert!(recent.p50_ms.unwrap() <= recent.p99_ms.unwrap());

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
