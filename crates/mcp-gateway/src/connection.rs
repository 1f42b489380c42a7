//! One client's connection to the gateway: the host's aggregated components served as one MCP server.
//!
//! [`serve_connection`] serves them over any transport: the stdio module runs it once on
//! stdin/stdout, the HTTP module once per HTTP session.
//!
//! Besides calls, the gateway routes `completion/complete` to the server that owns the referenced
//! prompt or resource template and `resources/(un)subscribe` by URI, forwards `logging/setLevel`
//! to every server that logs, and relays the servers' log messages (at or above the level this
//! client set) and the updates of resources this client subscribed to. Tasks (a task-augmented
//! `tools/call`, the `tasks/*` methods, task statuses) are served by the tasks module.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt as _};
use futures::task::AtomicWaker;

use mcp_host::{AgentScope, CompletionRef, Error, McpHost, NotificationKind, ServerNotification};
use mcp_session::protocol::{
    ListChangedCapability, LoggingLevel, Progress, Prompt, ResourcesCapability, RpcError,
    ServerCapabilities, Tool,
};
use mcp_session::server::{serve, IncomingRequest, ServerOptions, ServerPeer};
use mcp_session::RequestOptions;
use mcp_transport::Transport;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use crate::audit::{AuditLog, AuditRecord};
use crate::auth::{Caller, PolicyStore};
use crate::policy::{ClientPolicy, Quotas};
use crate::relay::{Attached, ClientRelay};
use crate::search::{self, ToolMode};
use crate::tasks::{self, SessionTasks};

/// Why the gateway stopped serving a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The client went away: end of input on stdio, or the HTTP session's end.
    EndOfInput,
    /// The `stop` future given to the gateway completed (for the CLI: SIGINT or SIGTERM).
    Requested,
}

/// Serves the host's aggregated components to one client over `transport` until the client
/// goes away ([`Stop::EndOfInput`]) or `stop` completes ([`Stop::Requested`]).
///
/// Requests still in flight when it returns are aborted (their downstream calls are cancelled),
/// waiting at most one second for them to unwind.
///
/// # Cancel safety
///
/// Dropping the future ends the connection: the client sees end of input and every request in
/// flight is aborted.
pub(crate) async fn serve_connection(
    host: Arc<McpHost>,
    relay: Arc<ClientRelay>,
    max_handlers: usize,
    client: Client,
    transport: Transport,
    stop: impl std::future::Future<Output = ()>,
) -> Stop {
    let max_handlers = max_handlers.max(1);
    let mut options = server_options(&host);
    options.request_capacity = max_handlers;
    let (peer, mut connection, mut requests) = serve(transport, options);
    tokio::pin!(stop);
    let policies_changed = client.policies.subscribe();
    let tasks = Arc::new(SessionTasks::new(
        &client.caller.policy.name,
        client.max_tasks,
        relay.clients(),
    ));
    let state = Arc::new(ConnectionState {
        client,
        log_level: Mutex::new(None),
        subscriptions: Mutex::new(BTreeSet::new()),
        // The servers' sampling and elicitation requests may be passed on to this client.
        attached: relay.attach(peer.clone(), tasks.clone()),
        tasks,
    });
    let relaying = relay_notifications(
        &host,
        &peer,
        &state,
        host.subscribe_catalogue(),
        policies_changed,
        host.subscribe_notifications(),
    );
    tokio::pin!(relaying);
    // Handlers run in this task rather than one spawned task each: no task allocation per
    // request, and no hand-off to another worker thread and back.
    let mut handlers = FuturesUnordered::new();
    let wakeups = Wakeups::new();
    let stop = std::future::poll_fn(|cx| {
        // Wakes during this poll only mark their source (the task's waker is registered again
        // before it returns `Pending`), so a source woken by another (the reader queueing a
        // request) is polled in this same poll instead of by the task waking itself: tokio puts
        // a self-woken task behind a notification to another worker thread, which steals it.
        wakeups.unregister();
        for _ in 0..MAX_ROUNDS {
            let ready = wakeups.take(cx);
            if ready == 0 {
                return Poll::Pending;
            }
            if ready & Wakeups::CONNECTION != 0 {
                if let Poll::Ready(ended) =
                    Pin::new(&mut connection).poll(&mut wakeups.context(Wakeups::CONNECTION))
                {
                    if let Err(error) = ended {
                        tracing::warn!(error = %error, "the client connection failed");
                    }
                    return Poll::Ready(Stop::EndOfInput);
                }
            }
            if ready & Wakeups::REQUESTS != 0 {
                let mut requests_cx = wakeups.context(Wakeups::REQUESTS);
                // At the limit, requests wait in the bounded stream (and the client's writes
                // behind it): backpressure, not an unbounded set of handlers.
                while handlers.len() < max_handlers {
                    let Poll::Ready(request) = requests.poll_recv(&mut requests_cx) else {
                        break;
                    };
                    let Some(request) = request else {
                        return Poll::Ready(Stop::EndOfInput);
                    };
                    handlers.push(handle(host.clone(), state.clone(), request));
                    wakeups.mark(Wakeups::HANDLERS);
                }
            }
            if ready & Wakeups::HANDLERS != 0 {
                let was_full = handlers.len() >= max_handlers;
                let mut handlers_cx = wakeups.context(Wakeups::HANDLERS);
                while let Poll::Ready(Some(())) = handlers.poll_next_unpin(&mut handlers_cx) {}
                if was_full && handlers.len() < max_handlers {
                    // Room again: take the requests that waited.
                    wakeups.mark(Wakeups::REQUESTS);
                }
            }
            if ready & Wakeups::RELAY != 0 {
                let _ = relaying.as_mut().poll(&mut wakeups.context(Wakeups::RELAY));
            }
            if ready & Wakeups::STOP != 0
                && stop
                    .as_mut()
                    .poll(&mut wakeups.context(Wakeups::STOP))
                    .is_ready()
            {
                return Poll::Ready(Stop::Requested);
            }
        }
        // Still busy (a burst of requests, or tokio's budget spent): let other tasks run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    // Requests in flight end now; their downstream calls are cancelled as they are dropped.
    drop(handlers);
    let subscriptions = std::mem::take(&mut *lock(&state.subscriptions));
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        // This client's subscriptions end with it (others' stay: the host counts them). They
        // were made within its scope; undoing them needs no scope.
        let scope = AgentScope::all();
        let unsubscribes = subscriptions
            .iter()
            .map(|uri| host.unsubscribe_resource(uri, &scope));
        // Its tasks end with it too (the host bounds their cancellation).
        futures::future::join(
            futures::future::join_all(unsubscribes),
            state.tasks.end(&host),
        )
        .await;
    })
    .await;
    stop
}

/// Who a connection serves, and what applies to it.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    /// The client, as it authenticated.
    pub(crate) caller: Caller,
    /// Its policy is looked up here at every request (a reload may change it).
    pub(crate) policies: Arc<PolicyStore>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) audit: Option<Arc<AuditLog>>,
    /// The session's label in the audit log.
    pub(crate) session: String,
    /// How many tasks that have not ended the connection may have.
    pub(crate) max_tasks: usize,
}

impl Client {
    /// The client's policy now, or the error for a client no longer configured.
    fn policy(&self) -> Result<Arc<ClientPolicy>, RpcError> {
        self.policies
            .policy_of(&self.caller)
            .ok_or_else(|| RpcError::new(-32000, "this client is no longer allowed by the gateway"))
    }

    /// The tool mode of `policy`'s client now: its own, else the gateway's.
    fn tool_mode(&self, policy: &ClientPolicy) -> ToolMode {
        self.policies.current().tool_mode_of(policy)
    }
}

/// What one client of the gateway asked for that outlives a request.
#[derive(Debug)]
struct ConnectionState {
    client: Client,
    /// The level set with `logging/setLevel`; log messages below it are not relayed.
    log_level: Mutex<Option<LoggingLevel>>,
    /// The URIs subscribed to with `resources/subscribe`.
    subscriptions: Mutex<BTreeSet<String>>,
    /// Its tasks (the relay reads them too, to send a request about a task to its client).
    tasks: Arc<SessionTasks>,
    /// Its place in the relay of the servers' requests, while it lives.
    attached: Attached,
}

/// Relays the host's catalogue changes (as the `list_changed` of each kind of component whose
/// list, as this client sees it, changed) and the servers' notifications to this client, for as
/// long as it is polled.
async fn relay_notifications(
    host: &McpHost,
    peer: &ServerPeer,
    state: &ConnectionState,
    mut catalogue: watch::Receiver<u64>,
    mut policies: watch::Receiver<u64>,
    mut notifications: broadcast::Receiver<ServerNotification>,
) {
    // A client no longer configured sees nothing.
    let view = || {
        let policy = state.client.policy().ok();
        let mode = policy
            .as_ref()
            .map_or(ToolMode::All, |policy| state.client.tool_mode(policy));
        CatalogueView::of(host, policy.as_ref().map(|policy| &policy.scope), mode)
    };
    let mut seen = view();
    let (mut catalogue_open, mut policies_open, mut notifications_open) = (true, true, true);
    loop {
        tokio::select! {
            changed = catalogue.changed(), if catalogue_open => match changed {
                Ok(()) => {
                    catalogue.borrow_and_update();
                    let now = view();
                    for method in seen.changed_lists(&now) {
                        peer.notify(method, None);
                    }
                    seen = now;
                }
                Err(_) => catalogue_open = false,
            },
            changed = policies.changed(), if policies_open => match changed {
                Ok(()) => {
                    policies.borrow_and_update();
                    let now = view();
                    for method in seen.changed_lists(&now) {
                        peer.notify(method, None);
                    }
                    seen = now;
                }
                Err(_) => policies_open = false,
            },
            notification = notifications.recv(), if notifications_open => match notification {
                Ok(notification) => relay(host, peer, state, notification),
                Err(RecvError::Lagged(n_lost)) => {
                    tracing::debug!(n_lost, "the client is slow; dropped server notifications");
                }
                Err(RecvError::Closed) => notifications_open = false,
            },
            else => std::future::pending::<()>().await,
        }
    }
}

/// Fingerprints of the lists one client sees, to tell which of them a catalogue change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CatalogueView {
    tools: u64,
    prompts: u64,
    resources: u64,
}

impl CatalogueView {
    /// The view through `scope` in tool `mode`; `None` sees nothing.
    fn of(host: &McpHost, scope: Option<&AgentScope>, mode: ToolMode) -> CatalogueView {
        fn fingerprint(items: &impl serde::Serialize) -> u64 {
            use std::hash::{Hash as _, Hasher as _};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            serde_json::to_string(items)
                .unwrap_or_default()
                .hash(&mut hasher);
            hasher.finish()
        }
        let Some(scope) = scope else {
            return CatalogueView {
                tools: 0,
                prompts: 0,
                resources: 0,
            };
        };
        let tools = match search::list_tools(mode) {
            Some(listed) => fingerprint(&listed),
            None => fingerprint(
                &host
                    .list_tools(scope)
                    .into_iter()
                    .map(|registered| (registered.name, registered.item))
                    .collect::<Vec<(String, Tool)>>(),
            ),
        };
        let prompts: Vec<(String, Prompt)> = host
            .list_prompts(scope)
            .into_iter()
            .map(|registered| (registered.name, registered.item))
            .collect();
        let resources = (
            host.list_resources(scope),
            host.list_resource_templates(scope),
        );
        CatalogueView {
            tools,
            prompts: fingerprint(&prompts),
            resources: fingerprint(&resources),
        }
    }

    /// The `list_changed` notifications that take a client from `self` to `now`.
    fn changed_lists(&self, now: &CatalogueView) -> impl Iterator<Item = &'static str> {
        [
            (self.tools != now.tools, "notifications/tools/list_changed"),
            (
                self.prompts != now.prompts,
                "notifications/prompts/list_changed",
            ),
            (
                self.resources != now.resources,
                "notifications/resources/list_changed",
            ),
        ]
        .into_iter()
        .filter_map(|(changed, method)| changed.then_some(method))
    }
}

/// How many requests of one client are handled at once by default; more wait in the request
/// stream (of the same capacity), then in the client's writes.
pub(crate) const MAX_HANDLERS: usize = 256;

/// How many rounds over its woken sources `serve_connection` makes in one poll before it yields.
const MAX_ROUNDS: usize = 8;

/// One waker per source `serve_connection` polls, each of which marks its source as woken and
/// wakes the task (unless the task is being polled, which sees the mark anyway).
struct Wakeups {
    shared: Arc<WakeupMarks>,
    /// Indexed by the bit's position.
    wakers: [Waker; 5],
}

struct WakeupMarks {
    woken: AtomicU8,
    task: AtomicWaker,
}

struct SourceWaker {
    marks: Arc<WakeupMarks>,
    bit: u8,
}

impl Wakeups {
    const CONNECTION: u8 = 1;
    const REQUESTS: u8 = 1 << 1;
    const HANDLERS: u8 = 1 << 2;
    const RELAY: u8 = 1 << 3;
    const STOP: u8 = 1 << 4;

    /// Every source starts woken, so that the first poll polls each once.
    fn new() -> Wakeups {
        let shared = Arc::new(WakeupMarks {
            woken: AtomicU8::new(0b1_1111),
            task: AtomicWaker::new(),
        });
        let wakers = [0u8, 1, 2, 3, 4].map(|position| {
            Waker::from(Arc::new(SourceWaker {
                marks: shared.clone(),
                bit: 1 << position,
            }))
        });
        Wakeups { shared, wakers }
    }

    /// Forgets the task's waker while the task runs: wakes then only mark their source.
    fn unregister(&self) {
        drop(self.shared.task.take());
    }

    /// Takes the marks of the woken sources. When there are none, registers the task's waker
    /// (checking once more, so that a wake from another thread in between is not lost).
    fn take(&self, cx: &Context<'_>) -> u8 {
        let woken = self.shared.woken.swap(0, Ordering::AcqRel);
        if woken != 0 {
            return woken;
        }
        self.shared.task.register(cx.waker());
        self.shared.woken.swap(0, Ordering::AcqRel)
    }

    fn mark(&self, bit: u8) {
        self.shared.woken.fetch_or(bit, Ordering::AcqRel);
    }

    /// A context whose waker marks `bit`.
    fn context(&self, bit: u8) -> Context<'_> {
        let position = bit.trailing_zeros() as usize;
        Context::from_waker(&self.wakers[position])
    }
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.marks.woken.fetch_or(self.bit, Ordering::AcqRel);
        self.marks.task.wake();
    }
}

/// Passes a server's notification on to this client, if it wants it.
fn relay(
    host: &McpHost,
    peer: &ServerPeer,
    state: &ConnectionState,
    notification: ServerNotification,
) {
    match notification.kind {
        NotificationKind::Log(message)
            if lock(&state.log_level).is_none_or(|level| message.level >= level) =>
        {
            if let Ok(params) = serde_json::to_value(&message) {
                peer.notify("notifications/message", Some(params));
            }
        }
        NotificationKind::ResourceUpdated { uri } if lock(&state.subscriptions).contains(&uri) => {
            peer.notify(
                "notifications/resources/updated",
                Some(json!({ "uri": uri })),
            );
        }
        NotificationKind::TaskStatus(task) => {
            let policy = state.client.policy().ok();
            let scope = policy.as_ref().map(|policy| &policy.scope);
            tasks::relay_status(host, peer, &state.tasks, scope, task);
        }
        NotificationKind::ElicitationComplete { elicitation_id }
            if state
                .attached
                .completes(notification.client.server_name(), &elicitation_id) =>
        {
            peer.notify(
                "notifications/elicitation/complete",
                Some(json!({ "elicitationId": elicitation_id })),
            );
        }
        // Below this client's level, not subscribed to, someone else's, or new.
        _ => {}
    }
}

/// How the gateway presents itself in `initialize`, on every transport: completions and
/// resource subscriptions are offered when a ready server offers them.
pub(crate) fn server_options(host: &McpHost) -> ServerOptions {
    let servers: Vec<ServerCapabilities> = host
        .clients()
        .iter()
        .filter_map(|id| host.session(id))
        .map(|client| client.init.capabilities.clone())
        .collect();
    let completions = servers.iter().any(|server| server.completions.is_some());
    let subscribe = servers.iter().any(|server| {
        server
            .resources
            .as_ref()
            .is_some_and(|resources| resources.subscribe == Some(true))
    });
    let mut options = ServerOptions::new("mcp-host", env!("CARGO_PKG_VERSION"));
    let list_changed = ListChangedCapability {
        list_changed: Some(true),
        ..ListChangedCapability::default()
    };
    options.capabilities = ServerCapabilities {
        tools: Some(list_changed.clone()),
        prompts: Some(list_changed),
        resources: Some(ResourcesCapability {
            list_changed: Some(true),
            subscribe: subscribe.then_some(true),
            ..ResourcesCapability::default()
        }),
        logging: Some(json!({})),
        completions: completions.then(|| json!({})),
        ..ServerCapabilities::default()
    };
    if let Some(tasks) = tasks::capability(&servers) {
        options.capabilities.extra.insert("tasks".to_owned(), tasks);
    }
    options.instructions = Some(
        "mcp-host gateway: tools, prompts and resources of several MCP servers; names are <server>__<name> unless a server is configured with \"namespace\": false."
            .to_owned(),
    );
    options
}

async fn handle(host: Arc<McpHost>, state: Arc<ConnectionState>, mut request: IncomingRequest) {
    let started = Instant::now();
    let params = request.take_params().unwrap_or(Value::Null);
    let cancelled = request.cancellation().clone();
    let client = &state.client;
    let auditing =
        client.audit.is_some() || tracing::enabled!(target: "audit", tracing::Level::INFO);
    let policy = match client.policy() {
        Ok(policy) => policy,
        Err(error) => {
            request.respond(Err(error));
            return;
        }
    };
    let scope = &policy.scope;
    if request.method() == "tools/call" {
        let tool_mode = client.tool_mode(&policy);
        let audited = search::audited_params(tool_mode, &params);
        let name = audited["name"].as_str().unwrap_or_default().to_owned();
        let quota = client.quotas.of(&policy);
        let _permit = match quota.start_call() {
            Ok(permit) => permit,
            Err(refusal) => {
                if auditing {
                    audit(
                        &host, client, &policy, &request, &audited, None, "quota", started,
                    );
                }
                request.respond(Err(RpcError {
                    code: -32000,
                    message: refusal.to_string(),
                    data: Some(json!({ "retryAfterSeconds": refusal.retry_after_secs() })),
                }));
                return;
            }
        };
        // The hot path: the downstream result is forwarded as it came, without decoding it.
        let calling = async {
            if tasks::is_task_call(&params) {
                tasks::call(&host, &state.tasks, scope, &request, &params).await
            } else {
                call_tool(&host, scope, tool_mode, &request, &params).await
            }
        };
        let outcome = tokio::select! {
            outcome = calling => outcome,
            () = cancelled.cancelled() => {
                if auditing {
                    audit(&host, client, &policy, &request, &audited, None, "cancelled", started);
                }
                return;
            }
        };
        if auditing {
            let server = host
                .tool_route(&name, scope)
                .map(|(server, _)| server.to_string());
            let label = match &outcome {
                // `call_tool` of a tool this client cannot reach: refused, as a direct call is.
                Ok(raw)
                    if server.is_none()
                        && matches!(audited, std::borrow::Cow::Owned(_))
                        && mcp_host::raw_is_tool_error(raw) =>
                {
                    "denied"
                }
                Ok(raw) if mcp_host::raw_is_tool_error(raw) => "tool_error",
                Ok(_) => "ok",
                Err(Ok(_)) => "tool_error",
                Err(Err(error)) if error.code == NOT_AVAILABLE => "denied",
                Err(Err(_)) => "error",
            };
            audit(
                &host, client, &policy, &request, &audited, server, label, started,
            );
        }
        match outcome {
            Ok(raw) => request.respond_raw(raw),
            Err(outcome) => request.respond(outcome),
        }
        return;
    }
    if tasks::METHODS.contains(&request.method()) {
        let outcome = tokio::select! {
            outcome = tasks::answer(&host, &state.tasks, scope, &request, &params) => outcome,
            () = cancelled.cancelled() => return,
        };
        match outcome {
            Ok(raw) => request.respond_raw(raw),
            Err(error) => request.respond(Err(error)),
        }
        return;
    }
    let outcome = tokio::select! {
        outcome = dispatch(&host, &state, scope, &request, params.clone()) => outcome,
        () = cancelled.cancelled() => return,
    };
    if auditing && AUDITED.contains(&request.method()) {
        let label = match &outcome {
            Ok(_) => "ok",
            Err(error) if error.code == NOT_AVAILABLE || error.code == -32002 => "denied",
            Err(_) => "error",
        };
        audit(
            &host, client, &policy, &request, &params, None, label, started,
        );
    }
    request.respond(outcome);
}

/// The methods besides `tools/call` that the audit log records.
const AUDITED: [&str; 5] = [
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
];

/// The JSON-RPC code of "no such component, or not allowed": the same answer for both, so a
/// client cannot learn what exists outside its scope.
const NOT_AVAILABLE: i64 = -32602;

/// Writes the audit line of one request.
#[allow(clippy::too_many_arguments)]
fn audit(
    host: &McpHost,
    client: &Client,
    policy: &ClientPolicy,
    request: &IncomingRequest,
    params: &Value,
    server: Option<String>,
    outcome: &'static str,
    started: Instant,
) {
    let arguments = params.get("arguments");
    let argument_bytes = arguments
        .map(|arguments| serde_json::to_string(arguments).map_or(0, |text| text.len()))
        .unwrap_or(0);
    let target = params["name"]
        .as_str()
        .or_else(|| params["uri"].as_str())
        .or_else(|| params["ref"]["name"].as_str())
        .map(str::to_owned);
    let record = AuditRecord {
        time: crate::audit::now_rfc3339(),
        client: policy.name.clone(),
        session: client.session.clone(),
        method: request.method().to_owned(),
        server,
        target,
        outcome,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        argument_bytes,
        arguments: policy
            .audit_arguments
            .then(|| {
                arguments
                    .cloned()
                    .map(|arguments| host.mask_json(arguments))
            })
            .flatten(),
    };
    match &client.audit {
        Some(log) => log.record(&record),
        None => {
            if let Ok(line) = serde_json::to_string(&record) {
                tracing::info!(target: "audit", "{line}");
            }
        }
    }
}

/// Forwards `tools/call`: `Ok` carries the downstream result undecoded; `Err` carries the answer
/// to send instead (a tool-error result or a JSON-RPC error).
async fn call_tool(
    host: &McpHost,
    scope: &AgentScope,
    tool_mode: ToolMode,
    request: &IncomingRequest,
    params: &Value,
) -> Result<Box<serde_json::value::RawValue>, Result<Value, RpcError>> {
    let name = string_param(params, "name").map_err(Err)?;
    let arguments = params.get("arguments").and_then(Value::as_object);
    let options = progress_relay(request);
    if search::is_search_tool(tool_mode, &name) {
        return search::call(host, &name, arguments, scope, &options)
            .await
            .map_err(tool_failure);
    }
    host.call_tool_raw(&name, arguments, scope, &options)
        .await
        .map_err(tool_failure)
}

async fn dispatch(
    host: &McpHost,
    state: &ConnectionState,
    scope: &AgentScope,
    request: &IncomingRequest,
    params: Value,
) -> Result<Value, RpcError> {
    match request.method() {
        "tools/list" => {
            let policy = state.client.policy()?;
            if let Some(listed) = search::list_tools(state.client.tool_mode(&policy)) {
                return Ok(listed);
            }
            let tools: Vec<Tool> = host
                .list_tools(scope)
                .into_iter()
                .map(|registered| Tool {
                    name: registered.name,
                    ..registered.item
                })
                .collect();
            Ok(json!({ "tools": tools }))
        }
        "prompts/list" => {
            let prompts: Vec<Value> = host
                .list_prompts(scope)
                .into_iter()
                .map(|registered| {
                    let mut prompt = serde_json::to_value(&registered.item).unwrap_or(Value::Null);
                    prompt["name"] = Value::String(registered.name);
                    prompt
                })
                .collect();
            Ok(json!({ "prompts": prompts }))
        }
        "prompts/get" => {
            let name = string_param(&params, "name")?;
            let arguments = object_param(&params, "arguments");
            match host.get_prompt(&name, arguments, scope).await {
                Ok(result) => to_value(&result),
                Err(error) => Err(rpc_failure(error)),
            }
        }
        "resources/list" => {
            let resources: Vec<_> = host
                .list_resources(scope)
                .into_iter()
                .map(|(_, resource)| resource)
                .collect();
            Ok(json!({ "resources": resources }))
        }
        "resources/templates/list" => {
            let templates: Vec<_> = host
                .list_resource_templates(scope)
                .into_iter()
                .map(|(_, template)| template)
                .collect();
            Ok(json!({ "resourceTemplates": templates }))
        }
        "resources/read" => {
            let uri = string_param(&params, "uri")?;
            match host.read_resource(&uri, scope).await {
                Ok(result) => to_value(&result),
                Err(error) => Err(rpc_failure(error)),
            }
        }
        "resources/subscribe" => {
            let uri = string_param(&params, "uri")?;
            // A repeated subscription is one subscription.
            if lock(&state.subscriptions).insert(uri.clone()) {
                if let Err(error) = host.subscribe_resource(&uri, scope).await {
                    lock(&state.subscriptions).remove(&uri);
                    return Err(rpc_failure(error));
                }
            }
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            let uri = string_param(&params, "uri")?;
            // Only what this client subscribed to is released (the host counts subscribers).
            if lock(&state.subscriptions).remove(&uri) {
                host.unsubscribe_resource(&uri, scope)
                    .await
                    .map_err(rpc_failure)?;
            }
            Ok(json!({}))
        }
        "completion/complete" => {
            let Value::Object(mut params) = params else {
                return Err(RpcError::invalid_params("params must be an object"));
            };
            let reference = completion_ref(params.remove("ref"))?;
            let raw = host
                .complete_raw(&reference, params, scope)
                .await
                .map_err(rpc_failure)?;
            serde_json::from_str(raw.get()).map_err(|error| RpcError::internal(error.to_string()))
        }
        "logging/setLevel" => {
            let level: LoggingLevel = serde_json::from_value(params["level"].clone())
                .map_err(|_| RpcError::invalid_params("`level` must be a syslog level"))?;
            *lock(&state.log_level) = Some(level);
            for (client, error) in host.set_logging_level(level).await {
                tracing::warn!(client = %client, error = %mcp_host::error_chain(&error), "a server did not take the log level");
            }
            Ok(json!({}))
        }
        other => Err(RpcError::method_not_found(other)),
    }
}

/// Relays the downstream server's progress to our client, with the client's progress token.
pub(crate) fn progress_relay(request: &IncomingRequest) -> RequestOptions {
    if request.progress_token().is_none() {
        return RequestOptions::default();
    }
    let peer = request.peer().clone();
    let token = request.progress_token().cloned();
    RequestOptions {
        timeout: None,
        on_progress: Some(Arc::new(move |progress: Progress| {
            let mut params = match serde_json::to_value(&progress) {
                Ok(Value::Object(params)) => params,
                _ => Map::new(),
            };
            if let Some(token) = &token {
                params.insert("progressToken".to_owned(), token.clone());
            }
            peer.notify("notifications/progress", Some(Value::Object(params)));
        })),
    }
}

/// Reads the `ref` of `completion/complete`: `ref/prompt` with a `name`, or `ref/resource` with
/// a `uri` (a resource template).
fn completion_ref(reference: Option<Value>) -> Result<CompletionRef, RpcError> {
    let reference = reference.unwrap_or(Value::Null);
    match reference["type"].as_str() {
        Some("ref/prompt") => Ok(CompletionRef::Prompt {
            name: string_param(&reference, "name")?,
        }),
        Some("ref/resource") => Ok(CompletionRef::ResourceTemplate {
            uri_template: string_param(&reference, "uri")?,
        }),
        _ => Err(RpcError::invalid_params(
            "`ref.type` must be `ref/prompt` or `ref/resource`",
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn string_param(params: &Value, name: &str) -> Result<String, RpcError> {
    params[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| RpcError::invalid_params(format!("`{name}` must be a string")))
}

fn object_param(params: &Value, name: &str) -> Option<Map<String, Value>> {
    params.get(name).and_then(Value::as_object).cloned()
}

fn to_value(result: &impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(result).map_err(|error| RpcError::internal(error.to_string()))
}

/// Maps a host error to a JSON-RPC error, keeping a downstream server's own error as it was.
pub(crate) fn rpc_failure(error: Error) -> RpcError {
    match error {
        Error::Call { source, .. } => match *source {
            mcp_session::Error::Rpc {
                code,
                message,
                data,
                ..
            } => RpcError {
                code,
                message,
                data,
            },
            other => RpcError::internal(mcp_host::error_chain(&other)),
        },
        Error::UnknownTool { name } => RpcError::new(
            NOT_AVAILABLE,
            format!("tool `{name}` is not available: it does not exist, or this client may not use it"),
        ),
        Error::UnknownPrompt { name } => RpcError::new(
            NOT_AVAILABLE,
            format!("prompt `{name}` is not available: it does not exist, or this client may not use it"),
        ),
        Error::UnknownResourceTemplate { uri_template } => RpcError::new(
            NOT_AVAILABLE,
            format!("resource template `{uri_template}` is not available: it does not exist, or this client may not use it"),
        ),
        Error::UnknownResource { uri } => RpcError {
            code: -32002,
            message: "resource not found, or this client may not read it".to_owned(),
            data: Some(json!({ "uri": uri })),
        },
        other => RpcError::internal(mcp_host::error_chain(&other)),
    }
}

/// A tool that cannot run because its server failed is a tool error the model should see;
/// an unknown tool or bad arguments stay protocol errors.
pub(crate) fn tool_failure(error: Error) -> Result<Value, RpcError> {
    match &error {
        Error::Call { source, .. } if !matches!(**source, mcp_session::Error::Rpc { .. }) => {
            Ok(json!({
                "content": [{ "type": "text", "text": mcp_host::error_chain(&error) }],
                "isError": true
            }))
        }
        Error::ClientUnavailable { .. } => Ok(json!({
            "content": [{ "type": "text", "text": error.to_string() }],
            "isError": true
        })),
        _ => Err(rpc_failure(error)),
    }
}
