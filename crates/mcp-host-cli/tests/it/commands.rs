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
