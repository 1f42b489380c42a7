//! `cargo xtask bench`: builds the `mcp-host-bench` crate and the `mcp-host` binary, installs the HTTP section's SDK clients and peer gateways, then runs the benchmark.
//!
//! The full run builds in release and measures mcp-host against rmcp and a raw stdio loop, then
//! its HTTP gateway against the peer gateways with four clients; it prints Markdown tables and
//! writes `results.json`, `results.md` and the SVG charts into `<target>/bench/`. `--smoke` builds
//! in debug (the profile CI has already built) and runs every measurement with tiny counts, into
//! `<target>/bench/smoke/`, so the benchmark cannot rot; its HTTP part runs every client through
//! `mcp-host serve --http` and the direct echo server only (no peers) and fails when the guard
//! does. It is the CI step before interop. `--scale` measures how the host and the HTTP gateway
//! grow with servers and sessions, into `<target>/bench/scale/`.
//!
//! The HTTP section's clients and peers are installed from npm and PyPI, pinned, into
//! `<target>/bench-peers/` (skipped when the stamps match; see `install.rs`): `clients/node` (the
//! TypeScript SDK) and `clients/venv` (the Python SDK) always, and for the full run
//! `peers/node` (supergateway, mcp-proxy), `peers/mcp-proxy-venv` and `peers/fastmcp-venv`.
//! `crates/mcp-host-bench/src/http/gateway.rs` (`PeersDir`) reads this layout.
//! Figures and targets are explained in `BENCHMARKS.md`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::{cargo_command, install, run_cargo, shell_quote, workspace_root};

/// The crate holding the benchmark.
pub(crate) const CRATE: &str = "mcp-host-bench";

/// The crate of the `mcp-host` binary, which the gateway figure runs.
const CLI_CRATE: &str = "mcp-host-cli";

/// Bounds on the benchmark process (the full run takes about 20 minutes, the smoke about 40 s,
/// the scale run about 2 minutes, on a 2-core machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const SMOKE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const SCALE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The TypeScript SDK client, pinned; checked with `npm view @modelcontextprotocol/sdk version`.
const TS_SDK: &[(&str, &str)] = &[("@modelcontextprotocol/sdk", "1.32.2")];
/// The Python SDK client, pinned (the version interop uses).
const PY_SDK: &[(&str, &str)] = &[("mcp", "2.3.0")];
/// The npm peer gateways, pinned; checked with `npm view <package> version`.
const NPM_PEERS: &[(&str, &str)] = &[("supergateway", "4.0.0"), ("mcp-proxy", "6.7.19")];
/// mcp-proxy from PyPI, pinned; in a venv of its own (it needs `mcp` 1.x, the clients 2.3.0).
const PYPI_MCP_PROXY: &[(&str, &str)] = &[("mcp-proxy", "0.13.0")];
/// FastMCP, pinned, for its proxy (`fastmcp.server.create_proxy`); in a venv of its own.
const PYPI_FASTMCP: &[(&str, &str)] = &[("fastmcp", "4.1.6")];

/// What `cargo xtask bench` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Release build, every section, every peer.
    Full,
    /// Debug build, tiny counts, no peers; a CI step.
    Smoke,
    /// Release build, `mcp-host-bench scale`.
    Scale,
    /// Release build, `mcp-host-bench noisy`.
    Noisy,
}

/// Runs `cargo xtask bench --install-only`: installs the SDK clients and the peers, nothing else.
pub(crate) fn install_only() -> anyhow::Result<()> {
    install_http(&target_dir(&workspace_root()?).join("bench-peers"), true)
}

/// Installs the SDK clients (and with `peers`, the peer gateways) into `dir`.
fn install_http(dir: &Path, peers: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    install::npm(&dir.join("clients").join("node"), TS_SDK)?;
    install::venv(&dir.join("clients").join("venv"), PY_SDK, &["python"])?;
    if peers {
        let peer_dir = dir.join("peers");
        install::npm(&peer_dir.join("node"), NPM_PEERS)?;
        install::venv(
            &peer_dir.join("mcp-proxy-venv"),
            PYPI_MCP_PROXY,
            &["python", "mcp-proxy"],
        )?;
        install::venv(&peer_dir.join("fastmcp-venv"), PYPI_FASTMCP, &["python"])?;
    }
    println!(
        "bench: HTTP clients{} ready in {} ({:.1?})",
        if peers { " and peers" } else { "" },
        dir.display(),
        started.elapsed()
    );
    Ok(())
}

/// Runs `cargo xtask bench [--smoke | --scale | --noisy]`.
pub(crate) fn run(mode: Mode) -> anyhow::Result<()> {
    let smoke = mode == Mode::Smoke;
    let root = workspace_root()?;
    let started = Instant::now();
    // The smoke run builds exactly what the CI `build` step built (same packages, so the same
    // features), which makes it a no-op there; the full run builds only what it needs, in release.
    let build: &[&str] = if smoke {
        &["build", "--workspace", "--locked", "--bins"]
    } else {
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            CRATE,
            "-p",
            CLI_CRATE,
            "--bins",
        ]
    };
    run_cargo(&root, &cargo_command(build))?;
    let built = started.elapsed();
    let peers_dir = target_dir(&root).join("bench-peers");
    let peers = matches!(mode, Mode::Full | Mode::Smoke);
    if peers {
        install_http(&peers_dir, mode == Mode::Full)?;
    }
    let installed = started.elapsed();

    let profile_dir = if smoke { "debug" } else { "release" };
    let exe = target_dir(&root).join(profile_dir).join(CRATE);
    let mut args = vec![match mode {
        Mode::Full | Mode::Smoke => "run",
        Mode::Scale => "scale",
        Mode::Noisy => "noisy",
    }
    .to_owned()];
    if smoke {
        args.push("--smoke".to_owned());
    }
    if peers {
        args.push("--peers".to_owned());
        args.push(crate::interop::path_text(&peers_dir)?);
    }
    args.push("--rustc".to_owned());
    args.push(rustc_version(&root));
    run_bench(&exe, &args, &root, mode)?;
    if smoke {
        // The quota figure's smoke: it fails when the noisy client is never refused.
        run_bench(
            &exe,
            &["noisy".to_owned(), "--smoke".to_owned()],
            &root,
            mode,
        )?;
    }
    println!(
        "bench: built in {built:.1?}, installed in {:.1?}, {} in {:.1?} all told",
        installed.saturating_sub(built),
        if smoke { "smoke run" } else { "measured" },
        started.elapsed()
    );
    Ok(())
}

/// Runs the benchmark executable with `args`, bounded by the mode's timeout.
fn run_bench(exe: &Path, args: &[String], root: &Path, mode: Mode) -> anyhow::Result<()> {
    let mut line = format!("$ {}", exe.display());
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    println!("{line}");
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    // The benchmark bounds each of its workers; this bounds the whole run as a backstop.
    let deadline = Instant::now()
        + match mode {
            Mode::Full => RUN_TIMEOUT,
            Mode::Smoke => SMOKE_TIMEOUT,
            Mode::Scale | Mode::Noisy => SCALE_TIMEOUT,
        };
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} did not finish in time and was killed", exe.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        bail!("{} exited with {status}", exe.display());
    }
    Ok(())
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root) or `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// `rustc --version` of the toolchain cargo uses (`$RUSTC` when set), for the machine line.
fn rustc_version(root: &Path) -> String {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .arg("--version")
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        // The version is only a note in the report.
        _ => "rustc (version unknown)".to_owned(),
    }
}
