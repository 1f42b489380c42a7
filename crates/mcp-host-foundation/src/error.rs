//! The error type of the foundation crate.

use std::time::Duration;

/// Everything that can go wrong while configuring, starting or stopping a client.
///
/// Messages never contain a resolved secret: the [`SecurityManager`](crate::SecurityManager)
/// masks them before an error is built.
///
/// A variant that wraps a lower crate's error ([`Error::Spawn`], [`Error::Connect`],
/// [`Error::Session`], [`Error::Auth`]) adds no words of its own: the lower error already names the server and
/// says what failed, so its `Display` is the lower error's and its `source()` is the lower
/// error's cause. Each cause is said once, the server named once.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A field of a client's configuration is invalid.
    InvalidConfig {
        /// The client id (as written in the configuration).
        client: String,
        /// The field, as a path within the client's configuration (`command`, `roots[1]`, …).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two clients have the same id.
    DuplicateClientId {
        /// The repeated id.
        client: String,
    },
    /// A secret reference names an environment variable that is not set.
    MissingSecret {
        /// The client.
        client: String,
        /// The variable named in `${env:NAME}`.
        variable: String,
    },
    /// A root is not a `file://` URI of an existing directory.
    InvalidRoot {
        /// The client.
        client: String,
        /// The root as configured.
        root: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server process could not be started.
    Spawn {
        /// The client.
        client: String,
        /// What went wrong.
        source: mcp_transport::Error,
    },
    /// The connection to a remote server could not be set up (invalid URL or header).
    Connect {
        /// The client.
        client: String,
        /// What went wrong.
        source: mcp_http::Error,
    },
    /// The OAuth authorization of a remote server could not be set up (a bad key, a token file
    /// that cannot be read). Its cause names the server.
    Auth(mcp_auth::Error),
    /// The session with the server failed (handshake refused, server exited, …).
    Session {
        /// The client.
        client: String,
        /// What went wrong (boxed: session errors are large and this one is rare).
        source: Box<mcp_session::Error>,
    },
    /// The server did not finish the handshake within the startup timeout.
    StartupTimeout {
        /// The client.
        client: String,
        /// The startup timeout.
        timeout: Duration,
        /// The last lines the server wrote to stderr (secrets masked).
        stderr_tail: String,
    },
    /// The client was stopped (its token cancelled) before it was ready.
    Cancelled {
        /// The client.
        client: String,
    },
    /// The client's task ended without reporting readiness or an error (for example it panicked).
    TaskEnded {
        /// The client.
        client: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidConfig {
                client,
                field,
                reason,
            } => write!(
                f,
                "invalid configuration of client `{client}`: `{field}` {reason}"
            ),
            Error::DuplicateClientId { client } => {
                write!(f, "client id `{client}` is used more than once")
            }
            Error::MissingSecret { client, variable } => write!(
                f,
                "client `{client}` refers to environment variable `{variable}`, which is not set"
            ),
            Error::InvalidRoot {
                client,
                root,
                reason,
            } => write!(f, "invalid root `{root}` for client `{client}`: {reason}"),
            Error::Spawn { source, .. } => source.fmt(f),
            Error::Connect { source, .. } => source.fmt(f),
            Error::Session { source, .. } => source.fmt(f),
            Error::Auth(source) => source.fmt(f),
            Error::StartupTimeout {
                client,
                timeout,
                stderr_tail,
            } => write!(
                f,
                "client `{client}` did not start within {} ms{}",
                timeout.as_millis(),
                tail_suffix(stderr_tail)
            ),
            Error::Cancelled { client } => {
                write!(f, "client `{client}` was stopped before it was ready")
            }
            Error::TaskEnded { client } => write!(
                f,
                "the task of client `{client}` ended before the client was ready"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } => std::error::Error::source(source),
            Error::Connect { source, .. } => std::error::Error::source(source),
            Error::Session { source, .. } => std::error::Error::source(&**source),
            Error::Auth(source) => std::error::Error::source(source),
            _ => None,
        }
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut out = String::from("; its stderr ended with:");
    for line in tail.lines() {
        out.push_str("\n  | ");
        out.push_str(line);
    }
    out
}
