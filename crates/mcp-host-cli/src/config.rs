//! Reading the configuration file: the `mcpServers` object of Claude Desktop and Cursor (or VS
//! Code's `servers`), with local (`command`) and remote (`url`) servers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use mcp_host_foundation::ClientConfig;
use serde_json::{Map, Value};

/// The fields a server entry may have; anything else is reported as unknown.
const KNOWN_FIELDS: &[&str] = &[
    "command",
    "url",
    "headers",
    "args",
    "env",
    "cwd",
    "roots",
    "startupTimeoutMs",
    "callTimeoutMs",
    "shutdownGraceMs",
    "required",
    "tools",
    "exclude",
    "namespace",
    "protocol",
    "restart",
    // VS Code's `servers` entries carry a transport type: `stdio`, or `http` for a `url`.
    "type",
    // Claude Desktop and others use these for documentation or disabling.
    "disabled",
    "description",
];

/// Where the configuration came from, for messages.
#[derive(Debug)]
pub(crate) enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded => f.write_str("the embedded demo configuration"),
        }
    }
}

/// A loaded configuration: the servers to run and the warnings met while reading it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) source: Source,
    pub(crate) clients: Vec<ClientConfig>,
    pub(crate) warnings: Vec<String>,
}

/// Loads the configuration: `--config`, else `MCP_HOST_CONFIG`, else the embedded demo.
pub(crate) fn load(explicit: Option<&Path>) -> anyhow::Result<Loaded> {
    let from_env = std::env::var_os("MCP_HOST_CONFIG").map(PathBuf::from);
    match explicit.map(Path::to_path_buf).or(from_env) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let (clients, warnings) = parse(&text)
                .with_context(|| format!("invalid configuration file {}", path.display()))?;
            Ok(Loaded {
                source: Source::File(path),
                clients,
                warnings,
            })
        }
        None => Ok(Loaded {
            source: Source::Embedded,
            clients: embedded_demo()?,
            warnings: Vec::new(),
        }),
    }
}

/// The embedded demo: two instances of the built-in demo server, run by this executable.
fn embedded_demo() -> anyhow::Result<Vec<ClientConfig>> {
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    let exe = exe.to_string_lossy().into_owned();
    let demo = |id: &str| ClientConfig {
        args: vec!["demo-server".to_owned(), "--name".to_owned(), id.to_owned()],
        ..ClientConfig::new(id, exe.clone())
    };
    Ok(vec![demo("demo"), demo("notes")])
}

/// Parses configuration text into validated client configurations plus warnings.
pub(crate) fn parse(text: &str) -> anyhow::Result<(Vec<ClientConfig>, Vec<String>)> {
    let root: Value = serde_json::from_str(text).context("the file is not valid JSON")?;
    let Value::Object(root) = root else {
        bail!("the top level must be a JSON object with an `mcpServers` (or `servers`) object");
    };
    let mut warnings = Vec::new();
    let (key, servers) = match (root.get("mcpServers"), root.get("servers")) {
        (Some(servers), _) => ("mcpServers", servers),
        (None, Some(servers)) => ("servers", servers),
        (None, None) => bail!("no `mcpServers` (or `servers`) object at the top level"),
    };
    for other in root.keys().filter(|name| *name != key) {
        warnings.push(format!(
            "unknown field `{other}` at the top level is ignored"
        ));
    }
    let Value::Object(servers) = servers else {
        bail!("`{key}` must be an object mapping server ids to their settings");
    };
    let mut clients = Vec::new();
    let mut ids = BTreeSet::new();
    for (id, entry) in servers {
        let path = format!("{key}.{id}");
        let Value::Object(entry) = entry else {
            bail!("`{path}` must be an object");
        };
        if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
            warnings.push(format!("`{path}` is disabled and not started"));
            continue;
        }
        for field in entry
            .keys()
            .filter(|name| !KNOWN_FIELDS.contains(&name.as_str()))
        {
            warnings.push(format!("unknown field `{path}.{field}` is ignored"));
        }
        match entry.get("type").and_then(Value::as_str) {
            None | Some("stdio" | "http" | "streamable-http" | "streamableHttp") => {}
            Some("sse") => bail!(
                "`{path}.type` is `sse`: the old HTTP+SSE transport (protocol 2024-11-05) is not supported; use the server's Streamable HTTP endpoint with `\"type\": \"http\"`"
            ),
            Some(kind) => bail!(
                "`{path}.type` is `{kind}`: supported are `stdio` (with `command`) and `http` (with `url`)"
            ),
        }
        if entry.contains_key("url") && entry.contains_key("command") {
            bail!("`{path}` has both `command` and `url`: give `command` for a local server or `url` for a remote one");
        }
        let mut known = Map::new();
        for (field, value) in entry {
            if KNOWN_FIELDS.contains(&field.as_str())
                && !matches!(field.as_str(), "type" | "disabled" | "description")
            {
                known.insert(field.clone(), value.clone());
            }
        }
        known.insert("id".to_owned(), Value::String(id.clone()));
        let config: ClientConfig =
            serde_path_to_error::deserialize(Value::Object(known)).map_err(|error| {
                let field = error.path().to_string();
                anyhow::anyhow!("`{path}.{field}`: {}", error.into_inner())
            })?;
        config
            .validate()
            .map_err(|error| anyhow::anyhow!("`{path}`: {}", error))?;
        if !ids.insert(id.clone()) {
            bail!("server id `{id}` appears twice");
        }
        clients.push(config);
    }
    Ok((clients, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_error(text: &str, expect: &str) {
        let error = parse(text).unwrap_err();
        let chain = format!("{error:#}");
        assert!(chain.contains(expect), "{chain}");
    }

    #[test]
    fn reads_claude_and_vscode_shapes() {
        let (clients, warnings) = parse(
            r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"], "startupTimeoutMs": 5000, "colour": "red"}}}"#,
        )
        .unwrap();
        assert_eq!(clients[0].id, "time");
        assert_eq!(clients[0].startup_timeout_ms, 5000);
        assert_eq!(
            warnings,
            vec!["unknown field `mcpServers.time.colour` is ignored"]
        );
        let (clients, _) =
            parse(r#"{"servers": {"fs": {"type": "stdio", "command": "npx"}}}"#).unwrap();
        assert_eq!(clients[0].command, "npx");
        let (clients, warnings) = parse(
            r#"{"servers": {"remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${env:TOKEN}"}}}}"#,
        )
        .unwrap();
        assert_eq!(clients[0].url.as_deref(), Some("https://example.com/mcp"));
        assert_eq!(clients[0].headers["Authorization"], "Bearer ${env:TOKEN}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn errors_name_the_path() {
        check_error("[]", "top level must be a JSON object");
        check_error("{}", "no `mcpServers`");
        check_error(
            r#"{"mcpServers": {"a": 3}}"#,
            "`mcpServers.a` must be an object",
        );
        check_error(
            r#"{"mcpServers": {"a": {"command": "x", "startupTimeoutMs": "soon"}}}"#,
            "`mcpServers.a.startupTimeoutMs`",
        );
        check_error(
            r#"{"mcpServers": {"a": {"command": ""}}}"#,
            "`mcpServers.a`",
        );
        check_error(r#"{"mcpServers": {"a": {"args": []}}}"#, "command");
        check_error(
            r#"{"mcpServers": {"a": {"type": "ws", "command": "x"}}}"#,
            "supported are `stdio`",
        );
        check_error(
            r#"{"mcpServers": {"a": {"type": "sse", "url": "http://x/sse"}}}"#,
            "old HTTP+SSE transport",
        );
        check_error(
            r#"{"mcpServers": {"a": {"command": "x", "url": "http://x/mcp"}}}"#,
            "both `command` and `url`",
        );
        check_error(
            r#"{"mcpServers": {"a": {"url": "ftp://x/mcp"}}}"#,
            "`mcpServers.a`: invalid configuration of client `a`: `url` must be an http",
        );
        check_error(
            r#"{"mcpServers": {"a": {"url": "http://x/mcp", "args": ["y"]}}}"#,
            "`args` applies to `command` servers only",
        );
        check_error(r#"{"mcpServers": {"a b": {"command": "x"}}}"#, "a b");
    }
}
