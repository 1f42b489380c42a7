//! Integration tests of the gateway library: an in-process `Gateway` over real fake-server
//! processes, reached by a real HTTP client, with limits set low to reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod limits;

use std::sync::Arc;
use std::time::Duration;

use mcp_gateway::{Gateway, HttpListener, HttpOptions};
use mcp_host::McpHost;
use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{fake_server_args, fake_server_path, FakeConfig};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) const PROMPTLY: Duration = Duration::from_secs(30);

/// A gateway served in this process, and how to stop it.
pub(crate) struct Served {
    pub(crate) url: String,
    pub(crate) host: Arc<McpHost>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    pub(crate) client: reqwest::Client,
}

/// Serves one fake server `s` through a gateway with `options` (its address is replaced by a
/// free loopback port) and `max_requests_in_flight`.
pub(crate) async fn serve(
    marker: &str,
    options: impl FnOnce(&mut HttpOptions),
    max_requests_in_flight: usize,
) -> Served {
    let config = ClientConfig {
        args: fake_server_args(&FakeConfig::default(), marker),
        ..ClientConfig::new("s", fake_server_path().to_string_lossy())
    };
    let host = Arc::new(McpHost::new(vec![config]).unwrap());
    host.initialize().await.unwrap();
    let mut http = HttpOptions::new("127.0.0.1:0");
    options(&mut http);
    let listener = HttpListener::bind(http).await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let gateway = Gateway::builder(host.clone())
        .max_requests_in_flight(max_requests_in_flight)
        .build();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let stopped = stop.clone();
    tasks.spawn(async move {
        gateway
            .serve_http(listener, stopped.cancelled_owned())
            .await
            .unwrap();
    });
    Served {
        url,
        host,
        stop,
        tasks,
        client: reqwest::Client::new(),
    }
}

impl Served {
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        tokio::time::timeout(PROMPTLY, self.tasks.join_next())
            .await
            .unwrap();
        self.host.shutdown().await;
    }

    pub(crate) async fn post(
        &self,
        session: Option<&str>,
        body: &Value,
        accept: &str,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        tokio::time::timeout(PROMPTLY, request.send())
            .await
            .unwrap()
            .unwrap()
    }

    /// Opens a session; `initialized` says whether to finish the handshake.
    pub(crate) async fn session(&self, initialized: bool) -> reqwest::Response {
        let initialize = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}
        });
        let response = self.post(None, &initialize, EVENT_STREAM).await;
        if initialized && response.status().is_success() {
            let session = session_id(&response);
            let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let ack = self.post(Some(&session), &done, EVENT_STREAM).await;
            assert_eq!(ack.status(), 202);
        }
        response
    }
}

pub(crate) const EVENT_STREAM: &str = "application/json, text/event-stream";

pub(crate) fn session_id(response: &reqwest::Response) -> String {
    response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

/// The JSON-RPC messages of an SSE body.
pub(crate) fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .collect();
            let data = data.join("\n");
            (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
        })
        .collect()
}
