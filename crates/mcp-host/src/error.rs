//! The error type of the host crate.

use std::time::Duration;

/// Everything that can go wrong while hosting clients.
///
/// Messages name the client or component; causes are reached through `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; nothing was started.
    #[error("invalid configuration")]
    Config {
        /// What is wrong.
        #[source]
        source: mcp_host_foundation::Error,
    },
    /// A client failed to start.
    #[error("client `{client}` failed to start")]
    Start {
        /// The client.
        client: String,
        /// Why.
        #[source]
        source: mcp_host_foundation::Error,
    },
    /// A client marked `required` failed to start, so the host did not start.
    #[error("required client `{client}` failed to start")]
    RequiredClientFailed {
        /// The client.
        client: String,
        /// Why.
        #[source]
        source: mcp_host_foundation::Error,
    },
    /// A client with this id is already registered.
    #[error("client `{client}` is already registered")]
    DuplicateClient {
        /// The client.
        client: String,
    },
    /// No client with this id is registered.
    #[error("no client `{client}` is registered")]
    UnknownClient {
        /// The id asked for.
        client: String,
    },
    /// No tool with this name is visible.
    #[error("no tool `{name}`")]
    UnknownTool {
        /// The namespaced name asked for.
        name: String,
    },
    /// No prompt with this name is visible.
    #[error("no prompt `{name}`")]
    UnknownPrompt {
        /// The namespaced name asked for.
        name: String,
    },
    /// No client serves this resource URI.
    #[error("no client serves resource `{uri}`")]
    UnknownResource {
        /// The URI asked for.
        uri: String,
    },
    /// No client offers this resource template (a `completion/complete` reference).
    #[error("no client offers resource template `{uri_template}`")]
    UnknownResourceTemplate {
        /// The URI template asked for.
        uri_template: String,
    },
    /// The client is registered but not ready (starting, restarting or stopping).
    #[error("client `{client}` is not ready")]
    ClientUnavailable {
        /// The client.
        client: String,
    },
    /// A request to a client failed (including "shutting down" for calls in flight when the
    /// client is shut down).
    #[error("request to client `{client}` failed")]
    Call {
        /// The client.
        client: String,
        /// Why (boxed: session errors are large).
        #[source]
        source: Box<mcp_session::Error>,
    },
    /// A client did not stop within its bound; its process group was killed.
    #[error("client `{client}` did not stop within {} ms", timeout.as_millis())]
    StopTimeout {
        /// The client.
        client: String,
        /// The bound.
        timeout: Duration,
    },
    /// The host has been shut down.
    #[error("the host is shut down")]
    ShutDown,
}

/// Formats an error with all its causes: `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
