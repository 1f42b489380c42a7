//! Tool search mode (issue #18): clients whose `toolMode` is `search` see `find_tools` and
//! `call_tool` only, which search and call within their policy; a direct call of a real tool
//! still works; a reload that changes the mode reaches open sessions with `list_changed`.

use std::sync::Arc;

use mcp_gateway::config;
use mcp_gateway::policy::{GatewaySettings, Policies};
use mcp_gateway::AuditLog;
use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, unique_marker, FakeConfig,
};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::{call, fake, serve_with, session_id, Served, EVENT_STREAM, PROMPTLY};

const ALPHA: &str = "alpha-token-0123456789";
const BETA: &str = "beta-token-0123456789";

fn policies(gateway: Value) -> Policies {
    let settings: GatewaySettings = serde_json::from_value(gateway).unwrap();
    Policies::from_settings(&settings, |name| match name {
        "ALPHA_TOKEN" => Some(ALPHA.to_owned()),
        "BETA_TOKEN" => Some(BETA.to_owned()),
        _ => None,
    })
    .unwrap()
}

fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn tool_names(listing: &Value) -> Vec<String> {
    listing["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listing}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The names `find_tools` answered with, from its structured content.
fn found_names(answer: &Value) -> Vec<String> {
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{answer}");
    result["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools found in {answer}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The text of a tool result, and whether it is a tool error.
fn tool_text(answer: &Value) -> (String, bool) {
    let result = &answer["result"];
    let text = result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("not a tool result: {answer}"))
        .to_owned();
    (text, result["isError"] == true)
}

/// A client in search mode lists two tools; `find_tools` finds only what its policy lets it
/// see, with full schemas; `call_tool` calls those and refuses the hidden ones as a tool
/// error; a direct `tools/call` of a real tool works, of a hidden one is refused; a client whose
/// own `toolMode` is `all` sees the catalogue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_mode_finds_and_calls_within_the_clients_policy() {
    let marker = unique_marker();
    let dir = std::env::temp_dir().join(format!("mcp-gateway-search-audit-{marker}"));
    std::fs::create_dir_all(&dir).unwrap();
    let audit_path = dir.join("audit.log");
    let audit = Arc::new(AuditLog::to_file(audit_path.clone(), 1 << 20).unwrap());
    let gateway = policies(json!({
        "toolMode": "search",
        "clients": {
            "alpha": {"token": "${env:ALPHA_TOKEN}", "tools": {"deny": ["a__*"]},
                      "auditArguments": true},
            "beta": {"token": "${env:BETA_TOKEN}", "toolMode": "all"}
        }
    }));
    let served = serve_with(
        vec![fake("a", &marker), fake("b", &marker)],
        |_| {},
        |builder| builder.policies(gateway).audit(audit.clone()),
    )
    .await;
    let alpha = session_id(&served.session_as(Some(ALPHA), true).await);
    let beta = session_id(&served.session_as(Some(BETA), true).await);

    let listed = served
        .ask(ALPHA, &alpha, &request(1, "tools/list", json!({})))
        .await;
    assert_eq!(tool_names(&listed), ["find_tools", "call_tool"]);
    assert_eq!(
        listed["result"]["tools"][0]["inputSchema"]["required"],
        json!(["query"]),
        "{listed}"
    );

    let found = served
        .ask(
            ALPHA,
            &alpha,
            &call(
                2,
                "find_tools",
                json!({"query": "echo the text", "limit": 3}),
            ),
        )
        .await;
    let names = found_names(&found);
    assert_eq!(
        names.first().map(String::as_str),
        Some("b__echo"),
        "{found}"
    );
    assert!(
        !names.iter().any(|name| name.starts_with("a__")),
        "{names:?}"
    );
    assert!(names.len() <= 3, "{names:?}");
    let echo = &found["result"]["structuredContent"]["tools"][0];
    assert_eq!(echo["inputSchema"]["type"], "object", "{echo}");

    let called = served
        .ask(
            ALPHA,
            &alpha,
            &call(
                3,
                "call_tool",
                json!({"name": "b__echo", "arguments": {"text": "through call_tool"}}),
            ),
        )
        .await;
    assert_eq!(tool_text(&called), ("through call_tool".to_owned(), false));

    // Hidden by the policy: the same answer as a tool that does not exist.
    for (id, name) in [(4, "a__echo"), (5, "no__such")] {
        let refused = served
            .ask(
                ALPHA,
                &alpha,
                &call(
                    id,
                    "call_tool",
                    json!({"name": name, "arguments": {"text": "x"}}),
                ),
            )
            .await;
        let (text, is_error) = tool_text(&refused);
        assert!(is_error, "{refused}");
        assert!(
            text.contains(&format!("tool `{name}` is not available")),
            "{text}"
        );
    }
    let nameless = served
        .ask(ALPHA, &alpha, &call(6, "call_tool", json!({})))
        .await;
    assert!(tool_text(&nameless).1, "{nameless}");

    // A direct call by the real name still works, within the policy.
    let direct = served
        .ask(
            ALPHA,
            &alpha,
            &call(7, "b__echo", json!({"text": "direct"})),
        )
        .await;
    assert_eq!(tool_text(&direct), ("direct".to_owned(), false));
    let hidden = served
        .ask(ALPHA, &alpha, &call(8, "a__echo", json!({"text": "x"})))
        .await;
    assert_eq!(hidden["error"]["code"], -32602, "{hidden}");

    // Beta's own mode is `all`: the catalogue, and no search tools.
    let listed = served
        .ask(BETA, &beta, &request(9, "tools/list", json!({})))
        .await;
    let names = tool_names(&listed);
    assert!(
        names.contains(&"a__echo".to_owned()) && names.contains(&"b__echo".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"find_tools".to_owned()), "{names:?}");
    let not_there = served
        .ask(
            BETA,
            &beta,
            &call(10, "find_tools", json!({"query": "echo"})),
        )
        .await;
    assert_eq!(not_there["error"]["code"], -32602, "{not_there}");
    served.finish().await;

    // The audit names the tool `call_tool` ran, and a hidden one as denied.
    drop(audit);
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|line: &Value| line["client"] == "alpha")
        .collect();
    let summary: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|line| {
            (
                line["target"].as_str().unwrap_or_default(),
                line["server"].as_str().unwrap_or_default(),
                line["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("find_tools", "", "ok"),
            ("b__echo", "b", "ok"),
            ("a__echo", "", "denied"),
            ("no__such", "", "denied"),
            ("call_tool", "", "tool_error"),
            ("b__echo", "b", "ok"),
            ("a__echo", "", "denied"),
        ],
        "{text}"
    );
    assert_eq!(lines[1]["arguments"], json!({"text": "through call_tool"}));
    let _ = std::fs::remove_dir_all(&dir);
    assert_no_process_left(&marker).await;
}

/// Writes the configuration file the way editors save: a new file renamed over the old one.
fn save(path: &std::path::Path, config: &Value) {
    let staging = path.with_extension("json.tmp");
    std::fs::write(&staging, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// Reads a session's GET stream until it has seen `n` `tools/list_changed`, passing on how many
/// it has seen so far.
fn count_tools_changed(
    served: &Served,
    session: &str,
    tasks: &mut JoinSet<()>,
) -> tokio::sync::watch::Receiver<usize> {
    let (seen, receiver) = tokio::sync::watch::channel(0);
    let stream = served
        .client
        .get(&served.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .send();
    tasks.spawn(async move {
        let mut stream = stream.await.unwrap();
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            let _ = seen.send(text.matches("notifications/tools/list_changed").count());
        }
    });
    receiver
}

async fn wait_for_count(seen: &mut tokio::sync::watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(PROMPTLY, seen.wait_for(|count| *count >= n))
        .await
        .unwrap_or_else(|_| panic!("no tools/list_changed number {n}"))
        .unwrap();
}

/// Changing `gateway.toolMode` in the configuration file reaches an open session: it hears
/// `tools/list_changed` and lists the two search tools, then the catalogue again. In search
/// mode a change of the catalogue is no change of the list: no `tools/list_changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switches_the_tool_mode_of_open_sessions() {
    let marker = unique_marker();
    let scratch = std::env::temp_dir().join(format!("mcp-gateway-search-{marker}"));
    std::fs::create_dir_all(&scratch).unwrap();
    let path = scratch.join("mcp.json");
    let server = json!({
        "command": fake_server_path().to_string_lossy(),
        "args": fake_server_args(&FakeConfig::default(), &marker),
    });
    let file = |gateway: Value| json!({"mcpServers": {"s": server.clone()}, "gateway": gateway});
    save(&path, &file(json!({})));
    let servers = config::read(&path).unwrap().servers;
    let served = serve_with(servers, |_| {}, |builder| builder.config_file(&path)).await;
    let session = session_id(&served.session(true).await);
    let list = |id| {
        let served = &served;
        let session = session.clone();
        async move {
            let response = served
                .post(
                    Some(&session),
                    &request(id, "tools/list", json!({})),
                    EVENT_STREAM,
                )
                .await;
            let messages = crate::events(&response.text().await.unwrap());
            tool_names(&messages[0])
        }
    };
    let mut tasks = JoinSet::new();
    let mut seen = count_tools_changed(&served, &session, &mut tasks);
    assert!(list(1).await.contains(&"s__echo".to_owned()));

    save(&path, &file(json!({"toolMode": "search"})));
    wait_for_count(&mut seen, 1).await;
    assert_eq!(list(2).await, ["find_tools", "call_tool"]);

    // The server changes its tools (and the host has them) while the session is in search mode.
    let mut catalogue = served.host.subscribe_catalogue();
    catalogue.borrow_and_update();
    let touch = call(4, "call_tool", json!({"name": "s__touch"}));
    let touched = served.post(Some(&session), &touch, EVENT_STREAM).await;
    let touched = crate::events(&touched.text().await.unwrap());
    assert_eq!(touched[0]["result"]["isError"], false, "{touched:?}");
    tokio::time::timeout(PROMPTLY, catalogue.changed())
        .await
        .expect("the host did not refresh the touched server's tools")
        .unwrap();

    save(&path, &file(json!({"toolMode": "all"})));
    wait_for_count(&mut seen, 2).await;
    assert!(list(3).await.contains(&"s__echo".to_owned()));

    served.finish().await;
    tokio::time::timeout(PROMPTLY, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .unwrap();
    // The stream ended with the gateway: the two switches, nothing for the touch.
    assert_eq!(*seen.borrow(), 2);
    let _ = std::fs::remove_dir_all(&scratch);
    assert_no_process_left(&marker).await;
}
