//! Host many MCP servers at once, as the seed plan's `MCPHost` does, with clean lifecycles.
//!
//! [`McpHost`] starts every configured client concurrently on one task tracker, gives each its
//! own cancellation token (a child of the host's root token), exposes all their tools, prompts
//! and resources under namespaced names (`<client>__<name>`, or their own names for a client
//! configured with `"namespace": false`) filtered by agent scopes, routes calls, completions and
//! subscriptions to the right client, relays servers' log messages and resource updates, and
//! shuts clients down one at a time or all at once, in parallel and bounded by a deadline.
//!
//! **Architecture Invariant:** one client's failure never cancels its siblings; only a failing
//! `required` client stops the others, and only during [`McpHost::initialize`].
//!
//! **Architecture Invariant:** a client's components are unregistered before its process is
//! stopped, so nothing is routed to a client that is going away.
//!
//! **Architecture Invariant:** no process outlives the host: not after [`McpHost::shutdown`],
//! not after dropping it.

mod error;
pub mod formats;
mod host;
pub mod naming;
mod notification;
mod output_schema;
mod registry;
pub mod search;
mod stats;
mod status;
pub mod tasks;

pub use error::{error_chain, Error};
pub use formats::{Format, ToolCall};
pub use host::{
    raw_is_tool_error, CompletionRef, HostOptions, InitializeReport, McpHost, ReloadReport,
    ShutdownReport, RESTART_RESET_AFTER,
};
pub use notification::{NotificationKind, ServerNotification};
pub use output_schema::MAX_CACHED_SCHEMAS;
pub use registry::{
    is_read_only, AgentScope, Named, NamedRegistry, Naming, PromptManager, Registered,
    ResourceManager, ToolManager,
};
pub use search::Found;
pub use stats::{
    CallOutcome, RecentLatency, ToolStats, LATENCY_BUCKETS, MAX_TOOLS_PER_CLIENT, OTHER_TOOL,
    RECENT_WINDOW,
};
pub use status::{ClientState, ClientStatus, StatusEvent};
pub use tasks::TaskCall;

// What the API takes and returns, so that an embedder depends on `mcp-host` alone (as tokio
// re-exports what its users need).
pub use mcp_host_foundation::{
    ClientConfig, ClientId, Namespace, ProtocolChoice, RestartPolicy, SecurityManager, ToolFilter,
    ValueMap,
};
pub use mcp_session::protocol;
pub use mcp_session::{
    ClientRequestHandler, HandlerFuture, ProgressCallback, RequestOptions, RootsProvider,
    ServerName,
};
pub use mcp_transport::ExitReport;
