//! Integration tests of `McpHost` with real fake-server processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catalogue;
mod faults;
mod hardening;
mod heap;
mod input;
mod lifecycle;
mod passthrough;
mod reliability;
mod reload;
mod remote;
mod routing;
mod soak;
mod stats;
mod tasks;

use std::time::Duration;

use mcp_host::{AgentScope, McpHost};
use mcp_host_foundation::{ClientConfig, ClientId};
use mcp_host_testkit::{fake_server_args, fake_server_path, FakeConfig};
use serde_json::{Map, Value};

/// A generous bound for anything that should happen "promptly" with real processes.
pub(crate) const PROMPTLY: Duration = Duration::from_secs(20);

/// A client configuration that runs the fake server with `fake`, tagged with `marker`.
pub(crate) fn fake_client(id: &str, fake: &FakeConfig, marker: &str) -> ClientConfig {
    ClientConfig {
        args: fake_server_args(fake, marker),
        ..ClientConfig::new(id, fake_server_path().to_string_lossy())
    }
}

pub(crate) fn id(text: &str) -> ClientId {
    ClientId::new(text).unwrap()
}

pub(crate) fn args(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => panic!("arguments must be an object"),
    }
}

pub(crate) fn tool_names(host: &McpHost) -> Vec<String> {
    host.list_tools(&AgentScope::all())
        .into_iter()
        .map(|tool| tool.name)
        .collect()
}

/// Calls `<client>__echo` and checks the answer.
pub(crate) async fn echo(host: &McpHost, client: &str, text: &str) {
    let result = host
        .call_tool(
            &format!("{client}__echo"),
            args(serde_json::json!({ "text": text })),
            &AgentScope::all(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), text);
}

/// Polls `condition` until it holds, for at most [`PROMPTLY`].
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}
