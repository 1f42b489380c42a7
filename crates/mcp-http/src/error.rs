//! The errors of setting up a Streamable HTTP connection.

use mcp_transport::ServerName;

/// Why a Streamable HTTP connection could not be set up.
///
/// Failures after setup (an unreachable server, an expired session, an HTTP error status) are
/// not errors of this crate: they reach the session as a closed connection or as a JSON-RPC
/// error response, and are kept in the connection's diagnostics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("server `{server}`: invalid url `{url}`: {reason}")]
    InvalidUrl {
        /// The server.
        server: ServerName,
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configured header has an invalid name or value.
    #[error("server `{server}`: invalid header `{name}`: {reason}")]
    InvalidHeader {
        /// The server.
        server: ServerName,
        /// The header's name as configured.
        name: String,
        /// What is wrong with it (never the value, which may be a secret).
        reason: String,
    },
    /// The HTTP client could not be built (for example, no TLS roots).
    #[error("server `{server}`: cannot set up the HTTP client: {source}")]
    Client {
        /// The server.
        server: ServerName,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}
