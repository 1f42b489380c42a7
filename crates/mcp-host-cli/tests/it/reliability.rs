//! The process-level guarantees of the `mcp-host` command: servers die with a SIGKILLed host,
//! escaped helpers are reached, and secrets never reach any output.

use std::time::Duration;

use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, pids_with_marker, unique_marker,
    FakeConfig,
};
use mcp_transport::{ServerCommand, ServerName, TransportOptions};
use serde_json::json;
use tokio_util::task::TaskTracker;

use crate::{binary, fake_entry, run_cli, stderr, stdout, write_config, PROMPTLY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_die_when_the_host_is_sigkilled() {
    let marker = unique_marker();
    let config = write_config(&json!({ "mcpServers": {
        "one": fake_entry(&FakeConfig::default(), &marker),
        "two": fake_entry(&FakeConfig { ignore_eof: true, ignore_sigterm: true, ..FakeConfig::default() }, &marker),
    }}));
    let tracker = TaskTracker::new();
    let command = ServerCommand::new(binary()).args([
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
        "serve".to_owned(),
    ]);
    let (gateway, transport) = mcp_transport::spawn(
        ServerName::new("gateway"),
        &command,
        &TransportOptions::default(),
        &tracker,
    )
    .unwrap();
    let (session, connection, _) = tokio::time::timeout(
        PROMPTLY,
        mcp_session::handshake(transport, mcp_session::SessionOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    tracker.spawn(connection);
    assert!(!session.list_all_tools().await.unwrap().is_empty());
    assert_eq!(pids_with_marker(&marker).len(), 2);
    // SIGKILL leaves the host no chance to clean up; the kernel's parent-death signal does it.
    gateway.kill();
    assert_no_process_left(&marker).await;
    drop(session);
    let _ = tokio::time::timeout(PROMPTLY, gateway.close(Duration::from_millis(100))).await;
}

#[tokio::test]
async fn helpers_that_escape_the_process_group_are_reached() {
    let marker = unique_marker();
    let escaping = FakeConfig {
        spawn_escaped_grandchild: true,
        ..FakeConfig::default()
    };
    let config =
        write_config(&json!({ "mcpServers": { "escaper": fake_entry(&escaping, &marker) } }));
    // At debug level the server's stderr is logged, with the helper's pid.
    let output = run_cli(&["--log-level", "debug", "tools"], Some(&config)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("escaper__echo"));
    let log = stderr(&output);
    let pid_after = |text: &str| -> Option<u32> {
        let (_, rest) = log.split_once(text)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    // The helper was started, out of the server's process group...
    let helper = pid_after("escaped grandchild pid ")
        .unwrap_or_else(|| panic!("the server started no escaped helper:\n{log}"));
    // ...and the command adopted it when the server exited, and killed it.
    let killed = log
        .lines()
        .find(|line| line.contains("killed processes that had escaped"))
        .unwrap_or_else(|| panic!("nothing escaped was killed:\n{log}"));
    assert!(
        killed.contains(&format!("[{helper}]")),
        "helper {helper} not among the killed: {killed}"
    );
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn secrets_never_reach_any_output() {
    const SECRET: &str = "hunter2-very-secret-value";
    let marker = unique_marker();
    let leaky = |crash: bool| {
        let fake = FakeConfig {
            print_env: Some("API_TOKEN".to_owned()),
            crash_at_init: crash,
            garbage_lines: true,
            ..FakeConfig::default()
        };
        json!({
            "command": fake_server_path().to_string_lossy(),
            "args": fake_server_args(&fake, &marker),
            "env": { "API_TOKEN": "Bearer ${env:MCP_TEST_SECRET}" },
        })
    };
    let config = write_config(&json!({ "mcpServers": {
        "healthy": leaky(false),
        "crashing": leaky(true),
    }}));
    for args in [
        vec!["--log-level", "trace", "status"],
        vec!["--log-level", "trace", "status", "--json"],
        vec!["--log-level", "trace", "tools", "--json"],
        vec!["--log-level", "trace", "call", "healthy__env"],
    ] {
        // Run with the secret in the host's environment, as a user would.
        #[allow(clippy::disallowed_methods)]
        let output = tokio::time::timeout(
            PROMPTLY,
            tokio::process::Command::new(binary())
                .arg("--config")
                .arg(&config)
                .args(&args)
                .env("MCP_TEST_SECRET", SECRET)
                .env_remove("RUST_LOG")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        let all = format!("{}{}", stdout(&output), stderr(&output));
        if args.contains(&"call") {
            assert!(output.status.success(), "{args:?}:\n{all}");
            // The tool's own result is the server's business: it returns its environment, which
            // shows that the reference was resolved and reached the server; the host passes
            // results through untouched. Only the host's logs must not show the secret.
            let env: serde_json::Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|error| panic!("{args:?}: not the environment ({error}):\n{all}"));
            assert_eq!(
                env["API_TOKEN"],
                format!("Bearer {SECRET}"),
                "{args:?}: the server did not get the resolved secret"
            );
            assert!(
                !stderr(&output).contains(SECRET),
                "{args:?} leaked in logs:\n{}",
                stderr(&output)
            );
            continue;
        }
        assert!(!all.contains(SECRET), "{args:?} leaked the secret:\n{all}");
        assert!(
            all.contains("****"),
            "{args:?} shows no masked value:\n{all}"
        );
    }
    assert_no_process_left(&marker).await;
}
