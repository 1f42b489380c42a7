//! The handle through which the host talks to one server: requests, notifications, typed calls.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mcp_transport::{Diagnostics, ServerName, Transport};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::connection::{self, Connection};
use crate::envelope::{self, Decode, Decoded};
use crate::outbox::Outbox;
use crate::protocol::{
    CallToolResult, DiscoverResult, GetPromptResult, Implementation, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    LoggingLevel, LoggingMessage, Page, Progress, Prompt, ReadResourceResult, Resource,
    ResourceTemplate, Root, RpcError, Task, Tool, LATEST_PROTOCOL_VERSION,
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, STATELESS_PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION_CODE,
};
use crate::Error;

/// Answers the server's `roots/list` requests.
pub trait RootsProvider: Send + Sync + 'static {
    /// The roots this server may see now.
    fn roots(&self) -> Vec<Root>;
}

/// A fixed list of roots.
impl RootsProvider for Vec<Root> {
    fn roots(&self) -> Vec<Root> {
        self.clone()
    }
}

/// The future of one answer to a server's request, from a [`ClientRequestHandler`].
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;

/// Answers the requests a server sends to its client beyond `ping` and `roots/list`, such as
/// `sampling/createMessage` and `elicitation/create` (for example by passing them on to an MCP
/// client further up, as the gateway does).
///
/// The session declares the capabilities the handler names in `initialize`, and runs each
/// answer concurrently with the connection (at most [`MAX_CLIENT_REQUESTS`] at once: beyond
/// that, requests get -32000 without the handler being called; each bounded by the session's
/// request timeout); a request of a method the handler does not take gets -32601. When the
/// server cancels a request (`notifications/cancelled`), the future of its answer is dropped
/// and no answer is sent.
pub trait ClientRequestHandler: Send + Sync + 'static {
    /// The client capabilities to declare, as members of `capabilities` (for example
    /// `{"sampling": {}, "elicitation": {}}`).
    fn capabilities(&self) -> Map<String, Value>;

    /// Whether the handler takes requests of `method`.
    fn handles(&self, method: &str) -> bool;

    /// Answers one request of `server`.
    fn handle(&self, server: &ServerName, method: &str, params: Option<Value>) -> HandlerFuture;
}

/// How many server requests a session answers through its [`ClientRequestHandler`] at once
/// (from the call of [`ClientRequestHandler::handle`] until its future ends or is dropped);
/// more are refused with -32000 until one ends.
pub const MAX_CLIENT_REQUESTS: usize = 32;

/// The default of [`SessionOptions::max_input_backlog`]: 16 MiB.
pub const DEFAULT_MAX_INPUT_BACKLOG: usize = 16 * 1024 * 1024;

/// Called with every progress report of one request.
pub type ProgressCallback = Arc<dyn Fn(Progress) + Send + Sync>;

/// How a session agrees on the protocol revision with its server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Handshake {
    /// The `initialize` handshake of revision 2025-11-25 (and older): the default, what every
    /// server speaks today.
    #[default]
    Initialize,
    /// `server/discover` of the stateless revision 2026-07-28 only; a server that does not speak
    /// it fails the handshake.
    Discover,
    /// `server/discover` first; a server that answers with anything but a discover result or a
    /// version correction (an error such as -32601 or -32602, or no answer within
    /// [`SessionOptions::discover_timeout`]) is then initialized the 2025-11-25 way. Beware that
    /// some older stdio servers exit on any request before `initialize`.
    Auto,
}

/// Settings of a session.
#[derive(Clone)]
pub struct SessionOptions {
    /// How the protocol revision is agreed (default [`Handshake::Initialize`]).
    pub handshake: Handshake,
    /// With [`Handshake::Auto`]: how long `server/discover` may go unanswered before the server
    /// is taken for an older one (default 5 s).
    pub discover_timeout: Duration,
    /// Who the host is, as told to the server in `initialize`.
    pub client_info: Implementation,
    /// Timeout of every request unless the call says otherwise (default 60 s).
    pub request_timeout: Duration,
    /// Hard limit on a request's duration even when progress keeps extending it (default 10 min).
    pub max_request_timeout: Duration,
    /// How many notifications may wait in the event queue before new ones are dropped and
    /// counted (default 1024).
    pub event_capacity: usize,
    /// Most pages a list helper fetches before giving up (default 100).
    pub max_pages: usize,
    /// How long to wait for the exit status and the rest of stderr once the server has closed
    /// its output, to explain the failure (default 500 ms).
    pub exit_wait: Duration,
    /// How long a write to the server may make no progress before the server is considered
    /// stuck (it stopped reading its input) and the session ends (default 30 s).
    pub write_timeout: Duration,
    /// How many bytes may wait to be written to the server (beyond the one batch being written)
    /// before the server is considered too slow a reader and the session ends (default 16 MiB).
    /// A server that reads a byte now and then makes progress, so only this bound stops it from
    /// making the host queue an answer to each of its requests for good.
    pub max_input_backlog: usize,
    /// Source of the answer to `roots/list`; when `None` the host does not offer roots.
    pub roots: Option<Arc<dyn RootsProvider>>,
    /// Answers the server's other requests (sampling, elicitation); when `None` they get
    /// -32601 and no such capability is declared.
    pub client_requests: Option<Arc<dyn ClientRequestHandler>>,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            handshake: Handshake::Initialize,
            discover_timeout: Duration::from_secs(5),
            client_info: Implementation::new("mcp-host", env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_secs(60),
            max_request_timeout: Duration::from_secs(600),
            event_capacity: 1024,
            max_pages: 100,
            exit_wait: Duration::from_millis(500),
            write_timeout: Duration::from_secs(30),
            max_input_backlog: DEFAULT_MAX_INPUT_BACKLOG,
            roots: None,
            client_requests: None,
        }
    }
}

impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("handshake", &self.handshake)
            .field("discover_timeout", &self.discover_timeout)
            .field("client_info", &self.client_info)
            .field("request_timeout", &self.request_timeout)
            .field("max_request_timeout", &self.max_request_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("max_pages", &self.max_pages)
            .field("exit_wait", &self.exit_wait)
            .field("write_timeout", &self.write_timeout)
            .field("max_input_backlog", &self.max_input_backlog)
            .field("roots", &self.roots.is_some())
            .field("client_requests", &self.client_requests.is_some())
            .finish()
    }
}

/// Settings of one request.
#[derive(Clone, Default)]
pub struct RequestOptions {
    /// Overrides the session's request timeout.
    pub timeout: Option<Duration>,
    /// Receives progress reports; each report restarts the timeout, up to the session's hard
    /// maximum.
    pub on_progress: Option<ProgressCallback>,
}

impl RequestOptions {
    /// Options with just a timeout.
    pub fn with_timeout(timeout: Duration) -> RequestOptions {
        RequestOptions {
            timeout: Some(timeout),
            on_progress: None,
        }
    }
}

impl fmt::Debug for RequestOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestOptions")
            .field("timeout", &self.timeout)
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

/// A notification from the server, delivered through [`Session::take_events`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `notifications/tools/list_changed`.
    ToolsListChanged,
    /// `notifications/prompts/list_changed`.
    PromptsListChanged,
    /// `notifications/resources/list_changed`.
    ResourcesListChanged,
    /// `notifications/resources/updated`.
    ResourceUpdated {
        /// The resource that changed.
        uri: String,
    },
    /// `notifications/message`: a log message.
    Log(LoggingMessage),
    /// `notifications/tasks/status`: a task's new state.
    TaskStatus(Task),
    /// `notifications/elicitation/complete`: the out-of-band interaction of a URL-mode
    /// elicitation is done.
    ElicitationComplete {
        /// The `elicitationId` of the `elicitation/create` it completes.
        elicitation_id: String,
    },
    /// Any other notification.
    Other {
        /// Its method.
        method: String,
        /// Its parameters.
        params: Option<Value>,
    },
}

/// The handle of a session with one server. Cheap to clone; all clones share the session.
///
/// Create it with [`connect`] or [`handshake`]; its [`Connection`] must be polled (spawned) for
/// anything to happen.
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<Shared>,
    _handle: Arc<HandleGuard>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.shared.server)
            .field("closed", &self.shared.closed.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Cancels `handles_gone` when the last [`Session`] clone is dropped.
struct HandleGuard(CancellationToken);

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// State shared by the session handles and the connection driver.
pub(crate) struct Shared {
    pub(crate) server: ServerName,
    pub(crate) options: SessionOptions,
    pub(crate) diagnostics: Diagnostics,
    next_id: AtomicU64,
    pending: Mutex<PendingMap>,
    pub(crate) outbox: Outbox,
    closed: OnceLock<CloseReason>,
    /// Set when writing to the server failed: why nothing more can be sent.
    input_failure: OnceLock<Arc<std::io::Error>>,
    initialized: OnceLock<InitializeResult>,
    /// Set when revision 2026-07-28 was agreed: what every request carries in its `_meta`.
    stateless: OnceLock<StatelessMeta>,
    pub(crate) n_events_dropped: AtomicU64,
    /// The server's requests being answered by the client-request handler.
    pub(crate) server_requests: connection::ServerRequests,
    pub(crate) handles_gone: CancellationToken,
    events: Mutex<Option<mpsc::Receiver<Event>>>,
    /// Progress callbacks of live task handles, by progress token.
    pub(crate) task_progress: Mutex<crate::tasks::TaskProgress>,
}

/// Hashes the pending map's keys, request ids this session numbered itself from 1: a multiply
/// spreads them over the table, where SipHash (the default, against chosen keys) costs more than
/// the rest of the lookup. A server can only look ids up, not insert them.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for a `u64` key; this covers any other use all the same.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The requests waiting for an answer, and the driver's one timer for all their deadlines.
pub(crate) struct PendingMap {
    requests: HashMap<u64, Pending, BuildHasherDefault<IdHasher>>,
    /// What the driver's timer is set for, or is to be set for once the driver is woken: never
    /// later than the earliest deadline in `requests` (it may be earlier: a request that is
    /// answered leaves the timer as it is, and the driver finds nothing due when it fires).
    armed: Option<Instant>,
    /// The driver's waker, woken when a request needs the timer earlier than `armed`.
    timer: Option<Waker>,
}

struct Pending {
    reply: oneshot::Sender<Reply>,
    progress: Option<Arc<ProgressState>>,
    /// When the request times out, unless progress pushes it back.
    deadline: Instant,
    /// The request's timeout, by which each progress report pushes the deadline back.
    timeout: Duration,
    /// The latest the deadline may be pushed back to.
    hard_deadline: Instant,
    /// Decodes the result into the type the caller waits for, in the driver.
    decode: Decode,
}

struct ProgressState {
    callback: ProgressCallback,
    started: Instant,
    /// Milliseconds after `started` of the latest progress report.
    last_report_ms: AtomicU64,
}

pub(crate) enum Reply {
    /// The result, decoded with the request's [`Decode`].
    Result(Decoded),
    /// A well-formed result of the wrong shape.
    Undecodable(serde_json::Error),
    Error(RpcError),
    Closed(CloseReason),
    /// The deadline passed (the driver has removed the request).
    TimedOut,
}

/// Why a session ended; turned into an [`Error`] for every request it affects.
#[derive(Clone, Debug)]
pub(crate) enum CloseReason {
    ShuttingDown,
    ServerClosed {
        status: Option<std::process::ExitStatus>,
        stderr_tail: Arc<str>,
    },
    LineTooLong {
        limit: usize,
    },
    InputStalled {
        timeout: Duration,
    },
    InputClosed {
        cause: Arc<std::io::Error>,
    },
    InputBacklog {
        limit: usize,
    },
}

impl CloseReason {
    pub(crate) fn to_error(&self, server: &ServerName) -> Error {
        match self {
            CloseReason::ShuttingDown => Error::ShuttingDown {
                server: server.clone(),
            },
            CloseReason::ServerClosed {
                status,
                stderr_tail,
            } => Error::ServerClosed {
                server: server.clone(),
                status: *status,
                stderr_tail: stderr_tail.clone(),
            },
            CloseReason::InputStalled { timeout } => Error::InputStalled {
                server: server.clone(),
                timeout: *timeout,
            },
            CloseReason::InputClosed { cause } => Error::InputClosed {
                server: server.clone(),
                source: cause.clone(),
            },
            CloseReason::InputBacklog { limit } => Error::InputBacklog {
                server: server.clone(),
                limit: *limit,
            },
            CloseReason::LineTooLong { limit } => Error::Transport {
                server: server.clone(),
                source: mcp_transport::Error::LineTooLong {
                    server: server.clone(),
                    limit: *limit,
                },
            },
        }
    }
}

/// Creates a session over `transport` without doing the handshake.
///
/// Poll the returned [`Connection`] (spawn it on a tracker), then call
/// [`Session::initialize`]. [`handshake`] does both steps for you.
pub fn connect(transport: Transport, options: SessionOptions) -> (Session, Connection) {
    let (reader, writer, diagnostics) = transport.into_parts();
    let (events_tx, events_rx) = mpsc::channel(options.event_capacity.max(1));
    let max_input_backlog = options.max_input_backlog;
    let handles_gone = CancellationToken::new();
    let shared = Arc::new(Shared {
        server: diagnostics.server().clone(),
        options,
        diagnostics,
        next_id: AtomicU64::new(1),
        pending: Mutex::new(PendingMap {
            requests: HashMap::default(),
            armed: None,
            timer: None,
        }),
        outbox: Outbox::new(writer, max_input_backlog),
        closed: OnceLock::new(),
        input_failure: OnceLock::new(),
        initialized: OnceLock::new(),
        stateless: OnceLock::new(),
        n_events_dropped: AtomicU64::new(0),
        server_requests: connection::ServerRequests::new(),
        handles_gone: handles_gone.clone(),
        events: Mutex::new(Some(events_rx)),
        task_progress: Mutex::new(HashMap::new()),
    });
    let connection = connection::new(shared.clone(), reader, events_tx);
    let session = Session {
        shared,
        _handle: Arc::new(HandleGuard(handles_gone)),
    };
    (session, connection)
}

/// Creates a session over `transport` and performs the `initialize` handshake, polling the
/// connection meanwhile. On success, spawn the returned [`Connection`] before using the session.
///
/// # Cancel safety
///
/// Cancelling drops the session and the connection, which closes the server's input.
pub async fn handshake(
    transport: Transport,
    options: SessionOptions,
) -> Result<(Session, Connection, InitializeResult), Error> {
    let (session, mut connection) = connect(transport, options);
    let result = {
        let initialize = session.initialize();
        tokio::pin!(initialize);
        tokio::select! {
            biased;
            result = &mut initialize => result,
            ended = &mut connection => {
                // The connection failed every pending request when it ended, so this returns now.
                match initialize.await {
                    Err(err) => Err(err),
                    Ok(_) => Err(ended.err().unwrap_or(Error::ShuttingDown {
                        server: session.shared.server.clone(),
                    })),
                }
            }
        }
    };
    let result = result?;
    Ok((session, connection, result))
}

impl Session {
    /// The server at the other end.
    pub fn server(&self) -> &ServerName {
        &self.shared.server
    }

    /// The server's side channels (stderr tail, exit status).
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.shared.diagnostics
    }

    /// The server's answer to `initialize`, once the handshake is done.
    pub fn peer(&self) -> Option<&InitializeResult> {
        self.shared.initialized.get()
    }

    /// The protocol revision in use, once the handshake is done.
    pub fn protocol_version(&self) -> Option<&str> {
        self.peer().map(|peer| peer.protocol_version.as_str())
    }

    /// Whether the stateless revision 2026-07-28 was agreed (with `server/discover`).
    pub fn is_stateless(&self) -> bool {
        self.shared.stateless.get().is_some()
    }

    /// The session's settings.
    pub(crate) fn options(&self) -> &SessionOptions {
        &self.shared.options
    }

    /// A slot among the [`MAX_CLIENT_REQUESTS`] answers the client-request handler may work on
    /// at once; waits for one to be free (the caller bounds the wait).
    pub(crate) async fn client_request_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.shared.server_requests.slot().await
    }

    /// Whether the session has ended (server gone or shutting down).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.get().is_some()
    }

    /// Takes the receiver of server notifications. Only the first call gets it.
    ///
    /// The queue is bounded ([`SessionOptions::event_capacity`]): when it is full, new events are
    /// dropped and counted in [`Session::n_events_dropped`], so a flood cannot grow memory.
    pub fn take_events(&self) -> Option<mpsc::Receiver<Event>> {
        lock(&self.shared.events).take()
    }

    /// How many notifications were dropped because the event queue was full.
    pub fn n_events_dropped(&self) -> u64 {
        self.shared.n_events_dropped.load(Ordering::Relaxed)
    }

    /// How many requests are waiting for an answer.
    pub fn n_pending(&self) -> usize {
        lock(&self.shared.pending).requests.len()
    }

    /// Performs the `initialize` handshake: `initialize`, check the protocol revision, then
    /// `notifications/initialized`.
    ///
    /// # Cancel safety
    ///
    /// Cancelling leaves the session uninitialised; the server is not sent
    /// `notifications/cancelled` for `initialize`, as the protocol requires.
    pub async fn initialize(&self) -> Result<InitializeResult, Error> {
        match self.shared.options.handshake {
            Handshake::Initialize => self.initialize_classic().await,
            Handshake::Discover => match self.discover(None).await? {
                Discovered::Stateless(result) => Ok(*result),
                Discovered::Older(reason) => Err(reason),
            },
            Handshake::Auto => {
                let timeout = self.shared.options.discover_timeout;
                match self.discover(Some(timeout)).await? {
                    Discovered::Stateless(result) => Ok(*result),
                    Discovered::Older(reason) => {
                        tracing::info!(server = %self.shared.server, reason = %reason, "the server does not speak revision 2026-07-28; initializing it the 2025-11-25 way");
                        self.initialize_classic().await
                    }
                }
            }
        }
    }

    /// The handshake of revision 2026-07-28: `server/discover`, with one retry when the server
    /// asks for a version it lists. `Older` carries why the server looks like an older one.
    async fn discover(&self, timeout: Option<Duration>) -> Result<Discovered, Error> {
        let shared = &self.shared;
        let mut version = STATELESS_PROTOCOL_VERSION.to_owned();
        let mut retried = false;
        loop {
            let meta = StatelessMeta::new(
                &version,
                &shared.options.client_info,
                client_capabilities(&shared.options),
            );
            let params = serde_json::json!({ "_meta": meta.map });
            let options = RequestOptions {
                timeout: timeout.or(Some(shared.options.request_timeout)),
                on_progress: None,
            };
            let outcome: Result<DiscoverResult, Error> = self
                .request_typed("server/discover", Some(params), &options)
                .await;
            match outcome {
                Ok(result) => {
                    if !result.supported_versions.contains(&version) {
                        return Ok(Discovered::Older(Error::UnsupportedProtocolVersion {
                            server: shared.server.clone(),
                            requested: version,
                            offered: result.supported_versions.join(", "),
                        }));
                    }
                    let server_info = result.server_info();
                    let init = InitializeResult {
                        protocol_version: version.clone(),
                        capabilities: result.capabilities,
                        server_info,
                        instructions: result.instructions,
                        extra: result.extra,
                    };
                    let _ = shared.stateless.set(meta);
                    let _ = shared.initialized.set(init.clone());
                    tracing::info!(
                        server = %shared.server,
                        protocol_version = %init.protocol_version,
                        server_name = %init.server_info.name,
                        server_version = %init.server_info.version,
                        "server discovered"
                    );
                    return Ok(Discovered::Stateless(Box::new(init)));
                }
                Err(Error::Rpc {
                    code: UNSUPPORTED_PROTOCOL_VERSION_CODE,
                    data,
                    message,
                    ..
                }) => {
                    // A server of the new era: it says which versions it speaks.
                    let supported: Vec<String> = data
                        .as_ref()
                        .and_then(|data| data.get("supported"))
                        .and_then(|list| serde_json::from_value(list.clone()).ok())
                        .unwrap_or_default();
                    let ours = supported
                        .iter()
                        .find(|v| v.as_str() == STATELESS_PROTOCOL_VERSION);
                    match ours {
                        Some(ours) if !retried => {
                            tracing::debug!(server = %shared.server, %message, "retrying server/discover with a version the server lists");
                            version = ours.clone();
                            retried = true;
                        }
                        _ => {
                            return Err(Error::UnsupportedProtocolVersion {
                                server: shared.server.clone(),
                                requested: version,
                                offered: supported.join(", "),
                            })
                        }
                    }
                }
                // Any other answer (-32601, -32602, an HTTP error, no answer in time) is what an
                // older server gives.
                Err(error @ (Error::Rpc { .. } | Error::Timeout { .. })) => {
                    return Ok(Discovered::Older(error))
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The `initialize` handshake of revision 2025-11-25 and older.
    async fn initialize_classic(&self) -> Result<InitializeResult, Error> {
        let shared = &self.shared;
        let params = serde_json::json!({
            "protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": client_capabilities(&shared.options),
            "clientInfo": shared.options.client_info,
        });
        let result: InitializeResult = self
            .request_typed("initialize", Some(params), &RequestOptions::default())
            .await?;
        if !SUPPORTED_PROTOCOL_VERSIONS.contains(&result.protocol_version.as_str()) {
            return Err(Error::UnsupportedProtocolVersion {
                server: shared.server.clone(),
                requested: LATEST_PROTOCOL_VERSION.to_owned(),
                offered: result.protocol_version,
            });
        }
        let _ = shared.initialized.set(result.clone());
        self.notify("notifications/initialized", None)?;
        tracing::info!(
            server = %shared.server,
            protocol_version = %result.protocol_version,
            server_name = %result.server_info.name,
            server_version = %result.server_info.version,
            "server initialized"
        );
        Ok(result)
    }

    /// Sends a request and decodes its result.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes sends `notifications/cancelled` for the request
    /// and forgets it; a late answer is ignored.
    pub async fn request<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Option<Value>,
        options: &RequestOptions,
    ) -> Result<R, Error> {
        // Any `R` may be asked for, so the result is decoded here rather than in the driver
        // (which needs `R: Send + 'static`).
        if let Some(Value::Object(params)) = &params {
            if self.takes_input(method) {
                return self
                    .request_with_input(method, params.clone(), options)
                    .await;
            }
        }
        let raw = self.request_raw(method, params, options).await?;
        serde_json::from_str(raw.get()).map_err(|source| Error::Decode {
            server: self.shared.server.clone(),
            method: method.to_owned(),
            source,
        })
    }

    /// [`Session::request`] for results the driver can decode (`Send + 'static`): the answer is
    /// parsed once, in place.
    async fn request_typed<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        params: Option<Value>,
        options: &RequestOptions,
    ) -> Result<R, Error> {
        self.exchange(method, options, |id, meta| {
            encode_request(id, method, params, meta)
        })
        .await
    }

    /// Sends a request and returns its result undecoded.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn request_raw(
        &self,
        method: &str,
        params: Option<Value>,
        options: &RequestOptions,
    ) -> Result<Box<RawValue>, Error> {
        if let Some(Value::Object(params)) = &params {
            if self.takes_input(method) {
                return self
                    .request_with_input(method, params.clone(), options)
                    .await;
            }
        }
        self.exchange(method, options, |id, meta| {
            encode_request(id, method, params, meta)
        })
        .await
    }

    /// Sends the request that `encode(id, meta)` writes and waits for its answer, decoded (by
    /// the driver) into `R`.
    pub(crate) async fn exchange<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        options: &RequestOptions,
        encode: impl FnOnce(u64, RequestMeta<'_>) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<R, Error> {
        let shared = &*self.shared;
        if let Some(reason) = shared.closed.get() {
            return Err(reason.to_error(&shared.server));
        }
        if shared.diagnostics.is_input_close_requested() {
            return Err(Error::ShuttingDown {
                server: shared.server.clone(),
            });
        }
        let handshake = method == "initialize" || method == "server/discover";
        if shared.initialized.get().is_none() && !handshake && method != "ping" {
            return Err(Error::NotInitialized {
                server: shared.server.clone(),
                method: method.to_owned(),
            });
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let timeout = options.timeout.unwrap_or(shared.options.request_timeout);
        let progress = options.on_progress.as_ref().map(|callback| {
            Arc::new(ProgressState {
                callback: callback.clone(),
                started: Instant::now(),
                last_report_ms: AtomicU64::new(0),
            })
        });
        let meta = RequestMeta {
            progress: progress.is_some(),
            stateless: shared.stateless.get(),
        };
        let line = encode(id, meta).map_err(|source| Error::Encode {
            server: shared.server.clone(),
            method: method.to_owned(),
            source,
        })?;

        let (reply_tx, reply_rx) = oneshot::channel();
        let started = Instant::now();
        let deadline = started + timeout;
        let n_in_flight = {
            let mut pending = lock(&shared.pending);
            pending.requests.insert(
                id,
                Pending {
                    reply: reply_tx,
                    progress,
                    deadline,
                    timeout,
                    hard_deadline: started + shared.options.max_request_timeout.max(timeout),
                    decode: envelope::decode::<R>,
                },
            );
            // The driver's timer keeps every deadline; it needs waking only when this one comes
            // first (with one timeout for all requests, rarely: the timer stays set meanwhile).
            if pending.armed.is_none_or(|armed| deadline < armed) {
                pending.armed = Some(deadline);
                if let Some(timer) = pending.timer.take() {
                    timer.wake();
                }
            }
            pending.requests.len()
        };
        let mut guard = PendingGuard {
            shared,
            id,
            cancel_on_drop: !handshake,
            armed: true,
        };
        // The connection may have closed between the first check and the insertion; it fails
        // everything pending when it closes, so check again now that we are in the map.
        if let Some(reason) = shared.closed.get() {
            guard.forget();
            return Err(reason.to_error(&shared.server));
        }
        // Alone, the request is written by this task (no hand-off to the driver); among others
        // in flight, the driver batches it with them into one write.
        let sent = if n_in_flight == 1 {
            shared.outbox.send(line)
        } else {
            shared.outbox.send_batched(line)
        };
        if !sent {
            guard.forget();
            return Err(shared.unsendable(method));
        }
        tracing::trace!(server = %shared.server, request_id = id, method, "request sent");

        // Bounded: the connection's timer answers `TimedOut` at the deadline.
        let reply = reply_rx.await;
        guard.armed = false;
        let decode_error = |source| Error::Decode {
            server: shared.server.clone(),
            method: method.to_owned(),
            source,
        };
        match reply {
            Ok(Reply::Result(value)) => match value.downcast::<R>() {
                Ok(value) => Ok(*value),
                // The decoder was chosen with `R` above, so this does not happen.
                Err(_) => Err(decode_error(serde::de::Error::custom(
                    "the result was decoded into another type",
                ))),
            },
            Ok(Reply::Undecodable(source)) => Err(decode_error(source)),
            Ok(Reply::Error(error)) => Err(Error::Rpc {
                server: shared.server.clone(),
                method: method.to_owned(),
                code: error.code,
                message: error.message,
                data: error.data,
            }),
            Ok(Reply::Closed(reason)) => Err(reason.to_error(&shared.server)),
            Ok(Reply::TimedOut) => {
                guard.tell_cancelled("timed out");
                Err(Error::Timeout {
                    server: shared.server.clone(),
                    method: method.to_owned(),
                    timeout: started.elapsed(),
                })
            }
            // The sender is dropped only when the entry is removed without an answer, which
            // happens when the session closes.
            Err(_) => Err(shared
                .closed
                .get()
                .map(|reason| reason.to_error(&shared.server))
                .unwrap_or(Error::ShuttingDown {
                    server: shared.server.clone(),
                })),
        }
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Option<Value>) -> Result<(), Error> {
        let shared = &self.shared;
        if let Some(reason) = shared.closed.get() {
            return Err(reason.to_error(&shared.server));
        }
        let line = encode_notification(method, params).map_err(|source| Error::Encode {
            server: shared.server.clone(),
            method: method.to_owned(),
            source,
        })?;
        if !shared.outbox.send(line) {
            return Err(shared.unsendable(method));
        }
        Ok(())
    }

    /// Tells the server that the roots changed (`notifications/roots/list_changed`).
    ///
    /// Revision 2026-07-28 has no such notification: nothing is sent then.
    pub fn notify_roots_changed(&self) -> Result<(), Error> {
        if self.shared.stateless.get().is_some() {
            return Ok(());
        }
        self.notify("notifications/roots/list_changed", None)
    }

    /// Ends the session from the host's side: every request in flight fails now with
    /// [`Error::ShuttingDown`], new requests fail the same way, and the server's input is closed.
    pub fn shut_down(&self) {
        self.shared.close(CloseReason::ShuttingDown);
        self.shared.diagnostics.request_input_close();
    }

    /// Sends `ping` and waits for the answer.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn ping(&self, options: &RequestOptions) -> Result<(), Error> {
        let _: Value = self.request_typed("ping", None, options).await?;
        Ok(())
    }

    /// Fetches one page of tools.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_tools(&self, cursor: Option<&str>) -> Result<ListToolsResult, Error> {
        self.list_page(cursor).await
    }

    /// Fetches every tool, following cursors (see [`Session::list_all`]).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_all_tools(&self) -> Result<Vec<Tool>, Error> {
        self.list_all::<ListToolsResult>().await
    }

    /// Calls a tool. A tool failure is `Ok` with [`CallToolResult::is_tool_error`] set.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        options: &RequestOptions,
    ) -> Result<CallToolResult, Error> {
        if self.takes_input("tools/call") {
            let params = call_tool_params(name, arguments.as_ref());
            return self.request_with_input("tools/call", params, options).await;
        }
        let arguments = arguments.as_ref();
        self.exchange("tools/call", options, |id, meta| {
            encode_call_tool(id, name, arguments, meta)
        })
        .await
    }

    /// Calls a tool and returns its result undecoded (for forwarding it as it came).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn call_tool_raw(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        options: &RequestOptions,
    ) -> Result<Box<RawValue>, Error> {
        if self.takes_input("tools/call") {
            let params = call_tool_params(name, arguments);
            return self.request_with_input("tools/call", params, options).await;
        }
        // The hot path: the request is written straight into its line, without a `Value` tree.
        self.exchange("tools/call", options, |id, meta| {
            encode_call_tool(id, name, arguments, meta)
        })
        .await
    }

    /// Fetches one page of prompts.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_prompts(&self, cursor: Option<&str>) -> Result<ListPromptsResult, Error> {
        self.list_page(cursor).await
    }

    /// Fetches every prompt, following cursors.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_all_prompts(&self) -> Result<Vec<Prompt>, Error> {
        self.list_all::<ListPromptsResult>().await
    }

    /// Renders a prompt.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        options: &RequestOptions,
    ) -> Result<GetPromptResult, Error> {
        let mut params = Map::new();
        params.insert("name".to_owned(), Value::String(name.to_owned()));
        if let Some(arguments) = arguments {
            params.insert("arguments".to_owned(), Value::Object(arguments));
        }
        if self.takes_input("prompts/get") {
            return self
                .request_with_input("prompts/get", params, options)
                .await;
        }
        self.request_typed("prompts/get", Some(Value::Object(params)), options)
            .await
    }

    /// Fetches one page of resources.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_resources(&self, cursor: Option<&str>) -> Result<ListResourcesResult, Error> {
        self.list_page(cursor).await
    }

    /// Fetches every resource, following cursors.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_all_resources(&self) -> Result<Vec<Resource>, Error> {
        self.list_all::<ListResourcesResult>().await
    }

    /// Fetches one page of resource templates.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_resource_templates(
        &self,
        cursor: Option<&str>,
    ) -> Result<ListResourceTemplatesResult, Error> {
        self.list_page(cursor).await
    }

    /// Fetches every resource template, following cursors.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_all_resource_templates(&self) -> Result<Vec<ResourceTemplate>, Error> {
        self.list_all::<ListResourceTemplatesResult>().await
    }

    /// Reads a resource.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn read_resource(
        &self,
        uri: &str,
        options: &RequestOptions,
    ) -> Result<ReadResourceResult, Error> {
        if self.takes_input("resources/read") {
            let mut params = Map::new();
            params.insert("uri".to_owned(), Value::String(uri.to_owned()));
            return self
                .request_with_input("resources/read", params, options)
                .await;
        }
        self.request_typed(
            "resources/read",
            Some(serde_json::json!({ "uri": uri })),
            options,
        )
        .await
    }

    /// Asks the server to send log messages at `level` and above.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn set_logging_level(&self, level: LoggingLevel) -> Result<(), Error> {
        let _: Value = self
            .request_typed(
                "logging/setLevel",
                Some(serde_json::json!({ "level": level })),
                &RequestOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Fetches one page of a paginated list.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_page<P: Page>(&self, cursor: Option<&str>) -> Result<P, Error> {
        let params = cursor.map(|cursor| serde_json::json!({ "cursor": cursor }));
        self.request(P::METHOD, params, &RequestOptions::default())
            .await
    }

    /// Fetches a whole paginated list, following `nextCursor`.
    ///
    /// Stops with [`Error::RepeatedCursor`] if the server returns a cursor it returned before,
    /// and with [`Error::TooManyPages`] after [`SessionOptions::max_pages`] pages.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_all<P: Page>(&self) -> Result<Vec<P::Item>, Error> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..self.shared.options.max_pages.max(1) {
            let page: P = self.list_page(cursor.as_deref()).await?;
            let next = page.next_cursor().map(str::to_owned);
            items.extend(page.into_items());
            match next {
                None => return Ok(items),
                Some(next) => {
                    if !seen.insert(next.clone()) {
                        return Err(Error::RepeatedCursor {
                            server: self.shared.server.clone(),
                            method: P::METHOD.to_owned(),
                            cursor: next,
                        });
                    }
                    cursor = Some(next);
                }
            }
        }
        Err(Error::TooManyPages {
            server: self.shared.server.clone(),
            method: P::METHOD.to_owned(),
            max_pages: self.shared.options.max_pages,
        })
    }
}

/// Removes a request from the pending map when its caller stops waiting.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
    cancel_on_drop: bool,
    armed: bool,
}

impl PendingGuard<'_> {
    /// Forgets the request and, if it was still pending, tells the server it is cancelled.
    fn cancel(&mut self, reason: &str) {
        self.armed = false;
        let was_pending = lock(&self.shared.pending)
            .requests
            .remove(&self.id)
            .is_some();
        if was_pending {
            self.tell_cancelled(reason);
        }
    }

    /// Tells the server that the request is cancelled (unless it is part of the handshake or the
    /// session is over).
    fn tell_cancelled(&self, reason: &str) {
        if self.cancel_on_drop && self.shared.closed.get().is_none() {
            let params = serde_json::json!({ "requestId": self.id, "reason": reason });
            if let Ok(line) = encode_notification("notifications/cancelled", Some(params)) {
                self.shared.outbox.send(line);
            }
            tracing::debug!(server = %self.shared.server, request_id = self.id, reason, "request cancelled");
        }
    }

    fn forget(&mut self) {
        self.armed = false;
        lock(&self.shared.pending).requests.remove(&self.id);
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cancel("the caller stopped waiting");
        }
    }
}

impl Shared {
    /// Keeps the deadlines of the pending requests: ready never; when the earliest deadline
    /// passes, answers each request that is due with [`Reply::TimedOut`] (after pushing back
    /// those whose progress reports say so, up to their hard deadline), and sets `sleep` for the
    /// next one. `set_for` is what `sleep` is set for.
    pub(crate) fn poll_deadlines(
        &self,
        sleep: Pin<&mut tokio::time::Sleep>,
        set_for: &mut Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<std::convert::Infallible> {
        let mut sleep = sleep;
        loop {
            let mut pending = lock(&self.pending);
            // The sleep needs polling only to register a new waker or when it has fired: the
            // driver is polled for every line it reads, and most of those polls are not for it.
            let mut must_poll = false;
            if !pending
                .timer
                .as_ref()
                .is_some_and(|timer| timer.will_wake(cx.waker()))
            {
                pending.timer = Some(cx.waker().clone());
                must_poll = true;
            }
            let Some(armed) = pending.armed else {
                return Poll::Pending;
            };
            if *set_for != Some(armed) {
                sleep.as_mut().reset(armed);
                *set_for = Some(armed);
                must_poll = true;
            }
            if !(must_poll || sleep.is_elapsed()) || sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            let mut earliest: Option<Instant> = None;
            for (&id, request) in pending.requests.iter_mut() {
                if request.deadline <= now {
                    if let Some(progress) = &request.progress {
                        let last = progress.started
                            + Duration::from_millis(
                                progress.last_report_ms.load(Ordering::Relaxed),
                            );
                        let extended = (last + request.timeout).min(request.hard_deadline);
                        if extended > request.deadline {
                            request.deadline = extended;
                        }
                    }
                }
                if request.deadline <= now {
                    due.push(id);
                } else if earliest.is_none_or(|earliest| request.deadline < earliest) {
                    earliest = Some(request.deadline);
                }
            }
            pending.armed = earliest;
            let due: Vec<Pending> = due
                .into_iter()
                .filter_map(|id| pending.requests.remove(&id))
                .collect();
            drop(pending);
            for request in due {
                let _ = request.reply.send(Reply::TimedOut);
            }
        }
    }

    /// The decoder of request `id`'s result, if it is pending.
    pub(crate) fn decoder_for(&self, id: &RawValue) -> Option<Decode> {
        let id = connection::request_id(id)?;
        lock(&self.pending)
            .requests
            .get(&id)
            .map(|pending| pending.decode)
    }

    /// Delivers the answer to request `id`; returns false if no such request is pending.
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        let pending = lock(&self.pending).requests.remove(&id);
        match pending {
            Some(pending) => {
                let _ = pending.reply.send(reply);
                true
            }
            None => false,
        }
    }

    /// Whether `id` was ever issued by this session.
    pub(crate) fn was_issued(&self, id: u64) -> bool {
        id > 0 && id < self.next_id.load(Ordering::Relaxed)
    }

    /// Passes a progress report to the request it belongs to; returns false if there is none.
    pub(crate) fn report_progress(&self, id: u64, progress: Progress) -> bool {
        let state = lock(&self.pending)
            .requests
            .get(&id)
            .and_then(|pending| pending.progress.clone());
        let Some(state) = state else {
            return crate::tasks::report_task_progress(&self.task_progress, id, progress);
        };
        let elapsed = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        state.last_report_ms.store(elapsed, Ordering::Relaxed);
        (state.callback)(progress);
        true
    }

    /// Ends the session: records why (first reason wins) and fails every pending request.
    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.closed.set(reason);
        let reason = self
            .closed
            .get()
            .cloned()
            .unwrap_or(CloseReason::ShuttingDown);
        let drained: Vec<Pending> = lock(&self.pending)
            .requests
            .drain()
            .map(|(_, p)| p)
            .collect();
        if !drained.is_empty() {
            tracing::debug!(server = %self.server, n_failed = drained.len(), "failing pending requests");
        }
        for pending in drained {
            let _ = pending.reply.send(Reply::Closed(reason.clone()));
        }
    }

    pub(crate) fn close_reason(&self) -> Option<&CloseReason> {
        self.closed.get()
    }

    /// Records that writing to the server failed; later sends fail with `cause`.
    pub(crate) fn input_failed(&self, cause: Arc<std::io::Error>) {
        let _ = self.input_failure.set(cause);
    }

    /// Why a message could not be sent (the server's input is closed).
    fn unsendable(&self, method: &str) -> Error {
        if let Some(reason) = self.closed.get() {
            return reason.to_error(&self.server);
        }
        if let Some(limit) = self.outbox.overflowed() {
            return Error::InputBacklog {
                server: self.server.clone(),
                limit,
            };
        }
        match self.input_failure.get() {
            Some(cause) => Error::InputClosed {
                server: self.server.clone(),
                source: cause.clone(),
            },
            None => {
                tracing::debug!(server = %self.server, method, "the input is closed; not sent");
                Error::ShuttingDown {
                    server: self.server.clone(),
                }
            }
        }
    }
}

/// Locks a mutex, recovering the data of a poisoned one (no lock here guards an invariant that a
/// panic could break halfway).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[derive(Serialize)]
struct OutgoingRequest<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<Value>,
}

#[derive(Serialize)]
struct OutgoingNotification<'a> {
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<Value>,
}

pub(crate) fn encode_request(
    id: u64,
    method: &str,
    params: Option<Value>,
    meta: RequestMeta<'_>,
) -> Result<Vec<u8>, serde_json::Error> {
    let params = if meta.is_empty() {
        params
    } else {
        let mut params = match params {
            Some(Value::Object(map)) => map,
            None => Map::new(),
            Some(other) => {
                // Only objects can carry `_meta`; send other params as they are.
                return serde_json::to_vec(&OutgoingRequest {
                    jsonrpc: "2.0",
                    id,
                    method,
                    params: Some(other),
                });
            }
        };
        let entry = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(entry) = entry {
            if meta.progress {
                entry.insert("progressToken".to_owned(), Value::from(id));
            }
            if let Some(stateless) = meta.stateless {
                for (key, value) in &stateless.map {
                    entry.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        Some(Value::Object(params))
    };
    serde_json::to_vec(&OutgoingRequest {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}

/// Writes a `tools/call` request line directly, equal to what [`encode_request`] would produce.
fn encode_call_tool(
    id: u64,
    name: &str,
    arguments: Option<&Map<String, Value>>,
    meta: RequestMeta<'_>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = Vec::with_capacity(96 + name.len());
    line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    line.extend_from_slice(id.to_string().as_bytes());
    line.extend_from_slice(b",\"method\":\"tools/call\",\"params\":{\"name\":");
    serde_json::to_writer(&mut line, name)?;
    if let Some(arguments) = arguments {
        line.extend_from_slice(b",\"arguments\":");
        serde_json::to_writer(&mut line, arguments)?;
    }
    if !meta.is_empty() {
        line.extend_from_slice(b",\"_meta\":{");
        if meta.progress {
            line.extend_from_slice(b"\"progressToken\":");
            line.extend_from_slice(id.to_string().as_bytes());
        }
        if let Some(stateless) = meta.stateless {
            if meta.progress {
                line.push(b',');
            }
            line.extend_from_slice(stateless.members.as_bytes());
        }
        line.push(b'}');
    }
    line.extend_from_slice(b"}}");
    Ok(line)
}

/// The parameters of `tools/call`.
fn call_tool_params(name: &str, arguments: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("name".to_owned(), Value::String(name.to_owned()));
    if let Some(arguments) = arguments {
        params.insert("arguments".to_owned(), Value::Object(arguments.clone()));
    }
    params
}

/// The client capabilities a session declares: those its handler names, and `roots` when it has
/// a roots provider.
fn client_capabilities(options: &SessionOptions) -> Map<String, Value> {
    let mut capabilities = Map::new();
    if let Some(handler) = &options.client_requests {
        capabilities.extend(handler.capabilities());
    }
    if options.roots.is_some() {
        capabilities.insert("roots".to_owned(), serde_json::json!({"listChanged": true}));
    }
    capabilities
}

/// What a request carries in its `_meta` besides what its caller put there.
#[derive(Clone, Copy)]
pub(crate) struct RequestMeta<'a> {
    /// A progress token (the request's id) is asked for.
    pub(crate) progress: bool,
    /// Revision 2026-07-28 was agreed: version, capabilities and client identity.
    pub(crate) stateless: Option<&'a StatelessMeta>,
}

impl RequestMeta<'_> {
    fn is_empty(&self) -> bool {
        !self.progress && self.stateless.is_none()
    }
}

/// The `_meta` members of every request in revision 2026-07-28, as a map and pre-encoded.
#[derive(Debug)]
pub(crate) struct StatelessMeta {
    map: Map<String, Value>,
    /// The members of `map` as JSON text without the braces: `"k":v,"k2":v2`.
    members: String,
}

impl StatelessMeta {
    fn new(
        version: &str,
        client_info: &Implementation,
        capabilities: Map<String, Value>,
    ) -> StatelessMeta {
        let mut map = Map::new();
        map.insert(META_PROTOCOL_VERSION.to_owned(), Value::from(version));
        // Roots, sampling and elicitation are asked for with `input_required` results in this
        // revision, answered by the same handler and roots provider as requests in 2025-11-25.
        map.insert(
            META_CLIENT_CAPABILITIES.to_owned(),
            Value::Object(capabilities),
        );
        map.insert(
            META_CLIENT_INFO.to_owned(),
            serde_json::to_value(client_info).unwrap_or(Value::Null),
        );
        let object = Value::Object(map.clone()).to_string();
        let members = object
            .strip_prefix('{')
            .and_then(|inner| inner.strip_suffix('}'))
            .unwrap_or_default()
            .to_owned();
        StatelessMeta { map, members }
    }
}

/// How `server/discover` went.
enum Discovered {
    /// Revision 2026-07-28 agreed.
    Stateless(Box<InitializeResult>),
    /// The server looks like an older one; the error says why.
    Older(Error),
}

pub(crate) fn encode_notification(
    method: &str,
    params: Option<Value>,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&OutgoingNotification {
        jsonrpc: "2.0",
        method,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(name: &str, arguments: Option<Value>, with_progress: bool) {
        check_with(name, arguments.clone(), with_progress, None);
        let stateless = StatelessMeta::new(
            "2026-07-28",
            &Implementation::new("host", "1.0"),
            Map::new(),
        );
        check_with(name, arguments, with_progress, Some(&stateless));
    }

    #[track_caller]
    fn check_with(
        name: &str,
        arguments: Option<Value>,
        with_progress: bool,
        stateless: Option<&StatelessMeta>,
    ) {
        let arguments = arguments.map(|arguments| match arguments {
            Value::Object(map) => map,
            _ => panic!("arguments must be an object"),
        });
        let meta = RequestMeta {
            progress: with_progress,
            stateless,
        };
        let direct = encode_call_tool(7, name, arguments.as_ref(), meta).unwrap();
        let mut params = Map::new();
        params.insert("name".to_owned(), Value::String(name.to_owned()));
        if let Some(arguments) = arguments {
            params.insert("arguments".to_owned(), Value::Object(arguments));
        }
        let generic = encode_request(7, "tools/call", Some(Value::Object(params)), meta).unwrap();
        let direct: Value = serde_json::from_slice(&direct).unwrap();
        let generic: Value = serde_json::from_slice(&generic).unwrap();
        assert_eq!(direct, generic);
    }

    #[test]
    fn call_tool_lines_match_the_generic_encoding() {
        check("echo", None, false);
        check(
            "echo",
            Some(serde_json::json!({"text": "hi \"there\"\n"})),
            false,
        );
        check(
            "we\"ird\u{1F600}",
            Some(serde_json::json!({"a": [1, {"b": null}]})),
            true,
        );
        check("p", None, true);
    }

    #[test]
    fn stateless_requests_carry_version_capabilities_and_client_info() {
        let mut capabilities = Map::new();
        capabilities.insert("elicitation".to_owned(), serde_json::json!({}));
        let stateless = StatelessMeta::new(
            "2026-07-28",
            &Implementation::new("host", "1.0"),
            capabilities,
        );
        let meta = RequestMeta {
            progress: true,
            stateless: Some(&stateless),
        };
        let line = encode_request(3, "tools/list", None, meta).unwrap();
        let line: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            line["params"]["_meta"],
            serde_json::json!({
                "progressToken": 3,
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
                "io.modelcontextprotocol/clientInfo": {"name": "host", "version": "1.0"},
            })
        );
    }
}
