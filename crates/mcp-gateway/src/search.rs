//! Tool search mode: a client whose `toolMode` is `search` sees two tools instead of the
//! catalogue, `find_tools(query, limit)` and `call_tool(name, arguments)`, answered by the host's
//! search within the client's scope.
//!
//! The mode is read from the client's policy (`gateway.clients.<name>.toolMode`), else from the
//! gateway (`gateway.toolMode`), at every request: a reload that changes it takes effect at each
//! session's next request, and the session hears `notifications/tools/list_changed`.
//!
//! In search mode a client may still call a tool of the catalogue directly by its exposed name
//! (a client that already knows it, or an MCP App calling its own tool): the two tools only
//! change what `tools/list` shows. The names `find_tools` and `call_tool` are the search tools'
//! there; a server's own tool of that name is reached with `call_tool`. A `call_tool` of a tool
//! that does not exist, or that the client's policy hides, is a tool error the model can read,
//! as `find_tools` never returns such a tool.

use std::borrow::Cow;

use mcp_host::search::{search_tools, CALL_TOOL, FIND_TOOLS};
use mcp_host::{AgentScope, Error, McpHost};
use mcp_session::RequestOptions;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Which tools a client of the gateway sees in `tools/list`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolMode {
    /// Every tool its policy lets it use (the default).
    #[default]
    All,
    /// Only `find_tools` and `call_tool`, for clients (or models) that cope badly with
    /// hundreds of tools.
    Search,
}

impl std::str::FromStr for ToolMode {
    type Err = String;

    fn from_str(text: &str) -> Result<ToolMode, String> {
        match text {
            "all" => Ok(ToolMode::All),
            "search" => Ok(ToolMode::Search),
            other => Err(format!(
                "unknown tool mode `{other}`: it is `all` or `search`"
            )),
        }
    }
}

impl std::fmt::Display for ToolMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ToolMode::All => "all",
            ToolMode::Search => "search",
        })
    }
}

/// The answer to `tools/list` in search mode; `None` in mode `all`.
pub(crate) fn list_tools(mode: ToolMode) -> Option<Value> {
    (mode == ToolMode::Search).then(|| json!({ "tools": search_tools() }))
}

/// Whether a `tools/call` of `name` is one of the search tools in `mode`.
pub(crate) fn is_search_tool(mode: ToolMode, name: &str) -> bool {
    mode == ToolMode::Search && (name == FIND_TOOLS || name == CALL_TOOL)
}

/// Answers a call of `find_tools` or `call_tool` (see [`is_search_tool`]) within `scope`.
///
/// # Cancel safety
///
/// As for [`McpHost::call_search_tool`]: dropping the future cancels the downstream call.
pub(crate) async fn call(
    host: &McpHost,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
    scope: &AgentScope,
    options: &RequestOptions,
) -> Result<Box<RawValue>, Error> {
    match host.call_search_tool(name, arguments, scope, options).await {
        // `call_tool` exists: a name it cannot call is the model's mistake, told as a tool error.
        Err(Error::UnknownTool { name: unknown }) if name == CALL_TOOL => {
            let text = format!(
                "tool `{unknown}` is not available: it does not exist, or this client may not use it; find_tools lists the tools there are"
            );
            let answer = json!({"content": [{"type": "text", "text": text}], "isError": true});
            serde_json::value::to_raw_value(&answer).map_err(|error| Error::InvalidToolCall {
                reason: error.to_string(),
            })
        }
        other => other,
    }
}

/// The `tools/call` params the audit log records: for `call_tool`, the called tool's name and
/// arguments, so that the log names the tool that ran.
pub(crate) fn audited_params(mode: ToolMode, params: &Value) -> Cow<'_, Value> {
    if !is_search_tool(mode, params["name"].as_str().unwrap_or_default())
        || params["name"] != CALL_TOOL
    {
        return Cow::Borrowed(params);
    }
    let inner = &params["arguments"];
    match inner["name"].as_str() {
        Some(name) => {
            let mut audited = json!({ "name": name });
            if let Some(arguments) = inner.get("arguments") {
                audited["arguments"] = arguments.clone();
            }
            Cow::Owned(audited)
        }
        None => Cow::Borrowed(params),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for (text, mode) in [("all", ToolMode::All), ("search", ToolMode::Search)] {
            assert_eq!(text.parse::<ToolMode>().unwrap(), mode);
            assert_eq!(mode.to_string(), text);
            assert_eq!(
                serde_json::from_value::<ToolMode>(json!(text)).unwrap(),
                mode
            );
        }
        assert!("Search".parse::<ToolMode>().is_err());
        assert_eq!(ToolMode::default(), ToolMode::All);
    }

    #[test]
    fn search_mode_lists_two_tools() {
        assert!(list_tools(ToolMode::All).is_none());
        let listed = list_tools(ToolMode::Search).unwrap();
        let names: Vec<&str> = listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|tool| tool["name"].as_str())
            .collect();
        assert_eq!(names, [FIND_TOOLS, CALL_TOOL]);
        assert!(is_search_tool(ToolMode::Search, "call_tool"));
        assert!(!is_search_tool(ToolMode::All, "call_tool"));
        assert!(!is_search_tool(ToolMode::Search, "s__echo"));
    }

    #[track_caller]
    fn check_audited(mode: ToolMode, params: Value, expect: Value) {
        assert_eq!(*audited_params(mode, &params), expect);
    }

    #[test]
    fn the_audit_names_the_tool_call_tool_ran() {
        let called = json!({"name": "call_tool", "arguments": {"name": "s__echo", "arguments": {"text": "hi"}}});
        check_audited(
            ToolMode::Search,
            called.clone(),
            json!({"name": "s__echo", "arguments": {"text": "hi"}}),
        );
        check_audited(ToolMode::All, called.clone(), called);
        let found = json!({"name": "find_tools", "arguments": {"query": "echo"}});
        check_audited(ToolMode::Search, found.clone(), found);
        let nameless = json!({"name": "call_tool", "arguments": {}});
        check_audited(ToolMode::Search, nameless.clone(), nameless);
    }
}
