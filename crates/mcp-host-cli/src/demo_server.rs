//! `mcp-host demo-server`: a small MCP server on stdio, for the embedded demo and for trying things.

use std::time::Duration;

use mcp_session::protocol::{
    ListChangedCapability, Progress, ResourcesCapability, RpcError, ServerCapabilities,
};
use mcp_session::server::{serve, IncomingRequest, ServerOptions};
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Runs the demo server on stdin/stdout until stdin closes.
pub(crate) async fn run(name: &str) -> anyhow::Result<()> {
    let transport = mcp_gateway::stdio_transport();
    let mut options = ServerOptions::new(name, env!("CARGO_PKG_VERSION"));
    options.capabilities = ServerCapabilities {
        tools: Some(ListChangedCapability::default()),
        prompts: Some(ListChangedCapability::default()),
        resources: Some(ResourcesCapability::default()),
        logging: Some(json!({})),
        ..ServerCapabilities::default()
    };
    options.instructions =
        Some("A demo server: echo, add, sleep, a readme resource and a prompt.".to_owned());
    let (_peer, connection, mut requests) = serve(transport, options);
    let mut handlers = JoinSet::new();
    let server_name = name.to_owned();
    let serving = async {
        while let Some(request) = requests.recv().await {
            handlers.spawn(handle(server_name.clone(), request));
        }
    };
    let ended = tokio::select! {
        ended = connection => ended,
        () = serving => Ok(()),
    };
    handlers.shutdown().await;
    ended?;
    Ok(())
}

fn tools() -> Value {
    json!([
        {
            "name": "echo",
            "description": "Returns its `text` argument.",
            "inputSchema": {
                "type": "object",
                "properties": { "text": { "type": "string", "description": "What to echo." } },
                "required": ["text"]
            }
        },
        {
            "name": "add",
            "description": "Adds two numbers.",
            "inputSchema": {
                "type": "object",
                "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                "required": ["a", "b"]
            },
            "outputSchema": {
                "type": "object",
                "properties": { "sum": { "type": "number" } },
                "required": ["sum"]
            }
        },
        {
            "name": "sleep",
            "description": "Waits `ms` milliseconds, reporting progress ten times.",
            "inputSchema": {
                "type": "object",
                "properties": { "ms": { "type": "integer", "minimum": 0, "maximum": 600000 } },
                "required": ["ms"]
            }
        }
    ])
}

async fn handle(name: String, request: IncomingRequest) {
    let outcome = match request.method() {
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => call_tool(&request).await,
        "prompts/list" => Ok(json!({ "prompts": [{
            "name": "summarize",
            "description": "Asks the model to summarise a topic in three sentences.",
            "arguments": [{ "name": "topic", "description": "What to summarise.", "required": true }]
        }] })),
        "prompts/get" => {
            let topic = request
                .params()
                .and_then(|params| params["arguments"]["topic"].as_str())
                .map(str::to_owned);
            match topic {
                Some(topic) => Ok(json!({
                    "description": "Summarise a topic",
                    "messages": [{ "role": "user", "content": { "type": "text",
                        "text": format!("Summarise {topic} in three sentences.") } }]
                })),
                None => Err(RpcError::invalid_params("argument `topic` is required")),
            }
        }
        "resources/list" => Ok(json!({ "resources": [{
            "uri": format!("demo://{name}/readme"),
            "name": "readme",
            "description": "What this demo server does.",
            "mimeType": "text/plain"
        }] })),
        "resources/templates/list" => Ok(json!({ "resourceTemplates": [] })),
        "resources/read" => {
            let uri = request
                .params()
                .and_then(|params| params["uri"].as_str())
                .unwrap_or_default()
                .to_owned();
            if uri == format!("demo://{name}/readme") {
                Ok(json!({ "contents": [{ "uri": uri, "mimeType": "text/plain",
                    "text": format!("{name} is a demo MCP server built into mcp-host. Try its echo, add and sleep tools.") }] }))
            } else {
                Err(RpcError {
                    code: -32002,
                    message: "resource not found".to_owned(),
                    data: Some(json!({ "uri": uri })),
                })
            }
        }
        "logging/setLevel" => Ok(json!({})),
        other => Err(RpcError::method_not_found(other)),
    };
    request.respond(outcome);
}

async fn call_tool(request: &IncomingRequest) -> Result<Value, RpcError> {
    let params = request.params().cloned().unwrap_or(Value::Null);
    let arguments = &params["arguments"];
    match params["name"].as_str() {
        Some("echo") => match arguments["text"].as_str() {
            Some(text) => Ok(text_result(text, false)),
            None => Err(RpcError::invalid_params("argument `text` must be a string")),
        },
        Some("add") => match (arguments["a"].as_f64(), arguments["b"].as_f64()) {
            (Some(a), Some(b)) => {
                let sum = a + b;
                let mut result = text_result(&sum.to_string(), false);
                result["structuredContent"] = json!({ "sum": sum });
                Ok(result)
            }
            _ => Err(RpcError::invalid_params(
                "arguments `a` and `b` must be numbers",
            )),
        },
        Some("sleep") => {
            let Some(ms) = arguments["ms"].as_u64().filter(|ms| *ms <= 600_000) else {
                return Err(RpcError::invalid_params(
                    "argument `ms` must be an integer from 0 to 600000",
                ));
            };
            let step = Duration::from_millis(ms / 10);
            for done in 1..=10u32 {
                tokio::select! {
                    () = tokio::time::sleep(step) => {}
                    () = request.cancellation().cancelled() => {
                        return Err(RpcError::internal("cancelled"));
                    }
                }
                request.progress(&Progress {
                    progress: f64::from(done),
                    total: Some(10.0),
                    message: Some(format!("{}/{ms} ms", u64::from(done) * (ms / 10))),
                });
            }
            Ok(text_result(&format!("slept {ms} ms"), false))
        }
        Some(other) => Ok(text_result(&format!("unknown tool: {other}"), true)),
        None => Err(RpcError::invalid_params("`name` is required")),
    }
}

fn text_result(text: &str, is_error: bool) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}
