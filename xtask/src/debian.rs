//! Debian packages that some checks need (a browser for the status page, a load balancer for
//! replicas), installed with `apt-get` when their program is missing.
//!
//! `apt-get update` runs once, before the first install; nothing runs when every program is
//! already there. An install that fails stops the command with apt's output.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

/// Makes sure each `(program, package)` is installed: when `program` is not on `PATH`, installs
/// `package`.
pub(crate) fn ensure(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(program, _)| which(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which("apt-get").is_none() {
        bail!(
            "these Debian packages are needed and apt-get is not available to install them: {}",
            missing.join(" ")
        );
    }
    println!("debian: installing {}", missing.join(" "));
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args)
}

/// The path of `program` on `PATH` (or in the sbin directories), if it is there.
pub(crate) fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Daemons such as haproxy and nginx live in the sbin directories, which a user's PATH may
    // leave out.
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn apt(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run apt-get {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "apt-get {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
