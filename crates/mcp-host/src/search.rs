//! Tool search for clients with small tool limits: rank the catalogue for a query (BM25 over
//! names, titles, descriptions and argument names), and the two tools a gateway exposes instead
//! of hundreds, `find_tools` and `call_tool`.
//!
//! The ranking is BM25F: each tool is one document whose fields count with a weight (its exposed
//! name 3, its title 2, its description 1, its server's id and its argument names 1); a term's
//! weight in a document is its weighted count, the document's length its weighted length. Terms
//! are lowercase words split at every non-alphanumeric character and at camelCase humps, with
//! English stop words dropped and a light suffix stemmer (`files`, `filing` → `file`). The index
//! is built per query from what the agent may see, so it is never stale and holds nothing
//! between calls; its size is bounded (see the limits below).

use std::collections::HashMap;

use mcp_session::protocol::Tool;
use mcp_session::RequestOptions;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::registry::{AgentScope, Registered};
use crate::{Error, McpHost};

/// The most tools a search ranks (the first ones by exposed name beyond it are left out).
pub const MAX_SEARCH_TOOLS: usize = 10_000;
/// The most results one search returns, whatever the caller asks for.
pub const MAX_SEARCH_RESULTS: usize = 50;
/// How many results `find_tools` returns when its `limit` is not given.
pub const DEFAULT_SEARCH_RESULTS: usize = 5;
/// The most characters of a query that are read.
pub const MAX_QUERY_CHARS: usize = 1024;
/// The most characters of a tool's description that are indexed.
pub const MAX_INDEXED_DESCRIPTION: usize = 4096;

/// The name of the search tool of [`search_tools`].
pub const FIND_TOOLS: &str = "find_tools";
/// The name of the calling tool of [`search_tools`].
pub const CALL_TOOL: &str = "call_tool";

/// A tool found by a search, with its score (higher is better).
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The tool, under the name the host exposes it.
    pub tool: Registered<Tool>,
    /// Its BM25 score for the query.
    pub score: f64,
}

/// The two tools a gateway in search mode lists instead of the catalogue: `find_tools(query,
/// limit)`, which returns the best matches with their full schemas, and `call_tool(name,
/// arguments)`, which calls one of them.
pub fn search_tools() -> Vec<Tool> {
    let find = json!({
        "name": FIND_TOOLS,
        "title": "Find tools",
        "description": "Searches the available tools by what they do and returns the best matches with their names, descriptions and input schemas. Call one with call_tool.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What the tool should do, in a few words."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_RESULTS, "description": format!("How many tools to return (default {DEFAULT_SEARCH_RESULTS}).")},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": true},
    });
    let call = json!({
        "name": CALL_TOOL,
        "title": "Call a tool",
        "description": "Calls a tool found with find_tools, by its name, with arguments that follow its input schema.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name, as find_tools returned it."},
                "arguments": {"type": "object", "description": "The tool's arguments."},
            },
            "required": ["name"],
        },
    });
    [find, call]
        .into_iter()
        .filter_map(|tool| serde_json::from_value(tool).ok())
        .collect()
}

/// Ranks `tools` for `query` and returns the best `limit` (at most [`MAX_SEARCH_RESULTS`]),
/// best first; tools that share no term with the query are left out.
pub fn rank(tools: Vec<Registered<Tool>>, query: &str, limit: usize) -> Vec<Found> {
    let limit = limit.clamp(1, MAX_SEARCH_RESULTS);
    let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
    let mut terms = terms(&query);
    terms.sort();
    terms.dedup();
    if terms.is_empty() {
        return Vec::new();
    }
    let documents: Vec<Document> = tools
        .into_iter()
        .take(MAX_SEARCH_TOOLS)
        .map(Document::new)
        .collect();
    let n_documents = documents.len() as f64;
    if documents.is_empty() {
        return Vec::new();
    }
    let average_length = documents
        .iter()
        .map(|document| document.length)
        .sum::<f64>()
        / n_documents;
    let mut n_containing: HashMap<&str, f64> = HashMap::new();
    for term in &terms {
        let count = documents
            .iter()
            .filter(|document| document.weights.contains_key(term.as_str()))
            .count();
        n_containing.insert(term.as_str(), count as f64);
    }
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let mut found: Vec<Found> = documents
        .into_iter()
        .filter_map(|document| {
            let mut score = 0.0;
            for term in &terms {
                let Some(weight) = document.weights.get(term.as_str()) else {
                    continue;
                };
                let n = n_containing.get(term.as_str()).copied().unwrap_or(0.0);
                let idf = (1.0 + (n_documents - n + 0.5) / (n + 0.5)).ln();
                let norm = K1 * (1.0 - B + B * document.length / average_length.max(1.0));
                score += idf * weight * (K1 + 1.0) / (weight + norm);
            }
            (score > 0.0).then_some(Found {
                tool: document.tool,
                score,
            })
        })
        .collect();
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.tool.name.cmp(&b.tool.name))
    });
    found.truncate(limit);
    found
}

/// What `find_tools` answers: a text block listing the tools (for clients that read only text)
/// and `structuredContent.tools`, each tool as `tools/list` would list it (exposed name, title,
/// description, input schema, output schema, annotations) with its score.
pub fn find_tools_result(found: &[Found]) -> Value {
    let tools: Vec<Value> = found
        .iter()
        .map(|found| {
            let tool = Tool {
                name: found.tool.name.clone(),
                ..found.tool.item.clone()
            };
            let mut value = serde_json::to_value(tool).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value {
                map.insert(
                    "score".to_owned(),
                    json!((found.score * 1000.0).round() / 1000.0),
                );
            }
            value
        })
        .collect();
    let text = serde_json::to_string(&json!({ "tools": tools })).unwrap_or_default();
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"tools": tools},
        "isError": false,
    })
}

/// A tool as one document of the index: weighted term counts and weighted length.
struct Document {
    tool: Registered<Tool>,
    weights: HashMap<String, f64>,
    length: f64,
}

impl Document {
    fn new(tool: Registered<Tool>) -> Document {
        let mut weights: HashMap<String, f64> = HashMap::new();
        let mut length = 0.0;
        let mut add = |text: &str, weight: f64| {
            for term in terms(text) {
                *weights.entry(term).or_insert(0.0) += weight;
                length += weight;
            }
        };
        add(&tool.name, 3.0);
        if tool.item.name != tool.name {
            add(&tool.item.name, 1.0);
        }
        add(tool.client.as_str(), 1.0);
        if let Some(title) = &tool.item.title {
            add(title, 2.0);
        }
        if let Some(description) = &tool.item.description {
            let description: String = description.chars().take(MAX_INDEXED_DESCRIPTION).collect();
            add(&description, 1.0);
        }
        if let Some(properties) = tool
            .item
            .input_schema
            .get("properties")
            .and_then(Value::as_object)
        {
            for name in properties.keys().take(64) {
                add(name, 1.0);
            }
        }
        Document {
            tool,
            weights,
            length,
        }
    }
}

/// The terms of a text: lowercase words split at non-alphanumerics and camelCase humps, stop
/// words dropped, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        } else {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .map(|word| stem(&word))
        .filter(|word| !word.is_empty())
        .collect()
}

/// Words too common to tell tools apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "give", "how",
    "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "that", "the",
    "their", "then", "this", "to", "tool", "use", "using", "want", "what", "which", "with", "you",
    "your",
];

/// A light English suffix stemmer: enough for `files`/`file`, `entities`/`entity`,
/// `searching`/`search`, `created`/`create`.
fn stem(word: &str) -> String {
    if word.len() <= 3 || !word.is_ascii() {
        return word.to_owned();
    }
    if let Some(base) = word.strip_suffix("ies") {
        return format!("{base}y");
    }
    for suffix in ["ing", "ed"] {
        if let Some(base) = word.strip_suffix(suffix) {
            if base.len() >= 3 {
                return trim_e(base);
            }
        }
    }
    if let Some(base) = word.strip_suffix("es") {
        if base.ends_with("ss")
            || base.ends_with('x')
            || base.ends_with("ch")
            || base.ends_with("sh")
        {
            return base.to_owned();
        }
    }
    if let Some(base) = word.strip_suffix('s') {
        if !base.ends_with('s') && !base.ends_with('u') && !base.ends_with('i') {
            return trim_e(base);
        }
    }
    trim_e(word)
}

/// Drops a final `e` so that `create`, `created` and `creating` meet.
fn trim_e(word: &str) -> String {
    match word.strip_suffix('e') {
        Some(base) if base.len() >= 3 => base.to_owned(),
        _ => word.to_owned(),
    }
}

impl McpHost {
    /// The tools the agent may see that best match `query`, best first, at most `limit` (and at
    /// most [`MAX_SEARCH_RESULTS`]), each with its full schema (see [`rank`]).
    pub fn find_tools(&self, query: &str, limit: usize, scope: &AgentScope) -> Vec<Found> {
        rank(self.list_tools(scope), query, limit)
    }

    /// Answers a call of one of the [`search_tools`] (a gateway's `"toolMode": "search"`):
    /// `find_tools` with the matches as [`find_tools_result`] writes them, `call_tool` with the
    /// called tool's own result, undecoded. Other names are [`Error::UnknownTool`]; a
    /// `find_tools` without a `query` or a `call_tool` without a `name` is answered with a tool
    /// error that says so.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn call_search_tool(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        scope: &AgentScope,
        options: &RequestOptions,
    ) -> Result<Box<RawValue>, Error> {
        let answer = match name {
            FIND_TOOLS => {
                let query = arguments
                    .and_then(|arguments| arguments.get("query"))
                    .and_then(Value::as_str);
                let limit = arguments
                    .and_then(|arguments| arguments.get("limit"))
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_SEARCH_RESULTS, |limit| {
                        usize::try_from(limit).unwrap_or(MAX_SEARCH_RESULTS)
                    });
                match query {
                    Some(query) => find_tools_result(&self.find_tools(query, limit, scope)),
                    None => tool_error("find_tools needs a `query`: what the tool should do"),
                }
            }
            CALL_TOOL => match call_tool_arguments(arguments) {
                Some((name, arguments)) => {
                    return self
                        .call_tool_raw(&name, arguments.as_ref(), scope, options)
                        .await
                }
                None => tool_error("call_tool needs a `name`: a tool that find_tools returned"),
            },
            other => {
                return Err(Error::UnknownTool {
                    name: other.to_owned(),
                })
            }
        };
        serde_json::value::to_raw_value(&answer).map_err(|error| Error::InvalidToolCall {
            reason: format!("the answer of {name} cannot be encoded: {error}"),
        })
    }
}

fn tool_error(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// The arguments of a `call_tool` call: the tool's name and its arguments.
pub(crate) fn call_tool_arguments(
    arguments: Option<&Map<String, Value>>,
) -> Option<(String, Option<Map<String, Value>>)> {
    let arguments = arguments?;
    let name = arguments.get("name")?.as_str()?.to_owned();
    let inner = match arguments.get("arguments") {
        Some(Value::Object(map)) => Some(map.clone()),
        _ => None,
    };
    Some((name, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_host_foundation::ClientId;

    #[test]
    fn terms_split_stem_and_drop_stop_words() {
        assert_eq!(terms("readFile"), ["read", "fil"]);
        assert_eq!(terms("git_create_branch"), ["git", "creat", "branch"]);
        assert_eq!(
            terms("Lists the files in a directory"),
            ["list", "fil", "directory"]
        );
        assert_eq!(terms("entities"), ["entity"]);
        assert_eq!(terms("searching indexes"), ["search", "index"]);
        assert_eq!(
            terms("created creating create"),
            ["creat", "creat", "creat"]
        );
        assert_eq!(terms("HTTPServer v2"), ["httpserver", "v2"]);
    }

    fn tool(client: &str, name: &str, description: &str) -> Registered<Tool> {
        Registered {
            name: format!("{client}__{name}"),
            client: ClientId::new(client).unwrap(),
            item: serde_json::from_value(json!({
                "name": name, "description": description, "inputSchema": {"type": "object"},
            }))
            .unwrap(),
        }
    }

    #[test]
    fn ranking_prefers_names_then_descriptions() {
        let tools = vec![
            tool("fs", "read_file", "Reads a file from disk."),
            tool("fs", "write_file", "Writes a file to disk."),
            tool("git", "git_log", "Shows the commit history."),
            tool(
                "time",
                "get_current_time",
                "Returns the current time in a timezone.",
            ),
        ];
        let found = rank(tools.clone(), "read a file", 5);
        assert_eq!(found[0].tool.name, "fs__read_file");
        let found = rank(tools.clone(), "what time is it in Tokyo", 2);
        assert_eq!(found[0].tool.name, "time__get_current_time");
        assert!(found.len() <= 2);
        let found = rank(tools.clone(), "commit history", 1);
        assert_eq!(found[0].tool.name, "git__git_log");
        assert!(rank(tools.clone(), "the of a", 5).is_empty());
        assert!(rank(tools, "zebra", 5).is_empty());
    }

    #[test]
    fn the_two_tools_and_their_answers() {
        let tools = search_tools();
        let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
        assert_eq!(names, [FIND_TOOLS, CALL_TOOL]);
        let found = rank(vec![tool("fs", "read_file", "Reads a file.")], "read", 5);
        let result = find_tools_result(&found);
        assert_eq!(
            result["structuredContent"]["tools"][0]["name"],
            "fs__read_file"
        );
        assert_eq!(
            result["structuredContent"]["tools"][0]["inputSchema"]["type"],
            "object"
        );
        let mut arguments = Map::new();
        arguments.insert("name".to_owned(), json!("fs__read_file"));
        arguments.insert("arguments".to_owned(), json!({"path": "/x"}));
        let (name, inner) = call_tool_arguments(Some(&arguments)).unwrap();
        assert_eq!(name, "fs__read_file");
        assert_eq!(inner.unwrap()["path"], "/x");
        assert!(call_tool_arguments(None).is_none());
    }
}
