//! The threads that start every server, so that a server's parent thread lives as long as the
//! host process.
//!
//! Servers are started with `PR_SET_PDEATHSIG = SIGKILL`, so that the kernel kills them when the
//! host dies, even by SIGKILL. But Linux sends that signal when the *thread* that created the
//! child (with `clone` or `fork`) ends, not the process: a server started from a tokio
//! blocking-pool thread (which ends after 10 s idle), from a worker that leaves through
//! `block_in_place`, or from any short-lived thread would be killed with that thread. So every
//! spawn is handed to a small set of threads (one per CPU, at most 4), started on first use and
//! never ended: the signal then comes only when the host process itself goes.
//!
//! The calling thread waits for the spawn as it did when it started the child itself (a spawn
//! returns once the program is executed), plus a hand-off to a spawner thread and back.

use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Work for the spawner thread.
type Job = Box<dyn FnOnce() + Send>;

/// How long a caller waits for its spawn before giving up (a child that shows up later is
/// killed: its `Child` is dropped with `kill_on_drop`; `spawn_linux::Unclaimed` kills it likewise).
const SPAWN_WAIT: Duration = Duration::from_secs(30);

/// Starts `command` on a spawner thread, registered with the caller's tokio runtime.
///
/// Blocks the calling thread until the program is executed, as `Command::spawn` does.
pub(crate) fn spawn(mut command: tokio::process::Command) -> io::Result<tokio::process::Child> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| io::Error::other("servers can only be started inside a tokio runtime"))?;
    run(move || {
        // The child's pipes and its reaper register with the caller's runtime.
        let _entered = runtime.enter();
        command.spawn()
    })
}

/// Runs `start` (which starts a server) on a spawner thread and returns what it returns.
///
/// Blocks the calling thread until then. If the caller stops waiting (after 30 s), the result is
/// dropped when it comes, so whatever it holds must clean up after itself when dropped.
pub(crate) fn run<T: Send + 'static>(
    start: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = reply_tx.send(start());
    });
    spawner()?
        .send(job)
        .map_err(|_| io::Error::other("the thread that starts servers has ended"))?;
    match reply_rx.recv_timeout(SPAWN_WAIT) {
        Ok(started) => started,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the server was not started within {} s",
                SPAWN_WAIT.as_secs()
            ),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::other(
            "the thread that starts servers dropped the request",
        )),
    }
}

/// The sender of the spawner threads' queue, starting the threads on first use.
fn spawner() -> io::Result<&'static mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        // As many as there are CPUs (up to 4): a spawn is CPU work, and servers started at once
        // should not wait for each other more than before.
        let n_threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut n_started = 0;
        let mut failure = None;
        for thread_idx in 0..n_threads {
            let job_rx = job_rx.clone();
            let started = std::thread::Builder::new()
                .name(format!("mcp-server-spawner-{thread_idx}"))
                .spawn(move || run_jobs(&job_rx));
            match started {
                Ok(_detached) => n_started += 1,
                Err(error) => failure = Some(error.to_string()),
            }
        }
        match (n_started, failure) {
            (0, Some(error)) => Err(error),
            _ => Ok(job_tx),
        }
    });
    match spawner {
        Ok(sender) => Ok(sender),
        Err(error) => Err(io::Error::other(format!(
            "cannot start the thread that starts servers: {error}"
        ))),
    }
}

/// The loop of one spawner thread. The sender lives in a static, so it ends only with the
/// process; a job that panicked does not end it either.
fn run_jobs(job_rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match job_rx.lock() {
            Ok(job_rx) => job_rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else {
            return;
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}
