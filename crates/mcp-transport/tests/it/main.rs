//! Integration tests of the stdio transport against the real fake-server process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod orphans;
mod props;
mod spawn;

use std::time::Duration;

use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, pids_with_marker, unique_marker,
    FakeConfig,
};
use mcp_transport::{
    BoxedRead, BoxedWrite, ChildProcess, CloseStep, Diagnostics, Error, FrameReader, FrameWriter,
    ServerCommand, ServerName, TransportOptions,
};
use tokio_util::task::TaskTracker;

pub(crate) const PROMPTLY: Duration = Duration::from_secs(20);
const GRACE: Duration = Duration::from_millis(500);

pub(crate) const INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

pub(crate) struct Spawned {
    pub(crate) process: ChildProcess,
    reader: FrameReader<BoxedRead>,
    writer: Option<FrameWriter<BoxedWrite>>,
    diagnostics: Diagnostics,
    pub(crate) marker: String,
    pub(crate) tracker: TaskTracker,
}

pub(crate) fn spawn(config: &FakeConfig, options: &TransportOptions) -> Spawned {
    let marker = unique_marker();
    let tracker = TaskTracker::new();
    let command = ServerCommand::new(fake_server_path()).args(fake_server_args(config, &marker));
    let (process, transport) =
        mcp_transport::spawn(ServerName::new("fake"), &command, options, &tracker).unwrap();
    let (reader, writer, diagnostics) = transport.into_parts();
    Spawned {
        process,
        reader,
        writer: Some(writer),
        diagnostics,
        marker,
        tracker,
    }
}

impl Spawned {
    pub(crate) async fn send(&mut self, frame: &[u8]) {
        let writer = self.writer.as_mut().unwrap();
        writer.queue(frame);
        writer.flush().await.unwrap();
    }

    pub(crate) async fn next(&mut self) -> Result<Option<String>, Error> {
        let frame = tokio::time::timeout(PROMPTLY, self.reader.next_frame())
            .await
            .expect("no frame in time")?;
        Ok(frame.map(|frame| String::from_utf8_lossy(frame).into_owned()))
    }

    /// Closes the process the way a session would, then checks that nothing is left.
    async fn close(self, grace: Duration) -> mcp_transport::ExitReport {
        let tracker = self.tracker.clone();
        let marker = self.marker.clone();
        let report = self.close_keeping_leftovers(grace).await;
        tracker.close();
        tokio::time::timeout(PROMPTLY, tracker.wait())
            .await
            .expect("transport tasks did not end");
        assert_no_process_left(&marker).await;
        report
    }

    /// Closes the process the way a session would: the writer is dropped when asked.
    pub(crate) async fn close_keeping_leftovers(
        mut self,
        grace: Duration,
    ) -> mcp_transport::ExitReport {
        let mut writer = self.writer.take();
        let diagnostics = self.diagnostics.clone();
        let input = async move {
            diagnostics.input_close_requested().await;
            if let Some(writer) = writer.as_mut() {
                writer.close();
            }
            std::future::pending::<()>().await;
        };
        tokio::time::timeout(PROMPTLY, async {
            tokio::select! {
                report = self.process.close(grace) => report,
                () = input => unreachable!(),
            }
        })
        .await
        .expect("close took too long")
    }
}

#[tokio::test]
async fn well_behaved_server_ends_at_the_input_step() {
    let mut spawned = spawn(&FakeConfig::default(), &TransportOptions::default());
    spawned.send(INITIALIZE).await;
    let reply = spawned.next().await.unwrap().unwrap();
    assert!(reply.contains("\"protocolVersion\""), "{reply}");
    let report = spawned.close(GRACE * 10).await;
    assert_eq!(report.step, CloseStep::InputClosed);
    assert!(report.status.unwrap().success());
    assert!(report
        .to_string()
        .contains("exited after its input was closed"));
}

#[tokio::test]
async fn server_ignoring_eof_ends_at_sigterm() {
    let config = FakeConfig {
        ignore_eof: true,
        ..FakeConfig::default()
    };
    let mut spawned = spawn(&config, &TransportOptions::default());
    spawned.send(INITIALIZE).await;
    spawned.next().await.unwrap().unwrap();
    let report = spawned.close(GRACE).await;
    assert_eq!(report.step, CloseStep::Terminated);
}

#[tokio::test]
async fn server_ignoring_sigterm_ends_at_sigkill() {
    let config = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        ..FakeConfig::default()
    };
    let mut spawned = spawn(&config, &TransportOptions::default());
    spawned.send(INITIALIZE).await;
    // The answer proves the server is up and its SIGTERM handler is installed.
    spawned.next().await.unwrap().unwrap();
    let report = spawned.close(GRACE).await;
    assert_eq!(report.step, CloseStep::Killed);
    assert!(report.status.is_some());
}

#[tokio::test]
async fn grandchild_is_killed_with_the_group() {
    let config = FakeConfig {
        spawn_grandchild: true,
        ..FakeConfig::default()
    };
    let mut spawned = spawn(&config, &TransportOptions::default());
    spawned.send(INITIALIZE).await;
    spawned.next().await.unwrap().unwrap();
    // Server and grandchild both carry the marker.
    let found = async {
        while pids_with_marker(&spawned.marker).len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, found).await.unwrap();
    // The server exits on EOF by itself; its grandchild is left to the group sweep.
    let report = spawned.close(GRACE * 10).await;
    assert_eq!(report.step, CloseStep::InputClosed);
}

#[test]
fn drop_without_close_leaves_no_process() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        spawn_grandchild: true,
        ..FakeConfig::default()
    };
    let marker = runtime.block_on(async {
        let mut spawned = spawn(&config, &TransportOptions::default());
        spawned.send(INITIALIZE).await;
        spawned.next().await.unwrap().unwrap();
        let found = async {
            while pids_with_marker(&spawned.marker).len() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(PROMPTLY, found).await.unwrap();
        spawned.marker.clone()
        // `spawned` (process, pipes, tracker) is dropped here without close.
    });
    // Even with the runtime gone, nothing of the group survives.
    drop(runtime);
    mcp_host_testkit::assert_no_process_left_blocking(&marker);
}

#[tokio::test]
async fn early_exit_keeps_stderr_tail_and_status() {
    let config = FakeConfig {
        crash_at_init: true,
        ..FakeConfig::default()
    };
    let mut spawned = spawn(&config, &TransportOptions::default());
    spawned.send(INITIALIZE).await;
    assert!(
        spawned.next().await.unwrap().is_none(),
        "expected end of output"
    );
    let status = spawned.diagnostics.wait_for_exit(PROMPTLY).await;
    assert_eq!(status.and_then(|status| status.code()), Some(3));
    let report = spawned.close(GRACE).await;
    assert_eq!(report.step, CloseStep::AlreadyExited);
    assert!(
        report.stderr_tail.contains("crashing at init"),
        "{report:?}"
    );
}

#[tokio::test]
async fn garbage_lines_are_skipped_and_counted() {
    let config = FakeConfig {
        garbage_lines: true,
        ..FakeConfig::default()
    };
    let mut spawned = spawn(&config, &TransportOptions::default());
    spawned.send(INITIALIZE).await;
    let reply = spawned.next().await.unwrap().unwrap();
    assert!(reply.starts_with('{'), "{reply}");
    assert!(spawned.reader.n_skipped() >= 1);
    spawned.close(GRACE * 10).await;
}

#[tokio::test]
async fn over_long_line_is_an_error() {
    let config = FakeConfig {
        huge_line_bytes: 256 * 1024,
        ..FakeConfig::default()
    };
    let options = TransportOptions {
        max_line_len: 64 * 1024,
        ..TransportOptions::default()
    };
    let mut spawned = spawn(&config, &options);
    spawned.send(INITIALIZE).await;
    spawned.next().await.unwrap().unwrap();
    spawned
        .send(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"huge"}}"#)
        .await;
    let err = spawned.next().await.unwrap_err();
    assert!(
        matches!(err, Error::LineTooLong { limit, .. } if limit == 64 * 1024),
        "{err:?}"
    );
    assert!(err.to_string().contains("fake"), "{err}");
    spawned.close(GRACE * 10).await;
}

#[tokio::test]
async fn missing_program_is_a_spawn_error() {
    let tracker = TaskTracker::new();
    let command = ServerCommand::new("/nonexistent/mcp-server-that-is-not-there");
    let err = mcp_transport::spawn(
        ServerName::new("ghost"),
        &command,
        &TransportOptions::default(),
        &tracker,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("ghost"), "{err}");
}

#[tokio::test]
async fn in_memory_transport_carries_frames_both_ways() {
    let (transport, peer) =
        mcp_transport::in_memory(ServerName::new("mem"), &TransportOptions::default());
    let (mut reader, mut writer, _diagnostics) = transport.into_parts();
    let mut peer_reader = FrameReader::new(ServerName::new("peer"), peer.read, 1024);
    let mut peer_writer = FrameWriter::new(ServerName::new("peer"), peer.write);
    writer.queue(b"{\"ping\":1}");
    writer.flush().await.unwrap();
    assert_eq!(
        peer_reader.next_frame().await.unwrap(),
        Some(&b"{\"ping\":1}"[..])
    );
    peer_writer.queue(b"{\"pong\":1}");
    peer_writer.flush().await.unwrap();
    assert_eq!(
        reader.next_frame().await.unwrap(),
        Some(&b"{\"pong\":1}"[..])
    );
    drop(peer_writer);
    assert_eq!(reader.next_frame().await.unwrap(), None);
}

#[test]
fn a_server_spawned_from_a_thread_that_then_ends_stays_alive() {
    // A blocking-pool thread that is idle for 10 ms ends.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(10))
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut spawned, thread_id) = tokio::task::spawn_blocking(|| {
            // SAFETY: gettid has no preconditions.
            let thread_id = unsafe { libc::gettid() };
            (
                spawn(&FakeConfig::default(), &TransportOptions::default()),
                thread_id,
            )
        })
        .await
        .unwrap();
        let thread_ended = async {
            let task = format!("/proc/self/task/{thread_id}");
            while std::path::Path::new(&task).exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(PROMPTLY, thread_ended).await.unwrap();
        // The thread that started the server is gone; the server is not.
        spawned.send(INITIALIZE).await;
        let reply = spawned.next().await.unwrap();
        assert!(
            reply.is_some_and(|reply| reply.contains("protocolVersion")),
            "the server died with the thread that started it: {}",
            spawned.diagnostics.stderr_tail()
        );
        let report = spawned.close(GRACE * 10).await;
        assert_eq!(report.step, CloseStep::InputClosed);
    });
}
