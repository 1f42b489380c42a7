//! The peer's input: the lines this side sends, written by the sending task when the input is
//! idle and by the connection driver otherwise.
//!
//! A sequential request used to go caller → channel → driver task (usually on another worker
//! thread) → pipe, a thread hand-off per line. Now [`Outbox::send`] writes the line itself when
//! nothing is queued before it and no write is in progress: one non-blocking write under a
//! short lock, with no `.await` in between, so a dropped caller cannot leave half a line behind.
//! Whatever cannot be written at once (the pipe is full, or another write is in progress) is left
//! to the driver ([`write_loop`]), which owns flushing, batching and the write timeout. A line
//! sent while other requests are in flight goes to the driver too ([`Outbox::send_batched`]), so
//! that many concurrent calls still share one write.
//!
//! Ordering: a line is written directly only when the writer holds no unwritten bytes and the
//! backlog is empty, both checked under the lock; otherwise it goes to the back of the backlog,
//! which the driver moves into the writer only once the writer is empty. So lines reach the peer
//! in the order their `send` calls returned.
//!
//! Bound: the backlog holds at most a configured number of bytes (a line is taken whatever its
//! size when nothing waits). A line that would take it beyond that is refused, the outbox is
//! given up, and the driver stops, even in the middle of a write, reporting
//! [`WriteEnd::Backlog`]: a peer that reads a page now and then makes progress, so the write
//! timeout alone would let answers to its requests pile up for good.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mcp_transport::{BoxedWrite, Diagnostics, FrameWriter, ServerName};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::session::lock;

/// Most bytes moved from the backlog into one flush.
const MAX_BATCH: usize = 1024 * 1024;

/// The sending side of a peer's input, shared by the handles and the driver.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Lines that could not be written at once, in order; read by the driver only.
    backlog: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes in `backlog`: counted in when a line enters, out when the driver takes it.
    n_backlog_bytes: AtomicUsize,
    /// Most bytes `backlog` may hold (a single line is taken whatever its size when the backlog
    /// is empty).
    max_backlog: usize,
    /// Cancelled when a line would have taken the backlog beyond `max_backlog`: the peer reads
    /// too slowly, and the input is given up (the driver stops even in the middle of a write).
    overflowed: CancellationToken,
}

struct State {
    writer: FrameWriter<BoxedWrite>,
    backlog: mpsc::UnboundedReceiver<Vec<u8>>,
    /// The driver's waker, woken when a direct write leaves bytes behind.
    driver: Option<Waker>,
}

/// Why the writer stopped.
#[derive(Debug)]
pub(crate) enum WriteEnd {
    /// The input was closed on request, or by [`Outbox::close`].
    Closed,
    /// A write failed (the peer closed its input): the operating system's error.
    Failed(Arc<std::io::Error>),
    /// A write made no progress for the write timeout.
    Stalled,
    /// More than this many bytes waited in the backlog: the peer reads too slowly.
    Backlog { limit: usize },
}

impl Outbox {
    /// An outbox writing through `writer`, whose backlog holds at most `max_backlog` bytes.
    pub(crate) fn new(writer: FrameWriter<BoxedWrite>, max_backlog: usize) -> Outbox {
        let (backlog, backlog_rx) = mpsc::unbounded_channel();
        Outbox {
            state: Mutex::new(State {
                writer,
                backlog: backlog_rx,
                driver: None,
            }),
            backlog,
            n_backlog_bytes: AtomicUsize::new(0),
            max_backlog,
            overflowed: CancellationToken::new(),
        }
    }

    /// The backlog's limit, once a line would have taken the backlog beyond it.
    pub(crate) fn overflowed(&self) -> Option<usize> {
        self.overflowed.is_cancelled().then_some(self.max_backlog)
    }

    /// Queues a line for the driver; false (and the outbox given up) when the backlog would
    /// grow beyond its limit, or when the input is closed.
    fn push_backlog(&self, line: Vec<u8>) -> bool {
        let len = line.len();
        let before = self.n_backlog_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before.saturating_add(len) > self.max_backlog {
            self.n_backlog_bytes.fetch_sub(len, Ordering::AcqRel);
            self.overflowed.cancel();
            return false;
        }
        if self.backlog.send(line).is_err() {
            self.n_backlog_bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Sends one line (without its newline). Returns false if the input is closed.
    ///
    /// Never waits: the line is written at once when the input is idle and the pipe has room,
    /// and is otherwise left to the driver.
    pub(crate) fn send(&self, line: Vec<u8>) -> bool {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Another task is writing: queue behind it.
            Err(TryLockError::WouldBlock) => return self.push_backlog(line),
        };
        if state.writer.is_closed() {
            return false;
        }
        let idle = state.writer.n_pending() == 0 && state.backlog.is_empty();
        // Writing needs a runtime (the writer may be reactor- or blocking-pool-backed); a send
        // from outside one, e.g. a drop after the runtime is gone, is left to the driver.
        if !idle || tokio::runtime::Handle::try_current().is_err() {
            drop(state);
            return self.push_backlog(line);
        }
        state.writer.queue(&line);
        // One poll: a write that would block is finished by the driver, which registers its own
        // waker when it polls the same flush; this poll's no-op waker is simply replaced.
        let flushed = pin!(state.writer.flush()).poll(&mut Context::from_waker(Waker::noop()));
        if !matches!(flushed, Poll::Ready(Ok(()))) {
            // Bytes are left (or the write failed, which the driver's own flush will see again
            // and report): hand them over.
            if let Some(driver) = state.driver.take() {
                driver.wake();
            }
        }
        true
    }

    /// Sends one line through the driver, batched with whatever else is ready: for a line that
    /// is one of many in flight, where one write for the batch beats one per line. Returns false
    /// if the input is closed.
    pub(crate) fn send_batched(&self, line: Vec<u8>) -> bool {
        self.push_backlog(line)
    }

    /// Closes the input: the peer sees end of file, and later sends return false.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.writer.close();
        state.backlog.close();
        state.driver = None;
    }

    /// Ready when the writer holds bytes to flush (after moving a batch from the backlog), or
    /// with false when the input is closed.
    fn poll_work(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = lock(&self.state);
        if state.writer.is_closed() || self.overflowed().is_some() {
            return Poll::Ready(false);
        }
        if state.writer.n_pending() > 0 {
            return Poll::Ready(true);
        }
        let state = &mut *state;
        while state.writer.n_pending() < MAX_BATCH {
            match state.backlog.poll_recv(cx) {
                Poll::Ready(Some(line)) => {
                    self.n_backlog_bytes.fetch_sub(line.len(), Ordering::AcqRel);
                    state.writer.queue(&line);
                }
                // The sender lives in `self`, so the backlog closes only with the input.
                Poll::Ready(None) => return Poll::Ready(state.writer.n_pending() > 0),
                Poll::Pending => break,
            }
        }
        if state.writer.n_pending() > 0 {
            return Poll::Ready(true);
        }
        if !state
            .driver
            .as_ref()
            .is_some_and(|driver| driver.will_wake(cx.waker()))
        {
            state.driver = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Polls the writer's flush once under the lock; `FrameWriter::flush` is cancel safe, so a
    /// flush spread over several polls (and several flush futures) writes every byte once.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), mcp_transport::Error>> {
        let mut state = lock(&self.state);
        let flushed = pin!(state.writer.flush()).poll(cx);
        flushed
    }

    fn n_pending(&self) -> usize {
        lock(&self.state).writer.n_pending()
    }
}

/// Writes what the senders could not write themselves, batching what is ready into one flush,
/// until the input is closed.
pub(crate) async fn write_loop(
    server: &ServerName,
    diagnostics: &Diagnostics,
    outbox: &Outbox,
    write_timeout: Option<Duration>,
) -> WriteEnd {
    let mut end = WriteEnd::Closed;
    // Created once: re-creating the cancellation future per batch costs more than the batch.
    let close_requested = diagnostics.input_close_requested();
    tokio::pin!(close_requested);
    let overflowed = outbox.overflowed.cancelled();
    tokio::pin!(overflowed);
    loop {
        let has_work = tokio::select! {
            biased;
            () = &mut close_requested => break,
            () = &mut overflowed => break,
            has_work = poll_fn(|cx| outbox.poll_work(cx)) => has_work,
        };
        if !has_work {
            break;
        }
        let flush = async {
            match write_timeout {
                Some(limit) => flush_with_progress_timeout(outbox, limit).await,
                None => Some(poll_fn(|cx| outbox.poll_flush(cx)).await),
            }
        };
        let flushed = tokio::select! {
            flushed = flush => flushed,
            () = &mut close_requested => break,
            () = &mut overflowed => break,
        };
        match flushed {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                tracing::debug!(server = %server, error = %error, "writing to the peer failed");
                let cause = match error {
                    mcp_transport::Error::Write { source, .. } => source,
                    other => std::io::Error::other(other.to_string()),
                };
                end = WriteEnd::Failed(Arc::new(cause));
                break;
            }
            None => {
                end = WriteEnd::Stalled;
                break;
            }
        }
    }
    if let Some(limit) = outbox.overflowed() {
        end = WriteEnd::Backlog { limit };
    }
    outbox.close();
    tracing::debug!(server = %server, "output to the peer closed");
    end
}

/// Flushes, failing with `None` only when no byte could be written for `limit` (a slow but
/// moving reader is fine).
async fn flush_with_progress_timeout(
    outbox: &Outbox,
    limit: Duration,
) -> Option<Result<(), mcp_transport::Error>> {
    loop {
        // While the writer holds bytes, senders queue behind them, so only this flush changes
        // the count.
        let before = outbox.n_pending();
        match tokio::time::timeout(limit, poll_fn(|cx| outbox.poll_flush(cx))).await {
            Ok(flushed) => return Some(flushed),
            Err(_) if outbox.n_pending() < before => continue,
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use mcp_transport::{Transport, TransportOptions};
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Sends `n_lines` numbered lines, every `batched_every`-th through the driver, into a pipe
    /// of `capacity` bytes, and checks that the peer reads them all, once each, in order.
    #[track_caller]
    fn check(n_lines: usize, batched_every: usize, capacity: usize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = ServerName::new("t");
            let (write, mut peer) = tokio::io::duplex(capacity);
            let (_unused, read) = tokio::io::duplex(16);
            let transport =
                Transport::from_io(server.clone(), read, write, &TransportOptions::default());
            let (_reader, writer, diagnostics) = transport.into_parts();
            let outbox = Outbox::new(writer, usize::MAX);
            let mut expected = Vec::new();
            for line_idx in 0..n_lines {
                let line = format!(
                    "{{\"n\":{line_idx},\"pad\":\"{}\"}}",
                    "x".repeat(line_idx % 50)
                );
                expected.extend_from_slice(line.as_bytes());
                expected.push(b'\n');
                let sent = if line_idx % batched_every == batched_every - 1 {
                    outbox.send_batched(line.into_bytes())
                } else {
                    outbox.send(line.into_bytes())
                };
                assert!(sent);
            }
            let reading = async {
                let mut received = vec![0; expected.len()];
                peer.read_exact(&mut received).await.unwrap();
                received
            };
            let writing = write_loop(&server, &diagnostics, &outbox, Some(Duration::from_secs(5)));
            tokio::select! {
                received = reading => assert_eq!(
                    String::from_utf8_lossy(&received),
                    String::from_utf8_lossy(&expected)
                ),
                end = writing => panic!("the writer ended first: {end:?}"),
            }
            outbox.close();
            assert!(!outbox.send(b"{}".to_vec()));
            assert!(!outbox.send_batched(b"{}".to_vec()));
        });
    }

    #[test]
    fn the_backlog_is_bounded_in_bytes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = ServerName::new("t");
            // A peer that never reads.
            let (write, _peer) = tokio::io::duplex(64);
            let (_unused, read) = tokio::io::duplex(16);
            let transport =
                Transport::from_io(server.clone(), read, write, &TransportOptions::default());
            let (_reader, writer, diagnostics) = transport.into_parts();
            let outbox = Outbox::new(writer, 1000);
            // One line bigger than the limit is taken when nothing waits.
            assert!(outbox.send_batched(vec![b'x'; 2000]));
            assert_eq!(outbox.overflowed(), None);
            // The driver moves it into the writer, which cannot get rid of it.
            let writing = write_loop(&server, &diagnostics, &outbox, None);
            tokio::pin!(writing);
            assert!(
                tokio::time::timeout(Duration::from_millis(50), &mut writing)
                    .await
                    .is_err()
            );
            let mut n_accepted = 0;
            while outbox.send_batched(vec![b'y'; 100]) {
                n_accepted += 1;
                assert!(n_accepted <= 10, "the backlog took more than 1000 bytes");
            }
            assert_eq!(n_accepted, 10);
            assert_eq!(outbox.overflowed(), Some(1000));
            // Given up: later lines are refused, and the driver ends saying why.
            assert!(!outbox.send(b"{}".to_vec()));
            let end = tokio::time::timeout(Duration::from_secs(5), writing)
                .await
                .unwrap();
            assert!(matches!(end, WriteEnd::Backlog { limit: 1000 }), "{end:?}");
        });
    }

    #[test]
    fn lines_arrive_once_and_in_order() {
        // Everything fits: every line but the batched ones is written by the sender.
        check(20, 3, 64 * 1024);
        // The pipe fills mid-line: the driver finishes that line, then writes the backlog.
        check(500, 7, 100);
        check(300, 1, 64);
        check(300, usize::MAX, 37);
    }
}
