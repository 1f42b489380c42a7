//! `cargo xtask conformance`: the official MCP conformance suite (`@modelcontextprotocol/conformance`
//! on npm) against our Streamable HTTP client and our HTTP gateway.
//!
//! The suite and a Node 22 runtime are installed from npm into `<target>/conformance/` (skipped when
//! the stamp matches). Node 22 because the suite's bundle (0.1.14 and later) imports `fs.globSync`,
//! which Node 20 lacks; the npm package `node` ships the official binary. The suite runs as
//! `<dir>/node_modules/node/bin/node <dir>/node_modules/@modelcontextprotocol/conformance/dist/index.js`,
//! never through `node_modules/.bin/conformance`, whose `#!/usr/bin/env node` would pick the
//! system's Node.
//!
//! Each scenario runs in its own suite process with its own output directory, so one crash cannot
//! hide the others; its verdict comes from the suite's exit code (0 = passed) and its
//! `checks.json`: it passes only when at least one check ran and succeeded and none failed or
//! warned (a scenario whose checks were all skipped does not pass).
//!
//! * Client scenarios: the suite starts a mock server and runs `<command> <server-url>` with
//!   `MCP_CONFORMANCE_SCENARIO=<scenario>`; our command is the `conformance-client` example of
//!   `mcp-host-interop`. Any FAILURE or WARNING, a timeout or a non-zero exit fails the scenario.
//! * Server scenarios: the suite connects to `--url` as a client; any FAILURE or WARNING fails the
//!   scenario. The server is `mcp-host serve --http 127.0.0.1:0` fronting one stdio server, the
//!   Python SDK fixture `crates/mcp-host-interop/tests/it/servers/conformance_everything.py`
//!   (run by the interop venv, which is installed first), configured with `"namespace": false` so
//!   that the gateway offers the names the scenarios call (`test_simple_text`, …) as they are.
//!
//! The OAuth client scenarios (`auth/*`, every one the suite has: its `auth`, back-compat, draft and
//! extension suites) run the same client, which then authorizes through `mcp-auth`.
//!
//! The pre-release suite (0.2 alpha, installed beside the stable one under the npm alias
//! `mcp-conformance-next`) runs the client and server scenarios of the stateless revision
//! 2026-07-28 (`--spec-version 2026-07-28`): our client then negotiates with `server/discover`,
//! and the suite's client sends sessionless requests to the same gateway, whose fixture behind
//! it still speaks 2025-11-25.
//!
//! Scenarios we cannot pass are listed in `EXPECTED_FAILURES` with the ids of exactly the checks
//! that fail, and the reason. Such a scenario fails as expected only when the suite ran to its end
//! and those checks, and no others, failed; a crash, a timeout, a missing `checks.json` or another
//! failing check fails the run, and so does one of them passing, so that the list never goes
//! stale. The table of results is printed and
//! written to `<target>/conformance/results.md`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::{cargo_command, interop, run_cargo, shell_quote, workspace_root};

/// The suite, pinned. 0.1.16 is the newest stable release (npm `latest`) and needs Node 22;
/// 0.1.13 is the newest that still loads on Node 20, with the same server scenarios.
pub(crate) const SUITE_PACKAGE: &str = "@modelcontextprotocol/conformance";
pub(crate) const SUITE_VERSION: &str = "0.1.16";

/// The pre-release of the suite that tests the stateless revision 2026-07-28, installed beside
/// the stable one under an npm alias.
pub(crate) const NEXT_SUITE_VERSION: &str = "0.2.0-alpha.12";
const NEXT_SUITE_ALIAS: &str = "mcp-conformance-next";

/// The revision the pre-release suite's client scenarios are run at.
const STATELESS_REVISION: &str = "2026-07-28";

/// The Node runtime from npm (package `node`), pinned; checked with `npm view node@22 version`.
pub(crate) const NODE_VERSION: &str = "22.23.3";

/// How long one scenario may take before the xtask kills the suite process. The suite's own
/// client timeout (`--timeout`, 30 s by default) is shorter, so this only catches a hung suite.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(90);

/// An installed suite: where Node and the suite's entry point are.
#[derive(Debug, Clone)]
pub(crate) struct Suite {
    /// `<dir>/node_modules/node/bin/node`.
    pub(crate) node: PathBuf,
    /// `<dir>/node_modules/@modelcontextprotocol/conformance/dist/index.js`.
    pub(crate) entry: PathBuf,
    /// Revision to pass as `--spec-version`, if any.
    pub(crate) spec_version: Option<&'static str>,
}

/// What a run of scenarios is aimed at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Client scenarios: `command` is a shell command line (already shell-quoted); the suite
    /// appends the mock server's URL as its last argument.
    Client { command: &'a str },
    /// Server scenarios against a running server's MCP endpoint, e.g. `http://127.0.0.1:8931/mcp`.
    Server { url: &'a str },
}

/// How one scenario ended, measured against the list of scenarios expected to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Passed,
    Failed,
    /// Failed, and listed as expected to fail.
    ExpectedFailure,
    /// Passed although listed as expected to fail: the list is stale.
    UnexpectedPass,
}

impl Verdict {
    /// Whether this verdict should fail the xtask command.
    pub(crate) fn is_bad(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::UnexpectedPass)
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone)]
pub(crate) struct ScenarioResult {
    pub(crate) scenario: String,
    pub(crate) verdict: Verdict,
    /// Why a scenario failed or did not fail as expected, when its checks say more than its
    /// verdict.
    pub(crate) why: Option<String>,
    /// Counts of the top-level checks in `checks.json` (`INFO` checks are not counted).
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) warnings: usize,
    /// The suite's stdout and stderr, interleaved as written.
    pub(crate) log_file: PathBuf,
    pub(crate) elapsed: Duration,
}

/// Installs the pinned suite and Node into `dir` (skipped when the stamp matches and both are
/// there), checks that the Node binary runs and is Node 22, and returns where they are.
pub(crate) fn install(dir: &Path) -> anyhow::Result<(Suite, Suite)> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let suite = Suite {
        node: dir.join("node_modules/node/bin/node"),
        entry: dir
            .join("node_modules")
            .join(SUITE_PACKAGE)
            .join("dist/index.js"),
        spec_version: None,
    };
    let next = Suite {
        node: suite.node.clone(),
        entry: dir
            .join("node_modules")
            .join(NEXT_SUITE_ALIAS)
            .join("dist/index.js"),
        spec_version: Some(STATELESS_REVISION),
    };
    let specs = vec![
        format!("node@{NODE_VERSION}"),
        format!("{SUITE_PACKAGE}@{SUITE_VERSION}"),
        format!("{NEXT_SUITE_ALIAS}@npm:{SUITE_PACKAGE}@{NEXT_SUITE_VERSION}"),
    ];
    let up_to_date = interop::stamp_matches(&dir, &specs)
        && suite.node.is_file()
        && suite.entry.is_file()
        && next.entry.is_file();
    if up_to_date {
        println!("conformance: suite up to date in {}", dir.display());
    } else {
        // An interrupted install must not be taken for a finished one.
        interop::remove_stamp(&dir)?;
        let mut args: Vec<String> = vec![
            "install".to_owned(),
            "--prefix".to_owned(),
            interop::path_text(&dir)?,
            "--no-audit".to_owned(),
            "--no-fund".to_owned(),
            "--save-exact".to_owned(),
            "--loglevel=error".to_owned(),
        ];
        args.extend(specs.iter().cloned());
        // The `node` package installs its binary from a preinstall script: scripts must run.
        interop::run_installer(&dir, "npm", &args)?;
    }
    // Whether freshly installed or cached: the binary must run here and be the pinned major.
    let output = Command::new(&suite.node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", suite.node.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !version.starts_with("v22.") {
        bail!(
            "{} is not a working Node 22 (it said {version:?})",
            suite.node.display()
        );
    }
    for entry in [&suite.entry, &next.entry] {
        if !entry.is_file() {
            bail!("npm did not install {}", entry.display());
        }
    }
    if !up_to_date {
        interop::write_stamp(&dir, &specs)?;
    }
    Ok((suite, next))
}

/// Runs each of `scenarios` against `target`, one suite process per scenario, writing results
/// under `out_dir/<scenario>/` (`/` in auth scenario names becomes `_`).
/// `expected_failures` lists scenarios known to fail, each with the ids of the checks that
/// fail (the suite's own `--expected-failures` YAML does the same job for a whole-suite run).
pub(crate) fn run_scenarios(
    suite: &Suite,
    target: Target<'_>,
    scenarios: &[&str],
    expected_failures: &[ExpectedFailure],
    out_dir: &Path,
) -> anyhow::Result<Vec<ScenarioResult>> {
    fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    // Node 22 first on PATH, so that a client command that runs `node` gets the same runtime.
    let path = match suite.node.parent() {
        Some(bin) => {
            let mut dirs = vec![bin.to_path_buf()];
            dirs.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            std::env::join_paths(dirs).context("PATH holds a directory with ':' in its name")?
        }
        None => std::env::var_os("PATH").unwrap_or_default(),
    };
    let mut results = Vec::with_capacity(scenarios.len());
    for &scenario in scenarios {
        let scenario_dir = out_dir.join(scenario.replace('/', "_"));
        if scenario_dir.exists() {
            fs::remove_dir_all(&scenario_dir)
                .with_context(|| format!("cannot clear {}", scenario_dir.display()))?;
        }
        fs::create_dir_all(&scenario_dir)
            .with_context(|| format!("cannot create {}", scenario_dir.display()))?;
        let log_file = scenario_dir.join("suite.log");
        let log = fs::File::create(&log_file)
            .with_context(|| format!("cannot create {}", log_file.display()))?;
        let log_err = log.try_clone().context("cannot share the log file")?;

        let mut command = Command::new(&suite.node);
        command.arg(&suite.entry);
        match target {
            Target::Client { command: client } => {
                // Without --command the suite would start its mock server and wait for Ctrl-C.
                command.args(["client", "--command", client, "--scenario", scenario]);
                if let Some(version) = suite.spec_version {
                    command.args(["--spec-version", version]);
                }
            }
            Target::Server { url } => {
                command.args(["server", "--url", url, "--scenario", scenario]);
                if let Some(version) = suite.spec_version {
                    command.args(["--spec-version", version]);
                }
            }
        }
        command
            .arg("--output-dir")
            .arg(&scenario_dir)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);

        let start = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {}", suite.node.display()))?;
        let status = loop {
            if let Some(status) = child.try_wait().context("cannot wait for the suite")? {
                break Some(status);
            }
            if start.elapsed() > SCENARIO_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(50));
        };
        let elapsed = start.elapsed();
        let exit_code = status.and_then(|status| status.code());

        let checks_file = find_file(&scenario_dir, "checks.json");
        let checks = match &checks_file {
            Some(file) => {
                let text = fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                Some(parse_checks(&text))
            }
            None => None,
        };
        let counts = checks.as_deref().map(count_statuses).unwrap_or_default();
        let expected = expected_failures
            .iter()
            .find(|(name, _)| *name == scenario)
            .map(|(_, check_ids)| *check_ids);
        let (verdict, why) = verdict(exit_code, checks.as_deref(), expected);
        println!(
            "conformance: {:<40} {:<16} {} ok, {} failed, {} warnings ({:.1?}){}",
            scenario,
            format!("{verdict:?}"),
            counts.succeeded,
            counts.failed,
            counts.warnings,
            elapsed,
            why.as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default()
        );
        results.push(ScenarioResult {
            scenario: scenario.to_owned(),
            verdict,
            why,
            succeeded: counts.succeeded,
            failed: counts.failed,
            warnings: counts.warnings,
            log_file,
            elapsed,
        });
    }
    Ok(results)
}

/// Prints a one-line summary and fails when any scenario failed unexpectedly or passed
/// although expected to fail.
pub(crate) fn summarize(results: &[ScenarioResult]) -> anyhow::Result<()> {
    let count = |verdict: Verdict| results.iter().filter(|r| r.verdict == verdict).count();
    println!(
        "conformance: {} passed, {} failed, {} expected failures, {} unexpected passes",
        count(Verdict::Passed),
        count(Verdict::Failed),
        count(Verdict::ExpectedFailure),
        count(Verdict::UnexpectedPass)
    );
    let bad: Vec<String> = results
        .iter()
        .filter(|result| result.verdict.is_bad())
        .map(|result| {
            format!(
                "{} ({:?}, log {})",
                result.scenario,
                result.verdict,
                result.log_file.display()
            )
        })
        .collect();
    if !bad.is_empty() {
        bail!("conformance scenarios went wrong:\n  {}", bad.join("\n  "));
    }
    Ok(())
}

/// A scenario we run knowing that it fails: its name and the ids of exactly the checks that
/// fail (FAILURE or WARNING).
pub(crate) type ExpectedFailure = (&'static str, &'static [&'static str]);

/// One top-level check of a `checks.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    id: String,
    status: String,
}

/// The verdict on one scenario, and why when that needs saying: from the suite's exit code
/// (`None` when it was killed at the deadline), its checks (`None` without a `checks.json`)
/// and the ids of the checks expected to fail, if it is listed as an expected failure.
///
/// A scenario passes when the suite exited with 0 and at least one of its checks ran and
/// succeeded, none failed and none warned (a warning is a SHOULD of the spec that is not met).
/// One listed as an expected failure fails as expected only when the suite ran to its end (it
/// has an exit code and a `checks.json`) and the checks that failed or warned are exactly the
/// listed ones: a crash, a timeout, a missing `checks.json` or another failing check is a
/// failure like any other.
fn verdict(
    exit_code: Option<i32>,
    checks: Option<&[Check]>,
    expected: Option<&[&str]>,
) -> (Verdict, Option<String>) {
    let Some(checks) = checks else {
        let why = match exit_code {
            None => "the suite did not finish in time".to_owned(),
            Some(code) => format!("no checks.json (the suite exited with {code})"),
        };
        return (Verdict::Failed, Some(why));
    };
    let Some(exit_code) = exit_code else {
        return (
            Verdict::Failed,
            Some("the suite did not finish in time".to_owned()),
        );
    };
    let counts = count_statuses(checks);
    let mut failing: Vec<&str> = checks
        .iter()
        .filter(|check| check.status == "FAILURE" || check.status == "WARNING")
        .map(|check| check.id.as_str())
        .collect();
    failing.sort_unstable();
    failing.dedup();
    let passed = exit_code == 0 && failing.is_empty() && counts.succeeded > 0;
    match expected {
        None if passed => (Verdict::Passed, None),
        None if failing.is_empty() && counts.succeeded == 0 => (
            Verdict::Failed,
            Some(format!(
                "no check ran ({} skipped, exit code {exit_code})",
                counts.skipped
            )),
        ),
        None if failing.is_empty() => (
            Verdict::Failed,
            Some(format!("the suite exited with {exit_code}")),
        ),
        None => (
            Verdict::Failed,
            Some(format!("failing checks: {}", failing.join(", "))),
        ),
        Some(_) if passed => (Verdict::UnexpectedPass, None),
        Some(expected) => {
            let mut expected: Vec<&str> = expected.to_vec();
            expected.sort_unstable();
            expected.dedup();
            // The suite exits with 0 when the only checks that went wrong are warnings.
            if failing == expected && (exit_code != 0 || counts.failed == 0) {
                (Verdict::ExpectedFailure, None)
            } else {
                (
                    Verdict::Failed,
                    Some(format!(
                        "expected exactly these checks to fail: {}; failing: {} (exit code {exit_code})",
                        expected.join(", "),
                        if failing.is_empty() {
                            "none".to_owned()
                        } else {
                            failing.join(", ")
                        }
                    )),
                )
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    succeeded: usize,
    failed: usize,
    warnings: usize,
    skipped: usize,
}

/// The top-level checks of a `checks.json`, which the suite writes with
/// `JSON.stringify(checks, null, 2)`: an array whose objects' own fields are indented by exactly
/// four spaces, so nested `"id"` and `"status"` fields (in request bodies, say) are indented
/// further and are not taken.
fn parse_checks(text: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut id = None;
    let mut status = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("    \"id\": \"") {
            id = rest.split('"').next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("    \"status\": \"") {
            status = rest.split('"').next().map(str::to_owned);
        } else if line.starts_with("  }") {
            // The end of a top-level object.
            checks.push(Check {
                id: id.take().unwrap_or_default(),
                status: status.take().unwrap_or_default(),
            });
        }
    }
    checks
}

/// Counts the statuses of checks (`INFO` checks are not counted).
fn count_statuses(checks: &[Check]) -> Counts {
    let mut counts = Counts::default();
    for check in checks {
        match check.status.as_str() {
            "SUCCESS" => counts.succeeded += 1,
            "FAILURE" => counts.failed += 1,
            "WARNING" => counts.warnings += 1,
            "SKIPPED" => counts.skipped += 1,
            _ => {} // INFO
        }
    }
    counts
}

/// The first file called `name` under `dir`, searched depth first (the suite nests results in
/// `<scenario>-<timestamp>/`, and `auth/x` scenarios one level deeper).
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

/// Client scenarios we run, but for the OAuth ones (`AUTH_SCENARIOS`).
const CLIENT_SCENARIOS: &[&str] = &[
    "initialize",
    "tools_call",
    "sse-retry",
    "elicitation-sep1034-client-defaults",
];

/// Every OAuth client scenario of the suite (`--suite all` less the others): the `auth` suite
/// (tier 1), the 2025-03-26 back-compat ones, the draft ones and the extensions. The client under
/// test authorizes through `mcp-auth`, following the authorization redirect itself.
const AUTH_SCENARIOS: &[&str] = &[
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    "auth/client-credentials-jwt",
    "auth/client-credentials-basic",
    "auth/cross-app-access-complete-flow",
];

/// Client scenarios of revision 2026-07-28 (run with the pre-release suite, the client under
/// test negotiating with `server/discover`).
const STATELESS_CLIENT_SCENARIOS: &[&str] = &[
    "tools_call",
    "request-metadata",
    "http-standard-headers",
    "http-custom-headers",
    "http-invalid-tool-headers",
    "json-schema-ref-no-deref",
    "json-schema-2020-12-preservation",
    "sep-2322-client-request-state",
];

/// The runs of scenarios, each with its own expected failures (a scenario's name alone is not
/// enough: `tools_call` is a client scenario of both suites, `tools-list` a server one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Client,
    ClientAuth,
    StatelessClient,
    Server,
    StatelessServer,
}

/// Why the scenarios that run a multi-round-trip tool of SEP-2322 fail against the gateway.
const NO_INPUT_REQUIRED_BRIDGE: &str = "the gateway does not turn a 2025 server's elicitation, sampling or roots requests made during a call into an `input_required` result (SEP-2322), and the fixture, a 2025-11-25 server, has none of the scenario's tools";

/// Scenarios we run knowing they fail: the run, the checks that fail (exactly those), and why.
/// One of them passing, or failing in any other way, fails the run.
const EXPECTED_FAILURES: &[(Run, &str, &[&str], &str)] = &[
    (
        Run::StatelessServer,
        "server-stateless",
        &[
            "sep-2575-server-rejects-undeclared-capability",
            "sep-2575-missing-capability-http-400",
            "sep-2575-http-server-no-independent-requests-on-stream",
        ],
        "the checks need tools that ask the client for sampling or elicitation in the middle of a stateless call; a 2025 server's request carries nothing that ties it to the call that caused it, so the gateway can neither answer -32021 for that call nor turn the request into an `input_required` result, and the fixture does not offer `test_missing_capability` or `test_streaming_elicitation`",
    ),
    (
        Run::StatelessServer,
        "http-custom-header-server-validation",
        &[
            "sep-2243-server-no-xmcp-tool",
            "sep-2243-server-decode-base64",
            "sep-2243-server-validate-param-match",
            "sep-2243-server-reject-invalid-param-chars",
            "sep-2243-server-reject-param-mismatch",
        ],
        "the gateway does not check `Mcp-Param-*` headers against `x-mcp-header` arguments (SEP-2243), and the fixture declares no such argument",
    ),
    (
        Run::StatelessServer,
        "input-required-result-basic-elicitation",
        &["sep-2322-elicitation-incomplete"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-basic-sampling",
        &["sep-2322-sampling-incomplete"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-basic-list-roots",
        &["sep-2322-list-roots-incomplete"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-request-state",
        &["sep-2322-request-state-incomplete"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-multiple-input-requests",
        &["sep-2322-multiple-inputs-incomplete"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-multi-round",
        &["sep-2322-multi-round-r1"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-missing-input-response",
        &["sep-2322-missing-response-rerequests"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-non-tool-request",
        &["sep-2322-non-tool-incomplete"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-result-type",
        &["sep-2322-result-type-included"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-tampered-state",
        &["sep-2322-reject-tampered-state"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-capability-check",
        &["sep-2322-respect-client-capabilities"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
    (
        Run::StatelessServer,
        "input-required-result-ignore-extra-params",
        &["sep-2322-ignore-unexpected-params"],
        NO_INPUT_REQUIRED_BRIDGE,
    ),
];

/// The expected failures of one run, as [`run_scenarios`] takes them.
fn expected_failures(run: Run) -> Vec<ExpectedFailure> {
    EXPECTED_FAILURES
        .iter()
        .filter(|(listed, ..)| *listed == run)
        .map(|(_, scenario, check_ids, _)| (*scenario, *check_ids))
        .collect()
}

/// Every server scenario of the suite (`list --server`), run against the gateway fronting the
/// fixture server.
const SERVER_SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "logging-set-level",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "server-sse-polling",
    "server-sse-multiple-streams",
    "elicitation-sep1330-enums",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
    "dns-rebinding-protection",
];

/// Every server scenario of the pre-release suite at revision 2026-07-28
/// (`list --server --spec-version 2026-07-28`), against the same gateway: its clients then speak
/// the stateless revision (`server/discover`, no session) while the fixture behind the gateway
/// still speaks 2025-11-25.
const STATELESS_SERVER_SCENARIOS: &[&str] = &[
    "server-stateless",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "tools-call-with-progress",
    "json-schema-2020-12",
    "server-sse-multiple-streams",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "sep-2164-resource-not-found",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
    "dns-rebinding-protection",
    "caching",
    "http-header-validation",
    "http-custom-header-server-validation",
    "input-required-result-basic-elicitation",
    "input-required-result-basic-sampling",
    "input-required-result-basic-list-roots",
    "input-required-result-request-state",
    "input-required-result-multiple-input-requests",
    "input-required-result-multi-round",
    "input-required-result-missing-input-response",
    "input-required-result-non-tool-request",
    "input-required-result-result-type",
    "input-required-result-unsupported-methods",
    "input-required-result-tampered-state",
    "input-required-result-capability-check",
    "input-required-result-ignore-extra-params",
    "input-required-result-validate-input",
];

/// The fixture server the server scenarios run against, relative to the workspace root.
const FIXTURE_SERVER: &str = "crates/mcp-host-interop/tests/it/servers/conformance_everything.py";

/// Runs `cargo xtask conformance`: installs the suite, builds the client under test and the
/// gateway, runs the scenarios, prints and writes the table of results, and fails on an
/// unexpected verdict.
pub(crate) fn run() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let target = interop::target_dir(&root);
    let dir = target.join("conformance");
    let started = Instant::now();
    // The fixture server runs on the Python SDK of the interop venv.
    interop::run(true)?;
    let (suite, next_suite) = install(&dir)?;
    run_cargo(
        &root,
        &cargo_command(&[
            "build",
            "--package",
            "mcp-host-interop",
            "--example",
            "conformance-client",
            "--package",
            "mcp-host-cli",
            "--bin",
            "mcp-host",
            "--locked",
        ]),
    )?;
    let client = target.join("debug/examples/conformance-client");
    let command = shell_quote(&interop::path_text(&client)?);
    let client_results = run_scenarios(
        &suite,
        Target::Client { command: &command },
        CLIENT_SCENARIOS,
        &expected_failures(Run::Client),
        &dir.join("client"),
    )?;

    let auth_results = run_scenarios(
        &suite,
        Target::Client { command: &command },
        AUTH_SCENARIOS,
        &expected_failures(Run::ClientAuth),
        &dir.join("client-auth"),
    )?;

    let stateless_results = run_scenarios(
        &next_suite,
        Target::Client { command: &command },
        STATELESS_CLIENT_SCENARIOS,
        &expected_failures(Run::StatelessClient),
        &dir.join("client-2026-07-28"),
    )?;

    let config = write_gateway_config(&root, &target, &dir)?;
    let gateway = Gateway::start(
        &target.join("debug/mcp-host"),
        &config,
        &dir.join("gateway.log"),
    )?;
    let server_results = run_scenarios(
        &suite,
        Target::Server { url: &gateway.url },
        SERVER_SCENARIOS,
        &expected_failures(Run::Server),
        &dir.join("server"),
    )
    .and_then(|server_results| {
        let stateless_server_results = run_scenarios(
            &next_suite,
            Target::Server { url: &gateway.url },
            STATELESS_SERVER_SCENARIOS,
            &expected_failures(Run::StatelessServer),
            &dir.join("server-2026-07-28"),
        )?;
        Ok((server_results, stateless_server_results))
    });
    gateway.stop()?;
    let (server_results, stateless_server_results) = server_results?;

    let table = table(&[
        ("client", Run::Client, &client_results),
        ("client auth", Run::ClientAuth, &auth_results),
        (
            "client 2026-07-28",
            Run::StatelessClient,
            &stateless_results,
        ),
        ("server", Run::Server, &server_results),
        (
            "server 2026-07-28",
            Run::StatelessServer,
            &stateless_server_results,
        ),
    ]);
    print!("{table}");
    let file = dir.join("results.md");
    fs::write(&file, &table).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "conformance: suite {SUITE_VERSION} (and {NEXT_SUITE_VERSION} for 2026-07-28) on Node {NODE_VERSION}, done in {:.1?}; table in {}",
        started.elapsed(),
        file.display()
    );
    let mut all = client_results;
    all.extend(auth_results);
    all.extend(stateless_results);
    all.extend(server_results);
    all.extend(stateless_server_results);
    summarize(&all)
}

/// Writes `<dir>/gateway.json`: the fixture server alone, under its own names, run by the
/// interop venv's Python. Returns the file.
fn write_gateway_config(root: &Path, target: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let python = target.join("interop/venv/bin/python");
    let server = root.join(FIXTURE_SERVER);
    for path in [&python, &server] {
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }
    let quote = |path: &Path| -> anyhow::Result<String> {
        let text = interop::path_text(path)?;
        Ok(format!(
            "\"{}\"",
            text.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    };
    let config = format!(
        r#"{{
  "mcpServers": {{
    "everything": {{
      "command": {python},
      "args": [{server}],
      "namespace": false,
      "required": true,
      "startupTimeoutMs": 60000
    }}
  }}
}}
"#,
        python = quote(&python)?,
        server = quote(&server)?,
    );
    let file = dir.join("gateway.json");
    fs::write(&file, config).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

/// `mcp-host --config <file> serve --http 127.0.0.1:0`.
struct Gateway {
    child: std::process::Child,
    url: String,
    /// Copies the gateway's stderr into its log file until the gateway exits.
    drain: Option<thread::JoinHandle<()>>,
}

impl Gateway {
    /// Starts the gateway and waits (at most 60 s) for the line that names its URL.
    fn start(binary: &Path, config: &Path, log_file: &Path) -> anyhow::Result<Gateway> {
        use std::io::{BufRead as _, Write as _};

        let mut child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .args(["serve", "--http", "127.0.0.1:0"])
            .env_remove("MCP_HOST_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("the gateway's stderr is not piped")?;
        let mut log = fs::File::create(log_file)
            .with_context(|| format!("cannot create {}", log_file.display()))?;
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let drain = thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = url_tx.send(url.trim().to_owned());
                }
            }
        });
        let mut gateway = Gateway {
            child,
            url: String::new(),
            drain: Some(drain),
        };
        match url_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => {
                println!("conformance: gateway listening on {url}");
                gateway.url = url;
                Ok(gateway)
            }
            Err(_) => {
                let _ = gateway.stop();
                bail!(
                    "the gateway did not say where it listens within 60 s (its log: {})",
                    log_file.display()
                )
            }
        }
    }

    /// SIGTERM, then waits (at most 20 s) for an orderly exit; kills it after that.
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("cannot wait for the gateway")?
            {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("the gateway exited with {status} after SIGTERM"),
            None => bail!("the gateway did not stop within 20 s of SIGTERM; killed"),
        }
    }
}

/// The Markdown table of results, one section per side.
fn table(sides: &[(&str, Run, &[ScenarioResult])]) -> String {
    let mut text = String::from(
        "| side | scenario | verdict | checks passed / failed / warnings | time |\n|---|---|---|---|---|\n",
    );
    for (side, run, results) in sides {
        for result in *results {
            let verdict = match result.verdict {
                Verdict::Passed => "pass".to_owned(),
                Verdict::Failed => match &result.why {
                    Some(why) => format!("**FAIL**: {why}"),
                    None => "**FAIL**".to_owned(),
                },
                Verdict::ExpectedFailure => {
                    let why = EXPECTED_FAILURES
                        .iter()
                        .find(|(listed, scenario, ..)| {
                            listed == run && *scenario == result.scenario
                        })
                        .map_or("", |(.., why)| why);
                    format!("expected failure: {why}")
                }
                Verdict::UnexpectedPass => {
                    "**passes, but is listed as an expected failure**".to_owned()
                }
            };
            text.push_str(&format!(
                "| {side} | `{}` | {verdict} | {} / {} / {} | {:.1} s |\n",
                result.scenario,
                result.succeeded,
                result.failed,
                result.warnings,
                result.elapsed.as_secs_f64()
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `checks.json` as the suite writes it, with these top-level checks.
    fn checks_json(checks: &[(&str, &str)]) -> String {
        let objects: Vec<String> = checks
            .iter()
            .map(|(id, status)| {
                format!(
                    "  {{\n    \"id\": \"{id}\",\n    \"status\": \"{status}\",\n    \"details\": {{\n      \"id\": \"nested\",\n      \"status\": \"FAILURE\"\n    }}\n  }}"
                )
            })
            .collect();
        format!("[\n{}\n]", objects.join(",\n"))
    }

    #[test]
    fn counts_only_top_level_statuses() {
        let checks = parse_checks(&checks_json(&[
            ("a", "SUCCESS"),
            ("b", "INFO"),
            ("c", "WARNING"),
            ("d", "FAILURE"),
            ("e", "SKIPPED"),
        ]));
        assert_eq!(checks.len(), 5);
        assert_eq!(
            checks[3],
            Check {
                id: "d".to_owned(),
                status: "FAILURE".to_owned()
            }
        );
        assert_eq!(
            count_statuses(&checks),
            Counts {
                succeeded: 1,
                failed: 1,
                warnings: 1,
                skipped: 1
            }
        );
    }

    #[track_caller]
    fn check(
        exit_code: Option<i32>,
        checks: Option<&[(&str, &str)]>,
        expected: Option<&[&str]>,
        expect: Verdict,
    ) {
        let checks = checks.map(|checks| parse_checks(&checks_json(checks)));
        let (actual, why) = verdict(exit_code, checks.as_deref(), expected);
        assert_eq!(actual, expect, "{why:?}");
        assert_eq!(why.is_some(), actual == Verdict::Failed, "{why:?}");
    }

    #[test]
    fn verdicts() {
        let ok: &[(&str, &str)] = &[("a", "SUCCESS"), ("b", "SUCCESS")];
        let a_fails: &[(&str, &str)] = &[("a", "FAILURE"), ("b", "SUCCESS")];
        let b_fails: &[(&str, &str)] = &[("a", "SUCCESS"), ("b", "FAILURE")];
        let b_warns: &[(&str, &str)] = &[("a", "SUCCESS"), ("b", "WARNING")];
        let skipped: &[(&str, &str)] = &[("a", "SKIPPED"), ("b", "INFO")];
        let expect_a: Option<&[&str]> = Some(&["a"]);

        check(Some(0), Some(ok), None, Verdict::Passed);
        check(Some(1), Some(a_fails), None, Verdict::Failed);
        check(Some(0), Some(b_warns), None, Verdict::Failed);
        check(Some(1), Some(ok), None, Verdict::Failed);
        // Every check skipped is no pass.
        check(Some(0), Some(skipped), None, Verdict::Failed);
        check(Some(0), Some(&[]), None, Verdict::Failed);
        // No checks.json, or no end in time.
        check(Some(0), None, None, Verdict::Failed);
        check(None, Some(ok), None, Verdict::Failed);

        // An expected failure is the listed checks failing, and nothing else.
        check(Some(1), Some(a_fails), expect_a, Verdict::ExpectedFailure);
        check(Some(1), Some(b_fails), expect_a, Verdict::Failed);
        check(
            Some(1),
            Some(&[("a", "FAILURE"), ("b", "FAILURE")]),
            expect_a,
            Verdict::Failed,
        );
        check(
            Some(1),
            Some(&[("a", "WARNING")]),
            expect_a,
            Verdict::ExpectedFailure,
        );
        // A crash, a timeout, a missing checks.json or skipped checks are not the failure we expect.
        check(Some(1), None, expect_a, Verdict::Failed);
        check(None, Some(a_fails), expect_a, Verdict::Failed);
        check(Some(1), Some(skipped), expect_a, Verdict::Failed);
        check(Some(0), Some(a_fails), expect_a, Verdict::Failed);
        // Listed, but passing: the list is stale.
        check(Some(0), Some(ok), expect_a, Verdict::UnexpectedPass);
    }

    /// The `checks.json` of `sep-2322-client-request-state` as suite 0.2.0-alpha.12 wrote it for
    /// our client.
    const SEP_2322_CHECKS: &str = r#"[
  {
    "id": "sep-2322-client-request-state-echoed",
    "name": "sep-2322-client-request-state-echoed",
    "description": "MRTR client check: sep-2322-client-request-state-echoed",
    "status": "FAILURE",
    "timestamp": "2026-11-30T05:13:17.730Z",
    "details": {
      "message": "Tool was not called by client or MRTR flow not completed"
    },
    "specReferences": [
      {
        "id": "SEP-2322-MRTR",
        "url": "https://modelcontextprotocol.io/specification/draft/basic/utilities/mrtr"
      }
    ]
  },
  {
    "id": "sep-2322-client-jsonrpc-id-different",
    "name": "sep-2322-client-jsonrpc-id-different",
    "description": "MRTR client check: sep-2322-client-jsonrpc-id-different",
    "status": "FAILURE",
    "timestamp": "2026-11-30T05:13:17.730Z",
    "details": {
      "message": "Tool was not called by client or MRTR flow not completed"
    },
    "specReferences": [
      {
        "id": "SEP-2322-MRTR",
        "url": "https://modelcontextprotocol.io/specification/draft/basic/utilities/mrtr"
      }
    ]
  },
  {
    "id": "sep-2322-client-no-state-omitted",
    "name": "sep-2322-client-no-state-omitted",
    "description": "MRTR client check: sep-2322-client-no-state-omitted",
    "status": "FAILURE",
    "timestamp": "2026-11-30T05:13:17.730Z",
    "details": {
      "message": "Tool was not called by client or MRTR flow not completed"
    },
    "specReferences": [
      {
        "id": "SEP-2322-MRTR",
        "url": "https://modelcontextprotocol.io/specification/draft/basic/utilities/mrtr"
      }
    ]
  },
  {
    "id": "sep-2322-client-parallel-isolation",
    "name": "sep-2322-client-parallel-isolation",
    "description": "MRTR client check: sep-2322-client-parallel-isolation",
    "status": "FAILURE",
    "timestamp": "2026-11-30T05:13:17.730Z",
    "details": {
      "message": "Tool was not called by client or MRTR flow not completed"
    },
    "specReferences": [
      {
        "id": "SEP-2322-MRTR",
        "url": "https://modelcontextprotocol.io/specification/draft/basic/utilities/mrtr"
      }
    ]
  },
  {
    "id": "sep-2322-default-result-type-complete",
    "name": "sep-2322-default-result-type-complete",
    "description": "MRTR client check: sep-2322-default-result-type-complete",
    "status": "FAILURE",
    "timestamp": "2026-11-30T05:13:17.730Z",
    "details": {
      "message": "Tool was not called by client or MRTR flow not completed"
    },
    "specReferences": [
      {
        "id": "SEP-2322-MRTR",
        "url": "https://modelcontextprotocol.io/specification/draft/basic/utilities/mrtr"
      }
    ]
  }
]"#;

    #[test]
    fn an_expected_failure_is_recognised_in_the_suites_own_output() {
        // What the suite wrote for `sep-2322-client-request-state` while it was listed.
        let checks = parse_checks(SEP_2322_CHECKS);
        assert_eq!(checks.len(), 5);
        let check_ids: &[&str] = &[
            "sep-2322-client-request-state-echoed",
            "sep-2322-client-jsonrpc-id-different",
            "sep-2322-client-no-state-omitted",
            "sep-2322-client-parallel-isolation",
            "sep-2322-default-result-type-complete",
        ];
        let (verdict, why) = verdict(Some(1), Some(&checks), Some(check_ids));
        assert_eq!(verdict, Verdict::ExpectedFailure, "{why:?}");
    }

    #[test]
    fn expected_failures_name_their_checks() {
        for (_, scenario, check_ids, why) in EXPECTED_FAILURES {
            assert!(!check_ids.is_empty(), "{scenario} lists no failing check");
            assert!(!why.is_empty(), "{scenario} says not why it fails");
        }
    }

    #[test]
    fn a_scenario_expected_to_warn_fails_as_expected_though_the_suite_exits_with_0() {
        let checks = vec![
            Check {
                id: "sep-2322-ignore-unexpected-params".to_owned(),
                status: "WARNING".to_owned(),
            },
            Check {
                id: "wire-schema-valid".to_owned(),
                status: "SUCCESS".to_owned(),
            },
        ];
        let expected: &[&str] = &["sep-2322-ignore-unexpected-params"];
        let (warned, why) = verdict(Some(0), Some(&checks), Some(expected));
        assert_eq!(warned, Verdict::ExpectedFailure, "{why:?}");
        // A failure that exits with 0 is not believed.
        let mut failing = checks.clone();
        failing[0].status = "FAILURE".to_owned();
        let (failed, _) = verdict(Some(0), Some(&failing), Some(expected));
        assert_eq!(failed, Verdict::Failed);
    }
}
