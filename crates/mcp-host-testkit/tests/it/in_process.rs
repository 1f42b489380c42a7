//! Tests of the in-process fake: lists, pagination, cancellation, server-to-client requests, crashes.

use serde_json::{json, Value};
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use mcp_host_testkit::{spawn_in_process, Exit, FakeConfig, InProcessFake};

use crate::client::{text, Client};

type InProcessClient = Client<DuplexStream, DuplexStream>;

/// The control side of an in-process fake whose pipes belong to a `Client`.
struct Control {
    stop: CancellationToken,
    exit: oneshot::Receiver<std::io::Result<Exit>>,
}

fn start(config: FakeConfig, tracker: &TaskTracker) -> (InProcessClient, Control) {
    let InProcessFake {
        client_read,
        client_write,
        stop,
        exit,
    } = spawn_in_process(config, tracker);
    (
        Client::new(client_read, client_write),
        Control { stop, exit },
    )
}

/// Collects every page of `method`, returning the names (or uris) per page and the cursors used.
async fn list_pages(client: &mut InProcessClient, method: &str, field: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for request_idx in 0..20 {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let response = client
            .request(json!(100 + request_idx), method, params)
            .await;
        let result = &response["result"];
        let names = result[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect();
        pages.push(names);
        cursor = result
            .get("nextCursor")
            .map(|c| c.as_str().unwrap().to_owned());
        if cursor.is_none() {
            break;
        }
    }
    pages
}

#[track_caller]
fn check_pages(pages: &[Vec<String>], expect: &[&[&str]]) {
    let expect: Vec<Vec<String>> = expect
        .iter()
        .map(|page| page.iter().map(|name| name.to_string()).collect())
        .collect();
    assert_eq!(pages, expect);
}

#[tokio::test]
async fn tools_list_pagination() {
    let tracker = TaskTracker::new();
    let (mut client, _fake) = start(
        FakeConfig {
            page_size: 4,
            n_tools: 2,
            ..FakeConfig::default()
        },
        &tracker,
    );
    client.initialize().await;
    let pages = list_pages(&mut client, "tools/list", "tools").await;
    check_pages(
        &pages,
        &[
            &["echo", "add", "slow", "fail"],
            &["huge", "crash", "cancelled", "env"],
            &["ask_client", "touch", "tool_0", "tool_1"],
        ],
    );
    let pages = list_pages(&mut client, "prompts/list", "prompts").await;
    check_pages(&pages, &[&["greet"]]);

    let response = client
        .request(json!(1), "tools/list", json!({"cursor": "bogus"}))
        .await;
    assert_eq!(response["error"]["code"], -32602);

    client.close().await;
    assert!(client.recv().await.is_none());
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn tools_list_shape_and_repeat_cursor() {
    let tracker = TaskTracker::new();
    let (mut client, _fake) = start(
        FakeConfig {
            repeat_cursor: true,
            ..FakeConfig::default()
        },
        &tracker,
    );
    let result = client.initialize().await;
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(
        result["serverInfo"],
        json!({"name": "fake-server", "version": "0.1.0"})
    );
    for id in 1..=2 {
        let cursor = if id == 1 {
            json!({})
        } else {
            json!({"cursor": "again"})
        };
        let response = client.request(json!(id), "tools/list", cursor).await;
        let result = &response["result"];
        assert_eq!(result["nextCursor"], "again");
        let tools = result["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 13);
        assert_eq!(tools[0]["x-fake"], true);
        assert_eq!(tools[0]["inputSchema"]["type"], "object");
    }
    tracker.close();
}

#[tokio::test]
async fn cancelled_requests_are_reported_and_unanswered() {
    let tracker = TaskTracker::new();
    let (mut client, _fake) = start(FakeConfig::default(), &tracker);
    client.initialize().await;
    client
        .send(json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"ms": 60_000}, "_meta": {"progressToken": "p"}},
        }))
        .await;
    client
        .notify(
            "notifications/cancelled",
            json!({"requestId": 7, "reason": "test"}),
        )
        .await;
    client
        .notify(
            "notifications/cancelled",
            json!({"requestId": "never-sent"}),
        )
        .await;
    // A slow call must not block other requests.
    let result = client.call(8, "echo", json!({"text": "hi"})).await;
    assert_eq!(text(&result), "hi");
    let result = client.call(9, "cancelled", json!({})).await;
    let ids: Value = serde_json::from_str(text(&result)).unwrap();
    assert_eq!(ids, json!([7, "never-sent"]));
    assert!(
        client
            .others
            .iter()
            .all(|message| message.get("id") != Some(&json!(7))),
        "cancelled request was answered: {:?}",
        client.others
    );
    tracker.close();
}

#[tokio::test]
async fn slow_reports_progress() {
    let tracker = TaskTracker::new();
    let (mut client, _fake) = start(FakeConfig::default(), &tracker);
    client.initialize().await;
    let response = client
        .request(
            json!(1),
            "tools/call",
            json!({"name": "slow", "arguments": {"ms": 50}, "_meta": {"progressToken": "tok"}}),
        )
        .await;
    assert_eq!(response["result"]["isError"], false);
    let progress: Vec<&Value> = client
        .others
        .iter()
        .filter(|message| message["method"] == "notifications/progress")
        .map(|message| &message["params"]["progress"])
        .collect();
    assert_eq!(
        progress,
        [&json!(1), &json!(2), &json!(3), &json!(4), &json!(5)]
    );
    tracker.close();
}

#[tokio::test]
async fn ask_client_round_trip() {
    let tracker = TaskTracker::new();
    let (mut client, _fake) = start(FakeConfig::default(), &tracker);
    client.initialize().await;
    client
        .send(json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "ask_client", "arguments": {"method": "roots/list"}},
        }))
        .await;
    let request = client.recv().await.unwrap();
    assert_eq!(request["method"], "roots/list");
    assert_eq!(request["id"], "srv-1");
    client
        .send(json!({"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": []}}))
        .await;
    let response = client.response(&json!(1)).await;
    let answer: Value = serde_json::from_str(text(&response["result"])).unwrap();
    assert_eq!(answer["result"], json!({"roots": []}));
    tracker.close();
}

#[tokio::test]
async fn protocol_surface() {
    let tracker = TaskTracker::new();
    let (mut client, _fake) = start(
        FakeConfig {
            name: "named".to_owned(),
            ..FakeConfig::default()
        },
        &tracker,
    );
    client.initialize().await;
    let cases: &[(&str, Value, Value)] = &[
        ("ping", json!({}), json!({"result": {}})),
        ("no/such", json!({}), json!({"error": {"code": -32601}})),
        (
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
            json!({"result": {"structuredContent": {"sum": 5}}}),
        ),
        (
            "tools/call",
            json!({"name": "fail"}),
            json!({"result": {"isError": true}}),
        ),
        (
            "tools/call",
            json!({"name": "nope"}),
            json!({"error": {"code": -32602, "message": "unknown tool: nope"}}),
        ),
        (
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "Ann"}}),
            json!({"result": {"messages": [{"role": "user", "content": {"type": "text", "text": "Hello, Ann!"}}]}}),
        ),
        (
            "resources/read",
            json!({"uri": "mem://hello"}),
            json!({"result": {"contents": [{"uri": "mem://hello", "mimeType": "text/plain", "text": "hello from named"}]}}),
        ),
        (
            "resources/read",
            json!({"uri": "mem://item/42"}),
            json!({"result": {"contents": [{"uri": "mem://item/42", "mimeType": "text/plain", "text": "item 42"}]}}),
        ),
        (
            "resources/read",
            json!({"uri": "mem://nope"}),
            json!({"error": {"code": -32002}}),
        ),
    ];
    for (case_idx, (method, params, expect)) in cases.iter().enumerate() {
        let response = client
            .request(json!(case_idx), method, params.clone())
            .await;
        check_subset(&response, expect, &format!("{method} {params}"));
    }
    tracker.close();
}

/// Checks that every field of `expect` is present, with the same value, in `actual`.
#[track_caller]
fn check_subset(actual: &Value, expect: &Value, context: &str) {
    match (actual, expect) {
        (Value::Object(actual_map), Value::Object(expect_map)) => {
            for (key, expect_value) in expect_map {
                let actual_value = actual_map
                    .get(key)
                    .unwrap_or_else(|| panic!("{context}: missing {key} in {actual}"));
                check_subset(actual_value, expect_value, context);
            }
        }
        _ => assert_eq!(actual, expect, "{context}"),
    }
}

#[tokio::test]
async fn crash_tool_ends_the_server() {
    let tracker = TaskTracker::new();
    let (mut client, fake) = start(FakeConfig::default(), &tracker);
    client.initialize().await;
    client
        .send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash"}}),
        )
        .await;
    assert!(client.recv().await.is_none(), "expected EOF after crash");
    assert_eq!(fake.exit.await.unwrap().unwrap(), Exit::CrashTool);
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn stop_ends_an_eof_ignoring_server() {
    let tracker = TaskTracker::new();
    let (mut client, fake) = start(
        FakeConfig {
            ignore_eof: true,
            ..FakeConfig::default()
        },
        &tracker,
    );
    client.initialize().await;
    client.close().await;
    tracker.close();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(100), tracker.wait()).await;
    assert!(waited.is_err(), "server ended despite ignore_eof");
    fake.stop.cancel();
    tracker.wait().await;
    assert!(fake.exit.await.is_err());
}
