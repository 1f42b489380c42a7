//! Issue #18: every field a server sends (icons, titles, `_meta`, annotations, output schemas,
//! unknown members) reaches the gateway's HTTP clients unchanged, in the lists and in the
//! answers; only the names the gateway owns differ.

use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, unique_marker, FakeConfig,
    DECORATED_CALL_RESULT, DECORATED_PROMPT, DECORATED_PROMPT_RESULT, DECORATED_READ,
    DECORATED_RESOURCE, DECORATED_SERVER_INFO, DECORATED_TEMPLATE, DECORATED_TOOL,
};
use serde_json::{json, Map, Value};

use crate::{events, serve_with, session_id, Served, EVENT_STREAM, PROMPTLY};

/// Checks that `ours` has every member of `original` but those in `owned`, each with the same
/// text (members in the same order, at every depth), and no member `original` lacks.
#[track_caller]
fn check_unchanged(original: &str, ours: &Value, owned: &[&str]) {
    let original: Map<String, Value> = serde_json::from_str(original).unwrap();
    let Value::Object(ours) = ours else {
        panic!("not an object: {ours}");
    };
    for (key, value) in &original {
        if owned.contains(&key.as_str()) {
            continue;
        }
        let got = ours.get(key).map(|value| value.to_string());
        assert_eq!(got, Some(value.to_string()), "member `{key}`");
    }
    let added: Vec<&String> = ours
        .keys()
        .filter(|key| !original.contains_key(*key) && !owned.contains(&key.as_str()))
        .collect();
    assert!(added.is_empty(), "members added: {added:?}");
}

/// The result of `method` on `session`.
async fn result(served: &Served, session: &str, id: u64, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let response = served.post(Some(session), &request, EVENT_STREAM).await;
    assert_eq!(response.status(), 200, "{request}");
    let answer = events(&response.text().await.unwrap())
        .into_iter()
        .find(|message| message["id"] == id)
        .expect("no response");
    answer
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method}: {answer}"))
}

/// The item of `list` (a listing's array) whose `field` is `value`.
fn item<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| item[field] == value)
        .unwrap_or_else(|| panic!("no {field} `{value}` in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_passes_through_the_http_gateway_unchanged() {
    let marker = unique_marker();
    let fake = FakeConfig {
        every_field: true,
        ..FakeConfig::default()
    };
    let server = ClientConfig {
        args: fake_server_args(&fake, &marker),
        ..ClientConfig::new("deco", fake_server_path().to_string_lossy())
    };
    let served = serve_with(vec![server], |_| {}, |builder| builder).await;
    let session = session_id(&served.session(true).await);

    let tools = result(&served, &session, 1, "tools/list", json!({})).await;
    let tool = item(&tools["tools"], "name", "deco__decorated");
    check_unchanged(DECORATED_TOOL, tool, &["name"]);

    let prompts = result(&served, &session, 2, "prompts/list", json!({})).await;
    let prompt = item(&prompts["prompts"], "name", "deco__decorated_prompt");
    check_unchanged(DECORATED_PROMPT, prompt, &["name"]);

    let resources = result(&served, &session, 3, "resources/list", json!({})).await;
    let resource = item(&resources["resources"], "uri", "ui://decorated/app.html");
    check_unchanged(DECORATED_RESOURCE, resource, &[]);

    let templates = result(&served, &session, 4, "resources/templates/list", json!({})).await;
    let template = item(
        &templates["resourceTemplates"],
        "uriTemplate",
        "ui://decorated/{page}.html",
    );
    check_unchanged(DECORATED_TEMPLATE, template, &[]);

    let read = result(
        &served,
        &session,
        5,
        "resources/read",
        json!({"uri": "ui://decorated/app.html"}),
    )
    .await;
    check_unchanged(DECORATED_READ, &read, &[]);

    let got = result(
        &served,
        &session,
        6,
        "prompts/get",
        json!({"name": "deco__decorated_prompt"}),
    )
    .await;
    check_unchanged(DECORATED_PROMPT_RESULT, &got, &[]);

    let called = result(
        &served,
        &session,
        7,
        "tools/call",
        json!({"name": "deco__decorated", "arguments": {"q": "x"}}),
    )
    .await;
    check_unchanged(DECORATED_CALL_RESULT, &called, &[]);

    // The server's own implementation, as the status page gives it.
    let status = tokio::time::timeout(
        PROMPTLY,
        served
            .client
            .get(served.url.replace("/mcp", "/status.json"))
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    let status: Value = serde_json::from_str(&status.text().await.unwrap()).unwrap();
    let info = &item(&status["servers"], "id", "deco")["serverInfo"];
    check_unchanged(DECORATED_SERVER_INFO, info, &[]);

    served.finish().await;
    assert_no_process_left(&marker).await;
}
