//! A minimal hand-written JSON-RPC client used to drive the fake server in these tests.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Lines};

/// How long a test waits for any single message.
pub(crate) const RECV_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Client<R, W> {
    lines: Lines<BufReader<R>>,
    write: Option<W>,
    /// Notifications and server requests seen while waiting for responses.
    pub(crate) others: Vec<Value>,
    /// Lines that were not JSON.
    pub(crate) garbage: Vec<String>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Client<R, W> {
    pub(crate) fn new(read: R, write: W) -> Self {
        Client {
            lines: BufReader::new(read).lines(),
            write: Some(write),
            others: Vec::new(),
            garbage: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, message: Value) {
        let write = self.write.as_mut().expect("input already closed");
        let mut line = message.to_string();
        line.push('\n');
        write.write_all(line.as_bytes()).await.unwrap();
        write.flush().await.unwrap();
    }

    /// Closes the server's input (EOF).
    pub(crate) async fn close(&mut self) {
        if let Some(mut write) = self.write.take() {
            write.shutdown().await.unwrap();
        }
    }

    /// The next JSON message, or `None` on EOF; non-JSON lines go to `garbage`.
    pub(crate) async fn recv(&mut self) -> Option<Value> {
        loop {
            let line = tokio::time::timeout(RECV_TIMEOUT, self.lines.next_line())
                .await
                .expect("timed out waiting for the server")
                .unwrap()?;
            match serde_json::from_str(&line) {
                Ok(message) => return Some(message),
                Err(_) => self.garbage.push(line),
            }
        }
    }

    /// Sends a request and returns the response with its id, keeping everything else in `others`.
    pub(crate) async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        self.response(&id).await
    }

    pub(crate) async fn response(&mut self, id: &Value) -> Value {
        loop {
            let message = self.recv().await.expect("EOF while waiting for a response");
            if message.get("id") == Some(id) && message.get("method").is_none() {
                return message;
            }
            self.others.push(message);
        }
    }

    pub(crate) async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// Runs initialize + notifications/initialized and returns the initialize result.
    pub(crate) async fn initialize(&mut self) -> Value {
        let response = self
            .request(
                json!(0),
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "testkit-it", "version": "0"},
                }),
            )
            .await;
        self.notify("notifications/initialized", json!({})).await;
        response["result"].clone()
    }

    /// Calls a tool and returns the `result` object.
    pub(crate) async fn call(&mut self, id: i64, name: &str, arguments: Value) -> Value {
        let response = self
            .request(
                json!(id),
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .await;
        response
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("tools/call {name} failed: {response}"))
    }
}

/// The text of the first content item of a tool result.
pub(crate) fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap()
}
