//! The error type of the foundation crate.

use std::time::Duration;

/// Everything that can go wrong while configuring, starting or stopping a client.
///
/// Messages never contain a resolved secret: the [`SecurityManager`](crate::SecurityManager)
/// masks them before an error is built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of a client's configuration is invalid.
    #[error("invalid configuration of client `{client}`: `{field}` {reason}")]
    InvalidConfig {
        /// The client id (as written in the configuration).
        client: String,
        /// The field, as a path within the client's configuration (`command`, `roots[1]`, …).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two clients have the same id.
    #[error("client id `{client}` is used more than once")]
    DuplicateClientId {
        /// The repeated id.
        client: String,
    },
    /// A secret reference names an environment variable that is not set.
    #[error("client `{client}` refers to environment variable `{variable}`, which is not set")]
    MissingSecret {
        /// The client.
        client: String,
        /// The variable named in `${env:NAME}`.
        variable: String,
    },
    /// A root is not a `file://` URI of an existing directory.
    #[error("invalid root `{root}` for client `{client}`: {reason}")]
    InvalidRoot {
        /// The client.
        client: String,
        /// The root as configured.
        root: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server process could not be started.
    #[error("failed to start client `{client}`")]
    Spawn {
        /// The client.
        client: String,
        /// What went wrong.
        #[source]
        source: mcp_transport::Error,
    },
    /// The connection to a remote server could not be set up (invalid URL or header).
    #[error("failed to set up the connection of client `{client}`")]
    Connect {
        /// The client.
        client: String,
        /// What went wrong.
        #[source]
        source: mcp_http::Error,
    },
    /// The OAuth authorization of a remote server could not be set up (a bad key, a token file
    /// that cannot be read). Its cause names the server.
    #[error(transparent)]
    Auth(mcp_auth::Error),
    /// The session with the server failed (handshake refused, server exited, …).
    #[error("client `{client}` failed")]
    Session {
        /// The client.
        client: String,
        /// What went wrong (boxed: session errors are large and this one is rare).
        #[source]
        source: Box<mcp_session::Error>,
    },
    /// The server did not finish the handshake within the startup timeout.
    #[error("client `{client}` did not start within {} ms{}", timeout.as_millis(), tail_suffix(stderr_tail))]
    StartupTimeout {
        /// The client.
        client: String,
        /// The startup timeout.
        timeout: Duration,
        /// The last lines the server wrote to stderr (secrets masked).
        stderr_tail: String,
    },
    /// The client was stopped (its token cancelled) before it was ready.
    #[error("client `{client}` was stopped before it was ready")]
    Cancelled {
        /// The client.
        client: String,
    },
    /// The client's task ended without reporting readiness or an error (for example it panicked).
    #[error("the task of client `{client}` ended before the client was ready")]
    TaskEnded {
        /// The client.
        client: String,
    },
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
