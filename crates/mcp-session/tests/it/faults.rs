//! Faults on the server side: death mid-call, stderr floods, garbage and over-long lines.

use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, FakeConfig};
use mcp_session::{Error, RequestOptions, SessionOptions};
use mcp_transport::{CloseStep, TransportOptions};
use serde_json::json;
use tokio::task::JoinSet;

use crate::{args, start, start_with, PROMPTLY};

#[tokio::test]
async fn server_killed_mid_call_fails_every_pending_call_at_once() {
    let running = start(FakeConfig::default()).await;
    let mut calls = JoinSet::new();
    for _ in 0..50 {
        let session = running.session.clone();
        calls.spawn(async move {
            session
                .call_tool(
                    "slow",
                    args(json!({ "ms": 60_000 })),
                    // Far beyond the test's bound: the calls must end because the server died.
                    &RequestOptions::with_timeout(Duration::from_secs(300)),
                )
                .await
        });
    }
    // Wait until all 50 are in flight, then kill the server.
    let in_flight = async {
        while running.session.n_pending() < 50 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(PROMPTLY, in_flight).await.unwrap();
    running.process.kill();
    let mut n_failed = 0;
    while let Some(joined) = tokio::time::timeout(PROMPTLY, calls.join_next())
        .await
        .unwrap()
    {
        let err = joined.unwrap().unwrap_err();
        assert!(matches!(err, Error::ServerClosed { .. }), "{err:?}");
        n_failed += 1;
    }
    assert_eq!(n_failed, 50);
    let ended = running.connection.await.unwrap();
    assert!(
        matches!(ended, Err(Error::ServerClosed { .. })),
        "{ended:?}"
    );
    // New requests fail at once too.
    let err = running
        .session
        .ping(&RequestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ServerClosed { .. }), "{err:?}");
    let report = running.process.close(Duration::from_secs(5)).await;
    assert_eq!(report.step, CloseStep::AlreadyExited);
    assert_no_process_left(&running.marker).await;
}

#[tokio::test]
async fn server_crash_on_call_carries_stderr_and_status() {
    let config = FakeConfig {
        crash_after: Some(3),
        ..FakeConfig::default()
    };
    let running = start(config).await;
    for _ in 0..3 {
        running
            .session
            .call_tool(
                "echo",
                args(json!({ "text": "ok" })),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
    }
    let err = running
        .session
        .call_tool(
            "echo",
            args(json!({ "text": "boom" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    match &err {
        Error::ServerClosed { status, .. } => {
            assert_eq!(status.and_then(|status| status.code()), Some(5), "{err}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_flood_does_not_stall_calls() {
    let config = FakeConfig {
        stderr_flood_bytes: 50 * 1024 * 1024,
        ..FakeConfig::default()
    };
    let running = start(config).await;
    for call_idx in 0..200 {
        let text = format!("during flood {call_idx}");
        let result = running
            .session
            .call_tool(
                "echo",
                args(json!({ "text": text })),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(result.text(), text);
    }
    let tail = running.session.diagnostics().stderr_tail();
    assert!(tail.len() <= 16 * 1024, "tail is {} bytes", tail.len());
    let report = running.finish().await;
    assert!(report.stderr_tail.len() <= 16 * 1024);
    assert!(report.stderr_tail.lines().count() <= 64);
}

#[tokio::test]
async fn garbage_lines_are_skipped() {
    let config = FakeConfig {
        garbage_lines: true,
        ..FakeConfig::default()
    };
    let running = start(config).await;
    for _ in 0..10 {
        let result = running
            .session
            .call_tool(
                "echo",
                args(json!({ "text": "clean" })),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(result.text(), "clean");
    }
    running.finish().await;
}

#[tokio::test]
async fn over_long_line_is_a_typed_error_and_closes_cleanly() {
    let config = FakeConfig {
        huge_line_bytes: 4 * 1024 * 1024,
        ..FakeConfig::default()
    };
    let transport_options = TransportOptions {
        max_line_len: 1024 * 1024,
        ..TransportOptions::default()
    };
    let running = start_with(config, SessionOptions::default(), transport_options).await;
    let err = running
        .session
        .call_tool("huge", None, &RequestOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::Transport {
            source: mcp_transport::Error::LineTooLong { limit, .. },
            ..
        } => assert_eq!(*limit, 1024 * 1024),
        other => panic!("unexpected error: {other:?}"),
    }
    let ended = tokio::time::timeout(PROMPTLY, running.connection)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(Error::Transport { .. })), "{ended:?}");
    let report = tokio::time::timeout(PROMPTLY, running.process.close(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(report.status.is_some());
    assert_no_process_left(&running.marker).await;
}

#[tokio::test]
async fn server_closing_stdout_but_running_fails_calls_and_is_stopped() {
    let config = FakeConfig {
        close_stdout_after_init: true,
        ignore_eof: true,
        ..FakeConfig::default()
    };
    let running = start(config).await;
    let ended = tokio::time::timeout(PROMPTLY, running.connection)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ended, Err(Error::ServerClosed { .. })),
        "{ended:?}"
    );
    let err = running
        .session
        .call_tool(
            "echo",
            args(json!({ "text": "x" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ServerClosed { .. }), "{err:?}");
    // The process is still running and ignores end of input; close must stop it.
    assert!(!running.process.diagnostics().has_exited());
    let report = tokio::time::timeout(PROMPTLY, running.process.close(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(report.step, CloseStep::Terminated);
    assert!(report.status.is_some());
    assert_no_process_left(&running.marker).await;
}

#[tokio::test]
async fn request_flood_from_the_server_is_answered_and_bounded() {
    let config = FakeConfig {
        request_flood: 2_000,
        ..FakeConfig::default()
    };
    let running = start(config).await;
    let result = running
        .session
        .call_tool(
            "echo",
            args(json!({ "text": "meanwhile" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "meanwhile");
    // Every request got an answer (`ping` a result, sampling -32601), with nothing kept per request.
    let answered = async {
        loop {
            let result = running
                .session
                .call_tool("flood_answers", None, &RequestOptions::default())
                .await
                .unwrap();
            if result.text() == "2000" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, answered).await.unwrap();
    assert_eq!(running.session.n_pending(), 0);
    running.finish().await;
}

#[tokio::test]
async fn a_server_that_closes_its_input_fails_new_and_pending_calls_at_once() {
    let running = start(FakeConfig::default()).await;
    // Far beyond the test's bound: the calls must end because the input is gone.
    let long = RequestOptions::with_timeout(Duration::from_secs(300));
    let session = running.session.clone();
    let options = long.clone();
    let pending = running.tracker.spawn(async move {
        session
            .call_tool("slow", args(json!({ "ms": 60_000 })), &options)
            .await
    });
    let in_flight = async {
        while running.session.n_pending() < 1 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(PROMPTLY, in_flight).await.unwrap();
    // The server closes its input (for real: writes to it fail) but keeps running and answering.
    let closing = running
        .session
        .call_tool("close_input", None, &RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(closing.text(), "closing my input");
    let closed = async {
        while !running
            .session
            .diagnostics()
            .stderr_tail()
            .contains("input closed")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, closed).await.unwrap();
    let err = tokio::time::timeout(
        PROMPTLY,
        running
            .session
            .call_tool("echo", args(json!({ "text": "lost" })), &long),
    )
    .await
    .expect("a call written into a closed input waited for its timeout")
    .unwrap_err();
    assert!(matches!(err, Error::InputClosed { .. }), "{err:?}");
    assert!(err.to_string().contains("fake-server"), "{err}");
    let err = tokio::time::timeout(PROMPTLY, pending)
        .await
        .expect("a pending call waited for its timeout")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::InputClosed { .. }), "{err:?}");
    // And the session is over: later calls fail at once with the same cause.
    assert!(running.session.is_closed());
    let err = running
        .session
        .ping(&RequestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InputClosed { .. }), "{err:?}");
    let ended = tokio::time::timeout(PROMPTLY, running.connection)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(Error::InputClosed { .. })), "{ended:?}");
    // The server still runs; close stops it.
    let report = tokio::time::timeout(PROMPTLY, running.process.close(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(report.status.is_some());
    assert_no_process_left(&running.marker).await;
}

#[tokio::test]
async fn a_server_that_reads_too_slowly_ends_the_session_when_the_backlog_is_full() {
    // 20,000 pings make ~1 MB of answers; the server reads 4 KiB every 20 ms, so a write always
    // makes progress within the write timeout and only the backlog bound can stop it.
    let config = FakeConfig {
        request_flood: 20_000,
        request_flood_method: Some("ping".to_owned()),
        read_slowly_after_init_ms: Some(20),
        ..FakeConfig::default()
    };
    let options = SessionOptions {
        write_timeout: Duration::from_secs(2),
        max_input_backlog: 256 * 1024,
        ..SessionOptions::default()
    };
    let running = start_with(config, options, TransportOptions::default()).await;
    let ended = tokio::time::timeout(PROMPTLY, running.connection)
        .await
        .expect("the backlog grew without bound")
        .unwrap();
    match &ended {
        Err(error @ Error::InputBacklog { limit, .. }) => {
            assert_eq!(*limit, 256 * 1024);
            assert!(error.to_string().contains("fake-server"), "{error}");
        }
        other => panic!("unexpected end: {other:?}"),
    }
    let err = running
        .session
        .ping(&RequestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InputBacklog { .. }), "{err:?}");
    let report = tokio::time::timeout(PROMPTLY, running.process.close(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(report.status.is_some());
    assert_no_process_left(&running.marker).await;
}
