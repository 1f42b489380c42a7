//! The `mcp-fake-server` binary: the scriptable fake MCP server on stdio, configured by the flags of `FakeConfig`.

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use mcp_host_testkit::fake::{serve, FakeConfig};
use tokio::io::AsyncRead;
use tokio::signal::unix::{signal, Signal, SignalKind};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match FakeConfig::from_args(args.iter().cloned()) {
        Ok(config) => config,
        Err(error) => {
            log(&format!("fake-server: {error}"));
            std::process::exit(2);
        }
    };
    if config.grandchild {
        // The grandchild exists only to be killed by the host's process-group cleanup.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if config.spawn_grandchild || config.spawn_escaped_grandchild {
        if let Err(error) = spawn_grandchild(&args, config.spawn_escaped_grandchild) {
            log(&format!("fake-server: cannot spawn grandchild: {error}"));
            std::process::exit(1);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            log(&format!("fake-server: cannot start tokio: {error}"));
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(config));
    // Exit without dropping the runtime: its blocking stdin read would hold up the shutdown.
    std::process::exit(code);
}

/// Serves on stdin/stdout and returns the exit code.
async fn run(config: FakeConfig) -> i32 {
    let sigterm = if config.ignore_sigterm {
        match signal(SignalKind::terminate()) {
            Ok(sigterm) => Some(sigterm),
            Err(error) => {
                log(&format!("fake-server: cannot ignore SIGTERM: {error}"));
                return 1;
            }
        }
    } else {
        None
    };
    let stdout = match own_stdout() {
        Ok(stdout) => stdout,
        Err(error) => {
            log(&format!("fake-server: cannot take stdout: {error}"));
            return 1;
        }
    };
    let stdin = match own_stdin() {
        Ok(stdin) => stdin,
        Err(error) => {
            log(&format!("fake-server: cannot take stdin: {error}"));
            return 1;
        }
    };
    tokio::select! {
        served = serve(config, stdin, stdout) => match served {
            Ok(exit) => exit.code(),
            Err(error) => {
                log(&format!("fake-server: stdin failed: {error}"));
                1
            }
        },
        never = ignore_sigterm(sigterm) => match never {},
    }
}

/// Takes the only descriptor of the real stdout, so that dropping the writer really closes it.
///
/// Fd 1 itself is pointed at `/dev/null`; nothing else in this process writes to it.
fn own_stdout() -> std::io::Result<tokio::fs::File> {
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    nix::unistd::dup2_stdout(&null)?;
    Ok(tokio::fs::File::from_std(std::fs::File::from(stdout)))
}

/// Takes the only descriptor of the real stdin when it is a pipe, read without blocking, so that
/// dropping the reader really closes it (a blocking read of `tokio::io::stdin` would keep it
/// open); anything else (a terminal, `/dev/null`) is read through `tokio::io::stdin`.
///
/// Fd 0 itself is pointed at `/dev/null` in the pipe case.
fn own_stdin() -> std::io::Result<Box<dyn AsyncRead + Unpin + Send>> {
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    match tokio::net::unix::pipe::Receiver::from_owned_fd(stdin) {
        Ok(pipe) => {
            let null = std::fs::File::open("/dev/null")?;
            nix::unistd::dup2_stdin(&null)?;
            Ok(Box::new(pipe))
        }
        Err(_) => Ok(Box::new(tokio::io::stdin())),
    }
}

/// Logs each SIGTERM and otherwise ignores it; pends forever when `sigterm` is `None`.
async fn ignore_sigterm(sigterm: Option<Signal>) -> Infallible {
    if let Some(mut sigterm) = sigterm {
        while sigterm.recv().await.is_some() {
            log("fake-server: ignoring SIGTERM");
        }
    }
    std::future::pending().await
}

/// Starts `<this executable> --grandchild <our args>` and does not wait for it: in our process
/// group, or in a new one when `escaped` (out of reach of the host's process-group cleanup).
// The fake server must create a grandchild to test the host's process-group cleanup.
#[allow(clippy::disallowed_methods)]
fn spawn_grandchild(args: &[String], escaped: bool) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--grandchild")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    if escaped {
        command.process_group(0);
    }
    let grandchild = command.spawn()?;
    log(&format!(
        "fake-server: {}grandchild pid {}",
        if escaped { "escaped " } else { "" },
        grandchild.id()
    ));
    Ok(())
}

/// Writes one line to stderr, ignoring errors (nobody may be reading it).
fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
