//! An in-process fake MCP server connected through in-memory pipes, for tests that need no real process.

use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fake::{serve_with_log, Exit, FakeConfig};

/// Capacity of each in-memory pipe between the client and the in-process fake.
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// The client side of an in-process fake server started by [`spawn_in_process`].
///
/// # Drop behavior
/// Dropping `client_write` is an EOF for the server, which then ends (unless `ignore_eof` is set).
/// Dropping everything else does not stop the server task: cancel `stop` for that.
#[derive(Debug)]
pub struct InProcessFake {
    /// Server → client: read the server's output lines here.
    pub client_read: DuplexStream,
    /// Client → server: write request lines here.
    pub client_write: DuplexStream,
    /// Cancel to stop the server task at once (its output then reads EOF).
    pub stop: CancellationToken,
    /// Receives how the server ended; it errs (the sender is dropped) when the server was stopped through `stop`.
    pub exit: oneshot::Receiver<std::io::Result<Exit>>,
}

/// Starts [`serve_with_log`] on `tracker` behind two in-memory pipes of [`PIPE_CAPACITY`] bytes.
///
/// Server log lines are discarded.
/// Process-level flags (`ignore_sigterm`, `spawn_grandchild`, `grandchild`) have no effect;
/// crash flags end the server (closing its output) instead of exiting the process.
pub fn spawn_in_process(config: FakeConfig, tracker: &TaskTracker) -> InProcessFake {
    let (client_write, server_read) = tokio::io::duplex(PIPE_CAPACITY);
    let (server_write, client_read) = tokio::io::duplex(PIPE_CAPACITY);
    let stop = CancellationToken::new();
    let (exit_tx, exit_rx) = oneshot::channel();
    let server_stop = stop.clone();
    tracker.spawn(async move {
        let served = server_stop
            .run_until_cancelled(serve_with_log(
                config,
                server_read,
                server_write,
                tokio::io::sink(),
            ))
            .await;
        if let Some(served) = served {
            let _ = exit_tx.send(served);
        }
    });
    InProcessFake {
        client_read,
        client_write,
        stop,
        exit: exit_rx,
    }
}
