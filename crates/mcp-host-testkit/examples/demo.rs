//! Runnable demo: start the fake MCP server, list its tools, call two of them, and stop it.
//!
//! `cargo run -p mcp-host-testkit --example demo`
#![allow(clippy::print_stdout)] // Printing results is the point of the demo.

use std::time::Duration;

use anyhow::Context as _;
use mcp_host_testkit::{fake_server_path, FakeConfig};
use mcp_session::{RequestOptions, SessionOptions};
use mcp_transport::{ServerCommand, ServerName, TransportOptions};
use serde_json::json;
use tokio_util::task::TaskTracker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let command = ServerCommand::new(fake_server_path()).args(FakeConfig::default().to_args());
    let server = ServerName::new("demo");
    let (process, transport) =
        mcp_transport::spawn(server, &command, &TransportOptions::default(), &tracker)
            .context("starting the fake server")?;

    let handshake = mcp_session::handshake(transport, SessionOptions::default());
    let (session, connection, init) = tokio::time::timeout(Duration::from_secs(30), handshake)
        .await
        .context("the handshake timed out")??;
    tracker.spawn(connection);
    println!(
        "connected to {} {} (protocol {})",
        init.server_info.name, init.server_info.version, init.protocol_version
    );

    let tools = session.list_all_tools().await?;
    println!("{} tools:", tools.len());
    for tool in &tools {
        println!(
            "  {:<10} {}",
            tool.name,
            tool.description.as_deref().unwrap_or("")
        );
    }

    let echo = json!({ "text": "hello from mcp-host" });
    let result = session
        .call_tool(
            "echo",
            echo.as_object().cloned(),
            &RequestOptions::default(),
        )
        .await?;
    println!("echo -> {}", result.text());
    let add = json!({ "a": 2, "b": 40 });
    let result = session
        .call_tool("add", add.as_object().cloned(), &RequestOptions::default())
        .await?;
    println!("add  -> {}", result.text());

    let report = process.close(Duration::from_secs(2)).await;
    println!("{report}");
    drop(session);
    tracker.close();
    tracker.wait().await;
    Ok(())
}
