//! Live reconfiguration of `mcp-host serve`: the configuration file is watched (and reloaded on
//! SIGHUP), changes are applied by server id, and an invalid file changes nothing.

use std::path::Path;

use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::gateway::signal;
use crate::http_gateway::{
    open_stream, parse_events, read_events, request, start_http_gateway, HttpGateway,
};
use crate::{fake_entry, PROMPTLY};

/// Replaces the file the way editors save: write a new file, then rename it over the old one.
fn save_by_rename(path: &Path, config: &Value) {
    let staging = path.with_extension("json.tmp");
    std::fs::write(&staging, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

async fn tool_names(gateway: &HttpGateway, session: &str, id: u64) -> Vec<String> {
    let events = read_events(
        gateway
            .post(Some(session), &request(id, "tools/list", json!({})), &[])
            .await,
    )
    .await;
    events[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the gateway's stderr contains `text`.
async fn wait_for_log(gateway: &HttpGateway, text: &str) {
    let found = tokio::time::timeout(PROMPTLY, async {
        loop {
            if gateway.stderr.lock().unwrap().contains(text) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no `{text}` in the gateway's log:\n{}",
        gateway.stderr.lock().unwrap()
    );
}

fn is_tools_changed(event: &Value) -> bool {
    event["method"] == "notifications/tools/list_changed"
}

/// Reads a session's GET stream to its end in a task, passing each message on as it comes;
/// the task returns them all.
fn collect_stream(
    mut stream: reqwest::Response,
    tasks: &mut JoinSet<Vec<Value>>,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tasks.spawn(async move {
        let mut text = String::new();
        let mut n_parsed = 0;
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
            let events = parse_events(complete);
            for event in &events[n_parsed..] {
                let _ = sender.send(event.clone());
            }
            n_parsed = events.len();
        }
        parse_events(&text)
    });
    receiver
}

/// Waits for the next tools/list_changed among `events`.
async fn next_tools_changed(events: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) {
    tokio::time::timeout(PROMPTLY, async {
        while let Some(event) = events.recv().await {
            if is_tools_changed(&event) {
                return;
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("no tools/list_changed came");
}

/// A saved file is applied: the removed server stops, the new one starts, the unchanged one
/// keeps serving the call it has in flight, and an open session hears of it once.
#[tokio::test]
async fn a_saved_configuration_is_applied_and_each_session_hears_once() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let config = json!({ "mcpServers": {
        "a": fake_entry(&fake, &marker),
        "b": fake_entry(&fake, &marker),
    }});
    let gateway = start_http_gateway(&config, &[], &[]).await;
    let session = gateway.initialize(&[]).await;
    let mut collector = JoinSet::new();
    let mut events = collect_stream(open_stream(&gateway, &session).await, &mut collector);
    let before = tool_names(&gateway, &session, 2).await;
    assert!(before.contains(&"b__echo".to_owned()), "{before:?}");

    // A call in flight on the server that stays.
    let mut in_flight = JoinSet::new();
    let slow_call = request(
        3,
        "tools/call",
        json!({ "name": "a__slow", "arguments": { "ms": 1500 } }),
    );
    let slow = gateway.post(Some(&session), &slow_call, &[]).await;
    in_flight.spawn(read_events(slow));

    save_by_rename(
        &gateway.config_path,
        &json!({ "mcpServers": {
            "a": fake_entry(&fake, &marker),
            "c": fake_entry(&fake, &marker),
        }}),
    );
    next_tools_changed(&mut events).await;
    let after = tool_names(&gateway, &session, 4).await;
    assert!(after.contains(&"a__echo".to_owned()), "{after:?}");
    assert!(after.contains(&"c__echo".to_owned()), "{after:?}");
    assert!(
        !after.iter().any(|name| name.starts_with("b__")),
        "{after:?}"
    );

    let answer = in_flight.join_next().await.unwrap().unwrap();
    assert_eq!(answer[0]["id"], 3);
    assert_eq!(answer[0]["result"]["isError"], false, "{answer:?}");

    // A later, real change of the list is one more notification.
    let touched = gateway
        .post(
            Some(&session),
            &request(5, "tools/call", json!({ "name": "c__touch" })),
            &[],
        )
        .await;
    read_events(touched).await;
    next_tools_changed(&mut events).await;
    gateway.terminate().await;
    // The stream ended with the gateway: the reload was one tools/list_changed, the touch one.
    let all = collector.join_next().await.unwrap().unwrap();
    let n_tools_changed = all.iter().filter(|event| is_tools_changed(event)).count();
    assert_eq!(n_tools_changed, 2, "{all:?}");
    assert_no_process_left(&marker).await;
}

/// An invalid file changes nothing and is reported once, naming the file, the field and the
/// reason; a program that does not exist is refused the same way; a file that disappears is
/// reported and, once back, applied.
#[tokio::test]
async fn an_invalid_or_missing_file_changes_nothing() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let good = json!({ "mcpServers": { "a": fake_entry(&fake, &marker) } });
    let gateway = start_http_gateway(&good, &[], &[]).await;
    let session = gateway.initialize(&[]).await;
    let path = gateway.config_path.clone();
    let file = path.display().to_string();

    let mut bad_field = good.clone();
    bad_field["mcpServers"]["a"]["startupTimeoutMs"] = json!("soon");
    bad_field["mcpServers"]["b"] = fake_entry(&fake, &marker);
    save_by_rename(&path, &bad_field);
    wait_for_log(&gateway, "`mcpServers.a.startupTimeoutMs`").await;
    let log = gateway.stderr.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|line| line.contains("`mcpServers.a.startupTimeoutMs`"))
        .unwrap();
    assert!(line.contains("ERROR") && line.contains(&file), "{line}");
    assert!(line.contains("keeps the configuration it runs"), "{line}");
    assert_eq!(
        tool_names(&gateway, &session, 2)
            .await
            .iter()
            .filter(|n| n.starts_with("b__"))
            .count(),
        0
    );

    let mut unknown_program = good.clone();
    unknown_program["mcpServers"]["b"] = json!({ "command": "/nonexistent/mcp-server" });
    save_by_rename(&path, &unknown_program);
    wait_for_log(
        &gateway,
        "`mcpServers.b.command`: no program `/nonexistent/mcp-server`",
    )
    .await;

    std::fs::remove_file(&path).unwrap();
    wait_for_log(&gateway, "cannot read the configuration file").await;
    assert!(tool_names(&gateway, &session, 3)
        .await
        .contains(&"a__echo".to_owned()));

    // Something unreadable where the file was (a directory: the tests run as root, whom file
    // modes do not stop): nothing changes either.
    std::fs::create_dir(&path).unwrap();
    let unreadable = tokio::time::timeout(PROMPTLY, async {
        loop {
            let log = gateway.stderr.lock().unwrap().clone();
            if log.matches("cannot read the configuration file").count() >= 2 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(unreadable.is_ok(), "{}", gateway.stderr.lock().unwrap());
    assert!(tool_names(&gateway, &session, 4)
        .await
        .contains(&"a__echo".to_owned()));
    std::fs::remove_dir(&path).unwrap();

    let mut with_b = good.clone();
    with_b["mcpServers"]["b"] = fake_entry(&fake, &marker);
    save_by_rename(&path, &with_b);
    let added = tokio::time::timeout(PROMPTLY, async {
        let mut id = 10;
        loop {
            id += 1;
            if tool_names(&gateway, &session, id)
                .await
                .contains(&"b__echo".to_owned())
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(added.is_ok(), "{}", gateway.stderr.lock().unwrap());
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

/// SIGHUP reloads even an unchanged file, so a server that failed is tried again; a storm of
/// writes ends in the last configuration, with a handful of reloads, and the gateway serving.
#[tokio::test]
async fn sighup_and_a_storm_of_writes() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let broken = FakeConfig {
        crash_at_init: true,
        ..FakeConfig::default()
    };
    let config = json!({ "mcpServers": {
        "a": fake_entry(&fake, &marker),
        "broken": fake_entry(&broken, &marker),
    }});
    let gateway = start_http_gateway(&config, &["--log-level", "info"], &[]).await;
    let session = gateway.initialize(&[]).await;
    let n_failures = || {
        gateway
            .stderr
            .lock()
            .unwrap()
            .matches("server failed to start on reload")
            .count()
    };
    assert_eq!(n_failures(), 0);
    signal(gateway.child.id().unwrap(), "HUP").await;
    wait_for_log(&gateway, "server failed to start on reload").await;

    // 100 writes in about a second, alternating, ending with `a` and `c`.
    let path = gateway.config_path.clone();
    let with_c = json!({ "mcpServers": {
        "a": fake_entry(&fake, &marker),
        "c": fake_entry(&fake, &marker),
    }});
    for write_idx in 0..100 {
        let config = if write_idx % 2 == 0 { &config } else { &with_c };
        save_by_rename(&path, config);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let settled = tokio::time::timeout(PROMPTLY, async {
        let mut id = 10;
        loop {
            id += 1;
            let names = tool_names(&gateway, &session, id).await;
            if names.contains(&"c__echo".to_owned()) {
                return names;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the last configuration was not applied");
    assert!(settled.contains(&"a__echo".to_owned()), "{settled:?}");
    let n_reloads = || {
        gateway
            .stderr
            .lock()
            .unwrap()
            .matches("configuration reloaded")
            .count()
    };
    // The reload that added `c` logs its line once its servers are registered, so `c__echo`
    // can be listed a moment before the line reaches us: wait for it (SIGHUP's reload and at
    // least one of the storm).
    let logged = tokio::time::timeout(PROMPTLY, async {
        while n_reloads() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(logged.is_ok(), "{} reloads", n_reloads());
    // Debounced: 100 writes are a few reloads (the storm may be split where a reload ran).
    let n_reloads = n_reloads();
    assert!((2..=10).contains(&n_reloads), "{n_reloads} reloads");
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

/// A server that crashes and comes back through its restart policy: open sessions hear that its
/// tools went and that they came back (the gap ToolHive users hit: stacklok/toolhive#5786).
#[tokio::test]
async fn open_sessions_hear_when_a_crashed_server_comes_back() {
    let marker = unique_marker();
    let mut flaky = fake_entry(&FakeConfig::default(), &marker);
    flaky["restart"] = json!({ "maxRestarts": 3, "initialBackoffMs": 50 });
    let config = json!({ "mcpServers": { "flaky": flaky } });
    let gateway = start_http_gateway(&config, &[], &[]).await;
    let session = gateway.initialize(&[]).await;
    let mut collector = JoinSet::new();
    let mut events = collect_stream(open_stream(&gateway, &session).await, &mut collector);

    let crashed = gateway
        .post(
            Some(&session),
            &request(2, "tools/call", json!({ "name": "flaky__crash" })),
            &[],
        )
        .await;
    read_events(crashed).await;
    // Gone...
    next_tools_changed(&mut events).await;
    // ...and back.
    next_tools_changed(&mut events).await;
    assert!(tool_names(&gateway, &session, 3)
        .await
        .contains(&"flaky__echo".to_owned()));
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}
