//! A fake Streamable HTTP MCP server (protocol 2025-11-25), in process, with scriptable faults.
//!
//! It listens on `127.0.0.1:<free port>` and answers `initialize`, `ping`, `tools/list` and
//! `tools/call` for two tools: `echo` (returns its `text` argument) and `slow` (sends two
//! progress notifications, then answers). Requests are answered as SSE streams (or JSON bodies,
//! see [`FakeHttpConfig::json_responses`]) whose events carry ids, and every stream that breaks is
//! kept so that a client can resume it with `Last-Event-ID`. Faults: streams that break after their first
//! event, sessions that expire, POSTs refused with 503, a required header. [`FakeHttpServer::log`]
//! tells what the server saw (sessions, DELETEs, protocol-version headers, resumptions).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How an SSE response stream that is to break ends early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamBreak {
    /// Streams run to the end.
    Never,
    /// The server ends the stream cleanly after the first event (allowed by 2025-11-25 servers
    /// that want the client to reconnect).
    CloseAfterFirstEvent,
    /// The connection is cut in the middle of the stream, after the first event.
    AbortAfterFirstEvent,
}

/// Which protocol revisions the fake HTTP server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revisions {
    /// 2025-11-25 and older: `initialize`, sessions; `server/discover` is an unknown method.
    Classic,
    /// 2026-07-28 only: stateless, `server/discover`, version and capabilities in every
    /// request's `_meta`; `initialize` is an unknown method (404, -32601).
    Modern,
    /// Both: `server/discover` for 2026-07-28 clients, `initialize` for the others.
    Both,
}

/// What the fake HTTP server does.
#[derive(Clone, Debug)]
pub struct FakeHttpConfig {
    /// The protocol revisions it speaks.
    pub revisions: Revisions,
    /// Answer requests with `application/json` bodies instead of SSE streams.
    pub json_responses: bool,
    /// How `tools/call` streams of the `slow` tool break.
    pub stream_break: StreamBreak,
    /// After this many POSTs in a session, the session is forgotten (404 from then on).
    pub expire_session_after: Option<usize>,
    /// The first this-many POSTs (over the server's life) are refused with 503.
    pub refuse_first_posts: usize,
    /// A header every request must carry (name, value), or 401.
    pub required_header: Option<(String, String)>,
    /// Protected by a fake authorization server: every request must carry one of its access
    /// tokens (else 401 with a `WWW-Authenticate` challenge naming the protected resource
    /// metadata, served at `/.well-known/oauth-protected-resource/mcp`).
    pub oauth: Option<crate::fake_oauth::Guard>,
    /// Offer the standalone GET stream (else 405); it sends one `notifications/tools/list_changed`.
    pub get_stream: bool,
    /// Delay before each progress step of the `slow` tool.
    pub slow_step: Duration,
    /// The status for a session id the server does not know (404 as the specification says;
    /// servers on the TypeScript SDK answer 400).
    pub unknown_session_status: u16,
}

impl Default for FakeHttpConfig {
    fn default() -> FakeHttpConfig {
        FakeHttpConfig {
            revisions: Revisions::Classic,
            json_responses: false,
            stream_break: StreamBreak::Never,
            expire_session_after: None,
            refuse_first_posts: 0,
            required_header: None,
            oauth: None,
            get_stream: true,
            slow_step: Duration::from_millis(20),
            unknown_session_status: 404,
        }
    }
}

/// What the server saw.
#[derive(Clone, Debug, Default)]
pub struct FakeHttpLog {
    /// Session ids handed out, in order.
    pub sessions: Vec<String>,
    /// Session ids ended by a DELETE.
    pub deleted: Vec<String>,
    /// Every JSON-RPC method POSTed, in order of arrival.
    pub methods: Vec<String>,
    /// The `MCP-Protocol-Version` header of every POST after `initialize` (None when absent).
    pub protocol_versions: Vec<Option<String>>,
    /// The `Last-Event-ID` of every resumption (GET with that header).
    pub resumed_from: Vec<String>,
    /// POSTs refused with 503.
    pub refused: usize,
    /// The `Authorization` header of every POST (None when absent).
    pub authorizations: Vec<Option<String>>,
    /// GET streams opened.
    pub get_streams: usize,
    /// For each 2026-07-28 request: its method, and its `Mcp-Method`, `Mcp-Name` and
    /// `MCP-Protocol-Version` headers.
    pub modern_requests: Vec<ModernRequest>,
}

/// A request the server handled as revision 2026-07-28.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModernRequest {
    /// The JSON-RPC method.
    pub method: String,
    /// The `Mcp-Method` header.
    pub mcp_method: Option<String>,
    /// The `Mcp-Name` header.
    pub mcp_name: Option<String>,
    /// The `MCP-Protocol-Version` header.
    pub version_header: Option<String>,
    /// Whether `_meta` carried the client's capabilities.
    pub has_capabilities: bool,
}

struct Inner {
    config: FakeHttpConfig,
    log: Mutex<FakeHttpLog>,
    sessions: Mutex<HashMap<String, SessionState>>,
    /// The events of every SSE stream that breaks, by stream id, for resumption.
    streams: Mutex<HashMap<String, Vec<String>>>,
    /// Cancelled (and replaced) when the server forgets its sessions: ends open GET streams.
    get_streams_end: Mutex<CancellationToken>,
    next_id: Mutex<u64>,
    shutdown: CancellationToken,
    /// The bound address (for the URLs of the OAuth challenge and metadata).
    addr: Mutex<String>,
}

#[derive(Default)]
struct SessionState {
    posts: usize,
}

/// A running fake HTTP server; dropping it stops it.
#[derive(Debug)]
pub struct FakeHttpServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHttpServer").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl FakeHttpServer {
    /// Starts the server on a free loopback port.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub async fn start(config: FakeHttpConfig) -> std::io::Result<FakeHttpServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            config,
            log: Mutex::new(FakeHttpLog::default()),
            sessions: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            get_streams_end: Mutex::new(CancellationToken::new()),
            next_id: Mutex::new(0),
            shutdown: CancellationToken::new(),
            addr: Mutex::new(addr.to_string()),
        });
        let app = Router::new()
            .route("/mcp", post(on_post).get(on_get).delete(on_delete))
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                axum::routing::get(on_resource_metadata),
            )
            .with_state(inner.clone());
        let shutdown = inner.shutdown.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            // As in the gateway: answers go out in several small writes, which Nagle's algorithm
            // would hold back for a kept-alive client's delayed ACK (~40 ms each).
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Ok(FakeHttpServer { addr, inner, tasks })
    }

    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server saw so far.
    pub fn log(&self) -> FakeHttpLog {
        lock(&self.inner.log).clone()
    }

    /// What the server saw since the last call (or its start), which it then forgets: a
    /// long-running test keeps the log from growing with every request. The count of refused
    /// POSTs stays, as it decides which POSTs are still to be refused.
    pub fn take_log(&self) -> FakeHttpLog {
        let mut log = lock(&self.inner.log);
        let refused = log.refused;
        let taken = std::mem::take(&mut *log);
        log.refused = refused;
        taken
    }

    /// Forgets every session, as a restarted server would: later requests get 404.
    ///
    /// Open GET streams end, as a restarted server's would.
    pub fn forget_sessions(&self) {
        lock(&self.inner.sessions).clear();
        let mut end = lock(&self.inner.get_streams_end);
        end.cancel();
        *end = CancellationToken::new();
    }

    /// Stops the server and waits (at most 2 s) for it to end; open streams are cut.
    pub async fn stop(mut self) {
        self.inner.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

impl Drop for FakeHttpServer {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
        self.tasks.abort_all();
    }
}

fn unknown_session(inner: &Inner) -> Response {
    status(
        StatusCode::from_u16(inner.config.unknown_session_status).unwrap_or(StatusCode::NOT_FOUND),
    )
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    if let Some(guard) = &inner.config.oauth {
        let token =
            header(headers, "authorization").and_then(|value| value.strip_prefix("Bearer "));
        if !token.is_some_and(|token| guard.accepts(token)) {
            return false;
        }
    }
    match &inner.config.required_header {
        Some((name, value)) => header(headers, name) == Some(value.as_str()),
        None => true,
    }
}

/// The answer to a request without a valid token: 401, with the challenge of an OAuth-protected
/// server.
fn unauthorized(inner: &Inner) -> Response {
    let mut response = status(StatusCode::UNAUTHORIZED);
    if inner.config.oauth.is_some() {
        let challenge = format!(
            "Bearer resource_metadata=\"http://{}/.well-known/oauth-protected-resource/mcp\"",
            lock(&inner.addr)
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert("www-authenticate", value);
        }
    }
    response
}

async fn on_resource_metadata(State(inner): State<Arc<Inner>>) -> Response {
    let Some(guard) = &inner.config.oauth else {
        return status(StatusCode::NOT_FOUND);
    };
    let mut document = json!({
        "resource": format!("http://{}/mcp", lock(&inner.addr)),
        "authorization_servers": [guard.issuer()],
    });
    if let Some(scopes) = guard.scopes() {
        document["scopes_supported"] = json!(scopes);
    }
    let mut response = Response::new(Body::from(document.to_string()));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn next_id(inner: &Inner, prefix: &str) -> String {
    let mut next = lock(&inner.next_id);
    *next += 1;
    format!("{prefix}{}", *next)
}

async fn on_post(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&inner, &headers) {
        return unauthorized(&inner);
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    {
        let mut log = lock(&inner.log);
        log.authorizations
            .push(header(&headers, "authorization").map(str::to_owned));
        if log.refused < inner.config.refuse_first_posts {
            log.refused += 1;
            return status(StatusCode::SERVICE_UNAVAILABLE);
        }
        log.methods
            .push(method.clone().unwrap_or_else(|| "response".to_owned()));
    }
    let id = message.get("id").cloned();
    let modern_meta = message
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .is_some();
    let modern = match inner.config.revisions {
        Revisions::Classic => false,
        Revisions::Modern => true,
        Revisions::Both => modern_meta || method.as_deref() == Some("server/discover"),
    };
    if modern {
        return on_modern_post(&inner, &headers, &message, method.as_deref(), id);
    }
    // A 2025-11-25 server refuses a protocol version header it does not know.
    if header(&headers, "mcp-protocol-version")
        .is_some_and(|version| !["2025-11-25", "2025-06-18", "2025-03-26"].contains(&version))
    {
        return status(StatusCode::BAD_REQUEST);
    }
    if method.as_deref() == Some("server/discover") {
        let error = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}});
        return answer(&inner, vec![error], false);
    }
    if method.as_deref() == Some("initialize") {
        let session = next_id(&inner, "session-");
        lock(&inner.sessions).insert(session.clone(), SessionState::default());
        lock(&inner.log).sessions.push(session.clone());
        let requested = message
            .pointer("/params/protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("2025-11-25");
        let version = if ["2025-11-25", "2025-06-18", "2025-03-26"].contains(&requested) {
            requested
        } else {
            "2025-11-25"
        };
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "fake-http-server", "version": "1.0.0"},
        });
        let mut response = answer(&inner, vec![reply(id, result)], false);
        if let Ok(value) = HeaderValue::from_str(&session) {
            response.headers_mut().insert("mcp-session-id", value);
        }
        return response;
    }
    // Everything else belongs to a session.
    let Some(session) = header(&headers, "mcp-session-id").map(str::to_owned) else {
        return status(StatusCode::BAD_REQUEST);
    };
    {
        let mut sessions = lock(&inner.sessions);
        let Some(state) = sessions.get_mut(&session) else {
            return unknown_session(&inner);
        };
        state.posts += 1;
        if inner
            .config
            .expire_session_after
            .is_some_and(|limit| state.posts > limit)
        {
            sessions.remove(&session);
            return status(StatusCode::NOT_FOUND);
        }
    }
    lock(&inner.log)
        .protocol_versions
        .push(header(&headers, "mcp-protocol-version").map(str::to_owned));
    let (Some(method), Some(id)) = (method, id) else {
        // A notification or a response.
        return status(StatusCode::ACCEPTED);
    };
    match method.as_str() {
        "ping" => answer(&inner, vec![reply(Some(id), json!({}))], false),
        "tools/list" => {
            let tools = json!({"tools": [
                {"name": "echo", "description": "Returns its text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
                {"name": "slow", "description": "Reports progress twice, then answers.", "inputSchema": {"type": "object"}},
            ]});
            answer(&inner, vec![reply(Some(id), tools)], false)
        }
        "tools/call" => {
            let name = message.pointer("/params/name").and_then(Value::as_str);
            match name {
                Some("echo") => {
                    let text = message
                        .pointer("/params/arguments/text")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let result = json!({"content": [{"type": "text", "text": text}]});
                    answer(&inner, vec![reply(Some(id), result)], false)
                }
                Some("slow") => {
                    tokio::time::sleep(inner.config.slow_step).await;
                    let token = message.pointer("/params/_meta/progressToken").cloned();
                    let mut messages = Vec::new();
                    if let Some(token) = token {
                        for step in 1..=2 {
                            messages
                                .push(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": step, "total": 2}}));
                        }
                    }
                    let result = json!({"content": [{"type": "text", "text": "slow done"}]});
                    messages.push(reply(Some(id), result));
                    answer(&inner, messages, true)
                }
                _ => answer(
                    &inner,
                    vec![
                        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "unknown tool"}}),
                    ],
                    false,
                ),
            }
        }
        _ => answer(
            &inner,
            vec![
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
            ],
            false,
        ),
    }
}

/// A POST of revision 2026-07-28: stateless, checked headers and `_meta`, errors as 4xx with the
/// JSON-RPC error in the body.
fn on_modern_post(
    inner: &Arc<Inner>,
    headers: &HeaderMap,
    message: &Value,
    method: Option<&str>,
    id: Option<Value>,
) -> Response {
    const SUPPORTED: &str = "2026-07-28";
    let header_text = |name: &str| header(headers, name).map(str::to_owned);
    let meta = message.pointer("/params/_meta");
    let version = meta
        .and_then(|meta| meta.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(Value::as_str);
    let has_capabilities = meta
        .and_then(|meta| meta.get("io.modelcontextprotocol/clientCapabilities"))
        .is_some_and(Value::is_object);
    if let Some(method) = method {
        lock(&inner.log).modern_requests.push(ModernRequest {
            method: method.to_owned(),
            mcp_method: header_text("mcp-method"),
            mcp_name: header_text("mcp-name"),
            version_header: header_text("mcp-protocol-version"),
            has_capabilities,
        });
    }
    let (Some(method), Some(id)) = (method, id) else {
        return status(StatusCode::ACCEPTED);
    };
    let error = |code: StatusCode, rpc: i64, text: &str, data: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": rpc, "message": text, "data": data}});
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = code;
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        response
    };
    let Some(version) = version.filter(|_| has_capabilities) else {
        return error(
            StatusCode::BAD_REQUEST,
            -32602,
            "missing _meta protocol version or client capabilities",
            Value::Null,
        );
    };
    if header(headers, "mcp-protocol-version") != Some(version) {
        return error(
            StatusCode::BAD_REQUEST,
            -32020,
            "MCP-Protocol-Version does not match _meta",
            Value::Null,
        );
    }
    if version != SUPPORTED {
        return error(
            StatusCode::BAD_REQUEST,
            -32022,
            "Unsupported protocol version",
            json!({"supported": [SUPPORTED], "requested": version}),
        );
    }
    let complete = |mut result: Value| {
        result["resultType"] = json!("complete");
        answer(inner, vec![reply(Some(id.clone()), result)], false)
    };
    match method {
        "server/discover" => complete(json!({
            "supportedVersions": [SUPPORTED],
            "capabilities": {"tools": {"listChanged": true}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "fake-http-server", "version": "2.0.0"}},
            "ttlMs": 0,
            "cacheScope": "private",
        })),
        "tools/list" => complete(json!({
            "tools": [{"name": "echo", "description": "Returns its text.", "inputSchema": {"type": "object"}}],
            "ttlMs": 0,
            "cacheScope": "private",
        })),
        "tools/call" => {
            let text = message
                .pointer("/params/arguments/text")
                .and_then(Value::as_str)
                .unwrap_or("");
            complete(json!({"content": [{"type": "text", "text": text}]}))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            -32601,
            "method not found",
            Value::Null,
        ),
    }
}

fn reply(id: Option<Value>, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Answers with `messages`: a JSON body (the last message) or an SSE stream of all of them,
/// which breaks after its first event when `may_break` and the configuration say so.
fn answer(inner: &Arc<Inner>, messages: Vec<Value>, may_break: bool) -> Response {
    if inner.config.json_responses {
        let last = messages.last().cloned().unwrap_or(Value::Null);
        let mut response = Response::new(Body::from(last.to_string()));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return response;
    }
    let stream_id = next_id(inner, "stream-");
    let events: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(n, message)| format!("id: {stream_id}/{n}\ndata: {message}\n\n"))
        .collect();
    let stream_break = if may_break {
        inner.config.stream_break
    } else {
        StreamBreak::Never
    };
    if stream_break != StreamBreak::Never {
        // Only a stream that breaks is resumed; keeping every stream would grow with every call.
        lock(&inner.streams).insert(stream_id, events.clone());
    }
    sse_response(events, stream_break)
}

fn sse_response(events: Vec<String>, stream_break: StreamBreak) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = match stream_break {
        StreamBreak::Never => events.into_iter().map(|e| Ok(Bytes::from(e))).collect(),
        StreamBreak::CloseAfterFirstEvent => events
            .into_iter()
            .take(1)
            .map(|e| Ok(Bytes::from(format!("retry: 10\n{e}"))))
            .collect(),
        StreamBreak::AbortAfterFirstEvent => {
            // The first event goes out; a moment later the connection is cut (had the error come
            // at once, the response head itself might never have been written).
            let first = events.into_iter().take(1).map(|e| Ok(Bytes::from(e)));
            let cut = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("cut by the fake server"))
            });
            let stream = futures::StreamExt::chain(futures::stream::iter(first), cut);
            return sse_body(Body::from_stream(stream));
        }
    };
    sse_body(Body::from_stream(futures::stream::iter(chunks)))
}

fn sse_body(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

async fn on_get(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if !authorized(&inner, &headers) {
        return unauthorized(&inner);
    }
    if inner.config.revisions == Revisions::Modern {
        // Revision 2026-07-28 has no GET stream.
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(session) = header(&headers, "mcp-session-id") else {
        return status(StatusCode::BAD_REQUEST);
    };
    if !lock(&inner.sessions).contains_key(session) {
        return unknown_session(&inner);
    }
    if let Some(last) = header(&headers, "last-event-id") {
        lock(&inner.log).resumed_from.push(last.to_owned());
        // Replay what followed `last` on its stream.
        let Some((stream_id, n)) = last.rsplit_once('/') else {
            return status(StatusCode::BAD_REQUEST);
        };
        let Ok(n) = n.parse::<usize>() else {
            return status(StatusCode::BAD_REQUEST);
        };
        let rest: Vec<String> = lock(&inner.streams)
            .get(stream_id)
            .map(|events| events.iter().skip(n + 1).cloned().collect())
            .unwrap_or_default();
        return sse_response(rest, StreamBreak::Never);
    }
    if !inner.config.get_stream {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    lock(&inner.log).get_streams += 1;
    // One notification, then the stream stays open until the server stops.
    let first = format!(
        "id: get/0\ndata: {}\n\n",
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    );
    // The stream ends when the server stops or forgets its sessions.
    let end = lock(&inner.get_streams_end).child_token();
    let shutdown = inner.shutdown.clone();
    let ended = async move {
        tokio::select! {
            () = end.cancelled() => {}
            () = shutdown.cancelled() => {}
        }
    };
    let stream = GetStream {
        first: Some(Bytes::from(first)),
        end: Box::pin(ended),
    };
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The GET stream: one event, then pending until the server shuts down.
struct GetStream {
    first: Option<Bytes>,
    end: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl futures::Stream for GetStream {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(first)));
        }
        match self.end.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

async fn on_delete(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let Some(session) = header(&headers, "mcp-session-id").map(str::to_owned) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if lock(&inner.sessions).remove(&session).is_none() {
        return status(StatusCode::NOT_FOUND);
    }
    lock(&inner.log).deleted.push(session);
    status(StatusCode::OK)
}
