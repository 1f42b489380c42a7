//! `McpHost`: many clients under one task tracker, one cancellation token each.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt as _};
use mcp_host_foundation::{
    start_task, ClientConfig, ClientExit, ClientId, ClientManager, ClientSession, ExitCause,
    RootManager, SecurityManager, TaskStatus,
};
use mcp_session::protocol::{
    CallToolResult, GetPromptResult, LoggingLevel, Prompt, ReadResourceResult, Resource,
    ResourceTemplate, Tool,
};
use mcp_session::{Event, RequestOptions};
use mcp_transport::{ExitReport, GroupKiller};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::error_chain;
use crate::notification::{NotificationKind, ServerNotification};
use crate::output_schema::OutputSchemas;
use crate::registry::{
    AgentScope, Naming, PromptManager, Registered, ResourceManager, ToolManager,
};
use crate::stats::{outcome_of, CallStats, RecentLatency, ToolStats};
use crate::status::{millis, ClientState, ClientStatus, StatusEvent, StatusRecord};
use crate::tasks::{TaskRegistry, TASK_CANCEL_BOUND};
use crate::Error;

/// How many relayed notifications a slow listener may fall behind before it loses the oldest.
const NOTIFICATION_CAPACITY: usize = 1024;

/// How many queued events of one server the supervisor takes in one go (the size of the
/// session's event queue).
const EVENT_BATCH: usize = 1024;

/// Settings of a host.
#[derive(Clone)]
pub struct HostOptions {
    /// Bound on [`McpHost::shutdown`] as a whole (default 10 s); whatever is still running
    /// after it is killed.
    pub shutdown_deadline: Duration,
    /// Answers the servers' sampling and elicitation requests (the gateway passes them on to
    /// its own client); when `None` (the default) the host declares neither capability and such
    /// requests get -32601.
    pub client_requests: Option<Arc<dyn mcp_session::ClientRequestHandler>>,
    /// How long a restarted client must stay ready for its restart count to start over
    /// (default [`RESTART_RESET_AFTER`], 60 s), as systemd's `StartLimitIntervalSec` does: a
    /// server that crashes once a day is restarted every day, while one that crashes soon after
    /// each start is given up after `restart.maxRestarts` restarts in a row.
    pub restart_reset_after: Duration,
    /// Whether the `structuredContent` of a tool that declares an `outputSchema` is checked
    /// against it (default true): a result that does not conform fails the call with
    /// [`Error::OutputSchema`], naming the tool and the first violation.
    pub check_output_schema: bool,
}

/// How long a client must stay ready for its restart count to start over, unless
/// [`HostOptions::restart_reset_after`] says otherwise.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);

impl fmt::Debug for HostOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostOptions")
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("client_requests", &self.client_requests.is_some())
            .field("restart_reset_after", &self.restart_reset_after)
            .field("check_output_schema", &self.check_output_schema)
            .finish()
    }
}

impl Default for HostOptions {
    fn default() -> HostOptions {
        HostOptions {
            shutdown_deadline: Duration::from_secs(10),
            client_requests: None,
            restart_reset_after: RESTART_RESET_AFTER,
            check_output_schema: true,
        }
    }
}

/// What a `completion/complete` request completes an argument of: a prompt (by the name the
/// host exposes) or a resource template (by its URI template).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompletionRef {
    /// `ref/prompt`: an argument of this prompt.
    Prompt {
        /// The prompt's exposed name.
        name: String,
    },
    /// `ref/resource`: a variable of this resource template.
    ResourceTemplate {
        /// The template, exactly as listed.
        uri_template: String,
    },
}

/// What [`McpHost::initialize`] started.
#[derive(Debug)]
pub struct InitializeReport {
    /// Clients that are ready.
    pub ready: Vec<ClientId>,
    /// Optional clients that failed, with why (secrets masked).
    pub failed: Vec<(ClientId, Error)>,
}

/// What [`McpHost::apply`] changed, by client id (each list sorted).
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Clients new in the configuration, now started.
    pub added: Vec<ClientId>,
    /// Clients no longer in the configuration, now stopped and forgotten.
    pub removed: Vec<ClientId>,
    /// Clients whose configuration changed (any field), stopped and started again; and
    /// clients that were configured but not running (they had failed), started again.
    pub restarted: Vec<ClientId>,
    /// Clients left as they were: same process, calls in flight unaffected.
    pub unchanged: Vec<ClientId>,
    /// Clients that were to be started and failed, with why (secrets masked). A client that
    /// failed stays configured: the next [`McpHost::apply`] tries it again.
    pub failed: Vec<(ClientId, Error)>,
}

impl ReloadReport {
    /// Whether anything was started or stopped.
    pub fn changed_anything(&self) -> bool {
        !(self.added.is_empty()
            && self.removed.is_empty()
            && self.restarted.is_empty()
            && self.failed.is_empty())
    }
}

/// What [`McpHost::shutdown`] did: every client that was registered is in `exits` or in
/// `failed`.
#[derive(Debug)]
pub struct ShutdownReport {
    /// How each client's process ended, for the clients that stopped in time.
    pub exits: Vec<ExitReport>,
    /// The clients whose stop failed, sorted by id: [`Error::StopTimeout`] for those still
    /// stopping at the deadline (then killed), and the error of those whose supervisor ended
    /// with one (for example a client waiting to be restarted, or whose task panicked).
    pub failed: Vec<(ClientId, Error)>,
    /// Clients that had to be killed because they outlived the deadline.
    pub killed: Vec<ClientId>,
}

/// Hosts many MCP servers: starts them concurrently, exposes their tools, prompts and resources
/// under namespaced names, and stops them cleanly.
///
/// Every client runs in a task on the host's [`TaskTracker`] with its own child of the host's
/// root [`CancellationToken`]; the task is [`ClientManager::manage_client_lifecycle`], which hands
/// the ready session back through a [`TaskStatus`] handshake.
///
/// ```no_run
/// use mcp_host::{AgentScope, ClientConfig, McpHost};
///
/// # async fn demo() -> Result<(), mcp_host::Error> {
/// let time = ClientConfig {
///     args: vec!["mcp-server-time".to_owned()],
///     ..ClientConfig::new("time", "uvx")
/// };
/// let configs = vec![time];
/// let host = McpHost::new(configs)?;
/// host.initialize().await?;
/// for tool in host.list_tools(&AgentScope::all()) {
///     println!("{}", tool.name);
/// }
/// let result = host
///     .call_tool("time__get_current_time", None, &AgentScope::all())
///     .await?;
/// println!("{}", result.text());
/// host.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Drop behavior
///
/// Dropping a host that was not [shut down](McpHost::shutdown) cancels every client and sends
/// SIGKILL to every server's process group at once, so that no process outlives the host.
pub struct McpHost {
    inner: Arc<Inner>,
}

struct Inner {
    options: HostOptions,
    configs: Vec<ClientConfig>,
    /// The configuration the host is to run, by id: the initial one, then what
    /// [`McpHost::register_client`], [`McpHost::client_shutdown`] and [`McpHost::apply`] make
    /// of it. A client that failed to start stays here (so `apply` retries it).
    desired: Mutex<BTreeMap<ClientId, ClientConfig>>,
    /// One `apply` at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The catalogue's version: bumped when the registered tools, prompts or resources change.
    catalogue: watch::Sender<u64>,
    /// Open batches (an `apply`): changes inside one are published once, at its end.
    catalogue_batch: Mutex<CatalogueBatch>,
    tracker: TaskTracker,
    root: CancellationToken,
    security: SecurityManager,
    roots: RootManager,
    client_manager: ClientManager,
    tools: ToolManager,
    prompts: PromptManager,
    resources: ResourceManager,
    clients: Mutex<HashMap<ClientId, ClientHandle>>,
    /// Registrations stopped but maybe not ended yet, by id (at most one per id).
    retiring: Mutex<HashMap<ClientId, Retiring>>,
    killers: Mutex<HashMap<ClientId, GroupKiller>>,
    status: Mutex<BTreeMap<ClientId, StatusRecord>>,
    status_events: broadcast::Sender<StatusEvent>,
    notifications: broadcast::Sender<ServerNotification>,
    /// How many subscribers each resource has, per client (see [`McpHost::subscribe_resource`]).
    subscriptions: Mutex<HashMap<(ClientId, String), usize>>,
    /// Every routed `tools/call`, counted.
    stats: CallStats,
    /// Compiled output schemas of the tools that declare one.
    output_schemas: OutputSchemas,
    /// The tasks of tool calls the host started.
    tasks: TaskRegistry,
}

/// Catalogue changes held back while a batch is open.
#[derive(Debug, Default)]
struct CatalogueBatch {
    depth: usize,
    dirty: bool,
}

/// Publishes the catalogue changes of a batch when dropped.
struct BatchGuard<'a> {
    inner: &'a Inner,
}

impl Drop for BatchGuard<'_> {
    fn drop(&mut self) {
        let publish = {
            let mut batch = lock(&self.inner.catalogue_batch);
            batch.depth = batch.depth.saturating_sub(1);
            let publish = batch.depth == 0 && batch.dirty;
            if publish {
                batch.dirty = false;
            }
            publish
        };
        if publish {
            self.inner.catalogue.send_modify(|version| *version += 1);
        }
    }
}

struct ClientHandle {
    token: CancellationToken,
    config: ClientConfig,
    supervisor: Option<JoinHandle<Result<ClientExit, mcp_host_foundation::Error>>>,
    /// Cancelled when this registration's supervisor task has ended, on every path.
    ended: CancellationToken,
}

/// A registration that was asked to stop and whose supervisor may still be running.
///
/// A new registration of the same id waits for it to end, so that two registrations of one id
/// never overlap: everything the old one removes on its way out (its killer, components,
/// session, roots, subscriptions, status) is then its own.
struct Retiring {
    ended: CancellationToken,
    /// How long its close may take (two grace periods and the kill).
    bound: Duration,
}

impl fmt::Debug for McpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpHost")
            .field("clients", &lock(&self.inner.clients).len())
            .field("shut_down", &self.inner.root.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl McpHost {
    /// A host for `configs` with default options and an environment snapshot of this process.
    ///
    /// Validates every configuration (ids, commands, roots, duplicates); nothing is started.
    pub fn new(configs: Vec<ClientConfig>) -> Result<McpHost, Error> {
        McpHost::with_options(configs, SecurityManager::new(), HostOptions::default())
    }

    /// A host with an explicit security manager and options.
    pub fn with_options(
        configs: Vec<ClientConfig>,
        security: SecurityManager,
        options: HostOptions,
    ) -> Result<McpHost, Error> {
        mcp_host_foundation::validate_all(&configs).map_err(|source| Error::Config { source })?;
        let tracker = TaskTracker::new();
        let roots = RootManager::new();
        let mut client_manager = ClientManager::new(tracker.clone(), roots.clone());
        if let Some(handler) = &options.client_requests {
            client_manager = client_manager.with_client_requests(handler.clone());
        }
        let (status_events, _) = broadcast::channel(256);
        let (notifications, _) = broadcast::channel(NOTIFICATION_CAPACITY);
        let desired = configs
            .iter()
            .filter_map(|config| Some((config.validate().ok()?, config.clone())))
            .collect();
        Ok(McpHost {
            inner: Arc::new(Inner {
                options,
                configs,
                desired: Mutex::new(desired),
                reloading: tokio::sync::Mutex::new(()),
                catalogue: watch::Sender::new(0),
                catalogue_batch: Mutex::new(CatalogueBatch::default()),
                tracker,
                root: CancellationToken::new(),
                security,
                roots,
                client_manager,
                tools: ToolManager::new(),
                prompts: PromptManager::new(),
                resources: ResourceManager::new(),
                clients: Mutex::new(HashMap::new()),
                retiring: Mutex::new(HashMap::new()),
                killers: Mutex::new(HashMap::new()),
                status: Mutex::new(BTreeMap::new()),
                status_events,
                notifications,
                subscriptions: Mutex::new(HashMap::new()),
                stats: CallStats::default(),
                output_schemas: OutputSchemas::default(),
                tasks: TaskRegistry::default(),
            }),
        })
    }

    /// Starts every configured client concurrently, each bounded by its startup timeout.
    ///
    /// A failing optional client is reported (here and in [`McpHost::status`]) and skipped; its
    /// siblings are not affected. A failing `required` client makes this fail, after every
    /// other client has been shut down.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, clients that were starting keep starting on the tracker; they
    /// are stopped by [`McpHost::shutdown`] or by dropping the host.
    pub async fn initialize(&self) -> Result<InitializeReport, Error> {
        let configs = self.inner.configs.clone();
        let starts = configs.into_iter().map(|config| async move {
            let required = config.required;
            let id = config.validate();
            let result = self.register_client(config).await;
            (id, required, result)
        });
        let results = futures::future::join_all(starts).await;
        let mut report = InitializeReport {
            ready: Vec::new(),
            failed: Vec::new(),
        };
        let mut required_failure = None;
        for (id, required, result) in results {
            let Ok(id) = id else { continue };
            match result {
                Ok(_) => report.ready.push(id),
                Err(Error::Start { client, source }) if required => {
                    required_failure.get_or_insert(Error::RequiredClientFailed { client, source });
                }
                Err(error) => {
                    // The caller gets the error in the report and says so once.
                    tracing::debug!(client = %id, error = %error_chain(&error), "an optional client failed to start");
                    report.failed.push((id, error));
                }
            }
        }
        if let Some(error) = required_failure {
            // The caller gets the error; only what is done about it is logged here.
            tracing::info!("a required client failed to start; stopping the others");
            self.shutdown_all_clients().await;
            return Err(error);
        }
        Ok(report)
    }

    /// Starts one more client at runtime and waits until it is ready (or failed).
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the client keeps starting and is registered when ready; shut
    /// it down with [`McpHost::client_shutdown`].
    pub async fn register_client(&self, config: ClientConfig) -> Result<ClientId, Error> {
        let inner = &self.inner;
        if inner.root.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let id = config
            .validate()
            .map_err(|source| Error::Config { source })?;
        lock(&inner.desired).insert(id.clone(), config.clone());
        inner.wait_retired(&id).await?;
        let token = inner.root.child_token();
        let ended = CancellationToken::new();
        {
            let mut clients = lock(&inner.clients);
            if clients.contains_key(&id) {
                return Err(Error::DuplicateClient {
                    client: id.to_string(),
                });
            }
            clients.insert(
                id.clone(),
                ClientHandle {
                    token: token.clone(),
                    config: config.clone(),
                    supervisor: None,
                    ended: ended.clone(),
                },
            );
        }
        lock(&inner.status).insert(id.clone(), StatusRecord::new(config.required));
        inner.publish(&id, ClientState::Starting);

        let span = tracing::info_span!("mcp_client", client = %id);
        let supervisor_inner = inner.clone();
        let supervisor_id = id.clone();
        let started = start_task(&inner.tracker, id.as_str(), move |status| {
            async move {
                let _ended = ended.drop_guard();
                supervise(supervisor_inner, supervisor_id, config, token, status).await
            }
            .instrument(span)
        })
        .await;
        match started {
            Ok(((), supervisor)) => {
                match lock(&inner.clients).get_mut(&id) {
                    Some(handle) => handle.supervisor = Some(supervisor),
                    // Shut down while we were waiting: the supervisor sees its token cancelled.
                    None => drop(supervisor),
                }
                Ok(id)
            }
            Err(source) => {
                lock(&inner.clients).remove(&id);
                Err(Error::Start {
                    client: id.to_string(),
                    source,
                })
            }
        }
    }

    /// Stops one client: unregisters its tools, prompts and resources, cancels its token, and
    /// waits (bounded) for its process to exit. Calls in flight to it end with a "shutting down"
    /// error.
    ///
    /// # Cancel safety
    ///
    /// The client is unregistered and cancelled as soon as the call starts; dropping the future
    /// only gives up waiting for the report.
    pub async fn client_shutdown(&self, id: &ClientId) -> Result<ExitReport, Error> {
        let inner = &self.inner;
        let handle = lock(&inner.clients)
            .remove(id)
            .ok_or_else(|| Error::UnknownClient {
                client: id.to_string(),
            })?;
        lock(&inner.desired).remove(id);
        let bound = handle.config.shutdown_grace() * 2 + Duration::from_secs(10);
        let ended = handle.ended.clone();
        lock(&inner.retiring).insert(
            id.clone(),
            Retiring {
                ended: ended.clone(),
                bound,
            },
        );
        inner.set_state(id, ClientState::Stopping);
        inner.unregister_components(id);
        // A task outlives nothing: those that have not ended are cancelled at their server.
        inner.cancel_tasks(id).await;
        handle.token.cancel();
        let result = match handle.supervisor {
            None => Err(Error::ClientUnavailable {
                client: id.to_string(),
            }),
            Some(supervisor) => match tokio::time::timeout(bound, supervisor).await {
                Ok(Ok(Ok(exit))) => Ok(exit.report),
                Ok(Ok(Err(source))) => Err(Error::Start {
                    client: id.to_string(),
                    source,
                }),
                Ok(Err(_)) => Err(Error::ClientUnavailable {
                    client: id.to_string(),
                }),
                Err(_) => {
                    inner.kill(id);
                    Err(Error::StopTimeout {
                        client: id.to_string(),
                        timeout: bound,
                    })
                }
            },
        };
        inner.set_state(id, ClientState::Stopped);
        if ended.is_cancelled() {
            lock(&inner.retiring).remove(id);
        }
        // Its secrets need no masking any more (unless another client or the host has them).
        inner.security.forget_client(id);
        result
    }

    /// Reconfigures the running host: compares `configs` with the configuration it runs, by
    /// client id, and starts the new clients, stops and forgets the removed ones, restarts the
    /// changed ones (any field) and the configured ones that are not running (they failed),
    /// and leaves the others untouched (same process; calls in flight go on).
    ///
    /// Stops run in parallel, then starts in parallel (each bounded by its startup timeout); a
    /// client that fails to start is reported, never fatal, whether or not it is `required`.
    /// Watchers of [`McpHost::subscribe_catalogue`] see the whole reload as one change.
    /// One `apply` runs at a time; a second waits for the first.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a configuration is invalid (then nothing changes), and
    /// [`Error::ShutDown`] after [`McpHost::shutdown`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the reload where it is: clients already stopped stay stopped,
    /// clients being started keep starting (as with [`McpHost::register_client`]).
    pub async fn apply(&self, configs: Vec<ClientConfig>) -> Result<ReloadReport, Error> {
        let inner = &self.inner;
        mcp_host_foundation::validate_all(&configs).map_err(|source| Error::Config { source })?;
        let _one_at_a_time = inner.reloading.lock().await;
        if inner.root.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let _batch = inner.batch();
        let mut wanted = BTreeMap::new();
        for config in configs {
            let id = config
                .validate()
                .map_err(|source| Error::Config { source })?;
            wanted.insert(id, config);
        }
        let current = lock(&inner.desired).clone();
        let running: std::collections::HashSet<ClientId> =
            lock(&inner.clients).keys().cloned().collect();
        let mut report = ReloadReport::default();
        let mut to_stop = Vec::new();
        let mut to_start = Vec::new();
        for (id, config) in &current {
            match wanted.get(id) {
                None => {
                    report.removed.push(id.clone());
                    to_stop.push(id.clone());
                }
                Some(new) if new != config => {
                    to_stop.push(id.clone());
                    to_start.push(new.clone());
                }
                Some(new) if !running.contains(id) => to_start.push(new.clone()),
                Some(_) => report.unchanged.push(id.clone()),
            }
        }
        let added: std::collections::HashSet<ClientId> = wanted
            .keys()
            .filter(|id| !current.contains_key(*id))
            .cloned()
            .collect();
        to_start.extend(
            wanted
                .iter()
                .filter(|(id, _)| added.contains(*id))
                .map(|(_, config)| config.clone()),
        );
        tracing::info!(
            n_stop = to_stop.len(),
            n_start = to_start.len(),
            n_unchanged = report.unchanged.len(),
            "applying a new configuration"
        );
        let running = &running;
        let stops = to_stop.iter().map(|id| async move {
            if running.contains(id) {
                if let Err(error) = self.client_shutdown(id).await {
                    tracing::warn!(client = %id, error = %error_chain(&error), "a client did not stop cleanly on reload");
                }
            }
            lock(&inner.desired).remove(id);
        });
        futures::future::join_all(stops).await;
        for id in &report.removed {
            lock(&inner.status).remove(id);
            inner.stats.forget(id);
            inner.publish(id, ClientState::Stopped);
        }
        let starts = to_start.into_iter().map(|config| async move {
            let id = config.validate();
            (id, self.register_client(config).await)
        });
        for (id, started) in futures::future::join_all(starts).await {
            let Ok(id) = id else { continue };
            match started {
                Ok(_) if added.contains(&id) => report.added.push(id),
                Ok(_) => report.restarted.push(id),
                Err(error) => {
                    // The caller gets the error in the report and says so once.
                    tracing::debug!(client = %id, error = %error_chain(&error), "a client failed to start on reload");
                    report.failed.push((id, error));
                }
            }
        }
        report.added.sort();
        report.restarted.sort();
        report.failed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(report)
    }

    /// The configuration the host runs: the initial one as changed by
    /// [`McpHost::register_client`], [`McpHost::client_shutdown`] and [`McpHost::apply`].
    pub fn configs(&self) -> Vec<ClientConfig> {
        lock(&self.inner.desired).values().cloned().collect()
    }

    /// Stops every client, in parallel. Returns one report per client that was running.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::client_shutdown`].
    pub async fn shutdown_all_clients(&self) -> Vec<Result<ExitReport, Error>> {
        let mut ids: Vec<ClientId> = lock(&self.inner.clients).keys().cloned().collect();
        ids.sort();
        futures::future::join_all(ids.iter().map(|id| self.client_shutdown(id))).await
    }

    /// Stops everything, bounded by [`HostOptions::shutdown_deadline`]: all clients in parallel,
    /// then the host's tasks; whatever is left at the deadline is killed.
    ///
    /// # Cancel safety
    ///
    /// The root token is cancelled first, so even if this future is dropped, every client winds
    /// down by itself.
    pub async fn shutdown(&self) -> ShutdownReport {
        let inner = &self.inner;
        let started = Instant::now();
        let deadline = inner.options.shutdown_deadline;
        let mut report = ShutdownReport {
            exits: Vec::new(),
            failed: Vec::new(),
            killed: Vec::new(),
        };
        let mut ids: Vec<ClientId> = lock(&inner.clients).keys().cloned().collect();
        ids.sort();
        let mut stops: FuturesUnordered<_> = ids
            .iter()
            .map(|id| async move { (id, self.client_shutdown(id).await) })
            .collect();
        let mut stopped = std::collections::HashSet::new();
        let until = tokio::time::Instant::now() + deadline;
        // Each outcome is kept as it comes, so that the deadline loses none of those in hand.
        while let Ok(Some((id, outcome))) = tokio::time::timeout_at(until, stops.next()).await {
            stopped.insert(id);
            match outcome {
                Ok(exit) => report.exits.push(exit),
                Err(error) => report.failed.push((id.clone(), error)),
            }
        }
        drop(stops);
        for id in ids.iter().filter(|id| !stopped.contains(id)) {
            report.failed.push((
                id.clone(),
                Error::StopTimeout {
                    client: id.to_string(),
                    timeout: deadline,
                },
            ));
        }
        if report
            .failed
            .iter()
            .any(|(_, error)| matches!(error, Error::StopTimeout { .. }))
        {
            tracing::warn!("clients did not stop before the shutdown deadline");
        }
        report.failed.sort_by(|a, b| a.0.cmp(&b.0));
        inner.root.cancel();
        inner.tracker.close();
        let remaining = deadline.saturating_sub(started.elapsed());
        if tokio::time::timeout(remaining, inner.tracker.wait())
            .await
            .is_err()
        {
            report.killed = inner.kill_all();
            tracing::warn!(killed = ?report.killed, "killed what was left at the shutdown deadline");
            let _ = tokio::time::timeout(Duration::from_secs(5), inner.tracker.wait()).await;
        }
        tracing::info!(elapsed_ms = millis(started.elapsed()), "host shut down");
        report
    }

    /// Cancels every client and sends SIGKILL to every server's process group at once, without
    /// waiting: the emergency stop (a second Ctrl-C). Returns the clients that were killed.
    pub fn kill_all(&self) -> Vec<ClientId> {
        self.inner.root.cancel();
        self.inner.kill_all()
    }

    /// The ids of registered clients (starting, ready or restarting), sorted.
    pub fn clients(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = lock(&self.inner.clients).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The cancellation token of a registered client; cancelling it stops the client.
    pub fn client_token(&self, id: &ClientId) -> Option<CancellationToken> {
        lock(&self.inner.clients)
            .get(id)
            .map(|handle| handle.token.clone())
    }

    /// The ready session of a client.
    pub fn session(&self, id: &ClientId) -> Option<ClientSession> {
        self.inner.client_manager.get(id)
    }

    /// The client manager (its `active_clients` are the clients that are ready).
    pub fn client_manager(&self) -> &ClientManager {
        &self.inner.client_manager
    }

    /// A status snapshot of every client the host has tried to start, sorted by id.
    pub fn status(&self) -> Vec<ClientStatus> {
        let inner = &self.inner;
        let records = lock(&inner.status).clone();
        records
            .into_iter()
            .map(|(id, record)| ClientStatus {
                n_tools: inner.tools.count(&id),
                n_prompts: inner.prompts.count(&id),
                n_resources: inner.resources.count(&id),
                state: record.state,
                required: record.required,
                protocol_version: record.protocol_version,
                server_info: record.server_info,
                pid: record.pid,
                startup_ms: record.startup.map(millis),
                uptime_ms: record
                    .ready_at
                    .filter(|_| record.state == ClientState::Ready)
                    .map(|at| millis(at.elapsed())),
                restarts: record.restarts,
                last_error: record.last_error,
                exit: record.exit,
                stderr_tail: record.stderr_tail,
                id,
            })
            .collect()
    }

    /// `value` with every secret the host knows masked (strings inside it, keys included):
    /// for anything built from servers' or clients' data that goes to a log.
    pub fn mask_json(&self, value: Value) -> Value {
        self.inner.security.mask_value(value)
    }

    /// Where a call of tool `name` would go for `scope`: its client and the tool's own name.
    pub fn tool_route(&self, name: &str, scope: &AgentScope) -> Option<(ClientId, String)> {
        self.inner.tools.route(name, scope)
    }

    /// Every tool's call figures (in flight, outcomes, latency histogram), sorted by client and
    /// tool. Only tools a server lists have entries.
    pub fn call_stats(&self) -> Vec<ToolStats> {
        self.inner.stats.tools()
    }

    /// The median and 99th percentile latency of a client's recent calls.
    pub fn recent_latency(&self, id: &ClientId) -> RecentLatency {
        self.inner.stats.recent(id)
    }

    /// The catalogue's version, which changes whenever the tools, prompts or resources the host
    /// exposes change (a client registered, refreshed after `list_changed`, stopped, crashed or
    /// restarted). Changes are coalesced: a watcher sees the latest version, and an
    /// [`McpHost::apply`] is one change.
    pub fn subscribe_catalogue(&self) -> watch::Receiver<u64> {
        self.inner.catalogue.subscribe()
    }

    /// A stream of state changes of every client.
    pub fn subscribe_status(&self) -> broadcast::Receiver<StatusEvent> {
        self.inner.status_events.subscribe()
    }

    /// A stream of the log messages and resource updates the servers send.
    ///
    /// A receiver that falls more than 1024 notifications behind loses the oldest ones
    /// (`RecvError::Lagged`).
    pub fn subscribe_notifications(&self) -> broadcast::Receiver<ServerNotification> {
        self.inner.notifications.subscribe()
    }

    /// Every tool the agent may see.
    pub fn list_tools(&self, scope: &AgentScope) -> Vec<Registered<Tool>> {
        self.inner.tools.list(scope)
    }

    /// Every prompt the agent may see.
    pub fn list_prompts(&self, scope: &AgentScope) -> Vec<Registered<Prompt>> {
        self.inner.prompts.list(scope)
    }

    /// Every resource the agent may see, with its client.
    pub fn list_resources(&self, scope: &AgentScope) -> Vec<(ClientId, Resource)> {
        self.inner.resources.list(scope)
    }

    /// Every resource template the agent may see, with its client.
    pub fn list_resource_templates(&self, scope: &AgentScope) -> Vec<(ClientId, ResourceTemplate)> {
        self.inner.resources.list_templates(scope)
    }

    /// Calls a tool by its namespaced name.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the call at the server (`notifications/cancelled`).
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        scope: &AgentScope,
    ) -> Result<CallToolResult, Error> {
        self.call_tool_with(name, arguments, scope, &RequestOptions::default())
            .await
    }

    /// Calls a tool by its namespaced name with request options (timeout, progress).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn call_tool_with(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        scope: &AgentScope,
        options: &RequestOptions,
    ) -> Result<CallToolResult, Error> {
        let (client_id, tool, session, schema) = self.inner.route_tool(name, scope)?;
        let record = self.inner.stats.start(&client_id, &tool);
        let result = session.call_tool(&tool, arguments, options).await;
        record.finish(outcome_of(&result, CallToolResult::is_tool_error));
        let result = result.map_err(self.inner.call_failed(&client_id))?;
        if let Some(schema) = schema.filter(|_| self.inner.options.check_output_schema) {
            self.inner.output_schemas.check(
                client_id.as_str(),
                name,
                &schema,
                result.structured_content.as_ref(),
                result.is_tool_error(),
            )?;
        }
        Ok(result)
    }

    /// Calls a tool by its namespaced name and returns its result undecoded, for forwarding it
    /// as it came (the gateway).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn call_tool_raw(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        scope: &AgentScope,
        options: &RequestOptions,
    ) -> Result<Box<serde_json::value::RawValue>, Error> {
        let (client_id, tool, session, schema) = self.inner.route_tool(name, scope)?;
        let record = self.inner.stats.start(&client_id, &tool);
        let result = session.call_tool_raw(&tool, arguments, options).await;
        record.finish(outcome_of(&result, |raw| raw_is_tool_error(raw)));
        let result = result.map_err(self.inner.call_failed(&client_id))?;
        if let Some(schema) = schema.filter(|_| self.inner.options.check_output_schema) {
            self.inner
                .output_schemas
                .check_raw(client_id.as_str(), name, &schema, &result)?;
        }
        Ok(result)
    }

    /// Renders a prompt by its namespaced name.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        scope: &AgentScope,
    ) -> Result<GetPromptResult, Error> {
        let (client_id, prompt) =
            self.inner
                .prompts
                .route(name, scope)
                .ok_or_else(|| Error::UnknownPrompt {
                    name: name.to_owned(),
                })?;
        let client = self.inner.ready_session(&client_id)?;
        client
            .session
            .get_prompt(&prompt, arguments, &RequestOptions::default())
            .await
            .map_err(self.inner.call_failed(&client_id))
    }

    /// Reads a resource, routed to the client that listed it (or whose template matches it).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn read_resource(
        &self,
        uri: &str,
        scope: &AgentScope,
    ) -> Result<ReadResourceResult, Error> {
        let client_id = self.inner.route_resource(uri, scope)?;
        let client = self.inner.ready_session(&client_id)?;
        client
            .session
            .read_resource(uri, &RequestOptions::default())
            .await
            .map_err(self.inner.call_failed(&client_id))
    }

    /// Forwards `completion/complete` to the client that owns the referenced prompt or resource
    /// template, with the prompt's original name; `params` are the request's other parameters
    /// (`argument`, `context`), passed on as they are. Returns the result undecoded.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn complete_raw(
        &self,
        reference: &CompletionRef,
        mut params: Map<String, Value>,
        scope: &AgentScope,
    ) -> Result<Box<RawValue>, Error> {
        let inner = &self.inner;
        let (client_id, downstream_ref) = match reference {
            CompletionRef::Prompt { name } => {
                let (client_id, original) =
                    inner
                        .prompts
                        .route(name, scope)
                        .ok_or_else(|| Error::UnknownPrompt {
                            name: name.to_owned(),
                        })?;
                (
                    client_id,
                    serde_json::json!({ "type": "ref/prompt", "name": original }),
                )
            }
            CompletionRef::ResourceTemplate { uri_template } => {
                let client_id = inner
                    .resources
                    .route_template(uri_template, scope)
                    .ok_or_else(|| Error::UnknownResourceTemplate {
                        uri_template: uri_template.to_owned(),
                    })?;
                (
                    client_id,
                    serde_json::json!({ "type": "ref/resource", "uri": uri_template }),
                )
            }
        };
        params.insert("ref".to_owned(), downstream_ref);
        let client = inner.ready_session(&client_id)?;
        client
            .session
            .request_raw(
                "completion/complete",
                Some(Value::Object(params)),
                &RequestOptions::default(),
            )
            .await
            .map_err(self.inner.call_failed(&client_id))
    }

    /// Subscribes to updates of the resource `uri`, at the client that serves it (routed as
    /// [`McpHost::read_resource`] does). Updates arrive through
    /// [`McpHost::subscribe_notifications`].
    ///
    /// Subscriptions are counted per resource: only the first is forwarded to the server, and
    /// [`McpHost::unsubscribe_resource`] forwards only the last unsubscription, so several
    /// subscribers (gateway sessions) do not undo each other's. A client that stops or restarts
    /// loses its subscriptions.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped while the subscription is being forwarded, it counts as made;
    /// undo it with [`McpHost::unsubscribe_resource`].
    pub async fn subscribe_resource(&self, uri: &str, scope: &AgentScope) -> Result<(), Error> {
        let inner = &self.inner;
        let client_id = inner.route_resource(uri, scope)?;
        let client = inner.ready_session(&client_id)?;
        let key = (client_id.clone(), uri.to_owned());
        let first = {
            let mut subscriptions = lock(&inner.subscriptions);
            let count = subscriptions.entry(key.clone()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if !first {
            return Ok(());
        }
        let forwarded = client
            .session
            .request::<Value>(
                "resources/subscribe",
                Some(serde_json::json!({ "uri": uri })),
                &RequestOptions::default(),
            )
            .await;
        if let Err(error) = forwarded {
            release_subscription(&mut lock(&inner.subscriptions), &key);
            return Err(self.inner.call_failed(&client_id)(error));
        }
        Ok(())
    }

    /// Undoes one [`McpHost::subscribe_resource`]; the last one is forwarded to the server (as
    /// is one for a resource the host does not know as subscribed).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`]; the subscription counts as undone.
    pub async fn unsubscribe_resource(&self, uri: &str, scope: &AgentScope) -> Result<(), Error> {
        let inner = &self.inner;
        let client_id = inner.route_resource(uri, scope)?;
        let client = inner.ready_session(&client_id)?;
        let key = (client_id.clone(), uri.to_owned());
        let last = release_subscription(&mut lock(&inner.subscriptions), &key);
        if !last {
            return Ok(());
        }
        client
            .session
            .request::<Value>(
                "resources/unsubscribe",
                Some(serde_json::json!({ "uri": uri })),
                &RequestOptions::default(),
            )
            .await
            .map(drop)
            .map_err(self.inner.call_failed(&client_id))
    }

    /// Asks every ready server that sends log messages to send them at `level` and above, all
    /// at once, each bounded by its call timeout. Returns the clients that failed, with why.
    ///
    /// The level is the servers' own: the last one set applies to every listener of
    /// [`McpHost::subscribe_notifications`].
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn set_logging_level(&self, level: LoggingLevel) -> Vec<(ClientId, Error)> {
        let clients: Vec<ClientSession> = self
            .clients()
            .iter()
            .filter_map(|id| self.inner.client_manager.get(id))
            .filter(|client| client.init.capabilities.logging.is_some())
            .collect();
        let requests = clients.iter().map(|client| async move {
            let outcome = client.session.set_logging_level(level).await;
            (client.id.clone(), outcome)
        });
        futures::future::join_all(requests)
            .await
            .into_iter()
            .filter_map(|(id, outcome)| {
                outcome
                    .err()
                    .map(|error| (id.clone(), self.inner.call_failed(&id)(error)))
            })
            .collect()
    }

    /// Replaces a client's roots at runtime and tells its server
    /// (`notifications/roots/list_changed`).
    pub fn set_roots(&self, id: &ClientId, roots: &[String]) -> Result<(), Error> {
        self.inner
            .roots
            .set_roots(id, roots)
            .map_err(|source| Error::Config { source })?;
        if let Some(client) = self.inner.client_manager.get(id) {
            client
                .session
                .notify_roots_changed()
                .map_err(self.inner.call_failed(id))?;
        }
        Ok(())
    }
}

impl Drop for McpHost {
    fn drop(&mut self) {
        if !self.inner.root.is_cancelled() || !lock(&self.inner.killers).is_empty() {
            self.inner.root.cancel();
            let killed = self.inner.kill_all();
            if !killed.is_empty() {
                tracing::warn!(killed = ?killed, "host dropped without shutdown; killed its servers");
            }
        }
    }
}

impl McpHost {
    /// The tool exposed as `name`, if the agent may use it.
    pub(crate) fn resolve_tool(&self, name: &str, scope: &AgentScope) -> Option<Registered<Tool>> {
        self.inner.tools.resolve(name, scope)
    }

    /// The ready session of a client, or [`Error::ClientUnavailable`].
    pub(crate) fn ready_client(&self, id: &ClientId) -> Result<ClientSession, Error> {
        self.inner.ready_session(id)
    }

    /// A session error of a request to `client`, wrapped and masked.
    pub(crate) fn call_error(&self, client: &ClientId, error: mcp_session::Error) -> Error {
        self.inner.call_failed(client)(error)
    }

    /// The tasks the host started.
    pub(crate) fn tasks(&self) -> &TaskRegistry {
        &self.inner.tasks
    }

    /// Checks a raw tool result of `tool` (exposed name) against its output schema, if it
    /// declares one and the check is on.
    pub(crate) fn check_output(
        &self,
        client: &ClientId,
        tool: &str,
        raw: &RawValue,
    ) -> Result<(), Error> {
        if !self.inner.options.check_output_schema {
            return Ok(());
        }
        let schema = self
            .inner
            .tools
            .route_tool(tool, &AgentScope::all())
            .and_then(|(_, _, schema)| schema);
        match schema {
            Some(schema) => {
                self.inner
                    .output_schemas
                    .check_raw(client.as_str(), tool, &schema, raw)
            }
            None => Ok(()),
        }
    }
}

impl Inner {
    /// Cancels the tasks of `id` that have not ended (at most [`TASK_CANCEL_BOUND`] for all)
    /// and forgets every task of it.
    async fn cancel_tasks(&self, id: &ClientId) {
        let running = self.tasks.forget_client(id);
        let Some(client) = self.client_manager.get(id) else {
            return;
        };
        if running.is_empty() || !client.init.capabilities.task_cancel() {
            return;
        }
        let cancels = running
            .iter()
            .map(|task_id| client.session.cancel_task(task_id));
        match tokio::time::timeout(TASK_CANCEL_BOUND, futures::future::join_all(cancels)).await {
            Ok(outcomes) => {
                let n_failed = outcomes.iter().filter(|outcome| outcome.is_err()).count();
                tracing::debug!(
                    n_tasks = running.len(),
                    n_failed,
                    "cancelled the client's tasks"
                );
            }
            Err(_) => {
                tracing::warn!(
                    n_tasks = running.len(),
                    "the client's tasks were not all cancelled in time"
                )
            }
        }
    }

    /// Waits until a stopped registration of `id`, if any, has ended; kills its process group
    /// when it takes longer than its close may take.
    async fn wait_retired(&self, id: &ClientId) -> Result<(), Error> {
        let retiring = {
            let mut retiring = lock(&self.retiring);
            retiring.retain(|_, old| !old.ended.is_cancelled());
            retiring.get(id).map(|old| (old.ended.clone(), old.bound))
        };
        let Some((ended, bound)) = retiring else {
            return Ok(());
        };
        tracing::debug!(client = %id, "waiting for the previous registration to end");
        if tokio::time::timeout(bound, ended.cancelled())
            .await
            .is_err()
        {
            self.kill(id);
            if tokio::time::timeout(Duration::from_secs(5), ended.cancelled())
                .await
                .is_err()
            {
                return Err(Error::StopTimeout {
                    client: id.to_string(),
                    timeout: bound + Duration::from_secs(5),
                });
            }
        }
        lock(&self.retiring).remove(id);
        Ok(())
    }

    /// Where a call to tool `name` goes: the client, the tool's original name, the client's
    /// ready session, and the tool's output schema if it declares one.
    fn route_tool(
        &self,
        name: &str,
        scope: &AgentScope,
    ) -> Result<(ClientId, String, mcp_session::Session, Option<Value>), Error> {
        let (client_id, tool, schema) =
            self.tools
                .route_tool(name, scope)
                .ok_or_else(|| Error::UnknownTool {
                    name: name.to_owned(),
                })?;
        let session = self.ready_session(&client_id)?.session;
        Ok((client_id, tool, session, schema))
    }

    fn route_resource(&self, uri: &str, scope: &AgentScope) -> Result<ClientId, Error> {
        self.resources
            .route(uri, scope)
            .ok_or_else(|| Error::UnknownResource {
                uri: uri.to_owned(),
            })
    }

    fn ready_session(&self, id: &ClientId) -> Result<ClientSession, Error> {
        self.client_manager
            .get(id)
            .ok_or_else(|| Error::ClientUnavailable {
                client: id.to_string(),
            })
    }

    fn unregister_components(&self, id: &ClientId) {
        // The seed's order: tools, prompts, resources (which are also the routes).
        let n_removed = self.tools.unregister_client(id)
            + self.prompts.unregister_client(id)
            + self.resources.unregister_client(id);
        // Its server forgets its subscriptions when it goes; so does the host.
        lock(&self.subscriptions).retain(|(client, _), _| client != id);
        if n_removed > 0 {
            self.catalogue_changed();
        }
    }

    /// Publishes a change of the catalogue (at the end of the open batch, if any).
    fn catalogue_changed(&self) {
        {
            let mut batch = lock(&self.catalogue_batch);
            if batch.depth > 0 {
                batch.dirty = true;
                return;
            }
        }
        self.catalogue.send_modify(|version| *version += 1);
    }

    /// Opens a batch of catalogue changes, published once when the guard is dropped.
    fn batch(&self) -> BatchGuard<'_> {
        lock(&self.catalogue_batch).depth += 1;
        BatchGuard { inner: self }
    }

    /// Passes a server's notification on to the listeners, if any.
    fn relay(&self, id: &ClientId, kind: NotificationKind) {
        let _ = self.notifications.send(ServerNotification {
            client: id.clone(),
            kind,
        });
    }

    fn publish(&self, id: &ClientId, state: ClientState) {
        let _ = self.status_events.send(StatusEvent {
            client: id.clone(),
            state,
        });
    }

    fn set_state(&self, id: &ClientId, state: ClientState) {
        if let Some(record) = lock(&self.status).get_mut(id) {
            record.state = state;
        }
        self.publish(id, state);
    }

    fn update(&self, id: &ClientId, change: impl FnOnce(&mut StatusRecord)) {
        let state = {
            let mut status = lock(&self.status);
            // A client that is no longer configured (removed by `apply`) has no record.
            let Some(record) = status.get_mut(id) else {
                return;
            };
            change(record);
            record.state
        };
        self.publish(id, state);
    }

    fn kill(&self, id: &ClientId) -> bool {
        lock(&self.killers)
            .remove(id)
            .is_some_and(|killer| killer.kill())
    }

    fn kill_all(&self) -> Vec<ClientId> {
        let killers: Vec<(ClientId, GroupKiller)> = lock(&self.killers).drain().collect();
        killers
            .into_iter()
            .filter(|(_, killer)| killer.kill())
            .map(|(id, _)| id)
            .collect()
    }
}

/// Runs one client for the host: starts it through the lifecycle task, registers its
/// components, refreshes them on `list_changed`, and restarts it if its policy says so.
async fn supervise(
    inner: Arc<Inner>,
    id: ClientId,
    config: ClientConfig,
    token: CancellationToken,
    status: TaskStatus<()>,
) -> Result<ClientExit, mcp_host_foundation::Error> {
    let mut status = Some(status);
    // Restarts in a row; it starts over after a run that stayed ready long enough.
    let mut attempt: u32 = 0;
    let mut restarts: u32 = 0;
    loop {
        // When the current run became ready, if it did.
        let mut ready_since: Option<Instant> = None;
        let started_at = Instant::now();
        inner.update(&id, |record| {
            record.state = ClientState::Starting;
            record.started_at = Some(started_at);
        });
        let lifecycle_token = token.child_token();
        let manager = inner.client_manager.clone();
        let security = inner.security.clone();
        let lifecycle_config = config.clone();
        let started = start_task(&inner.tracker, id.as_str(), move |lifecycle_status| {
            let lifecycle = async move {
                manager
                    .manage_client_lifecycle(
                        lifecycle_config,
                        &security,
                        lifecycle_token,
                        lifecycle_status,
                    )
                    .await
            };
            lifecycle.in_current_span()
        })
        .await;

        let exit = match started {
            Err(error) => {
                let text = inner.security.mask(&error_chain(&error)).into_owned();
                let tail = stderr_tail_of(&error);
                inner.update(&id, |record| {
                    record.state = ClientState::Failed;
                    record.last_error = Some(text);
                    record.pid = None;
                    if let Some(tail) = tail {
                        record.stderr_tail = inner.security.mask(&tail).into_owned();
                    }
                });
                if status.is_some() || token.is_cancelled() {
                    // Not started yet: the error goes back to the starter through the status.
                    return Err(error);
                }
                None
            }
            Ok((client, mut lifecycle)) => {
                if let Some(killer) = &client.killer {
                    lock(&inner.killers).insert(id.clone(), killer.clone());
                }
                register_components(&inner, &id, &config, &client).await;
                let init = &client.init;
                inner.update(&id, |record| {
                    record.state = ClientState::Ready;
                    record.protocol_version = Some(init.protocol_version.clone());
                    record.server_info = Some(init.server_info.clone());
                    record.pid = client.pid;
                    record.startup = Some(started_at.elapsed());
                    record.ready_at = Some(Instant::now());
                    record.last_error = None;
                });
                if let Some(status) = status.take() {
                    if status.started(()).is_err() {
                        token.cancel();
                    }
                }
                ready_since = Some(Instant::now());
                let mut events = client.session.take_events();
                let mut unregistered = false;
                let mut relists = Relists::default();
                let mut listing = FuturesUnordered::new();
                let joined = loop {
                    tokio::select! {
                        biased;
                        joined = &mut lifecycle => break joined,
                        () = token.cancelled(), if !unregistered => {
                            // Components go before the process does, and a re-list in flight
                            // must not bring them back.
                            listing.clear();
                            inner.unregister_components(&id);
                            unregistered = true;
                        }
                        // Before the events, so that a flood of them cannot hold a re-list up.
                        Some(kind) = listing.next(), if !listing.is_empty() => {
                            if relists.done(kind) && !unregistered {
                                listing.push(relist(&inner, &id, &config, &client, kind));
                            }
                        }
                        event = next_event(&mut events) => match event {
                            Some(event) => {
                                // What is queued is taken at once (up to a bound, so that the
                                // token and the process are still watched): `list_changed`
                                // events queued together make one re-list.
                                let mut next = Some(event);
                                let mut n_taken = 0;
                                while let Some(event) = next {
                                    match ListKind::of(&event) {
                                        Some(_) if unregistered => {}
                                        Some(kind) => {
                                            if relists.want(kind) {
                                                listing.push(relist(&inner, &id, &config, &client, kind));
                                            }
                                        }
                                        None => relay_event(&inner, &id, event),
                                    }
                                    n_taken += 1;
                                    next = events
                                        .as_mut()
                                        .filter(|_| n_taken < EVENT_BATCH)
                                        .and_then(|events| events.try_recv().ok());
                                }
                            }
                            None => events = None,
                        },
                    }
                };
                drop(listing);
                lock(&inner.killers).remove(&id);
                inner.unregister_components(&id);
                // Its tasks ended with its server.
                inner.tasks.forget_client(&id);
                match joined {
                    Ok(Ok(exit)) => Some(exit),
                    Ok(Err(error)) => return Err(error),
                    Err(_) => {
                        inner.update(&id, |record| {
                            record.state = ClientState::Failed;
                            record.last_error = Some("the client task panicked".to_owned());
                        });
                        return Err(mcp_host_foundation::Error::TaskEnded {
                            client: id.to_string(),
                        });
                    }
                }
            }
        };

        if let Some(exit) = exit {
            let report = &exit.report;
            let cancelled = matches!(exit.cause, ExitCause::Cancelled);
            let error = match &exit.cause {
                ExitCause::ServerExited { error: Some(error) } => {
                    Some(inner.security.mask(&error_chain(error)).into_owned())
                }
                _ => None,
            };
            inner.update(&id, |record| {
                record.state = if cancelled {
                    ClientState::Stopped
                } else {
                    ClientState::Exited
                };
                record.pid = None;
                record.exit = Some(report.to_string());
                record.stderr_tail = report.stderr_tail.clone();
                if error.is_some() {
                    record.last_error = error;
                }
            });
            if cancelled || token.is_cancelled() || !config.restart.is_enabled() {
                return Ok(exit);
            }
            let healthy = ready_since
                .is_some_and(|since| since.elapsed() >= inner.options.restart_reset_after);
            if healthy && attempt > 0 {
                tracing::info!(
                    restarts_in_a_row = attempt,
                    "client was ready long enough: its restart count starts over"
                );
                attempt = 0;
            }
            if attempt >= config.restart.max_restarts {
                tracing::error!(
                    restarts = attempt,
                    "client exited and will not be restarted again"
                );
                return Ok(exit);
            }
        } else if !config.restart.is_enabled() || attempt >= config.restart.max_restarts {
            return Err(mcp_host_foundation::Error::TaskEnded {
                client: id.to_string(),
            });
        }

        let backoff = config.restart.backoff(attempt);
        attempt += 1;
        restarts = restarts.saturating_add(1);
        inner.update(&id, |record| {
            record.state = ClientState::Restarting;
            record.restarts = restarts;
        });
        tracing::warn!(attempt, backoff_ms = millis(backoff), "restarting client");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = token.cancelled() => {
                return Err(mcp_host_foundation::Error::Cancelled { client: id.to_string() });
            }
        }
    }
}

async fn next_event(events: &mut Option<tokio::sync::mpsc::Receiver<Event>>) -> Option<Event> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn stderr_tail_of(error: &mcp_host_foundation::Error) -> Option<String> {
    match error {
        mcp_host_foundation::Error::StartupTimeout { stderr_tail, .. } => Some(stderr_tail.clone()),
        mcp_host_foundation::Error::Session { source, .. } => {
            source.stderr_tail().map(str::to_owned)
        }
        _ => None,
    }
}

/// Lists and registers a client's components, as its capabilities and configuration allow.
async fn register_components(
    inner: &Inner,
    id: &ClientId,
    config: &ClientConfig,
    client: &ClientSession,
) {
    let capabilities = &client.init.capabilities;
    if capabilities.tools.is_some() {
        relist(inner, id, config, client, ListKind::Tools).await;
    }
    if capabilities.prompts.is_some() {
        relist(inner, id, config, client, ListKind::Prompts).await;
    }
    if capabilities.resources.is_some() {
        relist(inner, id, config, client, ListKind::Resources).await;
    }
}

/// What a `list_changed` event says to list again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    fn of(event: &Event) -> Option<ListKind> {
        match event {
            Event::ToolsListChanged => Some(ListKind::Tools),
            Event::PromptsListChanged => Some(ListKind::Prompts),
            Event::ResourcesListChanged => Some(ListKind::Resources),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Coalesces re-lists: of each kind, at most one in flight and one more pending (asked for while
/// one was in flight, whose answer may predate the change), however many `list_changed` events
/// a server sends.
#[derive(Debug, Default)]
struct Relists {
    in_flight: [bool; 3],
    pending: [bool; 3],
}

impl Relists {
    /// A `list_changed` of `kind` came; returns whether to start a re-list now.
    fn want(&mut self, kind: ListKind) -> bool {
        let idx = kind.index();
        if self.in_flight[idx] {
            self.pending[idx] = true;
            false
        } else {
            self.in_flight[idx] = true;
            true
        }
    }

    /// A re-list of `kind` ended; returns whether to start the pending one now.
    fn done(&mut self, kind: ListKind) -> bool {
        let idx = kind.index();
        let again = std::mem::take(&mut self.pending[idx]);
        self.in_flight[idx] = again;
        again
    }
}

/// Passes on a server's notification that changes nothing the host keeps (log messages and
/// resource updates go to the listeners).
fn relay_event(inner: &Inner, id: &ClientId, event: Event) {
    match event {
        Event::Log(message) => {
            let data = message.data.to_string();
            let data = inner.security.mask(&data);
            tracing::debug!(level = ?message.level, logger = ?message.logger, data = %data, "server log message");
            inner.relay(id, NotificationKind::Log(message));
        }
        Event::ResourceUpdated { uri } => {
            inner.relay(id, NotificationKind::ResourceUpdated { uri });
        }
        Event::TaskStatus(task) => {
            // Only tasks the host started are relayed, under the host's id.
            if let Some(task) = inner.tasks.update(id, &task) {
                inner.relay(id, NotificationKind::TaskStatus(task));
            }
        }
        Event::ElicitationComplete { elicitation_id } => {
            inner.relay(id, NotificationKind::ElicitationComplete { elicitation_id });
        }
        _ => {}
    }
}

/// Lists one kind of a client's components again and replaces its registrations; returns the
/// kind.
async fn relist(
    inner: &Inner,
    id: &ClientId,
    config: &ClientConfig,
    client: &ClientSession,
    kind: ListKind,
) -> ListKind {
    let session = &client.session;
    let excluded = |name: &str| config.exclude.iter().any(|excluded| excluded == name);
    let outcome = match kind {
        ListKind::Tools => session.list_all_tools().await.map(|tools| {
            let tools: Vec<Tool> = tools
                .into_iter()
                .filter(|tool| config.tools.allows(&tool.name) && !excluded(&tool.name))
                .collect();
            let n_tools = inner.tools.register_client(id, &Naming::of(config), tools);
            tracing::debug!(n_tools, "tools registered");
        }),
        ListKind::Prompts => session.list_all_prompts().await.map(|prompts| {
            let prompts: Vec<Prompt> = prompts
                .into_iter()
                .filter(|prompt| !excluded(&prompt.name))
                .collect();
            inner
                .prompts
                .register_client(id, &Naming::of(config), prompts);
        }),
        ListKind::Resources => {
            let resources = session.list_all_resources().await;
            let templates = session.list_all_resource_templates().await;
            match (resources, templates) {
                (Ok(resources), templates) => {
                    let resources = resources
                        .into_iter()
                        .filter(|resource| !excluded(&resource.uri))
                        .collect();
                    // Templates are optional; a server without them answers an error.
                    let templates = templates.unwrap_or_default();
                    inner.resources.register_client(id, resources, templates);
                    Ok(())
                }
                (Err(error), _) => Err(error),
            }
        }
    };
    match outcome {
        Ok(()) => {
            inner.catalogue_changed();
            // Tell status subscribers that the client's counts changed.
            let state = lock(&inner.status).get(id).map(|record| record.state);
            if let Some(state) = state {
                inner.publish(id, state);
            }
        }
        Err(error) => {
            let text = inner.security.mask(&error_chain(&error)).into_owned();
            tracing::warn!(error = %text, "failed to refresh the client's components");
            inner.update(id, |record| record.last_error = Some(text));
        }
    }
    kind
}

/// Whether a raw `tools/call` result says `isError: true` (its other fields are skipped).
pub fn raw_is_tool_error(raw: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    serde_json::from_str::<Flag>(raw.get()).is_ok_and(|flag| flag.is_error)
}

/// Forgets one subscription of `key`; returns whether it was the last one (or an unknown one).
fn release_subscription(
    subscriptions: &mut HashMap<(ClientId, String), usize>,
    key: &(ClientId, String),
) -> bool {
    match subscriptions.get_mut(key) {
        Some(count) if *count > 1 => {
            *count -= 1;
            false
        }
        Some(_) => {
            subscriptions.remove(key);
            true
        }
        None => true,
    }
}

/// Wraps a session error from a request to `client`.
impl Inner {
    /// Wraps a session error from a request to `client`, with every secret masked in its
    /// message and data (the one masking point of errors that leave the host).
    fn call_failed<'a>(
        &'a self,
        client: &'a ClientId,
    ) -> impl FnOnce(mcp_session::Error) -> Error + 'a {
        move |source| Error::Call {
            client: client.to_string(),
            source: Box::new(self.security.mask_session_error(source)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
