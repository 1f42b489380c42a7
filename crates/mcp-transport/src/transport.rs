//! The message channel to one server, whatever carries it (a child's stdio or an in-memory pipe).

use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};

use crate::{Diagnostics, FrameReader, FrameWriter, ServerName, DEFAULT_MAX_LINE_LEN};

/// A boxed byte source (a server's stdout, or one end of a pipe).
pub type BoxedRead = Pin<Box<dyn AsyncRead + Send>>;
/// A boxed byte sink (a server's stdin, or one end of a pipe).
pub type BoxedWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// Rewrites text that came from a server before it is logged or kept (to mask secrets).
pub type Redactor = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Limits and sizes of a transport.
#[derive(Clone)]
pub struct TransportOptions {
    /// Longest accepted line from the server, in bytes (default 16 MiB).
    pub max_line_len: usize,
    /// How many stderr lines to keep for error reports (default 64).
    pub stderr_tail_lines: usize,
    /// How many stderr bytes to keep for error reports (default 16 KiB).
    pub stderr_tail_bytes: usize,
    /// Applied to every line of the server's output that is logged or kept (stderr lines, the
    /// tail, skipped stdout lines), for example to mask secrets the server was given.
    pub redactor: Option<Redactor>,
}

impl std::fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportOptions")
            .field("max_line_len", &self.max_line_len)
            .field("stderr_tail_lines", &self.stderr_tail_lines)
            .field("stderr_tail_bytes", &self.stderr_tail_bytes)
            .field("redactor", &self.redactor.is_some())
            .finish()
    }
}

impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions {
            max_line_len: DEFAULT_MAX_LINE_LEN,
            stderr_tail_lines: 64,
            stderr_tail_bytes: 16 * 1024,
            redactor: None,
        }
    }
}

/// The framed message channel to one server.
///
/// Split it with [`Transport::into_parts`]: the session reads from the [`FrameReader`], writes
/// through the [`FrameWriter`], and explains failures with the [`Diagnostics`].
#[derive(Debug)]
pub struct Transport {
    reader: FrameReader<BoxedRead>,
    writer: FrameWriter<BoxedWrite>,
    diagnostics: Diagnostics,
}

impl Transport {
    /// Builds a transport over any pair of byte streams (no process, no stderr).
    pub fn from_io(
        server: ServerName,
        read: impl AsyncRead + Send + 'static,
        write: impl AsyncWrite + Send + 'static,
        options: &TransportOptions,
    ) -> Transport {
        let diagnostics = Diagnostics::new(server.clone(), options, false);
        diagnostics.mark_stderr_done();
        Transport::new(diagnostics, Box::pin(read), Box::pin(write), options)
    }

    /// Builds a transport over a pair of byte streams, sharing `diagnostics` with whoever carries
    /// the bytes (for example a network bridge that records its failures there).
    pub fn with_diagnostics(
        diagnostics: Diagnostics,
        read: impl AsyncRead + Send + 'static,
        write: impl AsyncWrite + Send + 'static,
        options: &TransportOptions,
    ) -> Transport {
        Transport::new(diagnostics, Box::pin(read), Box::pin(write), options)
    }

    pub(crate) fn new(
        diagnostics: Diagnostics,
        read: BoxedRead,
        write: BoxedWrite,
        options: &TransportOptions,
    ) -> Transport {
        let server = diagnostics.server().clone();
        Transport {
            reader: FrameReader::new(server.clone(), read, options.max_line_len)
                .with_redactor(options.redactor.clone()),
            writer: FrameWriter::new(server, write),
            diagnostics,
        }
    }

    /// The server at the other end.
    pub fn server(&self) -> &ServerName {
        self.diagnostics.server()
    }

    /// The diagnostics shared with the process handle, if any.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// Splits the transport into its reading half, writing half and diagnostics.
    pub fn into_parts(self) -> (FrameReader<BoxedRead>, FrameWriter<BoxedWrite>, Diagnostics) {
        (self.reader, self.writer, self.diagnostics)
    }
}

/// The far end of an in-memory transport: what an in-process server reads and writes.
#[derive(Debug)]
pub struct PeerIo {
    /// The server reads the client's messages from here.
    pub read: DuplexStream,
    /// The server writes its messages here.
    pub write: DuplexStream,
}

/// Creates an in-memory transport and the peer end for an in-process server.
pub fn in_memory(server: ServerName, options: &TransportOptions) -> (Transport, PeerIo) {
    let (client_write, server_read) = tokio::io::duplex(64 * 1024);
    let (server_write, client_read) = tokio::io::duplex(64 * 1024);
    let transport = Transport::from_io(server, client_read, client_write, options);
    (
        transport,
        PeerIo {
            read: server_read,
            write: server_write,
        },
    )
}
