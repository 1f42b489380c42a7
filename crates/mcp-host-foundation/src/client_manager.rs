//! Running one client from spawn to reaped exit: the seed's `ClientManager.manage_client_lifecycle`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mcp_http::HttpConnection;
use mcp_session::protocol::{Implementation, InitializeResult};
use mcp_session::{Connection, Session, SessionOptions};
use mcp_transport::{ChildProcess, ExitReport, GroupKiller, Transport, TransportOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{
    AuthRegistry, ClientConfig, ClientId, Error, RootManager, SecurityManager, TaskStatus,
};

/// A client whose handshake succeeded: what [`TaskStatus::started`] hands back to the starter.
#[derive(Clone, Debug)]
pub struct ClientSession {
    /// The client.
    pub id: ClientId,
    /// The session with its server.
    pub session: Session,
    /// The server's answer to `initialize` (shared: clones of the session are cheap).
    pub init: Arc<InitializeResult>,
    /// The server's process id (also its process group id); `None` for a remote server.
    pub pid: Option<u32>,
    /// Kills the server's process group at once, for emergencies; `None` for a remote server
    /// (nothing of ours runs there).
    pub killer: Option<GroupKiller>,
    /// When the handshake finished.
    pub ready_at: Instant,
}

/// Why a client stopped.
#[derive(Debug)]
pub enum ExitCause {
    /// The host cancelled the client's token (or nobody waited for it any more).
    Cancelled,
    /// The server went away by itself; the error says how, when there was one.
    ServerExited {
        /// The error that ended the session; `None` if the server closed its output cleanly.
        error: Option<mcp_session::Error>,
    },
}

/// How a client's lifecycle ended: why, and how its process ended.
#[derive(Debug)]
pub struct ClientExit {
    /// The client.
    pub client: ClientId,
    /// Why it stopped.
    pub cause: ExitCause,
    /// How its process ended, or its remote connection was closed (stderr tail masked).
    pub report: ExitReport,
}

/// Runs clients and keeps the map of those that are ready (`active_clients`).
///
/// Cheap to clone: clones share the map.
#[derive(Clone)]
pub struct ClientManager {
    active_clients: Arc<Mutex<HashMap<ClientId, ClientSession>>>,
    tracker: TaskTracker,
    roots: RootManager,
    client_info: Implementation,
    client_requests: Option<Arc<dyn mcp_session::ClientRequestHandler>>,
    auth: AuthRegistry,
}

impl fmt::Debug for ClientManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientManager")
            .field("active_clients", &self.active_clients())
            .finish_non_exhaustive()
    }
}

impl ClientManager {
    /// A manager whose process helper tasks run on `tracker` and whose clients get their roots
    /// from `roots`.
    pub fn new(tracker: TaskTracker, roots: RootManager) -> ClientManager {
        ClientManager {
            active_clients: Arc::new(Mutex::new(HashMap::new())),
            tracker,
            roots,
            client_info: Implementation::new("mcp-host", env!("CARGO_PKG_VERSION")),
            client_requests: None,
            auth: AuthRegistry::default(),
        }
    }

    /// The same manager, whose remote clients keep their OAuth tokens in `auth` (by default the
    /// user's token store, [`mcp_auth::TokenStore::user`]).
    pub fn with_auth(mut self, auth: AuthRegistry) -> ClientManager {
        self.auth = auth;
        self
    }

    /// The OAuth authorizers of the remote clients.
    pub fn auth(&self) -> &AuthRegistry {
        &self.auth
    }

    /// The same manager, whose clients answer their servers' sampling and elicitation requests
    /// (and declare those capabilities) through `handler`.
    pub fn with_client_requests(
        mut self,
        handler: Arc<dyn mcp_session::ClientRequestHandler>,
    ) -> ClientManager {
        self.client_requests = Some(handler);
        self
    }

    /// The ids of the clients that are ready, sorted.
    pub fn active_clients(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = lock(&self.active_clients).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The session of a ready client.
    pub fn get(&self, id: &ClientId) -> Option<ClientSession> {
        lock(&self.active_clients).get(id).cloned()
    }

    /// Whether a client is ready.
    pub fn contains(&self, id: &ClientId) -> bool {
        lock(&self.active_clients).contains_key(id)
    }

    /// Runs one client from start to finish.
    ///
    /// Spawn → handshake (bounded by the startup timeout) → insert into `active_clients` →
    /// `task_status.started(session)` → wait until `cancel` is cancelled or the server exits →
    /// remove from `active_clients` → graceful close with the configured grace → the exit is
    /// logged and returned.
    ///
    /// An error before readiness is returned (so [`start_task`](crate::start_task) hands it to
    /// the starter) after the process has been stopped. The entry in `active_clients` is removed
    /// on every path, including a panic.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future removes the client from `active_clients` and drops the process
    /// handle, which kills its process group.
    pub async fn manage_client_lifecycle(
        &self,
        config: ClientConfig,
        security: &SecurityManager,
        cancel: CancellationToken,
        task_status: TaskStatus<ClientSession>,
    ) -> Result<ClientExit, Error> {
        let id = config.validate()?;
        let span = tracing::info_span!("mcp_client", client = %id);
        self.run(id, config, security, cancel, task_status)
            .instrument(span)
            .await
    }

    async fn run(
        &self,
        id: ClientId,
        config: ClientConfig,
        security: &SecurityManager,
        cancel: CancellationToken,
        task_status: TaskStatus<ClientSession>,
    ) -> Result<ClientExit, Error> {
        let client = id.as_str().to_owned();
        let roots = if config.roots.is_empty() {
            None
        } else {
            self.roots.set_roots(&id, &config.roots)?;
            Some(self.roots.provider(&id))
        };
        let options = SessionOptions {
            handshake: config.protocol.handshake(),
            client_info: self.client_info.clone(),
            client_requests: self.client_requests.clone(),
            request_timeout: config.call_timeout(),
            roots,
            ..SessionOptions::default()
        };
        // Whatever the server prints passes through the mask before it is logged or kept.
        let redacting = security.clone();
        let transport_options = TransportOptions {
            redactor: Some(Arc::new(move |text: &str| {
                redacting.mask(text).into_owned()
            })),
            ..TransportOptions::default()
        };
        let (process, transport) = self.open(&id, &config, security, &transport_options)?;
        let grace = config.shutdown_grace();
        let (session, mut connection) = mcp_session::connect(transport, options);
        let mut connection_done = false;

        let handshake = tokio::time::timeout(config.startup_timeout(), session.initialize());
        tokio::pin!(handshake);
        let init = loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Err(Error::Cancelled { client: client.clone() }),
                result = &mut handshake => break match result {
                    Ok(Ok(init)) => Ok(init),
                    Ok(Err(source)) => Err(Error::Session {
                        client: client.clone(),
                        source: Box::new(security.mask_session_error(source)),
                    }),
                    Err(_) => Err(Error::StartupTimeout {
                        client: client.clone(),
                        timeout: config.startup_timeout(),
                        stderr_tail: security.mask(&process.stderr_tail()).into_owned(),
                    }),
                },
                // The handshake fails promptly once the connection has ended.
                _ = &mut connection, if !connection_done => connection_done = true,
            }
        };
        let init = match init {
            Ok(init) => init,
            Err(error) => {
                session.shut_down();
                let report =
                    close_polling(process, &mut connection, connection_done, grace, security).await;
                // The error goes back to the caller, who reports it; logging it here too would say it twice.
                tracing::debug!(error = %error, exit = %report, "client failed to start");
                self.roots.remove(&id);
                self.auth.forget(&id);
                return Err(error);
            }
        };

        let client_session = ClientSession {
            id: id.clone(),
            session: session.clone(),
            init: Arc::new(init),
            pid: process.pid(),
            killer: process.killer(),
            ready_at: Instant::now(),
        };
        let entry = ActiveEntry::insert(&self.active_clients, client_session.clone());
        tracing::info!("client ready");
        let starter_waits = task_status.started(client_session).is_ok();

        let cause = if !starter_waits {
            tracing::debug!("nobody waits for the client any more; stopping it");
            ExitCause::Cancelled
        } else if connection_done {
            ExitCause::ServerExited { error: None }
        } else {
            tokio::select! {
                () = cancel.cancelled() => ExitCause::Cancelled,
                ended = &mut connection => {
                    connection_done = true;
                    ExitCause::ServerExited { error: ended.err().map(|error| security.mask_session_error(error)) }
                }
            }
        };
        drop(entry);
        session.shut_down();
        let report =
            close_polling(process, &mut connection, connection_done, grace, security).await;
        self.roots.remove(&id);
        // A restart builds it again from the token store: no authorizer outlives its client.
        self.auth.forget(&id);
        match &cause {
            ExitCause::Cancelled => tracing::info!(exit = %report, "client stopped"),
            ExitCause::ServerExited { error: Some(error) } => {
                tracing::error!(error = %error, exit = %report, "client lost: its server went away")
            }
            ExitCause::ServerExited { error: None } => {
                tracing::warn!(exit = %report, "client lost: its server closed the connection")
            }
        }
        Ok(ClientExit {
            client: id,
            cause,
            report,
        })
    }
}

impl ClientManager {
    /// Starts the server process, or sets up the connection to the remote server.
    fn open(
        &self,
        id: &ClientId,
        config: &ClientConfig,
        security: &SecurityManager,
        transport_options: &TransportOptions,
    ) -> Result<(Endpoint, Transport), Error> {
        let client = id.as_str().to_owned();
        if config.is_remote() {
            let mut options = security.http_for(config)?;
            if let Some(auth) = security.auth_for(config)? {
                options.auth = Some(self.auth.authorizer(id, &options.url, &config.auth, auth)?);
            }
            let (connection, transport) = mcp_http::connect(
                id.server_name().clone(),
                options,
                transport_options,
                &self.tracker,
            )
            .map_err(|source| Error::Connect { client, source })?;
            tracing::info!(url = %security.mask(connection.url()), "client connecting");
            return Ok((Endpoint::Remote(connection), transport));
        }
        let command = security.command_for(config)?;
        let (process, transport) = mcp_transport::spawn(
            id.server_name().clone(),
            &command,
            transport_options,
            &self.tracker,
        )
        .map_err(|source| Error::Spawn { client, source })?;
        tracing::info!(pid = process.pid(), "client starting");
        Ok((Endpoint::Process(process), transport))
    }
}

/// What stands behind a session: a child process, or a connection to a remote server.
enum Endpoint {
    Process(ChildProcess),
    Remote(HttpConnection),
}

impl Endpoint {
    fn pid(&self) -> Option<u32> {
        match self {
            Endpoint::Process(process) => Some(process.pid()),
            Endpoint::Remote(_) => None,
        }
    }

    fn killer(&self) -> Option<GroupKiller> {
        match self {
            Endpoint::Process(process) => Some(process.killer()),
            Endpoint::Remote(_) => None,
        }
    }

    fn stderr_tail(&self) -> String {
        match self {
            Endpoint::Process(process) => process.diagnostics().stderr_tail(),
            Endpoint::Remote(connection) => connection.diagnostics().stderr_tail(),
        }
    }

    async fn close(self, grace: std::time::Duration) -> ExitReport {
        match self {
            Endpoint::Process(process) => process.close(grace).await,
            Endpoint::Remote(connection) => connection.close(grace).await,
        }
    }
}

/// Closes the process (or remote connection) while still polling the connection, so that the
/// connection can close the server's input when asked and read its last messages.
async fn close_polling(
    process: Endpoint,
    connection: &mut Connection,
    mut connection_done: bool,
    grace: std::time::Duration,
    security: &SecurityManager,
) -> ExitReport {
    let close = process.close(grace);
    tokio::pin!(close);
    let mut report = loop {
        tokio::select! {
            report = &mut close => break report,
            _ = &mut *connection, if !connection_done => connection_done = true,
        }
    };
    report.stderr_tail = security.mask(&report.stderr_tail).into_owned();
    report
}

/// An entry in `active_clients` that removes itself when dropped, on every exit path.
struct ActiveEntry {
    map: Arc<Mutex<HashMap<ClientId, ClientSession>>>,
    id: ClientId,
}

impl ActiveEntry {
    fn insert(
        map: &Arc<Mutex<HashMap<ClientId, ClientSession>>>,
        session: ClientSession,
    ) -> ActiveEntry {
        let id = session.id.clone();
        lock(map).insert(id.clone(), session);
        ActiveEntry {
            map: map.clone(),
            id,
        }
    }
}

impl Drop for ActiveEntry {
    fn drop(&mut self) {
        lock(&self.map).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
