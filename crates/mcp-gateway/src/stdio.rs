//! Serving the gateway to one client on this process's stdin and stdout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mcp_host::McpHost;
use mcp_transport::{ServerName, Transport, TransportOptions};
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
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd);
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd);
    match (stdin, stdout) {
        (Ok(stdin), Ok(stdout)) => Transport::from_io(client, stdin, stdout, &options),
        _ => Transport::from_io(client, tokio::io::stdin(), tokio::io::stdout(), &options),
    }
}
