//! The `mcp-host` command: run many MCP servers, list and call what they offer, or serve them all
//! as one MCP server.
//!
//! This is the top of the workspace, a thin binary over the libraries: it reads the configuration
//! file (the `mcpServers` object used by Claude Desktop and Cursor), drives an `McpHost` (served
//! by `mcp_gateway::Gateway` in `serve`), and prints results on stdout. Logs go to stderr
//! through `tracing`; stdout carries only results (and in `serve`, only protocol).
//!
//! **Architecture Invariant:** nothing but results and protocol messages is written to stdout.

mod config;
mod demo_server;
mod interact;
mod login;
mod output;
mod signals;
mod systemd;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use mcp_gateway::policy::Policies;
use mcp_gateway::{
    AuditLog, ClientRelay, Gateway, HttpListener, HttpOptions, Stop, ToolMode, ENDPOINT,
};
use mcp_host::{AgentScope, ClientState, Format, HostOptions, McpHost, TaskCall};
use mcp_host_foundation::{ClientConfig, SecurityManager};
use mcp_session::RequestOptions;
use serde_json::{Map, Value};

use crate::signals::Signals;
use tokio::signal::unix::{signal, SignalKind};

/// Exit code when a tool ran but reported a failure (`isError`).
const EXIT_TOOL_ERROR: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-host",
    version,
    about = "Run many MCP servers at once; list and call their tools, prompts and resources, or serve them all as one MCP server.",
    long_about = "Run many MCP servers at once; list and call their tools, prompts and resources, or serve them all as one MCP server.\n\n\
The configuration is the `mcpServers` JSON object used by Claude Desktop and Cursor (VS Code's `servers` works too), \
read from --config, else from $MCP_HOST_CONFIG, else an embedded demo of two built-in servers. \
Every server runs as a child process in its own process group and is stopped cleanly when the command ends: \
its input is closed, then SIGTERM, then SIGKILL, each after a grace period.\n\n\
Names are namespaced as <server>__<name>. Logs go to stderr (--log-level, or RUST_LOG); stdout carries only results.",
    after_help = "Exit status: 0 on success, 3 when a called tool reported an error, 1 on any other failure."
)]
struct Cli {
    /// The configuration file (JSON with an `mcpServers` object).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every server and show its state, protocol, implementation, counts and startup time.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List every tool of every server under its namespaced name.
    Tools {
        /// Print a JSON array of {name, server, originalName, description, inputSchema, …}.
        #[arg(long)]
        json: bool,
        /// Print the tools in the shape an LLM API takes: `openai` (chat completions `tools`),
        /// `anthropic` (messages `tools`) or `gemini` (`tools` with `functionDeclarations`).
        #[arg(long, value_name = "API", value_parser = ["openai", "anthropic", "gemini"], conflicts_with = "json")]
        format: Option<String>,
    },
    /// Call a tool: `mcp-host call demo__echo '{"text":"hi"}'`.
    Call {
        /// The namespaced tool name (<server>__<tool>).
        name: String,
        /// The arguments, as a JSON object.
        args: Option<String>,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
        /// Give up after this many milliseconds (default: the server's callTimeoutMs; with
        /// --task, for the task to end: 10 minutes).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// Run the call as a task when the server and the tool support tasks (2025-11-25),
        /// showing its status and progress on stderr until it ends; otherwise call normally.
        #[arg(long)]
        task: bool,
    },
    /// List every prompt under its namespaced name.
    Prompts {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List every resource with the server that offers it.
    Resources {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Render a prompt: `mcp-host get-prompt demo__summarize '{"topic":"tides"}'`.
    GetPrompt {
        /// The namespaced prompt name (<server>__<prompt>).
        name: String,
        /// The arguments, as a JSON object of strings.
        args: Option<String>,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a resource by URI (routed to the server that lists it).
    ReadResource {
        /// The resource URI.
        uri: String,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Be an MCP server that aggregates every configured server (a gateway), on stdio or HTTP.
    ///
    /// Ends on end of input, Ctrl-C or SIGTERM with an orderly shutdown of every server;
    /// a second Ctrl-C or SIGTERM kills them all at once.
    ///
    /// With --http ADDR the gateway speaks MCP's Streamable HTTP transport (revision 2025-11-25)
    /// instead of stdio, at http://ADDR/mcp: every client gets its own session (Mcp-Session-Id),
    /// requests are answered as SSE streams (or JSON), and a GET opens the session's stream of
    /// list_changed notifications. Once the servers are up, the line `listening on
    /// http://HOST:PORT/mcp` (the port actually bound, so port 0 works) is written to stderr
    /// whatever the log level. End of input does not stop this mode; Ctrl-C or SIGTERM does.
    ///
    /// Security: a bare PORT binds 127.0.0.1. A HOST that is not a loopback address is refused
    /// unless --bearer-token-env names a variable holding a token, which every request must then
    /// carry as `Authorization: Bearer <token>` (401 otherwise). Requests with an Origin header
    /// that is not localhost, 127.0.0.1 or [::1] (or an --allow-origin) get 403, against DNS
    /// rebinding. Bodies are limited to 16 MiB, sessions to 256, and a session idle for 30
    /// minutes is ended.
    ///
    /// Beside /mcp: GET /healthz, /readyz (503 naming the required servers that are not
    /// ready), /metrics (Prometheus) and the status page (/ and /status.json). With the
    /// gateway on stdio, --metrics ADDR serves them.
    ///
    /// The configuration file is watched and reloaded on change or on SIGHUP: new servers
    /// start, removed ones stop, changed ones restart, the others are left alone; an invalid
    /// file changes nothing (one error is logged). Under systemd (NOTIFY_SOCKET) it sends
    /// READY=1 once it serves.
    #[command(verbatim_doc_comment)]
    Serve {
        /// Bound on the orderly shutdown; servers still running after it are killed.
        #[arg(long, value_name = "MS", default_value_t = 1500)]
        shutdown_timeout_ms: u64,
        /// Serve over Streamable HTTP at ADDR (PORT or HOST:PORT; endpoint /mcp) instead of stdio.
        #[arg(long, value_name = "ADDR", group = "listen")]
        http: Option<String>,
        /// Require `Authorization: Bearer <token>`, the token read from the environment variable
        /// NAME (never from the command line). Needed to bind a non-loopback address.
        #[arg(long, value_name = "NAME", requires = "listen")]
        bearer_token_env: Option<String>,
        /// Also accept requests whose Origin header is ORIGIN (e.g. https://app.example.com);
        /// repeatable.
        #[arg(long, value_name = "ORIGIN", requires = "listen")]
        allow_origin: Vec<String>,
        /// With the gateway on stdio: serve /healthz, /readyz, /metrics (Prometheus) and the
        /// status page (/, /status.json) over HTTP at ADDR (PORT or HOST:PORT). With --http they
        /// are always served beside /mcp.
        #[arg(long, value_name = "ADDR", conflicts_with = "http", group = "listen")]
        metrics: Option<String>,
        /// Let /healthz and /readyz answer without the bearer token, for an orchestrator's
        /// probes (everything else still needs it).
        #[arg(long, requires = "listen")]
        probes_without_auth: bool,
        /// With the gateway on stdio: serve its client as the client NAME of `gateway.clients`
        /// in the configuration (its servers, tools, quotas and audit setting).
        #[arg(long, value_name = "NAME", conflicts_with = "http")]
        client: Option<String>,
        /// Seal each HTTP session's state into its Mcp-Session-Id with the key(s) in the
        /// environment variable NAME, so that any replica behind a load balancer serves any
        /// session: `ID:KEY[,ID:KEY…]` (KEY 32 bytes in base64 or hex; the first seals, all
        /// open, for rotation). Every replica gets the same value.
        #[arg(long, value_name = "NAME", requires = "http")]
        session_key_env: Option<String>,
        /// Most HTTP sessions at once (503 above).
        #[arg(long, value_name = "N", default_value_t = 256, requires = "http")]
        max_sessions: usize,
        /// Most HTTP sessions from one client address (0: no limit of its own). Behind a load
        /// balancer every session comes from the balancer's address: raise it or use 0.
        #[arg(long, value_name = "N", default_value_t = 128, requires = "http")]
        max_sessions_per_peer: usize,
        /// On SIGTERM, how long requests in flight may finish (no new session is taken and
        /// /readyz answers 503 meanwhile) before the servers are stopped.
        #[arg(long, value_name = "MS", default_value_t = 5000, requires = "http")]
        drain_timeout_ms: u64,
        /// Write one JSON line per call (client, session, method, server, tool, outcome,
        /// duration, argument size) to FILE; rotated at 100 MiB (the previous kept as FILE.1),
        /// reopened on SIGHUP.
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
        /// What tools/list shows: every tool (all), or only find_tools and call_tool (search),
        /// which search the tools and call them. Overrides `gateway.toolMode` of the
        /// configuration file, also after reloads; a client's own `toolMode` still applies.
        #[arg(long, value_name = "MODE", value_parser = ["all", "search"])]
        tool_mode: Option<String>,
    },
    /// Log in to a remote server that asks for OAuth: `mcp-host login github`.
    ///
    /// Runs the server's grant. For the authorization code flow (the default) it listens on
    /// 127.0.0.1:<port>/callback, prints the authorization URL on stderr, opens the browser
    /// (unless --no-browser, or there is no display), and waits for the redirect. The tokens are
    /// kept in $XDG_DATA_HOME/mcp-host/oauth (else ~/.local/share/mcp-host/oauth), one file per
    /// server with mode 0600, and refreshed by every later command.
    #[command(verbatim_doc_comment)]
    Login {
        /// The server's id in the configuration.
        server: String,
        /// Print the URL only; open no browser (for SSH sessions).
        #[arg(long)]
        no_browser: bool,
        /// Give up when the browser has not come back after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Forget the OAuth tokens of a remote server: `mcp-host logout github`.
    Logout {
        /// The server's id in the configuration.
        server: String,
    },
    /// Run the built-in demo MCP server on stdio (tools echo, add, sleep; a resource; a prompt).
    DemoServer {
        /// The server's name.
        #[arg(long, default_value = "demo")]
        name: String,
    },
    /// Print the JSON Schema of the configuration file.
    ConfigSchema,
    /// Check the configuration file without starting anything: its JSON, every field (named by
    /// its path when invalid) and the gateway's clients. Exit 0 when it is valid.
    CheckConfig,
    /// Print a shell completion script: `mcp-host completions bash > /etc/bash_completion.d/mcp-host`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `mcp-host man | man -l -`.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report_error(&anyhow::Error::new(error).context("cannot start the async runtime"));
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Anything still running (it should not be) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            report_error(&error);
            ExitCode::from(1)
        }
    }
}

fn report_error(error: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error:#}");
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(
        cli.command,
        Command::DemoServer { .. }
            | Command::ConfigSchema
            | Command::CheckConfig
            | Command::Completions { .. }
            | Command::Man
    ) {
        // Adopt helpers that escape their server's process group, so that `stop` can reach them.
        if let Err(error) = mcp_transport::orphans::become_child_subreaper() {
            tracing::debug!(error = %error, "cannot become a child subreaper");
        }
    }
    match cli.command {
        Command::DemoServer { name } => {
            demo_server::run(&name).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigSchema => {
            let schema = schemars::schema_for!(ConfigFile);
            print_stdout(&format!("{}\n", serde_json::to_string_pretty(&schema)?))
        }
        Command::CheckConfig => {
            let loaded = config::load(cli.config.as_deref())?;
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Policies::from_settings(&loaded.gateway, |name| std::env::var(name).ok()).map_err(
                |error| anyhow::anyhow!("invalid configuration file {}: {error}", loaded.source),
            )?;
            print_stdout(&format!(
                "{} is valid: {} servers, {} gateway clients{}\n",
                loaded.source,
                loaded.clients.len(),
                loaded.gateway.clients.len(),
                if loaded.gateway.oauth.is_some() {
                    ", OAuth"
                } else {
                    ""
                }
            ))
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "mcp-host", &mut script);
            print_stdout(&String::from_utf8_lossy(&script))
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the manual page")?;
            print_stdout(&String::from_utf8_lossy(&page))
        }
        Command::Status { json } => {
            let clients = config::load(cli.config.as_deref())?.clients;
            let host = start(cli.config, None, false).await?;
            let statuses = host.status();
            stop(&host).await;
            // Read after the servers ran: a refresh refused meanwhile shows as `needs login`.
            let auth = login::states(&clients).await;
            let text = if json {
                let mut rows = serde_json::to_value(&statuses)?;
                for row in rows.as_array_mut().into_iter().flatten() {
                    let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
                    if let Some((_, status)) = auth.iter().find(|(server, _)| server == id) {
                        row["auth"] = login::state_json(status);
                    }
                }
                format!("{}\n", serde_json::to_string_pretty(&rows)?)
            } else {
                let mut text = output::status_table(&statuses);
                text.push_str(&login::state_lines(&auth));
                text
            };
            print_stdout(&text)
        }
        Command::Login {
            server,
            no_browser,
            timeout_secs,
        } => {
            let clients = config::load(cli.config.as_deref())?.clients;
            let timeout = Duration::from_secs(timeout_secs.max(1));
            let line = login::login(&clients, &server, no_browser, timeout).await?;
            print_stdout(&line)
        }
        Command::Logout { server } => {
            let clients = config::load(cli.config.as_deref())?.clients;
            print_stdout(&login::logout(&clients, &server).await?)
        }
        Command::Tools { json, format } => {
            let host = start(cli.config, None, true).await?;
            let rows = output::tool_rows(&host);
            let format = format.as_deref().and_then(Format::from_name);
            let text = if let Some(format) = format {
                let tools = host.tools_for(format, &AgentScope::all());
                let tools = match format {
                    Format::Gemini => serde_json::json!([{ "functionDeclarations": tools }]),
                    Format::OpenAi | Format::Anthropic => Value::Array(tools),
                };
                format!("{}\n", serde_json::to_string_pretty(&tools)?)
            } else if json {
                format!("{}\n", serde_json::to_string_pretty(&rows)?)
            } else {
                output::tools_table(&rows)
            };
            stop(&host).await;
            print_stdout(&text)
        }
        Command::Call {
            name,
            args,
            json,
            timeout_ms,
            task,
        } => {
            let arguments = parse_arguments(args.as_deref())?;
            // A terminal can show a link, not a form: URL-mode elicitation only.
            let elicitations = interact::UrlElicitations::new();
            let options = HostOptions {
                client_requests: Some(elicitations.clone()),
                ..HostOptions::default()
            };
            let host = start_with(cli.config, Some(&name), true, options).await?;
            let timeout = timeout_ms.map(Duration::from_millis);
            let result = call(&host, &name, arguments, timeout, task, &elicitations).await;
            stop(&host).await;
            let result = result.with_context(|| format!("calling `{name}` failed"))?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&result)?)
            } else {
                output::call_result_text(&result)
            };
            print_stdout(&text)?;
            Ok(if result.is_tool_error() {
                ExitCode::from(EXIT_TOOL_ERROR)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Prompts { json } => {
            let host = start(cli.config, None, true).await?;
            let prompts = host.list_prompts(&AgentScope::all());
            stop(&host).await;
            let text = if json {
                let rows: Vec<Value> = prompts
                    .iter()
                    .map(|registered| {
                        let mut prompt =
                            serde_json::to_value(&registered.item).unwrap_or(Value::Null);
                        prompt["originalName"] = prompt["name"].clone();
                        prompt["name"] = Value::String(registered.name.clone());
                        prompt["server"] = Value::String(registered.client.to_string());
                        prompt
                    })
                    .collect();
                format!("{}\n", serde_json::to_string_pretty(&rows)?)
            } else {
                let rows: Vec<Vec<String>> = prompts
                    .iter()
                    .map(|registered| {
                        let arguments: Vec<String> = registered
                            .item
                            .arguments
                            .iter()
                            .flatten()
                            .map(|argument| argument.name.clone())
                            .collect();
                        vec![
                            registered.name.clone(),
                            registered.client.to_string(),
                            arguments.join(","),
                            output::one_line(
                                registered.item.description.as_deref().unwrap_or(""),
                                60,
                            ),
                        ]
                    })
                    .collect();
                output::table(&["PROMPT", "SERVER", "ARGUMENTS", "DESCRIPTION"], &rows)
            };
            print_stdout(&text)
        }
        Command::Resources { json } => {
            let host = start(cli.config, None, true).await?;
            let resources = host.list_resources(&AgentScope::all());
            stop(&host).await;
            let text = if json {
                let rows: Vec<Value> = resources
                    .iter()
                    .map(|(client, resource)| {
                        let mut row = serde_json::to_value(resource).unwrap_or(Value::Null);
                        row["server"] = Value::String(client.to_string());
                        row
                    })
                    .collect();
                format!("{}\n", serde_json::to_string_pretty(&rows)?)
            } else {
                let rows: Vec<Vec<String>> = resources
                    .iter()
                    .map(|(client, resource)| {
                        vec![
                            resource.uri.clone(),
                            client.to_string(),
                            resource.mime_type.clone().unwrap_or_default(),
                            output::one_line(
                                resource.description.as_deref().unwrap_or(&resource.name),
                                60,
                            ),
                        ]
                    })
                    .collect();
                output::table(&["URI", "SERVER", "MIME TYPE", "DESCRIPTION"], &rows)
            };
            print_stdout(&text)
        }
        Command::GetPrompt { name, args, json } => {
            let arguments = parse_arguments(args.as_deref())?;
            let host = start(cli.config, Some(&name), true).await?;
            let result = host.get_prompt(&name, arguments, &AgentScope::all()).await;
            stop(&host).await;
            let result = result.with_context(|| format!("getting prompt `{name}` failed"))?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&result)?)
            } else {
                output::prompt_text(&result)
            };
            print_stdout(&text)
        }
        Command::ReadResource { uri, json } => {
            let host = start(cli.config, None, true).await?;
            let result = host.read_resource(&uri, &AgentScope::all()).await;
            stop(&host).await;
            let result = result.with_context(|| format!("reading `{uri}` failed"))?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&result)?)
            } else {
                output::resource_text(&result)
            };
            print_stdout(&text)
        }
        Command::Serve {
            shutdown_timeout_ms,
            http,
            bearer_token_env,
            allow_origin,
            metrics,
            probes_without_auth,
            client,
            audit_log,
            session_key_env,
            max_sessions,
            max_sessions_per_peer,
            drain_timeout_ms,
            tool_mode,
        } => {
            let listen = match (http, metrics) {
                (Some(addr), _) => Some(Listen::Mcp(addr)),
                (None, Some(addr)) => Some(Listen::Observability(addr)),
                (None, None) => None,
            };
            let options = match &listen {
                Some(Listen::Mcp(addr) | Listen::Observability(addr)) => {
                    let mut options = http_options(addr.clone(), bearer_token_env, allow_origin)?;
                    options.probes_without_auth = probes_without_auth;
                    options.max_sessions = max_sessions;
                    options.max_sessions_per_peer = max_sessions_per_peer;
                    options.drain_timeout = Duration::from_millis(drain_timeout_ms);
                    if let Some(name) = session_key_env {
                        let text = std::env::var(&name).ok().filter(|text| !text.trim().is_empty()).with_context(|| {
                            format!("--session-key-env: the variable `{name}` is not set or is empty")
                        })?;
                        let keys = mcp_gateway::SessionKeys::parse(&text)
                            .map_err(|why| anyhow::anyhow!("--session-key-env {name}: {why}"))?;
                        options.session_keys = Some(Arc::new(keys));
                    }
                    Some(options)
                }
                // Clap refuses the security options without --http or --metrics.
                None => None,
            };
            let http = options.map(|options| match listen {
                Some(Listen::Observability(_)) => (false, options),
                _ => (true, options),
            });
            let tool_mode = tool_mode
                .map(|mode| mode.parse::<ToolMode>())
                .transpose()
                .map_err(|why| anyhow::anyhow!("--tool-mode: {why}"))?;
            let identity = ServeIdentity {
                stdio_client: client,
                audit_log,
                tool_mode,
            };
            serve(
                cli.config,
                Duration::from_millis(shutdown_timeout_ms),
                http,
                identity,
            )
            .await
        }
    }
}

/// `call`: the tool call (as a task with `task`), showing URL elicitations and progress on
/// stderr; a call refused with -32042 is tried once more after its URL elicitations completed.
async fn call(
    host: &McpHost,
    name: &str,
    arguments: Option<Map<String, Value>>,
    timeout: Option<Duration>,
    task: bool,
    elicitations: &interact::UrlElicitations,
) -> Result<mcp_session::protocol::CallToolResult, mcp_host::Error> {
    let scope = AgentScope::all();
    let options = RequestOptions {
        timeout,
        on_progress: Some(Arc::new(interact::print_progress)),
    };
    // How long to wait for a task, or for a person to complete a page.
    let bound = timeout.unwrap_or(Duration::from_secs(600));
    let mut retried = false;
    loop {
        let notifications = host.subscribe_notifications();
        // Subscribed before the call, so that no completion after a -32042 is missed.
        let completions = host.subscribe_notifications();
        let attempt = async {
            if !task {
                return host
                    .call_tool_with(name, arguments.clone(), &scope, &options)
                    .await;
            }
            match host
                .call_tool_as_task(name, arguments.clone(), &scope, None, &options)
                .await?
            {
                TaskCall::Task(created) => {
                    interact::follow_task(host, &created, elicitations, bound).await
                }
                TaskCall::Done(result) => {
                    tracing::warn!("`{name}` does not run as a task (its server or the tool does not support tasks); it was called normally");
                    Ok(result)
                }
            }
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = interact::follow(notifications, elicitations, None) => unreachable!("following never ends"),
        };
        let required = match &outcome {
            Err(mcp_host::Error::Call { client, source })
                if !retried && source.rpc_code() == Some(interact::URL_ELICITATION_REQUIRED) =>
            {
                let data = match &**source {
                    mcp_session::Error::Rpc {
                        data: Some(data), ..
                    } => data.clone(),
                    _ => Value::Null,
                };
                Some((client.clone(), data))
            }
            _ => None,
        };
        let Some((client, data)) = required else {
            return outcome;
        };
        let completed =
            interact::await_required_elicitations(completions, elicitations, &client, &data, bound)
                .await;
        if !completed {
            return outcome;
        }
        retried = true;
    }
}

/// The configuration file, for `config-schema`.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // Only its schema is used.
struct ConfigFile {
    /// The servers to run, by id (letters, digits, `_`, `-`, `.`). The id is the key; an `id`
    /// field inside an entry is ignored.
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, ClientConfig>,
    /// The gateway's clients (`serve`): their credentials, what each may use, their quotas.
    gateway: Option<mcp_gateway::policy::GatewaySettings>,
}

/// Stops every server, then kills whatever escaped their process groups and was adopted by us.
async fn stop(host: &McpHost) {
    host.shutdown().await;
    sweep_orphans().await;
}

async fn sweep_orphans() {
    let killed = mcp_transport::orphans::kill_remaining_children(Duration::from_secs(2)).await;
    if !killed.is_empty() {
        tracing::warn!(
            ?killed,
            "killed processes that had escaped their server's process group"
        );
    }
}

/// Writes to stdout; a closed pipe (`mcp-host tools | head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(anyhow::Error::new(error).context("cannot write to stdout")),
    }
}

fn parse_arguments(text: Option<&str>) -> anyhow::Result<Option<Map<String, Value>>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match serde_json::from_str(text).context("the arguments are not valid JSON")? {
        Value::Object(map) => Ok(Some(map)),
        _ => bail!("the arguments must be a JSON object, like '{{\"text\": \"hi\"}}'"),
    }
}

/// Loads the configuration and starts the servers (only the one a namespaced `name` points to,
/// when it points to exactly one).
async fn start(
    config_path: Option<PathBuf>,
    name: Option<&str>,
    warn_failures: bool,
) -> anyhow::Result<McpHost> {
    start_with(config_path, name, warn_failures, HostOptions::default()).await
}

async fn start_with(
    config_path: Option<PathBuf>,
    name: Option<&str>,
    warn_failures: bool,
    options: HostOptions,
) -> anyhow::Result<McpHost> {
    let loaded = config::load(config_path.as_deref())?;
    start_loaded(loaded, name, warn_failures, options).await
}

/// Starts the servers of a loaded configuration (only the one a namespaced `name` points to,
/// when it points to exactly one).
async fn start_loaded(
    loaded: config::Loaded,
    name: Option<&str>,
    warn_failures: bool,
    options: HostOptions,
) -> anyhow::Result<McpHost> {
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    tracing::debug!(source = %loaded.source, n_servers = loaded.clients.len(), "configuration loaded");
    let mut clients = loaded.clients;
    if let Some(name) = name {
        // Only a server whose names are always namespaced keeps its names whoever else runs:
        // with "auto", `a__search` exists only while another server has a `search` too.
        let matching: Vec<ClientConfig> = clients
            .iter()
            .filter(|client| {
                client.namespace == mcp_host::Namespace::Always
                    && name.starts_with(&format!(
                        "{}{}",
                        mcp_host::naming::sanitize(&client.id),
                        mcp_host::naming::SEPARATOR
                    ))
            })
            .cloned()
            .collect();
        if !matching.is_empty() {
            clients = matching;
        }
    }
    let n_servers = clients.len();
    let host = McpHost::with_options(clients, SecurityManager::new(), options)
        .context("the configuration is invalid")?;
    let initialized = if std::io::stderr().is_terminal() && n_servers > 0 {
        let events = host.subscribe_status();
        let initialized = tokio::select! {
            initialized = host.initialize() => initialized,
            () = show_startup_progress(events, n_servers) => unreachable!("the progress display never ends"),
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K");
        initialized
    } else {
        host.initialize().await
    };
    // The error names the server and says why; the context says what follows from it.
    let report = initialized.context("cannot run without a required server")?;
    if warn_failures {
        // The library returns these without logging them: one line each, said once.
        for (_, error) in &report.failed {
            tracing::warn!("{}; going on without it", mcp_host::error_chain(error));
        }
    }
    Ok(host)
}

/// Shows a one-line startup progress display on stderr until dropped by the caller's `select!`.
async fn show_startup_progress(
    mut events: tokio::sync::broadcast::Receiver<mcp_host::StatusEvent>,
    n_servers: usize,
) {
    let started = std::time::Instant::now();
    let mut states: BTreeMap<String, ClientState> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => { states.insert(event.client.to_string(), event.state); }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            },
            _ = tick.tick() => {}
        }
        let n_ready = states
            .values()
            .filter(|state| **state == ClientState::Ready)
            .count();
        let n_failed = states
            .values()
            .filter(|state| **state == ClientState::Failed)
            .count();
        let waiting: Vec<&str> = states
            .iter()
            .filter(|(_, state)| **state == ClientState::Starting)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[2Kstarting {n_servers} servers: {n_ready} ready, {n_failed} failed, {:.1} s{}{}",
            started.elapsed().as_secs_f64(),
            if waiting.is_empty() { "" } else { "; waiting for " },
            waiting.join(", ")
        );
        let _ = stderr.flush();
    }
}

/// The options of `serve --http`; the bearer token comes from the environment, never argv.
fn http_options(
    addr: String,
    bearer_token_env: Option<String>,
    allowed_origins: Vec<String>,
) -> anyhow::Result<HttpOptions> {
    let mut options = HttpOptions::new(addr);
    options.allowed_origins = allowed_origins;
    if let Some(name) = bearer_token_env {
        let token = std::env::var(&name)
            .ok()
            .filter(|token| !token.trim().is_empty())
            .with_context(|| {
                format!("--bearer-token-env: the variable `{name}` is not set or is empty")
            })?;
        options.bearer_token = Some(token.trim().to_owned());
    }
    Ok(options)
}

/// Who `serve`'s clients are and where their calls are audited.
struct ServeIdentity {
    stdio_client: Option<String>,
    audit_log: Option<PathBuf>,
    tool_mode: Option<ToolMode>,
}

/// How large the audit log grows before it is rotated.
const AUDIT_LOG_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// What `serve` listens on besides stdio.
enum Listen {
    /// `--http ADDR`: the MCP endpoint and the observability routes.
    Mcp(String),
    /// `--metrics ADDR`: only the observability routes; the MCP client is on stdio.
    Observability(String),
}

/// `http` is `(serve MCP over it, its options)`: without MCP over HTTP, the client is on stdio
/// and the listener only serves the probes, metrics and status page.
async fn serve(
    config_path: Option<PathBuf>,
    shutdown_timeout: Duration,
    http: Option<(bool, HttpOptions)>,
    identity: ServeIdentity,
) -> anyhow::Result<ExitCode> {
    // The servers' sampling and elicitation requests go to the gateway's own client.
    let relay = ClientRelay::new();
    let options = HostOptions {
        shutdown_deadline: shutdown_timeout,
        client_requests: Some(relay.clone()),
        ..HostOptions::default()
    };
    let mut signals = Signals::new().context("cannot listen for signals")?;
    let loaded = config::load(config_path.as_deref())?;
    let policies = Policies::from_settings(&loaded.gateway, |name| std::env::var(name).ok())
        .map_err(|error| {
            anyhow::anyhow!("invalid configuration file {}: {error}", loaded.source)
        })?;
    if let Some(name) = &identity.stdio_client {
        if policies.by_name(name).is_none() {
            bail!(
                "--client {name}: no client `{name}` in `gateway.clients` of {}",
                loaded.source
            );
        }
    }
    // Bind before starting any server, so that a taken port fails fast.
    let (mcp_over_http, listener) = match http {
        Some((mcp_over_http, mut http)) => {
            http.authenticated = policies.requires_credentials();
            (mcp_over_http, Some(HttpListener::bind(http).await?))
        }
        None => (false, None),
    };
    let config_file = config::file(config_path.as_deref());
    let host = Arc::new(start_loaded(loaded, None, true, options).await?);
    let mut builder = Gateway::builder(host.clone())
        .relay(relay)
        .policies(policies);
    if let Some(name) = identity.stdio_client {
        builder = builder.stdio_client(name);
    }
    if let Some(mode) = identity.tool_mode {
        builder = builder.tool_mode(mode);
    }
    if let Some(path) = identity.audit_log {
        let audit = AuditLog::to_file(path.clone(), AUDIT_LOG_MAX_BYTES)
            .with_context(|| format!("--audit-log: cannot open {}", path.display()))?;
        builder = builder.audit(Arc::new(audit));
    }
    if let Some(path) = config_file {
        builder = builder.config_file(path);
    }
    let gateway = builder.build();
    let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let reload_on_hangup = async {
        while hangups.recv().await.is_some() {
            gateway.reopen_audit_log();
            match gateway.reload_handle() {
                Some(reload) => {
                    tracing::info!("SIGHUP: reloading the configuration file");
                    reload.reload_now();
                }
                None => tracing::warn!(
                    "SIGHUP: no configuration file to reload (the embedded demo runs)"
                ),
            }
        }
        std::future::pending::<()>().await;
    };
    systemd::notify("READY=1");
    let serving = async {
        match listener {
            Some(listener) if mcp_over_http => {
                announce(listener.local_addr()?, ENDPOINT);
                gateway
                    .serve_http(listener, async {
                        signals.next().await;
                    })
                    .await
                    .map(|()| Stop::Requested)
            }
            Some(listener) => {
                announce(listener.local_addr()?, "/metrics");
                let observing = gateway.serve_observability(listener, std::future::pending());
                let serving = gateway.serve_stdio(async {
                    signals.next().await;
                });
                tokio::select! {
                    served = serving => served,
                    observed = observing => observed.map(|()| Stop::Requested),
                }
            }
            None => {
                gateway
                    .serve_stdio(async {
                        signals.next().await;
                    })
                    .await
            }
        }
    };
    let served = tokio::select! {
        served = serving => served,
        () = reload_on_hangup => unreachable!("the SIGHUP loop never ends"),
    };
    let stop = match served {
        Ok(stop) => stop,
        Err(error) => {
            host.shutdown().await;
            sweep_orphans().await;
            return Err(error.into());
        }
    };
    tracing::info!(?stop, "stopping every server");
    systemd::notify("STOPPING=1");
    tokio::select! {
        report = host.shutdown() => {
            tracing::info!(n_exits = report.exits.len(), killed = ?report.killed, "all servers stopped");
            sweep_orphans().await;
            Ok(ExitCode::SUCCESS)
        }
        code = signals.next() => {
            let killed = host.kill_all();
            tracing::warn!(?killed, "second signal: killed every server");
            sweep_orphans().await;
            Ok(ExitCode::from(code))
        }
    }
}

/// Tells scripts and tests the endpoint (with the port actually bound, so port 0 works), on
/// stderr whatever the log level.
fn announce(local_addr: std::net::SocketAddr, path: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "listening on http://{local_addr}{path}");
    let _ = stderr.flush();
}
