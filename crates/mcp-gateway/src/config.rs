//! The configuration file: the `mcpServers` object of Claude Desktop and Cursor (or VS Code's
//! `servers`), with local (`command`) and remote (`url`) servers.
//!
//! [`parse`] reads its text into validated [`ClientConfig`]s plus warnings (unknown fields,
//! disabled servers); every error names the JSON path of the field at fault.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use mcp_host_foundation::ClientConfig;
use serde_json::{Map, Value};

use crate::policy::GatewaySettings;

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
    "auth",
    // VS Code's `servers` entries carry a transport type: `stdio`, or `http` for a `url`.
    "type",
    // Claude Desktop and others use these for documentation or disabling.
    "disabled",
    "description",
];

/// A configuration file as read: the servers to run and the warnings met while reading it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConfigFile {
    /// The servers, validated, in the file's order.
    pub servers: Vec<ClientConfig>,
    /// The `"gateway"` object: the gateway's clients and their policies.
    pub gateway: GatewaySettings,
    /// What was ignored (unknown fields, disabled servers), one sentence each.
    pub warnings: Vec<String>,
}

/// Why a configuration could not be used: what is wrong, naming the field's JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }

    pub(crate) fn from_message(message: impl Into<String>) -> ConfigError {
        ConfigError::new(message)
    }

    /// The same error, saying which file it is about.
    pub(crate) fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::new(format!(
            "invalid configuration file {}: {}",
            path.display(),
            self.message
        ))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses the configuration file at `path`.
///
/// # Errors
///
/// When the file cannot be read, or [`parse`] refuses it; the message names the file.
pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::new(format!(
            "cannot read the configuration file {}: {error}",
            path.display()
        ))
    })?;
    parse(&text).map_err(|error| error.in_file(path))
}

/// Checks that every local server's `command` names a program that exists: a path to an
/// executable file, or a name found in `path_var` (the `PATH` servers get).
///
/// # Errors
///
/// The first server whose program cannot be found, by its JSON path.
pub fn check_commands(servers: &[ClientConfig], path_var: Option<&str>) -> Result<(), ConfigError> {
    for server in servers.iter().filter(|server| server.url.is_none()) {
        if server.command.contains("${") {
            // Resolved from the environment when the server starts.
            continue;
        }
        if !program_exists(&server.command, server.cwd.as_deref(), path_var) {
            return Err(ConfigError::new(format!(
                "`mcpServers.{}.command`: no program `{}` (not a path to an executable file, and not found in PATH)",
                server.id, server.command
            )));
        }
    }
    Ok(())
}

fn program_exists(command: &str, cwd: Option<&Path>, path_var: Option<&str>) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        std::fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let path = PathBuf::from(command);
        return match cwd {
            Some(cwd) if path.is_relative() => executable(&cwd.join(path)),
            _ => executable(&path),
        };
    }
    path_var
        .unwrap_or_default()
        .split(':')
        .filter(|dir| !dir.is_empty())
        .any(|dir| executable(&Path::new(dir).join(command)))
}

/// Parses configuration text into validated client configurations plus warnings.
///
/// # Errors
///
/// Invalid JSON, a missing `mcpServers` (or `servers`) object, an invalid field (named by its
/// JSON path, such as `mcpServers.files.startupTimeoutMs`), or a server id given twice.
pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|error| ConfigError::new(format!("the file is not valid JSON: {error}")))?;
    let Value::Object(root) = root else {
        return Err(ConfigError::new(
            "the top level must be a JSON object with an `mcpServers` (or `servers`) object",
        ));
    };
    let mut warnings = Vec::new();
    let (key, servers) = match (root.get("mcpServers"), root.get("servers")) {
        (Some(servers), _) => ("mcpServers", servers),
        (None, Some(servers)) => ("servers", servers),
        (None, None) => {
            return Err(ConfigError::new(
                "no `mcpServers` (or `servers`) object at the top level",
            ))
        }
    };
    let gateway = match root.get("gateway") {
        None => GatewaySettings::default(),
        Some(gateway) => serde_path_to_error::deserialize(gateway).map_err(|error| {
            let field = error.path().to_string();
            let path = if field == "." {
                "gateway".to_owned()
            } else {
                format!("gateway.{field}")
            };
            ConfigError::new(format!("`{path}`: {}", error.into_inner()))
        })?,
    };
    for other in root
        .keys()
        .filter(|name| *name != key && name.as_str() != "gateway")
    {
        warnings.push(format!(
            "unknown field `{other}` at the top level is ignored"
        ));
    }
    let Value::Object(servers) = servers else {
        return Err(ConfigError::new(format!(
            "`{key}` must be an object mapping server ids to their settings"
        )));
    };
    let mut clients = Vec::new();
    let mut ids = BTreeSet::new();
    for (id, entry) in servers {
        let path = format!("{key}.{id}");
        let Value::Object(entry) = entry else {
            return Err(ConfigError::new(format!("`{path}` must be an object")));
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
            Some("sse") => return Err(ConfigError::new(format!(
                "`{path}.type` is `sse`: the old HTTP+SSE transport (protocol 2024-11-05) is not supported; use the server's Streamable HTTP endpoint with `\"type\": \"http\"`"
            ))),
            Some(kind) => return Err(ConfigError::new(format!(
                "`{path}.type` is `{kind}`: supported are `stdio` (with `command`) and `http` (with `url`)"
            ))),
        }
        if entry.contains_key("url") && entry.contains_key("command") {
            return Err(ConfigError::new(format!("`{path}` has both `command` and `url`: give `command` for a local server or `url` for a remote one")));
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
                ConfigError::new(format!("`{path}.{field}`: {}", error.into_inner()))
            })?;
        config
            .validate()
            .map_err(|error| ConfigError::new(format!("`{path}`: {error}")))?;
        if !ids.insert(id.clone()) {
            return Err(ConfigError::new(format!("server id `{id}` appears twice")));
        }
        clients.push(config);
    }
    Ok(ConfigFile {
        servers: clients,
        gateway,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_error(text: &str, expect: &str) {
        let error = parse(text).unwrap_err();
        let chain = error.to_string();
        assert!(chain.contains(expect), "{chain}");
    }

    #[test]
    fn reads_claude_and_vscode_shapes() {
        let ConfigFile {
            servers: clients,
            warnings,
            ..
        } = parse(
            r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"], "startupTimeoutMs": 5000, "colour": "red"}}}"#,
        )
        .unwrap();
        assert_eq!(clients[0].id, "time");
        assert_eq!(clients[0].startup_timeout_ms, 5000);
        assert_eq!(
            warnings,
            vec!["unknown field `mcpServers.time.colour` is ignored"]
        );
        let clients = parse(r#"{"servers": {"fs": {"type": "stdio", "command": "npx"}}}"#)
            .unwrap()
            .servers;
        assert_eq!(clients[0].command, "npx");
        let ConfigFile {
            servers: clients,
            warnings,
            ..
        } = parse(
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
        check_error(
            r#"{"mcpServers": {}, "gateway": {"clients": {"bot": {"readonly": true}}}}"#,
            "`gateway.clients.bot.readonly`: unknown field `readonly`",
        );
        check_error(
            r#"{"mcpServers": {}, "gateway": {"clients": {"bot": {"quota": {"callsPerMinute": "many"}}}}}"#,
            "`gateway.clients.bot.quota.callsPerMinute`",
        );
        check_error(
            r#"{"mcpServers": {}, "gateway": {"toolMode": "few"}}"#,
            "`gateway.toolMode`: unknown variant `few`, expected `all` or `search`",
        );
        check_error(
            r#"{"mcpServers": {}, "gateway": {"clients": {"bot": {"toolMode": true}}}}"#,
            "`gateway.clients.bot.toolMode`",
        );
    }

    #[test]
    fn reads_the_tool_mode() {
        use crate::search::ToolMode;
        let file = parse(
            r#"{"mcpServers": {}, "gateway": {"toolMode": "search", "clients": {"bot": {"token": "t", "toolMode": "all"}}}}"#,
        )
        .unwrap();
        assert_eq!(file.gateway.tool_mode, Some(ToolMode::Search));
        assert_eq!(file.gateway.clients["bot"].tool_mode, Some(ToolMode::All));
        let file = parse(r#"{"mcpServers": {}}"#).unwrap();
        assert_eq!(file.gateway.tool_mode, None);
    }
}
