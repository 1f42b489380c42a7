//! Tests of the `mcp-fake-server` binary as a real child process, each ending with a leak check.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, pid_alive, pids_with_marker,
    unique_marker, FakeConfig,
};

use crate::client::{text, Client};

const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    client: Client<ChildStdout, ChildStdin>,
    stderr: Lines<BufReader<ChildStderr>>,
    marker: String,
}

impl Server {
    // Tests may start processes directly; only library code must go through mcp-transport.
    #[allow(clippy::disallowed_methods)]
    fn start(config: &FakeConfig) -> Server {
        let marker = unique_marker();
        let mut child = tokio::process::Command::new(fake_server_path())
            .args(fake_server_args(config, &marker))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let client = Client::new(child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        Server {
            child,
            client,
            stderr,
            marker,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().unwrap().try_into().unwrap())
    }

    async fn stderr_line(&mut self) -> String {
        tokio::time::timeout(EXIT_TIMEOUT, self.stderr.next_line())
            .await
            .expect("timed out reading stderr")
            .unwrap()
            .expect("stderr closed")
    }

    async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .expect("fake server did not exit")
            .unwrap()
    }
}

#[tokio::test]
async fn echo_then_eof_exits_cleanly() {
    let mut server = Server::start(&FakeConfig::default());
    let result = server.client.initialize().await;
    assert_eq!(result["serverInfo"]["name"], "fake-server");
    let result = server
        .client
        .call(1, "echo", json!({"text": "hello"}))
        .await;
    assert_eq!(text(&result), "hello");
    assert_eq!(pids_with_marker(&server.marker).len(), 1);
    server.client.close().await;
    assert_eq!(server.wait().await.code(), Some(0));
    assert_no_process_left(&server.marker).await;
}

#[track_caller]
fn check_exit(status: ExitStatus, expect_code: i32) {
    assert_eq!(status.code(), Some(expect_code), "{status}");
}

#[tokio::test]
async fn crashes_exit_with_their_codes() {
    // Each case: config, tool to call (None = crash during initialize), exit code, stderr line.
    let cases: [(FakeConfig, Option<&str>, i32, &str); 4] = [
        (
            FakeConfig {
                crash_at_init: true,
                ..FakeConfig::default()
            },
            None,
            3,
            "fake-server: crashing at init",
        ),
        (
            FakeConfig {
                crash_on_call: true,
                ..FakeConfig::default()
            },
            Some("echo"),
            4,
            "fake-server: crashing on tools/call",
        ),
        (
            FakeConfig {
                crash_after: Some(1),
                ..FakeConfig::default()
            },
            Some("echo"),
            5,
            "fake-server: crashing after 1 tool calls",
        ),
        (
            FakeConfig::default(),
            Some("crash"),
            6,
            "fake-server: crashing in tool crash",
        ),
    ];
    for (config, tool, expect_code, expect_stderr) in cases {
        let mut server = Server::start(&config);
        match tool {
            None => {
                server
                    .client
                    .send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}))
                    .await;
            }
            Some(tool) => {
                server.client.initialize().await;
                if config.crash_after.is_some() {
                    server
                        .client
                        .call(1, "echo", json!({"text": "first"}))
                        .await;
                }
                server
                    .client
                    .send(json!({
                        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": tool, "arguments": {"text": "x"}},
                    }))
                    .await;
            }
        }
        assert!(server.client.recv().await.is_none(), "expected EOF");
        check_exit(server.wait().await, expect_code);
        assert_eq!(server.stderr_line().await, expect_stderr);
        assert_no_process_left(&server.marker).await;
    }
}

#[tokio::test]
async fn grandchild_survives_eof_until_group_kill() {
    let mut server = Server::start(&FakeConfig {
        spawn_grandchild: true,
        ..FakeConfig::default()
    });
    let line = server.stderr_line().await;
    let grandchild: u32 = line
        .strip_prefix("fake-server: grandchild pid ")
        .unwrap_or_else(|| panic!("unexpected stderr line: {line}"))
        .parse()
        .unwrap();
    let pgid = server.pid();
    server.client.initialize().await;
    let mut pids = pids_with_marker(&server.marker);
    pids.sort_unstable();
    let mut expect = vec![grandchild, server.child.id().unwrap()];
    expect.sort_unstable();
    assert_eq!(pids, expect);

    server.client.close().await;
    assert_eq!(server.wait().await.code(), Some(0));
    assert!(
        pid_alive(grandchild),
        "the server must leave its grandchild running"
    );
    killpg(pgid, Signal::SIGKILL).unwrap();
    assert_no_process_left(&server.marker).await;
}

#[tokio::test]
async fn ignore_sigterm_needs_sigkill() {
    let mut server = Server::start(&FakeConfig {
        ignore_sigterm: true,
        ..FakeConfig::default()
    });
    server.client.initialize().await;
    kill(server.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(server.stderr_line().await, "fake-server: ignoring SIGTERM");
    let result = server
        .client
        .call(1, "echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text(&result), "still here");
    kill(server.pid(), Signal::SIGKILL).unwrap();
    assert_eq!(server.wait().await.code(), None);
    assert_no_process_left(&server.marker).await;
}

#[tokio::test]
async fn close_stdout_after_init_keeps_running() {
    let mut server = Server::start(&FakeConfig {
        close_stdout_after_init: true,
        list_changed: true,
        ..FakeConfig::default()
    });
    server.client.initialize().await;
    let notification = server.client.recv().await.unwrap();
    assert_eq!(notification["method"], "notifications/tools/list_changed");
    assert!(
        server.client.recv().await.is_none(),
        "expected EOF on stdout"
    );
    assert!(pid_alive(server.child.id().unwrap()));
    server.client.close().await;
    assert_eq!(server.wait().await.code(), Some(0));
    assert_no_process_left(&server.marker).await;
}

#[tokio::test]
async fn garbage_and_flood() {
    let n_flood_bytes = 300_000;
    let mut server = Server::start(&FakeConfig {
        garbage_lines: true,
        stderr_flood_bytes: n_flood_bytes,
        huge_line_bytes: 200_000,
        ..FakeConfig::default()
    });
    let mut n_stderr_bytes = 0;
    while n_stderr_bytes < n_flood_bytes {
        let line = server.stderr_line().await;
        assert!(line.starts_with("fake-server: flood line "), "{line}");
        n_stderr_bytes += line.len() as u64 + 1;
    }
    assert_eq!(n_stderr_bytes, n_flood_bytes);
    server.client.initialize().await;
    let result = server.client.call(1, "huge", json!({})).await;
    assert_eq!(text(&result).len(), 200_000);
    assert_eq!(
        server.client.garbage,
        ["this is not json", "", "this is not json", ""]
    );
    server.client.close().await;
    assert_eq!(server.wait().await.code(), Some(0));
    assert_no_process_left(&server.marker).await;
}
