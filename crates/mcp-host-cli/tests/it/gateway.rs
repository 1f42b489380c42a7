//! `mcp-host serve`: our own client session talks to the gateway process over stdio.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use mcp_session::{Event, RequestOptions, Session, SessionOptions};
use mcp_transport::{ChildProcess, CloseStep, ServerCommand, ServerName, TransportOptions};
use serde_json::{json, Value};
use tokio_util::task::TaskTracker;

use crate::{binary, fake_entry, write_config, PROMPTLY};

struct Gateway {
    process: ChildProcess,
    session: Session,
    tracker: TaskTracker,
    /// The configuration file it was started with.
    config_path: std::path::PathBuf,
}

async fn start_gateway(config: &Value, extra_args: &[&str]) -> Gateway {
    start_gateway_with(config, extra_args, SessionOptions::default()).await
}

async fn start_gateway_with(
    config: &Value,
    extra_args: &[&str],
    session_options: SessionOptions,
) -> Gateway {
    let path = write_config(config);
    let tracker = TaskTracker::new();
    let mut args = vec![
        "--config".to_owned(),
        path.to_string_lossy().into_owned(),
        "serve".to_owned(),
    ];
    args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
    let command = ServerCommand::new(binary()).args(args);
    let (process, transport) = mcp_transport::spawn(
        ServerName::new("gateway"),
        &command,
        &TransportOptions::default(),
        &tracker,
    )
    .unwrap();
    let (session, connection, init) =
        tokio::time::timeout(PROMPTLY, mcp_session::handshake(transport, session_options))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(init.server_info.name, "mcp-host");
    tracker.spawn(connection);
    Gateway {
        process,
        session,
        tracker,
        config_path: path,
    }
}

impl Gateway {
    /// Ends the gateway's input; it must stop its servers and exit with 0.
    async fn finish(self) -> mcp_transport::ExitReport {
        let report = tokio::time::timeout(PROMPTLY, self.process.close(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(
            report.status.is_some_and(|status| status.success()),
            "{report:?}"
        );
        self.tracker.close();
        report
    }
}

fn args(value: Value) -> Option<serde_json::Map<String, Value>> {
    value.as_object().cloned()
}

/// Sends a signal to a process with the system's `kill` command.
pub(crate) async fn signal(pid: u32, name: &str) {
    // The test drives a real signal at the binary under test.
    #[allow(clippy::disallowed_methods)]
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_aggregates_and_forwards() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": {
        "one": fake_entry(&FakeConfig::default(), &marker),
        "two": fake_entry(&FakeConfig::default(), &marker),
    }});
    let gateway = start_gateway(&config, &[]).await;
    let session = &gateway.session;
    let mut events = session.take_events().unwrap();

    let tools = session.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert!(
        names.contains(&"one__echo") && names.contains(&"two__echo"),
        "{names:?}"
    );
    assert!(tools.iter().all(|tool| tool.extra.contains_key("x-fake")));

    let result = session
        .call_tool(
            "two__echo",
            args(json!({ "text": "through" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "through");
    let result = session
        .call_tool("one__fail", None, &RequestOptions::default())
        .await
        .unwrap();
    assert!(result.is_tool_error());
    let err = session
        .call_tool("one__nothing", None, &RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32602), "{err:?}");

    // Progress comes back through the gateway.
    let n_progress = Arc::new(AtomicUsize::new(0));
    let counter = n_progress.clone();
    let options = RequestOptions {
        timeout: None,
        on_progress: Some(Arc::new(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })),
    };
    session
        .call_tool("one__slow", args(json!({ "ms": 300 })), &options)
        .await
        .unwrap();
    assert!(n_progress.load(Ordering::Relaxed) >= 1);

    // Cancellation goes through the gateway to the server.
    let err = session
        .call_tool(
            "two__slow",
            args(json!({ "ms": 60_000 })),
            &RequestOptions::with_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, mcp_session::Error::Timeout { .. }), "{err:?}");
    let cancelled = async {
        loop {
            let result = session
                .call_tool("two__cancelled", None, &RequestOptions::default())
                .await
                .unwrap();
            let ids: Vec<Value> = serde_json::from_str(&result.text()).unwrap();
            if !ids.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, cancelled).await.unwrap();

    // A downstream list_changed reaches us.
    session
        .call_tool("one__touch", None, &RequestOptions::default())
        .await
        .unwrap();
    let changed = async {
        loop {
            if events.recv().await == Some(Event::ToolsListChanged) {
                break;
            }
        }
    };
    tokio::time::timeout(PROMPTLY, changed).await.unwrap();

    // End of input: the gateway stops every server and exits cleanly.
    let report = gateway.finish().await;
    assert_eq!(report.step, CloseStep::InputClosed, "{report:?}");
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_bridges_an_unprefixed_server() {
    let marker = unique_marker();
    let plain_fake = FakeConfig {
        name: "plain-server".to_owned(),
        ..FakeConfig::default()
    };
    let mut plain = fake_entry(&plain_fake, &marker);
    plain["namespace"] = json!(false);
    let config = json!({ "mcpServers": {
        "plain": plain,
        "ns": fake_entry(&FakeConfig::default(), &marker),
    }});
    let gateway = start_gateway(&config, &[]).await;
    let session = &gateway.session;
    let mut events = session.take_events().unwrap();

    // The gateway offers what its servers offer.
    let capabilities = &session.peer().unwrap().capabilities;
    assert!(capabilities.completions.is_some(), "{capabilities:?}");
    assert_eq!(
        capabilities.resources.as_ref().and_then(|r| r.subscribe),
        Some(true)
    );

    let tools = session.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"ns__echo"),
        "{names:?}"
    );
    let result = session
        .call_tool(
            "echo",
            args(json!({ "text": "as is" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "as is");

    // Completion goes to the prompt's server, under the prompt's original name.
    let completion: Value = session
        .request(
            "completion/complete",
            Some(json!({
                "ref": { "type": "ref/prompt", "name": "greet" },
                "argument": { "name": "name", "value": "x" },
            })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        completion["completion"]["values"],
        json!(["plain-server:greet:x"])
    );
    let err = session
        .request::<Value>(
            "completion/complete",
            Some(json!({ "ref": { "type": "ref/other" }, "argument": {} })),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32602), "{err:?}");

    // The level is forwarded; each server says so in a log message, which comes back.
    let _: Value = session
        .request(
            "logging/setLevel",
            Some(json!({ "level": "warning" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    // A subscription is routed by URI; the fake reports an update at once.
    let _: Value = session
        .request(
            "resources/subscribe",
            Some(json!({ "uri": "mem://hello" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let relayed = async {
        let mut n_logs = 0;
        let mut updated = false;
        while n_logs < 2 || !updated {
            match events.recv().await {
                Some(Event::Log(message)) => {
                    assert_eq!(message.level, mcp_session::protocol::LoggingLevel::Warning);
                    n_logs += 1;
                }
                Some(Event::ResourceUpdated { uri }) => {
                    assert_eq!(uri, "mem://hello");
                    updated = true;
                }
                Some(_) => {}
                None => panic!("the gateway session ended"),
            }
        }
    };
    tokio::time::timeout(PROMPTLY, relayed).await.unwrap();
    let _: Value = session
        .request(
            "resources/unsubscribe",
            Some(json!({ "uri": "mem://hello" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();

    gateway.finish().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigterm_stops_servers_and_a_second_signal_forces() {
    let marker = unique_marker();
    let stubborn = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        ..FakeConfig::default()
    };
    let mut entry = fake_entry(&stubborn, &marker);
    // Stopped politely, the server would take two grace periods: a minute.
    entry["shutdownGraceMs"] = json!(30_000);
    let config = json!({ "mcpServers": { "stubborn": entry } });

    // One SIGTERM: orderly shutdown, bounded by --shutdown-timeout-ms (3 s, twice the
    // default), then exit. The server cannot stop before it is killed at that deadline, so the
    // gateway takes at least the 3 s (not the default's 1.5 s: the flag is used) and far less
    // than the server's first grace period (the deadline is kept).
    let gateway = start_gateway(
        &config,
        &["--shutdown-timeout-ms", "3000", "--log-level", "info"],
    )
    .await;
    let signalled = std::time::Instant::now();
    signal(gateway.process.pid(), "TERM").await;
    let status = gateway
        .process
        .diagnostics()
        .wait_for_exit(PROMPTLY)
        .await
        .expect("the gateway did not exit");
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(3000) && took < Duration::from_secs(30),
        "the shutdown took {took:?}, not the 3 s deadline"
    );
    let log = gateway.process.diagnostics().stderr_tail();
    assert!(
        log.contains("killed what was left at the shutdown deadline"),
        "{log}"
    );
    assert_no_process_left(&marker).await;
    drop(gateway);

    // Two SIGTERMs: the second kills every server at once.
    let gateway = start_gateway(
        &config,
        &["--shutdown-timeout-ms", "60000", "--log-level", "info"],
    )
    .await;
    signal(gateway.process.pid(), "TERM").await;
    // The second signal must come after the first was taken (signals do not queue).
    let diagnostics = gateway.process.diagnostics().clone();
    let stopping = async {
        while !diagnostics.stderr_tail().contains("stopping every server") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, stopping).await.unwrap();
    signal(gateway.process.pid(), "TERM").await;
    let status = gateway
        .process
        .diagnostics()
        .wait_for_exit(PROMPTLY)
        .await
        .expect("the gateway did not exit");
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert_no_process_left(&marker).await;
}

/// Stdout carries JSON-RPC messages and nothing else, read as raw bytes (a session would skip a
/// stray line): with a server that writes garbage to its own stdout and a lot to stderr, and
/// every log level on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_stdout_carries_only_protocol() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let marker = unique_marker();
    let noisy = FakeConfig {
        garbage_lines: true,
        stderr_flood_bytes: 20_000,
        ..FakeConfig::default()
    };
    let config = write_config(&json!({ "mcpServers": { "noisy": fake_entry(&noisy, &marker) } }));
    // The test reads the binary's raw stdout, which only a plain child process gives.
    #[allow(clippy::disallowed_methods)]
    let mut gateway = tokio::process::Command::new(binary())
        .arg("--config")
        .arg(&config)
        .args(["--log-level", "trace", "serve"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "noisy__echo", "arguments": {"text": "hi"}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/list"}),
        json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}),
    ];
    let mut stdin = gateway.stdin.take().unwrap();
    let mut stdout = gateway.stdout.take().unwrap();
    let mut output = Vec::new();
    let talk = async {
        for request in &requests {
            stdin
                .write_all(format!("{request}\n").as_bytes())
                .await
                .unwrap();
        }
        stdin.flush().await.unwrap();
        // Read until every request is answered, then end the input and read to the end.
        let mut buffer = [0u8; 8192];
        while (1..=5).any(|id| !String::from_utf8_lossy(&output).contains(&format!("\"id\":{id}")))
        {
            let n = stdout.read(&mut buffer).await.unwrap();
            assert!(
                n > 0,
                "stdout ended early: {}",
                String::from_utf8_lossy(&output)
            );
            output.extend_from_slice(&buffer[..n]);
        }
        drop(stdin);
        stdout.read_to_end(&mut output).await.unwrap();
        gateway.wait().await.unwrap()
    };
    let status = tokio::time::timeout(PROMPTLY, talk).await.unwrap();
    assert!(status.success(), "{status:?}");
    let text = String::from_utf8(output).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    let mut answered = Vec::new();
    for line in text.lines() {
        let message: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("a stdout line is not JSON ({error}): {line:?}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        if message.get("method").is_some() {
            // A notification, or a request to us.
            continue;
        }
        // A response: to one of our requests, with a result.
        assert!(message.get("result").is_some(), "{line}");
        answered.push(message["id"].as_u64().unwrap_or_else(|| panic!("{line}")));
    }
    answered.sort_unstable();
    assert_eq!(answered, vec![1, 2, 3, 4, 5], "{text}");
    assert!(text.contains("\"text\":\"hi\""), "{text}");
    assert_no_process_left(&marker).await;
}

/// Our client answers sampling as an AI application would.
struct Sampling;

impl mcp_session::ClientRequestHandler for Sampling {
    fn capabilities(&self) -> serde_json::Map<String, Value> {
        json!({ "sampling": {} })
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn handles(&self, method: &str) -> bool {
        method == "sampling/createMessage"
    }

    fn handle(
        &self,
        _server: &ServerName,
        _method: &str,
        params: Option<Value>,
    ) -> mcp_session::HandlerFuture {
        let asked = params
            .and_then(|params| params.pointer("/messages/0/content/text").cloned())
            .and_then(|text| text.as_str().map(str::to_owned))
            .unwrap_or_default();
        Box::pin(async move {
            Ok(json!({
                "role": "assistant", "model": "test-model",
                "content": { "type": "text", "text": format!("an answer to {asked}") },
            }))
        })
    }
}

/// A server's sampling request travels through the gateway to the gateway's client and the
/// answer back; without a client that offers sampling the server is told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_relays_sampling_to_its_client() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "one": fake_entry(&FakeConfig::default(), &marker) }});
    let ask = json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": "the question" } }],
            "maxTokens": 10,
        },
    });

    let options = SessionOptions {
        client_requests: Some(Arc::new(Sampling)),
        ..SessionOptions::default()
    };
    let gateway = start_gateway_with(&config, &[], options).await;
    let result = gateway
        .session
        .call_tool(
            "one__ask_client",
            args(ask.clone()),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let text = result.text();
    assert!(!result.is_tool_error(), "{text}");
    assert!(
        text.contains("an answer to the question") && text.contains("test-model"),
        "{text}"
    );
    gateway.finish().await;

    // A client without sampling: the server's request is refused, saying why.
    let gateway = start_gateway(&config, &[]).await;
    let result = gateway
        .session
        .call_tool("one__ask_client", args(ask), &RequestOptions::default())
        .await
        .unwrap();
    let text = result.text();
    assert!(
        text.contains("no client of the mcp-host gateway offers sampling"),
        "{text}"
    );
    gateway.finish().await;
    assert_no_process_left(&marker).await;
}

/// `serve` on stdio watches its configuration file too: a saved change reaches the client as
/// tools/list_changed, and the new server's tools are listed.
#[tokio::test]
async fn stdio_gateway_applies_a_saved_configuration() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let gateway = start_gateway(
        &json!({ "mcpServers": { "a": fake_entry(&fake, &marker) } }),
        &[],
    )
    .await;
    let mut events = gateway.session.take_events().unwrap();
    let staging = gateway.config_path.with_extension("json.tmp");
    let config = json!({ "mcpServers": {
        "a": fake_entry(&fake, &marker),
        "b": fake_entry(&fake, &marker),
    }});
    std::fs::write(&staging, serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::rename(&staging, &gateway.config_path).unwrap();
    let changed = async {
        while let Some(event) = events.recv().await {
            if event == Event::ToolsListChanged {
                return;
            }
        }
    };
    tokio::time::timeout(PROMPTLY, changed).await.unwrap();
    let names: Vec<String> = gateway
        .session
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    assert!(names.contains(&"b__echo".to_owned()), "{names:?}");
    gateway.finish().await;
    assert_no_process_left(&marker).await;
}

/// `serve --client NAME` serves its stdio client as a named client of `gateway.clients` (its
/// servers and tools), and `--audit-log FILE` writes a line per call; an unknown name is
/// refused before anything starts.
#[tokio::test]
async fn stdio_gateway_as_a_named_client_with_an_audit_log() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let config = json!({
        "mcpServers": { "a": fake_entry(&fake, &marker), "b": fake_entry(&fake, &marker) },
        "gateway": { "clients": { "ide": {
            "token": "ide-token-0123456789",
            "servers": ["a"],
            "tools": { "deny": ["a__add"] }
        } } }
    });
    let audit = std::env::temp_dir().join(format!("{marker}-audit.log"));
    let audit_arg = audit.to_string_lossy().into_owned();
    let gateway = start_gateway(&config, &["--client", "ide", "--audit-log", &audit_arg]).await;
    let names: Vec<String> = gateway
        .session
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    assert!(
        names.iter().all(|name| name.starts_with("a__")),
        "{names:?}"
    );
    assert!(!names.contains(&"a__add".to_owned()), "{names:?}");
    let echoed = gateway
        .session
        .call_tool(
            "a__echo",
            args(json!({"text": "hi"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(echoed.text(), "hi");
    let denied = gateway
        .session
        .call_tool(
            "b__echo",
            args(json!({"text": "hi"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("not available"), "{denied}");
    gateway.finish().await;
    let lines = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["client"], "ide");
    assert_eq!(lines[0]["session"], "stdio");
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[1]["outcome"], "denied");
    let _ = std::fs::remove_file(&audit);

    let path = write_config(&config);
    let output = crate::run_cli(&["serve", "--client", "nobody"], Some(&path)).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        crate::stderr(&output).contains("no client `nobody`"),
        "{}",
        crate::stderr(&output)
    );
    assert_no_process_left(&marker).await;
}

/// Issue #15: the audit file survives logrotate. Once the file is moved away and the gateway
/// gets SIGHUP, new lines go to a new file at the configured path; no line is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_reopened_on_sighup_after_logrotate_moved_it() {
    let marker = unique_marker();
    let config = json!({
        "mcpServers": { "a": fake_entry(&FakeConfig::default(), &marker) },
        "gateway": { "clients": { "ide": { "token": "ide-token-0123456789" } } }
    });
    let audit = std::env::temp_dir().join(format!("{marker}-audit.log"));
    let moved = std::env::temp_dir().join(format!("{marker}-audit.log.moved"));
    let audit_arg = audit.to_string_lossy().into_owned();
    let gateway = start_gateway(&config, &["--client", "ide", "--audit-log", &audit_arg]).await;
    let call = || async {
        let echoed = gateway
            .session
            .call_tool(
                "a__echo",
                args(json!({"text": "hi"})),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(echoed.text(), "hi");
    };
    let n_lines = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
    };
    call().await;
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while n_lines(&audit) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no audit line");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // What logrotate does: move the file away, then signal.
    std::fs::rename(&audit, &moved).unwrap();
    signal(gateway.process.pid(), "HUP").await;
    // Calls made before the signal is handled still go to the moved file; once it is, a new
    // file appears at the configured path.
    let mut n_calls = 1;
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while n_lines(&audit) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new audit file after SIGHUP"
        );
        call().await;
        n_calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway.finish().await;
    assert!(n_lines(&moved) >= 1);
    assert_eq!(
        n_lines(&audit) + n_lines(&moved),
        n_calls,
        "a line was lost"
    );
    let _ = std::fs::remove_file(&audit);
    let _ = std::fs::remove_file(&moved);
    assert_no_process_left(&marker).await;
}

/// `serve --tool-mode search` on stdio: the client sees `find_tools` and `call_tool` (the flag
/// wins over the file's `gateway.toolMode`), finds and calls through them, and may still call
/// a tool by its name; an unknown mode is refused by the command line.
#[tokio::test]
async fn stdio_gateway_in_tool_search_mode() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let config = json!({
        "mcpServers": { "a": fake_entry(&fake, &marker) },
        "gateway": { "toolMode": "all" }
    });
    let gateway = start_gateway(&config, &["--tool-mode", "search"]).await;
    let names: Vec<String> = gateway
        .session
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    assert_eq!(names, ["find_tools", "call_tool"]);
    let found = gateway
        .session
        .call_tool(
            "find_tools",
            args(json!({"query": "echo text", "limit": 2})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let structured = found.structured_content.clone().unwrap_or_default();
    assert_eq!(structured["tools"][0]["name"], "a__echo", "{found:?}");
    let options = RequestOptions::default();
    for (name, arguments) in [
        (
            "call_tool",
            json!({"name": "a__echo", "arguments": {"text": "hi"}}),
        ),
        ("a__echo", json!({"text": "hi"})),
    ] {
        let echoed = gateway
            .session
            .call_tool(name, args(arguments), &options)
            .await
            .unwrap();
        assert_eq!(echoed.text(), "hi", "{name}");
    }
    gateway.finish().await;

    let path = write_config(&config);
    let output = crate::run_cli(&["serve", "--tool-mode", "few"], Some(&path)).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        crate::stderr(&output).contains("--tool-mode"),
        "{}",
        crate::stderr(&output)
    );
    assert_no_process_left(&marker).await;
}
