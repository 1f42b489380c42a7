//! Starting a server on Linux without copying the host's memory map, keeping the parent-death signal.
//!
//! `PR_SET_PDEATHSIG` can only be set by the child itself, between its creation and its `exec`.
//! Through std's `Command` that means a `pre_exec` closure, which rules out `posix_spawn` and
//! makes every spawn a `fork`: the host's page tables are copied, then torn down again by the
//! child's `exec`, which costs more the larger the host is (see BENCHMARKS.md, "Scale").
//!
//! Here the child is created the way glibc's `posix_spawn` creates it: `clone` with `CLONE_VM |
//! CLONE_VFORK`, so it runs in the host's memory, on a stack of its own, while the spawning
//! thread waits until it has executed the program or failed. `CLONE_PIDFD` gives a pidfd for the
//! child at once, which is then how the child is waited for and reaped ([`PidfdChild`]).
//! Everything the child needs (paths, argument and environment arrays, descriptors) is prepared
//! before the `clone`; the child makes system calls only, all of them async-signal-safe: it resets
//! signal handlers, sets the parent-death signal and checks that the host is still its parent,
//! leads a new process group, moves its pipe ends onto 0, 1 and 2, closes every other descriptor
//! (`close_range`), changes directory, unblocks signals and executes the program (looked up in
//! `PATH` the way `execvp` does). A failure is written to memory it shares with the host, which
//! reads it once the `clone` returns: a missing program is a spawn error, as with `Command`.
//!
//! The parent-death signal follows the thread that made the `clone`: this runs on the spawner
//! threads (`spawner.rs`), which live as long as the process.
//!
//! Used when the kernel has pidfds (Linux 5.3); otherwise, when the `clone` is refused (a seccomp
//! filter, say), or when `MCP_TRANSPORT_SPAWN=fork` is set, servers are started through std's
//! `Command` with a `pre_exec` closure, as before.

use std::ffi::{c_char, c_int, c_void, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::pidfd::{PidFd, Presence};
use crate::ServerCommand;

/// The variable that makes every spawn go through std's `Command` (`fork`), as an escape hatch.
pub(crate) const SPAWN_VAR: &str = "MCP_TRANSPORT_SPAWN";

/// The child's stack. It runs only the short child function below (system calls, no allocation).
const STACK_SIZE: usize = 128 * 1024;

/// Whether servers are started with [`start`]: the kernel has pidfds, `MCP_TRANSPORT_SPAWN` does
/// not say `fork`, and no `clone` has been refused so far.
pub(crate) fn available() -> bool {
    static PROBED: OnceLock<bool> = OnceLock::new();
    let probed = *PROBED.get_or_init(|| {
        if std::env::var_os(SPAWN_VAR).is_some_and(|value| value == "fork") {
            return false;
        }
        // Pinning ourselves tells whether the kernel has pidfds (and so `CLONE_PIDFD`).
        u32::try_from(nix::unistd::getpid().as_raw()).is_ok_and(|pid| PidFd::open(pid).is_ok())
    });
    probed && !REFUSED.load(Ordering::Relaxed)
}

/// Set when the kernel refused the `clone` itself; later spawns go through `Command`.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// A command turned into what the child needs, ready to be started on a spawner thread.
///
/// Not `Debug`: it holds the child's environment, whose values are never logged.
pub(crate) struct Prepared {
    /// Where the program may be, in the order `execvp` would try them.
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
}

/// A child that has executed its program, with the host's ends of its stdio pipes.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) child: Unclaimed,
    /// The write end of the child's stdin, and the read ends of its stdout and stderr.
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// A started child nobody waits for yet.
///
/// # Drop behavior
///
/// Dropped without [`Unclaimed::into_child`] (a caller that stopped waiting for its spawn), it
/// kills the child.
#[derive(Debug)]
pub(crate) struct Unclaimed(Option<Arc<PidFd>>);

/// Turns `command` into C strings: the program's candidate paths, the arguments and the
/// environment (the host's, unless `inherit_env` is false, with `command.env` on top).
pub(crate) fn prepare(command: &ServerCommand) -> io::Result<Prepared> {
    let program = command.program.as_os_str();
    let mut env: Vec<(OsString, OsString)> = if command.inherit_env {
        std::env::vars_os().collect()
    } else {
        Vec::new()
    };
    for (key, value) in &command.env {
        env.retain(|(existing, _)| existing != key);
        env.push((key.clone(), value.clone()));
    }
    let path = env
        .iter()
        .find(|(key, _)| key == "PATH")
        .map(|(_, value)| value.clone());
    let candidates = candidates(program, path.as_deref())?;
    let mut argv = Vec::with_capacity(command.args.len() + 1);
    argv.push(c_string(program)?);
    for arg in &command.args {
        argv.push(c_string(arg)?);
    }
    let envp = env
        .into_iter()
        .map(|(mut key, value)| {
            key.push("=");
            key.push(value);
            c_string(&key)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let cwd = command
        .cwd
        .as_deref()
        .map(|cwd| c_string(cwd.as_os_str()))
        .transpose()?;
    Ok(Prepared {
        candidates,
        argv,
        envp,
        cwd,
    })
}

/// The paths to try for `program`, as `execvp` does: the program itself when it names a path,
/// otherwise each directory of `path` (`/bin:/usr/bin` when the child has no `PATH`).
fn candidates(program: &OsStr, path: Option<&OsStr>) -> io::Result<Vec<CString>> {
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if bytes.contains(&b'/') {
        return Ok(vec![c_string(program)?]);
    }
    let path = path.map_or(&b"/bin:/usr/bin"[..], OsStrExt::as_bytes);
    path.split(|&byte| byte == b':')
        .map(|dir| {
            // An empty element is the current directory.
            let mut candidate = Vec::with_capacity(dir.len() + 1 + bytes.len());
            if !dir.is_empty() {
                candidate.extend_from_slice(dir);
                candidate.push(b'/');
            }
            candidate.extend_from_slice(bytes);
            c_string(OsStr::from_bytes(&candidate))
        })
        .collect()
}

fn c_string(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

/// Starts the prepared command and returns once the child has executed the program (or failed
/// to, which is the error). Blocks the calling thread meanwhile; the parent-death signal is tied
/// to it, so call it on a thread that lives as long as the process.
///
/// Fails with `ErrorKind::Unsupported` when the kernel refuses the `clone` itself (later calls
/// to [`available`] then say no), so the caller can start the server another way.
pub(crate) fn start(prepared: &Prepared) -> io::Result<Started> {
    reap_abandoned();
    let (stdin_child, stdin) = pipe()?;
    let (stdout, stdout_child) = pipe()?;
    let (stderr, stderr_child) = pipe()?;
    // The child's ends above 2, so that moving them onto 0, 1 and 2 cannot overwrite one another.
    let stdin_child = above_stdio(stdin_child)?;
    let stdout_child = above_stdio(stdout_child)?;
    let stderr_child = above_stdio(stderr_child)?;

    let candidates = pointers(&prepared.candidates);
    let argv = pointers(&prepared.argv);
    let envp = pointers(&prepared.envp);
    let args = ChildArgs {
        candidates: candidates.as_ptr(),
        n_candidates: prepared.candidates.len(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: prepared
            .cwd
            .as_ref()
            .map_or(std::ptr::null(), |cwd| cwd.as_ptr()),
        stdio: [
            stdin_child.as_raw_fd(),
            stdout_child.as_raw_fd(),
            stderr_child.as_raw_fd(),
        ],
        host_pid: nix::unistd::getpid().as_raw(),
        max_signal: libc::SIGRTMAX(),
        failed_step: AtomicU32::new(0),
        failed_errno: AtomicI32::new(0),
    };
    let stack = Stack::new()?;
    let mut raw_pidfd: c_int = -1;
    let pid = {
        // Signals stay blocked in the child until just before `exec`: a handler of the host must
        // never run in the child, which shares the host's memory.
        let _blocked = BlockedSignals::block_all()?;
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
        // SAFETY: `child_main` only reads `args` (alive until we return: the `CLONE_VFORK` parent
        // resumes once the child has executed the program or exited, and nothing of `args` is
        // used by the new program) and writes its two atomics; it runs on `stack`, which is ours
        // and unused by anyone else, makes only async-signal-safe system calls and never returns
        // into our frames. With `CLONE_PIDFD` the kernel writes the pidfd into `raw_pidfd` (the
        // parent-tid argument of glibc's and musl's `clone`).
        unsafe {
            libc::clone(
                child_main,
                stack.top(),
                flags,
                std::ptr::from_ref(&args).cast_mut().cast::<c_void>(),
                &raw mut raw_pidfd,
            )
        }
    };
    if pid < 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::EPERM) => {
                REFUSED.store(true, Ordering::Relaxed);
                io::Error::new(io::ErrorKind::Unsupported, error)
            }
            _ => error,
        });
    }
    drop(stack);
    let pid_u32 = u32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let pidfd = if raw_pidfd >= 0 {
        // SAFETY: the kernel just created this descriptor for us, and nothing else owns it.
        PidFd::from_owned(unsafe { OwnedFd::from_raw_fd(raw_pidfd) }, pid_u32)
    } else {
        // A kernel that ignored `CLONE_PIDFD`: the child is ours and not reaped, so its id is
        // still its own (and can be killed and reaped by it if it cannot be pinned).
        match PidFd::open(pid_u32) {
            Ok(pidfd) => pidfd,
            Err(error) => {
                let child = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(error);
            }
        }
    };
    let failed_step = args.failed_step.load(Ordering::Acquire);
    if failed_step != 0 {
        // The child has exited (127); reap it before saying why.
        let _ = pidfd.wait_blocking();
        let errno = args.failed_errno.load(Ordering::Acquire);
        return Err(step_error(failed_step, errno));
    }
    drop((stdin_child, stdout_child, stderr_child));
    Ok(Started {
        pid: pid_u32,
        child: Unclaimed(Some(Arc::new(pidfd))),
        stdin,
        stdout,
        stderr,
    })
}

impl Unclaimed {
    /// The child, to be waited for and reaped on the current tokio runtime, and its pidfd.
    pub(crate) fn into_child(mut self) -> io::Result<(PidfdChild, Arc<PidFd>)> {
        let pidfd = self
            .0
            .take()
            .ok_or_else(|| io::Error::other("the child was already handed over"))?;
        let child = PidfdChild::new(pidfd.clone())?;
        Ok((child, pidfd))
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        if let Some(pidfd) = self.0.take() {
            abandon(pidfd);
        }
    }
}

/// A child started by [`start`], waited for through its pidfd.
///
/// # Drop behavior
///
/// Dropping it before the child was reaped sends SIGKILL to the child and reaps it if it is
/// gone already; otherwise it is reaped at the next spawn (tokio's `Child` leaves its orphans to
/// a later `SIGCHLD` likewise).
#[derive(Debug)]
pub(crate) struct PidfdChild {
    pidfd: AsyncFd<Arc<PidFd>>,
    reaped: bool,
}

impl PidfdChild {
    fn new(pidfd: Arc<PidFd>) -> io::Result<PidfdChild> {
        // SAFETY: the descriptor stays open, and the same, for as long as the `AsyncFd` holds
        // its `Arc`: a `PidFd` owns its descriptor and never changes it.
        match unsafe { AsyncFd::register_with_interest(pidfd.clone(), Interest::READABLE) } {
            Ok(pidfd) => Ok(PidfdChild {
                pidfd,
                reaped: false,
            }),
            Err(error) => {
                abandon(pidfd);
                Err(error.into_parts().1)
            }
        }
    }

    /// Waits until the child exits, and reaps it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed until the child is reaped.
    pub(crate) async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.pidfd.get_ref().try_reap()? {
                self.reaped = true;
                return Ok(status);
            }
            // A pidfd turns readable when its process exits.
            let mut ready = self.pidfd.readable().await?;
            ready.clear_ready();
        }
    }

    /// Sends SIGKILL to the child (nothing if it was reaped).
    pub(crate) fn start_kill(&mut self) -> io::Result<()> {
        self.pidfd
            .get_ref()
            .signal(Some(Signal::SIGKILL))
            .map(|_| ())
    }
}

impl Drop for PidfdChild {
    fn drop(&mut self) {
        if !self.reaped {
            abandon(self.pidfd.get_ref().clone());
        }
    }
}

/// Children killed and not yet reaped by their owner, reaped at the next spawn.
static ABANDONED: Mutex<Vec<Arc<PidFd>>> = Mutex::new(Vec::new());

/// Kills a child nobody waits for any more, and reaps it now or later.
fn abandon(pidfd: Arc<PidFd>) {
    if matches!(pidfd.presence(), Ok(Presence::Reaped)) {
        return;
    }
    let _ = pidfd.signal(Some(Signal::SIGKILL));
    if matches!(pidfd.try_reap(), Ok(None)) {
        let mut abandoned = match ABANDONED.lock() {
            Ok(abandoned) => abandoned,
            Err(poisoned) => poisoned.into_inner(),
        };
        abandoned.push(pidfd);
    }
}

/// Reaps the abandoned children that have exited.
fn reap_abandoned() {
    let mut abandoned = match ABANDONED.lock() {
        Ok(abandoned) => abandoned,
        Err(poisoned) => poisoned.into_inner(),
    };
    abandoned.retain(|pidfd| matches!(pidfd.try_reap(), Ok(None)));
}

/// What the child reads (prepared by the parent) and writes (why it failed).
struct ChildArgs {
    candidates: *const *const c_char,
    n_candidates: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [RawFd; 3],
    host_pid: libc::pid_t,
    /// The highest signal number (`SIGRTMAX`).
    max_signal: c_int,
    /// The step that failed (`STEP_*`), 0 when the child reached its program.
    failed_step: AtomicU32,
    failed_errno: AtomicI32,
}

const STEP_DEATH_SIGNAL: u32 = 1;
const STEP_HOST_GONE: u32 = 2;
const STEP_PROCESS_GROUP: u32 = 3;
const STEP_STDIO: u32 = 4;
const STEP_CWD: u32 = 5;
const STEP_EXEC: u32 = 6;

/// The error the parent reports for a failed step: the exec's own error for a missing or
/// non-executable program (as std's `Command` reports it), the step named otherwise.
fn step_error(step: u32, errno: i32) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    let what = match step {
        STEP_EXEC => return os,
        STEP_DEATH_SIGNAL => "setting the parent-death signal",
        STEP_HOST_GONE => return io::Error::other("the host exited while the server was starting"),
        STEP_PROCESS_GROUP => "creating the server's process group",
        STEP_STDIO => "connecting the server's stdio",
        STEP_CWD => "entering the working directory",
        _ => "starting the server",
    };
    io::Error::new(os.kind(), format!("{what}: {os}"))
}

/// The child, between `clone` and `exec`: system calls only, no allocation, no locks.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to `clone`; it stays alive and unchanged
    // while the child runs (the parent is suspended by `CLONE_VFORK`).
    let args = unsafe { &*arg.cast::<ChildArgs>() };
    // SAFETY: every call below is an async-signal-safe system call on values the parent prepared
    // (valid C strings and null-terminated arrays of them, open descriptors); none allocates or
    // takes a lock, so running in the parent's memory while its other threads go on is sound.
    unsafe {
        // Handlers live in the host's memory: back to the default for every handled signal
        // (ignored ones stay ignored across `exec`, except SIGPIPE, which std ignores for itself).
        for signal in 1..=args.max_signal {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let ignored = old.sa_sigaction == libc::SIG_IGN && signal != libc::SIGPIPE;
            if old.sa_sigaction != libc::SIG_DFL && !ignored {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        // If the host dies, even by SIGKILL, the kernel kills the server; then make sure the
        // host did not die before that was set.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            child_fail(args, STEP_DEATH_SIGNAL, errno());
        }
        if libc::getppid() != args.host_pid {
            child_fail(args, STEP_HOST_GONE, 0);
        }
        if libc::setpgid(0, 0) != 0 {
            child_fail(args, STEP_PROCESS_GROUP, errno());
        }
        for (target, fd) in (0..).zip(args.stdio) {
            if libc::dup2(fd, target) < 0 {
                child_fail(args, STEP_STDIO, errno());
            }
        }
        // Nothing else of the host's reaches the server, close-on-exec or not (Linux 5.9; on
        // older kernels every descriptor the host opens through std is close-on-exec anyway).
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
        if !args.cwd.is_null() && libc::chdir(args.cwd) != 0 {
            child_fail(args, STEP_CWD, errno());
        }
        let mut unblocked: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut unblocked);
        libc::sigprocmask(libc::SIG_SETMASK, &unblocked, std::ptr::null_mut());
        // `execvp`'s rules: a candidate that is not there is skipped; one that is there but
        // cannot be executed is remembered (EACCES) and reported if nothing else works.
        let mut saw_eacces = false;
        let mut failure = libc::ENOENT;
        for candidate_idx in 0..args.n_candidates {
            libc::execve(*args.candidates.add(candidate_idx), args.argv, args.envp);
            match errno() {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                other => {
                    failure = other;
                    break;
                }
            }
        }
        if failure == libc::ENOENT && saw_eacces {
            failure = libc::EACCES;
        }
        child_fail(args, STEP_EXEC, failure)
    }
}

/// Records why the child failed, where the parent will read it, and exits.
fn child_fail(args: &ChildArgs, step: u32, errno: i32) -> ! {
    args.failed_errno.store(errno, Ordering::Release);
    args.failed_step.store(step, Ordering::Release);
    // SAFETY: `_exit` ends the child at once, without running anything of the host's.
    unsafe { libc::_exit(127) }
}

fn errno() -> i32 {
    // SAFETY: reads the calling thread's errno, which is always valid to read.
    unsafe { *libc::__errno_location() }
}

/// A null-terminated array of pointers to `strings` (which must outlive it).
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|string| string.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `pipe2` writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created both descriptors for us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fd` itself if it is above 2, otherwise a close-on-exec copy that is.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicates a descriptor we own into the lowest free one from 3 on.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created this descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// The child's stack: an anonymous mapping with an inaccessible lowest page, so that an overflow
/// faults instead of writing over the host's memory.
struct Stack {
    base: *mut c_void,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: a fresh private anonymous mapping, touching no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base };
        // SAFETY: the first page of the mapping we just made.
        if unsafe { libc::mprotect(base, page_size(), libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address, where a downward-growing stack starts (16-byte aligned: the mapping
    /// is page-aligned and its size a multiple of 16).
    fn top(&self) -> *mut c_void {
        self.base.cast::<u8>().wrapping_add(STACK_SIZE).cast()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used (the child has executed or exited).
        unsafe {
            libc::munmap(self.base, STACK_SIZE);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Every signal blocked on this thread until dropped.
struct BlockedSignals {
    old: libc::sigset_t,
}

impl BlockedSignals {
    fn block_all() -> io::Result<BlockedSignals> {
        // SAFETY: plain signal-mask calls on sets we own.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let failed = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            if failed != 0 {
                return Err(io::Error::from_raw_os_error(failed));
            }
            Ok(BlockedSignals { old })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block_all`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(program: &str, path: Option<&str>, expect: &[&str]) {
        let found = candidates(OsStr::new(program), path.map(OsStr::new)).unwrap();
        let found: Vec<&str> = found.iter().map(|path| path.to_str().unwrap()).collect();
        assert_eq!(found, expect);
    }

    #[test]
    fn the_program_is_looked_up_as_execvp_does() {
        check("/usr/bin/env", Some("/a:/b"), &["/usr/bin/env"]);
        check("./server", Some("/a"), &["./server"]);
        check("node", Some("/a:/b/c"), &["/a/node", "/b/c/node"]);
        check("node", Some("/a::/b"), &["/a/node", "node", "/b/node"]);
        check("node", None, &["/bin/node", "/usr/bin/node"]);
        assert!(candidates(OsStr::new(""), None).is_err());
        assert!(candidates(OsStr::new("a\0b"), None).is_err());
    }
}
