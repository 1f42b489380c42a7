//! The gateway of mcp-host: an [`McpHost`] served as one MCP server, on stdio or over
//! Streamable HTTP, so that any MCP client reaches every configured server through it.
//!
//! It sits above `mcp-host` (which keeps the truth: registries, scopes, status, restarts) and
//! below the `mcp-host` command, which only parses arguments and hands a host to
//! [`Gateway::builder`]. Each client of the gateway gets one connection that answers
//! `initialize` itself, routes calls, prompts, reads, completions and subscriptions to the
//! owning server, relays progress and cancellation both ways, runs tool calls as tasks (each
//! session sees its own), passes the servers' log messages, resource updates, task statuses,
//! sampling and elicitation requests (form and URL modes) on, and sends `list_changed` when the
//! host's servers change.
//!
//! **Architecture Invariant:** the gateway holds no second copy of the host's state: every list
//! and route is read from the [`McpHost`] when a request comes.
//!
//! **Architecture Invariant:** every socket it accepts sets `TCP_NODELAY` (answers go out in
//! several small writes on kept-alive connections).
//!
//! **Architecture Invariant:** never writes to stdout or stderr except the protocol on stdio.
//!
//! # Example
//!
//! Serve two demo servers over HTTP on a free loopback port until Ctrl-C:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_gateway::{ClientRelay, Gateway, HttpListener, HttpOptions};
//! use mcp_host::{HostOptions, McpHost};
//! use mcp_host_foundation::{ClientConfig, SecurityManager};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // The servers' sampling and elicitation requests go to the gateway's clients.
//! let relay = ClientRelay::new();
//! let options = HostOptions {
//!     client_requests: Some(relay.clone()),
//!     ..HostOptions::default()
//! };
//! let servers = vec![ClientConfig::new("time", "uvx")];
//! let host = Arc::new(McpHost::with_options(servers, SecurityManager::new(), options)?);
//! host.initialize().await?;
//!
//! let listener = HttpListener::bind(HttpOptions::new("127.0.0.1:0")).await?;
//! println!("MCP endpoint: http://{}/mcp", listener.local_addr()?);
//! let gateway = Gateway::builder(host.clone()).relay(relay).build();
//! gateway
//!     .serve_http(listener, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod audit;
mod auth;
pub mod config;
mod connection;
mod error;
mod http;
mod observe;
pub mod policy;
mod relay;
mod reload;
mod sealed;
mod search;
mod stateless;
mod stdio;
mod tasks;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use mcp_host::McpHost;
use mcp_transport::Transport;

pub use audit::{AuditLog, AuditRecord};
pub use connection::Stop;
pub use error::Error;
pub use http::{HttpListener, HttpOptions, ENDPOINT};
pub use relay::ClientRelay;
pub use reload::{ReloadHandle, ReloadOutcome, ReloadRecord, DEBOUNCE};
pub use sealed::SessionKeys;
pub use search::ToolMode;
pub use stdio::stdio_transport;

/// An [`McpHost`] served as one MCP server. Cheap to clone; every clone serves the same host.
///
/// Shutting the host down stays the caller's job: serving ends when the client goes away or
/// the `stop` future given to a `serve_*` method completes, and the host is left running.
#[derive(Debug, Clone)]
pub struct Gateway {
    host: Arc<McpHost>,
    relay: Arc<ClientRelay>,
    reload: Option<Arc<reload::ReloadState>>,
    observer: Arc<observe::Observer>,
    max_handlers: usize,
    policies: Arc<auth::PolicyStore>,
    quotas: Arc<policy::Quotas>,
    audit: Option<Arc<AuditLog>>,
    stdio_client: Option<String>,
    max_tasks: usize,
}

/// Sets up a [`Gateway`]; made by [`Gateway::builder`].
#[derive(Debug)]
#[must_use]
pub struct GatewayBuilder {
    host: Arc<McpHost>,
    relay: Option<Arc<ClientRelay>>,
    config_file: Option<PathBuf>,
    max_handlers: usize,
    policies: policy::Policies,
    audit: Option<Arc<AuditLog>>,
    stdio_client: Option<String>,
    max_tasks: usize,
    tool_mode: Option<ToolMode>,
}

impl Gateway {
    /// Starts setting up a gateway in front of `host`.
    pub fn builder(host: Arc<McpHost>) -> GatewayBuilder {
        GatewayBuilder {
            host,
            relay: None,
            config_file: None,
            max_handlers: connection::MAX_HANDLERS,
            policies: policy::Policies::default(),
            audit: None,
            stdio_client: None,
            max_tasks: tasks::MAX_TASKS_PER_SESSION,
            tool_mode: None,
        }
    }

    /// The host it serves.
    pub fn host(&self) -> &Arc<McpHost> {
        &self.host
    }

    /// Closes and opens the audit log file again (after logrotate moved it), if there is one.
    pub fn reopen_audit_log(&self) {
        if let Some(audit) = &self.audit {
            audit.reopen();
        }
    }

    /// Asks for a reload of the configuration file (as SIGHUP does); `None` when the gateway
    /// was built without [`GatewayBuilder::config_file`].
    pub fn reload_handle(&self) -> Option<ReloadHandle> {
        self.reload.as_ref().map(reload::ReloadState::handle)
    }

    /// What the last reload did, if there was one.
    pub fn last_reload(&self) -> Option<ReloadRecord> {
        self.reload.as_ref().and_then(|state| state.last())
    }

    /// Runs `serving` and, when the gateway has a configuration file, its watcher beside it,
    /// until `serving` ends.
    async fn with_reloads<T>(&self, serving: impl Future<Output = T>) -> T {
        let Some(state) = &self.reload else {
            return serving.await;
        };
        let watching = reload::watch(self.host.clone(), state.clone(), self.policies.clone());
        tokio::pin!(serving, watching);
        loop {
            tokio::select! {
                served = &mut serving => return served,
                () = &mut watching => {}
            }
        }
    }

    /// Serves one client on this process's stdin and stdout until the client closes stdin
    /// ([`Stop::EndOfInput`]) or `stop` completes ([`Stop::Requested`]).
    ///
    /// # Errors
    ///
    /// [`Error::StopTimeout`] when the connection does not unwind within 3 s of `stop`;
    /// [`Error::Task`] when its task panicked.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts the connection: requests in flight are cancelled downstream.
    pub async fn serve_stdio(&self, stop: impl Future<Output = ()>) -> Result<Stop, Error> {
        let _counted = self.observer.session_opened();
        let client = self.stdio_connection_client()?;
        self.with_reloads(stdio::serve_stdio(
            self.host.clone(),
            self.relay.clone(),
            self.max_handlers,
            client,
            stop,
        ))
        .await
    }

    /// Serves one client over `transport` until it goes away or `stop` completes.
    ///
    /// Requests still in flight when it returns are aborted (their downstream calls are
    /// cancelled), waiting at most one second for them to unwind.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future ends the connection: the client sees end of input and every request
    /// in flight is aborted.
    pub async fn serve_connection(
        &self,
        transport: Transport,
        stop: impl Future<Output = ()>,
    ) -> Result<Stop, Error> {
        let client = self.stdio_connection_client()?;
        Ok(connection::serve_connection(
            self.host.clone(),
            self.relay.clone(),
            self.max_handlers,
            client,
            transport,
            stop,
        )
        .await)
    }

    /// The client a stdio (or other single) connection serves: the named
    /// [`GatewayBuilder::stdio_client`], or one that may use everything.
    fn stdio_connection_client(&self) -> Result<connection::Client, Error> {
        let caller = match &self.stdio_client {
            None => auth::Caller {
                policy: Arc::new(policy::ClientPolicy::unrestricted("stdio")),
                key: None,
            },
            Some(name) => auth::Caller {
                policy: self
                    .policies
                    .current()
                    .by_name(name)
                    .ok_or_else(|| Error::UnknownClient { name: name.clone() })?,
                key: Some(name.clone()),
            },
        };
        Ok(connection::Client {
            caller,
            policies: self.policies.clone(),
            quotas: self.quotas.clone(),
            audit: self.audit.clone(),
            session: "stdio".to_owned(),
            max_tasks: self.max_tasks,
        })
    }

    /// Serves MCP over Streamable HTTP at `http://<listener>/mcp` until `stop` completes, then
    /// ends every HTTP session (waiting at most 2 s for them, and 2 s for the connections).
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] when the HTTP server fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting connections and cancels every session; their tasks
    /// then end on their own without being waited for.
    pub async fn serve_http(
        &self,
        listener: HttpListener,
        stop: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.with_reloads(http::serve_http(
            listener,
            self.host.clone(),
            self.relay.clone(),
            self.max_handlers,
            self.observer.clone(),
            http::Clients {
                policies: self.policies.clone(),
                quotas: self.quotas.clone(),
                audit: self.audit.clone(),
                max_tasks: self.max_tasks,
            },
            stop,
        ))
        .await
    }

    /// Serves only `/healthz`, `/readyz`, `/metrics` and the status page (`/`, `/status`,
    /// `/status.json`) on `listener`, with the same origin and token rules as the MCP endpoint,
    /// until `stop` completes: for a gateway that serves its client on stdio.
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] when the HTTP server fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops serving at once.
    pub async fn serve_observability(
        &self,
        listener: HttpListener,
        stop: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        http::serve_observability(listener, self.observer.clone(), self.policies.clone(), stop)
            .await
    }
}

impl GatewayBuilder {
    /// The relay the host was given as its `client_requests` handler, so that the servers'
    /// sampling and elicitation requests reach this gateway's clients. Without it, each gateway
    /// has a relay of its own that no server request reaches.
    pub fn relay(mut self, relay: Arc<ClientRelay>) -> GatewayBuilder {
        self.relay = Some(relay);
        self
    }

    /// The configuration file the host was started from: `serve_stdio` and `serve_http` then
    /// watch it and apply each change with [`McpHost::apply`] (debounced by [`DEBOUNCE`]; an
    /// invalid file changes nothing and is logged as one error), and
    /// [`Gateway::reload_handle`] reloads it on request.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> GatewayBuilder {
        self.config_file = Some(path.into());
        self
    }

    /// How many requests of one client (a stdio client, or one HTTP session) are handled at
    /// once (default 256); more wait, and past that the client's writes wait: backpressure.
    pub fn max_requests_in_flight(mut self, n: usize) -> GatewayBuilder {
        self.max_handlers = n.max(1);
        self
    }

    /// The clients of the gateway, their credentials and policies (the `"gateway"` object of
    /// the configuration file, see [`policy::Policies::from_settings`]). Default: no
    /// credentials, and every caller the transport lets in may use everything.
    pub fn policies(mut self, policies: policy::Policies) -> GatewayBuilder {
        self.policies = policies;
        self
    }

    /// Writes one audit line per call here.
    pub fn audit(mut self, audit: Arc<AuditLog>) -> GatewayBuilder {
        self.audit = Some(audit);
        self
    }

    /// `serve_stdio` serves its client as this named client of the policies (its scope,
    /// quotas and audit setting), without a credential: whoever starts the process is it.
    pub fn stdio_client(mut self, name: impl Into<String>) -> GatewayBuilder {
        self.stdio_client = Some(name.into());
        self
    }

    /// How many tasks that have not ended one client (a stdio client, or one HTTP session) may
    /// have (default 64): past it, a task-augmented `tools/call` is refused with a JSON-RPC
    /// error (-32000) that says so. Its tasks are cancelled and forgotten when it goes away.
    pub fn max_tasks_per_session(mut self, n: usize) -> GatewayBuilder {
        self.max_tasks = n.max(1);
        self
    }

    /// What `tools/list` shows every client without a `toolMode` of its own, whatever the
    /// configuration file's `gateway.toolMode` says, now and after reloads (the command line's
    /// `--tool-mode`). Default: the file's, else [`ToolMode::All`].
    pub fn tool_mode(mut self, mode: ToolMode) -> GatewayBuilder {
        self.tool_mode = Some(mode);
        self
    }

    /// The gateway.
    pub fn build(self) -> Gateway {
        let reload = self.config_file.map(reload::ReloadState::new);
        let policies = auth::PolicyStore::new(self.policies);
        if let Some(mode) = self.tool_mode {
            policies.set_tool_mode(mode);
        }
        Gateway {
            observer: observe::Observer::new(self.host.clone(), reload.clone()),
            host: self.host,
            relay: self.relay.unwrap_or_default(),
            reload,
            max_handlers: self.max_handlers,
            policies,
            quotas: Arc::new(policy::Quotas::default()),
            audit: self.audit,
            stdio_client: self.stdio_client,
            max_tasks: self.max_tasks,
        }
    }
}
