//! The MCP messages a host exchanges with a server (revision 2025-11-25), as serde types.
//!
//! Every type keeps the fields it does not know in `extra`, so that nothing a newer server sends
//! is lost when a result is passed on (for example by the gateway).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol revision this host asks for.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Every protocol revision this host can speak, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The stateless protocol revision, negotiated with `server/discover` instead of `initialize`
/// (see [`crate::Handshake`]): every request then carries the version, the client's capabilities
/// and the client's identity in its `_meta`.
pub const STATELESS_PROTOCOL_VERSION: &str = "2026-07-28";

/// The `_meta` key of a request's protocol version (revision 2026-07-28).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key of the client's capabilities (revision 2026-07-28).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The `_meta` key of the client's identity (revision 2026-07-28).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// The `_meta` key of the server's identity in a result (revision 2026-07-28).
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// The error code of a request whose protocol version the server does not support; its data
/// lists the versions it does (`supported`).
pub const UNSUPPORTED_PROTOCOL_VERSION_CODE: i64 = -32022;

/// Fields this crate does not model, kept as they came.
pub type Extra = Map<String, Value>;

/// The name and version of a client or server implementation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Implementation {
    /// The implementation's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Implementation {
    /// An implementation with just a name and a version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Implementation {
        Implementation {
            name: name.into(),
            version: version.into(),
            title: None,
            extra: Extra::new(),
        }
    }
}

/// A capability that may announce `listChanged` notifications.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListChangedCapability {
    /// Whether the server sends `list_changed` notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_changed: Option<bool>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The server's resources capability.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesCapability {
    /// Whether the server supports `resources/subscribe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<bool>,
    /// Whether the server sends `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_changed: Option<bool>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a server offers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerCapabilities {
    /// Present if the server offers tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ListChangedCapability>,
    /// Present if the server offers prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<ListChangedCapability>,
    /// Present if the server offers resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesCapability>,
    /// Present if the server sends log messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
    /// Present if the server offers argument completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<Value>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The server's answer to `initialize`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The protocol revision the server chose.
    pub protocol_version: String,
    /// What the server offers.
    #[serde(default)]
    pub capabilities: ServerCapabilities,
    /// Who the server is.
    pub server_info: Implementation,
    /// Hints for the model on how to use this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The server's answer to `server/discover` (revision 2026-07-28).
///
/// Read leniently: servers of the early drafts put `serverInfo` at the top level, and the
/// caching fields may be missing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverResult {
    /// The protocol revisions the server speaks.
    #[serde(default)]
    pub supported_versions: Vec<String>,
    /// What the server offers.
    #[serde(default)]
    pub capabilities: ServerCapabilities,
    /// Hints for the model on how to use this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Who the server is, when given at the top level (early drafts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<Implementation>,
    /// The result's metadata, with the server's identity under [`META_SERVER_INFO`].
    #[serde(default, rename = "_meta", skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Fields not modelled here (`resultType`, `ttlMs`, `cacheScope`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

impl DiscoverResult {
    /// The server's identity: from `_meta`, else the top-level field, else "unknown".
    pub fn server_info(&self) -> Implementation {
        self.meta
            .as_ref()
            .and_then(|meta| meta.get(META_SERVER_INFO))
            .and_then(|info| serde_json::from_value(info.clone()).ok())
            .or_else(|| self.server_info.clone())
            .unwrap_or_else(|| Implementation::new("unknown", "unknown"))
    }
}

/// A tool a server offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The tool's name, unique within its server.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default = "empty_object_schema")]
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`, if the tool returns any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Behaviour hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

fn empty_object_schema() -> Value {
    let mut schema = Map::new();
    schema.insert("type".to_owned(), Value::String("object".to_owned()));
    Value::Object(schema)
}

/// One page of `tools/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListToolsResult {
    /// The tools on this page.
    pub tools: Vec<Tool>,
    /// The cursor of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A piece of content: text, image, audio, a resource link or an embedded resource.
///
/// Only the kind and the text are modelled; everything else is kept in `extra`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentBlock {
    /// The kind of content (`text`, `image`, `audio`, `resource_link`, `resource`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text, for `text` content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> ContentBlock {
        ContentBlock {
            kind: "text".to_owned(),
            text: Some(text.into()),
            extra: Extra::new(),
        }
    }

    /// The text of a `text` block.
    pub fn as_text(&self) -> Option<&str> {
        if self.kind == "text" {
            self.text.as_deref()
        } else {
            None
        }
    }
}

/// The result of `tools/call`.
///
/// A tool that failed still produces a result, with `is_error` set: that is a tool error the
/// model should see, not a protocol error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// What the tool returned.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Structured output, if the tool has an output schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// Set when the tool itself failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CallToolResult {
    /// Whether the tool reported a failure.
    pub fn is_tool_error(&self) -> bool {
        self.is_error == Some(true)
    }

    /// All text content, joined by newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(ContentBlock::as_text)
            .collect();
        texts.join("\n")
    }
}

/// An argument of a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptArgument {
    /// The argument's name.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A prompt template a server offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The prompt's name, unique within its server.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the prompt is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The arguments it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Vec<PromptArgument>>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One page of `prompts/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPromptsResult {
    /// The prompts on this page.
    pub prompts: Vec<Prompt>,
    /// The cursor of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A message of a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The content.
    pub content: ContentBlock,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The result of `prompts/get`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GetPromptResult {
    /// A description of the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The prompt's messages.
    pub messages: Vec<PromptMessage>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A resource a server offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The resource's URI.
    pub uri: String,
    /// Its name.
    pub name: String,
    /// A human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One page of `resources/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResourcesResult {
    /// The resources on this page.
    pub resources: Vec<Resource>,
    /// The cursor of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A family of resources described by a URI template (RFC 6570).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// The URI template.
    pub uri_template: String,
    /// Its name.
    pub name: String,
    /// What it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The MIME type of the resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One page of `resources/templates/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResourceTemplatesResult {
    /// The templates on this page.
    pub resource_templates: Vec<ResourceTemplate>,
    /// The cursor of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The contents of a resource: text or a base64 blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceContents {
    /// The URI that was read.
    pub uri: String,
    /// The MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Text contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Binary contents, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The result of `resources/read`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadResourceResult {
    /// The contents.
    pub contents: Vec<ResourceContents>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A root: a directory the server may work in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// A `file://` URI.
    pub uri: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Severity of a log message, as in syslog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LoggingLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

/// A log message sent by a server (`notifications/message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggingMessage {
    /// Its severity.
    pub level: LoggingLevel,
    /// Which part of the server logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// The message: any JSON.
    #[serde(default)]
    pub data: Value,
}

/// A progress report for a request in flight (`notifications/progress`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Progress so far; grows with every report.
    pub progress: f64,
    /// The total, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A JSON-RPC error object, as sent in an error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error code (-32601: method not found, -32602: invalid params, -32603: internal).
    pub code: i64,
    /// A short description.
    #[serde(default)]
    pub message: String,
    /// Anything else the sender attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and a message.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// -32601: the method is not known.
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::new(-32601, format!("method not found: {method}"))
    }

    /// -32602: the parameters are invalid.
    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(-32602, message)
    }

    /// -32603: the receiver failed internally.
    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::new(-32603, message)
    }
}

/// The `_meta` key that ties a message to a task (revision 2025-11-25, tasks).
pub const META_RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// Where a task is in its life (revision 2025-11-25, tasks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Being worked on.
    Working,
    /// The receiver waits for input from the requestor (it asks with requests of its own,
    /// answered while `tasks/result` is awaited).
    InputRequired,
    /// Done; its result is available from `tasks/result`.
    Completed,
    /// Ended in failure (for a tool call, also a result with `isError`).
    Failed,
    /// Cancelled.
    Cancelled,
    /// A status this host does not know.
    #[serde(other)]
    Unknown,
}

impl TaskStatus {
    /// Whether the task has ended (`completed`, `failed` or `cancelled`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// The state of a task, as `tasks/get` and `notifications/tasks/status` give it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The receiver's id of the task.
    pub task_id: String,
    /// Where it is.
    pub status: TaskStatus,
    /// A human-readable word on the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When its status last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
    /// How long it is kept from its creation, in milliseconds (`None`: unlimited).
    #[serde(default)]
    pub ttl: Option<u64>,
    /// How often to poll it, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to a task-augmented request: the task that was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateTaskResult {
    /// The task.
    pub task: Task,
    /// Fields not modelled here (`_meta`, with the model's immediate answer if the server
    /// gives one).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One page of `tasks/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTasksResult {
    /// The tasks on this page.
    pub tasks: Vec<Task>,
    /// The cursor of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ServerCapabilities {
    /// Whether the server takes `tools/call` as a task (`tasks.requests.tools.call`).
    pub fn tool_tasks(&self) -> bool {
        self.extra
            .get("tasks")
            .and_then(|tasks| tasks.pointer("/requests/tools/call"))
            .is_some()
    }

    /// Whether the server supports `tasks/cancel` (`tasks.cancel`).
    pub fn task_cancel(&self) -> bool {
        self.extra
            .get("tasks")
            .and_then(|tasks| tasks.get("cancel"))
            .is_some()
    }
}

impl Tool {
    /// Whether the tool may be called as a task: its `execution.taskSupport` is `optional` or
    /// `required` (the server must also declare tool tasks, see
    /// [`ServerCapabilities::tool_tasks`]).
    pub fn takes_tasks(&self) -> bool {
        matches!(
            self.extra
                .get("execution")
                .and_then(|execution| execution.get("taskSupport"))
                .and_then(Value::as_str),
            Some("optional" | "required")
        )
    }
}

/// Anything with a `nextCursor`: one page of a paginated list.
pub trait Page: serde::de::DeserializeOwned {
    /// What the list holds.
    type Item;
    /// The method that fetches a page.
    const METHOD: &'static str;
    /// The cursor of the next page, if any.
    fn next_cursor(&self) -> Option<&str>;
    /// The page's items.
    fn into_items(self) -> Vec<Self::Item>;
}

macro_rules! impl_page {
    ($page:ty, $item:ty, $method:literal, $field:ident) => {
        impl Page for $page {
            type Item = $item;
            const METHOD: &'static str = $method;
            fn next_cursor(&self) -> Option<&str> {
                self.next_cursor.as_deref()
            }
            fn into_items(self) -> Vec<$item> {
                self.$field
            }
        }
    };
}

impl_page!(ListToolsResult, Tool, "tools/list", tools);
impl_page!(ListPromptsResult, Prompt, "prompts/list", prompts);
impl_page!(ListResourcesResult, Resource, "resources/list", resources);
impl_page!(ListTasksResult, Task, "tasks/list", tasks);
impl_page!(
    ListResourceTemplatesResult,
    ResourceTemplate,
    "resources/templates/list",
    resource_templates
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"name":"echo","inputSchema":{"type":"object"},"x-vendor":{"a":1},"annotations":{"readOnlyHint":true}}"#;
        let tool: Tool = serde_json::from_str(text).unwrap();
        assert_eq!(tool.extra["x-vendor"]["a"], 1);
        let back: Value = serde_json::to_value(&tool).unwrap();
        let original: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn tool_error_is_a_result() {
        let result: CallToolResult = serde_json::from_str(
            r#"{"content":[{"type":"text","text":"boom"},{"type":"image","data":"AA==","mimeType":"image/png"}],"isError":true}"#,
        )
        .unwrap();
        assert!(result.is_tool_error());
        assert_eq!(result.text(), "boom");
        assert_eq!(result.content[1].extra["mimeType"], "image/png");
    }
}
