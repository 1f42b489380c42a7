//! The initialize handshake: success, version negotiation, early exit, in-process fake.

use mcp_host_testkit::{assert_no_process_left, spawn_in_process, FakeConfig};
use mcp_session::protocol::LATEST_PROTOCOL_VERSION;
use mcp_session::{Error, SessionOptions};
use mcp_transport::{CloseStep, ServerName, Transport, TransportOptions};
use tokio_util::task::TaskTracker;

use crate::{spawn_fake, start, PROMPTLY};

#[tokio::test]
async fn handshake_succeeds_and_keeps_server_info() {
    let config = FakeConfig {
        name: "alpha".to_owned(),
        ..FakeConfig::default()
    };
    let running = start(config).await;
    assert_eq!(running.init.protocol_version, LATEST_PROTOCOL_VERSION);
    assert_eq!(running.init.server_info.name, "alpha");
    assert!(running.init.capabilities.tools.is_some());
    assert_eq!(
        running.session.protocol_version(),
        Some(LATEST_PROTOCOL_VERSION)
    );
    let report = running.finish().await;
    assert_eq!(report.step, CloseStep::InputClosed);
    assert!(report.status.unwrap().success());
}

#[tokio::test]
async fn older_supported_version_is_accepted() {
    for version in ["2025-06-18", "2025-03-26", "2024-11-05"] {
        let config = FakeConfig {
            protocol_version: Some(version.to_owned()),
            ..FakeConfig::default()
        };
        let running = start(config).await;
        assert_eq!(running.session.protocol_version(), Some(version));
        running.finish().await;
    }
}

#[tokio::test]
async fn unsupported_version_is_refused_naming_both() {
    let config = FakeConfig {
        protocol_version: Some("1999-01-01".to_owned()),
        ..FakeConfig::default()
    };
    let spawned = spawn_fake(&config, &TransportOptions::default());
    let result = tokio::time::timeout(
        PROMPTLY,
        mcp_session::handshake(spawned.transport, SessionOptions::default()),
    )
    .await
    .unwrap();
    let err = result.expect_err("handshake must fail");
    assert!(
        matches!(err, Error::UnsupportedProtocolVersion { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("1999-01-01"), "{message}");
    assert!(message.contains(LATEST_PROTOCOL_VERSION), "{message}");
    assert!(message.contains("fake-server"), "{message}");
    spawned
        .process
        .close(std::time::Duration::from_secs(5))
        .await;
    assert_no_process_left(&spawned.marker).await;
}

#[tokio::test]
async fn early_exit_reports_stderr_tail_and_status() {
    let config = FakeConfig {
        crash_at_init: true,
        ..FakeConfig::default()
    };
    let spawned = spawn_fake(&config, &TransportOptions::default());
    let result = tokio::time::timeout(
        PROMPTLY,
        mcp_session::handshake(spawned.transport, SessionOptions::default()),
    )
    .await
    .unwrap();
    let err = result.expect_err("handshake must fail");
    match &err {
        Error::ServerClosed {
            status,
            stderr_tail,
            ..
        } => {
            assert_eq!(status.and_then(|status| status.code()), Some(3), "{err}");
            assert!(stderr_tail.contains("crashing at init"), "{err}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("crashing at init"), "{message}");
    let report = spawned
        .process
        .close(std::time::Duration::from_secs(5))
        .await;
    assert_eq!(report.step, CloseStep::AlreadyExited);
    assert_eq!(report.status.and_then(|status| status.code()), Some(3));
    assert_no_process_left(&spawned.marker).await;
}

#[tokio::test]
async fn requests_before_the_handshake_are_refused() {
    let config = FakeConfig::default();
    let spawned = spawn_fake(&config, &TransportOptions::default());
    let (session, connection) = mcp_session::connect(spawned.transport, SessionOptions::default());
    let connection = spawned.tracker.spawn(connection);
    let err = session.list_all_tools().await.unwrap_err();
    assert!(matches!(err, Error::NotInitialized { .. }), "{err:?}");
    // `ping` is allowed before the handshake.
    session.ping(&Default::default()).await.unwrap();
    spawned
        .process
        .close(std::time::Duration::from_secs(5))
        .await;
    assert!(connection.await.unwrap().is_ok());
    assert_no_process_left(&spawned.marker).await;
}

#[tokio::test]
async fn in_process_fake_over_duplex() {
    let tracker = TaskTracker::new();
    let fake = spawn_in_process(FakeConfig::default(), &tracker);
    let transport = Transport::from_io(
        ServerName::new("in-process"),
        fake.client_read,
        fake.client_write,
        &TransportOptions::default(),
    );
    let (session, connection, init) = mcp_session::handshake(transport, SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(init.server_info.name, "fake-server");
    let connection = tracker.spawn(connection);
    let tools = session.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|tool| tool.name == "echo"));
    drop(session);
    assert!(connection.await.unwrap().is_ok());
    tracker.close();
    tokio::time::timeout(PROMPTLY, tracker.wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn auto_handshake_falls_back_to_initialize_with_an_older_server() {
    let options = SessionOptions {
        handshake: mcp_session::Handshake::Auto,
        ..SessionOptions::default()
    };
    let running =
        crate::start_with(FakeConfig::default(), options, TransportOptions::default()).await;
    // The fake speaks 2025-11-25 only: `server/discover` gets -32601, then `initialize` works.
    assert_eq!(running.init.protocol_version, LATEST_PROTOCOL_VERSION);
    let tools = running.session.list_all_tools().await.unwrap();
    assert!(!tools.is_empty());
    running.finish().await;
}

#[tokio::test]
async fn discover_only_handshake_fails_with_an_older_server() {
    let spawned = spawn_fake(&FakeConfig::default(), &TransportOptions::default());
    let options = SessionOptions {
        handshake: mcp_session::Handshake::Discover,
        ..SessionOptions::default()
    };
    let outcome =
        tokio::time::timeout(PROMPTLY, mcp_session::handshake(spawned.transport, options))
            .await
            .unwrap();
    let error = outcome.map(|_| ()).unwrap_err();
    assert!(
        matches!(error, Error::Rpc { code: -32601, .. }),
        "{error:?}"
    );
    drop(spawned.process);
    assert_no_process_left(&spawned.marker).await;
}
