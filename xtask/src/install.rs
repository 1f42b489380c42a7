//! Pinned npm packages and PyPI venvs under `<target>/`, each directory with a stamp file listing exactly what was installed; a matching stamp skips the install.
//!
//! The stamp format and helpers are `interop`'s (`.mcp-host-interop-stamp`, one package spec a
//! line), so both caches read the same way. An install removes the stamp first, so an interrupted
//! install is never taken for a finished one, and fails with the installer's output. Every
//! installer run is bounded.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::interop::{path_text, remove_stamp, stamp_matches, write_stamp};
use crate::shell_quote;

/// Bound on one `npm install` or `pip install` (a cold cache on a slow registry takes minutes).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// `npm install --prefix <dir>` of `packages` (`(name, version)`), unless the stamp matches and
/// every package's `package.json` is there.
pub(crate) fn npm(dir: &Path, packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let specs: Vec<String> = packages
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    let present = packages.iter().all(|(name, _)| {
        dir.join("node_modules")
            .join(name)
            .join("package.json")
            .is_file()
    });
    if present && stamp_matches(dir, &specs) {
        println!(
            "install: {} up to date in {}",
            specs.join(" "),
            dir.display()
        );
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    remove_stamp(dir)?;
    let mut args = vec![
        "install".to_owned(),
        "--prefix".to_owned(),
        path_text(dir)?,
        "--no-audit".to_owned(),
        "--no-fund".to_owned(),
        "--loglevel=error".to_owned(),
    ];
    args.extend(specs.iter().cloned());
    run(dir, "npm", &args)?;
    write_stamp(dir, &specs)
}

/// A venv at `dir` with `packages` (`(name, version)`) pip-installed, unless the stamp matches and
/// every program of `programs` is in `dir/bin/`.
pub(crate) fn venv(dir: &Path, packages: &[(&str, &str)], programs: &[&str]) -> anyhow::Result<()> {
    let specs: Vec<String> = packages
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let bin = dir.join("bin");
    let present = programs.iter().all(|program| bin.join(program).is_file());
    if present && stamp_matches(dir, &specs) {
        println!(
            "install: {} up to date in {}",
            specs.join(" "),
            dir.display()
        );
        return Ok(());
    }
    let parent = dir
        .parent()
        .with_context(|| format!("{} has no parent", dir.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    if !bin.join("python").is_file() {
        run(
            parent,
            "python3",
            &["-m".to_owned(), "venv".to_owned(), path_text(dir)?],
        )?;
    }
    remove_stamp(dir)?;
    let mut args = vec![
        "install".to_owned(),
        "--disable-pip-version-check".to_owned(),
        "-q".to_owned(),
    ];
    args.extend(specs.iter().cloned());
    run(dir, &path_text(&bin.join("pip"))?, &args)?;
    write_stamp(dir, &specs)
}

/// Echoes and runs an installer in `cwd`, bounded by [`INSTALL_TIMEOUT`]; its output is passed
/// through, and a failure or a timeout fails the command.
fn run(cwd: &Path, program: &str, args: &[String]) -> anyhow::Result<()> {
    let mut line = shell_quote(program);
    for arg in args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    println!("$ {line}");
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| {
            format!("cannot run `{line}`: is `{program}` installed and on PATH? (the benchmark's HTTP section needs Node.js with npm, and Python 3.10 or newer with venv)")
        })?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= INSTALL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{line}` took longer than {INSTALL_TIMEOUT:?} and was killed");
        }
        thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        bail!(
            "`{line}` exited with {status} after {:.1?} (its output is above)",
            started.elapsed()
        );
    }
    println!("    done in {:.1?}", started.elapsed());
    Ok(())
}
