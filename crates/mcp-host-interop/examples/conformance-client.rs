//! The client under test of the official MCP conformance suite's client scenarios
//! (`@modelcontextprotocol/conformance`, run by `cargo xtask conformance`).
//!
//! The suite starts a mock server and runs `conformance-client <url>` with the scenario's name in
//! `MCP_CONFORMANCE_SCENARIO`. This program does what the scenario asks of a client, with our
//! Streamable HTTP transport (`mcp-http`) and session (`mcp-session`), and exits 0 when every
//! step succeeded, 1 (saying why on stderr) otherwise. The suite judges the traffic.
#![allow(clippy::print_stderr)]

use std::time::Duration;

use mcp_http::HttpOptions;
use mcp_session::{RequestOptions, Session, SessionOptions};
use mcp_transport::{ServerName, TransportOptions};
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

/// Every step of a scenario is bounded by this.
const STEP: Duration = Duration::from_secs(20);

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: conformance-client <server-url> (scenario in MCP_CONFORMANCE_SCENARIO)");
        std::process::exit(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conformance-client: cannot start tokio: {error}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(&url, &scenario)) {
        Ok(()) => eprintln!("conformance-client: scenario `{scenario}` done"),
        Err(error) => {
            eprintln!("conformance-client: scenario `{scenario}` failed: {error}");
            std::process::exit(1);
        }
    }
}

async fn run(url: &str, scenario: &str) -> Result<(), String> {
    let tracker = TaskTracker::new();
    let (http, transport) = mcp_http::connect(
        ServerName::new("conformance"),
        HttpOptions::new(url),
        &TransportOptions::default(),
        &tracker,
    )
    .map_err(|error| error.to_string())?;
    let options = SessionOptions {
        request_timeout: STEP,
        ..SessionOptions::default()
    };
    let (session, connection) = mcp_session::connect(transport, options);
    let mut driver = JoinSet::new();
    driver.spawn(connection);

    let outcome = scenario_steps(&session, scenario).await;

    session.shut_down();
    let report = http.close(Duration::from_secs(2)).await;
    let _ = tokio::time::timeout(STEP, driver.join_next()).await;
    tracker.close();
    if tokio::time::timeout(STEP, tracker.wait()).await.is_err() {
        return Err("the HTTP connection's tasks did not end".to_owned());
    }
    if !report.stderr_tail.is_empty() {
        eprintln!(
            "conformance-client: connection log:\n{}",
            report.stderr_tail
        );
    }
    outcome
}

async fn scenario_steps(session: &Session, scenario: &str) -> Result<(), String> {
    let init = bounded("initialize", session.initialize()).await?;
    eprintln!(
        "conformance-client: connected to {} {} (protocol {})",
        init.server_info.name, init.server_info.version, init.protocol_version
    );
    let tools = bounded("tools/list", session.list_all_tools()).await?;
    let has = |name: &str| tools.iter().any(|tool| tool.name == name);
    match scenario {
        "tools_call" if has("add_numbers") => {
            let result = call(session, "add_numbers", json!({"a": 5, "b": 3})).await?;
            eprintln!("conformance-client: add_numbers -> {result}");
        }
        "sse-retry" if has("test_reconnection") => {
            let result = call(session, "test_reconnection", json!({})).await?;
            eprintln!("conformance-client: test_reconnection -> {result}");
        }
        _ => {
            // Other scenarios (`initialize`, …) ask for the handshake and nothing more; call
            // nothing we were not asked to.
        }
    }
    Ok(())
}

async fn call(session: &Session, name: &str, arguments: Value) -> Result<String, String> {
    let arguments: Option<Map<String, Value>> = arguments.as_object().cloned();
    let result = bounded(
        name,
        session.call_tool(name, arguments, &RequestOptions::default()),
    )
    .await?;
    if result.is_tool_error() {
        return Err(format!("{name} returned a tool error: {}", result.text()));
    }
    Ok(result.text())
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer within {STEP:?}")),
    }
}
