//! The catalogue as an agent sees it, with real fake-server processes: output schemas checked,
//! name modes, tool search, and the tool list in LLM API shapes.

use mcp_host::search::{CALL_TOOL, FIND_TOOLS};
use mcp_host::{AgentScope, Error, Format, HostOptions, McpHost, Namespace, RequestOptions};
use mcp_host_foundation::{ClientConfig, SecurityManager};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::{json, Value};

use crate::{args, fake_client, tool_names};

fn structured_fake(id: &str, marker: &str) -> ClientConfig {
    let fake = FakeConfig {
        output_schema: true,
        ..FakeConfig::default()
    };
    fake_client(id, &fake, marker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_content_is_checked_against_the_output_schema() {
    let marker = unique_marker();
    let host = McpHost::new(vec![structured_fake("calc", &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();

    let good = host
        .call_tool(
            "calc__structured",
            args(json!({"value": {"sum": 3}})),
            &scope,
        )
        .await
        .unwrap();
    assert_eq!(good.structured_content, Some(json!({"sum": 3})));

    let error = host
        .call_tool(
            "calc__structured",
            args(json!({"value": {"sum": "three"}})),
            &scope,
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::OutputSchema { .. }), "{text}");
    assert!(
        text.contains("calc__structured") && text.contains("/sum") && text.contains("calc"),
        "{text}"
    );
    // The raw path (the gateway's) checks too.
    let error = host
        .call_tool_raw(
            "calc__structured",
            args(json!({"value": {}})).as_ref(),
            &scope,
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("sum"), "{error}");
    // Tools without a schema are not touched.
    host.call_tool("calc__add", args(json!({"a": 1, "b": 2})), &scope)
        .await
        .unwrap();
    host.shutdown().await;

    // With the check off, the same result passes.
    let options = HostOptions {
        check_output_schema: false,
        ..HostOptions::default()
    };
    let host = McpHost::with_options(
        vec![structured_fake("calc", &marker)],
        SecurityManager::new(),
        options,
    )
    .unwrap();
    host.initialize().await.unwrap();
    let result = host
        .call_tool(
            "calc__structured",
            args(json!({"value": {"sum": "three"}})),
            &scope,
        )
        .await
        .unwrap();
    assert_eq!(result.structured_content, Some(json!({"sum": "three"})));
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

fn fake_with(id: &str, marker: &str, namespace: Namespace, extra: &[&str]) -> ClientConfig {
    let fake = FakeConfig {
        name: format!("{id}-server"),
        n_tools: 0,
        extra_tools: extra.iter().map(|name| (*name).to_owned()).collect(),
        ..FakeConfig::default()
    };
    ClientConfig {
        namespace,
        ..fake_client(id, &fake, marker)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_names_and_aliases_route_calls_to_their_servers() {
    let marker = unique_marker();
    let mut weather = fake_with("weather", &marker, Namespace::Auto, &["forecast", "search"]);
    weather
        .aliases
        .insert("echo".to_owned(), "weather_echo".to_owned());
    let docs = fake_with("docs", &marker, Namespace::Auto, &["lookup", "search"]);
    let host = McpHost::new(vec![weather, docs]).unwrap();
    host.initialize().await.unwrap();
    let names = tool_names(&host);
    // Only the shared names are prefixed; the alias is exposed as configured.
    for expect in [
        "forecast",
        "lookup",
        "weather__search",
        "docs__search",
        "weather_echo",
    ] {
        assert!(names.contains(&expect.to_owned()), "{expect} in {names:?}");
    }
    assert!(!names.contains(&"search".to_owned()), "{names:?}");
    let scope = AgentScope::all();
    for (name, expect) in [
        ("forecast", "weather-server:forecast"),
        ("lookup", "docs-server:lookup"),
        ("weather__search", "weather-server:search"),
        ("docs__search", "docs-server:search"),
    ] {
        let result = host.call_tool(name, None, &scope).await.unwrap();
        assert_eq!(result.text(), expect);
    }
    let echoed = host
        .call_tool("weather_echo", args(json!({"text": "aliased"})), &scope)
        .await
        .unwrap();
    assert_eq!(echoed.text(), "aliased");
    // One of them goes: the shared name is plain again.
    host.client_shutdown(&crate::id("docs")).await.unwrap();
    let result = host.call_tool("search", None, &scope).await.unwrap();
    assert_eq!(result.text(), "weather-server:search");
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_tools_ranks_the_catalogue_and_call_tool_calls_the_find() {
    let marker = unique_marker();
    let host = McpHost::new(vec![
        fake_client("calc", &FakeConfig::default(), &marker),
        fake_with("weather", &marker, Namespace::Always, &["forecast"]),
    ])
    .unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    let found = host.find_tools("add two numbers", 3, &scope);
    assert_eq!(found[0].tool.name, "calc__add", "{found:?}");
    assert!(found.len() <= 3);
    // The gateway's two tools.
    let options = RequestOptions::default();
    let raw = host
        .call_search_tool(
            FIND_TOOLS,
            args(json!({"query": "sleep with progress", "limit": 2})).as_ref(),
            &scope,
            &options,
        )
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(raw.get()).unwrap();
    let first = &answer["structuredContent"]["tools"][0];
    assert_eq!(first["name"], "calc__slow", "{answer}");
    assert_eq!(first["inputSchema"]["required"], json!(["ms"]));
    let raw = host
        .call_search_tool(
            CALL_TOOL,
            args(json!({"name": "calc__echo", "arguments": {"text": "found"}})).as_ref(),
            &scope,
            &options,
        )
        .await
        .unwrap();
    assert!(raw.get().contains("found"), "{}", raw.get());
    let raw = host
        .call_search_tool(CALL_TOOL, None, &scope, &options)
        .await
        .unwrap();
    assert!(raw.get().contains("\"isError\":true"), "{}", raw.get());
    // A scope hides what it hides from the search as well.
    let narrow = AgentScope {
        allowed_clients: Some([crate::id("weather")].into_iter().collect()),
        ..AgentScope::default()
    };
    let found = host.find_tools("add two numbers", 5, &narrow);
    assert_eq!(found[0].tool.name, "weather__add", "{found:?}");
    assert!(found
        .iter()
        .all(|found| found.tool.client.as_str() == "weather"));
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_tool_calls_come_back_as_host_calls_in_every_format() {
    let marker = unique_marker();
    let host = McpHost::new(vec![fake_client("calc", &FakeConfig::default(), &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    for (format, call) in [
        (
            Format::OpenAi,
            json!({"id": "c1", "type": "function", "function": {"name": "calc__add", "arguments": "{\"a\":2,\"b\":40}"}}),
        ),
        (
            Format::Anthropic,
            json!({"type": "tool_use", "id": "c2", "name": "calc__add", "input": {"a": 2, "b": 40}}),
        ),
        (
            Format::Gemini,
            json!({"functionCall": {"name": "calc__add", "args": {"a": 2, "b": 40}}}),
        ),
    ] {
        let tools = host.tools_for(format, &scope);
        assert_eq!(tools.len(), host.list_tools(&scope).len());
        let (call, result) = host.call_model_tool(format, &call, &scope).await.unwrap();
        assert_eq!(result.text(), "42");
        let message = call.result_message(format, &result);
        assert!(message.to_string().contains("42"), "{message}");
    }
    let error = host
        .call_model_tool(Format::Anthropic, &json!({"input": {}}), &scope)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidToolCall { .. }), "{error}");
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
