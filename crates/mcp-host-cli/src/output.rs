//! What the commands print on stdout: aligned tables for people, stable JSON for programs.

use std::fmt::Write as _;

use mcp_host::{ClientStatus, McpHost};
use mcp_host_foundation::ClientId;
use mcp_session::protocol::{CallToolResult, GetPromptResult, ReadResourceResult, Tool};
use serde::Serialize;
use serde_json::Value;

/// One tool in `tools --json`: a stable shape documented in the README.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolRow {
    /// The namespaced name to call.
    pub(crate) name: String,
    /// The server (client id) that offers it.
    pub(crate) server: ClientId,
    /// The name the server gave it.
    pub(crate) original_name: String,
    pub(crate) title: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) input_schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<Value>,
}

pub(crate) fn tool_rows(host: &McpHost) -> Vec<ToolRow> {
    host.list_tools(&mcp_host::AgentScope::all())
        .into_iter()
        .map(|registered| {
            let Tool {
                name,
                title,
                description,
                input_schema,
                output_schema,
                annotations,
                ..
            } = registered.item;
            ToolRow {
                name: registered.name,
                server: registered.client,
                original_name: name,
                title,
                description,
                input_schema,
                output_schema,
                annotations,
            }
        })
        .collect()
}

/// Renders rows as a table with aligned columns; the last column is not padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n_columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (idx, cell) in row.iter().enumerate().take(n_columns) {
            widths[idx] = widths[idx].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (idx, cell) in cells.enumerate() {
            if idx + 1 == n_columns {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[idx]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Cuts text to one line of at most `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or_default().trim();
    if first.chars().count() <= max {
        first.to_owned()
    } else {
        let cut: String = first.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub(crate) fn tools_table(rows: &[ToolRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.name.clone(),
                row.server.to_string(),
                one_line(row.description.as_deref().unwrap_or(""), 70),
            ]
        })
        .collect();
    table(&["TOOL", "SERVER", "DESCRIPTION"], &cells)
}

pub(crate) fn status_table(statuses: &[ClientStatus]) -> String {
    let cells: Vec<Vec<String>> = statuses
        .iter()
        .map(|status| {
            let server = status
                .server_info
                .as_ref()
                .map(|info| format!("{} {}", info.name, info.version))
                .unwrap_or_else(|| "-".to_owned());
            vec![
                status.id.to_string(),
                status.state.to_string(),
                status
                    .protocol_version
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                server,
                status.n_tools.to_string(),
                status.n_prompts.to_string(),
                status.n_resources.to_string(),
                status
                    .startup_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "SERVER",
            "STATE",
            "PROTOCOL",
            "IMPLEMENTATION",
            "TOOLS",
            "PROMPTS",
            "RESOURCES",
            "STARTUP",
        ],
        &cells,
    );
    for status in statuses {
        if let Some(error) = &status.last_error {
            let _ = writeln!(out, "\n{}: {}", status.id, error);
            if let Some(exit) = &status.exit {
                let _ = writeln!(out, "  {exit}");
            }
            if !status.stderr_tail.is_empty() {
                let _ = writeln!(out, "  stderr:");
                for line in status.stderr_tail.lines() {
                    let _ = writeln!(out, "  | {line}");
                }
            }
        }
    }
    out
}

/// The text of a tool result: text blocks as they are, other blocks as JSON lines.
pub(crate) fn call_result_text(result: &CallToolResult) -> String {
    let mut out = String::new();
    for block in &result.content {
        match block.as_text() {
            Some(text) => out.push_str(text),
            None => out.push_str(&serde_json::to_string(block).unwrap_or_default()),
        }
        out.push('\n');
    }
    if result.content.is_empty() {
        if let Some(structured) = &result.structured_content {
            out.push_str(&structured.to_string());
            out.push('\n');
        }
    }
    out
}

pub(crate) fn prompt_text(result: &GetPromptResult) -> String {
    let mut out = String::new();
    for message in &result.messages {
        let text = message
            .content
            .as_text()
            .map(str::to_owned)
            .unwrap_or_else(|| serde_json::to_string(&message.content).unwrap_or_default());
        let _ = writeln!(out, "{}: {}", message.role, text);
    }
    out
}

pub(crate) fn resource_text(result: &ReadResourceResult) -> String {
    let mut out = String::new();
    for contents in &result.contents {
        match (&contents.text, &contents.blob) {
            (Some(text), _) => out.push_str(text),
            (None, Some(blob)) => {
                let _ = write!(out, "[{} bytes of base64 data]", blob.len());
            }
            (None, None) => {}
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let text = table(
            &["A", "LONGER", "LAST"],
            &[vec!["xyz".into(), "1".into(), "tail text".into()]],
        );
        assert_eq!(text, "A    LONGER  LAST\nxyz  1       tail text\n");
        assert_eq!(one_line("first\nsecond", 10), "first");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
    }
}
