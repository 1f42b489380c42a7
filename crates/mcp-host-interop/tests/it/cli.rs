//! The `mcp-host` binary with the five real servers in a configuration file: the one-shot commands, and the Python
//! SDK's client talking to `mcp-host serve`.
//!
//! The binary belongs to another package, so Cargo gives this crate no `CARGO_BIN_EXE_mcp-host`: it is taken from
//! the target directory this test runs from, where `cargo xtask interop` builds it first. Every command is bounded
//! and killed on timeout, and every command ends with the check that no process of the test is left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::pid_alive;
use serde_json::{json, Map, Value};

use crate::{
    assert_gone, assert_no_process_left, bounded, git_repository, interop, text, Interop, Scratch,
    MARKER_VAR, STARTUP_TIMEOUT_MS,
};

/// A bound on one command: the servers' startup, the work, and the shutdown.
const COMMAND_BOUND: Duration = Duration::from_secs(STARTUP_TIMEOUT_MS / 1000 + 40);

/// The namespaces of the five servers.
const SERVERS: [&str; 5] = ["everything", "filesystem", "git", "memory", "time"];

/// The protocol revision the host asks for, which every one of the five servers accepts.
const PROTOCOL_VERSION: &str = "2025-11-25";

/// `mcp-host --config CONFIG serve --http ARGS…` run as a user would (ARGS starts with the
/// address), its stderr echoed with a label and drained so that it never blocks on a full pipe.
pub(crate) struct HttpGateway {
    pub(crate) child: tokio::process::Child,
    /// Its `/mcp` URL, from its "listening on" line.
    pub(crate) url: String,
    drain: tokio::task::JoinSet<()>,
}

impl HttpGateway {
    /// Starts the gateway with `envs` and waits up to `bound` for its "listening on" line.
    pub(crate) async fn start(
        config: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        scratch: &Scratch,
        label: &str,
        bound: Duration,
    ) -> HttpGateway {
        use tokio::io::{AsyncBufReadExt as _, BufReader};

        #[allow(clippy::disallowed_methods)] // The binary under test.
        let mut command = tokio::process::Command::new(mcp_host_binary());
        command
            .arg("--config")
            .arg(config)
            .args(["serve", "--http"])
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("MCP_HOST_CONFIG")
            .env_remove("RUST_LOG")
            .env(MARKER_VAR, &scratch.marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("cannot start mcp-host serve --http");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // The gateway announces its address once every server is up.
        let url = bounded("mcp-host serve --http", bound, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return url.to_owned();
                }
                eprintln!("{label}: {line}");
            }
            panic!("{label} exited before listening");
        })
        .await;
        let mut drain = tokio::task::JoinSet::new();
        let label = label.to_owned();
        drain.spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{label}: {line}");
            }
        });
        HttpGateway { child, url, drain }
    }

    /// SIGTERM: it must exit with 0 within `exit_bound`, and its stderr end within `drain_bound`.
    pub(crate) async fn terminate(mut self, exit_bound: Duration, drain_bound: Duration) {
        let pid = self.child.id().expect("the gateway already exited");
        #[allow(clippy::disallowed_methods)]
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = bounded("the gateway's exit", exit_bound, self.child.wait())
            .await
            .unwrap();
        assert!(status.success(), "{status:?}");
        bounded("the stderr drain", drain_bound, async {
            while self.drain.join_next().await.is_some() {}
        })
        .await;
    }
}

/// `target/<profile>/mcp-host`, next to the directory (`deps/`) of this test's executable.
pub(crate) fn mcp_host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot find the test executable");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile_dir| profile_dir.join("mcp-host"));
    match binary {
        Some(binary) if binary.is_file() => binary,
        _ => panic!(
            "no mcp-host binary next to {}: build it with `cargo build -p mcp-host-cli --bin mcp-host` \
             (`cargo xtask interop` does so before running these tests)",
            exe.display()
        ),
    }
}

/// The entry of `config` in an `mcpServers` object: only the fields it sets.
pub(crate) fn entry(config: &ClientConfig) -> Value {
    let mut entry = Map::new();
    entry.insert("command".to_owned(), json!(config.command));
    entry.insert("args".to_owned(), json!(config.args));
    if !config.env.is_empty() {
        entry.insert("env".to_owned(), json!(config.env));
    }
    if !config.roots.is_empty() {
        entry.insert("roots".to_owned(), json!(config.roots));
    }
    entry.insert(
        "startupTimeoutMs".to_owned(),
        json!(config.startup_timeout_ms),
    );
    entry.insert("required".to_owned(), json!(config.required));
    Value::Object(entry)
}

/// The five servers' configuration file, written into the scratch directory.
struct FiveServers {
    /// The configuration file.
    config: PathBuf,
    /// The directory server-filesystem may work in (also its root).
    files: PathBuf,
}

/// Writes the configuration of the five servers: everything (offered no roots, so that it exits as soon as its
/// input is closed), filesystem on a directory that is also its root, memory keeping its graph in the scratch
/// directory, time in UTC, and git on a fresh repository.
fn five_servers(interop: &Interop, scratch: &Scratch) -> FiveServers {
    let files = scratch.dir("files");
    std::fs::write(files.join("hello.txt"), "hello from mcp-host\n").unwrap();
    let repository = scratch.dir("repo");
    git_repository(&repository);
    let memory_file = scratch.path.join("memory.jsonl");

    let servers: Map<String, Value> = [
        interop.everything(scratch, None),
        interop.filesystem(scratch, &files),
        interop.memory(scratch, &memory_file),
        interop.time(scratch),
        interop.git(scratch, &repository),
    ]
    .iter()
    .map(|config| (config.id.clone(), entry(config)))
    .collect();
    let config = scratch.path.join("mcp.json");
    let file = json!({ "mcpServers": servers });
    std::fs::write(&config, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    FiveServers { config, files }
}

/// Runs `mcp-host --config <config> <args>` to completion (bounded; killed on timeout), with the scratch's marker
/// in its environment, then checks that no process of the test is left.
pub(crate) async fn mcp_host(scratch: &Scratch, config: &Path, args: &[&str]) -> Output {
    // The binary under test is run directly; the spawn ban is for library code.
    #[allow(clippy::disallowed_methods)]
    let mut command = tokio::process::Command::new(mcp_host_binary());
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .env(MARKER_VAR, &scratch.marker)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let what = format!("mcp-host {}", args.join(" "));
    let started = Instant::now();
    let output = bounded(&what, COMMAND_BOUND, command.output())
        .await
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    eprintln!("{what}: {} in {:.1?}", output.status, started.elapsed());
    assert_no_process_left(scratch).await;
    output
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks the exit code, showing both outputs when it differs.
pub(crate) fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

pub(crate) fn json_stdout(output: &Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", stdout(output)))
}

/// `tools --json` lists the tools of all five servers under their namespaces; `status --json` shows all five
/// ready, with the protocol revision and the name each server gave; the servers it reported are gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_tools_and_status_of_five_servers() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let five = five_servers(&interop, &scratch);

    let output = mcp_host(&scratch, &five.config, &["tools", "--json"]).await;
    assert_exit(&output, 0, "tools --json");
    let tools = json_stdout(&output);
    let tools = tools.as_array().expect("tools --json prints an array");
    let mut servers = BTreeSet::new();
    for tool in tools {
        let server = tool["server"].as_str().expect("a tool has a server");
        let original = tool["originalName"].as_str().expect("a tool has a name");
        assert_eq!(tool["name"], format!("{server}__{original}"), "{tool}");
        assert!(tool["inputSchema"].is_object(), "{tool}");
        servers.insert(server.to_owned());
    }
    assert_eq!(servers, SERVERS.map(str::to_owned).into(), "{tools:?}");
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for expected in [
        "everything__echo",
        "filesystem__read_text_file",
        "git__git_status",
        "memory__read_graph",
        "time__get_current_time",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }

    let output = mcp_host(&scratch, &five.config, &["status", "--json"]).await;
    assert_exit(&output, 0, "status --json");
    let statuses = json_stdout(&output);
    let statuses = statuses.as_array().expect("status --json prints an array");
    let ids: BTreeSet<&str> = statuses
        .iter()
        .filter_map(|status| status["id"].as_str())
        .collect();
    assert_eq!(ids, SERVERS.into(), "{statuses:?}");
    let mut pids = Vec::new();
    for status in statuses {
        let id = status["id"].as_str().unwrap();
        assert_eq!(status["state"], "ready", "{status}");
        assert_eq!(status["protocolVersion"], PROTOCOL_VERSION, "{status}");
        let expected_name = match id {
            "everything" => "mcp-servers/everything",
            "filesystem" => "secure-filesystem-server",
            "git" => "mcp-git",
            "memory" => "memory-server",
            "time" => "mcp-time",
            other => panic!("unexpected server {other}"),
        };
        assert_eq!(status["serverInfo"]["name"], expected_name, "{status}");
        assert!(status["nTools"].as_u64().unwrap_or(0) > 0, "{status}");
        let pid = status["pid"].as_u64().expect("a ready server has a pid");
        pids.push(u32::try_from(pid).unwrap());
    }
    assert_gone(&format!("server pids {pids:?}"), || {
        pids.iter().copied().filter(|&pid| pid_alive(pid)).collect()
    })
    .await;
}

/// `call` of a Python server's tool and of a Node server's tool exits 0 and prints the result; a tool that
/// reports an error (`isError`: server-filesystem refusing a path outside its root) exits 3 and prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_calls_tools() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let five = five_servers(&interop, &scratch);

    let output = mcp_host(
        &scratch,
        &five.config,
        &["call", "time__get_current_time", r#"{"timezone":"UTC"}"#],
    )
    .await;
    assert_exit(&output, 0, "call time__get_current_time");
    let time = json_stdout(&output);
    assert_eq!(time["timezone"], "UTC", "{time}");
    let datetime = time["datetime"].as_str().unwrap_or_default();
    assert!(datetime.ends_with("+00:00"), "{time}");

    let output = mcp_host(
        &scratch,
        &five.config,
        &["call", "everything__echo", r#"{"message":"hi"}"#],
    )
    .await;
    assert_exit(&output, 0, "call everything__echo");
    assert_eq!(stdout(&output).trim_end(), "Echo: hi");

    let outside = scratch.path.join("outside.txt");
    std::fs::write(&outside, "not in the root\n").unwrap();
    assert!(!outside.starts_with(&five.files));
    let arguments = json!({ "path": text(&outside) }).to_string();
    let output = mcp_host(
        &scratch,
        &five.config,
        &["call", "filesystem__read_text_file", &arguments],
    )
    .await;
    assert_exit(
        &output,
        3,
        "call filesystem__read_text_file outside the root",
    );
    assert!(
        stdout(&output).contains("Access denied - path outside allowed directories"),
        "{}",
        stdout(&output)
    );
}

/// `resources --json`, `read-resource` of one of server-everything's resources, and `get-prompt` of its simple
/// prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_resources_and_prompts() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let five = five_servers(&interop, &scratch);

    let output = mcp_host(&scratch, &five.config, &["resources", "--json"]).await;
    assert_exit(&output, 0, "resources --json");
    let resources = json_stdout(&output);
    let uri = resources
        .as_array()
        .expect("resources --json prints an array")
        .iter()
        .find(|resource| resource["server"] == "everything")
        .and_then(|resource| resource["uri"].as_str())
        .unwrap_or_else(|| panic!("server-everything lists no resource: {resources}"))
        .to_owned();

    let output = mcp_host(&scratch, &five.config, &["read-resource", &uri, "--json"]).await;
    assert_exit(&output, 0, "read-resource");
    let read = json_stdout(&output);
    let contents = read["contents"].as_array().expect("contents");
    assert_eq!(contents.len(), 1, "{read}");
    assert_eq!(contents[0]["uri"], uri.as_str(), "{read}");
    assert!(
        contents[0]["text"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "{read}"
    );

    let output = mcp_host(
        &scratch,
        &five.config,
        &["get-prompt", "everything__simple-prompt"],
    )
    .await;
    assert_exit(&output, 0, "get-prompt");
    assert!(
        stdout(&output).contains("This is a simple prompt without arguments."),
        "{}",
        stdout(&output)
    );
}

/// The Python SDK's `stdio_client` and `ClientSession` use `mcp-host serve` as their server: initialize, list the
/// aggregated tools, call a Node server's tool and a Python server's tool. When the SDK leaves, it closes the
/// gateway's input and waits 2 s before terminating it: the gateway must stop its servers and exit with 0 in that
/// time, by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_through_gateway() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let five = five_servers(&interop, &scratch);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/clients/sdk_client.py");
    assert!(script.is_file(), "{} is missing", script.display());

    // Test setup runs the SDK's client directly; the spawn ban is for library code.
    #[allow(clippy::disallowed_methods)]
    let mut command = tokio::process::Command::new(interop.venv_bin("python"));
    command
        .arg(&script)
        .arg(mcp_host_binary())
        .arg(&five.config)
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .env(MARKER_VAR, &scratch.marker)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = bounded("sdk_client.py", COMMAND_BOUND, command.output())
        .await
        .expect("cannot run the venv's python");
    eprintln!(
        "sdk_client.py: {} in {:.1?}",
        output.status,
        started.elapsed()
    );
    assert_exit(&output, 0, "sdk_client.py");
    assert_no_process_left(&scratch).await;

    let summary = json_stdout(&output);
    assert_sdk_summary(&summary, "Echo: from the Python SDK");
    let time: Value = serde_json::from_str(summary["time"]["text"].as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("the time is not JSON ({error}): {summary}"));
    assert_eq!(time["timezone"], "UTC", "{summary}");

    assert_eq!(
        summary["terminated"], false,
        "the SDK had to terminate the gateway: it did not exit after end of input\n{summary}\nstderr:\n{}",
        stderr(&output)
    );
    assert_eq!(
        summary["returncode"],
        0,
        "the gateway's exit status\n{summary}\nstderr:\n{}",
        stderr(&output)
    );
    eprintln!(
        "gateway: initialized in {} s, exited in {} s after end of input",
        summary["initializeSeconds"], summary["closeSeconds"]
    );
}

/// The Python SDK's `streamable_http_client` and `ClientSession` use `mcp-host serve --http 127.0.0.1:0` as their
/// server: initialize, list the aggregated tools, call a Node server's tool and a Python server's tool, get the
/// progress of a long-running operation, and end the session with DELETE. Then SIGTERM stops the gateway, which
/// must stop its servers and exit with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_through_http_gateway() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let five = five_servers(&interop, &scratch);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/clients/sdk_http_client.py");
    assert!(script.is_file(), "{} is missing", script.display());

    let gateway = HttpGateway::start(
        &five.config,
        &["127.0.0.1:0"],
        &[],
        &scratch,
        "gateway",
        COMMAND_BOUND,
    )
    .await;
    let url = gateway.url.clone();

    // Test setup runs the SDK's client directly; the spawn ban is for library code.
    #[allow(clippy::disallowed_methods)]
    let mut command = tokio::process::Command::new(interop.venv_bin("python"));
    command
        .arg(&script)
        .arg(&url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = bounded("sdk_http_client.py", COMMAND_BOUND, command.output())
        .await
        .expect("cannot run the venv's python");
    assert_exit(&output, 0, "sdk_http_client.py");
    let summary = json_stdout(&output);
    assert_sdk_summary(&summary, "Echo: over HTTP");
    assert_eq!(summary["long"]["isError"], false, "{summary}");
    assert_eq!(
        summary["progress"],
        json!([[1.0, 4.0], [2.0, 4.0], [3.0, 4.0], [4.0, 4.0]]),
        "{summary}"
    );

    gateway.terminate(COMMAND_BOUND, PROMPTLY_DRAIN).await;
    assert_no_process_left(&scratch).await;
}

/// Checks what both Python SDK clients report of the gateway: who it is, the protocol, a tool of
/// every server, and that the echo (answering `echo_text`) and time calls succeeded.
fn assert_sdk_summary(summary: &Value, echo_text: &str) {
    assert_eq!(summary["serverName"], "mcp-host", "{summary}");
    assert_eq!(summary["protocolVersion"], PROTOCOL_VERSION, "{summary}");
    let tools: Vec<&str> = summary["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for server in SERVERS {
        assert!(
            tools
                .iter()
                .any(|name| name.starts_with(&format!("{server}__"))),
            "no tool of {server} in {tools:?}"
        );
    }
    assert_eq!(summary["echo"]["isError"], false, "{summary}");
    assert_eq!(summary["echo"]["text"], echo_text, "{summary}");
    assert_eq!(summary["time"]["isError"], false, "{summary}");
}

/// How long the gateway's stderr may stay open after it exited (its servers' stderr is closed with them).
const PROMPTLY_DRAIN: Duration = Duration::from_secs(10);
