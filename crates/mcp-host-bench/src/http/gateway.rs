//! The HTTP servers under test, each fronting the echo server: started fresh for every client run, measured (process-tree RSS), stopped with SIGTERM.
//!
//! Every gateway runs in its own process group with its output in a log file; the echo server it
//! starts carries the run's marker. Stopping sends SIGTERM to the gateway process alone (as a
//! container runtime does), times its exit, then counts the processes of its tree still alive a
//! second later; whatever is left, and the whole group on any error path (`Drop`), gets SIGKILL.

use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::spec::GatewayKind;
use super::Env;
use crate::clients::ECHO_TOOL;
use crate::procs;

/// Bound on a gateway's start (Python peers import a lot; the machine may be loaded).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a gateway may take to exit after SIGTERM before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the gateway's exit the processes of its tree may take to go.
const LEFT_GRACE: Duration = Duration::from_secs(1);
/// How often the RSS of the tree is sampled under load.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A started gateway, ready for clients.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) kind: GatewayKind,
    child: Option<Child>,
    /// The MCP endpoint.
    pub(crate) url: String,
    /// The echo tool's name as this gateway offers it.
    pub(crate) tool: String,
    pub(crate) log: PathBuf,
}

/// How a gateway ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopped {
    /// From SIGTERM to the gateway's exit; `None` if it had to be killed after [`EXIT_TIMEOUT`].
    pub(crate) exit_ms: Option<f64>,
    /// Processes of its tree (at SIGTERM) still alive [`LEFT_GRACE`] after its exit.
    pub(crate) left: usize,
}

/// Where the installed peers and SDK clients are, under the directory `cargo xtask bench`
/// installs them into (`<target>/bench-peers`); `xtask/src/bench.rs` writes this layout.
#[derive(Clone, Debug)]
pub(crate) struct PeersDir(pub(crate) PathBuf);

impl PeersDir {
    /// The npm prefix of the TypeScript SDK client; `sdk_client.mjs` is copied into it.
    pub(crate) fn ts_client_dir(&self) -> PathBuf {
        self.0.join("clients").join("node")
    }

    /// The venv of the Python SDK client.
    pub(crate) fn py_client_python(&self) -> PathBuf {
        self.0
            .join("clients")
            .join("venv")
            .join("bin")
            .join("python")
    }

    fn peers_node(&self) -> PathBuf {
        self.0.join("peers").join("node").join("node_modules")
    }

    /// The program (and the arguments before its own) that runs a peer gateway, if installed.
    pub(crate) fn peer_program(&self, kind: GatewayKind) -> Option<Vec<PathBuf>> {
        let node = || PathBuf::from("node");
        let found = |path: PathBuf| path.is_file().then_some(path);
        match kind {
            GatewayKind::Direct | GatewayKind::McpHost => None,
            GatewayKind::SupergatewayStateful | GatewayKind::Supergateway => found(
                self.peers_node()
                    .join("supergateway")
                    .join("dist")
                    .join("index.js"),
            )
            .map(|script| vec![node(), script]),
            GatewayKind::McpProxyNpm => found(
                self.peers_node()
                    .join("mcp-proxy")
                    .join("dist")
                    .join("bin")
                    .join("mcp-proxy.mjs"),
            )
            .map(|script| vec![node(), script]),
            GatewayKind::McpProxyPypi => found(
                self.0
                    .join("peers")
                    .join("mcp-proxy-venv")
                    .join("bin")
                    .join("mcp-proxy"),
            )
            .map(|program| vec![program]),
            GatewayKind::Fastmcp => found(
                self.0
                    .join("peers")
                    .join("fastmcp-venv")
                    .join("bin")
                    .join("python"),
            )
            .map(|python| vec![python, self.0.join("peers").join("fastmcp_proxy.py")]),
        }
    }

    /// The pinned packages installed (the installers' stamp files), for the report.
    pub(crate) fn versions(&self) -> Vec<String> {
        let stamps = [
            self.0.join("clients").join("node"),
            self.0.join("clients").join("venv"),
            self.0.join("peers").join("node"),
            self.0.join("peers").join("mcp-proxy-venv"),
            self.0.join("peers").join("fastmcp-venv"),
        ];
        stamps
            .iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join(".mcp-host-interop-stamp")).ok())
            .flat_map(|text| {
                text.lines()
                    .map(str::to_owned)
                    .filter(|line| !line.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Gateway {
    /// Starts `kind` in front of the echo server and waits until it accepts connections.
    pub(crate) fn start(kind: GatewayKind, env: &Env, run_idx: usize) -> anyhow::Result<Gateway> {
        let echo = env.echo.to_string_lossy().into_owned();
        let marker_arg = format!("--bench-marker={}", env.marker);
        let log = env.work.join(format!("{}-{run_idx}.log", kind.name()));
        let port = match kind {
            GatewayKind::Direct | GatewayKind::McpHost => 0,
            _ => free_port()?,
        };
        let port_text = port.to_string();
        let (program, args): (PathBuf, Vec<String>) = match kind {
            GatewayKind::Direct => (
                env.echo.clone(),
                vec!["--http".to_owned(), "127.0.0.1:0".to_owned(), marker_arg],
            ),
            GatewayKind::McpHost => {
                let config = env.work.join(format!("gateway-http-{}.json", env.marker));
                let text = serde_json::json!({
                    "mcpServers": { "srv": { "command": echo, "args": [marker_arg] } }
                });
                std::fs::write(&config, serde_json::to_string_pretty(&text)?)
                    .with_context(|| format!("cannot write {}", config.display()))?;
                (
                    env.mcp_host.clone(),
                    vec![
                        "--config".to_owned(),
                        config.to_string_lossy().into_owned(),
                        "serve".to_owned(),
                        "--http".to_owned(),
                        "127.0.0.1:0".to_owned(),
                    ],
                )
            }
            peer => {
                let peers = env
                    .peers
                    .as_ref()
                    .context("peer gateways need --peers DIR")?;
                let mut words = peers
                    .peer_program(peer)
                    .with_context(|| format!("{peer} is not installed in {}", peers.0.display()))?
                    .into_iter();
                let program = words.next().context("no program")?;
                let mut args: Vec<String> = words
                    .map(|word| word.to_string_lossy().into_owned())
                    .collect();
                let stdio_command = format!("{echo} {marker_arg}");
                match peer {
                    GatewayKind::SupergatewayStateful | GatewayKind::Supergateway => {
                        args.extend(
                            [
                                "--stdio",
                                &stdio_command,
                                "--outputTransport",
                                "streamableHttp",
                                "--port",
                                &port_text,
                                "--logLevel",
                                "none",
                            ]
                            .map(str::to_owned),
                        );
                        if peer == GatewayKind::SupergatewayStateful {
                            args.push("--stateful".to_owned());
                        }
                    }
                    GatewayKind::McpProxyNpm => args.extend(
                        [
                            "--port",
                            &port_text,
                            "--host",
                            "127.0.0.1",
                            "--server",
                            "stream",
                            "--",
                            &echo,
                            &marker_arg,
                        ]
                        .map(str::to_owned),
                    ),
                    GatewayKind::McpProxyPypi => args.extend(
                        [
                            "--port",
                            &port_text,
                            "--host",
                            "127.0.0.1",
                            "--log-level",
                            "WARNING",
                            "--",
                            &echo,
                            &marker_arg,
                        ]
                        .map(str::to_owned),
                    ),
                    GatewayKind::Fastmcp => {
                        args.extend([port_text.clone(), echo.clone(), marker_arg.clone()]);
                    }
                    GatewayKind::Direct | GatewayKind::McpHost => {}
                }
                (program, args)
            }
        };
        let log_file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        // The benchmark starts the gateways it measures; the spawn ban is for library crates.
        #[allow(clippy::disallowed_methods)]
        let mut command = Command::new(&program);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut gateway = Gateway {
            kind,
            child: Some(child),
            url: String::new(),
            tool: match kind {
                GatewayKind::McpHost => mcp_host::naming::namespaced("srv", ECHO_TOOL),
                _ => ECHO_TOOL.to_owned(),
            },
            log,
        };
        gateway.url = gateway.wait_ready(port)?;
        Ok(gateway)
    }

    /// The gateway's process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until the gateway serves: its "listening on" line (ours and the direct server,
    /// which bind port 0), or a connection accepted on its port (peers).
    fn wait_ready(&mut self, port: u16) -> anyhow::Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{} exited before it was ready ({status}); its log: {}",
                        self.kind,
                        log_tail(&self.log)
                    );
                }
            }
            if port == 0 {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                if let Some(url) = text
                    .lines()
                    .find_map(|line| line.split("listening on ").nth(1))
                {
                    return Ok(url.trim().to_owned());
                }
            } else if TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return Ok(format!("http://127.0.0.1:{port}/mcp"));
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} was not ready after {READY_TIMEOUT:?}; its log: {}",
                    self.kind,
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the gateway and every process below it, in KiB.
    pub(crate) fn tree_rss_kib(&self) -> u64 {
        self.pid().map_or(0, procs::tree_rss_kib)
    }

    /// Samples the tree's RSS until the sampler is finished; the peak is its answer.
    pub(crate) fn sample_rss(&self) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let root = self.pid();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Some(root) = root {
                    peak = peak.max(procs::tree_rss_kib(root));
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            peak
        });
        Sampler { stop, handle }
    }

    /// SIGTERM to the gateway process; times its exit and counts what its tree left behind.
    pub(crate) fn stop(mut self) -> anyhow::Result<Stopped> {
        let Some(mut child) = self.child.take() else {
            bail!("the gateway was already stopped");
        };
        let pid = child.id();
        let tree = procs::descendants(pid);
        signal(pid, nix::sys::signal::Signal::SIGTERM);
        let sent = Instant::now();
        let exit_ms = loop {
            if child.try_wait()?.is_some() {
                break Some(sent.elapsed().as_secs_f64() * 1e3);
            }
            if sent.elapsed() >= EXIT_TIMEOUT {
                procs::kill_group(pid);
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let exited = Instant::now();
        let mut alive: Vec<u32> = tree.clone();
        while !alive.is_empty() && exited.elapsed() < LEFT_GRACE {
            std::thread::sleep(Duration::from_millis(10));
            alive.retain(|pid| procs::is_alive(*pid));
        }
        let left = alive.len();
        procs::kill(&alive);
        procs::kill_group(pid);
        Ok(Stopped { exit_ms, left })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Only on an error path: `stop` takes the child.
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let tree = procs::descendants(pid);
            procs::kill_group(pid);
            let _ = child.kill();
            let _ = child.wait();
            procs::kill(&tree);
        }
    }
}

/// A thread sampling RSS.
#[derive(Debug)]
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Sampler {
    /// Stops sampling and returns the peak, in KiB.
    pub(crate) fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// The last lines of a log, for an error message.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("{}:\n{tail}", path.display())
}

/// A port nobody listens on now (the peer binds it a moment later).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}
