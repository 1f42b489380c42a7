//! Integration tests of the gateway library: an in-process `Gateway` over real fake-server
//! processes, reached by a real HTTP client, with limits set low to reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod identity;
mod limits;
mod passthrough;
mod replicas;
mod search;
mod tasks;

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
    pub(crate) stop: CancellationToken,
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
    serve_with(vec![config], options, |builder| {
        builder.max_requests_in_flight(max_requests_in_flight)
    })
    .await
}

/// A fake server `id`, tagged with `marker`.
pub(crate) fn fake(id: &str, marker: &str) -> ClientConfig {
    ClientConfig {
        args: fake_server_args(&FakeConfig::default(), marker),
        ..ClientConfig::new(id, fake_server_path().to_string_lossy())
    }
}

/// Serves `servers` through a gateway set up by `configure`.
pub(crate) async fn serve_with(
    servers: Vec<ClientConfig>,
    options: impl FnOnce(&mut HttpOptions),
    configure: impl FnOnce(mcp_gateway::GatewayBuilder) -> mcp_gateway::GatewayBuilder,
) -> Served {
    let host = Arc::new(McpHost::new(servers).unwrap());
    host.initialize().await.unwrap();
    let mut http = HttpOptions::new("127.0.0.1:0");
    options(&mut http);
    let listener = HttpListener::bind(http).await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let gateway = configure(Gateway::builder(host.clone())).build();
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
        self.post_as(None, session, body, accept).await
    }

    /// POSTs with a bearer token.
    pub(crate) async fn post_as(
        &self,
        token: Option<&str>,
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
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        tokio::time::timeout(PROMPTLY, request.send())
            .await
            .unwrap()
            .unwrap()
    }

    /// Opens a session; `initialized` says whether to finish the handshake.
    pub(crate) async fn session(&self, initialized: bool) -> reqwest::Response {
        self.session_as(None, initialized).await
    }

    /// Opens a session with a bearer token.
    pub(crate) async fn session_as(
        &self,
        token: Option<&str>,
        initialized: bool,
    ) -> reqwest::Response {
        let initialize = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}
        });
        let response = self.post_as(token, None, &initialize, EVENT_STREAM).await;
        if initialized && response.status().is_success() {
            let session = session_id(&response);
            let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let ack = self
                .post_as(token, Some(&session), &done, EVENT_STREAM)
                .await;
            assert_eq!(ack.status(), 202);
        }
        response
    }

    /// A request's answer: the one JSON-RPC response in its SSE body.
    pub(crate) async fn ask(&self, token: &str, session: &str, request: &Value) -> Value {
        let response = self
            .post_as(Some(token), Some(session), request, EVENT_STREAM)
            .await;
        assert_eq!(response.status(), 200, "{request}");
        let messages = events(&response.text().await.unwrap());
        messages
            .into_iter()
            .find(|message| message.get("id").is_some())
            .expect("no response")
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
