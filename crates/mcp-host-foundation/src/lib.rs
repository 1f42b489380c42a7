//! The lifecycle of one MCP client inside a host, as the seed plan describes it, in Rust.
//!
//! This crate sits above `mcp-session` and below `mcp-host`. It owns what one client needs to
//! start and stop cleanly: its validated [`ClientConfig`], the [`SecurityManager`] that builds an
//! isolated environment and masks secrets, the [`RootManager`] that answers `roots/list`, the
//! [`TaskStatus`] handshake through which a task reports readiness, and
//! [`ClientManager::manage_client_lifecycle`], which runs one client from spawn to reaped exit.
//!
//! **Architecture Invariant:** a client is in `active_clients` exactly while its session is
//! usable; the entry is removed on every exit path, including a panic.
//!
//! **Architecture Invariant:** no error is swallowed: a failure before readiness reaches the
//! starter through [`TaskStatus`]; a failure after it is returned by the task and logged.
//!
//! **Architecture Invariant:** secrets resolved from `${env:NAME}` never appear in a log line or
//! an error this crate produces.

mod auth;
mod client_manager;
mod config;
mod error;
mod roots;
mod security;
mod task_status;

pub use auth::AuthRegistry;
pub use client_manager::{ClientExit, ClientManager, ClientSession, ExitCause};
pub use config::{
    validate_all, AuthConfig, AuthSetting, ClientConfig, ClientId, GrantChoice,
    IdentityProviderConfig, Namespace, ProtocolChoice, RestartPolicy, ToolFilter, ValueMap,
};
pub use error::Error;
pub use roots::RootManager;
pub use security::{SecurityManager, DEFAULT_ENV_ALLOW_LIST};
pub use task_status::{start_task, TaskStatus};
