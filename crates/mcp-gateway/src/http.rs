//! The gateway offered over MCP's Streamable HTTP transport (revision 2025-11-25).
//!
//! One endpoint, `/mcp`, answers POST (one JSON-RPC message per request), GET (the session's
//! standalone SSE stream) and DELETE (end the session).
//! Each HTTP MCP session is one run of [`serve_connection`] over an in-memory line
//! transport: this module writes every message the client POSTs as one line into it, and a
//! per-session router reads the gateway's lines back and sends each where it belongs: a response
//! and the progress notifications of its request to that request's SSE stream (or JSON body),
//! everything else to the session's GET stream when one is open (dropped otherwise, never
//! blocking the session).
//!
//! The HTTP layer has to look into the JSON-RPC envelope (ids, methods, progress tokens) to route
//! messages; that is the one place outside `mcp-session` that does, and it only reads it.
//!
//! Security, as the transport's specification asks: bound to loopback unless a bearer token is
//! configured, `Origin` validated against DNS rebinding, `MCP-Protocol-Version` checked, request
//! bodies limited, sessions limited in number and ended when idle.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;
use mcp_host::McpHost;
use mcp_session::protocol::SUPPORTED_PROTOCOL_VERSIONS;
use mcp_transport::{
    BoxedRead, BoxedWrite, FrameReader, FrameWriter, ServerName, Transport, TransportOptions,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::audit::AuditLog;
use crate::auth::{Caller, PolicyStore};
use crate::connection::{serve_connection, Client};
use crate::observe::{self, Observer};
use crate::policy::{QuotaPermit, QuotaRefusal, Quotas};
use crate::relay::ClientRelay;
use crate::sealed::{DenyList, SealedState, SessionKeys};
use crate::stateless;
use crate::Error;

/// The path of the one MCP endpoint.
pub const ENDPOINT: &str = "/mcp";

/// The largest request body accepted (413 above it).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How many client messages may wait for a session's gateway connection to read them.
const INBOX_CAPACITY: usize = 64;

/// How many server messages may wait for a slow GET stream before newer ones are dropped.
const STANDALONE_CAPACITY: usize = 256;
/// How many progress notifications may wait for a slow request stream before newer ones are dropped.
const PROGRESS_CAPACITY: usize = 64;
/// The reconnection delay announced at the start of every request stream (SSE `retry`).
const RETRY_MS: u64 = 1000;
/// How long a request whose stream broke waits to be resumed with `Last-Event-ID`.
const RESUMABLE_TTL: Duration = Duration::from_secs(60);
/// How many request streams one session keeps for resumption (the oldest goes first).
const RESUMABLE_CAPACITY: usize = 64;
/// How long a resumption waits for the stream's current carrier to let go.
const RESUME_WAIT: Duration = Duration::from_secs(2);
/// How many of a request stream's latest events are kept for replay.
const REPLAY_EVENTS: usize = PROGRESS_CAPACITY + 2;
/// How often the GET stream sends an SSE comment, so that a vanished client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long shutdown waits for sessions and connections to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The session header (HTTP header names are case-insensitive; `http` wants them lowercase).
const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
const VERSION_HEADER: &str = "mcp-protocol-version";

/// How the HTTP gateway is set up: start from [`HttpOptions::new`] and change what you need.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// `PORT` or `HOST:PORT`; a bare port binds 127.0.0.1.
    pub addr: String,
    /// The token every request must carry as `Authorization: Bearer <token>`, if any: the
    /// credential of a client named `default` that may use everything.
    pub bearer_token: Option<String>,
    /// Whether the gateway's policies give every client a credential (`gateway.clients` with
    /// tokens, or `gateway.oauth`): then, as with a `bearer_token`, a non-loopback address may
    /// be bound.
    pub authenticated: bool,
    /// Origins accepted besides the loopback ones, compared whole (`https://app.example.com`).
    pub allowed_origins: Vec<String>,
    /// How many sessions may exist at once (503 above it).
    pub max_sessions: usize,
    /// Sessions without any request, open stream or pending response for this long are ended.
    pub idle_timeout: Duration,
    /// Whether `/healthz` and `/readyz` answer without the bearer token (for orchestrators'
    /// probes); everything else still needs it.
    pub probes_without_auth: bool,
    /// How many sessions one peer address may hold (503 above it); 0 means no limit of its
    /// own. Behind a load balancer every request comes from the balancer: raise it there.
    pub max_sessions_per_peer: usize,
    /// How many requests one session may have in flight (429 above it).
    pub max_requests_per_session: usize,
    /// How long a POST may wait for its session to take the message; past it the message is
    /// not sent and the POST gets 503.
    pub write_timeout: Duration,
    /// How long a session whose client has not sent `notifications/initialized` is kept.
    pub initialize_timeout: Duration,
    /// The replicas' shared keys: with them, a session's state is sealed into its id and any
    /// replica serves any session (see [`SessionKeys`]). Without them (the default), sessions
    /// live in this process only.
    pub session_keys: Option<Arc<SessionKeys>>,
    /// How long a sealed session lives (its id carries the time it expires).
    pub session_ttl: Duration,
    /// How long, once asked to stop, the gateway lets requests in flight finish (it takes no
    /// new session meanwhile, and `/readyz` answers 503).
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: only whether there is one is shown.
        f.debug_struct("HttpOptions")
            .field("addr", &self.addr)
            .field("bearer_token", &self.bearer_token.is_some())
            .field("authenticated", &self.authenticated)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .field("probes_without_auth", &self.probes_without_auth)
            .field("max_sessions_per_peer", &self.max_sessions_per_peer)
            .field("max_requests_per_session", &self.max_requests_per_session)
            .field("write_timeout", &self.write_timeout)
            .field("initialize_timeout", &self.initialize_timeout)
            .field("session_keys", &self.session_keys)
            .field("session_ttl", &self.session_ttl)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl HttpOptions {
    /// Options for `addr` with the default limits: 256 sessions, 128 per peer address, 256
    /// requests in flight per session, 30 minutes idle, 30 s to finish the handshake, 10 s to
    /// take a message.
    pub fn new(addr: impl Into<String>) -> HttpOptions {
        HttpOptions {
            addr: addr.into(),
            bearer_token: None,
            authenticated: false,
            allowed_origins: Vec::new(),
            max_sessions: 256,
            idle_timeout: Duration::from_secs(30 * 60),
            probes_without_auth: false,
            max_sessions_per_peer: 128,
            max_requests_per_session: 256,
            write_timeout: Duration::from_secs(10),
            initialize_timeout: Duration::from_secs(30),
            session_keys: None,
            session_ttl: Duration::from_secs(24 * 60 * 60),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// A bound listener, not serving yet: binding first lets a caller fail before starting servers.
#[derive(Debug)]
pub struct HttpListener {
    listener: TcpListener,
    options: HttpOptions,
}

impl HttpListener {
    /// Resolves and binds `options.addr`, refusing a non-loopback address without a bearer token.
    ///
    /// # Errors
    ///
    /// [`Error::Unauthenticated`] for a non-loopback address without a token; the resolution
    /// errors; [`Error::Bind`] when the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops whatever it bound.
    pub async fn bind(options: HttpOptions) -> Result<HttpListener, Error> {
        let addrs = resolve(&options.addr).await?;
        if options.bearer_token.is_none()
            && !options.authenticated
            && !addrs.iter().all(|addr| addr.ip().is_loopback())
        {
            return Err(Error::Unauthenticated { addr: options.addr });
        }
        let listener = listen(&addrs).map_err(|source| Error::Bind {
            addr: options.addr.clone(),
            source,
        })?;
        Ok(HttpListener { listener, options })
    }

    /// The address actually bound (port 0 resolved).
    ///
    /// # Errors
    ///
    /// When the socket cannot say.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::LocalAddr)
    }

    /// The options it was bound with.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }
}

/// The probes, the metrics and the status page.
fn observe_routes(observer: Arc<Observer>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(observer): State<Arc<Observer>>| async move { observer.readiness() }),
        )
        .route(
            "/metrics",
            get(|State(observer): State<Arc<Observer>>| async move { observer.metrics().await }),
        )
        .route(
            "/status.json",
            get(
                |State(observer): State<Arc<Observer>>| async move { observer.status_json().await },
            ),
        )
        .route(
            "/",
            get(
                |State(observer): State<Arc<Observer>>| async move { observer.status_html().await },
            ),
        )
        .route(
            "/status",
            get(
                |State(observer): State<Arc<Observer>>| async move { observer.status_html().await },
            ),
        )
        .with_state(observer)
}

/// Where the protected resource metadata (RFC 9728) of `/mcp` is served.
const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// How many connections may wait to be accepted. The default of `TcpListener::bind` (128) made
/// 256 clients connecting at once lose SYNs and wait a second for their retry (the scale bench
/// measured ~1 s to open 256 sessions, with 54-61 listen overflows).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the first of `addrs` that can be bound, with [`LISTEN_BACKLOG`].
fn listen(addrs: &[SocketAddr]) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let bound = socket.and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(*addr)?;
            socket.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    }))
}

/// The protected resource metadata, when the gateway is an OAuth resource server.
fn metadata_routes(policies: Arc<PolicyStore>) -> Router {
    let metadata = |State(policies): State<Arc<PolicyStore>>| async move {
        match policies.current().oauth() {
            Some(oauth) => {
                let mut response = crate::auth::resource_metadata(oauth)
                    .to_string()
                    .into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            None => StatusCode::NOT_FOUND.into_response(),
        }
    };
    Router::new()
        .route(RESOURCE_METADATA_PATH, get(metadata))
        .route(
            &format!("{RESOURCE_METADATA_PATH}{ENDPOINT}"),
            get(metadata),
        )
        .with_state(policies)
}

/// Puts the origin, token and size checks (and the response count) in front of `app`.
fn guarded(
    app: Router,
    options: &HttpOptions,
    observer: Arc<Observer>,
    policies: Arc<PolicyStore>,
) -> Router {
    let guard = Arc::new(Guard {
        options: options.clone(),
        observer,
        policies,
    });
    app.layer(axum::middleware::from_fn_with_state(guard, count_responses))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Serves only the probes, the metrics and the status page (for a gateway on stdio), with the
/// same origin and token checks, until `stop` completes.
pub(crate) async fn serve_observability(
    bound: HttpListener,
    observer: Arc<Observer>,
    policies: Arc<PolicyStore>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let local_addr = bound.local_addr()?;
    if let Some(token) = &bound.options.bearer_token {
        policies.set_default_token(token.clone());
    }
    let app = guarded(
        observe_routes(observer.clone()),
        &bound.options,
        observer,
        policies,
    );
    tracing::info!(%local_addr, "serving probes, metrics and the status page");
    let server = std::future::IntoFuture::into_future(axum::serve(no_delay(bound.listener), app));
    tokio::select! {
        served = server => served.map_err(Error::Serve),
        () = stop => Ok(()),
    }
}

/// Sets `TCP_NODELAY` on every accepted connection.
///
/// An answer goes out as several small writes (headers, then SSE events, then the end of the
/// chunked body); with Nagle's algorithm on, each write after the first waits for the client's
/// ACK of the previous one, which a kept-alive client delays by up to 40 ms. That made every
/// sequential call of the TypeScript SDK client take ~44 ms instead of well under 1 ms.
fn no_delay(listener: TcpListener) -> axum::serve::TapIo<TcpListener, fn(&mut TcpStream)> {
    use axum::serve::ListenerExt as _;
    fn set_no_delay(stream: &mut TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
        }
    }
    listener.tap_io(set_no_delay as fn(&mut TcpStream))
}

/// Serves the gateway on the bound listener until `stop` completes, then ends every session
/// (bounded) and returns.
pub(crate) async fn serve_http(
    bound: HttpListener,
    host: Arc<McpHost>,
    relay: Arc<ClientRelay>,
    max_handlers: usize,
    observer: Arc<Observer>,
    clients: Clients,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let local_addr = bound.local_addr()?;
    if let Some(token) = &bound.options.bearer_token {
        clients.policies.set_default_token(token.clone());
    }
    if !local_addr.ip().is_loopback() && !clients.policies.current().requires_credentials() {
        return Err(Error::Unauthenticated {
            addr: bound.options.addr.clone(),
        });
    }
    let root = CancellationToken::new();
    let _end_sessions_on_drop = root.clone().drop_guard();
    let tracker = TaskTracker::new();
    let state = Arc::new(HttpState {
        host,
        relay,
        max_handlers,
        clients: clients.clone(),
        denied: DenyList::default(),
        draining: std::sync::atomic::AtomicBool::new(false),
        stateless: Mutex::new(HashMap::new()),
        replica: Arc::from(
            new_session_id().map_or_else(|| "0".to_owned(), |id| id[..8].to_owned()),
        ),
        observer: observer.clone(),
        options: bound.options,
        sessions: Mutex::new(HashMap::new()),
        tracker: tracker.clone(),
        root: root.clone(),
    });
    tracker.spawn(sweep_idle_sessions(state.clone()).in_current_span());
    let app = Router::new()
        .route(
            ENDPOINT,
            post(handle_post).get(handle_get).delete(handle_delete),
        )
        .with_state(state.clone())
        .merge(observe_routes(observer.clone()))
        .merge(metadata_routes(clients.policies.clone()));
    let app = guarded(app, &state.options, observer, clients.policies.clone());
    let server = std::future::IntoFuture::into_future(
        axum::serve(
            no_delay(bound.listener),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(root.clone().cancelled_owned()),
    );
    tokio::pin!(server);
    tracing::info!(%local_addr, "serving MCP over Streamable HTTP");
    let outcome = tokio::select! {
        served = &mut server => served.map_err(Error::Serve),
        () = stop => Ok(()),
    };
    if outcome.is_ok() {
        drain(&state, &mut server).await;
    }
    tracing::info!(
        n_sessions = lock(&state.sessions).len(),
        "ending every HTTP session"
    );
    root.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP sessions did not end in time");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
    outcome
}

/// Stops taking new sessions and lets the requests in flight finish, for at most the drain
/// timeout; `/readyz` says 503 meanwhile, so a load balancer sends the rest elsewhere.
async fn drain(
    state: &HttpState,
    server: &mut (impl std::future::Future<Output = std::io::Result<()>> + Unpin),
) {
    state.draining.store(true, Ordering::Relaxed);
    state.observer.set_draining();
    let deadline = tokio::time::Instant::now() + state.options.drain_timeout;
    let in_flight = || -> usize {
        lock(&state.sessions)
            .values()
            .map(|session| session.n_in_flight())
            .sum()
    };
    let n_at_start = in_flight();
    if n_at_start == 0 {
        return;
    }
    tracing::info!(
        n_in_flight = n_at_start,
        "draining: waiting for the requests in flight"
    );
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // The server keeps serving while draining; it ends only on error.
            _ = &mut *server => return,
        }
        let n_left = in_flight();
        if n_left == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                n_left,
                "draining: requests still in flight at the drain timeout are cancelled"
            );
            return;
        }
    }
}

/// An SSE event id: `<replica>.<counter>[.<request>]`, the replica's tag, a counter unique in
/// the session on that replica, and on a request stream the request's id (base64url of its
/// JSON), so that any replica can answer a resumption it cannot serve.
#[derive(Debug, PartialEq)]
struct EventId {
    replica: String,
    counter: u64,
    request: Option<Value>,
}

impl EventId {
    fn text(replica: &str, counter: u64, request: Option<&str>) -> String {
        match request {
            Some(request) => format!("{replica}.{counter}.{request}"),
            None => format!("{replica}.{counter}"),
        }
    }

    /// The tag of a request (its id's JSON text) in event ids.
    fn request_tag(id_key: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id_key)
    }

    fn parse(text: &str) -> Option<EventId> {
        use base64::Engine as _;
        let mut parts = text.trim().splitn(3, '.');
        let replica = parts.next()?.to_owned();
        let counter = parts.next()?.parse().ok()?;
        let request = match parts.next() {
            Some(tag) => {
                let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(tag)
                    .ok()?;
                let id: Value = serde_json::from_slice(&json).ok()?;
                if !(id.is_string() || id.is_number()) {
                    return None;
                }
                Some(id)
            }
            None => None,
        };
        Some(EventId {
            replica,
            counter,
            request,
        })
    }
}

/// Answers a POST of revision 2026-07-28 (no session): checked, then answered here
/// (`server/discover`) or sent through the caller's stateless connection.
async fn stateless_post(
    state: &Arc<HttpState>,
    peer_ip: std::net::IpAddr,
    caller: Caller,
    headers: &HeaderMap,
    mut message: Value,
    reply: Option<Reply>,
) -> Response {
    let Some(reply) = reply else {
        // The 2026-07-28 wire has no client notifications over HTTP: nothing to do.
        return StatusCode::ACCEPTED.into_response();
    };
    let id = message["id"].clone();
    let answer = |status: StatusCode, body: Value| -> Response {
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    match stateless::check(headers, &message) {
        stateless::Verdict::Refuse {
            status,
            code,
            message,
            data,
        } => {
            let mut error = json!({ "code": code, "message": message });
            if let Some(data) = data {
                error["data"] = data;
            }
            answer(
                status,
                json!({ "jsonrpc": "2.0", "id": id, "error": error }),
            )
        }
        stateless::Verdict::Discover => {
            let options = crate::connection::server_options(&state.host);
            let capabilities = stateless::capabilities(
                &serde_json::to_value(&options.capabilities).unwrap_or(Value::Null),
            );
            let result = stateless::discover_result(capabilities, options.instructions.as_deref());
            let response = json!({ "jsonrpc": "2.0", "id": id, "result": result });
            match reply {
                Reply::Json => answer(StatusCode::OK, response),
                Reply::EventStream => {
                    let event = Bytes::from(format!("data: {response}\n\n"));
                    let body = futures::stream::iter([Ok::<_, Infallible>(event)]);
                    event_stream_response(Body::from_stream(body))
                }
            }
        }
        stateless::Verdict::Forward => {
            let session = match state.stateless_session(peer_ip, caller) {
                Ok(session) => session,
                Err(refused) => return *refused,
            };
            session.touch();
            let internal = format!(
                "stateless-{}",
                session.next_progress_token.fetch_add(1, Ordering::Relaxed)
            );
            message["id"] = Value::String(internal);
            stateless::strip_envelope(&mut message);
            let id_key = message["id"].to_string();
            if session.n_in_flight() >= state.options.max_requests_per_session {
                return quota_like_busy(state.options.max_requests_per_session);
            }
            let Some(mut pending) = session.register(id_key, &mut message, Some(id)) else {
                return error_response(
                    StatusCode::CONFLICT,
                    "a request with this id is already in flight",
                );
            };
            if let Err(refusal) = session.send(&message, state.options.write_timeout).await {
                pending.cancelled_by_client = true;
                return refusal.response();
            }
            match reply {
                Reply::Json => json_reply(pending).await,
                Reply::EventStream => event_stream_reply(pending),
            }
        }
    }
}

/// 429 for a connection with too many requests in flight.
fn quota_like_busy(limit: usize) -> Response {
    let mut response = rpc_error_response(
        StatusCode::TOO_MANY_REQUESTS,
        -32000,
        &format!("too many requests in flight (at most {limit})"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// How a session comes to be on this replica.
enum Opening<'a> {
    /// A client's `initialize` (its params).
    New(&'a Value),
    /// The connection the stateless requests of one client go through.
    Stateless,
    /// A sealed session (its id, and what it carries) that another replica started.
    Resume(&'a str, &'a SealedState),
}

/// The gateway's clients: who they are, their quotas, the audit log.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) policies: Arc<PolicyStore>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) audit: Option<Arc<AuditLog>>,
    /// How many tasks that have not ended a session may have.
    pub(crate) max_tasks: usize,
}

/// State shared by every handler.
struct HttpState {
    host: Arc<McpHost>,
    relay: Arc<ClientRelay>,
    max_handlers: usize,
    clients: Clients,
    /// Sealed sessions ended here.
    denied: DenyList,
    /// Set when the gateway stops: no new sessions, the requests in flight finish.
    draining: std::sync::atomic::AtomicBool,
    /// The stateless connection of each gateway client, by client name (its session id).
    stateless: Mutex<HashMap<String, String>>,
    /// This replica's tag (random), which starts every SSE event id it sends: a client that
    /// resumes a stream on another replica is told its request is lost, not kept waiting.
    replica: Arc<str>,
    observer: Arc<Observer>,
    options: HttpOptions,
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
    tracker: TaskTracker,
    root: CancellationToken,
}

/// One MCP session of one HTTP client.
struct HttpSession {
    id: String,
    /// Cancelled when the session ends, for any reason.
    token: CancellationToken,
    /// Lines to the gateway (what the client sent): a message is sent once it is in here.
    inbox: mpsc::Sender<Vec<u8>>,
    /// The client it belongs to; to any other it does not exist.
    caller: Caller,
    /// The client's address.
    peer: std::net::IpAddr,
    /// Set by the client's `notifications/initialized`.
    initialized: std::sync::atomic::AtomicBool,
    created: Instant,
    /// Gives progress tokens that are unique in the session (see [`Route`]).
    next_progress_token: AtomicU64,
    /// This replica's tag, in every event id it sends.
    replica: Arc<str>,
    routes: Mutex<Routes>,
    /// The GET stream, while one is open.
    standalone: Mutex<Option<mpsc::Sender<String>>>,
    last_active: Mutex<Instant>,
    /// SSE event ids, unique within the session.
    next_event_id: AtomicU64,
    /// Request streams that a GET with `Last-Event-ID` may pick up (bounded in number; a
    /// finished one is dropped, a broken one kept for a while).
    resumable: Mutex<std::collections::VecDeque<Arc<ResumableRequest>>>,
}

/// One request's stream, resumable: its latest events for replay, what is still to come, and
/// which HTTP response currently carries it.
struct ResumableRequest {
    /// The request's id, in the form its events' ids carry it (see [`EventId`]).
    request_tag: String,
    log: tokio::sync::Mutex<RequestLog>,
    /// Cancelled to make the current carrier end, when a resumption takes the stream over.
    carrier: Mutex<CancellationToken>,
    /// When the stream last sent an event or was taken over.
    since: Mutex<Instant>,
    /// The ids of the events in the log (readable while a carrier holds the log).
    ids: Mutex<std::collections::VecDeque<u64>>,
}

struct RequestLog {
    /// The latest events sent (at most [`REPLAY_EVENTS`]), with their ids.
    events: std::collections::VecDeque<(u64, Bytes)>,
    /// How many events were ever appended (positions are counted from the first).
    n_appended: usize,
    /// What is still to come; `None` once the response is in the log.
    pending: Option<PendingRequest>,
}

/// Requests waiting for their response, by the JSON text of their id.
#[derive(Default)]
struct Routes {
    by_id: HashMap<String, Route>,
    /// Request id keys, by the JSON text of the request's progress token.
    by_progress_token: HashMap<String, String>,
}

/// Where a request's answer goes. A request's progress token is replaced by one unique in
/// the session (two requests may carry the same token), and restored in its notifications.
struct Route {
    progress: mpsc::Sender<String>,
    response: oneshot::Sender<String>,
    /// The JSON text of the token the gateway sees, and the client's own token.
    progress_token: Option<(String, Value)>,
    /// The client's own id, when the gateway gave the request another (a stateless request,
    /// sent through a connection other clients' requests share), and what the answer's
    /// result must carry in revision 2026-07-28.
    original_id: Option<Value>,
    /// The answer is a cacheable result of revision 2026-07-28 (lists, reads).
    cacheable: bool,
}

/// What one POSTed message is.
enum Kind {
    Request {
        id_key: String,
        method: String,
    },
    /// A notification or a response: nothing comes back on this POST.
    NoReply,
}

/// How a request's answer is sent back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    EventStream,
    Json,
}

/// How long resolving a host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(port) = addr.parse::<u16>() {
        return Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))]);
    }
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(addr))
            .await
            .map_err(|_| Error::ResolveTimeout {
                addr: addr.to_owned(),
                timeout: RESOLVE_TIMEOUT,
            })?
            .map_err(|source| Error::InvalidAddress {
                addr: addr.to_owned(),
                source,
            })?
            .collect();
    if addrs.is_empty() {
        return Err(Error::NoAddress {
            addr: addr.to_owned(),
        });
    }
    Ok(addrs)
}

/// What the guard checks every request against.
#[derive(Debug)]
struct Guard {
    options: HttpOptions,
    observer: Arc<Observer>,
    policies: Arc<PolicyStore>,
}

/// Counts every response by status code, then applies [`guard`].
async fn count_responses(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let observer = guard.observer.clone();
    let response = check(guard, request, next).await;
    observer.http_response(response.status());
    response
}

/// Origin, bearer token and protocol version checks, before any body is read.
async fn check(state: Arc<Guard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !origin_allowed(origin, &state.options.allowed_origins) {
            tracing::warn!(origin = ?origin, "refused a request from a foreign origin");
            return error_response(StatusCode::FORBIDDEN, "origin not allowed");
        }
    }
    let path = request.uri().path();
    let open = (state.options.probes_without_auth && observe::PROBES.contains(&path))
        || path.starts_with(RESOURCE_METADATA_PATH);
    let mut request = request;
    if !open {
        match state.policies.authenticate(request.headers()).await {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(refused) => {
                tracing::debug!(?refused, "refused a request's credential");
                return refused.response(state.policies.current().oauth());
            }
        }
    }
    let headers = request.headers();
    // Requests without a session may be of revision 2026-07-28, whose version errors have a
    // shape of their own (see `stateless`); those of a session are checked here.
    let in_session = headers.contains_key(SESSION_HEADER);
    if let Some(version) = headers.get(VERSION_HEADER).filter(|_| in_session) {
        let supported = version
            .to_str()
            .is_ok_and(|version| SUPPORTED_PROTOCOL_VERSIONS.contains(&version.trim()));
        if !supported {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unsupported MCP-Protocol-Version (supported: {})",
                    SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                ),
            );
        }
    }
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut response = if declared_len.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        // Refused before reading any of it.
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 16 MiB",
        )
    } else {
        next.run(request).await
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is not read: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn handle_post(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(_) => return rpc_error_response(StatusCode::BAD_REQUEST, -32700, "parse error"),
    };
    let Some(kind) = classify(&message) else {
        return rpc_error_response(
            StatusCode::BAD_REQUEST,
            -32600,
            "the body must be one JSON-RPC message (batches are not part of revision 2025-11-25)",
        );
    };
    let reply = match &kind {
        Kind::Request { .. } => match reply_mode(&headers) {
            Some(reply) => Some(reply),
            None => {
                return error_response(
                    StatusCode::NOT_ACCEPTABLE,
                    "the client must accept application/json or text/event-stream",
                )
            }
        },
        Kind::NoReply => None,
    };
    if matches!(session_header(&headers), Ok(None)) && stateless::is_stateless(&headers, &message) {
        return stateless_post(&state, peer.ip(), caller, &headers, message, reply).await;
    }
    let (session, created) = match session_header(&headers) {
        Ok(Some(id)) => match state.session_or_resume(id, &caller, peer.ip()) {
            Ok(session) => (session, false),
            Err(refused) => return *refused,
        },
        Ok(None) => match &kind {
            Kind::Request { method, .. } if method == "initialize" => {
                match state.open_session(peer.ip(), caller, Opening::New(&message["params"])) {
                    Ok(session) => (session, true),
                    Err(refused) => return *refused,
                }
            }
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "missing Mcp-Session-Id header (only initialize starts a session)",
                )
            }
        },
        Err(refusal) => return refusal.response(),
    };
    session.touch();
    let write_timeout = state.options.write_timeout;
    let Kind::Request { id_key, .. } = kind else {
        let sent = session.send(&message, write_timeout).await;
        if sent.is_ok() {
            match message["method"].as_str() {
                Some("notifications/initialized") => {
                    session.initialized.store(true, Ordering::Relaxed);
                }
                Some("notifications/cancelled") => {
                    // A cancelled request gets no response: its stream ends now.
                    session.forget(&message["params"]["requestId"]);
                }
                _ => {}
            }
        }
        return match sent {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(refusal) => refusal.response(),
        };
    };
    if session.n_in_flight() >= state.options.max_requests_per_session {
        let mut response = rpc_error_response(
            StatusCode::TOO_MANY_REQUESTS,
            -32000,
            &format!(
                "too many requests in flight in this session (at most {})",
                state.options.max_requests_per_session
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let Some(mut pending) = session.register(id_key, &mut message, None) else {
        return rpc_error_response(
            StatusCode::CONFLICT,
            -32600,
            "a request with this id is already in flight",
        );
    };
    if let Err(refusal) = session.send(&message, write_timeout).await {
        // Not sent: nothing to cancel downstream.
        pending.cancelled_by_client = true;
        if created {
            session.token.cancel();
        }
        return refusal.response();
    }
    let mut response = match reply {
        Some(Reply::Json) => json_reply(pending).await,
        _ => event_stream_reply(pending),
    };
    if created {
        if let Ok(value) = HeaderValue::from_str(&session.id) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
    }
    response
}

async fn handle_get(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if !accepts(&headers, "text/event-stream") {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            "the GET stream needs Accept: text/event-stream",
        );
    }
    let session = match session_header(&headers) {
        Ok(Some(id)) => match state.session_or_resume(id, &caller, peer.ip()) {
            Ok(session) => session,
            Err(refused) => return *refused,
        },
        Ok(None) => {
            return error_response(StatusCode::BAD_REQUEST, "missing Mcp-Session-Id header")
        }
        Err(refusal) => return refusal.response(),
    };
    // A request stream picked up again.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(EventId::parse);
    match last_event_id {
        Some(event) if *event.replica == *session.replica => {
            if let Some(request) = session.find_resumable(event.counter) {
                session.touch();
                tracing::debug!(session = %short(&session.id), last_event_id = event.counter, "resuming a request stream");
                return resumed_stream_reply(session, request, event.counter).await;
            }
        }
        // A request stream of another replica, which went away (or the balancer moved the
        // client): its request's answer is lost with it. Say so at once.
        Some(EventId {
            request: Some(request_id),
            ..
        }) => {
            session.touch();
            tracing::info!(session = %short(&session.id), "a client resumes a request of another replica: its answer is lost");
            let error = json!({
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {
                    "code": -32000,
                    "message": "the gateway replica that was running this request went away; its outcome is unknown"
                }
            });
            let (_, event) = session.event(&error.to_string(), None);
            let body = futures::stream::iter([Ok::<_, Infallible>(event)]);
            return event_stream_response(Body::from_stream(body));
        }
        _ => {}
    }
    let (sender, receiver) = mpsc::channel(STANDALONE_CAPACITY);
    {
        let mut standalone = lock(&session.standalone);
        if standalone.as_ref().is_some_and(|open| !open.is_closed()) {
            return error_response(
                StatusCode::CONFLICT,
                "this session already has an open GET stream",
            );
        }
        *standalone = Some(sender);
    }
    session.touch();
    let stream = StandaloneStream {
        session,
        messages: receiver,
        keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
    };
    let body = futures::stream::unfold(stream, |mut stream| async move {
        let chunk = tokio::select! {
            message = stream.messages.recv() => stream.session.event(&message?, None).1,
            _ = stream.keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            () = stream.session.token.cancelled() => return None,
        };
        Some((Ok::<_, Infallible>(chunk), stream))
    });
    event_stream_response(Body::from_stream(body))
}

async fn handle_delete(
    State(state): State<Arc<HttpState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let id = match session_header(&headers) {
        Ok(Some(id)) => id,
        Ok(None) => {
            return error_response(StatusCode::BAD_REQUEST, "missing Mcp-Session-Id header")
        }
        Err(refusal) => return refusal.response(),
    };
    // A sealed session ends everywhere it is not in use yet: no replica that sees this id
    // after now opens it again (here; others forget it when it expires).
    let sealed = state
        .options
        .session_keys
        .as_ref()
        .and_then(|keys| keys.open(id))
        .filter(|sealed| sealed.client == caller.policy.name && !sealed.expired());
    if let Some(sealed) = &sealed {
        state.denied.deny(id, sealed.expires);
    }
    let local = state.session(id, &caller).is_some();
    let session = if local {
        lock(&state.sessions).remove(id)
    } else {
        None
    };
    let Some(session) = session else {
        return if sealed.is_some() {
            tracing::info!(session = %short(id), "the client ended its session");
            StatusCode::NO_CONTENT.into_response()
        } else {
            session_not_found()
        };
    };
    tracing::info!(session = %short(&session.id), "the client ended its session");
    session.token.cancel();
    StatusCode::NO_CONTENT.into_response()
}

impl HttpState {
    /// The connection the stateless requests of `caller` go through (made on first use; its id
    /// is never given to a client).
    fn stateless_session(
        self: &Arc<Self>,
        peer_ip: std::net::IpAddr,
        caller: Caller,
    ) -> Result<Arc<HttpSession>, Box<Response>> {
        let key = caller.policy.name.clone();
        let known = lock(&self.stateless).get(&key).cloned();
        if let Some(id) = known {
            if let Some(session) = self.session(&id, &caller) {
                return Ok(session);
            }
        }
        let session = self.open_session(peer_ip, caller, Opening::Stateless)?;
        let mut stateless = lock(&self.stateless);
        // Bounded by the clients the policies name (and the OAuth subjects that came).
        if stateless.len() >= self.options.max_sessions {
            let sessions = lock(&self.sessions);
            stateless.retain(|_, id| sessions.contains_key(id));
        }
        stateless.insert(key, session.id.clone());
        Ok(session)
    }

    /// The session `id` of `caller`: this replica's, or a sealed one rebuilt here.
    fn session_or_resume(
        self: &Arc<Self>,
        id: &str,
        caller: &Caller,
        peer_ip: std::net::IpAddr,
    ) -> Result<Arc<HttpSession>, Box<Response>> {
        if let Some(session) = self.session(id, caller) {
            return Ok(session);
        }
        let sealed = self
            .options
            .session_keys
            .as_ref()
            .and_then(|keys| keys.open(id))
            .filter(|sealed| sealed.client == caller.policy.name)
            .filter(|sealed| !sealed.expired() && !self.denied.is_denied(id));
        match sealed {
            Some(sealed) => {
                tracing::debug!(session = %short(id), "resuming a sealed session on this replica");
                self.open_session(peer_ip, caller.clone(), Opening::Resume(id, &sealed))
            }
            None => Err(Box::new(session_not_found())),
        }
    }

    /// The session `id`, if it is alive and belongs to `caller` (to anyone else it does not
    /// exist).
    fn session(&self, id: &str, caller: &Caller) -> Option<Arc<HttpSession>> {
        lock(&self.sessions)
            .get(id)
            .filter(|session| !session.token.is_cancelled())
            .filter(|session| session.caller.policy.name == caller.policy.name)
            .cloned()
    }

    /// Creates a session and starts its gateway connection and router on the tracker.
    fn open_session(
        self: &Arc<Self>,
        peer_ip: std::net::IpAddr,
        caller: Caller,
        opening: Opening<'_>,
    ) -> Result<Arc<HttpSession>, Box<Response>> {
        let quota = match self.clients.policies.policy_of(&caller) {
            Some(policy) => self
                .clients
                .quotas
                .of(&policy)
                .start_session()
                .map_err(|refusal| Box::new(quota_response(&refusal)))?,
            None => return Err(Box::new(Refusal::SESSION_ENDED.response())),
        };
        let mut sessions = lock(&self.sessions);
        if let Opening::Resume(id, _) = &opening {
            // Two requests of one session reached this replica at once: the first rebuilt it.
            if let Some(session) = sessions
                .get(*id)
                .filter(|session| !session.token.is_cancelled())
            {
                return Ok(session.clone());
            }
        }
        if self.root.is_cancelled() || self.draining.load(Ordering::Relaxed) {
            return Err(Box::new(
                Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway is shutting down",
                )
                .response(),
            ));
        }
        if sessions.len() >= self.options.max_sessions {
            return Err(Box::new(
                Refusal(StatusCode::SERVICE_UNAVAILABLE, "too many sessions").response(),
            ));
        }
        let per_peer = self.options.max_sessions_per_peer;
        if per_peer > 0
            && sessions
                .values()
                .filter(|session| session.peer == peer_ip)
                .count()
                >= per_peer
        {
            tracing::warn!(peer = %peer_ip, "refused a session: too many sessions from this address");
            return Err(Box::new(
                Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sessions from this address",
                )
                .response(),
            ));
        }
        let id = match (&opening, &self.options.session_keys) {
            (Opening::Resume(id, _), _) => Some((*id).to_owned()),
            (Opening::Stateless, _) => new_session_id().map(|id| format!("stateless-{id}")),
            (Opening::New(params), Some(keys)) => keys.seal(&SealedState::from_initialize(
                params,
                &caller.policy.name,
                self.options.session_ttl,
            )),
            (Opening::New(_), None) => new_session_id(),
        };
        let Some(id) = id else {
            return Err(Box::new(
                Refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot create a session id",
                )
                .response(),
            ));
        };
        // The in-memory pair is named from an in-process server's point of view; here the
        // gateway's `serve` takes the `Transport`, and this module plays the client through the
        // other end: what it writes into `peer.write` the gateway reads, and what the gateway
        // writes comes out of `peer.read`.
        let options = TransportOptions::default();
        let (transport, peer) = mcp_transport::in_memory(ServerName::new("http-client"), &options);
        let client_options = TransportOptions {
            // The gateway may add a little envelope around a server's largest line.
            max_line_len: options.max_line_len.saturating_mul(2),
            ..TransportOptions::default()
        };
        let client_end = Transport::from_io(
            ServerName::new("mcp-host"),
            peer.read,
            peer.write,
            &client_options,
        );
        let (reader, writer, _) = client_end.into_parts();
        let (inbox, inbox_rx) = mpsc::channel(INBOX_CAPACITY);
        let session = Arc::new(HttpSession {
            id: id.clone(),
            token: self.root.child_token(),
            inbox,
            caller: caller.clone(),
            peer: peer_ip,
            initialized: std::sync::atomic::AtomicBool::new(false),
            created: Instant::now(),
            next_progress_token: AtomicU64::new(1),
            replica: self.replica.clone(),
            routes: Mutex::new(Routes::default()),
            standalone: Mutex::new(None),
            last_active: Mutex::new(Instant::now()),
            next_event_id: AtomicU64::new(1),
            resumable: Mutex::new(std::collections::VecDeque::new()),
        });
        let replayed = match &opening {
            Opening::Resume(_, sealed) => Some(sealed.initialize_request()),
            Opening::Stateless => Some(SealedState::stateless_initialize_request()),
            Opening::New(_) => None,
        };
        if let Some(initialize) = replayed {
            // The session's `initialize` happened on another replica (or, for stateless
            // requests, never): play it here, first in line (its answer goes nowhere), and the
            // client's `initialized`.
            let replay = [
                initialize,
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            ];
            for message in replay {
                if session
                    .inbox
                    .try_send(message.to_string().into_bytes())
                    .is_err()
                {
                    return Err(Box::new(Refusal::SESSION_ENDED.response()));
                }
            }
            session.initialized.store(true, Ordering::Relaxed);
        }
        sessions.insert(id, session.clone());
        let span = tracing::info_span!("http_session", session = %short(&session.id));
        let client = Client {
            caller,
            policies: self.clients.policies.clone(),
            quotas: self.clients.quotas.clone(),
            audit: self.clients.audit.clone(),
            session: short(&session.id).to_string(),
            max_tasks: self.clients.max_tasks,
        };
        self.tracker.spawn(
            run_session(
                self.clone(),
                session.clone(),
                client,
                quota,
                transport,
                (reader, writer, inbox_rx),
            )
            .instrument(span),
        );
        tracing::info!(session = %short(&session.id), n_sessions = sessions.len(), "session started");
        Ok(session)
    }
}

/// Runs one session: the gateway over the transport, and the router of its output.
async fn run_session(
    state: Arc<HttpState>,
    session: Arc<HttpSession>,
    client: Client,
    _quota: QuotaPermit,
    transport: Transport,
    (reader, mut writer, mut inbox): (
        FrameReader<BoxedRead>,
        FrameWriter<BoxedWrite>,
        mpsc::Receiver<Vec<u8>>,
    ),
) {
    let token = session.token.clone();
    let _counted = state.observer.session_opened();
    let serving = async {
        serve_connection(
            state.host.clone(),
            state.relay.clone(),
            state.max_handlers,
            client,
            transport,
            token.clone().cancelled_owned(),
        )
        .await;
        token.cancel();
    };
    let routing = async {
        tokio::select! {
            () = route_gateway_output(&session, reader) => {}
            () = token.cancelled() => {}
        }
        token.cancel();
    };
    // What the client POSTs goes to the gateway in order, as the gateway reads it.
    let writing = async {
        let written = async {
            while let Some(line) = inbox.recv().await {
                writer.queue(&line);
                // Write what else is waiting in the same system call.
                while let Ok(line) = inbox.try_recv() {
                    writer.queue(&line);
                }
                if let Err(error) = writer.flush().await {
                    tracing::debug!(error = %error, "the gateway connection stopped reading");
                    return;
                }
            }
        };
        tokio::select! {
            () = written => {}
            () = token.cancelled() => {}
        }
        token.cancel();
    };
    tokio::join!(serving, routing, writing);
    // Resumable requests hold the session; let both go.
    lock(&session.resumable).clear();
    let mut sessions = lock(&state.sessions);
    if sessions
        .get(&session.id)
        .is_some_and(|current| Arc::ptr_eq(current, &session))
    {
        sessions.remove(&session.id);
    }
    tracing::info!(n_sessions = sessions.len(), "session ended");
}

/// Reads the gateway's lines and routes each to its request's stream or the GET stream.
async fn route_gateway_output(session: &HttpSession, mut reader: FrameReader<BoxedRead>) {
    loop {
        let frame = match reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the gateway's output");
                return;
            }
        };
        match std::str::from_utf8(frame) {
            Ok(line) => session.route(line),
            Err(_) => tracing::warn!("skipping a gateway message that is not UTF-8"),
        }
    }
}

impl HttpSession {
    fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    fn is_idle(&self, idle_timeout: Duration, initialize_timeout: Duration) -> bool {
        // A session whose client never finished the handshake is not kept for long.
        if !self.initialized.load(Ordering::Relaxed) && self.created.elapsed() >= initialize_timeout
        {
            return true;
        }
        let quiet = lock(&self.last_active).elapsed() >= idle_timeout;
        let streaming = lock(&self.standalone)
            .as_ref()
            .is_some_and(|open| !open.is_closed());
        quiet && !streaming && lock(&self.routes).by_id.is_empty()
    }

    /// Hands one client message to the gateway. Either it is taken (and will be written, in
    /// order) or, when the session does not take it within the write timeout, it is not sent
    /// at all and the POST gets 503.
    async fn send(&self, message: &Value, write_timeout: Duration) -> Result<(), Refusal> {
        let line = serde_json::to_vec(message).map_err(|_| {
            Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the message",
            )
        })?;
        tokio::select! {
            // `send` is cancel safe: a send given up on has not queued its message.
            taken = tokio::time::timeout(write_timeout, self.inbox.send(line)) => match taken {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Refusal::SESSION_ENDED),
                Err(_) => Err(Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the session is busy: the message was not sent; retry later",
                )),
            },
            () = self.token.cancelled() => Err(Refusal::SESSION_ENDED),
        }
    }

    /// Tells the gateway that the client of request `id_key` went away, so that its
    /// downstream call is cancelled (best effort: a full inbox drops the notice).
    fn cancel_downstream(&self, id_key: &str) {
        let notice = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id_key},"reason":"the HTTP client went away"}}}}"#
        );
        if self.inbox.try_send(notice.into_bytes()).is_err() {
            tracing::debug!("cannot pass a cancellation on: the session is busy or ended");
        }
    }

    /// Registers a request so that its progress and response reach its POST's answer, and
    /// gives it a progress token unique in the session (written into `message`). `None` when a
    /// request with this id is in flight already.
    fn register(
        self: &Arc<Self>,
        id_key: String,
        message: &mut Value,
        original_id: Option<Value>,
    ) -> Option<PendingRequest> {
        let cacheable = original_id.is_some()
            && message["method"]
                .as_str()
                .is_some_and(|method| stateless::CACHEABLE.contains(&method));
        let (progress_sender, progress) = mpsc::channel(PROGRESS_CAPACITY);
        let (response_sender, response) = oneshot::channel();
        let mut routes = lock(&self.routes);
        if routes.by_id.contains_key(&id_key) {
            return None;
        }
        let progress_token = message
            .get_mut("params")
            .and_then(|params| params.get_mut("_meta"))
            .and_then(|meta| meta.get_mut("progressToken"))
            .map(|token| {
                let unique = format!(
                    "mcp-host-{}",
                    self.next_progress_token.fetch_add(1, Ordering::Relaxed)
                );
                let original = std::mem::replace(token, Value::String(unique.clone()));
                (Value::String(unique).to_string(), original)
            });
        if let Some((unique, _)) = &progress_token {
            routes
                .by_progress_token
                .insert(unique.clone(), id_key.clone());
        }
        routes.by_id.insert(
            id_key.clone(),
            Route {
                progress: progress_sender,
                response: response_sender,
                progress_token,
                original_id,
                cacheable,
            },
        );
        Some(PendingRequest {
            session: self.clone(),
            id_key,
            progress,
            response,
            answered: false,
            cancelled_by_client: false,
        })
    }

    /// How many requests are waiting for their response.
    fn n_in_flight(&self) -> usize {
        lock(&self.routes).by_id.len()
    }

    /// Forgets the route of a request (by its id), which ends its stream without a response.
    fn forget(&self, id: &Value) {
        self.forget_key(&id.to_string());
    }

    fn forget_key(&self, id_key: &str) {
        let mut routes = lock(&self.routes);
        if let Some(route) = routes.by_id.remove(id_key) {
            if let Some((unique, _)) = &route.progress_token {
                routes.by_progress_token.remove(unique);
            }
        }
    }

    /// Sends one line from the gateway where it belongs.
    fn route(&self, line: &str) {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            id: Option<&'a RawValue>,
            #[serde(borrow)]
            method: Option<Cow<'a, str>>,
            #[serde(borrow)]
            params: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ProgressParams {
            progress_token: Value,
        }
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(line) else {
            tracing::warn!("skipping a gateway message that is not JSON-RPC");
            return;
        };
        match (envelope.method.as_deref(), envelope.id) {
            (None, Some(id)) => {
                let Some(id_key) = json_key(id.get()) else {
                    return;
                };
                let route = {
                    let mut routes = lock(&self.routes);
                    let route = routes.by_id.remove(&id_key);
                    if let Some((unique, _)) = route
                        .as_ref()
                        .and_then(|route| route.progress_token.as_ref())
                    {
                        routes.by_progress_token.remove(unique);
                    }
                    route
                };
                match route {
                    Some(route) => {
                        let line = match (&route.original_id, serde_json::from_str::<Value>(line)) {
                            (Some(original), Ok(mut response)) => {
                                response["id"] = original.clone();
                                if let Some(result) = response.get_mut("result") {
                                    stateless::complete_result(result, route.cacheable);
                                }
                                if let Some(code) = response["error"]["code"].as_i64() {
                                    response["error"]["code"] = json!(stateless::error_code(code));
                                }
                                response.to_string()
                            }
                            _ => line.to_owned(),
                        };
                        let _ = route.response.send(line);
                    }
                    None => tracing::debug!("dropping a response nobody waits for any more"),
                }
                return;
            }
            (Some("notifications/progress"), None) => {
                let progress_key = envelope
                    .params
                    .and_then(|raw| serde_json::from_str::<ProgressParams>(raw.get()).ok())
                    .map(|params| params.progress_token.to_string());
                if let Some(progress_key) = progress_key {
                    let routes = lock(&self.routes);
                    let route = routes
                        .by_progress_token
                        .get(&progress_key)
                        .and_then(|id_key| routes.by_id.get(id_key));
                    if let Some(route) = route {
                        // The client sees its own token again.
                        let original = route.progress_token.as_ref().map(|(_, original)| original);
                        let line = match (serde_json::from_str::<Value>(line), original) {
                            (Ok(mut notification), Some(original)) => {
                                notification["params"]["progressToken"] = original.clone();
                                notification.to_string()
                            }
                            _ => line.to_owned(),
                        };
                        if route.progress.try_send(line).is_err() {
                            tracing::debug!("dropping a progress notification: its stream is slow");
                        }
                        return;
                    }
                }
            }
            _ => {}
        }
        let mut standalone = lock(&self.standalone);
        let Some(sender) = standalone.as_ref() else {
            tracing::debug!("dropping a server message: no GET stream is open");
            return;
        };
        match sender.try_send(line.to_owned()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("dropping a server message: the GET stream is slow");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *standalone = None;
                tracing::debug!("dropping a server message: the GET stream was closed");
            }
        }
    }

    /// One SSE event carrying one JSON-RPC message, and its id; `request` is the tag of the
    /// request whose stream it is on (none on the GET stream).
    fn event(&self, line: &str, request: Option<&str>) -> (u64, Bytes) {
        let counter = self.next_event_id.fetch_add(1, Ordering::Relaxed);
        let id = EventId::text(&self.replica, counter, request);
        (counter, Bytes::from(format!("id: {id}\ndata: {line}\n\n")))
    }

    /// The first event of a request stream: an id to resume from, the reconnection delay, and
    /// no data (SEP-1699).
    fn priming_event(&self, request: &str) -> (u64, Bytes) {
        let counter = self.next_event_id.fetch_add(1, Ordering::Relaxed);
        let id = EventId::text(&self.replica, counter, Some(request));
        (
            counter,
            Bytes::from(format!("id: {id}\nretry: {RETRY_MS}\ndata: \n\n")),
        )
    }

    /// Keeps a request stream for resumption, dropping finished or expired ones beyond the cap.
    fn keep_resumable(&self, request: Arc<ResumableRequest>) {
        let mut resumable = lock(&self.resumable);
        resumable.retain(|kept| lock(&kept.since).elapsed() < RESUMABLE_TTL);
        if resumable.len() >= RESUMABLE_CAPACITY {
            resumable.pop_front();
        }
        resumable.push_back(request);
    }

    /// Forgets a request stream that was carried to its end.
    fn forget_resumable(&self, request: &Arc<ResumableRequest>) {
        lock(&self.resumable).retain(|kept| !Arc::ptr_eq(kept, request));
    }

    /// The request stream that sent event `last_event_id`, if it is still kept.
    fn find_resumable(&self, last_event_id: u64) -> Option<Arc<ResumableRequest>> {
        lock(&self.resumable)
            .iter()
            .find(|request| lock(&request.ids).contains(&last_event_id))
            .cloned()
    }
}

/// A request waiting for its response.
///
/// # Drop behavior
///
/// Dropping it (the client went away, or the stream ended) forgets the request's route; a late
/// response is then dropped.
struct PendingRequest {
    session: Arc<HttpSession>,
    id_key: String,
    progress: mpsc::Receiver<String>,
    response: oneshot::Receiver<String>,
    answered: bool,
    /// The client cancelled it itself: the gateway heard already.
    cancelled_by_client: bool,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // Nobody will read the answer: a JSON reply whose client disconnected, or a stream
        // that was not resumed in time. Forget the route and stop the work downstream.
        let was_routed = lock(&self.session.routes).by_id.contains_key(&self.id_key);
        self.session.forget_key(&self.id_key);
        if was_routed && !self.cancelled_by_client && !self.session.token.is_cancelled() {
            self.session.cancel_downstream(&self.id_key);
        }
    }
}

struct StandaloneStream {
    session: Arc<HttpSession>,
    messages: mpsc::Receiver<String>,
    keep_alive: tokio::time::Interval,
}

/// Answers a request with a JSON body once its response arrives (its progress is dropped).
async fn json_reply(mut pending: PendingRequest) -> Response {
    let token = pending.session.token.clone();
    let outcome = tokio::select! {
        response = &mut pending.response => response.ok(),
        () = token.cancelled() => None,
    };
    pending.answered = outcome.is_some();
    match outcome {
        Some(line) => {
            let mut response = Response::new(Body::from(line));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        None => session_not_found(),
    }
}

/// Answers a request with an SSE stream: a priming event, its progress notifications, then its
/// response. The stream stays resumable: if the client loses it, a GET with the id of the last
/// event it got carries on (see [`resumed_stream_reply`]).
fn event_stream_reply(pending: PendingRequest) -> Response {
    let session = pending.session.clone();
    let request_tag = EventId::request_tag(&pending.id_key);
    let (priming_id, priming) = session.priming_event(&request_tag);
    let mut events = std::collections::VecDeque::new();
    events.push_back((priming_id, priming));
    let request = Arc::new(ResumableRequest {
        request_tag,
        log: tokio::sync::Mutex::new(RequestLog {
            events,
            n_appended: 1,
            pending: Some(pending),
        }),
        carrier: Mutex::new(CancellationToken::new()),
        since: Mutex::new(Instant::now()),
        ids: Mutex::new(std::collections::VecDeque::from([priming_id])),
    });
    session.keep_resumable(request.clone());
    carry(session, request, 0)
}

/// Carries on a request stream on a GET with `Last-Event-ID`: the events after that one that
/// are still kept, then what is still to come. The response that carried it so far is told to
/// stop; if it does not let go within [`RESUME_WAIT`] (its connection is stuck), 409.
async fn resumed_stream_reply(
    session: Arc<HttpSession>,
    request: Arc<ResumableRequest>,
    last_event_id: u64,
) -> Response {
    lock(&request.carrier).cancel();
    let position = {
        let Ok(log) = tokio::time::timeout(RESUME_WAIT, request.log.lock()).await else {
            return error_response(
                StatusCode::CONFLICT,
                "the request stream is still carried by another response",
            );
        };
        let first = log.n_appended - log.events.len();
        let index = log
            .events
            .iter()
            .position(|(id, _)| *id == last_event_id)
            .map_or(0, |index| index + 1);
        first + index
    };
    carry(session, request, position)
}

/// Streams a request's log from `position` on, appending what comes, until the response has
/// been sent, the session ends, or a resumption takes the stream over.
fn carry(session: Arc<HttpSession>, request: Arc<ResumableRequest>, position: usize) -> Response {
    let token = CancellationToken::new();
    *lock(&request.carrier) = token.clone();
    *lock(&request.since) = Instant::now();
    let carrier = Carrier {
        session,
        request,
        token,
        position,
    };
    let body = futures::stream::unfold(carrier, |mut carrier| async move {
        let event = carrier.next().await?;
        Some((Ok::<_, Infallible>(event), carrier))
    });
    event_stream_response(Body::from_stream(body))
}

/// One HTTP response carrying a request stream.
struct Carrier {
    session: Arc<HttpSession>,
    request: Arc<ResumableRequest>,
    token: CancellationToken,
    /// The position in the log of the next event to send.
    position: usize,
}

impl Carrier {
    /// The next event to send, or `None` when this response ends.
    async fn next(&mut self) -> Option<Bytes> {
        let session_token = self.session.token.clone();
        let mut log = tokio::select! {
            log = self.request.log.lock() => log,
            () = self.token.cancelled() => return None,
        };
        loop {
            let first = log.n_appended - log.events.len();
            if self.position < first {
                // Older events are gone; carry on from the oldest kept.
                self.position = first;
            }
            if let Some((_, event)) = log.events.get(self.position - first) {
                self.position += 1;
                return Some(event.clone());
            }
            let pending = match log.pending.as_mut() {
                Some(pending) => pending,
                None => {
                    // Everything, response included, was sent.
                    self.session.forget_resumable(&self.request);
                    return None;
                }
            };
            let line = tokio::select! {
                // Progress sent before the response is already queued when the response arrives.
                biased;
                Some(line) = pending.progress.recv() => line,
                response = &mut pending.response => match response {
                    Ok(line) => {
                        pending.answered = true;
                        log.pending = None;
                        line
                    }
                    Err(_) => {
                        // The request was cancelled: there is nothing more to send or resume.
                        log.pending = None;
                        self.session.forget_resumable(&self.request);
                        return None;
                    }
                },
                () = self.token.cancelled() => return None,
                () = session_token.cancelled() => return None,
            };
            let event = self.session.event(&line, Some(&self.request.request_tag));
            *lock(&self.request.since) = Instant::now();
            let mut ids = lock(&self.request.ids);
            ids.push_back(event.0);
            log.events.push_back(event);
            log.n_appended += 1;
            if log.events.len() > REPLAY_EVENTS {
                log.events.pop_front();
                ids.pop_front();
            }
        }
    }
}

fn event_stream_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Ends sessions that have been idle for longer than the configured timeout.
async fn sweep_idle_sessions(state: Arc<HttpState>) {
    let idle_timeout = state.options.idle_timeout;
    let initialize_timeout = state.options.initialize_timeout;
    let period = (idle_timeout / 4)
        .min(initialize_timeout / 2)
        .clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.root.cancelled() => return,
        }
        let idle: Vec<Arc<HttpSession>> = {
            let mut sessions = lock(&state.sessions);
            let idle_ids: Vec<String> = sessions
                .values()
                .filter(|session| session.is_idle(idle_timeout, initialize_timeout))
                .map(|session| session.id.clone())
                .collect();
            idle_ids
                .iter()
                .filter_map(|id| sessions.remove(id))
                .collect()
        };
        for session in idle {
            tracing::info!(session = %short(&session.id), "ending an idle session");
            session.token.cancel();
        }
    }
}

/// Classifies a POSTed message; `None` when it is not one JSON-RPC message.
fn classify(message: &Value) -> Option<Kind> {
    let object = message.as_object()?;
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_number());
    match (object.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => Some(Kind::Request {
            id_key: id.to_string(),
            method: method.to_owned(),
        }),
        (Some(_), None) if !object.contains_key("id") => Some(Kind::NoReply),
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => {
            Some(Kind::NoReply)
        }
        _ => None,
    }
}

/// The canonical JSON text of an id or token, so `1` and `1.0`-free texts compare equal.
fn json_key(raw: &str) -> Option<String> {
    serde_json::from_str::<Value>(raw)
        .ok()
        .map(|value| value.to_string())
}

/// The session id header, if there is one; a malformed one is a 400.
fn session_header(headers: &HeaderMap) -> Result<Option<&str>, Refusal> {
    match headers.get(SESSION_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "malformed Mcp-Session-Id header")),
    }
}

fn reply_mode(headers: &HeaderMap) -> Option<Reply> {
    if accepts(headers, "text/event-stream") {
        return Some(Reply::EventStream);
    }
    let no_accept = headers.get_all(header::ACCEPT).iter().next().is_none();
    if no_accept || accepts(headers, "application/json") || accepts(headers, "*/*") {
        return Some(Reply::Json);
    }
    None
}

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.split(';').next())
        .any(|item| item.trim().eq_ignore_ascii_case(media_type))
}

/// Loopback origins are always allowed; others only when listed (compared whole, ignoring case).
fn origin_allowed(origin: &HeaderValue, allowed: &[String]) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split_inclusive(']').next().unwrap_or(rest)
    } else {
        rest.split(':').next().unwrap_or(rest)
    };
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|loopback| host.eq_ignore_ascii_case(loopback))
}

/// 128 random bits as 32 hex digits.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The start of a session id, enough to tell sessions apart in logs without revealing them.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Why a request is refused: an HTTP status and a message for the body.
#[derive(Clone, Copy, Debug)]
struct Refusal(StatusCode, &'static str);

impl Refusal {
    /// The session ended while the message was being handed over (its connection closed).
    const SESSION_ENDED: Refusal = Refusal(
        StatusCode::NOT_FOUND,
        "session not found: it ended while the message was being sent",
    );

    fn response(self) -> Response {
        error_response(self.0, self.1)
    }
}

/// 429 with `Retry-After` for a client over one of its quotas.
fn quota_response(refusal: &QuotaRefusal) -> Response {
    let mut response =
        rpc_error_response(StatusCode::TOO_MANY_REQUESTS, -32000, &refusal.to_string());
    if let Ok(value) = HeaderValue::from_str(&refusal.retry_after_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn session_not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "session not found")
}

fn error_response(status: StatusCode, message: &str) -> Response {
    rpc_error_response(status, -32000, message)
}

/// An HTTP error with a JSON-RPC error body (id null), as SDK clients expect.
fn rpc_error_response(status: StatusCode, code: i64, message: &str) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_origin(origin: &str, allowed: &[&str], expect: bool) {
        let allowed: Vec<String> = allowed.iter().map(|text| (*text).to_owned()).collect();
        let origin = HeaderValue::from_str(origin).unwrap();
        assert_eq!(origin_allowed(&origin, &allowed), expect, "{origin:?}");
    }

    #[test]
    fn origins() {
        check_origin("http://localhost:3000", &[], true);
        check_origin("http://127.0.0.1", &[], true);
        check_origin("http://[::1]:8080", &[], true);
        check_origin("https://LOCALHOST", &[], true);
        check_origin("http://localhost.evil.example", &[], false);
        check_origin("http://evil.example", &[], false);
        check_origin("null", &[], false);
        check_origin(
            "https://app.example.com",
            &["https://app.example.com"],
            true,
        );
        check_origin(
            "https://app.example.com",
            &["https://app.example.com/"],
            true,
        );
        check_origin(
            "https://app.example.com:444",
            &["https://app.example.com"],
            false,
        );
    }

    #[track_caller]
    fn check_classify(message: Value, expect: &str) {
        let kind = match classify(&message) {
            None => "invalid".to_owned(),
            Some(Kind::NoReply) => "no-reply".to_owned(),
            Some(Kind::Request { id_key, method }) => format!("request {id_key} {method}"),
        };
        assert_eq!(kind, expect);
    }

    #[test]
    fn messages() {
        check_classify(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            "request 1 tools/list",
        );
        check_classify(
            json!({"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"_meta": {"progressToken": 7}}}),
            "request \"a\" tools/call",
        );
        check_classify(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            "no-reply",
        );
        check_classify(json!({"jsonrpc": "2.0", "id": 3, "result": {}}), "no-reply");
        check_classify(
            json!({"jsonrpc": "2.0", "id": null, "method": "x"}),
            "invalid",
        );
        check_classify(json!([{"jsonrpc": "2.0", "method": "x"}]), "invalid");
        check_classify(json!({"jsonrpc": "2.0"}), "invalid");
    }

    #[test]
    fn event_ids_name_their_replica_and_request() {
        let tag = EventId::request_tag("\"req-1\"");
        let text = EventId::text("ab12cd34", 7, Some(&tag));
        assert_eq!(
            EventId::parse(&text),
            Some(EventId {
                replica: "ab12cd34".to_owned(),
                counter: 7,
                request: Some(json!("req-1")),
            })
        );
        assert_eq!(EventId::parse("ab12cd34.9").unwrap().request, None);
        assert_eq!(EventId::parse("12"), None);
        assert_eq!(EventId::parse("a.b"), None);
        let object = EventId::request_tag("{}");
        assert_eq!(EventId::parse(&format!("a.1.{object}")), None);
    }

    #[test]
    fn session_ids_are_128_random_bits() {
        let first = new_session_id().unwrap();
        let second = new_session_id().unwrap();
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }
}
