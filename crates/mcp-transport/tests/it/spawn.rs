//! What a spawn guarantees, whichever way the server is started: errors that name the program,
//! the environment and working directory asked for, no descriptor of the host's, and a server
//! that dies with its host.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use mcp_host_testkit::{
    assert_no_process_left_blocking, fake_server_args, fake_server_path, in_own_process,
    pids_with_marker, unique_marker, FakeConfig,
};
use mcp_transport::{Error, ExitReport, ServerCommand, ServerName, TransportOptions};
use tokio_util::task::TaskTracker;

use crate::{spawn, INITIALIZE, PROMPTLY};

/// Starts `command` and returns how the spawn failed.
#[track_caller]
fn check_spawn_error(command: &ServerCommand, expect_kind: std::io::ErrorKind) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let tracker = TaskTracker::new();
    let outcome = mcp_transport::spawn(
        ServerName::new("ghost"),
        command,
        &TransportOptions::default(),
        &tracker,
    );
    let Err(error) = outcome else {
        panic!("{} started", command.program.display());
    };
    let Error::Spawn {
        server,
        program,
        source,
    } = &error
    else {
        panic!("not a spawn error: {error:?}");
    };
    assert_eq!(server.as_str(), "ghost");
    assert_eq!(program, &command.program);
    assert_eq!(source.kind(), expect_kind, "{source}");
    let text = error.to_string();
    assert!(text.contains("ghost"), "{text}");
    assert!(text.contains(&*command.program.to_string_lossy()), "{text}");
}

#[test]
fn a_program_that_cannot_be_run_is_a_spawn_error_naming_it() {
    use std::io::ErrorKind;
    let scratch = std::env::temp_dir().join(unique_marker());
    std::fs::create_dir_all(&scratch).unwrap();
    let not_executable = scratch.join("server.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();

    check_spawn_error(
        &ServerCommand::new("/nonexistent/mcp-server-that-is-not-there"),
        ErrorKind::NotFound,
    );
    // Looked up in PATH.
    check_spawn_error(
        &ServerCommand::new("mcp-server-that-is-not-there"),
        ErrorKind::NotFound,
    );
    check_spawn_error(
        &ServerCommand::new(&not_executable),
        ErrorKind::PermissionDenied,
    );
    check_spawn_error(&ServerCommand::new(&scratch), ErrorKind::PermissionDenied);
    check_spawn_error(
        &ServerCommand {
            cwd: Some(scratch.join("missing")),
            ..ServerCommand::new(fake_server_path())
        },
        ErrorKind::NotFound,
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// Runs `script` with `/bin/sh` until it exits and returns its report (stderr in the tail).
async fn run_script(script: &str, command: ServerCommand) -> ExitReport {
    let tracker = TaskTracker::new();
    let command = ServerCommand {
        program: PathBuf::from("sh"),
        args: vec!["-c".into(), script.into()],
        ..command
    };
    let (process, transport) = mcp_transport::spawn(
        ServerName::new("script"),
        &command,
        &TransportOptions::default(),
        &tracker,
    )
    .unwrap();
    let diagnostics = transport.diagnostics().clone();
    tokio::time::timeout(PROMPTLY, diagnostics.wait_for_exit(PROMPTLY))
        .await
        .unwrap();
    let report = process.close(Duration::from_secs(1)).await;
    drop(transport);
    tracker.close();
    tokio::time::timeout(PROMPTLY, tracker.wait())
        .await
        .unwrap();
    report
}

#[tokio::test]
async fn the_server_gets_its_environment_and_directory_and_only_its_stdio() {
    let scratch = std::env::temp_dir();
    let command = ServerCommand {
        env: vec![("MCP_TRANSPORT_TEST_VAR".into(), "the value".into())],
        inherit_env: false,
        cwd: Some(scratch.clone()),
        // Found in `/bin:/usr/bin`, the lookup path of a child without PATH.
        ..ServerCommand::new("unused")
    };
    let report = run_script(
        r#"echo "var=$MCP_TRANSPORT_TEST_VAR" >&2; echo "home=${HOME-unset}" >&2; pwd >&2"#,
        command,
    )
    .await;
    assert_eq!(report.status.and_then(|status| status.code()), Some(0));
    let expected = format!(
        "var=the value\nhome=unset\n{}",
        scratch.canonicalize().unwrap().display()
    );
    assert_eq!(report.stderr_tail, expected);

    // A descriptor of the host's that is not close-on-exec does not reach the server either.
    // SAFETY: duplicates our stderr; the copy is closed below.
    let leaked = unsafe { libc::dup(2) };
    assert!(leaked > 2);
    let fds: Vec<String> = (0..=leaked + 8).map(|fd| fd.to_string()).collect();
    let script = format!(
        r#"for fd in {}; do if [ -e /proc/$$/fd/$fd ]; then echo $fd >&2; fi; done"#,
        fds.join(" ")
    );
    let report = run_script(&script, ServerCommand::new("unused")).await;
    // SAFETY: our own descriptor, from `dup` above.
    unsafe { libc::close(leaked) };
    assert_eq!(report.stderr_tail, "0\n1\n2", "the server's descriptors");
}

/// Set in the copy of this test binary that plays the host in
/// [`servers_die_when_their_host_is_sigkilled`]: the marker of its server.
const HOST_MARKER_VAR: &str = "MCP_TRANSPORT_TEST_HOST_MARKER";

#[test]
fn servers_die_when_their_host_is_sigkilled() {
    if let Some(marker) = std::env::var_os(HOST_MARKER_VAR) {
        be_a_host_until_killed(&marker.to_string_lossy());
        return;
    }
    let marker = unique_marker();
    let exe = std::env::current_exe().unwrap();
    // The test binary itself, as a host: not a server, so not through mcp_transport.
    #[allow(clippy::disallowed_methods)]
    let mut host = std::process::Command::new(exe)
        .args([
            "spawn::servers_die_when_their_host_is_sigkilled",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOST_MARKER_VAR, &marker)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = host.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness writes `test <name> ... ` before it, on the same line.
            if let Some((_, pid)) = line.split_once("server ready: ") {
                let _ = ready_tx.send(pid.parse::<u32>().unwrap());
            }
        }
    });
    let server_pid = ready_rx.recv_timeout(PROMPTLY * 3);
    let server_pid = match server_pid {
        Ok(pid) => pid,
        Err(error) => {
            let _ = host.kill();
            let _ = host.wait();
            panic!("the host did not start its server: {error}");
        }
    };
    assert_eq!(pids_with_marker(&marker), vec![server_pid]);
    // SIGKILL leaves the host no chance to clean up; the kernel's parent-death signal does it.
    host.kill().unwrap();
    host.wait().unwrap();
    assert_no_process_left_blocking(&marker);
}

/// The host side: a server that ignores both EOF and SIGTERM, started from a runtime worker,
/// then nothing until this process is killed.
fn be_a_host_until_killed(marker: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = FakeConfig {
            ignore_eof: true,
            ignore_sigterm: true,
            ..FakeConfig::default()
        };
        let tracker = TaskTracker::new();
        let command =
            ServerCommand::new(fake_server_path()).args(fake_server_args(&config, marker));
        let (process, transport) = mcp_transport::spawn(
            ServerName::new("fake"),
            &command,
            &TransportOptions::default(),
            &tracker,
        )
        .unwrap();
        let (mut reader, mut writer, _) = transport.into_parts();
        writer.queue(INITIALIZE);
        writer.flush().await.unwrap();
        let reply = tokio::time::timeout(PROMPTLY, reader.next_frame()).await;
        assert!(
            matches!(reply, Ok(Ok(Some(_)))),
            "no answer from the server"
        );
        // The test reads this line from our stdout.
        #[allow(clippy::print_stdout)]
        {
            println!("server ready: {}", process.pid());
        }
        tokio::time::sleep(PROMPTLY * 3).await;
        panic!("the host was not killed");
    });
}

#[test]
fn the_fork_fallback_starts_and_stops_servers_too() {
    in_own_process(
        "spawn::the_fork_fallback_starts_and_stops_servers_too",
        || {
            // Read once, at the first spawn of the process.
            std::env::set_var("MCP_TRANSPORT_SPAWN", "fork");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut spawned = spawn(&FakeConfig::default(), &TransportOptions::default());
                spawned.send(INITIALIZE).await;
                let reply = spawned.next().await.unwrap().unwrap();
                assert!(reply.contains("protocolVersion"), "{reply}");
                let tracker = spawned.tracker.clone();
                let marker = spawned.marker.clone();
                let report = spawned
                    .close_keeping_leftovers(Duration::from_secs(5))
                    .await;
                assert!(report.status.is_some_and(|status| status.success()));
                tracker.close();
                tracker.wait().await;
                mcp_host_testkit::assert_no_process_left(&marker).await;
            });
            check_spawn_error(
                &ServerCommand::new("/nonexistent/mcp-server-that-is-not-there"),
                std::io::ErrorKind::NotFound,
            );
        },
    );
}
