//! A real remote server: server-everything in its Streamable HTTP mode, reached by `url`, next to a
//! local server on stdio in the same host.

use std::process::Stdio;
use std::time::Duration;

use mcp_host::{AgentScope, McpHost};
use mcp_host_foundation::ClientConfig;
use mcp_transport::CloseStep;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    args, assert_no_process_left, bounded, call, interop, start, text, Interop, Scratch,
    MARKER_VAR, PROMPTLY,
};

/// server-everything serving Streamable HTTP on a free loopback port, killed on drop.
pub(crate) struct HttpEverything {
    child: tokio::process::Child,
    pub(crate) url: String,
}

impl HttpEverything {
    #[allow(clippy::disallowed_methods)] // Test setup: the server under test, not a host spawn.
    pub(crate) async fn start(interop: &Interop, scratch: &Scratch) -> HttpEverything {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        HttpEverything::start_on(interop, scratch, port).await
    }

    #[allow(clippy::disallowed_methods)] // Test setup: the server under test, not a host spawn.
    pub(crate) async fn start_on(
        interop: &Interop,
        scratch: &Scratch,
        port: u16,
    ) -> HttpEverything {
        let mut child = tokio::process::Command::new(&interop.node)
            .arg(interop.node_server("server-everything"))
            .arg("streamableHttp")
            .arg(text(&scratch.path))
            .env("PORT", port.to_string())
            .env(MARKER_VAR, &scratch.marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        bounded("server-everything listening", PROMPTLY, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("listening on port") {
                    return;
                }
            }
            panic!("server-everything ended before listening");
        })
        .await;
        HttpEverything {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = bounded("server-everything exit", PROMPTLY, self.child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_everything_over_streamable_http_beside_a_local_server() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let server = HttpEverything::start(&interop, &scratch).await;
    let remote = ClientConfig {
        required: true,
        startup_timeout_ms: 30_000,
        ..ClientConfig::remote("remote", server.url.clone())
    };
    let host: McpHost = start(vec![remote, interop.time(&scratch)]).await;

    let echoed = call(&host, "remote__echo", json!({ "message": "over http" })).await;
    assert!(echoed.text().contains("over http"), "{}", echoed.text());
    let now = call(
        &host,
        "time__get_current_time",
        json!({ "timezone": "UTC" }),
    )
    .await;
    assert!(now.text().contains("UTC"), "{}", now.text());

    // Progress notifications come on the call's SSE stream, before its result.
    let (result, reports) = crate::everything::long_running_operation(&host, "remote").await;
    assert!(result.text().contains("completed"), "{}", result.text());
    let steps: Vec<f64> = reports.iter().map(|p| p.progress).collect();
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0]);

    let report = bounded("shutdown", PROMPTLY, host.shutdown()).await;
    assert!(report.killed.is_empty(), "{report:?}");
    let remote_exit = report
        .exits
        .iter()
        .find(|exit| exit.server.as_str() == "remote")
        .unwrap();
    assert_eq!(remote_exit.step, CloseStep::Disconnected, "{remote_exit}");
    drop(host);
    server.stop().await;
    assert_no_process_left(&scratch).await;
}

/// Every CLI command on a configuration that mixes a remote (`url`) and a local (`command`) server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_on_a_mixed_configuration() {
    use crate::cli::{assert_exit, entry, json_stdout, mcp_host, stdout};

    let Some(interop) = interop() else { return };
    // The remote server has its own scratch (marker): each command checks that none of *its*
    // processes is left, and the remote server is meant to outlive them.
    let server_scratch = Scratch::new();
    let server = HttpEverything::start(&interop, &server_scratch).await;
    let scratch = Scratch::new();
    let config = scratch.path.join("mcp.json");
    let file = json!({ "mcpServers": {
        "remote": { "type": "http", "url": server.url, "required": true },
        "time": entry(&interop.time(&scratch)),
    }});
    std::fs::write(&config, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    let status = mcp_host(&scratch, &config, &["status", "--json"]).await;
    assert_exit(&status, 0, "status");
    let status = json_stdout(&status);
    let states: Vec<(&str, &str)> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|client| {
            (
                client["id"].as_str().unwrap(),
                client["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("remote", "ready"), ("time", "ready")], "{status}");

    let tools = mcp_host(&scratch, &config, &["tools"]).await;
    assert_exit(&tools, 0, "tools");
    let listed = stdout(&tools);
    assert!(
        listed.contains("remote__echo") && listed.contains("time__get_current_time"),
        "{listed}"
    );

    let echoed = mcp_host(
        &scratch,
        &config,
        &["call", "remote__echo", r#"{"message":"cli over http"}"#],
    )
    .await;
    assert_exit(&echoed, 0, "call");
    assert!(
        stdout(&echoed).contains("cli over http"),
        "{}",
        stdout(&echoed)
    );

    let prompts = mcp_host(&scratch, &config, &["prompts"]).await;
    assert_exit(&prompts, 0, "prompts");
    assert!(
        stdout(&prompts).contains("remote__"),
        "{}",
        stdout(&prompts)
    );
    let resources = mcp_host(&scratch, &config, &["resources", "--json"]).await;
    assert_exit(&resources, 0, "resources");
    let uri = json_stdout(&resources)
        .as_array()
        .and_then(|all| {
            all.iter()
                .find_map(|r| r["uri"].as_str().map(str::to_owned))
        })
        .expect("server-everything lists resources");
    let read = mcp_host(&scratch, &config, &["read-resource", &uri]).await;
    assert_exit(&read, 0, "read-resource");

    let prompt = mcp_host(&scratch, &config, &["get-prompt", "remote__simple-prompt"]).await;
    assert_exit(&prompt, 0, "get-prompt");
    assert!(!stdout(&prompt).trim().is_empty());

    // `serve` on stdio fronts the remote server too.
    let reply = serve_once(&scratch, &config).await;
    assert!(reply.contains("served over http"), "{reply}");

    server.stop().await;
    assert_no_process_left(&server_scratch).await;
}

/// Runs `mcp-host serve` on stdio, makes one call to `remote__echo` through it, closes its input
/// and returns the call's response line (the gateway must then exit 0).
async fn serve_once(scratch: &Scratch, config: &std::path::Path) -> String {
    use tokio::io::AsyncWriteExt as _;

    // The binary under test is run directly; the spawn ban is for library code.
    #[allow(clippy::disallowed_methods)]
    let mut gateway = tokio::process::Command::new(crate::cli::mcp_host_binary())
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .env(MARKER_VAR, &scratch.marker)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = gateway.stdin.take().unwrap();
    let mut output = BufReader::new(gateway.stdout.take().unwrap()).lines();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "interop", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "remote__echo", "arguments": {"message": "served over http"}}}),
    ];
    for message in messages {
        input
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }
    let reply = bounded("the gateway's answer", PROMPTLY, async {
        while let Some(line) = output.next_line().await.unwrap() {
            let message: serde_json::Value = serde_json::from_str(&line).unwrap();
            if message["id"] == 2 {
                return line;
            }
        }
        panic!("the gateway ended without answering");
    })
    .await;
    drop(input);
    let status = bounded("the gateway's exit", PROMPTLY, gateway.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert_no_process_left(scratch).await;
    reply
}

/// The real server restarts on the same port (forgetting every session): the client is lost,
/// and its restart policy opens a new session with the new process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_remote_server_is_reconnected() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let server = HttpEverything::start(&interop, &scratch).await;
    let port = server.port();
    let remote = ClientConfig {
        required: true,
        startup_timeout_ms: 30_000,
        // Node may take seconds to come back on a loaded machine: keep trying for a while.
        restart: mcp_host_foundation::RestartPolicy {
            max_restarts: 60,
            initial_backoff_ms: 100,
            max_backoff_ms: 500,
        },
        ..ClientConfig::remote("remote", server.url.clone())
    };
    let host: McpHost = start(vec![remote]).await;
    let echoed = call(&host, "remote__echo", json!({ "message": "first life" })).await;
    assert!(echoed.text().contains("first life"));

    server.stop().await;
    let server = HttpEverything::start_on(&interop, &scratch, port).await;
    // The first call after the restart may fail (404: unknown session, or refused while the
    // server was down); the client then comes back by itself.
    let _ = host
        .call_tool(
            "remote__echo",
            args(json!({ "message": "lost" })),
            &AgentScope::all(),
        )
        .await;
    bounded("the client is back", PROMPTLY, async {
        loop {
            let ready = host
                .status()
                .iter()
                .any(|client| client.state == mcp_host::ClientState::Ready && client.restarts >= 1);
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let echoed = call(&host, "remote__echo", json!({ "message": "second life" })).await;
    assert!(echoed.text().contains("second life"));

    bounded("shutdown", PROMPTLY, host.shutdown()).await;
    drop(host);
    server.stop().await;
    assert_no_process_left(&scratch).await;
}
