//! Handles on processes that can never be confused with a later process of the same id.
//!
//! A process id is reused once its process has been reaped, so a signal sent to an id read
//! earlier may reach a stranger. A Linux pidfd (`pidfd_open`, Linux 5.3) refers to one process
//! for as long as the descriptor is open: signals sent through it (`pidfd_send_signal`) reach that
//! process or fail with `ESRCH` once it has been reaped, never another one. Older kernels lack
//! the calls; callers then fall back to what they knew before.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

/// One process, pinned by a pidfd.
#[derive(Debug)]
pub(crate) struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

/// Whether a process a [`PidFd`] pins is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Running, or exited and not yet reaped (a zombie): its id and process group id are
    /// still its own.
    Present,
    /// Reaped: its id may already belong to another process.
    Reaped,
}

impl PidFd {
    /// Pins process `pid`. Whoever calls this must know that `pid` is the process it means at
    /// this moment (an unreaped child of ours, say); from then on the handle stays with it.
    ///
    /// Fails with `ENOSYS` on kernels before 5.3 and `ESRCH` if there is no such process.
    pub(crate) fn open(pid: u32) -> io::Result<PidFd> {
        let raw_pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and a flags word and returns a new descriptor or -1; no
        // memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PidFd { fd, pid })
    }

    /// A pidfd the kernel handed over (`CLONE_PIDFD`) for process `pid`.
    #[cfg(target_os = "linux")]
    pub(crate) fn from_owned(fd: OwnedFd, pid: u32) -> PidFd {
        PidFd { fd, pid }
    }

    /// The id the process had when it was pinned.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to this process (not to a later one with its id).
    ///
    /// Returns [`Presence::Reaped`] when the process is gone for good; a signal to a zombie
    /// succeeds (and does nothing).
    pub(crate) fn signal(&self, signal: Option<Signal>) -> io::Result<Presence> {
        let number = signal.map_or(0, |signal| signal as libc::c_int);
        let raw_fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        // SAFETY: pidfd_send_signal takes our open descriptor, a signal number, a null siginfo
        // (the kernel fills in the default) and no flags.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                raw_fd,
                number,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if sent == 0 {
            return Ok(Presence::Present);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::ESRCH) => Ok(Presence::Reaped),
            _ => Err(error),
        }
    }

    /// Whether the process is still there, without signalling it.
    pub(crate) fn presence(&self) -> io::Result<Presence> {
        self.signal(None)
    }

    /// Waits for the process to exit and reaps it (blocking). Only for a child known to be
    /// exiting, such as one that failed before executing its program.
    #[cfg(target_os = "linux")]
    pub(crate) fn wait_blocking(&self) -> io::Result<()> {
        loop {
            match waitid(Id::PIDFd(self.fd.as_fd()), WaitPidFlag::WEXITED) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => return Err(io::Error::from(errno)),
            }
        }
    }

    /// Reaps the process if it has exited and is our child; `None` if it is still running.
    ///
    /// Fails with `ECHILD` when it is not our child, or was reaped by someone else.
    pub(crate) fn try_reap(&self) -> io::Result<Option<ExitStatus>> {
        use std::os::unix::process::ExitStatusExt as _;
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        match waitid(Id::PIDFd(self.fd.as_fd()), flags) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(ExitStatus::from_raw((code & 0xff) << 8))),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ok(Some(ExitStatus::from_raw(signal as i32))),
            Ok(WaitStatus::StillAlive) => Ok(None),
            // Stopped or continued: not an exit.
            Ok(_) => Ok(None),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }
}

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;

    use mcp_host_testkit::{
        assert_no_process_left_blocking, fake_server_args, fake_server_path, unique_marker,
        FakeConfig,
    };

    use super::*;

    /// Starts a fake server that runs until it is killed.
    #[allow(clippy::disallowed_methods)]
    fn start(marker: &str) -> std::process::Child {
        let config = FakeConfig {
            ignore_eof: true,
            ..FakeConfig::default()
        };
        std::process::Command::new(fake_server_path())
            .args(fake_server_args(&config, marker))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_pinned_process_is_signalled_and_reaped_and_never_confused_with_a_later_one() {
        let marker = unique_marker();
        let mut process = start(&marker);
        let pidfd = PidFd::open(process.id()).unwrap();
        assert_eq!(pidfd.pid(), process.id());
        assert_eq!(pidfd.presence().unwrap(), Presence::Present);
        assert_eq!(pidfd.try_reap().unwrap(), None, "it is still running");
        assert_eq!(
            pidfd.signal(Some(Signal::SIGKILL)).unwrap(),
            Presence::Present
        );
        // Reaped by its other owner: the handle now says so, and signals nothing.
        let status = process.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert_eq!(pidfd.presence().unwrap(), Presence::Reaped);
        assert_eq!(
            pidfd.signal(Some(Signal::SIGKILL)).unwrap(),
            Presence::Reaped
        );
        assert!(pidfd.try_reap().is_err(), "reaped twice");

        // Reaped through the handle itself.
        let process = start(&marker);
        let pidfd = PidFd::open(process.id()).unwrap();
        pidfd.signal(Some(Signal::SIGTERM)).unwrap();
        let status = loop {
            if let Some(status) = pidfd.try_reap().unwrap() {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        assert_eq!(pidfd.presence().unwrap(), Presence::Reaped);
        drop(process);
        assert_no_process_left_blocking(&marker);
    }
}
