//! An agent loop as an agent framework would write it on `mcp-host`: give the model the host's
//! tools in its API's shape, turn each tool call it makes into a host call, and give it back the
//! result, until it answers in text. The "model" here is scripted (two tool calls, then an
//! answer), so the example runs anywhere; the server is the testkit's fake MCP server.
//!
//! `cargo run -p mcp-host --example agent [openai|anthropic|gemini]`
#![allow(clippy::print_stdout)] // Printing the conversation is the point of the example.

use std::time::Duration;

use anyhow::Context as _;
use mcp_host::{AgentScope, ClientConfig, Format, McpHost};
use mcp_host_testkit::{fake_server_path, FakeConfig};
use serde_json::{json, Value};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let format = std::env::args()
        .nth(1)
        .map(|name| Format::from_name(&name).context("the format is openai, anthropic or gemini"))
        .transpose()?
        .unwrap_or(Format::OpenAi);
    let server = ClientConfig {
        args: FakeConfig::default().to_args(),
        ..ClientConfig::new("calc", fake_server_path().to_string_lossy())
    };
    let host = McpHost::new(vec![server])?;
    host.initialize().await?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), converse(&host, format)).await;
    host.shutdown().await;
    outcome.context("the conversation took too long")?
}

async fn converse(host: &McpHost, format: Format) -> anyhow::Result<()> {
    let scope = AgentScope::all();
    let tools = host.tools_for(format, &scope);
    println!("the model is offered {} tools, e.g.:", tools.len());
    println!("{}", serde_json::to_string_pretty(&tools[1])?);
    let mut model = ScriptedModel::default();
    let mut transcript: Vec<Value> =
        vec![json!({"role": "user", "content": "What is 2 + 40, said back to me?"})];
    loop {
        match model.next_turn(format, &transcript) {
            Turn::Call(call) => {
                println!("model calls: {call}");
                let (call, result) = host.call_model_tool(format, &call, &scope).await?;
                let message = call.result_message(format, &result);
                println!("host answers: {message}");
                transcript.push(message);
            }
            Turn::Answer(text) => {
                println!("model answers: {text}");
                return Ok(());
            }
        }
    }
}

/// What the model does next.
enum Turn {
    /// A tool call, in the format's shape.
    Call(Value),
    /// The final answer.
    Answer(String),
}

/// A model that adds with the `add` tool, echoes the sum with `echo`, then answers: what a real
/// model's API would send, turn by turn.
#[derive(Default)]
struct ScriptedModel {
    turn: usize,
}

impl ScriptedModel {
    fn next_turn(&mut self, format: Format, transcript: &[Value]) -> Turn {
        self.turn += 1;
        let last = transcript.last().map(result_text).unwrap_or_default();
        let (name, arguments) = match self.turn {
            1 => ("calc__add", json!({"a": 2, "b": 40})),
            2 => ("calc__echo", json!({"text": format!("the sum is {last}")})),
            _ => return Turn::Answer(last),
        };
        let id = format!("call_{}", self.turn);
        Turn::Call(match format {
            Format::OpenAi => json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            }),
            Format::Anthropic => {
                json!({"type": "tool_use", "id": id, "name": name, "input": arguments})
            }
            Format::Gemini => json!({"functionCall": {"name": name, "args": arguments}}),
        })
    }
}

/// The text of a tool result message in any of the three formats.
fn result_text(message: &Value) -> String {
    let text = message
        .get("content")
        .or_else(|| message.pointer("/functionResponse/response/content"))
        .and_then(Value::as_str);
    text.unwrap_or_default().to_owned()
}
