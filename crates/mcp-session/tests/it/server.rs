//! The server side, exercised by our own client session over an in-memory pipe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcp_session::protocol::{Progress, RpcError, ServerCapabilities};
use mcp_session::server::{serve, IncomingRequest, ServerOptions};
use mcp_session::{Error, RequestOptions, SessionOptions};
use mcp_transport::{ServerName, Transport, TransportOptions};
use serde_json::json;
use tokio_util::task::TaskTracker;

use crate::PROMPTLY;

async fn handle(request: IncomingRequest) {
    match request.method() {
        "tools/list" => request.respond(Ok(json!({ "tools": [
            { "name": "wait", "inputSchema": { "type": "object" } }
        ] }))),
        "tools/call" => {
            for step in 1..=3 {
                request.progress(&Progress {
                    progress: f64::from(step),
                    total: Some(3.0),
                    message: None,
                });
            }
            let wait_ms = request
                .params()
                .and_then(|p| p["arguments"]["ms"].as_u64())
                .unwrap_or(0);
            let cancelled = request.cancellation().clone();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {
                    request.respond(Ok(json!({ "content": [{ "type": "text", "text": "done" }] })));
                }
                () = cancelled.cancelled() => {
                    // Report the cancellation through a notification the test can see.
                    request.peer().notify("notifications/message", Some(json!({
                        "level": "info", "data": "cancelled"
                    })));
                }
            }
        }
        "drop/me" => drop(request),
        other => {
            let error = RpcError::method_not_found(other);
            request.respond(Err(error));
        }
    }
}

#[tokio::test]
async fn our_client_and_our_server_talk() {
    let tracker = TaskTracker::new();
    let (client_transport, peer) =
        mcp_transport::in_memory(ServerName::new("gateway"), &TransportOptions::default());
    let server_transport = Transport::from_io(
        ServerName::new("client"),
        peer.read,
        peer.write,
        &TransportOptions::default(),
    );
    let mut options = ServerOptions::new("test-server", "1.0");
    options.capabilities = ServerCapabilities {
        tools: Some(Default::default()),
        ..ServerCapabilities::default()
    };
    let (server_peer, server_connection, mut requests) = serve(server_transport, options);
    let server = tracker.spawn(server_connection);
    tracker.spawn(async move {
        let mut handlers = tokio::task::JoinSet::new();
        while let Some(request) = requests.recv().await {
            handlers.spawn(handle(request));
        }
        while handlers.join_next().await.is_some() {}
    });

    let (session, connection, init) =
        mcp_session::handshake(client_transport, SessionOptions::default())
            .await
            .unwrap();
    let connection = tracker.spawn(connection);
    assert_eq!(init.server_info.name, "test-server");
    assert_eq!(init.protocol_version, "2025-11-25");
    assert_eq!(server_peer.client().unwrap().client_info.name, "mcp-host");
    let mut events = session.take_events().unwrap();

    let tools = session.list_all_tools().await.unwrap();
    assert_eq!(tools[0].name, "wait");
    session.ping(&RequestOptions::default()).await.unwrap();

    let n_progress = Arc::new(AtomicUsize::new(0));
    let counter = n_progress.clone();
    let options = RequestOptions {
        timeout: None,
        on_progress: Some(Arc::new(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })),
    };
    let result = session
        .call_tool("wait", json!({ "ms": 10 }).as_object().cloned(), &options)
        .await
        .unwrap();
    assert_eq!(result.text(), "done");
    assert_eq!(n_progress.load(Ordering::Relaxed), 3);

    // A timeout at the client cancels the request at the server.
    let err = session
        .call_tool(
            "wait",
            json!({ "ms": 60_000 }).as_object().cloned(),
            &RequestOptions::with_timeout(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let event = tokio::time::timeout(PROMPTLY, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(format!("{event:?}").contains("cancelled"), "{event:?}");

    let err = session
        .request::<serde_json::Value>("drop/me", None, &RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32603));
    let err = session
        .request::<serde_json::Value>("no/such", None, &RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32601));

    drop(session);
    connection.await.unwrap().unwrap();
    tokio::time::timeout(PROMPTLY, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tracker.close();
    tokio::time::timeout(PROMPTLY, tracker.wait())
        .await
        .unwrap();
}
