//! The error type of the session crate.

use std::fmt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport::ServerName;
use serde_json::Value;

/// Everything that can go wrong in a session with one server.
///
/// A tool that fails is *not* an error: it is a successful
/// [`CallToolResult`](crate::protocol::CallToolResult) with `isError` set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (for example the server sent an over-long line).
    #[error("the connection to server `{server}` failed")]
    Transport {
        /// The server.
        server: ServerName,
        /// What went wrong.
        #[source]
        source: mcp_transport::Error,
    },
    /// The server closed the connection, usually because it exited.
    #[error(
        "server `{server}` closed the connection{}{}",
        ExitText(status),
        TailText(stderr_tail)
    )]
    ServerClosed {
        /// The server.
        server: ServerName,
        /// Its exit status, if it exited and was reaped quickly.
        status: Option<ExitStatus>,
        /// The last lines it wrote to stderr.
        stderr_tail: Arc<str>,
    },
    /// The server stopped reading its input: nothing could be written for the write timeout.
    #[error("server `{server}` stopped reading its input (nothing could be written for {} ms)", timeout.as_millis())]
    InputStalled {
        /// The server.
        server: ServerName,
        /// The write timeout.
        timeout: Duration,
    },
    /// The server closed its input (writing to it failed, with `EPIPE` say) while its output
    /// stayed open: nothing sent to it can be answered, so the session ended.
    #[error("server `{server}` closed its input")]
    InputClosed {
        /// The server.
        server: ServerName,
        /// The write error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The server reads its input so slowly that more than `limit` bytes waited to be written
    /// to it (see `SessionOptions::max_input_backlog`).
    #[error("server `{server}` reads its input too slowly (more than {limit} bytes waited to be written)")]
    InputBacklog {
        /// The server.
        server: ServerName,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The host is shutting the session down; the request was not (or will not be) answered.
    #[error("the session with server `{server}` is shutting down")]
    ShuttingDown {
        /// The server.
        server: ServerName,
    },
    /// The server did not answer in time; it was sent `notifications/cancelled`.
    #[error("request `{method}` to server `{server}` timed out after {} ms", timeout.as_millis())]
    Timeout {
        /// The server.
        server: ServerName,
        /// The method of the request.
        method: String,
        /// How long the host waited.
        timeout: Duration,
    },
    /// The server answered with a JSON-RPC error.
    #[error("server `{server}` answered `{method}` with error {code}: {message}")]
    Rpc {
        /// The server.
        server: ServerName,
        /// The method of the request.
        method: String,
        /// The JSON-RPC error code (-32601: method not found, -32602: invalid params, …).
        code: i64,
        /// The server's message.
        message: String,
        /// Extra data the server attached.
        data: Option<Value>,
    },
    /// The server chose a protocol revision this host does not speak.
    #[error("server `{server}` offered protocol version `{offered}`, which this host does not support (it asked for `{requested}`)")]
    UnsupportedProtocolVersion {
        /// The server.
        server: ServerName,
        /// The revision the host asked for.
        requested: String,
        /// The revision the server answered with.
        offered: String,
    },
    /// A request other than `ping` was made before the handshake finished.
    #[error("request `{method}` to server `{server}` was made before the handshake finished")]
    NotInitialized {
        /// The server.
        server: ServerName,
        /// The method of the request.
        method: String,
    },
    /// The request's parameters could not be serialised.
    #[error("failed to encode the parameters of `{method}` for server `{server}`")]
    Encode {
        /// The server.
        server: ServerName,
        /// The method of the request.
        method: String,
        /// What went wrong.
        #[source]
        source: serde_json::Error,
    },
    /// The server's result did not have the expected shape.
    #[error("server `{server}` sent an invalid result for `{method}`")]
    Decode {
        /// The server.
        server: ServerName,
        /// The method of the request.
        method: String,
        /// What went wrong.
        #[source]
        source: serde_json::Error,
    },
    /// The server asked for input (a `roots/list`, `sampling/createMessage` or
    /// `elicitation/create` of an `input_required` result, revision 2026-07-28) that the host
    /// could not give: it offers no such capability, or its handler refused or failed.
    #[error("server `{server}` asked for `{input_method}` to answer `{method}`, and the host could not answer it (error {code}: {message})")]
    InputRequest {
        /// The server.
        server: ServerName,
        /// The method of the request that asked for input.
        method: String,
        /// The method of the input request.
        input_method: String,
        /// The JSON-RPC code of the refusal.
        code: i64,
        /// Why.
        message: String,
    },
    /// The server answered with `input_required` more times than the host retries.
    #[error(
        "server `{server}` asked for input more than {rounds} times while answering `{method}`"
    )]
    TooManyInputRounds {
        /// The server.
        server: ServerName,
        /// The method of the request.
        method: String,
        /// The bound on rounds.
        rounds: usize,
    },
    /// A tool was to be called as a task, but the server does not declare tool tasks.
    #[error("server `{server}` does not run tool calls as tasks")]
    TasksNotSupported {
        /// The server.
        server: ServerName,
    },
    /// A paginated list returned a cursor it had returned before.
    #[error("server `{server}` repeated the cursor `{cursor}` while listing `{method}`")]
    RepeatedCursor {
        /// The server.
        server: ServerName,
        /// The list method.
        method: String,
        /// The repeated cursor.
        cursor: String,
    },
    /// A paginated list went on for more pages than allowed.
    #[error("server `{server}` sent more than {max_pages} pages for `{method}`")]
    TooManyPages {
        /// The server.
        server: ServerName,
        /// The list method.
        method: String,
        /// The page cap.
        max_pages: usize,
    },
}

impl Error {
    /// The server this error is about.
    pub fn server(&self) -> &ServerName {
        match self {
            Error::Transport { server, .. }
            | Error::ServerClosed { server, .. }
            | Error::InputStalled { server, .. }
            | Error::InputClosed { server, .. }
            | Error::InputBacklog { server, .. }
            | Error::ShuttingDown { server }
            | Error::Timeout { server, .. }
            | Error::Rpc { server, .. }
            | Error::UnsupportedProtocolVersion { server, .. }
            | Error::NotInitialized { server, .. }
            | Error::Encode { server, .. }
            | Error::Decode { server, .. }
            | Error::InputRequest { server, .. }
            | Error::TasksNotSupported { server }
            | Error::TooManyInputRounds { server, .. }
            | Error::RepeatedCursor { server, .. }
            | Error::TooManyPages { server, .. } => server,
        }
    }

    /// The JSON-RPC error code, for [`Error::Rpc`].
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's stderr tail, when the error is about the server going away.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            Error::ServerClosed { stderr_tail, .. } => Some(stderr_tail),
            _ => None,
        }
    }
}

struct ExitText<'a>(&'a Option<ExitStatus>);

impl fmt::Display for ExitText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(status) => write!(f, " ({status})"),
            None => Ok(()),
        }
    }
}

struct TailText<'a>(&'a str);

impl fmt::Display for TailText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("; its stderr ended with:")?;
        for line in self.0.lines() {
            write!(f, "\n  | {line}")?;
        }
        Ok(())
    }
}
