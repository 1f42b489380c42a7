//! The bridge between a session's message lines and a Streamable HTTP server.
//!
//! [`connect`] returns an ordinary [`Transport`] whose far end is a bridge task: every line the
//! session writes is POSTed to the server; every message the server sends back (a JSON body, the
//! events of an SSE response, or the events of the standalone GET stream) is written back to the
//! session as one line. The session does not know it is talking HTTP.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use mcp_transport::{
    CloseStep, Diagnostics, ExitReport, FrameReader, ServerName, Transport, TransportOptions,
    DEFAULT_MAX_LINE_LEN,
};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sse::{SseEvent, SseParser};
use crate::Error;

const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";
/// Revision 2026-07-28: the method of every POSTed message.
const MCP_METHOD: &str = "mcp-method";
/// Revision 2026-07-28: the tool or prompt name, or the resource URI, of a request.
const MCP_NAME: &str = "mcp-name";
/// The `_meta` key that carries a request's protocol version in revision 2026-07-28.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// How long the bridge waits for the server to answer the standalone GET before it sends the
/// first message after `notifications/initialized`.
const GET_STREAM_WAIT: Duration = Duration::from_secs(1);
/// How often one request is sent again after its token was renewed (401, 403 `insufficient_scope`).
const AUTH_RETRIES: u32 = 2;
/// The JSON-RPC code of the error responses the bridge writes for requests that HTTP failed.
pub const TRANSPORT_ERROR_CODE: i64 = -32603;

/// Where and how to reach a Streamable HTTP server.
#[derive(Clone)]
pub struct HttpOptions {
    /// The MCP endpoint, an absolute `http` or `https` URL.
    pub url: String,
    /// Extra headers sent with every request (for example `Authorization`). Their values are
    /// marked sensitive and never logged.
    pub headers: Vec<(String, String)>,
    /// Bound on establishing a TCP (and TLS) connection (default 10 s).
    pub connect_timeout: Duration,
    /// Bound on receiving the status line and headers of a response (default 10 min, the
    /// session's longest request: a server answering with a JSON body sends its headers only
    /// when the result is ready). The body of an SSE response may then stream for as long as
    /// the request lives. A request whose headers do not come in time fails alone; the
    /// connection goes on.
    pub response_timeout: Duration,
    /// Longest accepted message (JSON body or SSE event), in bytes (default 16 MiB).
    pub max_message_len: usize,
    /// How often a request is re-sent when no connection to the server could be made, or it
    /// answered 429/502/503/504 (default 3), with a doubling delay starting at `retry_backoff`
    /// (default 100 ms). A request that may have reached the server is never re-sent.
    pub retries: u32,
    /// The first delay between retries.
    pub retry_backoff: Duration,
    /// How often a broken SSE stream is resumed with `Last-Event-ID` before giving up (default 5).
    pub stream_resumptions: u32,
    /// The server's OAuth authorization (default none): it gives each request its bearer token,
    /// and a request answered 401 with a `Bearer` challenge (or 403 `insufficient_scope`) is
    /// sent again once it has renewed the token, at most twice. A 401 without such a challenge is
    /// not OAuth's and fails the request as other HTTP errors do.
    pub auth: Option<mcp_auth::Authorizer>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpOptions")
            .field("url", &self.url)
            .field("headers", &names)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_message_len", &self.max_message_len)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("stream_resumptions", &self.stream_resumptions)
            .field("auth", &self.auth.as_ref().map(|auth| auth.server()))
            .finish()
    }
}

impl HttpOptions {
    /// Options for `url` with defaults everywhere else.
    pub fn new(url: impl Into<String>) -> HttpOptions {
        HttpOptions {
            url: url.into(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(600),
            max_message_len: DEFAULT_MAX_LINE_LEN,
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            stream_resumptions: 5,
            auth: None,
        }
    }
}

/// The handle of one Streamable HTTP connection: close it, or drop it to cut it off.
///
/// # Drop behavior
///
/// Dropping the handle cancels the bridge at once: in-flight HTTP requests are abandoned and the
/// session reads the end of its input. No task outlives that (they are on the tracker given to
/// [`connect`]).
#[derive(Debug)]
pub struct HttpConnection {
    server: ServerName,
    url: String,
    diagnostics: Diagnostics,
    cancel: CancellationToken,
    finished: CancellationToken,
}

impl HttpConnection {
    /// The server.
    pub fn server(&self) -> &ServerName {
        &self.server
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the connection recorded about failures (the "stderr tail" of a remote server).
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// Whether the bridge has ended (the session was closed or lost).
    pub fn is_finished(&self) -> bool {
        self.finished.is_cancelled()
    }

    /// A token that cuts the connection off when cancelled (like dropping the handle).
    pub fn canceller(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Closes the connection: the session's input ends, the bridge ends the HTTP session with a
    /// DELETE (bounded by `grace`), and then drops the connection. Returns a report in the shape
    /// of a process exit ([`CloseStep::Disconnected`], no exit status).
    ///
    /// The session's connection driver must keep being polled meanwhile, as for a process.
    pub async fn close(self, grace: Duration) -> ExitReport {
        let started = Instant::now();
        self.diagnostics.request_input_close();
        if tokio::time::timeout(grace, self.finished.cancelled())
            .await
            .is_err()
        {
            tracing::debug!(server = %self.server, "the HTTP session did not end within the grace period; cutting it off");
            self.cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), self.finished.cancelled()).await;
        }
        ExitReport {
            server: self.server.clone(),
            step: CloseStep::Disconnected,
            status: None,
            elapsed: started.elapsed(),
            stderr_tail: self.diagnostics.stderr_tail(),
        }
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Connects a session-facing [`Transport`] to the Streamable HTTP server at `options.url`.
///
/// Nothing is sent until the session writes its first message (the `initialize` request). One
/// task is spawned on `tracker`; it ends when the session closes its input, when the connection
/// is closed, cancelled or dropped, or when the server is lost (unreachable after the retries, or
/// the HTTP session expired): then the session reads the end of its input, and the diagnostics
/// tail says why.
///
/// # Errors
///
/// [`Error::InvalidUrl`], [`Error::InvalidHeader`] and [`Error::Client`] name the server.
pub fn connect(
    server: ServerName,
    options: HttpOptions,
    transport_options: &TransportOptions,
    tracker: &TaskTracker,
) -> Result<(HttpConnection, Transport), Error> {
    let url = reqwest::Url::parse(&options.url).map_err(|error| Error::InvalidUrl {
        server: server.clone(),
        url: options.url.clone(),
        reason: error.to_string(),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::InvalidUrl {
            server: server.clone(),
            url: options.url.clone(),
            reason: format!("the scheme must be http or https, not `{}`", url.scheme()),
        });
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &options.headers {
        let invalid = |reason: String| Error::InvalidHeader {
            server: server.clone(),
            name: name.clone(),
            reason,
        };
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("not a valid header name".to_owned()))?;
        let mut header_value = HeaderValue::from_str(value)
            .map_err(|_| invalid("the value has characters a header cannot carry".to_owned()))?;
        header_value.set_sensitive(true);
        headers.insert(header_name, header_value);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        // Small requests on kept-alive connections: never wait for the server's delayed ACK
        // (reqwest's default today, stated so that it stays).
        .tcp_nodelay(true)
        .default_headers(headers)
        .build()
        .map_err(|source| Error::Client {
            server: server.clone(),
            source,
        })?;

    let display_url = url.to_string();
    let diagnostics = Diagnostics::remote(server.clone(), transport_options);
    let (session_write, bridge_read) = tokio::io::duplex(64 * 1024);
    let (bridge_write, session_read) = tokio::io::duplex(64 * 1024);
    let transport = Transport::with_diagnostics(
        diagnostics.clone(),
        session_read,
        session_write,
        transport_options,
    );
    let cancel = CancellationToken::new();
    let finished = CancellationToken::new();
    let shared = Arc::new(Shared {
        client,
        url,
        options,
        diagnostics: diagnostics.clone(),
        state: Mutex::new(State::default()),
        lost: cancel.child_token(),
    });
    let reader = FrameReader::new(server.clone(), bridge_read, shared.options.max_message_len);
    let bridge_finished = finished.clone();
    let bridge_cancel = cancel.clone();
    tracker.spawn(async move {
        let _finished = bridge_finished.drop_guard();
        run(shared, reader, bridge_write, bridge_cancel).await;
    });
    Ok((
        HttpConnection {
            server,
            url: display_url,
            diagnostics,
            cancel,
            finished,
        },
        transport,
    ))
}

/// What every task of one connection shares.
struct Shared {
    client: reqwest::Client,
    url: reqwest::Url,
    options: HttpOptions,
    diagnostics: Diagnostics,
    state: Mutex<State>,
    /// Cancelled when the server is lost; ends the bridge without a DELETE.
    lost: CancellationToken,
}

#[derive(Default)]
struct State {
    session_id: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
    /// The session speaks revision 2026-07-28 (its requests carry the version in `_meta`).
    per_request_version: bool,
    /// Revision 2026-07-28: the arguments of each listed tool that are mirrored into
    /// `Mcp-Param-*` headers (`x-mcp-header`), by tool name.
    header_params: std::collections::HashMap<String, HeaderParams>,
}

/// The arguments of one tool mirrored into headers: (argument name, header name).
type HeaderParams = Vec<(String, HeaderName)>;

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Why sending a request failed for good.
enum SendFailure {
    /// No connection to the server could be made (after the retries): the server is gone.
    Unreachable(String),
    /// The request may have reached the server, but no response came (the connection broke, or
    /// its headers did not arrive in time): this request failed, the server may be fine.
    Failed(String),
    /// The server wants authorization that could not be had (no token, a login needed, a scope
    /// refused): this request failed, and so will others until someone logs in.
    Auth(String),
}

impl SendFailure {
    fn reason(self) -> String {
        match self {
            SendFailure::Unreachable(reason)
            | SendFailure::Failed(reason)
            | SendFailure::Auth(reason) => reason,
        }
    }
}

impl Shared {
    fn server(&self) -> &ServerName {
        self.diagnostics.server()
    }

    fn record(&self, line: &str) {
        // A server may echo the token it was sent; what it says is kept and logged masked.
        let masked;
        let line = match &self.options.auth {
            Some(auth) => {
                masked = auth.mask(line);
                masked.as_str()
            }
            None => line,
        };
        tracing::warn!(server = %self.server(), "{line}");
        self.diagnostics.record(line);
    }

    /// The server is gone (or forgot us): end the bridge.
    fn lose(&self, why: &str) {
        self.record(why);
        self.lost.cancel();
    }

    fn session_headers(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        self.headers_for(request, &MessageHeaders::default())
    }

    /// The session's headers, and the message's own: its version (which wins over the
    /// session's), and in revision 2026-07-28 `Mcp-Method` and `Mcp-Name`.
    fn headers_for(
        &self,
        request: reqwest::RequestBuilder,
        message: &MessageHeaders,
    ) -> reqwest::RequestBuilder {
        let mut state = lock(&self.state);
        let mut request = request;
        if message
            .method
            .as_ref()
            .is_some_and(|method| method == "initialize")
        {
            // A 2025-11-25 handshake starts afresh, also after a 2026-07-28 probe
            // (`server/discover`) that the server refused.
            state.per_request_version = false;
            state.protocol_version = None;
        }
        if let Some(id) = &state.session_id {
            request = request.header(SESSION_ID, id.clone());
        }
        if let Some(version) = &message.version {
            state.per_request_version = true;
            state.protocol_version = Some(version.clone());
        }
        if let Some(version) = &state.protocol_version {
            request = request.header(PROTOCOL_VERSION, version.clone());
        }
        if state.per_request_version {
            if let Some(method) = &message.method {
                request = request.header(MCP_METHOD, method.clone());
            }
            if let Some(name) = &message.name {
                request = request.header(MCP_NAME, name.clone());
            }
            for (name, value) in &message.params {
                request = request.header(name.clone(), value.clone());
            }
        }
        request
    }

    fn has_session(&self) -> bool {
        lock(&self.state).session_id.is_some()
    }

    /// Sends a request built by `build`, retrying while the server cannot be reached or says it
    /// is overloaded; waits at most `response_timeout` for each response's headers.
    ///
    /// With an authorizer, each attempt carries the current bearer token; a 401, or a 403 whose
    /// challenge says `insufficient_scope`, is handed to the authorizer and, once it has renewed
    /// the token, the request is sent again (at most [`AUTH_RETRIES`] times): the server refused
    /// it without running it, so sending it again cannot run it twice.
    async fn send(
        &self,
        what: &str,
        message: &MessageHeaders,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, SendFailure> {
        let mut delay = self.options.retry_backoff;
        let mut attempt = 0;
        let mut auth_attempts = 0;
        loop {
            let mut request = self.headers_for(build(), message);
            let mut sent_token = None;
            if let Some(auth) = &self.options.auth {
                match auth.bearer().await {
                    Ok(Some(token)) => {
                        request = request.header(AUTHORIZATION, token.clone());
                        sent_token = Some(token);
                    }
                    Ok(None) => {}
                    Err(error) => return Err(SendFailure::Auth(format!("{what}: {error}"))),
                }
            }
            let outcome = tokio::time::timeout(self.options.response_timeout, request.send()).await;
            let retry_because = match outcome {
                Ok(Ok(response)) => match response.status() {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                        if self.options.auth.is_some() =>
                    {
                        let Some(auth) = &self.options.auth else {
                            return Ok(response);
                        };
                        let challenge = response
                            .headers()
                            .get(WWW_AUTHENTICATE)
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned);
                        // A 401 without a `Bearer` challenge is not OAuth's (RFC 6750 §3 and
                        // MCP require the challenge): an API key or another scheme was refused.
                        let bearer = challenge
                            .as_deref()
                            .and_then(mcp_auth::Challenge::parse)
                            .is_some();
                        if !bearer {
                            return Ok(response);
                        }
                        let renewed = if response.status() == StatusCode::UNAUTHORIZED {
                            auth.unauthorized(challenge.as_deref(), sent_token.as_ref())
                                .await
                                .map(|()| true)
                        } else {
                            auth.forbidden(challenge.as_deref(), sent_token.as_ref())
                                .await
                        };
                        match renewed {
                            Ok(false) => return Ok(response),
                            Ok(true) if auth_attempts < AUTH_RETRIES => {
                                auth_attempts += 1;
                                tracing::debug!(server = %self.server(), "{what}: HTTP {}; sending it again with the renewed token", response.status());
                                continue;
                            }
                            Ok(true) => {
                                return Err(SendFailure::Auth(format!(
                                    "{what}: HTTP {} again after the token was renewed {AUTH_RETRIES} times",
                                    response.status()
                                )))
                            }
                            Err(error) => {
                                return Err(SendFailure::Auth(format!("{what}: {error}")))
                            }
                        }
                    }
                    StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
                        if attempt < self.options.retries =>
                    {
                        format!("{what}: HTTP {}", response.status())
                    }
                    _ => return Ok(response),
                },
                Ok(Err(error)) => {
                    let reason = format!("{what}: {}", error_chain(&error));
                    // Only a request that never left can be sent again: one that reached the
                    // server might run twice.
                    if !error.is_connect() {
                        return Err(SendFailure::Failed(reason));
                    }
                    if attempt >= self.options.retries {
                        return Err(SendFailure::Unreachable(reason));
                    }
                    reason
                }
                Err(_) => {
                    // The server took the request but did not answer in time: re-sending could
                    // run it twice, so this is final.
                    return Err(SendFailure::Failed(format!(
                        "{what}: no response within {} ms",
                        self.options.response_timeout.as_millis()
                    )));
                }
            };
            attempt += 1;
            tracing::debug!(server = %self.server(), attempt, "{retry_because}; retrying in {} ms", delay.as_millis());
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn post(&self, body: Bytes) -> reqwest::RequestBuilder {
        self.client
            .post(self.url.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }

    fn get(&self, last_event_id: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header(LAST_EVENT_ID, id);
        }
        request
    }
}

/// The text of an error and its causes (reqwest's own message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the bridge needs to know of a message the session sends.
#[derive(serde::Deserialize)]
struct Outgoing<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, borrow)]
    params: Option<&'a serde_json::value::RawValue>,
}

/// The parts of a request's params that become HTTP headers.
#[derive(serde::Deserialize, Default)]
struct OutgoingParams<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default, rename = "_meta")]
    meta: Option<serde_json::Map<String, Value>>,
}

/// The headers one message adds to its POST.
#[derive(Default, Clone)]
struct MessageHeaders {
    /// `MCP-Protocol-Version` from the message's `_meta` (revision 2026-07-28).
    version: Option<HeaderValue>,
    /// `Mcp-Method`.
    method: Option<HeaderValue>,
    /// `Mcp-Name`: the tool or prompt name, or the resource URI.
    name: Option<HeaderValue>,
    /// `Mcp-Param-*`: the arguments of a `tools/call` that the tool mirrors into headers.
    params: Vec<(HeaderName, HeaderValue)>,
}

impl MessageHeaders {
    fn of(
        method: Option<&str>,
        params: Option<&serde_json::value::RawValue>,
        state: &Mutex<State>,
    ) -> MessageHeaders {
        // These headers belong to revision 2026-07-28 only: a 2025-11-25 session's messages
        // (no version in their `_meta`) need none, so their params are not read a second time.
        let stateless = lock(state).per_request_version
            || params.is_some_and(|params| params.get().contains(META_PROTOCOL_VERSION));
        if !stateless {
            return MessageHeaders::default();
        }
        let params: OutgoingParams<'_> = params
            .and_then(|params| serde_json::from_str(params.get()).ok())
            .unwrap_or_default();
        let mut mirrored = Vec::new();
        if let (Some("tools/call"), Some(tool)) = (method, params.name.as_deref()) {
            let state = lock(state);
            if let Some(header_params) = state.header_params.get(tool) {
                let arguments: serde_json::Map<String, Value> = params
                    .arguments
                    .and_then(|arguments| serde_json::from_str(arguments.get()).ok())
                    .unwrap_or_default();
                for (argument, header) in header_params {
                    let text = match arguments.get(argument) {
                        Some(Value::String(text)) => Some(text.clone()),
                        Some(Value::Bool(flag)) => Some(flag.to_string()),
                        Some(Value::Number(number)) => Some(number.to_string()),
                        // Null, absent, or not a primitive: no header.
                        _ => None,
                    };
                    if let Some(value) = text.as_deref().and_then(header_text) {
                        mirrored.push((header.clone(), value));
                    }
                }
            }
        }
        let version = params
            .meta
            .as_ref()
            .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .and_then(|version| HeaderValue::from_str(version).ok());
        let name = match method {
            Some("tools/call" | "prompts/get") => params.name.as_deref(),
            Some("resources/read") => params.uri.as_deref(),
            _ => None,
        };
        MessageHeaders {
            version,
            method: method.and_then(header_text),
            name: name.and_then(header_text),
            params: mirrored,
        }
    }
}

/// The arguments a listed tool mirrors into headers, or why its `x-mcp-header` annotations are
/// invalid (revision 2026-07-28): a header name must be a non-empty HTTP token, unique within
/// the tool regardless of case, on a `string`, `integer` or `boolean` property.
fn tool_header_params(tool: &Value) -> Result<HeaderParams, String> {
    let Some(properties) = tool
        .pointer("/inputSchema/properties")
        .and_then(Value::as_object)
    else {
        return Ok(Vec::new());
    };
    let mut params = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (argument, schema) in properties {
        let Some(header) = schema.get("x-mcp-header") else {
            continue;
        };
        let header = header
            .as_str()
            .ok_or_else(|| format!("`{argument}`: x-mcp-header is not a string"))?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if header.is_empty() || !header.bytes().all(token) {
            return Err(format!(
                "`{argument}`: x-mcp-header {header:?} is not a header name"
            ));
        }
        let kind = schema.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("string" | "integer" | "boolean")) {
            return Err(format!(
                "`{argument}`: x-mcp-header on a {} property (only string, integer and boolean)",
                kind.unwrap_or("untyped")
            ));
        }
        if !seen.insert(header.to_ascii_lowercase()) {
            return Err(format!(
                "`{argument}`: x-mcp-header {header:?} is used twice"
            ));
        }
        let name = HeaderName::from_bytes(format!("mcp-param-{header}").as_bytes())
            .map_err(|_| format!("`{argument}`: x-mcp-header {header:?} is not a header name"))?;
        params.push((argument.clone(), name));
    }
    Ok(params)
}

/// A header value for `text`: as it is when it is printable ASCII without surrounding spaces,
/// else `=?base64?…?=` (as revision 2026-07-28 asks; also when the text looks encoded already).
fn header_text(text: &str) -> Option<HeaderValue> {
    use base64::Engine as _;

    let looks_encoded = text.starts_with("=?base64?") && text.ends_with("?=");
    let plain = text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !looks_encoded;
    if plain {
        HeaderValue::from_str(text).ok()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        HeaderValue::from_str(&format!("=?base64?{encoded}?=")).ok()
    }
}

/// What the bridge needs to know of a message the server sends.
#[derive(serde::Deserialize)]
struct Incoming {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    result: Option<IncomingResult>,
}

#[derive(serde::Deserialize)]
struct IncomingResult {
    #[serde(default, rename = "protocolVersion")]
    protocol_version: Option<String>,
}

/// The bridge: reads the session's lines until it closes its input, the connection is cancelled
/// or the server is lost.
async fn run(
    shared: Arc<Shared>,
    mut reader: FrameReader<DuplexStream>,
    write: DuplexStream,
    cancel: CancellationToken,
) {
    let (to_session, from_server) = mpsc::channel::<Vec<u8>>(64);
    let mut writer = JoinSet::new();
    writer.spawn(write_loop(from_server, write));
    let mut tasks = JoinSet::new();
    let mut listening = false;
    let closed_by_session = loop {
        tokio::select! {
            biased;
            () = shared.lost.cancelled() => break false,
            () = cancel.cancelled() => break false,
            frame = reader.next_frame() => match frame {
                Ok(Some(line)) => {
                    let body = Bytes::copy_from_slice(line);
                    let outgoing: Option<Outgoing<'_>> = serde_json::from_slice(&body).ok();
                    let (id, method, headers) = outgoing.map_or((None, None, MessageHeaders::default()), |o| {
                        let headers = MessageHeaders::of(o.method.as_deref(), o.params, &shared.state);
                        (o.id, o.method, headers)
                    });
                    match (id, method) {
                        (Some(id), Some(method)) => {
                            let message = Request { body: body.clone(), id, method, headers };
                            tasks.spawn(request(shared.clone(), message, to_session.clone()));
                        }
                        (_, method) => {
                            // Notifications and responses go one at a time, in order.
                            let initialized = method.as_deref() == Some("notifications/initialized");
                            tokio::select! {
                                () = post_message(&shared, body.clone(), method.as_deref(), &headers) => {}
                                () = cancel.cancelled() => break false,
                            }
                            if initialized && !listening && shared.has_session() {
                                listening = true;
                                // The GET stream is opened before the next message is sent, so
                                // that the server sees it first and nothing it sends outside a
                                // request is missed (a server may take any later GET for a
                                // resumption). Waiting is bounded: some servers send the
                                // stream's headers only with its first event.
                                let (opened, opened_rx) = tokio::sync::oneshot::channel();
                                tasks.spawn(listen(shared.clone(), to_session.clone(), opened));
                                tokio::select! {
                                    _ = tokio::time::timeout(GET_STREAM_WAIT, opened_rx) => {}
                                    () = cancel.cancelled() => break false,
                                }
                            }
                        }
                    }
                }
                Ok(None) => break true,
                Err(error) => {
                    shared.record(&format!("bridge: {error}"));
                    break true;
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    if error.is_panic() {
                        shared.record("bridge: a request task panicked");
                    }
                }
            }
        }
    };
    tasks.abort_all();
    drop(to_session);
    if closed_by_session && !shared.lost.is_cancelled() && shared.has_session() {
        end_session(&shared, &cancel).await;
    }
    while tasks.join_next().await.is_some() {}
    // The writer ends once every sender is gone; the session then reads the end of its input.
    writer.abort_all();
    while writer.join_next().await.is_some() {}
}

async fn write_loop(mut from_server: mpsc::Receiver<Vec<u8>>, mut write: DuplexStream) {
    while let Some(mut line) = from_server.recv().await {
        line.push(b'\n');
        if write.write_all(&line).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Ends the HTTP session with a DELETE, as the protocol asks of a client that is done.
async fn end_session(shared: &Shared, cancel: &CancellationToken) {
    let mut delete = shared.session_headers(shared.client.delete(shared.url.clone()));
    if let Some(auth) = &shared.options.auth {
        // Bounded like the DELETE: a token due for renewal is not renewed at the end.
        if let Ok(Ok(Some(token))) =
            tokio::time::timeout(Duration::from_millis(500), auth.bearer()).await
        {
            delete = delete.header(AUTHORIZATION, token);
        }
    }
    tokio::select! {
        outcome = tokio::time::timeout(Duration::from_secs(2), delete.send()) => match outcome {
            Ok(Ok(response)) if response.status().is_success()
                || response.status() == StatusCode::METHOD_NOT_ALLOWED
                || response.status() == StatusCode::NOT_FOUND => {}
            Ok(Ok(response)) => tracing::debug!(server = %shared.server(), status = %response.status(), "DELETE of the HTTP session refused"),
            Ok(Err(error)) => tracing::debug!(server = %shared.server(), error = %error_chain(&error), "DELETE of the HTTP session failed"),
            Err(_) => tracing::debug!(server = %shared.server(), "DELETE of the HTTP session timed out"),
        },
        () = cancel.cancelled() => {}
    }
}

/// POSTs a notification or a response; the server should answer 202 with no body.
async fn post_message(
    shared: &Shared,
    body: Bytes,
    method: Option<&str>,
    headers: &MessageHeaders,
) {
    let what = format!("POST {}", method.unwrap_or("response"));
    match shared
        .send(&what, headers, || shared.post(body.clone()))
        .await
    {
        Ok(response) => {
            let status = response.status();
            if status == StatusCode::NOT_FOUND && shared.has_session() {
                shared.lose(&format!(
                    "{what}: HTTP 404: the server ended the HTTP session"
                ));
            } else if !status.is_success() {
                let detail = body_excerpt(response).await;
                shared.record(&format!("{what}: HTTP {status}{detail}"));
            }
        }
        Err(SendFailure::Unreachable(reason)) => shared.lose(&reason),
        Err(SendFailure::Failed(reason) | SendFailure::Auth(reason)) => shared.record(&reason),
    }
}

/// One request the session sent.
struct Request {
    body: Bytes,
    id: Value,
    method: String,
    headers: MessageHeaders,
}

/// POSTs one request and relays what comes back until its response has arrived.
async fn request(shared: Arc<Shared>, message: Request, to_session: mpsc::Sender<Vec<u8>>) {
    let Request {
        body,
        id,
        method,
        headers,
    } = message;
    let what = format!("POST {method}");
    let initialize = method == "initialize";
    let response = match shared
        .send(&what, &headers, || shared.post(body.clone()))
        .await
    {
        Ok(response) => response,
        Err(failure) => {
            let unreachable = matches!(failure, SendFailure::Unreachable(_));
            let reason = failure.reason();
            if initialize || unreachable {
                // Without a session nothing else can go on; an unreachable server is gone.
                shared.lose(&reason);
            } else {
                shared.record(&reason);
            }
            let _ = to_session.send(error_response(&id, &reason)).await;
            return;
        }
    };
    let status = response.status();
    if initialize {
        if let Some(session_id) = response.headers().get(SESSION_ID) {
            lock(&shared.state).session_id = Some(session_id.clone());
        }
    }
    if status == StatusCode::NOT_FOUND && shared.has_session() && !initialize {
        shared.lose(&format!(
            "{what}: HTTP 404: the server ended the HTTP session"
        ));
        return;
    }
    if !status.is_success() {
        let body = error_body(response).await;
        // Revision 2026-07-28 servers answer JSON-RPC errors with a 4xx and the error response
        // in the body (unsupported version, unknown method, …): the session needs it as it is.
        let answer: Option<Incoming> = serde_json::from_slice(&body).ok();
        if answer.is_some_and(|answer| answer.method.is_none() && answer.id.as_ref() == Some(&id)) {
            let _ = to_session.send(one_line(&body)).await;
            return;
        }
        let reason = format!("{what}: HTTP {status}{}", excerpt(&body));
        shared.record(&reason);
        let _ = to_session.send(error_response(&id, &reason)).await;
        return;
    }
    let relay = Relay {
        shared: &shared,
        to_session: &to_session,
        waiting_for: &id,
        initialize,
        lists_tools: method == "tools/list",
    };
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let outcome = if content_type.starts_with("text/event-stream") {
        relay.stream(response).await
    } else if content_type.starts_with("application/json") {
        relay.json(response).await
    } else {
        Err(format!(
            "{what}: HTTP {status} with content type `{content_type}` instead of a JSON-RPC response"
        ))
    };
    if let Err(reason) = outcome {
        shared.record(&reason);
        let _ = to_session.send(error_response(&id, &reason)).await;
    }
}

/// A JSON-RPC error response for a request the transport could not complete.
fn error_response(id: &Value, reason: &str) -> Vec<u8> {
    let message = format!("HTTP transport: {reason}");
    serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": TRANSPORT_ERROR_CODE, "message": message},
    }))
    .unwrap_or_default()
}

/// The most of an error response's body that is read (64 KiB, within 1 s).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The start of an error response's body (bounded in size and time).
async fn error_body(response: Response) -> Vec<u8> {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_LIMIT - body.len())]);
            if body.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
    });
    let _ = read.await;
    body
}

/// At most 512 bytes of an error body, for a message: `": <text>"`, or nothing.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// At most 512 bytes of an error response's body, for the record.
async fn body_excerpt(response: Response) -> String {
    excerpt(&error_body(response).await)
}

/// Relays the messages of one request's response to the session.
struct Relay<'a> {
    shared: &'a Shared,
    to_session: &'a mpsc::Sender<Vec<u8>>,
    waiting_for: &'a Value,
    initialize: bool,
    /// The request is `tools/list`: in revision 2026-07-28 its answer is screened for
    /// `x-mcp-header` annotations.
    lists_tools: bool,
}

impl Relay<'_> {
    /// Forwards one message; returns whether it was the response awaited.
    async fn forward(&self, message: &[u8]) -> bool {
        let incoming: Option<Incoming> = serde_json::from_slice(message).ok();
        let is_answer = incoming.as_ref().is_some_and(|incoming| {
            incoming.method.is_none() && incoming.id.as_ref() == Some(self.waiting_for)
        });
        if is_answer && self.initialize {
            let version = incoming
                .and_then(|incoming| incoming.result)
                .and_then(|result| result.protocol_version)
                .and_then(|version| HeaderValue::from_str(&version).ok());
            if let Some(version) = version {
                lock(&self.shared.state).protocol_version = Some(version);
            }
        }
        if is_answer && self.lists_tools && lock(&self.shared.state).per_request_version {
            let screened = self.screen_tools(message);
            let _ = self.to_session.send(one_line(&screened)).await;
            return true;
        }
        let _ = self.to_session.send(one_line(message)).await;
        is_answer
    }

    /// Revision 2026-07-28: drops the listed tools whose `x-mcp-header` annotations are invalid
    /// (a client must not call them) and remembers which arguments the others mirror.
    fn screen_tools(&self, message: &[u8]) -> Vec<u8> {
        let Ok(mut answer) = serde_json::from_slice::<Value>(message) else {
            return message.to_vec();
        };
        let Some(tools) = answer
            .pointer_mut("/result/tools")
            .and_then(Value::as_array_mut)
        else {
            return message.to_vec();
        };
        let mut kept = Vec::with_capacity(tools.len());
        let mut mirrored = Vec::new();
        for tool in tools.drain(..) {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            match tool_header_params(&tool) {
                Ok(params) => {
                    if !params.is_empty() {
                        mirrored.push((name, params));
                    }
                    kept.push(tool);
                }
                Err(why) => self.shared.record(&format!(
                    "tools/list: tool `{name}` left out: invalid x-mcp-header: {why}"
                )),
            }
        }
        *tools = kept;
        lock(&self.shared.state).header_params.extend(mirrored);
        serde_json::to_vec(&answer).unwrap_or_else(|_| message.to_vec())
    }

    /// A JSON body: one message or a batch of them.
    async fn json(&self, response: Response) -> Result<(), String> {
        let body = read_bounded(response, self.shared.options.max_message_len).await?;
        let messages: Vec<&serde_json::value::RawValue> = match body.first() {
            Some(b'[') => serde_json::from_slice(&body)
                .map_err(|error| format!("the JSON body is not a batch of messages: {error}"))?,
            _ => vec![serde_json::from_slice(&body)
                .map_err(|error| format!("the JSON body is not a message: {error}"))?],
        };
        let mut answered = false;
        for message in messages {
            answered |= self.forward(message.get().as_bytes()).await;
        }
        if answered {
            Ok(())
        } else {
            Err("the JSON body did not contain the response".to_owned())
        }
    }

    /// An SSE body: events until the response, resumed with `Last-Event-ID` if it breaks first.
    async fn stream(&self, response: Response) -> Result<(), String> {
        let max_len = self.shared.options.max_message_len;
        let mut parser = SseParser::new(max_len);
        let mut response = response;
        let mut resumptions = 0;
        loop {
            let ended = match self.pump(response, &mut parser).await {
                Ok(true) => return Ok(()),
                Ok(false) => "the event stream ended before the response".to_owned(),
                Err(reason) => reason,
            };
            let Some(last_id) = parser.last_id().map(str::to_owned) else {
                return Err(format!("{ended}, and it cannot be resumed (no event id)"));
            };
            if resumptions >= self.shared.options.stream_resumptions {
                return Err(format!("{ended}; gave up after {resumptions} resumptions"));
            }
            resumptions += 1;
            let delay = parser.retry_ms().map_or(
                self.shared.options.retry_backoff * resumptions,
                Duration::from_millis,
            );
            tracing::debug!(server = %self.shared.server(), last_id, "{ended}; resuming in {} ms", delay.as_millis());
            tokio::time::sleep(delay.min(Duration::from_secs(30))).await;
            let resumed = self
                .shared
                .send("GET (resume)", &MessageHeaders::default(), || {
                    self.shared.get(Some(&last_id))
                })
                .await
                .map_err(SendFailure::reason)?;
            if !resumed.status().is_success() {
                return Err(format!(
                    "{ended}; resuming it was refused: HTTP {}",
                    resumed.status()
                ));
            }
            parser = SseParser::resuming(max_len, Some(last_id));
            response = resumed;
        }
    }

    /// Reads events until the awaited response (true) or the end of the body (false).
    async fn pump(&self, response: Response, parser: &mut SseParser) -> Result<bool, String> {
        let mut body = response.bytes_stream();
        let mut events: Vec<SseEvent> = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|error| format!("the event stream broke: {}", error_chain(&error)))?;
            parser.feed(&chunk, &mut events);
            for event in events.drain(..) {
                if event.kind == "message"
                    && !event.data.is_empty()
                    && self.forward(&event.data).await
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The standalone GET stream: messages the server sends outside any request.
async fn listen(
    shared: Arc<Shared>,
    to_session: mpsc::Sender<Vec<u8>>,
    opened: tokio::sync::oneshot::Sender<()>,
) {
    let mut opened = Some(opened);
    let max_len = shared.options.max_message_len;
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    // Whether the server has accepted this session's GET stream before.
    let mut established = false;
    let mut delay = shared.options.retry_backoff;
    loop {
        let response = shared
            .send("GET", &MessageHeaders::default(), || {
                shared.get(last_id.as_deref())
            })
            .await;
        if let Some(opened) = opened.take() {
            let _ = opened.send(());
        }
        let response = match response {
            Ok(response) => response,
            Err(SendFailure::Unreachable(reason)) => {
                shared.lose(&reason);
                return;
            }
            Err(SendFailure::Auth(reason)) => {
                // Without authorization there is no stream to listen to; requests say why.
                shared.record(&reason);
                return;
            }
            Err(SendFailure::Failed(reason)) => {
                failures += 1;
                shared.record(&reason);
                if failures > shared.options.retries {
                    shared.record("GET: giving up on the server's event stream");
                    return;
                }
                tokio::time::sleep(delay.min(Duration::from_secs(30))).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let status = response.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            tracing::debug!(server = %shared.server(), "the server offers no GET stream");
            return;
        }
        if status == StatusCode::NOT_FOUND {
            shared.lose("GET: HTTP 404: the server ended the HTTP session");
            return;
        }
        if established && (status == StatusCode::BAD_REQUEST || status == StatusCode::GONE) {
            // The stream worked with this session id before; a server that now refuses it
            // (servers built on the TypeScript SDK answer 400 rather than 404 for a session id
            // they do not know, as after a restart) has lost the session.
            shared.lose(&format!(
                "GET: HTTP {status}: the server no longer accepts the HTTP session"
            ));
            return;
        }
        if !status.is_success() {
            failures += 1;
            shared.record(&format!("GET: HTTP {status}"));
            if failures > shared.options.retries {
                shared.record("GET: giving up on the server's event stream");
                return;
            }
        } else {
            failures = 0;
            established = true;
            delay = shared.options.retry_backoff;
            let mut parser = SseParser::resuming(max_len, last_id.take());
            let mut body = response.bytes_stream();
            let mut events = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                parser.feed(&chunk, &mut events);
                for event in events.drain(..) {
                    if event.kind == "message" && !event.data.is_empty() {
                        let _ = to_session.send(one_line(&event.data)).await;
                    }
                }
            }
            last_id = parser.last_id().map(str::to_owned);
            if let Some(retry) = parser.retry_ms() {
                delay = Duration::from_millis(retry);
            }
        }
        tokio::time::sleep(delay.min(Duration::from_secs(30))).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Reads a whole body, refusing one longer than `max_len`.
async fn read_bounded(response: Response, max_len: usize) -> Result<Vec<u8>, String> {
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| format!("the body broke: {}", error_chain(&error)))?;
        if bytes.len() + chunk.len() > max_len {
            return Err(format!("the body is longer than {max_len} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A message as one line: JSON text never holds a raw line break inside a string, so dropping
/// CR and LF keeps the message intact.
fn one_line(message: &[u8]) -> Vec<u8> {
    message
        .iter()
        .copied()
        .filter(|&b| b != b'\n' && b != b'\r')
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(value: Option<HeaderValue>) -> String {
        value.unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn header_values_are_plain_or_base64() {
        assert_eq!(
            text(header_text("my-hyphenated-tool")),
            "my-hyphenated-tool"
        );
        assert_eq!(
            text(header_text("file:///path/to/file%20name.txt")),
            "file:///path/to/file%20name.txt"
        );
        // Non-ASCII, control characters, surrounding spaces, and text that looks encoded.
        assert_eq!(text(header_text("café")), "=?base64?Y2Fmw6k=?=");
        assert_eq!(text(header_text("a\tb")), "=?base64?YQli?=");
        assert_eq!(text(header_text(" x")), "=?base64?IHg=?=");
        assert_eq!(
            text(header_text("=?base64?eA==?=")),
            "=?base64?PT9iYXNlNjQ/ZUE9PT89?="
        );
    }

    /// The headers of `line` in a session that speaks revision 2026-07-28.
    fn headers(line: &str) -> MessageHeaders {
        headers_in(line, true)
    }

    fn headers_in(line: &str, stateless: bool) -> MessageHeaders {
        let outgoing: Outgoing<'_> = serde_json::from_str(line).unwrap();
        let state = State {
            per_request_version: stateless,
            ..State::default()
        };
        MessageHeaders::of(
            outgoing.method.as_deref(),
            outgoing.params,
            &Mutex::new(state),
        )
    }

    #[test]
    fn a_2025_session_adds_no_headers() {
        let call = headers_in(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","_meta":{"progressToken":1}}}"#,
            false,
        );
        assert!(call.version.is_none() && call.method.is_none() && call.name.is_none());
        assert!(call.params.is_empty());
    }

    #[test]
    fn a_modern_request_names_its_version_method_and_target() {
        let message = headers(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(text(message.version), "2026-07-28");
        assert_eq!(text(message.method), "tools/call");
        assert_eq!(text(message.name), "add");
        let read = headers(
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"https://example.com/resource?id=123"}}"#,
        );
        assert!(read.version.is_none());
        assert_eq!(text(read.name), "https://example.com/resource?id=123");
        // Params that are not an object do not make the message unreadable.
        let odd = headers(r#"{"jsonrpc":"2.0","id":3,"method":"x","params":[1,2]}"#);
        assert!(odd.name.is_none() && odd.version.is_none());
    }

    #[test]
    fn x_mcp_header_annotations_are_checked() {
        let tool = |properties: Value| json_tool(properties);
        let ok = tool(serde_json::json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "plain": {"type": "number"},
        }));
        let params = tool_header_params(&ok).unwrap();
        let names: Vec<(&str, &str)> = params
            .iter()
            .map(|(a, h)| (a.as_str(), h.as_str()))
            .collect();
        assert!(
            names.contains(&("region", "mcp-param-region"))
                && names.contains(&("n", "mcp-param-n"))
        );
        for bad in [
            serde_json::json!({"v": {"type": "string", "x-mcp-header": ""}}),
            serde_json::json!({"v": {"type": "object", "x-mcp-header": "V"}}),
            serde_json::json!({"v": {"type": "number", "x-mcp-header": "V"}}),
            serde_json::json!({"v": {"type": "string", "x-mcp-header": "My V"}}),
            serde_json::json!({"v": {"type": "string", "x-mcp-header": "A:B"}}),
            serde_json::json!({"v": {"type": "string", "x-mcp-header": "Région"}}),
            serde_json::json!({"a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}),
        ] {
            assert!(tool_header_params(&tool(bad.clone())).is_err(), "{bad}");
        }
    }

    fn json_tool(properties: Value) -> Value {
        serde_json::json!({"name": "t", "inputSchema": {"type": "object", "properties": properties}})
    }

    #[test]
    fn mirrored_arguments_become_headers() {
        let state = Mutex::new(State {
            per_request_version: true,
            ..State::default()
        });
        let tool = json_tool(serde_json::json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "on": {"type": "boolean", "x-mcp-header": "On"},
            "gone": {"type": "boolean", "x-mcp-header": "Gone"},
            "note": {"type": "string", "x-mcp-header": "Note"},
        }));
        lock(&state)
            .header_params
            .insert("t".to_owned(), tool_header_params(&tool).unwrap());
        let line = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"region":"eu","on":true,"gone":null,"note":"café"}}}"#;
        let outgoing: Outgoing<'_> = serde_json::from_str(line).unwrap();
        let headers = MessageHeaders::of(outgoing.method.as_deref(), outgoing.params, &state);
        let mut got: Vec<(String, String)> = headers
            .params
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (
                    "mcp-param-note".to_owned(),
                    "=?base64?Y2Fmw6k=?=".to_owned()
                ),
                ("mcp-param-on".to_owned(), "true".to_owned()),
                ("mcp-param-region".to_owned(), "eu".to_owned()),
            ]
        );
    }
}
