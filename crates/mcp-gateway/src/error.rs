//! The one error type of the gateway crate.

use std::time::Duration;

/// Why the gateway could not start serving, or stopped with a failure.
///
/// Display strings say only this layer's part; the cause is reached through `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An HTTP listener on a non-loopback address needs a bearer token.
    #[error(
        "refusing to serve on `{addr}` without authentication: it is not a loopback address; \
         set a bearer token (`--bearer-token-env NAME` on the command line), or bind 127.0.0.1"
    )]
    Unauthenticated {
        /// The address as given.
        addr: String,
    },
    /// The address is not `PORT` or `HOST:PORT`, or its host could not be resolved.
    #[error("`{addr}` is not PORT or HOST:PORT")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What the resolver said.
        #[source]
        source: std::io::Error,
    },
    /// Resolving the address did not finish in time.
    #[error("resolving `{addr}` took longer than {timeout:?}")]
    ResolveTimeout {
        /// The address as given.
        addr: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// The address resolved to nothing.
    #[error("`{addr}` resolves to no address")]
    NoAddress {
        /// The address as given.
        addr: String,
    },
    /// The listener could not be bound.
    #[error("cannot listen on `{addr}`")]
    Bind {
        /// The address as given.
        addr: String,
        /// Why binding failed (for example, the port is taken).
        #[source]
        source: std::io::Error,
    },
    /// The bound address could not be read back.
    #[error("cannot read the bound address")]
    LocalAddr(#[source] std::io::Error),
    /// The HTTP server stopped with an error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The task serving stdio ended abnormally.
    #[error("the gateway task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The named client to serve on stdio is not in the policies.
    #[error("no client `{name}` is configured in the `gateway.clients` of the configuration")]
    UnknownClient {
        /// The name asked for.
        name: String,
    },
    /// The stdio connection did not unwind in time after being asked to stop.
    #[error("the gateway did not stop within {0:?} of being asked to")]
    StopTimeout(Duration),
}
