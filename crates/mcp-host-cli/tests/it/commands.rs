//! One-shot commands on the embedded demo and on fake servers.

use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::{json, Value};

use crate::{fake_entry, run_cli, stderr, stdout, write_config};

#[tokio::test]
async fn tools_on_the_embedded_demo() {
    let output = run_cli(&["tools"], None).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("TOOL"), "{text}");
    for name in ["demo__echo", "demo__add", "notes__sleep"] {
        assert!(text.contains(name), "{text}");
    }

    let output = run_cli(&["tools", "--json"], None).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let tools: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(tools.len(), 6);
    for tool in &tools {
        for field in ["name", "server", "description", "inputSchema"] {
            assert!(tool.get(field).is_some(), "{field} missing in {tool}");
        }
    }
    let echo = tools
        .iter()
        .find(|tool| tool["name"] == "demo__echo")
        .unwrap();
    assert_eq!(echo["server"], "demo");
    assert_eq!(echo["originalName"], "echo");
}

#[tokio::test]
async fn status_prompts_resources_and_calls_on_the_demo() {
    let output = run_cli(&["status", "--json"], None).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let statuses: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|status| status["state"] == "ready"));
    assert!(statuses
        .iter()
        .all(|status| status["protocolVersion"] == "2025-11-25"));

    let output = run_cli(&["call", "demo__add", r#"{"a": 2, "b": 40}"#], None).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "42\n");

    let output = run_cli(&["call", "demo__echo", r#"{"text": "hi"}"#, "--json"], None).await;
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["content"][0]["text"], "hi");

    let output = run_cli(&["call", "demo__missing"], None).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no tool `demo__missing`"),
        "{}",
        stderr(&output)
    );

    let output = run_cli(&["call", "demo__echo", "not json"], None).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("not valid JSON"));

    let output = run_cli(
        &["get-prompt", "notes__summarize", r#"{"topic": "tides"}"#],
        None,
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "user: Summarise tides in three sentences.\n"
    );

    let output = run_cli(&["read-resource", "demo://notes/readme"], None).await;
    assert!(
        stdout(&output).contains("notes is a demo MCP server"),
        "{}",
        stderr(&output)
    );

    let output = run_cli(&["prompts", "--json"], None).await;
    let prompts: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(prompts.len(), 2);
    let output = run_cli(&["resources"], None).await;
    assert!(stdout(&output).contains("demo://demo/readme"));

    let output = run_cli(&["config-schema"], None).await;
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(schema["properties"]["mcpServers"].is_object());
}

#[tokio::test]
async fn tool_error_exits_with_3_and_failures_show_in_status() {
    let marker = unique_marker();
    let config = write_config(&json!({ "mcpServers": {
        "fake": fake_entry(&FakeConfig::default(), &marker),
        "broken": fake_entry(&FakeConfig { crash_at_init: true, ..FakeConfig::default() }, &marker),
    }}));
    let output = run_cli(&["call", "fake__fail"], Some(&config)).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(stdout(&output), "tool failed on purpose\n");

    let output = run_cli(&["status"], Some(&config)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("broken  failed"), "{text}");
    assert!(text.contains("crashing at init"), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");

    let output = run_cli(&["tools"], Some(&config)).await;
    assert!(output.status.success());
    assert!(stderr(&output).contains("broken"), "{}", stderr(&output));
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn invalid_config_names_the_path_and_starts_nothing() {
    let marker = unique_marker();
    let config = write_config(&json!({ "mcpServers": {
        "fake": fake_entry(&FakeConfig::default(), &marker),
        "bad": { "command": "x", "startupTimeoutMs": "soon" },
    }}));
    let output = run_cli(&["tools"], Some(&config)).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("mcpServers.bad.startupTimeoutMs"),
        "{message}"
    );
    assert!(stdout(&output).is_empty());
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn unknown_fields_are_warned_about() {
    let marker = unique_marker();
    let mut entry = fake_entry(&FakeConfig::default(), &marker);
    entry["colour"] = json!("red");
    let config = write_config(&json!({ "mcpServers": { "fake": entry } }));
    let output = run_cli(&["tools"], Some(&config)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("unknown field `mcpServers.fake.colour`"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).contains("fake__echo"));
    assert_no_process_left(&marker).await;
}

/// The warning lines of a command's stderr that mention `needle`, each without its timestamp.
fn lines_about<'a>(stderr: &'a str, needle: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|line| line.contains(needle))
        .map(|line| {
            line.split_once("Z ")
                .map_or(line, |(_, rest)| rest.trim_start())
        })
        .collect()
}

/// Issue #13 item 19: a server that cannot start is reported once, in one line that names it
/// once and says each cause once; a required one ends the command with the same words.
#[tokio::test]
async fn a_server_that_cannot_start_is_reported_once() {
    let config = write_config(&json!({ "mcpServers": {
        "x": { "command": "/nonexistent/mcp-server" },
    }}));
    let output = run_cli(&["tools"], Some(&config)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        lines_about(&stderr(&output), "`x`"),
        vec![
            "WARN failed to start server `x` (program `/nonexistent/mcp-server`): No such file \
             or directory (os error 2); going on without it"
        ],
        "{}",
        stderr(&output)
    );

    // A server that exits at once, saying why on stderr: one warning, the server named once.
    let config = write_config(&json!({ "mcpServers": {
        "x": { "command": "sh", "args": ["-c", "echo boom >&2; exit 3"] },
    }}));
    let output = run_cli(&["tools"], Some(&config)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    let lines = lines_about(&err, "`x`");
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("WARN server `x` "),
        "{}",
        stderr(&output)
    );
    assert_eq!(lines[0].matches("`x`").count(), 1, "{}", stderr(&output));

    let config = write_config(&json!({ "mcpServers": {
        "x": { "command": "/nonexistent/mcp-server", "required": true },
    }}));
    let output = run_cli(&["tools"], Some(&config)).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        lines_about(&stderr(&output), "`x`"),
        vec![
            "error: cannot run without a required server: failed to start server `x` (program \
             `/nonexistent/mcp-server`): No such file or directory (os error 2)"
        ],
        "{}",
        stderr(&output)
    );
}

/// A config of one fake server `fake` with `config`.
fn one_fake(config: &FakeConfig, marker: &str) -> std::path::PathBuf {
    write_config(&json!({ "mcpServers": { "fake": fake_entry(config, marker) } }))
}

#[tokio::test]
async fn call_as_a_task_shows_status_and_progress_until_the_result() {
    let marker = unique_marker();
    let tasks = FakeConfig {
        tasks: true,
        ..FakeConfig::default()
    };
    let config = one_fake(&tasks, &marker);
    let output = run_cli(
        &["call", "fake__slow", r#"{"ms": 300}"#, "--task"],
        Some(&config),
    )
    .await;
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{errors}");
    assert_eq!(stdout(&output), "slept 300 ms\n");
    assert!(
        errors.contains("task fake:fake-server-task-1: working"),
        "{errors}"
    );
    assert!(errors.contains("progress 1/5 slow step 1/5"), "{errors}");
    // A tool that does not run as a task is called normally, and says so.
    let output = run_cli(
        &["call", "fake__add", r#"{"a": 1, "b": 2}"#, "--task"],
        Some(&config),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "3\n");
    assert!(
        stderr(&output).contains("does not run as a task"),
        "{}",
        stderr(&output)
    );
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn url_elicitations_are_shown_and_forms_refused() {
    let marker = unique_marker();
    let fake = FakeConfig {
        extra_tools: vec!["needs_url".to_owned()],
        ..FakeConfig::default()
    };
    let config = one_fake(&fake, &marker);
    let url = json!({"method": "elicitation/create", "params": {
        "mode": "url", "elicitationId": "e-1", "message": "Connect your account.",
        "url": "https://auth.example.com/connect?e=1",
    }});
    let output = run_cli(
        &["call", "fake__ask_client", &url.to_string()],
        Some(&config),
    )
    .await;
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{errors}");
    assert!(
        errors.contains("on auth.example.com: Connect your account.")
            && errors.contains("https://auth.example.com/connect?e=1"),
        "{errors}"
    );
    let response: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(response["result"]["action"], "accept", "{response}");
    // A form cannot be shown by the command: the server is told so.
    let form = json!({"method": "elicitation/create", "params": {
        "message": "Your name?", "requestedSchema": {"type": "object"},
    }});
    let output = run_cli(
        &["call", "fake__ask_client", &form.to_string()],
        Some(&config),
    )
    .await;
    let response: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(response["error"]["code"], -32602, "{response}");
    assert!(
        !stderr(&output).contains("open a page"),
        "{}",
        stderr(&output)
    );

    // A call refused until a page is completed is tried again once it is.
    let output = run_cli(&["call", "fake__needs_url"], Some(&config)).await;
    let errors = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{errors}");
    assert_eq!(stdout(&output), "connected\n");
    assert!(
        errors.contains("https://example.com/connect?id=fake-server-connect")
            && errors.contains("the page was completed"),
        "{errors}"
    );
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn tools_in_the_shapes_of_llm_apis() {
    let output = run_cli(&["tools", "--format", "openai"], None).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let tools: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(tools.len(), 6);
    assert!(tools.iter().all(|tool| tool["type"] == "function"));
    assert!(tools
        .iter()
        .any(|tool| tool["function"]["name"] == "demo__echo"));
    let output = run_cli(&["tools", "--format", "anthropic"], None).await;
    let tools: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(tools.iter().all(|tool| tool["input_schema"].is_object()));
    let output = run_cli(&["tools", "--format", "gemini"], None).await;
    let tools: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        tools[0]["functionDeclarations"].as_array().unwrap().len(),
        6
    );
    let output = run_cli(&["tools", "--format", "cobol"], None).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn call_finds_auto_names_as_tools_lists_them() {
    let marker = unique_marker();
    let entry = |name: &str| {
        let fake = FakeConfig {
            name: format!("{name}-server"),
            n_tools: 0,
            extra_tools: vec!["search".to_owned(), format!("only_{name}")],
            ..FakeConfig::default()
        };
        let mut entry = fake_entry(&fake, &marker);
        entry["namespace"] = json!("auto");
        entry
    };
    let config = write_config(&json!({ "mcpServers": { "a": entry("a"), "b": entry("b") } }));
    let output = run_cli(&["tools", "--json"], Some(&config)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let tools: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for expect in ["a__search", "b__search", "only_a", "only_b"] {
        assert!(names.contains(&expect), "{expect} in {names:?}");
    }
    // The names `tools` lists are the names `call` takes, prefixed or not.
    for (name, expect) in [
        ("a__search", "a-server:search"),
        ("only_b", "b-server:only_b"),
    ] {
        let output = run_cli(&["call", name], Some(&config)).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(stdout(&output), format!("{expect}\n"));
    }
    assert_no_process_left(&marker).await;
}
