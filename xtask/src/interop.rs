//! `cargo xtask interop`: installs real MCP servers from npm and PyPI, then runs the `mcp-host-interop` tests against them.
//!
//! The servers go into a cache under `<target>/interop/` (`node/` for npm, `venv/` for PyPI), where `<target>` is
//! `$CARGO_TARGET_DIR` or `<workspace>/target`. Each installer writes a stamp file listing the exact packages it
//! installed; the next run skips the installer when the stamp matches and the packages are still there, so only a
//! cold cache needs the registries. An installer that fails stops the command with its output; nothing is skipped
//! silently. The tests then run with `MCP_HOST_INTEROP_DIR` naming the cache and `MCP_HOST_INTEROP_REQUIRED=1`,
//! so a missing server fails them instead of skipping them. The `mcp-host` binary is built first: the CLI tests run it.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::{cargo_command, nextest_available, run_cargo, shell_quote, workspace_root};

/// The crate holding the interop tests.
pub(crate) const CRATE: &str = "mcp-host-interop";

/// The npm packages, pinned to versions checked with `npm view <package> version`.
const NPM_PACKAGES: &[(&str, &str)] = &[
    ("@modelcontextprotocol/server-everything", "2026.8.31"),
    ("@modelcontextprotocol/server-filesystem", "2026.8.31"),
    ("@modelcontextprotocol/server-memory", "2026.8.31"),
    // The TypeScript SDK: its example server (`simpleStreamableHttp --oauth`) is the
    // OAuth-protected server of the `oauth` interop test.
    ("@modelcontextprotocol/sdk", "1.32.2"),
    // An MCP Apps server: a tool whose `_meta.ui.resourceUri` names a `ui://` HTML app that calls
    // the tool by its bare name.
    ("@modelcontextprotocol/server-basic-vanillajs", "2.0.3"),
];

/// The PyPI packages, pinned to versions checked with `pip index versions <package>`.
/// `mcp` is the Python SDK; the tests also run a small server written with it.
const PYPI_PACKAGES: &[(&str, &str)] = &[
    ("mcp-server-time", "2026.10.19"),
    ("mcp-server-git", "2026.10.19"),
    ("mcp", "2.3.0"),
];

/// Programs the PyPI packages must have put into `venv/bin/`.
const VENV_PROGRAMS: &[&str] = &["python", "mcp-server-time", "mcp-server-git"];

/// Name of the stamp file written into each cache directory after a successful install.
const STAMP: &str = ".mcp-host-interop-stamp";

/// Runs `cargo xtask interop`: installs what is missing, then (unless `install_only`) runs the interop tests
/// and the official conformance suite (`cargo xtask conformance`).
pub(crate) fn run(install_only: bool) -> anyhow::Result<()> {
    let root = workspace_root()?;
    let dir = interop_dir(&root)?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;

    let start = Instant::now();
    install_npm(&dir)?;
    install_pypi(&dir)?;
    // The status page is checked in a real browser; replicas behind real load balancers.
    crate::debian::ensure(&[
        ("chromium", "chromium"),
        ("haproxy", "haproxy"),
        ("nginx", "nginx"),
    ])?;
    println!(
        "interop: servers ready in {} ({:.1?})",
        dir.display(),
        start.elapsed()
    );
    if install_only {
        return Ok(());
    }

    let dir_text = dir
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", dir.display()))?
        .to_owned();
    // The CLI tests run the `mcp-host` binary, which Cargo does not build for another package's tests.
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
    let mut command = if nextest_available(&root) {
        cargo_command(&[
            "nextest",
            "run",
            "--package",
            CRATE,
            "--locked",
            "--profile",
            "ci",
            "--no-fail-fast",
        ])
    } else {
        println!("note: cargo-nextest not found: tests run under `cargo test`");
        cargo_command(&["test", "--package", CRATE, "--locked"])
    };
    command.envs = vec![
        ("MCP_HOST_INTEROP_DIR".to_owned(), dir_text),
        ("MCP_HOST_INTEROP_REQUIRED".to_owned(), "1".to_owned()),
    ];
    run_cargo(&root, &command)?;
    // The official conformance suite is interop too: our HTTP client and gateway against it.
    crate::conformance::run()
}

/// `<target>/interop`, with `<target>` from `$CARGO_TARGET_DIR` (relative to the workspace root) or `<root>/target`.
fn interop_dir(root: &Path) -> anyhow::Result<PathBuf> {
    Ok(target_dir(root).join("interop"))
}

/// `<target>`: `$CARGO_TARGET_DIR` (relative to the workspace root) or `<root>/target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// `name@version` for each pinned package, as both installers take them.
fn npm_specs() -> Vec<String> {
    NPM_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect()
}

/// `name==version` for each pinned package, as pip takes them.
fn pypi_specs() -> Vec<String> {
    PYPI_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect()
}

/// The stamp's contents for a list of package specs: one per line.
fn stamp_text(specs: &[String]) -> String {
    let mut text = specs.join("\n");
    text.push('\n');
    text
}

/// Whether `dir` holds a stamp for exactly `specs`.
pub(crate) fn stamp_matches(dir: &Path, specs: &[String]) -> bool {
    fs::read_to_string(dir.join(STAMP)).is_ok_and(|text| text == stamp_text(specs))
}

pub(crate) fn write_stamp(dir: &Path, specs: &[String]) -> anyhow::Result<()> {
    let path = dir.join(STAMP);
    fs::write(&path, stamp_text(specs)).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes a stamp before an install, so that an interrupted install is not taken for a finished one.
pub(crate) fn remove_stamp(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(STAMP);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn install_npm(dir: &Path) -> anyhow::Result<()> {
    let node_dir = dir.join("node");
    let specs = npm_specs();
    let packages_present = NPM_PACKAGES.iter().all(|(name, _)| {
        node_dir
            .join("node_modules")
            .join(name)
            .join("package.json")
            .is_file()
    });
    if packages_present && stamp_matches(&node_dir, &specs) {
        println!("interop: npm packages up to date in {}", node_dir.display());
        return Ok(());
    }
    fs::create_dir_all(&node_dir)
        .with_context(|| format!("cannot create {}", node_dir.display()))?;
    remove_stamp(&node_dir)?;
    let mut args: Vec<String> = vec![
        "install".to_owned(),
        "--prefix".to_owned(),
        path_text(&node_dir)?,
        "--no-audit".to_owned(),
        "--no-fund".to_owned(),
        "--loglevel=error".to_owned(),
    ];
    args.extend(specs.iter().cloned());
    run_installer(dir, "npm", &args)?;
    write_stamp(&node_dir, &specs)
}

fn install_pypi(dir: &Path) -> anyhow::Result<()> {
    let venv = dir.join("venv");
    let bin = venv.join("bin");
    let specs = pypi_specs();
    let programs_present = VENV_PROGRAMS
        .iter()
        .all(|program| bin.join(program).is_file());
    if programs_present && stamp_matches(&venv, &specs) {
        println!("interop: PyPI packages up to date in {}", venv.display());
        return Ok(());
    }
    if !bin.join("python").is_file() {
        run_installer(
            dir,
            "python3",
            &["-m".to_owned(), "venv".to_owned(), path_text(&venv)?],
        )?;
    }
    remove_stamp(&venv)?;
    let mut args: Vec<String> = vec![
        "install".to_owned(),
        "--disable-pip-version-check".to_owned(),
        "-q".to_owned(),
    ];
    args.extend(specs.iter().cloned());
    run_installer(dir, &path_text(&bin.join("pip"))?, &args)?;
    write_stamp(&venv, &specs)
}

pub(crate) fn path_text(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

/// Echoes and runs an installer in `cwd`, printing its output, and fails when it fails.
pub(crate) fn run_installer(cwd: &Path, program: &str, args: &[String]) -> anyhow::Result<()> {
    let mut line = shell_quote(program);
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    println!("$ {line}");
    let start = Instant::now();
    let output = Command::new(program)
        .args(args.iter().map(OsStr::new))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!("cannot run `{line}`: is `{program}` installed and on PATH? (interop needs Node.js with npm, and Python 3.10 or newer with venv)")
        })?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!(
            "`{line}` exited with {} after {:.1?} (its output is above)",
            output.status,
            start.elapsed()
        );
    }
    println!("    done in {:.1?}", start.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        let dir = env::temp_dir().join(format!("xtask-interop-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let specs = pypi_specs();
        assert!(!stamp_matches(&dir, &specs), "no stamp yet");
        write_stamp(&dir, &specs).unwrap();
        assert!(stamp_matches(&dir, &specs));
        assert!(!stamp_matches(&dir, &npm_specs()), "other packages");
        assert!(!stamp_matches(&dir, &specs[1..]), "fewer packages");
        remove_stamp(&dir).unwrap();
        remove_stamp(&dir).unwrap();
        assert!(!stamp_matches(&dir, &specs), "removed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
