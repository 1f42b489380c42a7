//! `bench-echo-server`: the MCP server every benchmark client talks to, on stdio, doing as little as possible.
//!
//! It reads newline-delimited JSON-RPC from stdin with blocking std I/O and answers `initialize`
//! (echoing the client's protocol revision), `ping`, `tools/list` (one tool, `echo`) and
//! `tools/call` (`echo` returns its `text` argument as text content); notifications are ignored
//! and any other request gets -32601.
//! Only the envelope is parsed, borrowing from the input line, and the `text` argument is copied
//! into the reply as the raw JSON string it already is, so the server is never the bottleneck.
//! Replies are flushed only when no more input is buffered, which batches pipelined requests.
//! It exits when stdin ends. Other arguments are ignored (the benchmark passes a marker in them,
//! to find leftover processes).
//!
//! With `--http ADDR` it serves the same answers over Streamable HTTP instead, at
//! `http://ADDR/mcp` (`ADDR` may end in port 0; the line `listening on http://HOST:PORT/mcp` on
//! stderr tells the port): the benchmark's "direct" HTTP server, the baseline that the gateways
//! are compared with. A POST's message is answered by the same function as a stdio line, in
//! process, as one complete body: an SSE event when the client accepts `text/event-stream`, else
//! JSON; a notification gets 202. `initialize` hands out an `Mcp-Session-Id` (session ids are not
//! checked afterwards: the server keeps no state), GET is 405 (no standalone stream) and DELETE
//! 200. Accepted connections set `TCP_NODELAY`. It runs until SIGINT or SIGTERM.

use std::io::{BufRead, BufReader, BufWriter, Write};

use serde::Deserialize;
use serde_json::value::RawValue;

mod http {
    //! The `--http` mode: the echo server's answers over Streamable HTTP, with axum.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use axum::body::{Body, Bytes};
    use axum::extract::State;
    use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
    use axum::response::Response;
    use axum::routing::post;
    use axum::Router;

    /// Serves `addr` until SIGINT or SIGTERM.
    pub(crate) fn serve(addr: &str) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            use axum::serve::ListenerExt as _;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let local_addr = listener.local_addr()?;
            let listener = listener.tap_io(|stream| {
                // Our answers are one write each, but a baseline must not be the one to stall.
                let _ = stream.set_nodelay(true);
            });
            let sessions = Arc::new(AtomicU64::new(0));
            let app = Router::new()
                .route(
                    "/mcp",
                    post(handle_post).get(handle_get).delete(handle_delete),
                )
                .with_state(sessions);
            {
                use std::io::Write as _;
                let mut stderr = std::io::stderr().lock();
                writeln!(stderr, "listening on http://{local_addr}/mcp")?;
                stderr.flush()?;
            }
            axum::serve(listener, app)
                .with_graceful_shutdown(stop_signal())
                .await
        })
    }

    async fn stop_signal() {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }

    async fn handle_post(
        State(sessions): State<Arc<AtomicU64>>,
        headers: HeaderMap,
        message: Bytes,
    ) -> Response {
        let mut answer = Vec::with_capacity(256);
        if super::answer(&message, &mut answer).is_err() || answer.is_empty() {
            return status(StatusCode::ACCEPTED);
        }
        // `answer` wrote one line; the body carries the message without its newline.
        answer.pop();
        let event_stream = headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"));
        let (content_type, body) = if event_stream {
            let mut event = Vec::with_capacity(answer.len() + 24);
            event.extend_from_slice(b"event: message\ndata: ");
            event.extend_from_slice(&answer);
            event.extend_from_slice(b"\n\n");
            ("text/event-stream", event)
        } else {
            ("application/json", answer)
        };
        let mut response = Response::new(Body::from(body));
        let response_headers = response.headers_mut();
        response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if method(&message) == Some("initialize") {
            let id = sessions.fetch_add(1, Ordering::Relaxed);
            if let Ok(value) = HeaderValue::from_str(&format!("{}-{id}", std::process::id())) {
                response_headers.insert("mcp-session-id", value);
            }
        }
        response
    }

    async fn handle_get() -> Response {
        status(StatusCode::METHOD_NOT_ALLOWED)
    }

    async fn handle_delete() -> Response {
        status(StatusCode::OK)
    }

    fn status(code: StatusCode) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = code;
        response
    }

    /// The method of a POSTed message, if it has one.
    fn method(body: &[u8]) -> Option<&str> {
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow, default)]
            method: Option<&'a str>,
        }
        serde_json::from_slice::<Envelope<'_>>(body)
            .ok()
            .and_then(|envelope| envelope.method)
    }
}

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let http_addr = args
        .iter()
        .position(|arg| arg == "--http")
        .and_then(|idx| args.get(idx + 1));
    let outcome = match http_addr {
        Some(addr) => http::serve(addr),
        None => serve(),
    };
    let code = match outcome {
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
