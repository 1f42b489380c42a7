//! Streamable HTTP client transport for MCP servers (protocol revision 2025-11-25, and the headers of 2026-07-28).
//!
//! [`connect`] gives a session the same [`mcp_transport::Transport`] it gets from a child
//! process, but carried over HTTP: each JSON-RPC message the session writes is POSTed to the
//! server's MCP endpoint, and what comes back — a JSON body, the events of an SSE response, the
//! events of the standalone GET stream — is handed to the session as lines. The bridge keeps the
//! `Mcp-Session-Id` the server assigns and the negotiated `MCP-Protocol-Version` on every later
//! request, resumes broken SSE streams with `Last-Event-ID`, retries unreachable or overloaded
//! servers with a doubling delay, bounds every body and event, and ends the HTTP session with a
//! DELETE when the session closes.
//!
//! **Architecture Invariant:** like `mcp-transport`, this crate moves messages and never
//! interprets JSON-RPC beyond what routing needs (ids, method names, the negotiated version).
//! Transport failures reach the session in its own terms: a request HTTP could not complete gets
//! a JSON-RPC error response with code [`TRANSPORT_ERROR_CODE`]; a server that is lost (unreachable
//! after the retries, or its HTTP session expired) ends the session's input, and the
//! diagnostics tail says why.

mod client;
mod error;
pub mod sse;

pub use client::{connect, HttpConnection, HttpOptions, TRANSPORT_ERROR_CODE};
pub use error::Error;
