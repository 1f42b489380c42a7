//! A scriptable fake MCP server (protocol revision 2025-11-25) that tests run as a process or in-process.
//!
//! The server speaks newline-delimited JSON-RPC 2.0 over any `AsyncRead`/`AsyncWrite` pair.
//! [`FakeConfig`] selects its misbehaviours; the `mcp-fake-server` binary takes the same settings as flags.
//! Requests are handled concurrently (one task per request), so a slow tool call never blocks other requests.
//! All output goes through one writer task, one JSON message per line.
//! Besides the listed tools, two can be called by name: `flood_answers` (see `--request-flood`) and
//! `close_input`, after which the server closes its input for real (the client's writes fail) but
//! keeps running and answering.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The protocol revision the fake server prefers.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Protocol revisions the fake server echoes back when a client asks for them.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Names of the built-in tools, in the order `tools/list` returns them (generated tools follow).
pub const BUILTIN_TOOLS: &[&str] = &[
    "echo",
    "add",
    "slow",
    "fail",
    "huge",
    "crash",
    "cancelled",
    "env",
    "ask_client",
    "touch",
];

/// Size of the text returned by the `huge` tool when `--huge-line-bytes` is not given.
pub const DEFAULT_HUGE_LINE_BYTES: usize = 1024;

/// How long the `ask_client` tool waits for the client's response.
pub const ASK_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the fake server; `Default` is a well-behaved server with 3 generated tools and no pagination.
///
/// Each field matches one flag of the `mcp-fake-server` binary (see [`FakeConfig::from_args`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeConfig {
    /// `--name NAME`: `serverInfo.name` (default `fake-server`).
    pub name: String,
    /// `--protocol-version V`: always answer `initialize` with this version.
    /// `None` echoes the client's version if supported, else [`LATEST_PROTOCOL_VERSION`].
    pub protocol_version: Option<String>,
    /// `--tools N`: number of generated tools `tool_0`..`tool_{N-1}` after the built-in ones (default 3).
    pub n_tools: usize,
    /// `--page-size N`: page size of the list methods; 0 (default) returns everything in one page.
    pub page_size: usize,
    /// `--repeat-cursor`: `tools/list` always returns `nextCursor: "again"`.
    pub repeat_cursor: bool,
    /// `--init-delay-ms N`: sleep this long before answering `initialize`.
    pub init_delay_ms: u64,
    /// `--init-gate FILE`: answer `initialize` only once FILE exists (checked every 10 ms, for at most
    /// a minute), so that a test decides when a server becomes ready.
    pub init_gate: Option<String>,
    /// `--crash-at-init`: exit with code 3 on `initialize`, without answering.
    pub crash_at_init: bool,
    /// `--crash-on-call`: exit with code 4 on any `tools/call`, without answering.
    pub crash_on_call: bool,
    /// `--crash-after N`: the `tools/call` that arrives after N others exits with code 5, without answering.
    pub crash_after: Option<u64>,
    /// `--ignore-eof`: keep running after stdin reaches EOF.
    pub ignore_eof: bool,
    /// `--ignore-sigterm`: ignore SIGTERM (binary only).
    pub ignore_sigterm: bool,
    /// `--spawn-grandchild`: start a sleeping copy of the binary in the same process group (binary only).
    pub spawn_grandchild: bool,
    /// `--stderr-flood-bytes N`: write N bytes of log lines to stderr at startup.
    pub stderr_flood_bytes: u64,
    /// `--garbage-lines`: write a non-JSON line and a blank line before each response.
    pub garbage_lines: bool,
    /// `--huge-line-bytes N`: size of the text the `huge` tool returns (default [`DEFAULT_HUGE_LINE_BYTES`]).
    pub huge_line_bytes: usize,
    /// `--list-changed`: send `notifications/tools/list_changed` after `notifications/initialized`.
    pub list_changed: bool,
    /// `--list-changed-flood N`: send N `notifications/tools/list_changed` after
    /// `notifications/initialized`, then the log message `list_changed flood sent`; a
    /// `list_requests` tool (listed with this flag only) counts the `tools/list` requests
    /// received.
    pub list_changed_flood: u64,
    /// `--tool NAME` (repeatable): also list a tool named NAME, which answers with the text
    /// `<server name>:<NAME>` (so a test sees which server a call reached).
    pub extra_tools: Vec<String>,
    /// `--notify-flood N`: send N `notifications/message` after `notifications/initialized`.
    pub notify_flood: u64,
    /// `--close-stdout-after-init`: close the output after `notifications/initialized`, but keep reading input.
    pub close_stdout_after_init: bool,
    /// `--grandchild`: internal mode of the spawned grandchild, which only sleeps until a signal kills it.
    pub grandchild: bool,
    /// `--exit-after-ms N`: exit with code 7, N ms after `notifications/initialized` (a server that dies by itself).
    pub exit_after_ms: Option<u64>,
    /// `--print-env NAME`: log `fake-server: env NAME=<value>` to stderr at startup.
    pub print_env: Option<String>,
    /// `--stop-reading-after-init`: stop reading stdin after `notifications/initialized`, but keep running.
    pub stop_reading_after_init: bool,
    /// `--read-slowly-after-init MS`: after `notifications/initialized`, read at most 4 KiB of stdin
    /// every MS milliseconds (and handle none of it), but keep running: a peer slow enough to let
    /// the client's output pile up without ever making no progress at all. (A pipe takes a write
    /// again only once a whole page of it has been read, so reading less than 4 KiB at a time
    /// would look like no progress.)
    pub read_slowly_after_init_ms: Option<u64>,
    /// `--request-flood N`: after `notifications/initialized`, send N requests to the client
    /// (`ping` and `sampling/createMessage`, alternating); the `flood_answers` tool counts the answers.
    pub request_flood: u64,
    /// `--request-flood-method M`: every `--request-flood` request is a request of method `M`
    /// (instead of `ping` and `sampling/createMessage` alternating).
    pub request_flood_method: Option<String>,
    /// `--spawn-escaped-grandchild`: start a sleeping copy of the binary in a new process group (binary only),
    /// escaping the host's process-group cleanup.
    pub spawn_escaped_grandchild: bool,
    /// `--discover`: also speak the stateless revision 2026-07-28 (`server/discover`). The
    /// unlisted tool `input_required` answers with `resultType: input_required` whatever the
    /// revision.
    pub discover: bool,
    /// `--output-schema`: also list the tool `structured`, which declares an `outputSchema`
    /// (`{sum: number}`, required) and returns its `value` argument as `structuredContent`.
    pub output_schema: bool,
    /// `--tasks`: declare tasks (`tasks.list`, `tasks.cancel`, `tasks.requests.tools.call`) and
    /// let `echo`, `slow`, `fail` and `ask_client` run as tasks (`execution.taskSupport:
    /// optional`); a task of `ask_client` is `input_required` while it waits for the client.
    pub tasks: bool,
    /// `--every-field`: also list [`DECORATED_TOOL`], [`DECORATED_PROMPT`],
    /// [`DECORATED_RESOURCE`] and [`DECORATED_TEMPLATE`], answer `initialize` with
    /// [`DECORATED_SERVER_INFO`], and the tool, prompt and resource with
    /// [`DECORATED_CALL_RESULT`], [`DECORATED_PROMPT_RESULT`] and [`DECORATED_READ`]: every
    /// optional field of revision 2025-11-25 (titles, icons, `_meta`, annotations, execution),
    /// members in an order that is not alphabetical, so that a host that passes them on can be
    /// checked byte for byte.
    pub every_field: bool,
    /// `--catalogue N`: also list N (at most 250) tools of a made-up business API, named
    /// `<verb>_<noun>` (`export_invoice`, `share_document`, …) with a description each: a
    /// realistic catalogue to search (see [`catalogue_tools`]). They answer like `--tool` ones.
    pub catalogue: usize,
}

/// The nouns (singular, plural) of the `--catalogue` tools.
const CATALOGUE_NOUNS: &[(&str, &str)] = &[
    ("invoice", "invoices"),
    ("customer", "customers"),
    ("order", "orders"),
    ("ticket", "support tickets"),
    ("deployment", "deployments"),
    ("pipeline", "build pipelines"),
    ("repository", "code repositories"),
    ("branch", "branches"),
    ("issue", "issues"),
    ("pull_request", "pull requests"),
    ("event", "calendar events"),
    ("email", "emails"),
    ("contact", "contacts"),
    ("document", "documents"),
    ("spreadsheet", "spreadsheets"),
    ("image", "images"),
    ("video", "videos"),
    ("playlist", "playlists"),
    ("payment", "payments"),
    ("subscription", "subscriptions"),
    ("user", "users"),
    ("group", "groups"),
    ("permission", "permissions"),
    ("secret", "secrets"),
    ("log", "log entries"),
];

/// The verbs of the `--catalogue` tools, with their description (`{one}`: the noun, `{many}`:
/// its plural).
const CATALOGUE_VERBS: &[(&str, &str)] = &[
    ("list", "Lists the {many} of the workspace, newest first."),
    ("get", "Returns one {one} by its id, with all its fields."),
    ("create", "Creates a new {one} from the given fields."),
    ("update", "Changes the fields of an existing {one}."),
    ("delete", "Deletes a {one} permanently."),
    (
        "search",
        "Searches the {many} by text and returns the best matches.",
    ),
    (
        "archive",
        "Archives a {one} so that it no longer shows in lists.",
    ),
    ("export", "Exports {many} to a CSV file."),
    ("import", "Imports {many} from a CSV file."),
    (
        "share",
        "Shares a {one} with another user of the workspace.",
    ),
];

/// The first `n` (at most 250) tools of the `--catalogue` business API: name and description.
pub fn catalogue_tools(n: usize) -> Vec<(String, String)> {
    CATALOGUE_NOUNS
        .iter()
        .flat_map(|(one, many)| {
            CATALOGUE_VERBS.iter().map(move |(verb, description)| {
                let readable = one.replace('_', " ");
                (
                    format!("{verb}_{one}"),
                    description
                        .replace("{one}", &readable)
                        .replace("{many}", many),
                )
            })
        })
        .take(n)
        .collect()
}

/// A resource template with every optional field (compact JSON; see
/// [`FakeConfig::every_field`]).
pub const DECORATED_TEMPLATE: &str = r#"{"uriTemplate":"ui://decorated/{page}.html","name":"decorated_pages","title":"Decorated Pages","description":"Has every optional field.","mimeType":"text/html;profile=mcp-app","annotations":{"priority":1,"audience":["assistant"]},"icons":[{"src":"https://example.com/pages.png","theme":"light"}],"_meta":{"vendor/t":{"b":1,"a":2}},"x-unknown":{"z":0}}"#;
/// What `resources/read` of [`DECORATED_RESOURCE`] answers: contents and result with `_meta`
/// and unknown members.
pub const DECORATED_READ: &str = r#"{"contents":[{"uri":"ui://decorated/app.html","mimeType":"text/html;profile=mcp-app","text":"<!doctype html><p>app</p>","_meta":{"ui":{"csp":{"resourceDomains":["https://cdn.example.com"]},"prefersBorder":false}},"x-unknown":1}],"_meta":{"vendor/read":true},"x-unknown":"result"}"#;
/// What `prompts/get` of [`DECORATED_PROMPT`] answers.
pub const DECORATED_PROMPT_RESULT: &str = r#"{"description":"Decorated.","messages":[{"role":"user","content":{"type":"text","text":"Hi","annotations":{"priority":0.2},"_meta":{"vendor/c":1}},"x-unknown":2}],"_meta":{"vendor/p":[1]},"x-unknown":"prompt"}"#;
/// What a call of [`DECORATED_TOOL`] answers.
pub const DECORATED_CALL_RESULT: &str = r#"{"content":[{"type":"text","text":"{\"n\":1}","annotations":{"audience":["user"]},"_meta":{"vendor/c":2}},{"type":"resource_link","uri":"ui://decorated/app.html","name":"decorated_app","_meta":{"z":1,"a":0}}],"structuredContent":{"n":1},"isError":false,"_meta":{"vendor/call":{"b":2,"a":1}},"x-unknown":[null]}"#;
/// A tool with every optional field (compact JSON; see [`FakeConfig::every_field`]).
pub const DECORATED_TOOL: &str = r#"{"name":"decorated","title":"Decorated Tool","description":"Has every optional field.","inputSchema":{"type":"object","properties":{"q":{"type":"string","description":"Query."}},"required":["q"],"$defs":{"unused":{"type":"null"}}},"outputSchema":{"type":"object","properties":{"n":{"type":"integer"}}},"annotations":{"title":"Decorated","readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false},"icons":[{"src":"https://example.com/tool.png","mimeType":"image/png","sizes":["48x48","96x96"],"theme":"dark"}],"execution":{"taskSupport":"forbidden"},"_meta":{"vendor/zeta":1,"vendor/alpha":{"z":true,"a":[3,2,1]}},"x-unknown":{"kept":"as is"}}"#;
/// A prompt with every optional field.
pub const DECORATED_PROMPT: &str = r#"{"name":"decorated_prompt","title":"Decorated Prompt","description":"Has every optional field.","arguments":[{"name":"who","title":"Who","description":"Someone.","required":false}],"icons":[{"src":"data:image/svg+xml;base64,PHN2Zy8+","mimeType":"image/svg+xml"}],"_meta":{"vendor/b":2,"vendor/a":1},"x-unknown":[1,"two"]}"#;
/// A resource with every optional field.
pub const DECORATED_RESOURCE: &str = r#"{"uri":"ui://decorated/app.html","name":"decorated_app","title":"Decorated App","description":"Has every optional field.","mimeType":"text/html;profile=mcp-app","size":1024,"annotations":{"audience":["user","assistant"],"priority":0.5,"lastModified":"2025-11-25T10:30:00Z"},"icons":[{"src":"https://example.com/app.png","sizes":["any"]}],"_meta":{"ui":{"prefersBorder":true,"csp":{"connectDomains":[]}}},"x-unknown":null}"#;
/// `serverInfo` with every optional field.
pub const DECORATED_SERVER_INFO: &str = r#"{"name":"fake-server","version":"0.1.0","title":"Fake Server","description":"A server for tests.","websiteUrl":"https://example.com/fake","icons":[{"src":"https://example.com/server.png","mimeType":"image/png","sizes":["32x32"]}]}"#;

/// Why [`serve`] returned; the binary exits with [`Exit::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The input reached EOF (exit code 0).
    Eof,
    /// `--crash-at-init` fired (exit code 3).
    CrashAtInit,
    /// `--crash-on-call` fired (exit code 4).
    CrashOnCall,
    /// `--crash-after` fired (exit code 5).
    CrashAfter,
    /// The `crash` tool was called (exit code 6).
    CrashTool,
    /// `--exit-after-ms` fired (exit code 7).
    ExitAfter,
}

impl Default for FakeConfig {
    fn default() -> FakeConfig {
        FakeConfig {
            name: "fake-server".to_owned(),
            protocol_version: None,
            n_tools: 3,
            page_size: 0,
            repeat_cursor: false,
            init_delay_ms: 0,
            init_gate: None,
            crash_at_init: false,
            crash_on_call: false,
            crash_after: None,
            ignore_eof: false,
            ignore_sigterm: false,
            spawn_grandchild: false,
            stderr_flood_bytes: 0,
            garbage_lines: false,
            huge_line_bytes: DEFAULT_HUGE_LINE_BYTES,
            list_changed: false,
            list_changed_flood: 0,
            extra_tools: Vec::new(),
            notify_flood: 0,
            close_stdout_after_init: false,
            grandchild: false,
            exit_after_ms: None,
            print_env: None,
            stop_reading_after_init: false,
            read_slowly_after_init_ms: None,
            request_flood: 0,
            request_flood_method: None,
            spawn_escaped_grandchild: false,
            discover: false,
            output_schema: false,
            tasks: false,
            every_field: false,
            catalogue: 0,
        }
    }
}

impl FakeConfig {
    /// Parses binary flags (without the program name).
    ///
    /// Unknown flags, missing values and bad numbers are errors.
    /// `--marker VALUE` is accepted and ignored: tests put it in argv to find leftover processes.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<FakeConfig, String> {
        let mut config = FakeConfig::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let args = &mut args;
            match flag.as_str() {
                "--name" => config.name = value(&flag, args)?,
                "--protocol-version" => config.protocol_version = Some(value(&flag, args)?),
                "--tools" => config.n_tools = number(&flag, args)?,
                "--page-size" => config.page_size = number(&flag, args)?,
                "--repeat-cursor" => config.repeat_cursor = true,
                "--init-delay-ms" => config.init_delay_ms = number(&flag, args)?,
                "--init-gate" => config.init_gate = Some(value(&flag, args)?),
                "--crash-at-init" => config.crash_at_init = true,
                "--crash-on-call" => config.crash_on_call = true,
                "--crash-after" => config.crash_after = Some(number(&flag, args)?),
                "--ignore-eof" => config.ignore_eof = true,
                "--ignore-sigterm" => config.ignore_sigterm = true,
                "--spawn-grandchild" => config.spawn_grandchild = true,
                "--stderr-flood-bytes" => config.stderr_flood_bytes = number(&flag, args)?,
                "--garbage-lines" => config.garbage_lines = true,
                "--huge-line-bytes" => config.huge_line_bytes = number(&flag, args)?,
                "--list-changed" => config.list_changed = true,
                "--list-changed-flood" => config.list_changed_flood = number(&flag, args)?,
                "--tool" => config.extra_tools.push(value(&flag, args)?),
                "--notify-flood" => config.notify_flood = number(&flag, args)?,
                "--close-stdout-after-init" => config.close_stdout_after_init = true,
                "--grandchild" => config.grandchild = true,
                "--exit-after-ms" => config.exit_after_ms = Some(number(&flag, args)?),
                "--print-env" => config.print_env = Some(value(&flag, args)?),
                "--stop-reading-after-init" => config.stop_reading_after_init = true,
                "--read-slowly-after-init" => {
                    config.read_slowly_after_init_ms = Some(number(&flag, args)?)
                }
                "--request-flood" => config.request_flood = number(&flag, args)?,
                "--request-flood-method" => config.request_flood_method = Some(value(&flag, args)?),
                "--spawn-escaped-grandchild" => config.spawn_escaped_grandchild = true,
                "--discover" => config.discover = true,
                "--output-schema" => config.output_schema = true,
                "--tasks" => config.tasks = true,
                "--every-field" => config.every_field = true,
                "--catalogue" => config.catalogue = number(&flag, args)?,
                "--marker" => {
                    value(&flag, args)?;
                }
                _ => return Err(format!("unknown argument: {flag}")),
            }
        }
        Ok(config)
    }

    /// Renders the flags that differ from the default, such that `from_args(to_args())` gives back `self`.
    pub fn to_args(&self) -> Vec<String> {
        let default = FakeConfig::default();
        let mut args: Vec<String> = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            args.push(name.to_owned());
            args.extend(value);
        };
        if self.name != default.name {
            flag("--name", Some(self.name.clone()));
        }
        if let Some(version) = &self.protocol_version {
            flag("--protocol-version", Some(version.clone()));
        }
        if self.n_tools != default.n_tools {
            flag("--tools", Some(self.n_tools.to_string()));
        }
        if self.page_size != default.page_size {
            flag("--page-size", Some(self.page_size.to_string()));
        }
        if self.repeat_cursor {
            flag("--repeat-cursor", None);
        }
        if self.init_delay_ms != default.init_delay_ms {
            flag("--init-delay-ms", Some(self.init_delay_ms.to_string()));
        }
        if let Some(gate) = &self.init_gate {
            flag("--init-gate", Some(gate.clone()));
        }
        if self.crash_at_init {
            flag("--crash-at-init", None);
        }
        if self.crash_on_call {
            flag("--crash-on-call", None);
        }
        if let Some(n_calls) = self.crash_after {
            flag("--crash-after", Some(n_calls.to_string()));
        }
        if self.ignore_eof {
            flag("--ignore-eof", None);
        }
        if self.ignore_sigterm {
            flag("--ignore-sigterm", None);
        }
        if self.spawn_grandchild {
            flag("--spawn-grandchild", None);
        }
        if self.stderr_flood_bytes != default.stderr_flood_bytes {
            flag(
                "--stderr-flood-bytes",
                Some(self.stderr_flood_bytes.to_string()),
            );
        }
        if self.garbage_lines {
            flag("--garbage-lines", None);
        }
        if self.huge_line_bytes != default.huge_line_bytes {
            flag("--huge-line-bytes", Some(self.huge_line_bytes.to_string()));
        }
        if self.list_changed {
            flag("--list-changed", None);
        }
        if self.list_changed_flood != default.list_changed_flood {
            flag(
                "--list-changed-flood",
                Some(self.list_changed_flood.to_string()),
            );
        }
        for name in &self.extra_tools {
            flag("--tool", Some(name.clone()));
        }
        if self.notify_flood != default.notify_flood {
            flag("--notify-flood", Some(self.notify_flood.to_string()));
        }
        if self.close_stdout_after_init {
            flag("--close-stdout-after-init", None);
        }
        if self.grandchild {
            flag("--grandchild", None);
        }
        if let Some(ms) = self.exit_after_ms {
            flag("--exit-after-ms", Some(ms.to_string()));
        }
        if let Some(name) = &self.print_env {
            flag("--print-env", Some(name.clone()));
        }
        if self.stop_reading_after_init {
            flag("--stop-reading-after-init", None);
        }
        if let Some(ms) = self.read_slowly_after_init_ms {
            flag("--read-slowly-after-init", Some(ms.to_string()));
        }
        if self.request_flood != default.request_flood {
            flag("--request-flood", Some(self.request_flood.to_string()));
        }
        if let Some(method) = &self.request_flood_method {
            flag("--request-flood-method", Some(method.clone()));
        }
        if self.spawn_escaped_grandchild {
            flag("--spawn-escaped-grandchild", None);
        }
        if self.discover {
            flag("--discover", None);
        }
        if self.output_schema {
            flag("--output-schema", None);
        }
        if self.tasks {
            flag("--tasks", None);
        }
        if self.every_field {
            flag("--every-field", None);
        }
        if self.catalogue != default.catalogue {
            flag("--catalogue", Some(self.catalogue.to_string()));
        }
        args
    }
}

impl Exit {
    /// The process exit code the binary uses for this outcome.
    pub fn code(self) -> i32 {
        match self {
            Exit::Eof => 0,
            Exit::CrashAtInit => 3,
            Exit::CrashOnCall => 4,
            Exit::CrashAfter => 5,
            Exit::CrashTool => 6,
            Exit::ExitAfter => 7,
        }
    }
}

/// Runs the fake server until its input reaches EOF or a crash flag fires; logs go to the process's stderr.
///
/// Process-level flags (`--ignore-sigterm`, `--spawn-grandchild`, `--grandchild`) are handled by the binary, not here.
/// Crash flags make `serve` return the matching [`Exit`] instead of exiting the process.
/// With `--ignore-eof`, an EOF on `input` does not end `serve`.
///
/// # Cancel safety
/// Dropping the future stops the server: in-flight requests are aborted and `output` is dropped.
pub async fn serve<R, W>(config: FakeConfig, input: R, output: W) -> std::io::Result<Exit>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_with_log(config, input, output, tokio::io::stderr()).await
}

/// Like [`serve`], but writes the server's log lines (what the binary writes to stderr) to `log`.
///
/// # Cancel safety
/// Dropping the future stops the server: in-flight requests are aborted and `output` and `log` are dropped.
pub async fn serve_with_log<R, W, L>(
    config: FakeConfig,
    input: R,
    output: W,
    log: L,
) -> std::io::Result<Exit>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
    L: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
    let (spawn_tx, mut spawn_rx) = mpsc::unbounded_channel::<BoxedWork>();
    let shared = Arc::new(Shared {
        config,
        out: out_tx,
        exit: exit_tx,
        log: tokio::sync::Mutex::new(Box::new(log)),
        in_flight: Mutex::new(HashMap::new()),
        pending_client: Mutex::new(HashMap::new()),
        cancelled: Mutex::new(Vec::new()),
        n_calls: AtomicU64::new(0),
        n_client_requests: AtomicU64::new(0),
        stop_reading: std::sync::atomic::AtomicBool::new(false),
        close_input: std::sync::atomic::AtomicBool::new(false),
        read_slowly: std::sync::atomic::AtomicBool::new(false),
        n_flood_answers: AtomicU64::new(0),
        n_touches: AtomicU64::new(0),
        n_tool_lists: AtomicU64::new(0),
        spawn: spawn_tx,
        fake_tasks: Mutex::new(HashMap::new()),
        n_fake_tasks: AtomicU64::new(0),
        n_url_refusals: AtomicU64::new(0),
    });
    let mut tasks: JoinSet<()> = JoinSet::new();
    tasks.spawn(write_loop(output, out_rx));
    if shared.config.stderr_flood_bytes > 0 {
        tasks.spawn(flood_log(shared.clone()));
    }
    if let Some(name) = &shared.config.print_env {
        let value = std::env::var(name).unwrap_or_default();
        shared
            .log(&format!("fake-server: env {name}={value}"))
            .await;
    }

    let mut reader = Some(BufReader::new(input));
    let mut slow_input: Option<R> = None;
    let slow_read_every =
        Duration::from_millis(shared.config.read_slowly_after_init_ms.unwrap_or(0));
    let mut line = Vec::new();
    let mut reading = true;
    loop {
        if reading && shared.stop_reading.load(Ordering::Relaxed) {
            reading = false;
            shared.log("fake-server: no longer reading stdin").await;
        }
        if reader.is_some() && shared.read_slowly.load(Ordering::Relaxed) {
            // A page at a time from the input itself: what the buffer holds is dropped unread.
            slow_input = reader.take().map(BufReader::into_inner);
            reading = false;
            shared.log("fake-server: reading slowly").await;
        }
        if reader.is_some() && shared.close_input.load(Ordering::Relaxed) {
            // Dropping the reader closes the input: the client's writes now fail (EPIPE).
            reader = None;
            reading = false;
            shared.log("fake-server: input closed").await;
        }
        tokio::select! {
            Some(exit) = exit_rx.recv() => return Ok(exit),
            read = async { match reader.as_mut() {
                Some(reader) => reader.read_until(b'\n', &mut line).await,
                None => std::future::pending().await,
            } }, if reading => match read? {
                0 if shared.config.ignore_eof => {
                    reading = false;
                    let shared = shared.clone();
                    tasks.spawn(async move {
                        shared.log("fake-server: stdin closed, ignoring EOF").await;
                    });
                }
                0 => {
                    // Let the writer finish what is queued, but do not wait forever on a reader that is gone.
                    let (flushed_tx, flushed_rx) = oneshot::channel();
                    if shared.out.send(Outgoing::Flush(flushed_tx)).is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), flushed_rx).await;
                    }
                    return Ok(Exit::Eof);
                }
                _ => {
                    handle_line(&shared, &line, &mut tasks);
                    line.clear();
                }
            },
            read = async {
                tokio::time::sleep(slow_read_every).await;
                match slow_input.as_mut() {
                    Some(input) => input.read(&mut [0_u8; 4096]).await,
                    None => std::future::pending().await,
                }
            }, if slow_input.is_some() => {
                if read? == 0 && !shared.config.ignore_eof {
                    return Ok(Exit::Eof);
                }
            }
            Some(work) = spawn_rx.recv() => {
                tasks.spawn(work);
            }
            Some(_) = tasks.join_next() => {}
        }
    }
}

/// A message for the writer task.
enum Outgoing {
    /// One JSON message (or garbage), written with a trailing newline and flushed.
    Line(String),
    /// Drop the output; later lines are discarded.
    Close,
    /// Acknowledge once everything queued before has been written.
    Flush(oneshot::Sender<()>),
}

/// State shared by the reader loop and the request tasks.
struct Shared {
    config: FakeConfig,
    out: mpsc::UnboundedSender<Outgoing>,
    exit: mpsc::UnboundedSender<Exit>,
    log: tokio::sync::Mutex<Box<dyn AsyncWrite + Unpin + Send>>,
    /// Cancellation tokens of requests being handled, keyed by the JSON text of their id.
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    /// Our requests to the client that wait for a response, keyed by the JSON text of their id.
    pending_client: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Request ids of every `notifications/cancelled`, in arrival order.
    cancelled: Mutex<Vec<Value>>,
    n_calls: AtomicU64,
    n_client_requests: AtomicU64,
    /// Set by `--stop-reading-after-init` once the client is initialized.
    stop_reading: std::sync::atomic::AtomicBool,
    /// Set by the `close_input` tool: the reader loop drops the input (closing it for real).
    close_input: std::sync::atomic::AtomicBool,
    /// Set by `--read-slowly-after-init` once the client is initialized.
    read_slowly: std::sync::atomic::AtomicBool,
    /// Answers received to `--request-flood` requests.
    n_flood_answers: AtomicU64,
    /// Calls of the `touch` tool, which each change its description (so the list really changes).
    n_touches: AtomicU64,
    /// `tools/list` requests received (each page counts).
    n_tool_lists: AtomicU64,
    /// Futures to run on the server's task set (a task's work outlives its request).
    spawn: mpsc::UnboundedSender<BoxedWork>,
    /// The tasks (`--tasks`), by id.
    fake_tasks: Mutex<HashMap<String, Arc<FakeTask>>>,
    n_fake_tasks: AtomicU64,
    /// Calls of `needs_url` refused so far.
    n_url_refusals: AtomicU64,
}

/// Work handed to the server's task set.
type BoxedWork = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One task of `--tasks`.
struct FakeTask {
    id: String,
    created_at: String,
    ttl: Option<u64>,
    state: Mutex<FakeTaskState>,
    /// Signalled on every change of state.
    changed: tokio::sync::watch::Sender<()>,
    cancel: CancellationToken,
}

struct FakeTaskState {
    status: &'static str,
    message: Option<String>,
    updated_at: String,
    /// The call's answer, once it ended.
    outcome: Option<Result<Value, RpcError>>,
}

/// A JSON-RPC error response.
#[derive(Clone)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

/// The answer to a request: `None` means no response at all (the server crashed or the request was cancelled).
type Outcome = Option<Result<Value, RpcError>>;

impl Shared {
    /// Writes one log line; errors (a closed stderr) are ignored.
    async fn log(&self, line: &str) {
        self.log_raw(format!("{line}\n").as_bytes()).await;
    }

    async fn log_raw(&self, bytes: &[u8]) -> bool {
        let mut log = self.log.lock().await;
        log.write_all(bytes).await.is_ok() && log.flush().await.is_ok()
    }

    /// Logs `line` and asks the reader loop to stop with `exit`; the caller sends no response.
    async fn crash(&self, exit: Exit, line: &str) -> Outcome {
        self.log(line).await;
        let _ = self.exit.send(exit);
        None
    }

    fn send(&self, message: Value) {
        let _ = self.out.send(Outgoing::Line(message.to_string()));
    }

    fn notify(&self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn respond(&self, id: Value, result: Result<Value, RpcError>) {
        if self.config.garbage_lines {
            let _ = self.out.send(Outgoing::Line("this is not json".to_owned()));
            let _ = self.out.send(Outgoing::Line(String::new()));
        }
        let message = match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => {
                let mut object = Map::new();
                object.insert("code".to_owned(), error.code.into());
                object.insert("message".to_owned(), error.message.into());
                if let Some(data) = error.data {
                    object.insert("data".to_owned(), data);
                }
                json!({"jsonrpc": "2.0", "id": id, "error": object})
            }
        };
        self.send(message);
    }
}

fn value(flag: &str, args: &mut impl Iterator<Item = String>) -> Result<String, String> {
    args.next()
        .ok_or_else(|| format!("missing value for {flag}"))
}

fn number<T: FromStr>(flag: &str, args: &mut impl Iterator<Item = String>) -> Result<T, String> {
    let text = value(flag, args)?;
    text.parse()
        .map_err(|_| format!("invalid number for {flag}: {text}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn write_loop<W: AsyncWrite + Unpin + Send>(
    output: W,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut output = Some(output);
    while let Some(outgoing) = out_rx.recv().await {
        match outgoing {
            Outgoing::Line(mut line) => {
                let Some(writer) = output.as_mut() else {
                    continue;
                };
                line.push('\n');
                let written = writer.write_all(line.as_bytes()).await;
                if written.is_err() || writer.flush().await.is_err() {
                    // The reader is gone; keep draining the queue so senders never notice.
                    output = None;
                }
            }
            Outgoing::Close => {
                if let Some(mut writer) = output.take() {
                    let _ = writer.shutdown().await;
                }
            }
            Outgoing::Flush(flushed) => {
                let _ = flushed.send(());
            }
        }
    }
}

/// Writes `stderr_flood_bytes` bytes of ~100-byte log lines, in chunks, as fast as the log accepts them.
async fn flood_log(shared: Arc<Shared>) {
    let mut remaining = usize::try_from(shared.config.stderr_flood_bytes).unwrap_or(usize::MAX);
    let mut line_idx: u64 = 0;
    while remaining > 0 {
        let mut chunk = String::with_capacity(8 * 1024);
        while chunk.len() < 8000 && remaining > 0 {
            let mut line = format!("fake-server: flood line {line_idx:06} ");
            while line.len() < 99 {
                line.push('x');
            }
            line.truncate(remaining.min(100) - 1);
            line.push('\n');
            remaining -= line.len();
            chunk.push_str(&line);
            line_idx += 1;
        }
        if !shared.log_raw(chunk.as_bytes()).await {
            return;
        }
    }
}

fn handle_line(shared: &Arc<Shared>, line: &[u8], tasks: &mut JoinSet<()>) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let message: Value = match serde_json::from_slice(line) {
        Ok(message) => message,
        Err(error) => {
            let text = String::from_utf8_lossy(line).trim_end().to_owned();
            return spawn_log(
                shared,
                tasks,
                format!("fake-server: invalid JSON line ({error}): {text}"),
            );
        }
    };
    let Value::Object(mut object) = message else {
        return spawn_log(
            shared,
            tasks,
            format!("fake-server: not a JSON-RPC object: {message}"),
        );
    };
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let id = object.get("id").filter(|id| !id.is_null()).cloned();
    let params = object.remove("params").unwrap_or(Value::Null);
    match (method, id) {
        (Some(method), Some(id)) => {
            let token = CancellationToken::new();
            lock(&shared.in_flight).insert(id.to_string(), token.clone());
            tasks.spawn(handle_request(shared.clone(), id, method, params, token));
        }
        (Some(method), None) => handle_notification(shared, &method, &params, tasks),
        (None, Some(id)) if id.as_str().is_some_and(|id| id.starts_with("flood-")) => {
            shared.n_flood_answers.fetch_add(1, Ordering::Relaxed);
        }
        (None, Some(id)) => {
            let waiter = lock(&shared.pending_client).remove(&id.to_string());
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(Value::Object(object));
                }
                None => spawn_log(
                    shared,
                    tasks,
                    format!("fake-server: response with unknown id {id}"),
                ),
            }
        }
        (None, None) => spawn_log(
            shared,
            tasks,
            format!(
                "fake-server: message without method or id: {}",
                Value::Object(object)
            ),
        ),
    }
}

fn spawn_log(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, line: String) {
    let shared = shared.clone();
    tasks.spawn(async move { shared.log(&line).await });
}

fn handle_notification(
    shared: &Arc<Shared>,
    method: &str,
    params: &Value,
    tasks: &mut JoinSet<()>,
) {
    let config = &shared.config;
    match method {
        "notifications/initialized" => {
            if config.list_changed {
                shared.notify("notifications/tools/list_changed", json!({}));
            }
            if config.list_changed_flood > 0 {
                for _ in 0..config.list_changed_flood {
                    shared.notify("notifications/tools/list_changed", json!({}));
                }
                shared.notify(
                    "notifications/message",
                    json!({"level": "info", "logger": "fake", "data": "list_changed flood sent"}),
                );
            }
            for flood_idx in 0..config.notify_flood {
                shared.notify(
                    "notifications/message",
                    json!({"level": "info", "logger": "fake", "data": format!("flood {flood_idx}")}),
                );
            }
            if config.close_stdout_after_init {
                let _ = shared.out.send(Outgoing::Close);
            }
            if config.stop_reading_after_init {
                shared.stop_reading.store(true, Ordering::Relaxed);
            }
            if config.read_slowly_after_init_ms.is_some() {
                shared.read_slowly.store(true, Ordering::Relaxed);
            }
            for flood_idx in 0..config.request_flood {
                let method = match &config.request_flood_method {
                    Some(method) => method.as_str(),
                    None if flood_idx % 2 == 0 => "ping",
                    None => "sampling/createMessage",
                };
                shared.send(
                    json!({"jsonrpc": "2.0", "id": format!("flood-{flood_idx}"), "method": method}),
                );
            }
            if let Some(ms) = config.exit_after_ms {
                let shared = shared.clone();
                tasks.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    shared.log("fake-server: exiting on schedule").await;
                    let _ = shared.exit.send(Exit::ExitAfter);
                });
            }
        }
        "notifications/cancelled" => {
            let request_id = params.get("requestId").cloned().unwrap_or(Value::Null);
            lock(&shared.cancelled).push(request_id.clone());
            if let Some(token) = lock(&shared.in_flight).get(&request_id.to_string()) {
                token.cancel();
            }
            spawn_log(
                shared,
                tasks,
                format!("fake-server: cancelled request {request_id}"),
            );
        }
        _ => {}
    }
}

async fn handle_request(
    shared: Arc<Shared>,
    id: Value,
    method: String,
    params: Value,
    token: CancellationToken,
) {
    let outcome = tokio::select! {
        outcome = dispatch(&shared, &method, &params) => outcome,
        () = token.cancelled() => None,
    };
    lock(&shared.in_flight).remove(&id.to_string());
    if let Some(result) = outcome {
        shared.respond(id, result);
    }
}

async fn dispatch(shared: &Arc<Shared>, method: &str, params: &Value) -> Outcome {
    let config = &shared.config;
    let result = match method {
        "initialize" => return initialize(shared, params).await,
        "server/discover" if config.discover => Ok(json!({
            "resultType": "complete",
            "supportedVersions": ["2026-07-28"],
            "capabilities": server_capabilities(config),
            "instructions": "fake server for tests",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": config.name, "version": "0.1.0"}},
        })),
        "ping" => Ok(json!({})),
        "logging/setLevel" => {
            // Says so in a log message at the level set, so that relaying can be observed.
            let level = params.get("level").cloned().unwrap_or(Value::Null);
            shared.notify(
                "notifications/message",
                json!({"level": level, "logger": "fake", "data": format!("log level set to {level}")}),
            );
            Ok(json!({}))
        }
        "resources/subscribe" => {
            // Reports one update at once, so that relaying can be observed.
            let uri = params.get("uri").cloned().unwrap_or(Value::Null);
            shared.notify("notifications/resources/updated", json!({"uri": uri}));
            Ok(json!({}))
        }
        "resources/unsubscribe" => Ok(json!({})),
        "completion/complete" => Ok(complete(config, params)),
        "tools/list" => {
            shared.n_tool_lists.fetch_add(1, Ordering::Relaxed);
            paginate(
                tool_list(config, shared.n_touches.load(Ordering::Relaxed)),
                "tools",
                params,
                config.page_size,
                config.repeat_cursor,
            )
        }
        "tools/call" if config.tasks && params.get("task").is_some() => {
            return Some(create_task(shared, params))
        }
        "tools/call" => return call_tool(shared, params).await,
        "tasks/get" if config.tasks => with_task(shared, params, |task| Ok(task.to_json())),
        "tasks/list" if config.tasks => {
            let tasks: Vec<Value> = lock(&shared.fake_tasks)
                .values()
                .map(|task| task.to_json())
                .collect();
            Ok(json!({ "tasks": tasks }))
        }
        "tasks/cancel" if config.tasks => {
            let answer = with_task(shared, params, |task: &FakeTask| {
                let terminal = {
                    let mut state = lock(&task.state);
                    let terminal = matches!(state.status, "completed" | "failed" | "cancelled");
                    if !terminal {
                        state.status = "cancelled";
                        state.message = Some("The task was cancelled by request.".to_owned());
                        state.updated_at = now_rfc3339();
                    }
                    terminal
                };
                if terminal {
                    return Err(invalid_params(format!(
                        "Cannot cancel task: already in terminal status '{}'",
                        lock(&task.state).status
                    )));
                }
                task.cancel.cancel();
                task.changed.send_replace(());
                shared.notify("notifications/tasks/status", task.to_json());
                Ok(task.to_json())
            });
            if let Ok(task) = &answer {
                // On stderr too, so that a test sees it in the exit report's tail.
                let id = task["taskId"].as_str().unwrap_or_default();
                shared
                    .log(&format!("fake-server: task {id} cancelled"))
                    .await;
            }
            answer
        }
        "tasks/result" if config.tasks => return Some(task_result(shared, params).await),
        "prompts/list" => paginate(
            {
                let mut prompts = vec![json!({
                    "name": "greet",
                    "description": "Greets someone by name.",
                    "arguments": [{"name": "name", "description": "Who to greet.", "required": true}],
                })];
                if config.every_field {
                    prompts.extend(decorated(DECORATED_PROMPT));
                }
                prompts
            },
            "prompts",
            params,
            config.page_size,
            false,
        ),
        "prompts/get" if config.every_field && params["name"] == "decorated_prompt" => {
            decorated(DECORATED_PROMPT_RESULT).ok_or_else(|| invalid_params(String::new()))
        }
        "prompts/get" => prompt(params),
        "resources/list" => paginate(
            {
                let mut resources =
                    vec![json!({"uri": "mem://hello", "name": "hello", "mimeType": "text/plain"})];
                if config.every_field {
                    resources.extend(decorated(DECORATED_RESOURCE));
                }
                resources
            },
            "resources",
            params,
            config.page_size,
            false,
        ),
        "resources/templates/list" => paginate(
            {
                let mut templates = vec![json!({"uriTemplate": "mem://item/{id}", "name": "item"})];
                if config.every_field {
                    templates.extend(decorated(DECORATED_TEMPLATE));
                }
                templates
            },
            "resourceTemplates",
            params,
            config.page_size,
            false,
        ),
        "resources/read" if config.every_field && params["uri"] == "ui://decorated/app.html" => {
            decorated(DECORATED_READ).ok_or_else(|| invalid_params(String::new()))
        }
        "resources/read" => read_resource(config, params),
        _ => Err(RpcError {
            code: -32601,
            message: format!("method not found: {method}"),
            data: None,
        }),
    };
    Some(result)
}

async fn initialize(shared: &Shared, params: &Value) -> Outcome {
    let config = &shared.config;
    if config.crash_at_init {
        return shared
            .crash(Exit::CrashAtInit, "fake-server: crashing at init")
            .await;
    }
    if config.init_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.init_delay_ms)).await;
    }
    if let Some(gate) = &config.init_gate {
        let opened = async {
            while !tokio::fs::try_exists(gate).await.unwrap_or(false) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), opened)
            .await
            .is_err()
        {
            shared
                .log(&format!(
                    "fake-server: {gate} did not appear; answering anyway"
                ))
                .await;
        }
    }
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let protocol_version = match (&config.protocol_version, requested) {
        (Some(version), _) => version.clone(),
        (None, Some(requested)) if SUPPORTED_PROTOCOL_VERSIONS.contains(&requested) => {
            requested.to_owned()
        }
        _ => LATEST_PROTOCOL_VERSION.to_owned(),
    };
    Some(Ok(json!({
        "protocolVersion": protocol_version,
        "capabilities": server_capabilities(config),
        "serverInfo": if config.every_field {
            decorated(DECORATED_SERVER_INFO).unwrap_or(Value::Null)
        } else {
            json!({"name": config.name, "version": "0.1.0"})
        },
        "instructions": "fake server for tests",
    })))
}

/// What the fake server offers, in `initialize` and `server/discover`.
fn server_capabilities(config: &FakeConfig) -> Value {
    let mut capabilities = json!({
        "tools": {"listChanged": true},
        "prompts": {"listChanged": true},
        "resources": {"listChanged": true, "subscribe": true},
        "logging": {},
        "completions": {},
    });
    if config.tasks {
        capabilities["tasks"] =
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
    }
    capabilities
}

/// One of the `DECORATED_*` texts as a value (members in their order: the workspace's
/// `serde_json` keeps insertion order).
fn decorated(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// The tools that may run as tasks with `--tasks`.
const TASK_TOOLS: &[&str] = &["echo", "slow", "fail", "ask_client"];

impl FakeTask {
    fn to_json(&self) -> Value {
        let state = lock(&self.state);
        let mut task = json!({
            "taskId": self.id,
            "status": state.status,
            "createdAt": self.created_at,
            "lastUpdatedAt": state.updated_at,
            "ttl": self.ttl,
            "pollInterval": 50,
        });
        if let Some(message) = &state.message {
            task["statusMessage"] = json!(message);
        }
        task
    }

    /// Moves the task to `status` (unless it was cancelled) and tells the client.
    fn set(&self, shared: &Shared, status: &'static str, message: Option<String>) {
        {
            let mut state = lock(&self.state);
            if state.status == "cancelled" {
                return;
            }
            state.status = status;
            state.message = message;
            state.updated_at = now_rfc3339();
        }
        self.changed.send_replace(());
        shared.notify("notifications/tasks/status", self.to_json());
    }
}

/// Accepts a task-augmented `tools/call`: creates the task, runs the call on the server's task
/// set, and answers with the task at once.
fn create_task(shared: &Arc<Shared>, params: &Value) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !TASK_TOOLS.contains(&name) {
        return Err(RpcError {
            code: -32601,
            message: format!("tool {name} does not run as a task"),
            data: None,
        });
    }
    let n_task = shared.n_fake_tasks.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_rfc3339();
    let task = Arc::new(FakeTask {
        id: format!("{}-task-{n_task}", shared.config.name),
        created_at: now.clone(),
        ttl: params.pointer("/task/ttl").and_then(Value::as_u64),
        state: Mutex::new(FakeTaskState {
            status: "working",
            message: Some("The operation is now in progress.".to_owned()),
            updated_at: now,
            outcome: None,
        }),
        changed: tokio::sync::watch::Sender::new(()),
        cancel: CancellationToken::new(),
    });
    lock(&shared.fake_tasks).insert(task.id.clone(), task.clone());
    let work_task = task.clone();
    let work_shared = shared.clone();
    let mut call = params.clone();
    if let Value::Object(call) = &mut call {
        call.remove("task");
    }
    let work = async move {
        let (shared, task) = (work_shared, work_task);
        if name_of(&call) == "ask_client" {
            task.set(
                &shared,
                "input_required",
                Some("waiting for the client".to_owned()),
            );
        }
        let outcome = tokio::select! {
            outcome = call_tool(&shared, &call) => outcome,
            () = task.cancel.cancelled() => None,
        };
        let Some(outcome) = outcome else { return };
        let failed = match &outcome {
            Ok(result) => result.get("isError") == Some(&json!(true)),
            Err(_) => true,
        };
        lock(&task.state).outcome = Some(outcome);
        if failed {
            task.set(&shared, "failed", Some("the tool failed".to_owned()));
        } else {
            task.set(&shared, "completed", None);
        }
    };
    let _ = shared.spawn.send(Box::pin(work));
    Ok(json!({ "task": task.to_json() }))
}

fn name_of(params: &Value) -> &str {
    params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Answers with `answer(task)` for the task `params.taskId` names, or -32602.
fn with_task(
    shared: &Shared,
    params: &Value,
    answer: impl FnOnce(&FakeTask) -> Result<Value, RpcError>,
) -> Result<Value, RpcError> {
    let id = params
        .get("taskId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let task = lock(&shared.fake_tasks).get(id).cloned();
    match task {
        Some(task) => answer(&task),
        None => Err(invalid_params(format!(
            "Failed to retrieve task: no task {id}"
        ))),
    }
}

/// `tasks/result`: waits until the task has ended, then answers what the call answered.
async fn task_result(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let id = params
        .get("taskId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(task) = lock(&shared.fake_tasks).get(id).cloned() else {
        return Err(invalid_params(format!(
            "Failed to retrieve task: no task {id}"
        )));
    };
    let mut changed = task.changed.subscribe();
    loop {
        {
            let state = lock(&task.state);
            if state.status == "cancelled" {
                return Err(RpcError {
                    code: -32800,
                    message: "the task was cancelled".to_owned(),
                    data: None,
                });
            }
            if let Some(outcome) = &state.outcome {
                return outcome.clone().map(|mut result| {
                    result["_meta"] =
                        json!({"io.modelcontextprotocol/related-task": {"taskId": id}});
                    result
                });
            }
        }
        if changed.changed().await.is_err() {
            return Err(RpcError {
                code: -32603,
                message: "the task is gone".to_owned(),
                data: None,
            });
        }
    }
}

/// The time now as RFC 3339 (UTC, whole seconds).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The `input_required` tool (revision 2026-07-28): without `inputResponses` and `requestState`
/// in the request (or always, with `always: true`), answers `resultType: input_required` with the
/// `requests` argument as `inputRequests` and the `state` argument as `requestState` (each only if
/// given); otherwise a text result, the JSON of what came back: `inputResponses`, `requestState`
/// and the client capabilities the request declared in its `_meta`.
fn input_required(params: &Value, arguments: &Value) -> Value {
    let responses = params.get("inputResponses");
    let state = params.get("requestState");
    let always = arguments.get("always").and_then(Value::as_bool) == Some(true);
    if always || (responses.is_none() && state.is_none()) {
        let mut result = Map::new();
        result.insert("resultType".to_owned(), "input_required".into());
        if let Some(requests) = arguments.get("requests") {
            result.insert("inputRequests".to_owned(), requests.clone());
        }
        if let Some(state) = arguments.get("state") {
            result.insert("requestState".to_owned(), state.clone());
        }
        return Value::Object(result);
    }
    let capabilities = params
        .pointer("/_meta/io.modelcontextprotocol~1clientCapabilities")
        .cloned();
    let echo = json!({
        "inputResponses": responses,
        "requestState": state,
        "clientCapabilities": capabilities,
    });
    let mut result = text_result(echo.to_string());
    result["resultType"] = "complete".into();
    result
}

/// Answers `completion/complete` with one value, `<server name>:<ref name or uri>:<value>`, which
/// shows where the request went and what it named.
fn complete(config: &FakeConfig, params: &Value) -> Value {
    let reference = &params["ref"];
    let target = reference["name"]
        .as_str()
        .or_else(|| reference["uri"].as_str())
        .unwrap_or("");
    let value = params["argument"]["value"].as_str().unwrap_or("");
    json!({"completion": {"values": [format!("{}:{target}:{value}", config.name)], "hasMore": false}})
}

fn tool_list(config: &FakeConfig, n_touches: u64) -> Vec<Value> {
    let empty = json!({"type": "object", "properties": {}});
    let mut echo = tool(
        "echo",
        "Returns `text`, after `delay_ms` milliseconds if given.",
        json!({
            "type": "object",
            "properties": {"text": {"type": "string"}, "delay_ms": {"type": "number"}},
            "required": ["text"],
        }),
    );
    // The one tool that says it changes nothing (read-only policies keep only it).
    echo["annotations"] = json!({"readOnlyHint": true});
    let mut tools = vec![
        echo,
        tool(
            "add",
            "Adds `a` and `b`.",
            json!({
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            }),
        ),
        tool(
            "slow",
            "Sleeps `ms` milliseconds, reporting progress.",
            json!({"type": "object", "properties": {"ms": {"type": "number"}}, "required": ["ms"]}),
        ),
        tool("fail", "Returns a tool error.", empty.clone()),
        tool("huge", "Returns a very long text.", empty.clone()),
        tool("crash", "Kills the server.", empty.clone()),
        tool(
            "cancelled",
            "Lists the request ids of received cancellations.",
            empty.clone(),
        ),
        tool("env", "Returns the server's environment.", empty.clone()),
        tool(
            "ask_client",
            "Sends a request to the client and returns its response.",
            json!({
                "type": "object",
                "properties": {
                    "method": {"type": "string"},
                    "params": {"type": "object"},
                    "cancel_after_ms": {"type": "number"},
                    "wait_ms": {"type": "number"},
                },
                "required": ["method"],
            }),
        ),
        tool(
            "touch",
            &format!(
                "Changes this description and sends tools/list_changed; called {n_touches} times."
            ),
            empty,
        ),
    ];
    for tool_idx in 0..config.n_tools {
        tools.push(tool(
            &format!("tool_{tool_idx}"),
            "Generated tool: returns its arguments as JSON text.",
            json!({"type": "object", "additionalProperties": true}),
        ));
    }
    if config.list_changed_flood > 0 {
        tools.push(tool(
            "list_requests",
            "Returns how many tools/list requests the server received.",
            json!({"type": "object"}),
        ));
    }
    if config.every_field {
        tools.extend(decorated(DECORATED_TOOL));
    }
    for (name, description) in catalogue_tools(config.catalogue) {
        tools.push(tool(
            &name,
            &description,
            json!({"type": "object", "properties": {"id": {"type": "string"}}}),
        ));
    }
    if config.output_schema {
        let mut structured = tool(
            "structured",
            "Returns its `value` argument as structured content.",
            json!({"type": "object", "properties": {"value": {}}}),
        );
        structured["outputSchema"] = json!({
            "type": "object",
            "properties": {"sum": {"type": "number"}},
            "required": ["sum"],
        });
        tools.push(structured);
    }
    if config.tasks {
        for tool in &mut tools {
            let takes_tasks = tool["name"]
                .as_str()
                .is_some_and(|name| TASK_TOOLS.contains(&name));
            if takes_tasks {
                tool["execution"] = json!({"taskSupport": "optional"});
            }
        }
    }
    for name in &config.extra_tools {
        tools.push(tool(
            name,
            "Returns `<server name>:<tool name>`.",
            json!({"type": "object"}),
        ));
    }
    tools
}

fn tool(name: &str, description: &str, input_schema: Value) -> Value {
    json!({"name": name, "description": description, "inputSchema": input_schema, "x-fake": true})
}

/// Returns the page of `items` that `params.cursor` selects, under `field`, plus `nextCursor` when more follow.
fn paginate(
    items: Vec<Value>,
    field: &str,
    params: &Value,
    page_size: usize,
    repeat_cursor: bool,
) -> Result<Value, RpcError> {
    let cursor = params.get("cursor").and_then(Value::as_str);
    let page_idx = match cursor {
        None => 0,
        Some("again") if repeat_cursor => 0,
        Some(cursor) => match cursor.strip_prefix("page-").map(str::parse::<usize>) {
            Some(Ok(page_number)) if page_number >= 2 && page_size > 0 => page_number - 1,
            _ => return Err(invalid_params(format!("invalid cursor: {cursor}"))),
        },
    };
    let (page, next_cursor) = if page_size == 0 {
        (items, None)
    } else {
        let start = page_idx.saturating_mul(page_size);
        if page_idx > 0 && start >= items.len() {
            return Err(invalid_params(format!(
                "invalid cursor: page-{}",
                page_idx + 1
            )));
        }
        let more = start.saturating_add(page_size) < items.len();
        let page = items.into_iter().skip(start).take(page_size).collect();
        (page, more.then(|| format!("page-{}", page_idx + 2)))
    };
    let next_cursor = if repeat_cursor {
        Some("again".to_owned())
    } else {
        next_cursor
    };
    let mut result = Map::new();
    result.insert(field.to_owned(), Value::Array(page));
    if let Some(next_cursor) = next_cursor {
        result.insert("nextCursor".to_owned(), next_cursor.into());
    }
    Ok(Value::Object(result))
}

async fn call_tool(shared: &Shared, params: &Value) -> Outcome {
    let config = &shared.config;
    if config.crash_on_call {
        return shared
            .crash(Exit::CrashOnCall, "fake-server: crashing on tools/call")
            .await;
    }
    let call_idx = shared.n_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(n_calls) = config.crash_after {
        if call_idx >= n_calls {
            let line = format!("fake-server: crashing after {n_calls} tool calls");
            return shared.crash(Exit::CrashAfter, &line).await;
        }
    }
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
    let result = match name {
        "echo" => echo(&arguments).await,
        "decorated" if config.every_field => {
            decorated(DECORATED_CALL_RESULT).ok_or_else(|| invalid_params(String::new()))
        }
        "add" => add(&arguments),
        "slow" => slow(shared, params, &arguments).await,
        "fail" => Ok(json!({
            "content": [{"type": "text", "text": "tool failed on purpose"}],
            "isError": true,
        })),
        "huge" => Ok(text_result("x".repeat(config.huge_line_bytes))),
        "crash" => {
            return shared
                .crash(Exit::CrashTool, "fake-server: crashing in tool crash")
                .await
        }
        "cancelled" => {
            let ids = Value::Array(lock(&shared.cancelled).clone());
            Ok(text_result(ids.to_string()))
        }
        "env" => {
            let env: Map<String, Value> = std::env::vars_os()
                .map(|(key, value)| {
                    let value = value.to_string_lossy().into_owned();
                    (key.to_string_lossy().into_owned(), Value::String(value))
                })
                .collect();
            Ok(text_result(Value::Object(env).to_string()))
        }
        "ask_client" => ask_client(shared, &arguments).await,
        "touch" => {
            shared.n_touches.fetch_add(1, Ordering::Relaxed);
            shared.notify("notifications/tools/list_changed", json!({}));
            Ok(text_result("ok"))
        }
        // Not listed, so that tool counts stay stable; callable by name in session tests.
        "close_input" => {
            shared.close_input.store(true, Ordering::Relaxed);
            Ok(text_result("closing my input"))
        }
        "input_required" => Ok(input_required(params, &arguments)),
        // The first call is refused with -32042 (a URL elicitation is required), whose completion
        // follows 100 ms later; later calls succeed. Unlisted but for `--tool needs_url`.
        "needs_url" => {
            let first = shared.n_url_refusals.fetch_add(1, Ordering::Relaxed) == 0;
            if first {
                let elicitation_id = format!("{}-connect", config.name);
                let notifying = shared.spawn.clone();
                let out = shared.out.clone();
                let complete = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/elicitation/complete",
                    "params": {"elicitationId": elicitation_id},
                });
                let _ = notifying.send(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = out.send(Outgoing::Line(complete.to_string()));
                }));
                Err(RpcError {
                    code: -32042,
                    message: "This request requires more information.".to_owned(),
                    data: Some(json!({"elicitations": [{
                        "mode": "url",
                        "elicitationId": elicitation_id,
                        "url": format!("https://example.com/connect?id={elicitation_id}"),
                        "message": "Connect your example.com account.",
                    }]})),
                })
            } else {
                Ok(text_result("connected"))
            }
        }
        "structured" if config.output_schema => Ok(json!({
            "content": [{"type": "text", "text": arguments.get("value").cloned().unwrap_or(Value::Null).to_string()}],
            "structuredContent": arguments.get("value").cloned().unwrap_or(Value::Null),
        })),
        "flood_answers" => Ok(text_result(
            shared.n_flood_answers.load(Ordering::Relaxed).to_string(),
        )),
        "list_requests" if config.list_changed_flood > 0 => Ok(text_result(
            shared.n_tool_lists.load(Ordering::Relaxed).to_string(),
        )),
        _ if config.extra_tools.iter().any(|extra| extra == name)
            || catalogue_tools(config.catalogue)
                .iter()
                .any(|(listed, _)| listed == name) =>
        {
            Ok(text_result(format!("{}:{name}", config.name)))
        }
        _ => match name
            .strip_prefix("tool_")
            .and_then(|idx| idx.parse::<usize>().ok())
        {
            Some(tool_idx) if tool_idx < config.n_tools && name == format!("tool_{tool_idx}") => {
                Ok(text_result(arguments.to_string()))
            }
            _ => Err(invalid_params(format!("unknown tool: {name}"))),
        },
    };
    Some(result)
}

async fn echo(arguments: &Value) -> Result<Value, RpcError> {
    let text = str_argument(arguments, "text")?;
    if let Some(delay_ms) = arguments.get("delay_ms").and_then(Value::as_f64) {
        tokio::time::sleep(millis(delay_ms)).await;
    }
    Ok(text_result(text))
}

fn add(arguments: &Value) -> Result<Value, RpcError> {
    let a = number_argument(arguments, "a")?;
    let b = number_argument(arguments, "b")?;
    let sum = match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) => a.checked_add(b).map(Value::from),
        _ => None,
    }
    .unwrap_or_else(|| json!(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)));
    Ok(json!({
        "content": [{"type": "text", "text": sum.to_string()}],
        "structuredContent": {"sum": sum},
        "isError": false,
    }))
}

async fn slow(shared: &Shared, params: &Value, arguments: &Value) -> Result<Value, RpcError> {
    let ms = number_argument(arguments, "ms")?.as_f64().unwrap_or(0.0);
    let progress_token = params
        .get("_meta")
        .and_then(|meta| meta.get("progressToken"))
        .cloned();
    let n_steps: u32 = 5;
    let step = millis(ms) / n_steps;
    for step_idx in 1..=n_steps {
        tokio::time::sleep(step).await;
        if let Some(progress_token) = &progress_token {
            shared.notify(
                "notifications/progress",
                json!({
                    "progressToken": progress_token,
                    "progress": step_idx,
                    "total": n_steps,
                    "message": format!("slow step {step_idx}/{n_steps}"),
                }),
            );
        }
    }
    Ok(text_result(format!("slept {ms} ms")))
}

async fn ask_client(shared: &Shared, arguments: &Value) -> Result<Value, RpcError> {
    let method = str_argument(arguments, "method")?;
    let request_idx = shared.n_client_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let id = Value::String(format!("srv-{request_idx}"));
    let (response_tx, response_rx) = oneshot::channel();
    lock(&shared.pending_client).insert(id.to_string(), response_tx);
    let mut request = Map::new();
    request.insert("jsonrpc".to_owned(), "2.0".into());
    request.insert("id".to_owned(), id.clone());
    request.insert("method".to_owned(), method.into());
    if let Some(params) = arguments.get("params") {
        request.insert("params".to_owned(), params.clone());
    }
    shared.send(Value::Object(request));
    // `cancel_after_ms`: give up on the request after that long and tell the client
    // (`notifications/cancelled`); then wait `wait_ms` (default 1 s) for a response it must not send.
    let cancel_after = arguments
        .get("cancel_after_ms")
        .and_then(Value::as_f64)
        .map(millis);
    let mut wait = ASK_CLIENT_TIMEOUT;
    if let Some(cancel_after) = cancel_after {
        tokio::time::sleep(cancel_after).await;
        shared.notify(
            "notifications/cancelled",
            json!({"requestId": id, "reason": "the server gave up"}),
        );
        wait = arguments
            .get("wait_ms")
            .and_then(Value::as_f64)
            .map_or(Duration::from_secs(1), millis);
    }
    let response = tokio::time::timeout(wait, response_rx).await;
    lock(&shared.pending_client).remove(&id.to_string());
    // A URL elicitation is done (out of band) once accepted: say so.
    let url_id = arguments
        .pointer("/params/elicitationId")
        .filter(|_| arguments.pointer("/params/mode") == Some(&json!("url")));
    if let (Some(url_id), Ok(Ok(_))) = (url_id, &response) {
        shared.notify(
            "notifications/elicitation/complete",
            json!({"elicitationId": url_id}),
        );
    }
    match response {
        Ok(Ok(response)) => Ok(text_result(response.to_string())),
        _ => Ok(json!({
            "content": [{"type": "text", "text": format!("no response to {method} within {wait:?}")}],
            "isError": true,
        })),
    }
}

fn prompt(params: &Value) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != "greet" {
        return Err(invalid_params(format!("unknown prompt: {name}")));
    }
    let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
    let who = str_argument(&arguments, "name")?;
    Ok(json!({
        "description": "Greets someone by name.",
        "messages": [{"role": "user", "content": {"type": "text", "text": format!("Hello, {who}!")}}],
    }))
}

fn read_resource(config: &FakeConfig, params: &Value) -> Result<Value, RpcError> {
    let uri = params
        .get("uri")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = if uri == "mem://hello" {
        format!("hello from {}", config.name)
    } else if let Some(item) = uri
        .strip_prefix("mem://item/")
        .filter(|item| !item.starts_with("gone-"))
    {
        format!("item {item}")
    } else {
        // Not found (`mem://item/gone-…` too), the URI echoed in the error's data.
        return Err(RpcError {
            code: -32002,
            message: "resource not found".to_owned(),
            data: Some(json!({"uri": uri})),
        });
    };
    Ok(json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]}))
}

fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": false})
}

fn invalid_params(message: String) -> RpcError {
    RpcError {
        code: -32602,
        message,
        data: None,
    }
}

fn str_argument<'a>(arguments: &'a Value, key: &str) -> Result<&'a str, RpcError> {
    arguments
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params(format!("missing string argument: {key}")))
}

fn number_argument<'a>(
    arguments: &'a Value,
    key: &str,
) -> Result<&'a serde_json::Number, RpcError> {
    match arguments.get(key) {
        Some(Value::Number(number)) => Ok(number),
        _ => Err(invalid_params(format!("missing number argument: {key}"))),
    }
}

fn millis(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::ZERO)
}
