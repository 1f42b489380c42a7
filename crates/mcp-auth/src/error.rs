//! Why authorizing with a remote server failed.

use std::path::PathBuf;

use mcp_transport::ServerName;

/// Why authorizing with a remote server failed. Every variant names the server; none carries a
/// token, a code or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable token, and nothing this process can do about it without a person: the user must
    /// log in (again).
    #[error("server `{server}` needs login (run `mcp-host login {server}`): {reason}")]
    NeedsLogin {
        /// The server.
        server: ServerName,
        /// Why the stored token cannot be used, or why there is none.
        reason: String,
    },
    /// A metadata document (protected resource or authorization server) could not be found or
    /// read.
    #[error("server `{server}`: OAuth discovery failed: {reason}")]
    Discovery {
        /// The server.
        server: ServerName,
        /// What was tried and what went wrong.
        reason: String,
    },
    /// A metadata document, or an answer of the authorization server, is refused because trusting
    /// it would be unsafe: an issuer that is not the one asked for, an endpoint over plain HTTP on
    /// another host than this machine, a redirect to another host, a resource that is not this
    /// server, no PKCE with S256.
    #[error("server `{server}`: refused {what}: {reason}")]
    Refused {
        /// The server.
        server: ServerName,
        /// What was refused (a URL or a document).
        what: String,
        /// Why.
        reason: String,
    },
    /// The authorization server offers no way to identify this client.
    #[error("server `{server}`: client registration failed: {reason}")]
    Registration {
        /// The server.
        server: ServerName,
        /// Why.
        reason: String,
    },
    /// The authorization step did not return a code: the user or the authorization server said
    /// no, the redirect never came, or it did not match the request.
    #[error("server `{server}`: authorization failed: {reason}")]
    Authorization {
        /// The server.
        server: ServerName,
        /// Why.
        reason: String,
    },
    /// The token endpoint refused a request, or answered something that is not a token.
    #[error("server `{server}`: the token endpoint refused the {grant} request: {reason}")]
    Token {
        /// The server.
        server: ServerName,
        /// The grant asked for (`authorization_code`, `refresh_token`, `client_credentials`).
        grant: &'static str,
        /// The OAuth error code and description, or what was wrong with the answer.
        reason: String,
    },
    /// An OAuth endpoint could not be reached, or its answer could not be read.
    #[error("server `{server}`: {url}: {reason}")]
    Http {
        /// The server.
        server: ServerName,
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server keeps asking for a scope that authorizing again did not give.
    #[error("server `{server}` asks for scope `{scope}`, which authorizing again did not grant")]
    InsufficientScope {
        /// The server.
        server: ServerName,
        /// The scope it asks for.
        scope: String,
    },
    /// The token file could not be read or written.
    #[error("server `{server}`: token file {}", path.display())]
    Store {
        /// The server.
        server: ServerName,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The authorization settings are unusable (a bad key, a bad URL).
    #[error("server `{server}`: invalid authorization settings: {reason}")]
    Config {
        /// The server.
        server: ServerName,
        /// What is wrong (never a secret).
        reason: String,
    },
}

impl Error {
    /// Whether the error means that a person has to log in.
    pub fn needs_login(&self) -> bool {
        matches!(self, Error::NeedsLogin { .. })
    }
}
