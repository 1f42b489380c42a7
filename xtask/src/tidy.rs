//! Repository rules checked by reading files, run both as `cargo xtask tidy` and as the `tidy` test.
//!
//! The rules come from the "Tidy test" section of the style guide.
//! Each violation names a `path:line` and the rule to follow.
//! The patterns this module looks for are assembled with `concat!` so that it does not flag itself.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::Path;

/// One broken rule at one place in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Path relative to the workspace root, with `/` separators.
    pub(crate) path: String,
    /// One-based line number.
    pub(crate) line: usize,
    /// What is wrong and what to do instead.
    pub(crate) rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.rule)
    }
}

/// Checks every tidy rule under the workspace `root` and returns the violations, sorted by path and line.
pub(crate) fn check(root: &Path) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut files = Vec::new();
    walk(root, "", &mut files, &mut violations);
    files.sort();

    let mut manifests = Vec::new();
    for path in &files {
        let is_text = [".rs", ".toml", ".md"]
            .iter()
            .any(|ext| path.ends_with(ext));
        if !is_text {
            continue;
        }
        let text = match fs::read_to_string(root.join(path)) {
            Ok(text) => text,
            Err(error) => {
                violations.push(violation(
                    path,
                    1,
                    format!("cannot read as UTF-8 text: {error}"),
                ));
                continue;
            }
        };
        check_trailing_whitespace(path, &text, &mut violations);
        if path.ends_with(".rs") {
            check_rust_source(path, &text, &mut violations);
        }
        if is_manifest(path) {
            manifests.push((path.clone(), text));
        }
    }
    check_layering(&manifests, &mut violations);

    violations.sort_by(|a, b| (&a.path, a.line, &a.rule).cmp(&(&b.path, b.line, &b.rule)));
    violations
}

/// Internal library crates from the bottom layer up: a crate depends only on crates to its left.
const LAYERS: &[&str] = &[
    "mcp-transport",
    "mcp-auth",
    "mcp-http",
    "mcp-session",
    "mcp-host-foundation",
    "mcp-host",
    "mcp-gateway",
    "mcp-host-cli",
];

const TESTKIT: &str = "mcp-host-testkit";

/// Crates the testkit may depend on.
const TESTKIT_DEPS: &[&str] = &["mcp-transport", "mcp-session"];

const XTASK: &str = "xtask";

/// Test-only crates above every layer: they may dev-depend on any workspace crate, and depend on none otherwise.
const TEST_CRATES: &[&str] = &["mcp-host-interop"];

/// Tools above every layer (not published): they may depend on any crate in `LAYERS`, and on nothing else of the workspace.
const TOOL_CRATES: &[&str] = &["mcp-host-bench"];

/// Directory names never descended into.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

/// Collects the paths of all regular files under `root/rel`, relative to `root`.
fn walk(root: &Path, rel: &str, files: &mut Vec<String>, violations: &mut Vec<Violation>) {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) => {
            violations.push(violation(rel, 0, format!("cannot list directory: {error}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        // `DirEntry::file_type` does not follow symlinks, so a symlinked directory cannot loop the walk.
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(root, &child, files, violations);
            }
        } else if file_type.is_file() {
            files.push(child);
        }
    }
}

fn violation(path: &str, line: usize, rule: impl Into<String>) -> Violation {
    Violation {
        path: path.to_owned(),
        line,
        rule: rule.into(),
    }
}

/// Splits a relative path of the form `crates/<name>/<rest>` into `(name, rest)`.
fn split_crate_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("crates/")?;
    rest.split_once('/')
}

fn is_manifest(path: &str) -> bool {
    path == "xtask/Cargo.toml"
        || split_crate_path(path).is_some_and(|(_, rest)| rest == "Cargo.toml")
}

fn check_trailing_whitespace(path: &str, text: &str, violations: &mut Vec<Violation>) {
    for (line_idx, line) in text.lines().enumerate() {
        if line.ends_with([' ', '\t']) {
            violations.push(violation(
                path,
                line_idx + 1,
                "trailing whitespace: remove it",
            ));
        }
    }
}

fn check_rust_source(path: &str, text: &str, violations: &mut Vec<Violation>) {
    let crate_part = split_crate_path(path);
    let in_crates = crate_part.is_some();
    let needs_module_doc = path.starts_with("xtask/src/")
        || crate_part
            .is_some_and(|(_, rest)| rest.starts_with("src/") || rest.starts_with("tests/"));
    if needs_module_doc {
        check_module_doc(path, text, violations);
    }
    if crate_part.is_some_and(|(_, rest)| rest == "src/lib.rs") {
        check_lib_paragraph(path, text, violations);
    }
    let is_library_source = crate_part.is_some_and(|(crate_dir, rest)| {
        crate_dir != TESTKIT && rest.starts_with("src/") && !rest.starts_with("src/bin/")
    });
    if is_library_source {
        check_library_source(path, text, violations);
    }
    if in_crates || path.starts_with("xtask/") {
        check_test_attributes(path, text, violations);
    }
    if in_crates {
        check_http_listeners(path, text, violations);
    }
}

/// Every HTTP server we run sets `TCP_NODELAY` on the connections it accepts.
///
/// Our answers go out in several small writes on kept-alive connections; without it each
/// sequential call waits ~40 ms for the client's delayed ACK (issue #12 measured 42.9 ms per
/// call with the TypeScript SDK client).
fn check_http_listeners(path: &str, text: &str, violations: &mut Vec<Violation>) {
    let serve = concat!("axum::", "serve(");
    let no_delay = concat!("set_", "nodelay(true)");
    if text.contains(no_delay) {
        return;
    }
    for (line_idx, line) in text.lines().enumerate() {
        if line.contains(serve) {
            violations.push(violation(
                path,
                line_idx + 1,
                "an HTTP server must set TCP_NODELAY on every accepted connection \
                 (`listener.tap_io(|stream| stream.set_nodelay(true))`): small writes on \
                 kept-alive connections otherwise wait ~40 ms for delayed ACKs",
            ));
        }
    }
}

fn check_module_doc(path: &str, text: &str, violations: &mut Vec<Violation>) {
    let first_line = text.lines().next().unwrap_or("");
    if !first_line.starts_with("//!") {
        violations.push(violation(
            path,
            1,
            "the first line must be a `//!` comment saying what the module is for",
        ));
    } else if first_line.contains(concat!("FIX", "ME")) {
        violations.push(violation(
            path,
            1,
            concat!(
                "the first `//!` line must not mention FIX",
                "ME: say what the module is for and move the note below"
            ),
        ));
    }
}

fn check_lib_paragraph(path: &str, text: &str, violations: &mut Vec<Violation>) {
    let first_line = text.lines().next().unwrap_or("");
    let has_text = first_line
        .strip_prefix("//!")
        .is_some_and(|rest| !rest.trim().is_empty());
    if !has_text {
        violations.push(violation(
            path,
            1,
            "lib.rs must open with a `//!` paragraph saying where the crate sits and its Architecture Invariants",
        ));
    }
}

/// Patterns banned in library code outside `#[cfg(test)]`, with the rule to follow.
const LIBRARY_BANS: &[(&str, &str)] = &[
    (
        concat!(".unw", "rap()"),
        "no `.unwrap()` in library code: return a crate `Error` instead",
    ),
    (
        concat!(".exp", "ect("),
        "no `.expect(..)` in library code: return a crate `Error` instead",
    ),
    (
        concat!("tokio::sp", "awn("),
        "no bare `tokio::spawn`: spawn on a `TaskTracker` or `JoinSet`, or return a driver future",
    ),
    (
        concat!("db", "g!("),
        "no `dbg!` in library code: use `tracing`",
    ),
    (
        concat!("eprint", "ln!("),
        "no `eprintln!` in library code: libraries never write to stderr, use `tracing`",
    ),
    (
        concat!("print", "ln!("),
        "no `println!` in library code: libraries never write to stdout, use `tracing`",
    ),
];

/// Scans library code up to the first `#[cfg(test)]` line, skipping comment lines.
///
/// Comment lines are skipped because doc examples run as doctests, not as library code.
fn check_library_source(path: &str, text: &str, violations: &mut Vec<Violation>) {
    for (line_idx, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        for (pattern, rule) in LIBRARY_BANS {
            let found = line.match_indices(pattern).any(|(idx, _)| {
                // `println!(` also matches inside `eprintln!(`, which has its own rule.
                let is_macro = pattern.ends_with("!(");
                let preceded_by_ident = line[..idx]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                !(is_macro && preceded_by_ident)
            });
            if found {
                violations.push(violation(path, line_idx + 1, *rule));
            }
        }
    }
}

fn check_test_attributes(path: &str, text: &str, violations: &mut Vec<Violation>) {
    let bans = [
        (
            concat!("#[should", "_panic"),
            concat!(
                "no `#[should",
                "_panic]`: return a `Result` or assert on the error value"
            ),
        ),
        (
            concat!("#[ign", "ore"),
            concat!(
                "no `#[ign",
                "ore]`: assert the current behaviour and add a FIX",
                "ME instead"
            ),
        ),
    ];
    for (line_idx, line) in text.lines().enumerate() {
        for (pattern, rule) in bans {
            if line.contains(pattern) {
                violations.push(violation(path, line_idx + 1, rule));
            }
        }
    }
}

/// Which dependency table a manifest line sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DepKind {
    Normal,
    Dev,
    Build,
}

impl DepKind {
    fn table(self) -> &'static str {
        match self {
            DepKind::Normal => "[dependencies]",
            DepKind::Dev => "[dev-dependencies]",
            DepKind::Build => "[build-dependencies]",
        }
    }
}

/// One dependency entry read from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dependency {
    name: String,
    kind: DepKind,
    line: usize,
    has_path: bool,
    has_version: bool,
}

/// A manifest reduced to what the layering rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Manifest {
    package: Option<(String, usize)>,
    dependencies: Vec<Dependency>,
}

/// What a `[...]` header opens.
enum Section {
    Deps(DepKind),
    DepTable(DepKind),
    Package,
    Other,
}

fn parse_section(header: &str) -> Section {
    let header = header.trim();
    if header == "package" {
        return Section::Package;
    }
    let kinds = [
        ("dev-dependencies", DepKind::Dev),
        ("build-dependencies", DepKind::Build),
        ("dependencies", DepKind::Normal),
    ];
    for (table, kind) in kinds {
        if header == table || header.ends_with(&format!(".{table}")) {
            return Section::Deps(kind);
        }
        if header.starts_with(&format!("{table}.")) || header.contains(&format!(".{table}.")) {
            return Section::DepTable(kind);
        }
    }
    Section::Other
}

/// Reads `name = "value"` from a TOML fragment such as an inline table, for simple string values.
fn string_field<'a>(fragment: &'a str, field: &str) -> Option<&'a str> {
    let mut rest = fragment;
    while let Some(idx) = rest.find(field) {
        let before_ok = rest[..idx]
            .chars()
            .next_back()
            .is_none_or(|c| c == '{' || c == ',' || c.is_whitespace());
        let after = rest[idx + field.len()..].trim_start();
        if before_ok {
            if let Some(value) = after.strip_prefix('=') {
                let value = value.trim_start().strip_prefix('"')?;
                return value.split('"').next();
            }
        }
        rest = &rest[idx + field.len()..];
    }
    None
}

fn has_field(fragment: &str, field: &str) -> bool {
    fragment.split(['{', ',', '}']).any(|part| {
        let key = part.split('=').next().unwrap_or("").trim();
        key == field
    })
}

/// A line-based reading of the `[package]` name and the dependency tables of a `Cargo.toml`.
fn parse_manifest(text: &str) -> Manifest {
    let mut manifest = Manifest {
        package: None,
        dependencies: Vec::new(),
    };
    let mut section = Section::Other;
    for (line_idx, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("");
            section = parse_section(header);
            if let Section::DepTable(kind) = section {
                let name = header
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                manifest.dependencies.push(Dependency {
                    name: name.to_owned(),
                    kind,
                    line: line_idx + 1,
                    has_path: false,
                    has_version: false,
                });
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        match section {
            Section::Package => {
                if key == "name" {
                    let name = value.trim().trim_matches('"').to_owned();
                    manifest.package = Some((name, line_idx + 1));
                }
            }
            Section::Deps(kind) => {
                let key_name = key.split('.').next().unwrap_or("").trim().trim_matches('"');
                let name = string_field(value, "package").unwrap_or(key_name);
                manifest.dependencies.push(Dependency {
                    name: name.to_owned(),
                    kind,
                    line: line_idx + 1,
                    has_path: has_field(value, "path"),
                    has_version: value.trim_start().starts_with('"') || has_field(value, "version"),
                });
            }
            Section::DepTable(_) => {
                if let Some(dependency) = manifest.dependencies.last_mut() {
                    match key {
                        "package" => {
                            dependency.name = value.trim().trim_matches('"').to_owned();
                        }
                        "path" => dependency.has_path = true,
                        "version" => dependency.has_version = true,
                        _ => {}
                    }
                }
            }
            Section::Other => {}
        }
    }
    manifest
}

/// Checks internal dependencies against the layer order, given `(path, text)` for each crate manifest.
fn check_layering(manifests: &[(String, String)], violations: &mut Vec<Violation>) {
    let parsed: Vec<(&str, Manifest)> = manifests
        .iter()
        .map(|(path, text)| (path.as_str(), parse_manifest(text)))
        .collect();
    let mut internal: BTreeSet<String> = LAYERS.iter().map(|name| (*name).to_owned()).collect();
    internal.insert(TESTKIT.to_owned());
    internal.insert(XTASK.to_owned());
    for (_, manifest) in &parsed {
        if let Some((name, _)) = &manifest.package {
            internal.insert(name.clone());
        }
    }

    for (path, manifest) in &parsed {
        let Some((crate_name, package_line)) = &manifest.package else {
            violations.push(violation(path, 1, "no `[package] name` found"));
            continue;
        };
        let crate_name = crate_name.as_str();
        let layer = LAYERS.iter().position(|name| *name == crate_name);
        if layer.is_none()
            && crate_name != TESTKIT
            && crate_name != XTASK
            && !TEST_CRATES.contains(&crate_name)
            && !TOOL_CRATES.contains(&crate_name)
        {
            violations.push(violation(
                path,
                *package_line,
                format!("crate `{crate_name}` is not in the layer list: add it to `LAYERS` in xtask/src/tidy.rs"),
            ));
        }
        for dependency in &manifest.dependencies {
            let name = dependency.name.as_str();
            if !internal.contains(name) {
                if dependency.has_path {
                    violations.push(violation(
                        path,
                        dependency.line,
                        format!(
                            "path dependency `{name}` is not a workspace crate in the layer list"
                        ),
                    ));
                }
                continue;
            }
            if let Some(rule) = layering_rule(crate_name, layer, dependency) {
                violations.push(violation(path, dependency.line, rule));
            }
        }
    }
}

/// Returns the rule an internal dependency breaks, if any.
fn layering_rule(
    crate_name: &str,
    layer: Option<usize>,
    dependency: &Dependency,
) -> Option<String> {
    let name = dependency.name.as_str();
    let table = dependency.kind.table();
    if crate_name == XTASK {
        return Some(format!(
            "xtask depends on no workspace crate, but lists `{name}` under {table}"
        ));
    }
    if dependency.kind == DepKind::Dev {
        if dependency.has_version {
            return Some(format!(
                "internal dev-dependency `{name}` must not carry a `version`: use `{name}.workspace = true`"
            ));
        }
        return None;
    }
    if TEST_CRATES.contains(&crate_name) {
        return Some(format!(
            "`{crate_name}` is a test crate: list `{name}` under [dev-dependencies], not {table}"
        ));
    }
    if name == TESTKIT {
        return Some(format!(
            "`{TESTKIT}` may only appear under [dev-dependencies], not {table}"
        ));
    }
    if TOOL_CRATES.contains(&crate_name) {
        if LAYERS.contains(&name) {
            return None;
        }
        return Some(format!(
            "`{crate_name}` is a tool: it may depend on {}, not `{name}`",
            LAYERS.join(", ")
        ));
    }
    if crate_name == TESTKIT {
        if TESTKIT_DEPS.contains(&name) {
            return None;
        }
        return Some(format!(
            "`{TESTKIT}` may depend only on {}, not `{name}`",
            TESTKIT_DEPS.join(" and ")
        ));
    }
    let layer = layer?;
    match LAYERS.iter().position(|other| *other == name) {
        Some(dep_layer) if dep_layer < layer => None,
        Some(_) => Some(format!(
            "`{crate_name}` may depend only on crates to its left in {}, not `{name}`",
            LAYERS.join(" < ")
        )),
        None => Some(format!(
            "`{crate_name}` depends on workspace crate `{name}`, which is not in the layer list"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let violations = check(root);
        let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
        assert!(
            violations.is_empty(),
            "tidy found {} violation(s):\n{}",
            violations.len(),
            report.join("\n")
        );
    }

    /// Runs the per-file checks on `(path, text)` and compares `path:line: rule` prefixes with `expect`.
    #[track_caller]
    fn check_file(path: &str, text: &str, expect: &[&str]) {
        let mut violations = Vec::new();
        check_trailing_whitespace(path, text, &mut violations);
        if path.ends_with(".rs") {
            check_rust_source(path, text, &mut violations);
        }
        let found: Vec<String> = violations
            .iter()
            .map(|v| format!("{}:{}", v.path, v.line))
            .collect();
        assert_eq!(found, expect, "violations: {violations:#?}");
    }

    #[test]
    fn module_docs() {
        check_file("crates/a/src/x.rs", "//! Does x.\nfn x() {}\n", &[]);
        check_file("crates/a/src/x.rs", "fn x() {}\n", &["crates/a/src/x.rs:1"]);
        check_file(
            "crates/a/tests/it/main.rs",
            "use a;\n",
            &["crates/a/tests/it/main.rs:1"],
        );
        check_file("xtask/src/x.rs", "\n//! Late.\n", &["xtask/src/x.rs:1"]);
        let fixme = concat!("//! FIX", "ME: write this.\n");
        check_file("crates/a/src/x.rs", fixme, &["crates/a/src/x.rs:1"]);
        check_file(
            "crates/a/src/lib.rs",
            "//!\n//! Text.\n",
            &["crates/a/src/lib.rs:1"],
        );
        check_file("crates/a/examples/x.rs", "fn main() {}\n", &[]);
    }

    #[test]
    fn library_bans() {
        let unwrap = concat!("//! M.\nfn f() { x.unw", "rap(); }\n");
        check_file("crates/a/src/x.rs", unwrap, &["crates/a/src/x.rs:2"]);
        check_file("crates/a/src/bin/b.rs", unwrap, &[]);
        check_file("crates/mcp-host-testkit/src/x.rs", unwrap, &[]);
        let eprint = concat!("//! M.\nfn f() { eprint", "ln!(\"x\"); }\n");
        check_file("crates/a/src/x.rs", eprint, &["crates/a/src/x.rs:2"]);
        let in_tests = concat!(
            "//! M.\n#[cfg(test)]\nmod tests { fn f() { x.unw",
            "rap(); } }\n"
        );
        check_file("crates/a/src/x.rs", in_tests, &[]);
        let in_doc = concat!("//! M.\n/// let y = x.unw", "rap();\nfn f() {}\n");
        check_file("crates/a/src/x.rs", in_doc, &[]);
        let spawn = concat!("//! M.\nfn f() { tokio::sp", "awn(fut); }\n");
        check_file("crates/a/src/x.rs", spawn, &["crates/a/src/x.rs:2"]);
    }

    #[test]
    fn test_attributes_and_whitespace() {
        let attribute = concat!("//! M.\n#[ign", "ore = \"slow\"]\nfn t() {}\n");
        check_file("crates/a/tests/t.rs", attribute, &["crates/a/tests/t.rs:2"]);
        let attribute = concat!("//! M.\n#[should", "_panic]\nfn t() {}\n");
        check_file("xtask/src/x.rs", attribute, &["xtask/src/x.rs:2"]);
        check_file(
            "README.md",
            "ok\nbad \nbad\t\n",
            &["README.md:2", "README.md:3"],
        );
    }

    /// Runs the layering check on `(path, text)` manifests and compares `path:line` with `expect`.
    #[track_caller]
    fn check_manifests(manifests: &[(&str, &str)], expect: &[&str]) {
        let manifests: Vec<(String, String)> = manifests
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect();
        let mut violations = Vec::new();
        check_layering(&manifests, &mut violations);
        let found: Vec<String> = violations
            .iter()
            .map(|v| format!("{}:{}", v.path, v.line))
            .collect();
        assert_eq!(found, expect, "violations: {violations:#?}");
    }

    #[test]
    fn http_listeners_set_no_delay() {
        let bare = concat!(
            "//! M.\nasync fn f() { axum::",
            "serve(listener, app).await; }\n"
        );
        check_file("crates/a/src/x.rs", bare, &["crates/a/src/x.rs:2"]);
        let tapped = concat!(
            "//! M.\nasync fn f() {\n    let l = l.tap_io(|s| { let _ = s.set_",
            "nodelay(true); });\n    axum::",
            "serve(l, app).await;\n}\n"
        );
        check_file("crates/a/src/x.rs", tapped, &[]);
    }

    #[test]
    fn layering() {
        let session = "[package]\nname = \"mcp-session\"\n\n[dependencies]\nmcp-transport.workspace = true\ntokio = { workspace = true }\n\n[dev-dependencies]\nmcp-host-testkit.workspace = true\n";
        check_manifests(&[("crates/mcp-session/Cargo.toml", session)], &[]);

        let upward = "[package]\nname = \"mcp-transport\"\n[dependencies]\nmcp-session = { workspace = true }\n";
        check_manifests(
            &[("crates/mcp-transport/Cargo.toml", upward)],
            &["crates/mcp-transport/Cargo.toml:4"],
        );

        let testkit_dep = "[package]\nname = \"mcp-host\"\n[dependencies]\nmcp-host-testkit = { path = \"../mcp-host-testkit\" }\n";
        check_manifests(
            &[("crates/mcp-host/Cargo.toml", testkit_dep)],
            &["crates/mcp-host/Cargo.toml:4"],
        );

        let testkit = "[package]\nname = \"mcp-host-testkit\"\n[dependencies]\nmcp-transport.workspace = true\nmcp-host-foundation.workspace = true\n";
        check_manifests(
            &[("crates/mcp-host-testkit/Cargo.toml", testkit)],
            &["crates/mcp-host-testkit/Cargo.toml:5"],
        );

        let xtask =
            "[package]\nname = \"xtask\"\n[dev-dependencies]\nmcp-session.workspace = true\n";
        check_manifests(&[("xtask/Cargo.toml", xtask)], &["xtask/Cargo.toml:4"]);

        let table = "[package]\nname = \"mcp-session\"\n[dependencies.mcp-host]\nworkspace = true\n[dev-dependencies]\nmcp-transport = { version = \"0.1\", path = \"../mcp-transport\" }\n";
        check_manifests(
            &[("crates/mcp-session/Cargo.toml", table)],
            &[
                "crates/mcp-session/Cargo.toml:3",
                "crates/mcp-session/Cargo.toml:6",
            ],
        );

        let interop = "[package]\nname = \"mcp-host-interop\"\n[dependencies]\nmcp-session.workspace = true\n[dev-dependencies]\nmcp-host.workspace = true\nmcp-host-testkit.workspace = true\nmcp-transport = { workspace = true, version = \"0.1\" }\n";
        check_manifests(
            &[("crates/mcp-host-interop/Cargo.toml", interop)],
            &[
                "crates/mcp-host-interop/Cargo.toml:4",
                "crates/mcp-host-interop/Cargo.toml:8",
            ],
        );

        let bench = "[package]\nname = \"mcp-host-bench\"\n[dependencies]\nmcp-transport.workspace = true\nmcp-host.workspace = true\nmcp-host-cli.workspace = true\nmcp-host-testkit.workspace = true\nmcp-host-interop.workspace = true\nrmcp.workspace = true\n[dev-dependencies]\nmcp-host-testkit.workspace = true\n";
        check_manifests(
            &[
                ("crates/mcp-host-bench/Cargo.toml", bench),
                (
                    "crates/mcp-host-interop/Cargo.toml",
                    "[package]\nname = \"mcp-host-interop\"\n",
                ),
            ],
            &[
                "crates/mcp-host-bench/Cargo.toml:7",
                "crates/mcp-host-bench/Cargo.toml:8",
            ],
        );

        let unknown = "[package]\nname = \"mcp-extra\"\n";
        check_manifests(
            &[("crates/mcp-extra/Cargo.toml", unknown)],
            &["crates/mcp-extra/Cargo.toml:2"],
        );
    }
}
