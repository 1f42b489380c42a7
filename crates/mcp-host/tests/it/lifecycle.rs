//! Starting, registering, shutting down and dropping hosts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_host::{AgentScope, ClientState, Error, HostOptions, McpHost};
use mcp_host_foundation::{ClientConfig, SecurityManager};
use mcp_host_testkit::{
    assert_no_process_left, assert_no_process_left_blocking, pid_alive, pids_with_marker,
    unique_marker, FakeConfig, TempDir,
};
use mcp_transport::CloseStep;

use crate::{echo, eventually, fake_client, id, tool_names, PROMPTLY};

#[tokio::test]
async fn dynamic_client_registration_and_unregistration() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let host = McpHost::new(vec![fake_client("a", &fake, &marker)]).unwrap();
    host.initialize().await.unwrap();
    assert!(tool_names(&host).contains(&"a__echo".to_owned()));
    let a_pid = host.session(&id("a")).unwrap().pid.unwrap();

    // Register at runtime.
    let b = host
        .register_client(fake_client("b", &fake, &marker))
        .await
        .unwrap();
    assert_eq!(b, id("b"));
    echo(&host, "b", "hello b").await;
    assert_eq!(
        host.client_manager().active_clients(),
        vec![id("a"), id("b")]
    );
    let b_pid = host.session(&b).unwrap().pid.unwrap();
    let err = host
        .register_client(fake_client("b", &fake, &marker))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateClient { .. }), "{err:?}");

    // Unregister: its tools and process are gone, the other client is untouched.
    let report = host.client_shutdown(&b).await.unwrap();
    assert_eq!(report.step, CloseStep::InputClosed);
    assert!(!tool_names(&host).iter().any(|name| name.starts_with("b__")));
    assert!(!pid_alive(b_pid));
    assert_eq!(host.client_manager().active_clients(), vec![id("a")]);
    let err = host
        .call_tool("b__echo", None, &AgentScope::all())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTool { .. }), "{err:?}");
    assert!(pid_alive(a_pid));
    echo(&host, "a", "still here").await;
    let err = host.client_shutdown(&b).await.unwrap_err();
    assert!(matches!(err, Error::UnknownClient { .. }), "{err:?}");

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Collects every ERROR event logged while it is the default subscriber.
#[derive(Clone, Default)]
struct ErrorLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for ErrorLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn host_lifecycle() {
    let log = ErrorLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let marker = unique_marker();
    let fake = FakeConfig::default();
    let configs = ["one", "two", "three"]
        .iter()
        .map(|name| fake_client(name, &fake, &marker))
        .collect();
    let host = McpHost::new(configs).unwrap();
    let report = host.initialize().await.unwrap();
    assert_eq!(report.ready.len(), 3);
    for client in ["one", "two", "three"] {
        echo(&host, client, client).await;
    }
    let status = host.status();
    assert!(status
        .iter()
        .all(|client| client.state == ClientState::Ready));
    assert!(status
        .iter()
        .all(|client| client.protocol_version.as_deref() == Some("2025-11-25")));
    assert!(status
        .iter()
        .all(|client| client.n_tools == 13 && client.n_prompts == 1));
    assert!(status.iter().all(|client| client.uptime_ms.is_some()));

    let shutdown = host.shutdown().await;
    assert_eq!(shutdown.exits.len(), 3);
    assert!(shutdown.killed.is_empty());
    assert!(shutdown
        .exits
        .iter()
        .all(|exit| exit.step == CloseStep::InputClosed));
    assert!(host
        .status()
        .iter()
        .all(|client| client.state == ClientState::Stopped));
    assert_no_process_left(&marker).await;
    let errors = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        errors.is_empty(),
        "errors logged during teardown:\n{errors}"
    );
    let err = host
        .register_client(ClientConfig::new("late", "true"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ShutDown), "{err:?}");
}

#[tokio::test]
async fn errors_before_started_come_back_typed() {
    let marker = unique_marker();
    let cases: Vec<(&str, ClientConfig)> = vec![
        (
            "bad-command",
            ClientConfig::new("bad-command", "/nonexistent/mcp-server"),
        ),
        (
            "crash-at-init",
            fake_client(
                "crash-at-init",
                &FakeConfig {
                    crash_at_init: true,
                    ..FakeConfig::default()
                },
                &marker,
            ),
        ),
        (
            "slow-init",
            ClientConfig {
                startup_timeout_ms: 300,
                ..fake_client(
                    "slow-init",
                    &FakeConfig {
                        init_delay_ms: 60_000,
                        ..FakeConfig::default()
                    },
                    &marker,
                )
            },
        ),
        (
            "old-protocol",
            fake_client(
                "old-protocol",
                &FakeConfig {
                    protocol_version: Some("1999-01-01".to_owned()),
                    ..FakeConfig::default()
                },
                &marker,
            ),
        ),
    ];
    let host = McpHost::new(Vec::new()).unwrap();
    for (name, config) in cases {
        let err = tokio::time::timeout(PROMPTLY, host.register_client(config))
            .await
            .unwrap()
            .unwrap_err();
        let chain = mcp_host::error_chain(&err);
        assert!(chain.contains(name), "{name}: {chain}");
        let Error::Start { source, .. } = &err else {
            panic!("{name}: unexpected error {err:?}");
        };
        match name {
            "bad-command" => assert!(
                matches!(source, mcp_host_foundation::Error::Spawn { .. }),
                "{chain}"
            ),
            "crash-at-init" => {
                assert!(chain.contains("crashing at init"), "{chain}");
                assert!(chain.contains("exit status: 3"), "{chain}");
            }
            "slow-init" => assert!(
                matches!(source, mcp_host_foundation::Error::StartupTimeout { .. }),
                "{chain}"
            ),
            "old-protocol" => assert!(chain.contains("1999-01-01"), "{chain}"),
            _ => unreachable!(),
        }
        assert!(host.client_manager().active_clients().is_empty());
        assert!(host.clients().is_empty());
        let status = host.status();
        let record = status
            .iter()
            .find(|client| client.id.as_str() == name)
            .unwrap();
        assert_eq!(record.state, ClientState::Failed);
        assert!(record.last_error.is_some());
        assert_no_process_left(&marker).await;
    }
    host.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_client_token_unregisters_before_killing() {
    let marker = unique_marker();
    let stubborn = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        ..FakeConfig::default()
    };
    let config = ClientConfig {
        shutdown_grace_ms: 1_000,
        ..fake_client("stubborn", &stubborn, &marker)
    };
    let host = McpHost::new(vec![config]).unwrap();
    host.initialize().await.unwrap();
    let client = id("stubborn");
    let pid = host.session(&client).unwrap().pid.unwrap();
    host.client_token(&client).unwrap().cancel();
    // Tools and the active entry go first; the process needs two grace periods to be killed.
    eventually("tools unregistered", || tool_names(&host).is_empty()).await;
    eventually("client inactive", || {
        !host.client_manager().contains(&client)
    })
    .await;
    assert!(
        pid_alive(pid),
        "the process must still be running at this point"
    );
    eventually("process killed", || !pid_alive(pid)).await;
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_start_concurrently() {
    let marker = unique_marker();
    // No server answers `initialize` before the gate file exists.
    let scratch = TempDir::new("start-gate");
    let gate = scratch.path().join("open");
    let gated = FakeConfig {
        init_gate: Some(gate.to_string_lossy().into_owned()),
        ..FakeConfig::default()
    };
    let configs = (0..10)
        .map(|idx| fake_client(&format!("gated{idx}"), &gated, &marker))
        .collect();
    let host = McpHost::new(configs).unwrap();
    let opening = async {
        // All ten are running while none can be ready: started one after the other, the
        // second would wait for the first to be ready, which never comes.
        eventually("ten servers running at once", || {
            pids_with_marker(&marker).len() == 10
        })
        .await;
        assert!(host.client_manager().active_clients().is_empty());
        std::fs::write(&gate, "open").unwrap();
    };
    let (report, ()) =
        tokio::time::timeout(PROMPTLY, async { tokio::join!(host.initialize(), opening) })
            .await
            .expect("the servers did not start at once");
    assert_eq!(report.unwrap().ready.len(), 10);
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_and_parallel() {
    let marker = unique_marker();
    let stubborn = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        ..FakeConfig::default()
    };
    let configs = (0..3)
        .map(|idx| ClientConfig {
            shutdown_grace_ms: 500,
            ..fake_client(&format!("stubborn{idx}"), &stubborn, &marker)
        })
        .collect();
    let host = McpHost::new(configs).unwrap();
    host.initialize().await.unwrap();
    let started = Instant::now();
    let report = tokio::time::timeout(PROMPTLY, host.shutdown())
        .await
        .expect("shutdown is not bounded");
    let elapsed = started.elapsed();
    assert_eq!(report.exits.len(), 3);
    assert!(report
        .exits
        .iter()
        .all(|exit| exit.step == CloseStep::Killed));
    // Each close waited out both grace periods; closes one after the other would take at least
    // the sum of their times, so a shutdown that took less ran them at the same time.
    assert!(report
        .exits
        .iter()
        .all(|exit| exit.elapsed >= Duration::from_millis(1000)));
    let sum: Duration = report.exits.iter().map(|exit| exit.elapsed).sum();
    assert!(
        elapsed < sum,
        "the closes did not overlap: shutdown took {elapsed:?}, the closes {sum:?} in all"
    );
    assert_no_process_left(&marker).await;
}

#[test]
fn dropping_the_host_leaves_no_process() {
    let marker = unique_marker();
    let stubborn = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        spawn_grandchild: true,
        ..FakeConfig::default()
    };
    // Dropped inside a running runtime.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let host = McpHost::new(vec![fake_client("dropped", &stubborn, &marker)]).unwrap();
        host.initialize().await.unwrap();
        drop(host);
    });
    assert_no_process_left_blocking(&marker);

    // The runtime shut down under a live host, then the host dropped.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let host = runtime.block_on(async {
        let host = McpHost::new(vec![fake_client("orphaned", &stubborn, &marker)]).unwrap();
        host.initialize().await.unwrap();
        host
    });
    drop(runtime);
    assert_no_process_left_blocking(&marker);
    drop(host);
}

#[tokio::test]
async fn required_client_failure_fails_initialize_and_stops_the_others() {
    let marker = unique_marker();
    let broken = ClientConfig {
        required: true,
        ..fake_client(
            "broken",
            &FakeConfig {
                crash_at_init: true,
                ..FakeConfig::default()
            },
            &marker,
        )
    };
    let fine = fake_client("fine", &FakeConfig::default(), &marker);
    let optional_broken = ClientConfig::new("optional", "/nonexistent/server");
    let host = McpHost::new(vec![broken, fine, optional_broken]).unwrap();
    let err = host.initialize().await.unwrap_err();
    assert!(
        matches!(&err, Error::RequiredClientFailed { client, .. } if client == "broken"),
        "{err:?}"
    );
    assert!(host.clients().is_empty());
    assert_no_process_left(&marker).await;
    host.shutdown().await;
}

#[tokio::test]
async fn optional_client_failure_is_reported_and_skipped() {
    let marker = unique_marker();
    let fine = fake_client("fine", &FakeConfig::default(), &marker);
    let optional_broken = ClientConfig::new("optional", "/nonexistent/server");
    let host = McpHost::with_options(
        vec![fine, optional_broken],
        SecurityManager::new(),
        HostOptions::default(),
    )
    .unwrap();
    let report = host.initialize().await.unwrap();
    assert_eq!(report.ready, vec![id("fine")]);
    assert_eq!(report.failed.len(), 1);
    let status = host.status();
    let optional = status
        .iter()
        .find(|client| client.id == id("optional"))
        .unwrap();
    assert_eq!(optional.state, ClientState::Failed);
    assert!(optional.last_error.as_deref().unwrap().contains("optional"));
    echo(&host, "fine", "ok").await;
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
