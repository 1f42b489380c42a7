//! Integration tests of the `mcp-host` binary: one-shot commands, config errors, and the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod commands;
mod gateway;
mod http_gateway;
mod observe;
mod reliability;
mod reload;
mod service;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use mcp_host_testkit::{fake_server_args, fake_server_path, unique_marker, FakeConfig};
use serde_json::{json, Value};

pub(crate) const PROMPTLY: Duration = Duration::from_secs(60);

pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-host")
}

/// Runs the binary to completion (bounded), without any inherited configuration.
pub(crate) async fn run_cli(args: &[&str], config: Option<&PathBuf>) -> Output {
    // Tests run the binary under test directly; the spawn ban is for library code.
    #[allow(clippy::disallowed_methods)]
    let mut command = tokio::process::Command::new(binary());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(args)
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    tokio::time::timeout(PROMPTLY, command.output())
        .await
        .expect("the command took too long")
        .expect("the command could not be run")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A fake-server entry for a config file.
pub(crate) fn fake_entry(fake: &FakeConfig, marker: &str) -> Value {
    json!({
        "command": fake_server_path().to_string_lossy(),
        "args": fake_server_args(fake, marker),
    })
}

/// Writes a config file into a fresh temporary directory and returns its path.
pub(crate) fn write_config(config: &Value) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_marker());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mcp.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    path
}
