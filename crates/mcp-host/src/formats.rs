//! The tool list in the shapes LLM APIs take (OpenAI, Anthropic, Gemini), and the way back: a
//! model's tool call turned into a call of the host, its result into the message the model reads.
//!
//! Each API takes a tool as a name, a description and a JSON Schema of its arguments, wrapped its
//! own way. The schemas are passed on as the servers wrote them for OpenAI and Anthropic, except
//! that `$ref`s into the schema's own `$defs` (or `definitions`) are inlined (bounded in depth),
//! as some models follow references poorly; for Gemini, whose `parameters` are an OpenAPI 3.0
//! subset, a schema is also rewritten to that subset: a `type` list becomes one type with
//! `nullable`, `const` becomes a one-value `enum`, `oneOf` becomes `anyOf`, and keywords Gemini
//! does not know (`$schema`, `additionalProperties`, …) are dropped.

use mcp_session::protocol::{CallToolResult, Tool};
use serde_json::{json, Map, Value};

use crate::registry::{AgentScope, Registered};
use crate::{Error, McpHost};

/// An LLM API's tool format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenAI chat completions: `{"type": "function", "function": {"name", "description",
    /// "parameters"}}`; a call is an entry of `tool_calls` (`arguments` a JSON text).
    OpenAi,
    /// Anthropic messages: `{"name", "description", "input_schema"}`; a call is a `tool_use`
    /// content block.
    Anthropic,
    /// Gemini: a function declaration `{"name", "description", "parameters"}` (put the list in
    /// `{"functionDeclarations": [...]}`); a call is a `functionCall` part.
    Gemini,
}

impl Format {
    /// The format named `openai`, `anthropic` or `gemini`.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "openai" => Some(Format::OpenAi),
            "anthropic" => Some(Format::Anthropic),
            "gemini" => Some(Format::Gemini),
            _ => None,
        }
    }
}

/// How deep `$ref`s are inlined before the rest is left as `{}` (any value).
pub const MAX_REF_DEPTH: usize = 8;

/// One tool in `format`, under the name the host exposes it.
pub fn tool_for(format: Format, tool: &Registered<Tool>) -> Value {
    let description = tool
        .item
        .description
        .clone()
        .or_else(|| tool.item.title.clone())
        .unwrap_or_default();
    let mut schema = inline_refs(&tool.item.input_schema);
    if let Value::Object(map) = &mut schema {
        map.remove("$defs");
        map.remove("definitions");
        map.entry("type").or_insert_with(|| json!("object"));
    }
    match format {
        Format::OpenAi => json!({
            "type": "function",
            "function": {"name": tool.name, "description": description, "parameters": schema},
        }),
        Format::Anthropic => json!({
            "name": tool.name, "description": description, "input_schema": schema,
        }),
        Format::Gemini => json!({
            "name": tool.name, "description": description, "parameters": gemini_schema(&schema),
        }),
    }
}

/// A tool call a model asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The call's id, as the model gave it (OpenAI, Anthropic); Gemini gives none.
    pub id: Option<String>,
    /// The tool, by the name the host exposes it.
    pub name: String,
    /// Its arguments.
    pub arguments: Option<Map<String, Value>>,
}

impl ToolCall {
    /// Reads a model's tool call in `format`: an OpenAI `tool_calls` entry, an Anthropic
    /// `tool_use` block, or a Gemini part with a `functionCall` (or the `functionCall` itself).
    pub fn parse(format: Format, call: &Value) -> Result<ToolCall, Error> {
        let invalid = |reason: &str| Error::InvalidToolCall {
            reason: reason.to_owned(),
        };
        let (id, name, arguments) = match format {
            Format::OpenAi => {
                let function = call
                    .get("function")
                    .ok_or_else(|| invalid("an OpenAI tool call has no `function`"))?;
                let arguments = match function.get("arguments") {
                    Some(Value::String(text)) if text.trim().is_empty() => None,
                    Some(Value::String(text)) => {
                        Some(serde_json::from_str::<Value>(text).map_err(|error| {
                            Error::InvalidToolCall {
                                reason: format!("its `arguments` are not JSON: {error}"),
                            }
                        })?)
                    }
                    Some(other) => Some(other.clone()),
                    None => None,
                };
                (call.get("id"), function.get("name"), arguments)
            }
            Format::Anthropic => (call.get("id"), call.get("name"), call.get("input").cloned()),
            Format::Gemini => {
                let function = call.get("functionCall").unwrap_or(call);
                (
                    function.get("id"),
                    function.get("name"),
                    function.get("args").cloned(),
                )
            }
        };
        let name = name
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the tool call names no tool"))?
            .to_owned();
        let arguments = match arguments {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err(invalid("the tool call's arguments are not a JSON object")),
        };
        Ok(ToolCall {
            id: id.and_then(Value::as_str).map(str::to_owned),
            name,
            arguments,
        })
    }

    /// The message (OpenAI), content block (Anthropic) or part (Gemini) that gives the model
    /// `result` as the answer to this call: the text of the result (its structured content as
    /// JSON when it has no text), flagged as an error when the tool failed.
    pub fn result_message(&self, format: Format, result: &CallToolResult) -> Value {
        let mut text = result.text();
        if text.is_empty() {
            if let Some(structured) = &result.structured_content {
                text = structured.to_string();
            }
        }
        let is_error = result.is_tool_error();
        match format {
            Format::OpenAi => json!({
                "role": "tool", "tool_call_id": self.id, "content": text,
            }),
            Format::Anthropic => json!({
                "type": "tool_result", "tool_use_id": self.id, "content": text, "is_error": is_error,
            }),
            Format::Gemini => {
                let key = if is_error { "error" } else { "content" };
                json!({"functionResponse": {"name": self.name, "response": {key: text}}})
            }
        }
    }
}

impl McpHost {
    /// Every tool the agent may see, in the shape `format`'s API takes, under the names the host
    /// exposes (so that a model's call comes back by a name [`McpHost::call_tool`] routes).
    pub fn tools_for(&self, format: Format, scope: &AgentScope) -> Vec<Value> {
        self.list_tools(scope)
            .iter()
            .map(|tool| tool_for(format, tool))
            .collect()
    }

    /// Calls the tool a model asked for, given as `format`'s API wrote the call (see
    /// [`ToolCall::parse`]); returns the call as read and the tool's result, from which
    /// [`ToolCall::result_message`] makes the model's next message.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn call_model_tool(
        &self,
        format: Format,
        call: &Value,
        scope: &AgentScope,
    ) -> Result<(ToolCall, CallToolResult), Error> {
        let call = ToolCall::parse(format, call)?;
        let result = self
            .call_tool(&call.name, call.arguments.clone(), scope)
            .await?;
        Ok((call, result))
    }
}

/// `schema` with every `$ref` into its own `#/$defs/…` or `#/definitions/…` replaced by what it
/// points to (to [`MAX_REF_DEPTH`] levels; deeper, or unresolvable, becomes `{}`).
pub fn inline_refs(schema: &Value) -> Value {
    inline(schema, schema, 0)
}

fn inline(value: &Value, root: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                if depth >= MAX_REF_DEPTH {
                    return json!({});
                }
                let target = reference
                    .strip_prefix('#')
                    .and_then(|pointer| root.pointer(pointer));
                let Some(Value::Object(target)) = target else {
                    return json!({});
                };
                // Keywords beside the reference (a description) are kept.
                let mut merged = target.clone();
                for (key, member) in map {
                    if key != "$ref" {
                        merged.insert(key.clone(), member.clone());
                    }
                }
                return inline(&Value::Object(merged), root, depth + 1);
            }
            Value::Object(
                map.iter()
                    .map(|(key, member)| (key.clone(), inline(member, root, depth)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| inline(item, root, depth)).collect())
        }
        other => other.clone(),
    }
}

/// The keywords of Gemini's `Schema` (an OpenAPI 3.0 subset).
const GEMINI_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// `schema` (refs already inlined) rewritten to the subset Gemini takes.
pub fn gemini_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let mut concrete = types.iter().filter(|kind| kind.as_str() != Some("null"));
                    if let Some(first) = concrete.next() {
                        out.insert("type".to_owned(), first.clone());
                    }
                    if types.iter().any(|kind| kind.as_str() == Some("null")) {
                        out.insert("nullable".to_owned(), json!(true));
                    }
                }
                Value::String(kind) if kind == "null" => {
                    out.insert("nullable".to_owned(), json!(true));
                }
                other => {
                    out.insert("type".to_owned(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".to_owned(), json!([value]));
            }
            "oneOf" | "anyOf" => {
                if let Value::Array(options) = value {
                    let options: Vec<Value> = options.iter().map(gemini_schema).collect();
                    out.insert("anyOf".to_owned(), Value::Array(options));
                }
            }
            "properties" => {
                if let Value::Object(properties) = value {
                    let properties: Map<String, Value> = properties
                        .iter()
                        .map(|(name, property)| (name.clone(), gemini_schema(property)))
                        .collect();
                    out.insert("properties".to_owned(), Value::Object(properties));
                }
            }
            "items" => {
                out.insert("items".to_owned(), gemini_schema(value));
            }
            key if GEMINI_KEYWORDS.contains(&key) => {
                out.insert(key.to_owned(), value.clone());
            }
            _ => {}
        }
    }
    // Gemini takes enums of strings only.
    if let Some(Value::Array(values)) = out.get("enum") {
        if values.iter().any(|value| !value.is_string()) {
            out.remove("enum");
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_host_foundation::ClientId;

    fn registered(input_schema: Value) -> Registered<Tool> {
        Registered {
            name: "fs__read_file".to_owned(),
            client: ClientId::new("fs").unwrap(),
            item: serde_json::from_value(json!({
                "name": "read_file", "description": "Reads a file.", "inputSchema": input_schema,
            }))
            .unwrap(),
        }
    }

    #[test]
    fn each_format_wraps_the_tool_its_way() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "path": {"$ref": "#/$defs/path", "description": "Where."},
                "mode": {"type": ["string", "null"], "const": "r"},
                "flags": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["path"],
            "additionalProperties": false,
            "$defs": {"path": {"type": "string", "minLength": 1}},
        });
        let tool = registered(schema);
        let openai = tool_for(Format::OpenAi, &tool);
        assert_eq!(openai["type"], "function");
        assert_eq!(openai["function"]["name"], "fs__read_file");
        let parameters = &openai["function"]["parameters"];
        assert_eq!(parameters["properties"]["path"]["type"], "string");
        assert_eq!(parameters["properties"]["path"]["description"], "Where.");
        assert!(parameters.get("$defs").is_none());
        assert!(!parameters.to_string().contains("$ref"));
        let anthropic = tool_for(Format::Anthropic, &tool);
        assert_eq!(anthropic["input_schema"]["required"], json!(["path"]));
        assert_eq!(anthropic["description"], "Reads a file.");
        let gemini = tool_for(Format::Gemini, &tool);
        let parameters = &gemini["parameters"];
        assert!(parameters.get("$schema").is_none());
        assert!(parameters.get("additionalProperties").is_none());
        assert_eq!(parameters["properties"]["mode"]["type"], "string");
        assert_eq!(parameters["properties"]["mode"]["nullable"], true);
        assert_eq!(parameters["properties"]["mode"]["enum"], json!(["r"]));
        assert_eq!(
            parameters["properties"]["flags"]["anyOf"][0]["type"],
            "integer"
        );
        assert_eq!(parameters["properties"]["path"]["minLength"], 1);
    }

    #[test]
    fn recursive_refs_stop() {
        let schema = json!({
            "type": "object",
            "properties": {"node": {"$ref": "#/$defs/node"}},
            "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        });
        let inlined = inline_refs(&schema);
        assert!(!inlined["properties"].to_string().contains("$ref"));
    }

    #[test]
    fn tool_calls_are_read_in_every_format_and_answered() {
        let openai = json!({"id": "call_1", "type": "function", "function": {"name": "fs__read_file", "arguments": "{\"path\":\"/x\"}"}});
        let call = ToolCall::parse(Format::OpenAi, &openai).unwrap();
        assert_eq!(call.id.as_deref(), Some("call_1"));
        assert_eq!(call.name, "fs__read_file");
        assert_eq!(call.arguments.as_ref().unwrap()["path"], "/x");
        let anthropic =
            json!({"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"a": 1}});
        let call = ToolCall::parse(Format::Anthropic, &anthropic).unwrap();
        assert_eq!(call.arguments.as_ref().unwrap()["a"], 1);
        let gemini = json!({"functionCall": {"name": "t", "args": {"b": 2}}});
        let call = ToolCall::parse(Format::Gemini, &gemini).unwrap();
        assert_eq!(call.id, None);
        assert_eq!(call.arguments.as_ref().unwrap()["b"], 2);
        let bad = json!({"function": {"name": "t", "arguments": "{not json"}});
        assert!(matches!(
            ToolCall::parse(Format::OpenAi, &bad),
            Err(Error::InvalidToolCall { .. })
        ));
        assert!(ToolCall::parse(Format::Anthropic, &json!({"input": {}})).is_err());

        let result = CallToolResult {
            content: vec![mcp_session::protocol::ContentBlock::text("42")],
            ..CallToolResult::default()
        };
        let call = ToolCall::parse(Format::Anthropic, &anthropic).unwrap();
        let message = call.result_message(Format::Anthropic, &result);
        assert_eq!(message["tool_use_id"], "toolu_1");
        assert_eq!(message["content"], "42");
        let call = ToolCall::parse(Format::OpenAi, &openai).unwrap();
        assert_eq!(call.result_message(Format::OpenAi, &result)["role"], "tool");
        let call = ToolCall::parse(Format::Gemini, &gemini).unwrap();
        assert_eq!(
            call.result_message(Format::Gemini, &result)["functionResponse"]["response"]["content"],
            "42"
        );
    }
}
