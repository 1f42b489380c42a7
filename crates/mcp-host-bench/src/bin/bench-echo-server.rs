//! `bench-echo-server`: the MCP server every benchmark client talks to, on stdio, doing as little as possible.
//!
//! It reads newline-delimited JSON-RPC from stdin with blocking std I/O and answers `initialize`
//! (echoing the client's protocol revision), `ping`, `tools/list` (one tool, `echo`) and
//! `tools/call` (`echo` returns its `text` argument as text content); notifications are ignored
//! and any other request gets -32601.
//! Only the envelope is parsed, borrowing from the input line, and the `text` argument is copied
//! into the reply as the raw JSON string it already is, so the server is never the bottleneck.
//! Replies are flushed only when no more input is buffered, which batches pipelined requests.
//! It exits when stdin ends. Arguments are ignored (the benchmark passes a marker in them, to find
//! leftover processes).

use std::io::{BufRead, BufReader, BufWriter, Write};

use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope of a message from the client.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// `initialize` params: only the revision matters.
#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<&'a str>,
}

/// `tools/call` params.
#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow, default)]
    arguments: Option<EchoArguments<'a>>,
}

/// The `echo` tool's arguments, with `text` kept as raw JSON.
#[derive(Deserialize)]
struct EchoArguments<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

const TOOLS: &str = r#"{"tools":[{"name":"echo","description":"Returns its `text` argument.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}}]}"#;

fn main() {
    let code = match serve() {
        Ok(()) => 0,
        // A closed stdout is how a client that went away looks; anything else is worth a line.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "bench-echo-server: {error}");
            1
        }
    };
    std::process::exit(code);
}

fn serve() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(64 * 1024, stdin.lock());
    let stdout = std::io::stdout();
    let mut output = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            output.flush()?;
            return Ok(());
        }
        answer(&line, &mut output)?;
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
}

/// Writes the answer to one line, if it calls for one.
fn answer(line: &[u8], output: &mut impl Write) -> std::io::Result<()> {
    let Ok(message) = serde_json::from_slice::<Message<'_>>(line) else {
        return Ok(());
    };
    let (Some(id), Some(method)) = (message.id, message.method) else {
        // A notification (or a response): nothing to say.
        return Ok(());
    };
    let id = id.get().as_bytes();
    let params = message.params.map_or("{}", RawValue::get);
    match method {
        "tools/call" => match serde_json::from_str::<CallParams<'_>>(params) {
            Ok(call) if call.name == "echo" => {
                let text = call
                    .arguments
                    .and_then(|arguments| arguments.text)
                    .map_or("\"\"", RawValue::get);
                reply(
                    output,
                    id,
                    &[
                        br#"{"content":[{"type":"text","text":"#,
                        text.as_bytes(),
                        b"}]}",
                    ],
                )
            }
            _ => error(output, id, -32602, "unknown tool"),
        },
        "ping" => reply(output, id, &[b"{}"]),
        "tools/list" => reply(output, id, &[TOOLS.as_bytes()]),
        "initialize" => {
            let version = serde_json::from_str::<InitializeParams<'_>>(params)
                .ok()
                .and_then(|params| params.protocol_version)
                .unwrap_or("2025-11-25");
            reply(
                output,
                id,
                &[
                    br#"{"protocolVersion":""#,
                    version.as_bytes(),
                    br#"","capabilities":{"tools":{}},"serverInfo":{"name":"bench-echo-server","version":"0.1.0"}}"#,
                ],
            )
        }
        _ => error(output, id, -32601, "method not found"),
    }
}

fn reply(output: &mut impl Write, id: &[u8], result: &[&[u8]]) -> std::io::Result<()> {
    output.write_all(br#"{"jsonrpc":"2.0","id":"#)?;
    output.write_all(id)?;
    output.write_all(br#","result":"#)?;
    for part in result {
        output.write_all(part)?;
    }
    output.write_all(b"}\n")
}

fn error(output: &mut impl Write, id: &[u8], code: i32, message: &str) -> std::io::Result<()> {
    write!(
        output,
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":"{message}"}}}}"#,
        String::from_utf8_lossy(id)
    )?;
    output.write_all(b"\n")
}
