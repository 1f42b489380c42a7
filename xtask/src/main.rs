//! Repository automation: `cargo xtask ci` is the single CI entry point, and `cargo xtask tidy` checks repository rules.
//!
//! `cargo xtask interop` installs real MCP servers from npm and PyPI under `target/interop/` and runs the
//! `mcp-host-interop` tests against them, then the official conformance suite (`cargo xtask conformance`); it is
//! also the last step of `cargo xtask ci`.
//!
//! `cargo xtask bench` measures mcp-host against rmcp and a raw stdio loop, and its HTTP gateway against the
//! peer gateways with the SDK clients (see `BENCHMARKS.md`); `cargo xtask bench --smoke` runs it with tiny counts
//! and is the CI step before interop; `cargo xtask bench --scale` measures growth with servers and sessions,
//! `cargo xtask bench --noisy` what a client over its quota costs the others.
//!
//! Subcommands are parsed by hand and cargo is run through `$CARGO`, so this crate stays quick to compile.
//! It depends on no workspace crate.

// xtask is a command-line tool: printing progress and results is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// xtask drives cargo; the spawn ban is for library crates.
#![allow(clippy::disallowed_methods)]

mod bench;
mod conformance;
mod debian;
mod install;
mod install_check;
mod interop;
mod tidy;

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

const USAGE: &str = "\
Usage: cargo xtask <command>

Commands:
  ci        run the CI pipeline: fmt, clippy, build, test, doc, install-check, bench --smoke,
            interop (with the conformance suite) (stops at the first failure)
  bench     build in release and measure mcp-host against rmcp and a raw stdio loop, and its HTTP
            gateway against peer gateways with the TypeScript, Python, rmcp and raw HTTP clients
            (installed from npm and PyPI into target/bench-peers/): Markdown tables on stdout,
            results.json, results.md and SVG charts in target/bench/
  bench --smoke
            every measurement with tiny counts, in debug, without the peers; fails when a
            client's p50 through `mcp-host serve --http` exceeds 3 x direct (a CI step)
  bench --scale
            1 to 500 stdio servers in one host and 1 to 256 HTTP sessions on the gateway, in
            release: results and charts in target/bench/scale/
  bench --noisy
            what a gateway client over its quota costs another client (its p50 and p99 alone,
            and while the first calls at 10x its quota or flat out), in release: target/bench/noisy/
  bench --install-only
            only install the HTTP section's SDK clients and peer gateways
  interop   install real MCP servers from npm and PyPI into target/interop/ (skipped when already
            installed), then run the `mcp-host-interop` tests against them, then `conformance`;
            needs node, npm and python3
  interop --install-only
            only install the servers
  soak [--minutes N]
            run the chaos soak (24 servers, 8 callers, random kills, reloads; the heap and RSS
            must not grow) for N minutes (default 5); its 30-second form runs in every `ci`
  conformance
            install the official MCP conformance suite (and Node 22) from npm into
            target/conformance/ and run its scenarios against our HTTP client and gateway
  install-check
            `cargo install --path crates/mcp-host-cli` into a fresh root (debug, shared target
            dir), run it on the demo, write its man page, verify deploy/mcp-host.service
  man       write the manual page to <target>/man/mcp-host.1
  tidy      check repository rules (the same checks run as a test under `cargo test -p xtask`)
  help      print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["ci"] => report(ci()),
        ["bench"] => report(bench::run(bench::Mode::Full)),
        ["bench", "--smoke"] => report(bench::run(bench::Mode::Smoke)),
        ["bench", "--scale"] => report(bench::run(bench::Mode::Scale)),
        ["bench", "--noisy"] => report(bench::run(bench::Mode::Noisy)),
        ["bench", "--install-only"] => report(bench::install_only()),
        ["interop"] => report(interop::run(false)),
        ["interop", "--install-only"] => report(interop::run(true)),
        ["conformance"] => report(conformance::run()),
        ["tidy"] => report(tidy_command()),
        ["install-check"] => report(install_check::check()),
        ["man"] => report(install_check::man()),
        ["soak"] => report(soak(5)),
        ["soak", "--minutes", minutes] => match minutes.parse::<u64>() {
            Ok(minutes) if minutes > 0 => report(soak(minutes)),
            _ => {
                eprintln!("error: --minutes takes a positive whole number\n");
                eprint!("{USAGE}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("error: unknown arguments: {}\n", args.join(" "));
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Turns the outcome of a subcommand into an exit code, printing the error chain on failure.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the workspace root, which is the parent of the xtask crate.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))?;
    Ok(root.to_path_buf())
}

/// The cargo binary to run: `$CARGO` when set (it is under `cargo xtask`), else `cargo` from `PATH`.
fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

fn tidy_command() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let violations = tidy::check(&root);
    for violation in &violations {
        println!("{violation}");
    }
    if !violations.is_empty() {
        bail!("tidy found {} violation(s)", violations.len());
    }
    println!("tidy: ok");
    Ok(())
}

/// One cargo invocation: its arguments and any extra environment.
#[derive(Debug)]
struct CargoCommand {
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

/// One named CI step, made of cargo invocations run in order.
#[derive(Debug)]
struct Step {
    name: &'static str,
    commands: Vec<CargoCommand>,
}

/// The seed of the property tests in CI, so that every CI run checks the same cases; run
/// `cargo test` without it to explore new ones.
const PROPTEST_SEED: &str = "20261126";

fn cargo_command(args: &[&str]) -> CargoCommand {
    CargoCommand {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        envs: Vec::new(),
    }
}

/// The CI pipeline, in order.
///
/// This is the one place to add a step.
/// The interop crate is left out of the `test` step: its tests need the servers that the last step, `interop`, installs.
fn ci_steps(root: &Path) -> Vec<Step> {
    let seeded = |command: CargoCommand| CargoCommand {
        envs: vec![("PROPTEST_RNG_SEED".to_owned(), PROPTEST_SEED.to_owned())],
        ..command
    };
    let test_commands = if nextest_available(root) {
        println!("note: cargo-nextest found: tests run under `cargo nextest`, doctests under `cargo test --doc`");
        vec![
            seeded(cargo_command(&[
                "nextest",
                "run",
                "--workspace",
                "--exclude",
                interop::CRATE,
                "--locked",
                "--profile",
                "ci",
                "--no-fail-fast",
            ])),
            // Nextest does not run doctests.
            cargo_command(&[
                "test",
                "--workspace",
                "--exclude",
                interop::CRATE,
                "--locked",
                "--doc",
            ]),
        ]
    } else {
        println!("note: cargo-nextest not found: tests run under `cargo test`");
        vec![seeded(cargo_command(&[
            "test",
            "--workspace",
            "--exclude",
            interop::CRATE,
            "--locked",
        ]))]
    };
    vec![
        Step {
            name: "fmt",
            commands: vec![cargo_command(&["fmt", "--all", "--check"])],
        },
        Step {
            name: "clippy",
            commands: vec![cargo_command(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ])],
        },
        Step {
            // Tests spawn helper binaries such as `mcp-fake-server`, so build them first.
            name: "build",
            commands: vec![cargo_command(&[
                "build",
                "--workspace",
                "--locked",
                "--bins",
            ])],
        },
        Step {
            name: "test",
            commands: test_commands,
        },
        Step {
            name: "doc",
            commands: vec![CargoCommand {
                envs: vec![("RUSTDOCFLAGS".to_owned(), "-D warnings".to_owned())],
                ..cargo_command(&["doc", "--workspace", "--no-deps", "--locked"])
            }],
        },
        Step {
            // Installed as users install it, with its man page and systemd unit checked.
            name: "install",
            commands: vec![cargo_command(&["xtask", "install-check"])],
        },
        Step {
            // Every benchmark measurement with tiny counts, on the debug binaries the build step made, and the HTTP
            // guard (every client's p50 through `mcp-host serve --http` within 3 x direct); installs the TypeScript
            // and Python SDK clients into target/bench-peers/ on first use (needs the registries then).
            name: "bench",
            commands: vec![cargo_command(&["xtask", "bench", "--smoke"])],
        },
        Step {
            // Real servers from npm and PyPI, installed into target/interop/ on first use (needs the registries
            // then), and the official conformance suite (with Node 22 from npm) against our HTTP client and gateway.
            name: "interop",
            commands: vec![cargo_command(&["xtask", "interop"])],
        },
    ]
}

/// Reports whether `cargo nextest` is installed, by running `cargo nextest --version` quietly.
fn nextest_available(root: &Path) -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs the soak test for `minutes`, printing its figures.
fn soak(minutes: u64) -> anyhow::Result<()> {
    let root = workspace_root()?;
    let command = CargoCommand {
        envs: vec![(
            "MCP_HOST_SOAK_SECONDS".to_owned(),
            (minutes * 60).to_string(),
        )],
        ..cargo_command(&[
            "test",
            "--package",
            "mcp-host",
            "--test",
            "it",
            "--locked",
            "soak",
            "--",
            "--nocapture",
        ])
    };
    run_cargo(&root, &command)
}

fn ci() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let ci_start = Instant::now();
    let steps = ci_steps(&root);
    let mut timings: Vec<(&'static str, Duration)> = Vec::new();
    for step in &steps {
        let step_start = Instant::now();
        println!("\n==> {}", step.name);
        for command in &step.commands {
            run_cargo(&root, command).with_context(|| {
                format!(
                    "ci step `{}` failed after {:.1?} (total {:.1?})",
                    step.name,
                    step_start.elapsed(),
                    ci_start.elapsed()
                )
            })?;
        }
        let elapsed = step_start.elapsed();
        println!("<== {} ok in {:.1?}", step.name, elapsed);
        timings.push((step.name, elapsed));
    }
    println!("\nci: all steps passed");
    for (name, elapsed) in &timings {
        println!("  {name:<8} {elapsed:.1?}");
    }
    println!("  {:<8} {:.1?}", "total", ci_start.elapsed());
    Ok(())
}

/// Echoes and runs one cargo command from the workspace root, failing on a non-zero exit.
fn run_cargo(root: &Path, command: &CargoCommand) -> anyhow::Result<()> {
    let mut line = String::from("$ ");
    for (key, value) in &command.envs {
        line.push_str(&format!("{key}={} ", shell_quote(value)));
    }
    line.push_str("cargo");
    for arg in &command.args {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    println!("{line}");
    let status = Command::new(cargo())
        .args(&command.args)
        .envs(command.envs.iter().map(|(key, value)| (key, value)))
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run `{}`", line.trim_start_matches("$ ")))?;
    if !status.success() {
        bail!("`{}` exited with {status}", line.trim_start_matches("$ "));
    }
    Ok(())
}

/// Quotes `word` for display when it contains characters a shell would split on.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
