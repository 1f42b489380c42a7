//! `cargo xtask bench`: builds the `mcp-host-bench` crate and the `mcp-host` binary, then runs the benchmark.
//!
//! The full run builds in release and measures mcp-host against rmcp and a raw stdio loop; it
//! prints a Markdown table and writes `results.json`, `results.md` and `latency.svg` into
//! `<target>/bench/`. `--smoke` builds in debug (the profile CI has already built) and runs every
//! measurement with tiny counts, into `<target>/bench/smoke/`, so the benchmark cannot rot; it is
//! the CI step before interop. Figures and targets are explained in `BENCHMARKS.md`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::{cargo_command, run_cargo, shell_quote, workspace_root};

/// The crate holding the benchmark.
pub(crate) const CRATE: &str = "mcp-host-bench";

/// The crate of the `mcp-host` binary, which the gateway figure runs.
const CLI_CRATE: &str = "mcp-host-cli";

/// Bounds on the benchmark process (it takes about 45 s, and 2 s with `--smoke`, on a 2-core machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const SMOKE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Runs `cargo xtask bench [--smoke]`.
pub(crate) fn run(smoke: bool) -> anyhow::Result<()> {
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

    let profile_dir = if smoke { "debug" } else { "release" };
    let exe = target_dir(&root).join(profile_dir).join(CRATE);
    let mut args = vec!["run".to_owned()];
    if smoke {
        args.push("--smoke".to_owned());
    }
    args.push("--rustc".to_owned());
    args.push(rustc_version(&root));
    let mut line = format!("$ {}", exe.display());
    for arg in &args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    println!("{line}");
    let mut child = Command::new(&exe)
        .args(&args)
        .current_dir(&root)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    // The benchmark bounds each of its workers; this bounds the whole run as a backstop.
    let deadline = Instant::now() + if smoke { SMOKE_TIMEOUT } else { RUN_TIMEOUT };
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
    println!(
        "bench: built in {built:.1?}, {} in {:.1?} all told",
        if smoke { "smoke run" } else { "measured" },
        started.elapsed()
    );
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
