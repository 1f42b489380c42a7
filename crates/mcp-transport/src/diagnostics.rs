//! What the host knows about a server beyond its messages: stderr tail, exit status, input state.

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::stderr::StderrTail;
use crate::transport::Redactor;
use crate::{ServerName, TransportOptions};

/// Shared view of a server's side channels, used to explain failures.
///
/// Cloning is cheap; all clones observe the same server.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    inner: Arc<Inner>,
}

struct Inner {
    server: ServerName,
    /// Whether a process stands behind the transport (false for an in-memory pipe).
    has_process: bool,
    redactor: Option<Redactor>,
    tail: Mutex<StderrTail>,
    /// Bytes of the lines the server wrote to stderr (or that were recorded), newlines included.
    stderr_bytes: std::sync::atomic::AtomicU64,
    exit_status: Mutex<Option<ExitStatus>>,
    exited: CancellationToken,
    stderr_done: CancellationToken,
    close_input: CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diagnostics")
            .field("server", &self.server)
            .field("exited", &self.exited.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Diagnostics {
    pub(crate) fn new(
        server: ServerName,
        options: &TransportOptions,
        has_process: bool,
    ) -> Diagnostics {
        Diagnostics {
            inner: Arc::new(Inner {
                server,
                has_process,
                redactor: options.redactor.clone(),
                tail: Mutex::new(StderrTail::new(
                    options.stderr_tail_lines,
                    options.stderr_tail_bytes,
                )),
                stderr_bytes: std::sync::atomic::AtomicU64::new(0),
                exit_status: Mutex::new(None),
                exited: CancellationToken::new(),
                stderr_done: CancellationToken::new(),
                close_input: CancellationToken::new(),
            }),
        }
    }

    /// Diagnostics for a server that is not a child process (reached over a network, say).
    ///
    /// Its "stderr tail" holds what the transport [recorded](Diagnostics::record) about the
    /// connection; there is no exit status to wait for.
    pub fn remote(server: ServerName, options: &TransportOptions) -> Diagnostics {
        let diagnostics = Diagnostics::new(server, options, false);
        diagnostics.mark_stderr_done();
        diagnostics
    }

    /// Keeps one line about the connection in the bounded tail (after redaction), for error
    /// reports; used by transports without a stderr of their own.
    pub fn record(&self, line: &str) {
        let line = self.redact(line);
        self.push_stderr_line(&line);
    }

    /// The server these diagnostics describe.
    pub fn server(&self) -> &ServerName {
        &self.inner.server
    }

    /// The last lines the server wrote to stderr (bounded), joined by newlines.
    pub fn stderr_tail(&self) -> String {
        match self.inner.tail.lock() {
            Ok(tail) => tail.render(),
            Err(poisoned) => poisoned.into_inner().render(),
        }
    }

    /// The server's exit status, once it has exited and been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match self.inner.exit_status.lock() {
            Ok(status) => *status,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Whether the server process has exited and been reaped (always false without a process).
    pub fn has_exited(&self) -> bool {
        self.inner.exited.is_cancelled()
    }

    /// Waits at most `timeout` for the server to exit; returns its status if it did.
    ///
    /// Without a process (an in-memory transport) there is nothing to wait for: it returns `None`
    /// at once.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    pub async fn wait_for_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        if !self.inner.has_process {
            return None;
        }
        let _ = tokio::time::timeout(timeout, self.inner.exited.cancelled()).await;
        self.exit_status()
    }

    /// Waits at most `timeout` until the server's stderr has been read to its end, so that the
    /// tail is complete. Returns immediately for transports without stderr.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    pub async fn wait_for_stderr_end(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.stderr_done.cancelled()).await;
    }

    /// Asks whoever owns the writing half to close the server's input.
    pub fn request_input_close(&self) {
        self.inner.close_input.cancel();
    }

    /// Whether closing the input was requested.
    pub fn is_input_close_requested(&self) -> bool {
        self.inner.close_input.is_cancelled()
    }

    /// Completes when closing the input is requested (see [`Diagnostics::request_input_close`]).
    pub fn input_close_requested(&self) -> WaitForCancellationFuture<'_> {
        self.inner.close_input.cancelled()
    }

    /// Applies the transport's redactor (if any) to text that came from the server.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.inner.redactor {
            Some(redactor) => std::borrow::Cow::Owned(redactor(text)),
            None => std::borrow::Cow::Borrowed(text),
        }
    }

    /// How many bytes of stderr lines the server wrote (or were recorded for it), newlines
    /// included.
    pub fn stderr_bytes(&self) -> u64 {
        self.inner
            .stderr_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn push_stderr_line(&self, line: &str) {
        let n_bytes = u64::try_from(line.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        self.inner
            .stderr_bytes
            .fetch_add(n_bytes, std::sync::atomic::Ordering::Relaxed);
        match self.inner.tail.lock() {
            Ok(mut tail) => tail.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }

    pub(crate) fn mark_stderr_done(&self) {
        self.inner.stderr_done.cancel();
    }

    pub(crate) fn set_exited(&self, status: Option<ExitStatus>) {
        match self.inner.exit_status.lock() {
            Ok(mut slot) => *slot = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
        self.inner.exited.cancel();
    }
}
