//! Serving the gateway to one client on this process's stdin and stdout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mcp_host::McpHost;
use mcp_transport::{BoxedRead, BoxedWrite, ServerName, Transport, TransportOptions};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::connection::{serve_connection, Stop};
use crate::relay::ClientRelay;
use crate::Error;

/// How long the stdio connection may take to unwind once asked to stop (it gives its requests
/// and subscriptions at most one second itself).
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Serves on stdin/stdout until the client goes away or `stop` completes.
pub(crate) async fn serve_stdio(
    host: Arc<McpHost>,
    relay: Arc<ClientRelay>,
    max_handlers: usize,
    client: crate::connection::Client,
    stop: impl Future<Output = ()>,
) -> Result<Stop, Error> {
    // The connection runs on a worker thread, where the I/O driver wakes it and where the
    // downstream session's task wakes it again in the same thread; on a `block_on` thread each
    // of those wakes would be one more thread hand-off per call.
    let stopping = CancellationToken::new();
    let mut serving = JoinSet::new();
    serving.spawn(serve_connection(
        host,
        relay,
        max_handlers,
        client,
        stdio_transport(),
        stopping.clone().cancelled_owned(),
    ));
    let joined = tokio::select! {
        joined = serving.join_next() => joined,
        () = stop => {
            stopping.cancel();
            tokio::time::timeout(STOP_WAIT, serving.join_next())
                .await
                .map_err(|_| Error::StopTimeout(STOP_WAIT))?
        }
    };
    match joined {
        Some(Ok(stop)) => Ok(stop),
        Some(Err(error)) => Err(Error::Task(error)),
        // The set held the one task just spawned; it cannot be empty.
        None => Ok(Stop::EndOfInput),
    }
}

/// This process's stdin and stdout as a transport.
///
/// When they are pipes (as MCP clients start servers) they are registered with tokio's reactor
/// directly; `tokio::io::stdin()` would hand every read and write to a blocking thread, which
/// costs a thread hop per message.
pub fn stdio_transport() -> Transport {
    use std::os::fd::AsFd as _;
    use tokio::net::unix::pipe;
    let options = TransportOptions::default();
    let client = ServerName::new("client");
    // Each end on its own: a pipe is registered (which makes it non-blocking), anything else
    // (a file, /dev/null, a terminal) is read or written on a blocking thread. Only a pipe is
    // ever made non-blocking, so the other end never sees EAGAIN.
    let stdin: BoxedRead = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .filter(is_pipe)
        .map(pipe::Receiver::from_owned_fd)
    {
        Some(Ok(pipe)) => Box::pin(pipe),
        _ => Box::pin(tokio::io::stdin()),
    };
    let stdout: BoxedWrite = match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .filter(is_pipe)
        .map(pipe::Sender::from_owned_fd)
    {
        Some(Ok(pipe)) => Box::pin(pipe),
        _ => Box::pin(tokio::io::stdout()),
    };
    Transport::from_io(client, stdin, stdout, &options)
}

fn is_pipe(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    // A duplicate of the descriptor, to read its type without closing the original.
    fd.try_clone()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .is_ok_and(|metadata| metadata.file_type().is_fifo())
}
