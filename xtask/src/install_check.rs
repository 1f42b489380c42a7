//! `cargo xtask install-check` and `cargo xtask man`: mcp-host installed the way users install it.
//!
//! `install-check` runs `cargo install --path crates/mcp-host-cli` into a fresh root (in debug,
//! sharing the target directory, so CI builds little), then runs the installed binary on the
//! embedded demo, writes its manual page, and checks `deploy/mcp-host.service` with
//! `systemd-analyze verify` where systemd is installed.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::interop::target_dir;
use crate::{cargo_command, run_cargo, workspace_root};

/// Runs `cargo xtask install-check`.
pub(crate) fn check() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let target = target_dir(&root);
    let install_root = target.join("install-check");
    let _ = fs::remove_dir_all(&install_root);
    let mut install = cargo_command(&[
        "install",
        "--path",
        "crates/mcp-host-cli",
        "--locked",
        "--debug",
        "--root",
        install_root
            .to_str()
            .context("the target directory is not valid UTF-8")?,
    ]);
    install.envs = vec![(
        "CARGO_TARGET_DIR".to_owned(),
        target
            .to_str()
            .context("the target directory is not valid UTF-8")?
            .to_owned(),
    )];
    run_cargo(&root, &install)?;
    let binary = install_root.join("bin").join("mcp-host");
    let tools = run(&binary, &["tools"])?;
    if !tools.contains("demo__echo") {
        bail!("the installed mcp-host did not list the demo's tools:\n{tools}");
    }
    println!("install-check: {} lists the demo's tools", binary.display());
    write_man(&binary, &target)?;
    verify_unit(&root, &binary)?;
    validate_kubernetes(&root, &target)?;
    check_configmap(&root, &binary)
}

/// The Kubernetes validator from PyPI, pinned, and the version of the API it checks against.
const KUBERNETES_VALIDATE: (&str, &str) = ("kubernetes-validate", "1.37.0");

/// Validates `deploy/kubernetes/*.yaml` against the Kubernetes API schema (strict: unknown
/// fields fail), with `kubernetes-validate` installed into `<target>/deploy-check/venv`.
fn validate_kubernetes(root: &Path, target: &Path) -> anyhow::Result<()> {
    let venv = target.join("deploy-check").join("venv");
    crate::install::venv(&venv, &[KUBERNETES_VALIDATE], &["kubernetes-validate"])?;
    let dir = root.join("deploy/kubernetes");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let output = Command::new(venv.join("bin").join("kubernetes-validate"))
        .arg("--strict")
        .args(&files)
        .stdin(Stdio::null())
        .output()
        .context("cannot run kubernetes-validate")?;
    if !output.status.success() {
        bail!(
            "deploy/kubernetes does not validate:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!(
        "install-check: {} Kubernetes manifests validate (strict, API 1.37)",
        files.len()
    );
    Ok(())
}

/// The configuration the ConfigMap carries is one `mcp-host` accepts (`mcp-host check-config`).
fn check_configmap(root: &Path, binary: &Path) -> anyhow::Result<()> {
    let text = fs::read_to_string(root.join("deploy/kubernetes/configmap.yaml"))
        .context("cannot read deploy/kubernetes/configmap.yaml")?;
    let json: String = text
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("mcp.json:"))
        .skip(1)
        .map(|line| format!("{}\n", line.trim_start()))
        .collect();
    let dir = binary
        .parent()
        .and_then(Path::parent)
        .context("the install root")?;
    let path = dir.join("configmap-mcp.json");
    fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    let path_text = path.to_str().context("the path is not valid UTF-8")?;
    let checked = run(binary, &["--config", path_text, "check-config"]).context(
        "deploy/kubernetes/configmap.yaml: mcp.json is not a configuration mcp-host accepts",
    )?;
    println!(
        "install-check: the ConfigMap's configuration: {}",
        checked.trim()
    );
    Ok(())
}

/// Runs `cargo xtask man`: builds mcp-host and writes `<target>/man/mcp-host.1`.
pub(crate) fn man() -> anyhow::Result<()> {
    let root = workspace_root()?;
    run_cargo(
        &root,
        &cargo_command(&[
            "build",
            "--package",
            "mcp-host-cli",
            "--bin",
            "mcp-host",
            "--locked",
        ]),
    )?;
    let target = target_dir(&root);
    write_man(&target.join("debug").join("mcp-host"), &target)
}

fn write_man(binary: &Path, target: &Path) -> anyhow::Result<()> {
    let page = run(binary, &["man"])?;
    if !page.contains(".TH mcp-host 1") {
        bail!("`mcp-host man` did not print a manual page");
    }
    let dir = target.join("man");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("mcp-host.1");
    fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "man: wrote {} (read it with `man -l {}`)",
        path.display(),
        path.display()
    );
    Ok(())
}

/// `systemd-analyze verify` on the unit, with its `ExecStart` pointing at `binary`.
fn verify_unit(root: &Path, binary: &Path) -> anyhow::Result<()> {
    if crate::debian::which("systemd-analyze").is_none() {
        println!("install-check: systemd-analyze is not installed; the unit file is not verified");
        return Ok(());
    }
    let unit = fs::read_to_string(root.join("deploy/mcp-host.service"))
        .context("cannot read deploy/mcp-host.service")?;
    let binary_text = binary
        .to_str()
        .context("the binary's path is not valid UTF-8")?;
    let unit = unit.replace("/usr/local/bin/mcp-host", binary_text);
    let dir = binary
        .parent()
        .and_then(Path::parent)
        .context("the install root")?
        .join("systemd");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("mcp-host.service");
    fs::write(&path, unit).with_context(|| format!("cannot write {}", path.display()))?;
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .context("cannot run systemd-analyze")?;
    let complaints = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !complaints.trim().is_empty() {
        bail!("systemd-analyze verify found problems in deploy/mcp-host.service:\n{complaints}");
    }
    println!("install-check: deploy/mcp-host.service verified by systemd-analyze");
    Ok(())
}

fn run(binary: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args(args)
        .env_remove("MCP_HOST_CONFIG")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
