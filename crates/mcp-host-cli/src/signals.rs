//! The signals that stop `serve`, listened to for the whole run so that none is missed.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM: the first stops serving and starts an orderly shutdown, the second kills
/// every server at once.
#[derive(Debug)]
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub(crate) fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Completes at the next SIGINT or SIGTERM; returns the exit code it calls for.
    pub(crate) async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.interrupt.recv() => 130,
            _ = self.terminate.recv() => 143,
        }
    }
}
