//! Starting a server as a child process in its own process group, and stopping it for sure.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::pidfd::{PidFd, Presence};
#[cfg(target_os = "linux")]
use crate::spawn_linux;
use crate::{
    spawner, stderr, BoxedRead, BoxedWrite, Diagnostics, Error, ServerName, Transport,
    TransportOptions,
};

/// How long to wait for the kernel to report a SIGKILLed process as exited.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for the rest of stderr once the process group is gone.
const STDERR_WAIT: Duration = Duration::from_secs(1);

/// What to run: program, arguments, environment and working directory.
///
/// The program is run directly, never through a shell.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables to set in the child's environment.
    pub env: Vec<(OsString, OsString)>,
    /// Whether the child starts from the host's environment (`true`) or an empty one.
    pub inherit_env: bool,
    /// The working directory; the host's when `None`.
    pub cwd: Option<PathBuf>,
}

impl ServerCommand {
    /// A command running `program` with no arguments, inheriting the host's environment.
    pub fn new(program: impl Into<PathBuf>) -> ServerCommand {
        ServerCommand {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            inherit_env: true,
            cwd: None,
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> ServerCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// The step of [`ChildProcess::close`] at which the server ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseStep {
    /// The server had already exited when the close began.
    AlreadyExited,
    /// The server exited after its input was closed.
    InputClosed,
    /// The server exited after SIGTERM was sent to its process group.
    Terminated,
    /// The server was killed with SIGKILL.
    Killed,
    /// A remote server (no process of ours): its session was closed and the connection dropped.
    Disconnected,
}

impl fmt::Display for CloseStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseStep::AlreadyExited => "had already exited",
            CloseStep::InputClosed => "exited after its input was closed",
            CloseStep::Terminated => "exited after SIGTERM",
            CloseStep::Killed => "was killed with SIGKILL",
            CloseStep::Disconnected => "was disconnected",
        })
    }
}

/// How a server process ended.
#[derive(Clone, Debug)]
pub struct ExitReport {
    /// The server.
    pub server: ServerName,
    /// The step that ended it.
    pub step: CloseStep,
    /// Its exit status, if it could be reaped.
    pub status: Option<ExitStatus>,
    /// The time the close took.
    pub elapsed: Duration,
    /// The last lines it wrote to stderr.
    pub stderr_tail: String,
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server `{}` {}", self.server, self.step)?;
        match self.status {
            Some(status) => write!(f, " ({status})")?,
            None => f.write_str(" (exit status unknown)")?,
        }
        write!(f, " in {} ms", self.elapsed.as_millis())
    }
}

/// A running server process and the group it leads.
///
/// # Drop behavior
///
/// Dropping a `ChildProcess` that was not [closed](ChildProcess::close) sends SIGKILL to the
/// whole process group at once, synchronously, so that no server or helper it started outlives
/// its owner, even during a panic or without a runtime. The process is reaped by a task on the
/// tracker passed to [`spawn`] (or by tokio's orphan reaper if the runtime is gone).
#[derive(Debug)]
pub struct ChildProcess {
    server: ServerName,
    pid: u32,
    /// The leader, pinned while it was certainly ours (before the reaper started), where the
    /// kernel has pidfds.
    leader: Option<Arc<PidFd>>,
    diagnostics: Diagnostics,
    /// Cancelled to make the reaper task kill and reap the child at once.
    kill_now: CancellationToken,
    /// Cancelled to stop the stderr task even if some escaped process keeps the pipe open.
    stop_stderr: CancellationToken,
    finished: bool,
}

/// Starts `command` as a server: its own process group, stdio piped, stderr drained.
///
/// The server is killed by the kernel if the host process dies (`PR_SET_PDEATHSIG`). Linux ties
/// that signal to the thread that creates the server, so every server is created by a thread
/// that lives as long as the process, whatever thread calls this (a runtime worker, a blocking
/// pool thread that ends later, a thread of the caller's own). The call blocks its thread until
/// the program is executed, as `Command::spawn` does. It must be made inside a tokio runtime.
///
/// On Linux with pidfds (5.3) the server is created without copying the host's memory
/// (`clone` with `CLONE_VM | CLONE_VFORK`, as `posix_spawn` does) and gets no descriptor of the
/// host's but its three pipes; elsewhere, or with `MCP_TRANSPORT_SPAWN=fork` in the host's
/// environment, through std's `Command` with `fork`, where only close-on-exec descriptors are
/// kept from it. A program that is missing or cannot be executed is an [`Error::Spawn`] either
/// way.
///
/// Two tasks are spawned on `tracker`: one drains stderr, one reaps the child. Both end when the
/// process group is gone, or when the returned [`ChildProcess`] is closed or dropped.
pub fn spawn(
    server: ServerName,
    command: &ServerCommand,
    options: &TransportOptions,
    tracker: &TaskTracker,
) -> Result<(ChildProcess, Transport), Error> {
    let spawn_error = |source| Error::Spawn {
        server: server.clone(),
        program: command.program.clone(),
        source,
    };
    let Started {
        pid,
        stdin,
        stdout,
        stderr,
        child,
        leader,
        how,
    } = start(command).map_err(spawn_error)?;
    let span = tracing::info_span!("mcp_server", server = %server, pid);
    tracing::debug!(parent: &span, program = %command.program.display(), spawn = how, "server process started");

    let diagnostics = Diagnostics::new(server.clone(), options, true);
    let kill_now = CancellationToken::new();
    let stop_stderr = CancellationToken::new();

    let stderr_diagnostics = diagnostics.clone();
    let stop = stop_stderr.clone();
    tracker.spawn(
        async move {
            tokio::select! {
                () = stderr::drain(stderr, stderr_diagnostics.clone()) => {}
                () = stop.cancelled() => stderr_diagnostics.mark_stderr_done(),
            }
        }
        .instrument(span.clone()),
    );

    tracker
        .spawn(reap(child, kill_now.clone(), leader.clone(), diagnostics.clone()).instrument(span));

    let transport = Transport::new(diagnostics.clone(), stdout, stdin, options);
    let process = ChildProcess {
        server,
        pid,
        leader,
        diagnostics,
        kill_now,
        stop_stderr,
        finished: false,
    };
    Ok((process, transport))
}

/// A server process just started: its pipes, what reaps it, and its pinned leader.
struct Started {
    pid: u32,
    stdin: BoxedWrite,
    stdout: BoxedRead,
    stderr: BoxedRead,
    child: Child,
    /// The leader, pinned while it was certainly ours (before the reaper started), where the
    /// kernel has pidfds.
    leader: Option<Arc<PidFd>>,
    /// How it was started (`clone` or `fork`), for the log.
    how: &'static str,
}

/// Starts the server on a spawner thread: without copying the host's memory where Linux allows
/// (`spawn_linux.rs`), through std's `Command` (`fork`) otherwise.
fn start(command: &ServerCommand) -> std::io::Result<Started> {
    #[cfg(target_os = "linux")]
    if spawn_linux::available() {
        match start_cloned(command) {
            Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
                tracing::debug!(error = %error, "the kernel refused to start a server without fork; using fork");
            }
            started => return started,
        }
    }
    start_forked(command)
}

/// Starts the server with `clone(CLONE_VM | CLONE_VFORK)` (see `spawn_linux.rs`).
#[cfg(target_os = "linux")]
fn start_cloned(command: &ServerCommand) -> std::io::Result<Started> {
    use tokio::net::unix::pipe;

    // The pipes and the pidfd register with the caller's runtime.
    tokio::runtime::Handle::try_current()
        .map_err(|_| std::io::Error::other("servers can only be started inside a tokio runtime"))?;
    let prepared = spawn_linux::prepare(command)?;
    let started = spawner::run(move || spawn_linux::start(&prepared))?;
    // Claimed first: if a pipe fails below, dropping the child kills it.
    let (child, leader) = started.child.into_child()?;
    Ok(Started {
        pid: started.pid,
        stdin: Box::pin(pipe::Sender::from_owned_fd(started.stdin)?),
        stdout: Box::pin(pipe::Receiver::from_owned_fd(started.stdout)?),
        stderr: Box::pin(pipe::Receiver::from_owned_fd(started.stderr)?),
        child: Child::Cloned(child),
        leader: Some(leader),
        how: "clone",
    })
}

/// Starts the server through std's `Command`, with a `pre_exec` closure (so std uses `fork`).
fn start_forked(command: &ServerCommand) -> std::io::Result<Started> {
    // This is the one place in the workspace that starts processes.
    #[allow(clippy::disallowed_methods)]
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.args(&command.args);
    if !command.inherit_env {
        cmd.env_clear();
    }
    cmd.envs(command.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let host_pid = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes two system calls
    // (prctl and getppid), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // If the host dies, even by SIGKILL, the kernel kills the server. The signal follows
            // the death of the spawning *thread*: every server is spawned from threads that live
            // as long as the process (`spawner.rs`), so this fires only when the process goes
            // away.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            if nix::unistd::getppid() != host_pid {
                // The host died between fork and prctl: do not start an orphan.
                return Err(std::io::Error::other(
                    "the host exited while the server was starting",
                ));
            }
            Ok(())
        });
    }
    let mut child = spawner::spawn(cmd)?;
    let (Some(pid), Some(stdin), Some(stdout), Some(stderr)) = (
        child.id(),
        child.stdin.take(),
        child.stdout.take(),
        child.stderr.take(),
    ) else {
        // `spawn` with piped stdio always provides all three; be safe anyway.
        let _ = child.start_kill();
        return Err(std::io::Error::other(
            "the child's stdio could not be captured",
        ));
    };
    // Pinned before the reaper runs, so the id is still our child's.
    let leader = match PidFd::open(pid) {
        Ok(leader) => Some(Arc::new(leader)),
        Err(error) => {
            tracing::debug!(pid, error = %error, "no pidfd for the server; relying on the reaper alone");
            None
        }
    };
    Ok(Started {
        pid,
        stdin: Box::pin(stdin),
        stdout: Box::pin(stdout),
        stderr: Box::pin(stderr),
        child: Child::Forked(child),
        leader,
        how: "fork",
    })
}

/// A handle that can SIGKILL a server's process group from anywhere, without owning the process.
///
/// It does nothing once the group leader has been reaped, so that a reused process id is never
/// signalled: where the kernel has pidfds, the leader is pinned by one and the kernel says
/// whether it is still there (running, or exited and not yet reaped); elsewhere the reaper's
/// word is taken. A leader the reaper could not reap (it did not die within seconds of SIGKILL)
/// is still there, and is signalled. Used by owners that must stop everything at once (a host
/// dropped without shutdown).
#[derive(Clone, Debug)]
pub struct GroupKiller {
    pid: u32,
    leader: Option<Arc<PidFd>>,
    diagnostics: Diagnostics,
}

impl GroupKiller {
    /// Sends SIGKILL to the process group if its leader has not been reaped yet.
    /// Returns whether a signal was sent.
    pub fn kill(&self) -> bool {
        if !leader_present(self.leader.as_deref(), &self.diagnostics) {
            return false;
        }
        signal_group(self.pid, Signal::SIGKILL);
        true
    }

    /// The process id of the group leader.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// Whether the group leader is still there (so its process group id is still its own).
fn leader_present(leader: Option<&PidFd>, diagnostics: &Diagnostics) -> bool {
    match leader.map(PidFd::presence) {
        Some(Ok(Presence::Present)) => true,
        Some(Ok(Presence::Reaped)) => false,
        Some(Err(_)) | None => !diagnostics.has_exited(),
    }
}

/// What reaps a server process: tokio's `Child`, or a stand-in in tests.
trait Reap: Send + 'static {
    /// Waits for the process to exit and reaps it.
    fn wait(&mut self) -> impl Future<Output = std::io::Result<ExitStatus>> + Send;
    /// Sends SIGKILL to the process.
    fn start_kill(&mut self) -> std::io::Result<()>;
}

impl Reap for tokio::process::Child {
    fn wait(&mut self) -> impl Future<Output = std::io::Result<ExitStatus>> + Send {
        tokio::process::Child::wait(self)
    }

    fn start_kill(&mut self) -> std::io::Result<()> {
        tokio::process::Child::start_kill(self)
    }
}

/// A server process, started one way or the other.
enum Child {
    /// Through std's `Command`, reaped by tokio.
    Forked(tokio::process::Child),
    /// Through `spawn_linux`, reaped through its pidfd.
    #[cfg(target_os = "linux")]
    Cloned(spawn_linux::PidfdChild),
}

impl Reap for Child {
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Child::Forked(child) => child.wait().await,
            #[cfg(target_os = "linux")]
            Child::Cloned(child) => child.wait().await,
        }
    }

    fn start_kill(&mut self) -> std::io::Result<()> {
        match self {
            Child::Forked(child) => child.start_kill(),
            #[cfg(target_os = "linux")]
            Child::Cloned(child) => child.start_kill(),
        }
    }
}

/// Reaps the server when it exits (or kills it first when `kill` is cancelled) and publishes
/// the exit through `diagnostics`.
///
/// Only a process that is known to be gone counts as exited: reaped here with its status, or
/// reaped by someone else (`wait` fails, and the pidfd, where there is one, says it is gone).
/// A process still there seconds after SIGKILL (stuck in the kernel) does not: it is left to
/// the runtime's reaper, and [`GroupKiller`] and [`ChildProcess::close`] go on signalling it.
async fn reap(
    mut child: impl Reap,
    kill: CancellationToken,
    leader: Option<Arc<PidFd>>,
    diagnostics: Diagnostics,
) {
    let waited = tokio::select! {
        status = child.wait() => Some(status),
        () = kill.cancelled() => {
            let _ = child.start_kill();
            tokio::time::timeout(KILL_WAIT, child.wait()).await.ok()
        }
    };
    match waited {
        Some(Ok(status)) => {
            tracing::debug!(%status, "server process reaped");
            diagnostics.set_exited(Some(status));
        }
        Some(Err(error)) => {
            // `waitpid` fails (ECHILD) when someone else reaped the child; where a pidfd can
            // tell, make sure it is gone.
            let still_there = leader
                .as_deref()
                .is_some_and(|leader| matches!(leader.presence(), Ok(Presence::Present)));
            if still_there {
                tracing::error!(error = %error, "cannot reap the server process, which is still there");
            } else {
                tracing::warn!(error = %error, "the server process was reaped elsewhere; its exit status is lost");
                diagnostics.set_exited(None);
            }
        }
        None => {
            tracing::error!(
                timeout_ms = KILL_WAIT.as_millis(),
                "the server process did not end after SIGKILL; it stays counted as running"
            );
        }
    }
}

impl ChildProcess {
    /// A handle that can kill this process group without owning it.
    pub fn killer(&self) -> GroupKiller {
        GroupKiller {
            pid: self.pid,
            leader: self.leader.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }

    /// The server.
    pub fn server(&self) -> &ServerName {
        &self.server
    }

    /// The process id of the server, which is also the id of its process group.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The diagnostics shared with the transport.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// Sends SIGKILL to the whole process group now, without waiting.
    ///
    /// For emergencies (a second Ctrl-C); [`close`](ChildProcess::close) still reaps and reports.
    pub fn kill(&self) {
        self.signal_group(Signal::SIGKILL);
        self.kill_now.cancel();
    }

    /// Stops the server and reports how it ended.
    ///
    /// The steps: close its input (the session's writer closes stdin when asked through
    /// [`Diagnostics::request_input_close`]) and wait `grace`; send SIGTERM to the process group
    /// and wait `grace`; send SIGKILL to the group and reap. Once the server has exited, the group
    /// is sent SIGKILL once more so that helpers it started do not linger.
    /// The whole call takes at most about two `grace` periods plus a few seconds.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that the report is lost, but never leaks: if the future is
    /// dropped, the `ChildProcess` it owns is dropped too and kills the group.
    pub async fn close(mut self, grace: Duration) -> ExitReport {
        let started = Instant::now();
        let already_exited = self.diagnostics.has_exited();
        self.diagnostics.request_input_close();
        let step = if already_exited {
            CloseStep::AlreadyExited
        } else {
            if self.wait_exit(grace).await {
                CloseStep::InputClosed
            } else {
                tracing::debug!(server = %self.server, "server ignored end of input; sending SIGTERM");
                self.signal_group(Signal::SIGTERM);
                if self.wait_exit(grace).await {
                    CloseStep::Terminated
                } else {
                    tracing::warn!(server = %self.server, "server ignored SIGTERM; sending SIGKILL");
                    self.signal_group(Signal::SIGKILL);
                    self.kill_now.cancel();
                    self.wait_exit(KILL_WAIT).await;
                    CloseStep::Killed
                }
            }
        };
        // The leader is gone; whatever else is left of its group goes too. The group id cannot
        // have been reused while any member of the group is alive.
        self.signal_group(Signal::SIGKILL);
        self.diagnostics.wait_for_stderr_end(STDERR_WAIT).await;
        self.stop_stderr.cancel();
        self.finished = true;
        let report = ExitReport {
            server: self.server.clone(),
            step,
            status: self.diagnostics.exit_status(),
            elapsed: started.elapsed(),
            stderr_tail: self.diagnostics.stderr_tail(),
        };
        tracing::info!(server = %self.server, "{report}");
        report
    }

    async fn wait_exit(&self, timeout: Duration) -> bool {
        self.diagnostics.wait_for_exit(timeout).await;
        self.diagnostics.has_exited()
    }

    fn signal_group(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }
}

fn signal_group(pid: u32, signal: Signal) {
    let Ok(pgid) = i32::try_from(pid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // ESRCH (no such group) is the normal outcome once everything is gone.
    let _ = killpg(Pid::from_raw(pgid), signal);
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if !self.finished {
            self.signal_group(Signal::SIGKILL);
            self.kill_now.cancel();
            self.stop_stderr.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};

    use mcp_host_testkit::{
        assert_no_process_left, fake_server_args, fake_server_path, FakeConfig,
    };

    use super::*;

    /// A process the reaper cannot reap: `wait` never finishes, as for a process stuck in the
    /// kernel that SIGKILL does not end in time.
    struct Stuck;

    impl Reap for Stuck {
        fn wait(&mut self) -> impl Future<Output = std::io::Result<ExitStatus>> + Send {
            std::future::pending()
        }

        fn start_kill(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_the_reaper_gave_up_on_still_counts_as_running_and_is_killed() {
        let marker = mcp_host_testkit::unique_marker();
        let config = FakeConfig {
            ignore_eof: true,
            ..FakeConfig::default()
        };
        // A real process, which the stand-in reaper fails to reap.
        #[allow(clippy::disallowed_methods)]
        let mut process = std::process::Command::new(fake_server_path())
            .args(fake_server_args(&config, &marker))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = process.id();
        let leader = PidFd::open(pid).ok().map(Arc::new);
        let diagnostics =
            Diagnostics::new(ServerName::new("stuck"), &TransportOptions::default(), true);
        let kill = CancellationToken::new();
        kill.cancel();
        // Ends after KILL_WAIT (virtual time) without having reaped anything.
        reap(Stuck, kill, leader.clone(), diagnostics.clone()).await;
        assert!(
            !diagnostics.has_exited(),
            "a process the reaper could not reap counts as exited"
        );
        let killer = GroupKiller {
            pid,
            leader,
            diagnostics,
        };
        assert!(killer.kill(), "the group killer did nothing");
        let status = process.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        // Reaped now: its id may be someone else's, and is never signalled again.
        if killer.leader.is_some() {
            assert!(!killer.kill());
        }
        assert_no_process_left(&marker).await;
    }
}
