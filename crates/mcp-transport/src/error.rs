//! The error type of the transport crate.

use std::io;
use std::path::PathBuf;

use crate::ServerName;

/// Everything that can go wrong while moving bytes to and from a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server process could not be started.
    #[error("failed to start server `{server}` (program `{}`)", program.display())]
    Spawn {
        /// The server.
        server: ServerName,
        /// The program that was to be run.
        program: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// Reading the server's output failed.
    #[error("failed to read from server `{server}`")]
    Read {
        /// The server.
        server: ServerName,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// Writing to the server's input failed (often: the server exited).
    #[error("failed to write to server `{server}`")]
    Write {
        /// The server.
        server: ServerName,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The server sent a line longer than the configured maximum.
    #[error("server `{server}` sent a line longer than {limit} bytes")]
    LineTooLong {
        /// The server.
        server: ServerName,
        /// The configured maximum line length, in bytes.
        limit: usize,
    },
    /// The server's input was closed by the host; nothing more can be written.
    #[error("the input of server `{server}` is closed")]
    InputClosed {
        /// The server.
        server: ServerName,
    },
}
