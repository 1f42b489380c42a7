//! One JSON-RPC session between the host and one MCP server, over an `mcp-transport` channel.
//!
//! The crate performs the `initialize` handshake with protocol version negotiation (or, as an
//! option, the `server/discover` of the stateless revision 2026-07-28, see [`Handshake`]), correlates
//! requests and responses by id, bounds every request with a timeout, tells the server when a
//! request is abandoned (`notifications/cancelled`), fails every pending request at once when the
//! server goes away, answers the server's own requests (`ping`, `roots/list`) and delivers its
//! notifications as bounded events. Typed helpers cover tools, prompts, resources and logging,
//! with pagination guarded against loops.
//!
//! Following hyper's `handshake`, the crate never spawns: [`connect`] and [`handshake`] return a
//! [`Session`] handle and a [`Connection`] driver future that the caller polls wherever it wants
//! (the host spawns it on its task tracker).
//!
//! **Architecture Invariant:** this is the only crate that knows the JSON-RPC envelope; crates
//! above see typed requests and results. It depends on `mcp-transport` only.
//!
//! **Architecture Invariant:** every request ends: with a result, a JSON-RPC error, a timeout, or
//! the error that ended the session. Nothing waits forever.

mod connection;
mod envelope;
mod error;
mod input;
mod outbox;
pub mod protocol;
pub mod server;
mod session;
mod tasks;

pub use connection::Connection;
pub use error::Error;
pub use input::MAX_INPUT_ROUNDS;
pub use mcp_transport::ServerName;
pub use session::{
    connect, handshake, ClientRequestHandler, Event, HandlerFuture, Handshake, ProgressCallback,
    RequestOptions, RootsProvider, Session, SessionOptions, DEFAULT_MAX_INPUT_BACKLOG,
    MAX_CLIENT_REQUESTS,
};
pub use tasks::{ToolTask, MAX_TASK_PROGRESS};
