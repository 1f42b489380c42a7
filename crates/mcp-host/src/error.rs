//! The error type of the host crate.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong while hosting clients.
///
/// Messages name the client or component; causes are reached through `source()`. A variant that
/// wraps an error of a lower crate ([`Error::Config`], [`Error::Start`],
/// [`Error::RequiredClientFailed`], [`Error::Call`]) adds no words of its own: the lower error
/// already names the server and says what failed, so its `Display` is the lower error's and its
/// `source()` is the lower error's cause. Each cause is said once, the server named once; the
/// variant itself tells a program what happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; nothing was started.
    Config {
        /// What is wrong (it names the client and the field).
        source: mcp_host_foundation::Error,
    },
    /// A client failed to start.
    Start {
        /// The client.
        client: String,
        /// Why (it names the client).
        source: mcp_host_foundation::Error,
    },
    /// A client marked `required` failed to start, so the host did not start.
    RequiredClientFailed {
        /// The client.
        client: String,
        /// Why (it names the client).
        source: mcp_host_foundation::Error,
    },
    /// A client with this id is already registered.
    DuplicateClient {
        /// The client.
        client: String,
    },
    /// No client with this id is registered.
    UnknownClient {
        /// The id asked for.
        client: String,
    },
    /// No tool with this name is visible.
    UnknownTool {
        /// The namespaced name asked for.
        name: String,
    },
    /// No prompt with this name is visible.
    UnknownPrompt {
        /// The namespaced name asked for.
        name: String,
    },
    /// No client serves this resource URI.
    UnknownResource {
        /// The URI asked for.
        uri: String,
    },
    /// No client offers this resource template (a `completion/complete` reference).
    UnknownResourceTemplate {
        /// The URI template asked for.
        uri_template: String,
    },
    /// The client is registered but not ready (starting, restarting or stopping).
    ClientUnavailable {
        /// The client.
        client: String,
    },
    /// A request to a client failed (including "shutting down" for calls in flight when the
    /// client is shut down).
    Call {
        /// The client.
        client: String,
        /// Why (boxed: session errors are large); it names the server and the method.
        source: Box<mcp_session::Error>,
    },
    /// A client did not stop within its bound; its process group was killed.
    StopTimeout {
        /// The client.
        client: String,
        /// The bound.
        timeout: Duration,
    },
    /// The host has been shut down.
    ShutDown,
    /// A tool's `structuredContent` does not conform to the `outputSchema` it declared (see
    /// `HostOptions::check_output_schema`).
    OutputSchema {
        /// The client.
        client: String,
        /// The tool, by the name it was called.
        tool: String,
        /// The first violation: where in the structured content, and what.
        violation: String,
    },
    /// No task with this id is visible (unknown, forgotten, or another owner's).
    UnknownTask {
        /// The id asked for.
        id: String,
    },
    /// A client has as many tasks as the host keeps, none of them ended.
    TooManyTasks {
        /// The client.
        client: String,
        /// The bound (`MAX_TASKS_PER_CLIENT`).
        limit: usize,
    },
    /// A model's tool call could not be read (see `ToolCall::parse`).
    InvalidToolCall {
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { source }
            | Error::Start { source, .. }
            | Error::RequiredClientFailed { source, .. } => source.fmt(f),
            Error::Call { source, .. } => source.fmt(f),
            Error::DuplicateClient { client } => {
                write!(f, "client `{client}` is already registered")
            }
            Error::UnknownClient { client } => write!(f, "no client `{client}` is registered"),
            Error::UnknownTool { name } => write!(f, "no tool `{name}`"),
            Error::UnknownPrompt { name } => write!(f, "no prompt `{name}`"),
            Error::UnknownResource { uri } => write!(f, "no client serves resource `{uri}`"),
            Error::UnknownResourceTemplate { uri_template } => {
                write!(f, "no client offers resource template `{uri_template}`")
            }
            Error::ClientUnavailable { client } => write!(f, "client `{client}` is not ready"),
            Error::StopTimeout { client, timeout } => write!(
                f,
                "client `{client}` did not stop within {} ms",
                timeout.as_millis()
            ),
            Error::ShutDown => f.write_str("the host is shut down"),
            Error::InvalidToolCall { reason } => write!(f, "invalid tool call: {reason}"),
            Error::UnknownTask { id } => write!(f, "no task `{id}`"),
            Error::TooManyTasks { client, limit } => write!(
                f,
                "client `{client}` has {limit} tasks that have not ended, as many as the host keeps"
            ),
            Error::OutputSchema {
                client,
                tool,
                violation,
            } => write!(
                f,
                "tool `{tool}` of client `{client}` returned structuredContent that does not match its outputSchema: {violation}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The wrapped error's text is this one's, so its cause comes next.
        match self {
            Error::Config { source }
            | Error::Start { source, .. }
            | Error::RequiredClientFailed { source, .. } => std::error::Error::source(source),
            Error::Call { source, .. } => std::error::Error::source(&**source),
            _ => None,
        }
    }
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
