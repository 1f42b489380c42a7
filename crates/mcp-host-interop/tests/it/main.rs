//! Interop tests: `McpHost` against real MCP servers from npm and PyPI, installed by `cargo xtask interop`.
//!
//! Each test asks [`interop`] for the installed servers. Without `MCP_HOST_INTEROP_DIR` the test says it was
//! skipped and passes, unless `MCP_HOST_INTEROP_REQUIRED` is set (as `cargo xtask interop` does), which turns a
//! missing server into a failure. Every test ends with [`stop`], which shuts the host down and checks that no
//! process the test started is left: not by pid, not by its scratch directory in a command line, and not by the
//! marker put into every server's environment. The tests in `cli` run the `mcp-host` binary instead of an
//! in-process host, and end each command with the same check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A skipped test says so on stderr.
#![allow(clippy::print_stderr)]

mod apps;
mod cli;
mod everything;
mod oauth;
mod python_sdk;
mod remote;
mod replicas;
mod search;
mod servers;
mod status_page;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcp_host::{error_chain, AgentScope, McpHost};
use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{pid_alive, unique_marker};
use mcp_session::protocol::CallToolResult;
use mcp_transport::CloseStep;
use serde_json::{Map, Value};

/// Names the cache `cargo xtask interop` installs into.
const DIR_VAR: &str = "MCP_HOST_INTEROP_DIR";

/// When set, a missing cache or server fails the test instead of skipping it.
const REQUIRED_VAR: &str = "MCP_HOST_INTEROP_REQUIRED";

/// The variable put into every server's environment, so that leak checks find its processes.
pub(crate) const MARKER_VAR: &str = "MCP_HOST_INTEROP_MARKER";

/// A generous bound for one step with real servers (startup, a call, a shutdown).
pub(crate) const PROMPTLY: Duration = Duration::from_secs(20);

/// How long the servers may take to start: Node and Python start slowly on a cold disk cache.
const STARTUP_TIMEOUT_MS: u64 = 30_000;

/// The installed servers.
#[derive(Debug)]
pub(crate) struct Interop {
    /// The cache: `node/` and `venv/` below it.
    dir: PathBuf,
    /// The absolute path of `node`.
    pub(crate) node: PathBuf,
}

/// The installed servers, or `None` (after saying so) when the test is to be skipped.
///
/// # Panics
/// Panics when `MCP_HOST_INTEROP_REQUIRED` is set and the cache, a server or `node` is missing.
pub(crate) fn interop() -> Option<Interop> {
    let required = std::env::var_os(REQUIRED_VAR).is_some_and(|value| !value.is_empty());
    let skip = |why: String| -> Option<Interop> {
        if required {
            panic!("{REQUIRED_VAR} is set, but {why}: run `cargo xtask interop`");
        }
        eprintln!("skipped: run `cargo xtask interop` ({why})");
        None
    };
    let Some(dir) = std::env::var_os(DIR_VAR).filter(|dir| !dir.is_empty()) else {
        return skip(format!("{DIR_VAR} is not set"));
    };
    let dir = PathBuf::from(dir);
    if !dir.is_absolute() {
        return skip(format!("{DIR_VAR}={} is not absolute", dir.display()));
    }
    let Some(node) = find_on_path("node") else {
        return skip("`node` is not on PATH".to_owned());
    };
    let interop = Interop { dir, node };
    let missing: Vec<String> = interop
        .needed_files()
        .into_iter()
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if !missing.is_empty() {
        return skip(format!("missing {}", missing.join(", ")));
    }
    Some(interop)
}

/// The absolute path of `program` in `PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

impl Interop {
    /// Every file the tests run.
    fn needed_files(&self) -> Vec<PathBuf> {
        vec![
            self.node_server("server-everything"),
            self.node_server("server-filesystem"),
            self.node_server("server-memory"),
            self.sdk_example("simpleStreamableHttp.js"),
            self.node_server("server-basic-vanillajs"),
            self.venv_bin("mcp-server-time"),
            self.venv_bin("mcp-server-git"),
            self.venv_bin("python"),
        ]
    }

    pub(crate) fn node_server(&self, package: &str) -> PathBuf {
        self.dir
            .join("node/node_modules/@modelcontextprotocol")
            .join(package)
            .join("dist/index.js")
    }

    /// An example server of the TypeScript SDK.
    pub(crate) fn sdk_example(&self, file: &str) -> PathBuf {
        self.dir
            .join("node/node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server")
            .join(file)
    }

    pub(crate) fn venv_bin(&self, program: &str) -> PathBuf {
        self.dir.join("venv/bin").join(program)
    }

    /// A config running `node <server>/dist/index.js <args>`.
    fn node_config(
        &self,
        id: &str,
        package: &str,
        args: &[&str],
        scratch: &Scratch,
    ) -> ClientConfig {
        let mut all_args = vec![text(&self.node_server(package))];
        all_args.extend(args.iter().map(|arg| (*arg).to_owned()));
        config(id, text(&self.node), all_args, scratch)
    }

    /// `server-everything` over stdio, offered `root` (a directory) as its root if given.
    ///
    /// When offered roots, server-everything asks for them (`roots/list`) 350 ms after initialization, and a
    /// pending timer or request keeps Node running: closed before then, it does not exit on end of input and the
    /// host has to terminate it after the grace period. Tests that stop it quickly therefore offer no roots.
    pub(crate) fn everything(&self, scratch: &Scratch, root: Option<&Path>) -> ClientConfig {
        ClientConfig {
            roots: root.map(text).into_iter().collect(),
            ..self.node_config("everything", "server-everything", &["stdio"], scratch)
        }
    }

    /// `server-filesystem` allowed into `dir`, which is also its root (the server replaces its allowed directories
    /// with the client's roots).
    pub(crate) fn filesystem(&self, scratch: &Scratch, dir: &Path) -> ClientConfig {
        ClientConfig {
            roots: vec![text(dir)],
            ..self.node_config("filesystem", "server-filesystem", &[&text(dir)], scratch)
        }
    }

    /// `server-memory` keeping its graph in `file`.
    pub(crate) fn memory(&self, scratch: &Scratch, file: &Path) -> ClientConfig {
        let mut config = self.node_config("memory", "server-memory", &[], scratch);
        config.env.insert("MEMORY_FILE_PATH".to_owned(), text(file));
        config
    }

    /// The MCP Apps example server `server-basic-vanillajs` on stdio: a `get-time` tool whose
    /// `ui://` HTML app calls it by that name.
    pub(crate) fn basic_app(&self, scratch: &Scratch) -> ClientConfig {
        self.node_config("app", "server-basic-vanillajs", &["--stdio"], scratch)
    }

    /// `mcp-server-time` in UTC.
    pub(crate) fn time(&self, scratch: &Scratch) -> ClientConfig {
        let args = vec!["--local-timezone".to_owned(), "UTC".to_owned()];
        config(
            "time",
            text(&self.venv_bin("mcp-server-time")),
            args,
            scratch,
        )
    }

    /// `mcp-server-git` on `repository`.
    pub(crate) fn git(&self, scratch: &Scratch, repository: &Path) -> ClientConfig {
        let args = vec!["--repository".to_owned(), text(repository)];
        config("git", text(&self.venv_bin("mcp-server-git")), args, scratch)
    }

    /// A server from `tests/it/servers/`, written with the Python SDK.
    pub(crate) fn python_sdk_server(
        &self,
        id: &str,
        script: &str,
        scratch: &Scratch,
    ) -> ClientConfig {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/servers")
            .join(script);
        assert!(script.is_file(), "{} is missing", script.display());
        config(
            id,
            text(&self.venv_bin("python")),
            vec![text(&script)],
            scratch,
        )
    }
}

/// How long a real server may take to exit once its input is closed: Python servers take
/// more than the default 2 s to tear down on a loaded 2-CPU machine (mcp-server-git did in CI),
/// and [`stop`] checks that each one exits by itself, not how fast.
const SHUTDOWN_GRACE_MS: u64 = 8_000;

/// A required client running `command args`, marked with the scratch's marker.
fn config(id: &str, command: String, args: Vec<String>, scratch: &Scratch) -> ClientConfig {
    let mut config = ClientConfig {
        args,
        required: true,
        startup_timeout_ms: STARTUP_TIMEOUT_MS,
        shutdown_grace_ms: SHUTDOWN_GRACE_MS,
        ..ClientConfig::new(id, command)
    };
    config
        .env
        .insert(MARKER_VAR.to_owned(), scratch.marker.clone());
    config
}

pub(crate) fn text(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_owned()
}

/// A directory of one test, unique to it, removed on drop; also the test's process marker.
#[derive(Debug)]
pub(crate) struct Scratch {
    pub(crate) path: PathBuf,
    pub(crate) marker: String,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        let marker = unique_marker();
        let path = std::env::temp_dir().join(format!("mcp-host-interop-{marker}"));
        std::fs::create_dir_all(&path).unwrap();
        // Servers see canonical paths (server-filesystem resolves symlinks), so use one too.
        let path = path.canonicalize().unwrap();
        Scratch { path, marker }
    }

    /// Creates the directory `name` inside the scratch directory and returns its path.
    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Creates a git repository with one commit in `dir`.
#[allow(clippy::disallowed_methods)] // Test setup, not a server: the spawn ban is for library code.
pub(crate) fn git_repository(dir: &Path) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=mcp-host",
                "-c",
                "user.email=mcp-host@example.invalid",
            ])
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cannot run git");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&["init", "--quiet"]);
    std::fs::write(dir.join("README.md"), "interop test repository\n").unwrap();
    run(&["add", "README.md"]);
    run(&["commit", "--quiet", "-m", "first commit"]);
}

/// Awaits `future` for at most `bound`, failing with `what` when it takes longer.
pub(crate) async fn bounded<F: Future>(what: &str, bound: Duration, future: F) -> F::Output {
    match tokio::time::timeout(bound, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: not done after {bound:?}"),
    }
}

/// Starts a host with `configs` and waits until every client is ready.
pub(crate) async fn start(configs: Vec<ClientConfig>) -> McpHost {
    let host = McpHost::new(configs).unwrap();
    let started = Instant::now();
    let report = bounded(
        "initialize",
        Duration::from_millis(STARTUP_TIMEOUT_MS) + PROMPTLY,
        host.initialize(),
    )
    .await
    .unwrap_or_else(|error| panic!("initialize failed: {}", error_chain(&error)));
    assert!(
        report.failed.is_empty(),
        "failed to start: {:?}",
        report.failed
    );
    eprintln!("started {:?} in {:.1?}", report.ready, started.elapsed());
    host
}

/// Polls `condition` every 50 ms until it holds, for at most [`PROMPTLY`].
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    bounded(what, PROMPTLY, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

pub(crate) fn tool_names(host: &McpHost) -> Vec<String> {
    host.list_tools(&AgentScope::all())
        .into_iter()
        .map(|tool| tool.name)
        .collect()
}

pub(crate) fn args(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => panic!("arguments must be an object"),
    }
}

/// Calls a tool by its namespaced name, and checks that the call and the tool succeeded.
pub(crate) async fn call(host: &McpHost, name: &str, arguments: Value) -> CallToolResult {
    let result = bounded(
        name,
        PROMPTLY,
        host.call_tool(name, args(arguments), &AgentScope::all()),
    )
    .await
    .unwrap_or_else(|error| panic!("{name} failed: {}", error_chain(&error)));
    assert!(
        !result.is_tool_error(),
        "{name} reported an error: {result:?}"
    );
    result
}

/// Shuts the host down, checks that every server exited once its input was closed, and that no process of the
/// test is left.
pub(crate) async fn stop(host: McpHost, scratch: &Scratch) {
    let statuses = host.status();
    let pids: Vec<u32> = statuses.iter().filter_map(|status| status.pid).collect();
    assert_eq!(
        pids.len(),
        statuses.len(),
        "a client has no pid: {statuses:?}"
    );

    let report = bounded("shutdown", PROMPTLY, host.shutdown()).await;
    assert!(
        report.killed.is_empty(),
        "killed at the deadline: {:?}",
        report.killed
    );
    assert_eq!(report.exits.len(), statuses.len(), "{report:?}");
    for exit in &report.exits {
        assert_eq!(
            exit.step,
            CloseStep::InputClosed,
            "{exit}: {}",
            exit.stderr_tail
        );
    }
    drop(host);

    assert_gone(&format!("server pids {pids:?}"), || {
        pids.iter().copied().filter(|&pid| pid_alive(pid)).collect()
    })
    .await;
    assert_no_process_left(scratch).await;
}

/// Checks (waiting up to 5 s) that no process other than this one mentions the scratch directory in its command
/// line or carries the scratch's marker in its environment.
pub(crate) async fn assert_no_process_left(scratch: &Scratch) {
    assert_gone(
        &format!("processes mentioning {}", scratch.path.display()),
        || {
            pids_mentioning(
                &text(&scratch.path),
                &format!("{MARKER_VAR}={}", scratch.marker),
            )
        },
    )
    .await;
}

/// Waits up to 5 s for `alive` to return no pid, then fails with the pids and command lines still there.
async fn assert_gone(what: &str, mut alive: impl FnMut() -> Vec<u32>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = alive();
        if pids.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let lines: Vec<String> = pids
                .iter()
                .map(|pid| format!("{pid}: {}", mcp_host_testkit::cmdline(*pid).join(" ")))
                .collect();
            panic!("left alive ({what}):\n{}", lines.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live processes other than this one whose command line contains `needle` or whose environment holds the
/// `variable` entry (`NAME=value`).
fn pids_mentioning(needle: &str, variable: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own && pid_alive(pid))
        .filter(|&pid| {
            let in_cmdline = mcp_host_testkit::cmdline(pid)
                .iter()
                .any(|arg| arg.contains(needle));
            let in_environ = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|&byte| byte == 0)
                    .any(|entry| entry == variable.as_bytes())
            });
            in_cmdline || in_environ
        })
        .collect();
    pids.sort_unstable();
    pids
}
