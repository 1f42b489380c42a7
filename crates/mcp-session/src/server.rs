//! The server side of a session: answering an MCP client (used by the gateway and demo server).
//!
//! [`serve`] takes a transport to a client and returns a [`ServerPeer`] handle (to send
//! notifications), a [`ServerConnection`] driver future, and a bounded stream of
//! [`IncomingRequest`]s. The driver answers `initialize`, `ping` and cancellations itself; every
//! other request comes out of the stream with its own cancellation token and is answered
//! through [`IncomingRequest::respond`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use mcp_transport::{BoxedRead, FrameReader, ServerName, Transport};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::envelope::{self, ResultMember};
use crate::outbox::{write_loop, Outbox, WriteEnd};
use crate::protocol::{
    Implementation, Progress, RpcError, ServerCapabilities, LATEST_PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
};
use crate::session::{encode_notification, lock};

/// How the server presents itself.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Name and version sent in the `initialize` result.
    pub server_info: Implementation,
    /// Capabilities sent in the `initialize` result.
    pub capabilities: ServerCapabilities,
    /// Instructions for the model, sent in the `initialize` result.
    pub instructions: Option<String>,
    /// How many requests may wait in the stream before the reader waits (default 256).
    pub request_capacity: usize,
    /// How many bytes may wait to be written to the client (beyond the batch being written)
    /// before it is considered too slow a reader and the connection ends (default 16 MiB).
    pub max_output_backlog: usize,
}

impl ServerOptions {
    /// Options with a name, a version and no capabilities.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> ServerOptions {
        ServerOptions {
            server_info: Implementation::new(name, version),
            capabilities: ServerCapabilities::default(),
            instructions: None,
            request_capacity: 256,
            max_output_backlog: crate::DEFAULT_MAX_INPUT_BACKLOG,
        }
    }
}

/// What the client said about itself in `initialize`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientHello {
    /// The protocol revision the client asked for.
    pub protocol_version: String,
    /// The client's capabilities.
    #[serde(default)]
    pub capabilities: Value,
    /// The client's name and version.
    pub client_info: Implementation,
}

/// Handle to send notifications to the client. Cheap to clone.
#[derive(Clone)]
pub struct ServerPeer {
    shared: Arc<ServerShared>,
}

impl fmt::Debug for ServerPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPeer")
            .field("peer", &self.shared.peer)
            .finish_non_exhaustive()
    }
}

struct ServerShared {
    peer: ServerName,
    options: ServerOptions,
    outbox: Outbox,
    hello: OnceLock<ClientHello>,
    /// Requests in flight, by the text of their id, with their cancellation tokens.
    in_flight: Mutex<HashMap<Box<str>, CancellationToken>>,
    /// Requests this server sent to the client, by the text of their id.
    outgoing: Mutex<HashMap<String, oneshot::Sender<Result<Value, RpcError>>>>,
    next_outgoing: std::sync::atomic::AtomicU64,
    ended: CancellationToken,
}

impl ServerPeer {
    /// What the client said in `initialize`, once it did.
    pub fn client(&self) -> Option<&ClientHello> {
        self.shared.hello.get()
    }

    /// Sends a notification to the client. Returns false if the connection has ended.
    pub fn notify(&self, method: &str, params: Option<Value>) -> bool {
        if self.shared.ended.is_cancelled() {
            return false;
        }
        match encode_notification(method, params) {
            Ok(line) => self.shared.outbox.send(line),
            Err(_) => false,
        }
    }

    /// Completes when the connection to the client has ended.
    pub fn ended(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shared.ended.cancelled()
    }

    /// Sends a request to the client (such as `sampling/createMessage`) and waits at most
    /// `timeout` for its answer. When the wait is given up (timeout, or the future is dropped),
    /// the client is sent `notifications/cancelled`.
    ///
    /// # Errors
    ///
    /// The client's error; -32603 when the connection ended or no answer came in time.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let shared = &self.shared;
        if shared.ended.is_cancelled() {
            return Err(RpcError::internal("the client connection has ended"));
        }
        let n = shared
            .next_outgoing
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("host-{n}");
        let key = Value::String(id.clone()).to_string();
        let (answer_tx, answer_rx) = oneshot::channel();
        lock(&shared.outgoing).insert(key.clone(), answer_tx);
        let mut guard = OutgoingGuard {
            shared,
            key,
            id: id.clone(),
            armed: true,
        };
        let line = serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0", "id": id, "method": method, "params": params,
        }))
        .map_err(|_| RpcError::internal("cannot encode the request"))?;
        shared.outbox.send(line);
        let answer = tokio::select! {
            answer = tokio::time::timeout(timeout, answer_rx) => answer,
            () = shared.ended.cancelled() => {
                guard.armed = false;
                return Err(RpcError::internal("the client connection has ended"));
            }
        };
        match answer {
            Ok(Ok(answer)) => {
                guard.armed = false;
                answer
            }
            Ok(Err(_)) => {
                guard.armed = false;
                Err(RpcError::internal("the client connection has ended"))
            }
            Err(_) => Err(RpcError::internal(format!(
                "the client did not answer {method} within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// Forgets a request to the client that is no longer waited for, and tells the client.
struct OutgoingGuard<'a> {
    shared: &'a ServerShared,
    key: String,
    id: String,
    armed: bool,
}

impl Drop for OutgoingGuard<'_> {
    fn drop(&mut self) {
        let waiting = lock(&self.shared.outgoing).remove(&self.key).is_some();
        if self.armed && waiting && !self.shared.ended.is_cancelled() {
            let params =
                serde_json::json!({ "requestId": self.id, "reason": "the host stopped waiting" });
            if let Ok(line) = encode_notification("notifications/cancelled", Some(params)) {
                self.shared.outbox.send(line);
            }
        }
    }
}

/// A request from the client, to be answered with [`IncomingRequest::respond`].
///
/// # Drop behavior
///
/// Dropping it unanswered answers with an internal error (-32603), unless the client cancelled
/// the request, in which case no answer is sent, as the protocol asks.
pub struct IncomingRequest {
    id: Box<RawValue>,
    method: String,
    params: Option<Value>,
    progress_token: Option<Value>,
    cancelled: CancellationToken,
    peer: ServerPeer,
    answered: bool,
}

impl fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("id", &self.id.get())
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl IncomingRequest {
    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The parameters.
    pub fn params(&self) -> Option<&Value> {
        self.params.as_ref()
    }

    /// Takes the parameters out (leaving `None`).
    pub fn take_params(&mut self) -> Option<Value> {
        self.params.take()
    }

    /// The progress token the client attached, if any.
    pub fn progress_token(&self) -> Option<&Value> {
        self.progress_token.as_ref()
    }

    /// Cancelled when the client sends `notifications/cancelled` for this request or the
    /// connection ends.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancelled
    }

    /// The handle to the client.
    pub fn peer(&self) -> &ServerPeer {
        &self.peer
    }

    /// Sends a progress report, if the client asked for progress.
    pub fn progress(&self, progress: &Progress) {
        let Some(token) = &self.progress_token else {
            return;
        };
        let mut params = match serde_json::to_value(progress) {
            Ok(Value::Object(params)) => params,
            _ => Map::new(),
        };
        params.insert("progressToken".to_owned(), token.clone());
        self.peer
            .notify("notifications/progress", Some(Value::Object(params)));
    }

    /// Answers the request.
    pub fn respond(mut self, outcome: Result<Value, RpcError>) {
        self.answered = true;
        self.send(outcome.map(|value| serde_json::to_string(&value).ok()));
    }

    /// Answers the request with a result that is already JSON text (no re-encoding).
    pub fn respond_raw(mut self, result: Box<RawValue>) {
        self.answered = true;
        self.send(Ok(Some(String::from(Box::<str>::from(result)))));
    }

    fn send(&self, outcome: Result<Option<String>, RpcError>) {
        let n_in_flight = {
            let mut in_flight = lock(&self.peer.shared.in_flight);
            in_flight.remove(self.id.get());
            in_flight.len()
        };
        if self.cancelled.is_cancelled() {
            // Cancelled requests are not answered.
            return;
        }
        let line = match outcome {
            Ok(Some(result)) => {
                // One buffer, sized once: the envelope around the result as it is.
                let id = self.id.get();
                let mut line = String::with_capacity(36 + id.len() + result.len());
                line.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
                line.push_str(id);
                line.push_str(",\"result\":");
                line.push_str(&result);
                line.push('}');
                line
            }
            Ok(None) => error_line(&self.id, &RpcError::internal("failed to encode the result")),
            Err(error) => error_line(&self.id, &error),
        };
        // The last answer in flight is written by this task; others are batched by the driver.
        if n_in_flight == 0 {
            self.peer.shared.outbox.send(line.into_bytes());
        } else {
            self.peer.shared.outbox.send_batched(line.into_bytes());
        }
    }
}

impl Drop for IncomingRequest {
    fn drop(&mut self) {
        if !self.answered {
            self.send(Err(RpcError::internal(
                "the request was dropped unanswered",
            )));
        }
    }
}

fn error_line(id: &RawValue, error: &RpcError) -> String {
    let error = serde_json::to_string(error)
        .unwrap_or_else(|_| "{\"code\":-32603,\"message\":\"internal error\"}".to_owned());
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{}}}",
        id.get(),
        error
    )
}

/// The driver of a server session: poll it for anything to happen.
///
/// It completes when the client closes its output (end of input for us) or breaks framing.
///
/// # Drop behavior
///
/// Dropping it ends the connection: every request in flight is cancelled.
#[must_use = "a server session does nothing unless its connection is polled"]
pub struct ServerConnection {
    inner: Pin<Box<dyn Future<Output = Result<(), mcp_transport::Error>> + Send>>,
    shared: Arc<ServerShared>,
}

impl fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConnection")
            .field("peer", &self.shared.peer)
            .finish_non_exhaustive()
    }
}

impl Future for ServerConnection {
    type Output = Result<(), mcp_transport::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl Drop for ServerConnection {
    fn drop(&mut self) {
        end(&self.shared);
    }
}

fn end(shared: &ServerShared) {
    shared.ended.cancel();
    shared.outbox.close();
    lock(&shared.outgoing).clear();
    for (_, token) in lock(&shared.in_flight).drain() {
        token.cancel();
    }
}

/// Serves an MCP client over `transport`.
pub fn serve(
    transport: Transport,
    options: ServerOptions,
) -> (
    ServerPeer,
    ServerConnection,
    mpsc::Receiver<IncomingRequest>,
) {
    let (reader, writer, diagnostics) = transport.into_parts();
    let (requests_tx, requests_rx) = mpsc::channel(options.request_capacity.max(1));
    let max_output_backlog = options.max_output_backlog;
    let shared = Arc::new(ServerShared {
        peer: diagnostics.server().clone(),
        options,
        outbox: Outbox::new(writer, max_output_backlog),
        hello: OnceLock::new(),
        in_flight: Mutex::new(HashMap::new()),
        outgoing: Mutex::new(HashMap::new()),
        next_outgoing: std::sync::atomic::AtomicU64::new(1),
        ended: CancellationToken::new(),
    });
    let peer = ServerPeer {
        shared: shared.clone(),
    };
    let driver_peer = peer.clone();
    let driver = async move {
        let reading = read_loop(&driver_peer, reader, requests_tx);
        let writing = async {
            let end = write_loop(
                &driver_peer.shared.peer,
                &diagnostics,
                &driver_peer.shared.outbox,
                None,
            )
            .await;
            match end {
                WriteEnd::Backlog { limit } => limit,
                // The reader goes on until the client's input ends.
                _ => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = reading => outcome,
            limit = writing => {
                let peer = driver_peer.shared.peer.clone();
                tracing::error!(peer = %peer, limit, "the client reads too slowly; ending the connection");
                Err(mcp_transport::Error::Write {
                    server: peer,
                    source: std::io::Error::other(format!(
                        "the peer reads too slowly (more than {limit} bytes waited to be written)"
                    )),
                })
            }
        };
        end(&driver_peer.shared);
        outcome
    };
    let connection = ServerConnection {
        inner: Box::pin(driver),
        shared,
    };
    (peer, connection, requests_rx)
}

async fn read_loop(
    peer: &ServerPeer,
    mut reader: FrameReader<BoxedRead>,
    requests: mpsc::Sender<IncomingRequest>,
) -> Result<(), mcp_transport::Error> {
    let shared = &peer.shared;
    while let Some(frame) = reader.next_frame().await? {
        let message = match envelope::parse(frame, |_| None) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(peer = %shared.peer, error = %error, "skipping a message that is not valid JSON-RPC");
                continue;
            }
        };
        let id = message.id;
        let Some(method) = message.method else {
            // A response, to one of our requests to the client (ServerPeer::request).
            let waiting = id.and_then(|id| lock(&shared.outgoing).remove(id.get()));
            let Some(waiting) = waiting else {
                tracing::debug!(peer = %shared.peer, "ignoring a response nobody waits for");
                continue;
            };
            let answer = match (message.error, message.result) {
                (Some(error), _) => Err(error),
                (None, Some(ResultMember::Raw(raw))) => serde_json::from_str(raw.get())
                    .map_err(|_| RpcError::internal("the client's result is not JSON")),
                (None, _) => Err(RpcError::internal("the client's answer has no result")),
            };
            let _ = waiting.send(answer);
            continue;
        };
        let Some(id) = id else {
            handle_notification(shared, &method, message.params);
            continue;
        };
        match &*method {
            "initialize" => answer_initialize(peer, id, message.params),
            "ping" => {
                let line = format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{}}}}",
                    id.get()
                );
                shared.outbox.send(line.into_bytes());
            }
            _ => {
                let params: Option<Value> = message
                    .params
                    .and_then(|raw| serde_json::from_str(raw.get()).ok());
                let progress_token = params
                    .as_ref()
                    .and_then(|params| params.get("_meta"))
                    .and_then(|meta| meta.get("progressToken"))
                    .cloned();
                let cancelled = shared.ended.child_token();
                lock(&shared.in_flight).insert(Box::from(id.get()), cancelled.clone());
                let request = IncomingRequest {
                    id: id.to_owned(),
                    method: method.into_owned(),
                    params,
                    progress_token,
                    cancelled,
                    peer: peer.clone(),
                    answered: false,
                };
                if let Err(rejected) = requests.send(request).await {
                    rejected
                        .0
                        .respond(Err(RpcError::internal("the server is shutting down")));
                }
            }
        }
    }
    Ok(())
}

fn handle_notification(shared: &ServerShared, method: &str, params: Option<&RawValue>) {
    match method {
        "notifications/cancelled" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Cancelled<'a> {
                #[serde(borrow)]
                request_id: &'a RawValue,
            }
            let parsed =
                params.and_then(|raw| serde_json::from_str::<Cancelled<'_>>(raw.get()).ok());
            if let Some(cancelled) = parsed {
                if let Some(token) = lock(&shared.in_flight).remove(cancelled.request_id.get()) {
                    token.cancel();
                }
            }
        }
        "notifications/initialized" => {
            tracing::debug!(peer = %shared.peer, "client initialized");
        }
        other => tracing::debug!(peer = %shared.peer, method = other, "ignoring a notification"),
    }
}

fn answer_initialize(peer: &ServerPeer, id: &RawValue, params: Option<&RawValue>) {
    let shared = &peer.shared;
    let hello = params.and_then(|raw| serde_json::from_str::<ClientHello>(raw.get()).ok());
    let version = match &hello {
        Some(hello) if SUPPORTED_PROTOCOL_VERSIONS.contains(&hello.protocol_version.as_str()) => {
            hello.protocol_version.clone()
        }
        _ => LATEST_PROTOCOL_VERSION.to_owned(),
    };
    if let Some(hello) = hello {
        let _ = shared.hello.set(hello);
    }
    let mut result = serde_json::json!({
        "protocolVersion": version,
        "capabilities": shared.options.capabilities,
        "serverInfo": shared.options.server_info,
    });
    if let (Some(instructions), Value::Object(map)) = (&shared.options.instructions, &mut result) {
        map.insert(
            "instructions".to_owned(),
            Value::String(instructions.clone()),
        );
    }
    let line = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{}}}",
        id.get(),
        result
    );
    let _ = shared.outbox.send(line.into_bytes());
}
