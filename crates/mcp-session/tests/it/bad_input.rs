//! Bad input from a server, scripted byte by byte over an in-memory pipe; and a server that stops
//! reading its input.

use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, FakeConfig};
use mcp_session::{Error, RequestOptions, Session, SessionOptions};
use mcp_transport::{FrameReader, PeerIo, ServerName, TransportOptions};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_util::task::TaskTracker;

use crate::{args, start_with, PROMPTLY};

/// A session whose "server" is the test itself, already past the handshake.
struct Scripted {
    session: Session,
    peer_reader: FrameReader<tokio::io::DuplexStream>,
    peer_write: tokio::io::DuplexStream,
    tracker: TaskTracker,
    connection: tokio::task::JoinHandle<Result<(), Error>>,
}

async fn scripted(transport_options: TransportOptions) -> Scripted {
    let (transport, PeerIo { read, write }) =
        mcp_transport::in_memory(ServerName::new("scripted"), &transport_options);
    let mut peer_reader = FrameReader::new(ServerName::new("client"), read, 1 << 20);
    let mut peer_write = write;
    let tracker = TaskTracker::new();
    let (session, connection) = mcp_session::connect(transport, SessionOptions::default());
    let connection = tracker.spawn(connection);
    let init = {
        let session = session.clone();
        tracker.spawn(async move { session.initialize().await })
    };
    let request = peer_reader.next_frame().await.unwrap().unwrap();
    let request: Value = serde_json::from_slice(request).unwrap();
    let response = json!({ "jsonrpc": "2.0", "id": request["id"], "result": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": { "name": "s", "version": "0" }
    }});
    peer_write
        .write_all(format!("{response}\n").as_bytes())
        .await
        .unwrap();
    tokio::time::timeout(PROMPTLY, init)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // notifications/initialized
    peer_reader.next_frame().await.unwrap().unwrap();
    Scripted {
        session,
        peer_reader,
        peer_write,
        tracker,
        connection,
    }
}

impl Scripted {
    /// Starts a `ping` and returns its future plus the id the server saw.
    async fn next_request_id(&mut self) -> Value {
        let frame = tokio::time::timeout(PROMPTLY, self.peer_reader.next_frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let request: Value = serde_json::from_slice(frame).unwrap();
        request["id"].clone()
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.peer_write.write_all(bytes).await.unwrap();
    }
}

#[tokio::test]
async fn unknown_duplicate_and_malformed_responses_are_skipped() {
    let mut scripted = scripted(TransportOptions::default()).await;
    let session = scripted.session.clone();
    let call = scripted.tracker.spawn(async move {
        session
            .request::<Value>("tools/list", None, &RequestOptions::default())
            .await
    });
    let id = scripted.next_request_id().await;
    let mut nested = "[".repeat(100_000);
    nested.push_str(&"]".repeat(100_000));
    let mut junk: Vec<u8> = Vec::new();
    junk.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":999,\"result\":{}}\n");
    junk.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"not-ours\",\"result\":{}}\n");
    junk.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\xfe invalid utf-8\"}\n",
    );
    junk.extend_from_slice(nested.as_bytes());
    junk.push(b'\n');
    junk.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"id\":{\"weird\":true},\"error\":{\"code\":\"x\"}}\n",
    );
    junk.extend_from_slice(b"{\"jsonrpc\":\"2.0\"}\n");
    junk.extend_from_slice(b"{\"truncated\":\n");
    scripted.send(&junk).await;
    let answer = json!({ "jsonrpc": "2.0", "id": id, "result": { "tools": [] } });
    scripted
        .send(format!("{answer}\n{answer}\n").as_bytes())
        .await;
    let result = tokio::time::timeout(PROMPTLY, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(result, json!({ "tools": [] }));
    // The session still works after all of that.
    let session = scripted.session.clone();
    let ping = scripted
        .tracker
        .spawn(async move { session.ping(&RequestOptions::default()).await });
    let id = scripted.next_request_id().await;
    scripted
        .send(format!("{}\n", json!({ "jsonrpc": "2.0", "id": id, "result": {} })).as_bytes())
        .await;
    tokio::time::timeout(PROMPTLY, ping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(scripted.session.n_pending(), 0);
    drop(scripted.session);
    scripted.connection.await.unwrap().unwrap();
}

/// It measures the resident memory of the whole process, so it runs in a process of its own.
#[test]
fn a_100_mib_line_is_refused_with_bounded_memory() {
    mcp_host_testkit::in_own_process(
        "bad_input::a_100_mib_line_is_refused_with_bounded_memory",
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(a_100_mib_line_is_refused_with_bounded_memory_alone());
        },
    );
}

async fn a_100_mib_line_is_refused_with_bounded_memory_alone() {
    let mut scripted = scripted(TransportOptions::default()).await;
    let session = scripted.session.clone();
    let call = scripted.tracker.spawn(async move {
        session
            .request::<Value>("tools/list", None, &RequestOptions::default())
            .await
    });
    scripted.next_request_id().await;
    let before = mcp_host_testkit::rss_kib();
    let chunk = vec![b'a'; 1 << 20];
    let mut write = scripted.peer_write;
    let flood = scripted.tracker.spawn(async move {
        write
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"")
            .await?;
        for _ in 0..100 {
            write.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let err = tokio::time::timeout(PROMPTLY, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                source: mcp_transport::Error::LineTooLong { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let grown_kib = mcp_host_testkit::rss_kib().saturating_sub(before);
    // The limit is 16 MiB; reading the whole line would take 100 MiB.
    assert!(grown_kib < 48 * 1024, "RSS grew by {grown_kib} KiB");
    let ended = tokio::time::timeout(PROMPTLY, scripted.connection)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(Error::Transport { .. })), "{ended:?}");
    // The writer stops when the reader is gone.
    let _ = tokio::time::timeout(PROMPTLY, flood).await.unwrap();
}

#[tokio::test]
async fn server_that_stops_reading_ends_the_session() {
    let config = FakeConfig {
        stop_reading_after_init: true,
        ..FakeConfig::default()
    };
    let options = SessionOptions {
        write_timeout: Duration::from_millis(300),
        ..SessionOptions::default()
    };
    let running = start_with(config, options, TransportOptions::default()).await;
    let big = "x".repeat(256 * 1024);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let session = running.session.clone();
        let text = big.clone();
        calls.spawn(async move {
            session
                .call_tool(
                    "echo",
                    args(json!({ "text": text })),
                    &RequestOptions::default(),
                )
                .await
        });
    }
    while let Some(joined) = tokio::time::timeout(PROMPTLY, calls.join_next())
        .await
        .unwrap()
    {
        let err = joined.unwrap().unwrap_err();
        assert!(matches!(err, Error::InputStalled { .. }), "{err:?}");
    }
    let ended = tokio::time::timeout(PROMPTLY, running.connection)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ended, Err(Error::InputStalled { .. })),
        "{ended:?}"
    );
    let report = tokio::time::timeout(PROMPTLY, running.process.close(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(report.status.is_some());
    assert_no_process_left(&running.marker).await;
}
