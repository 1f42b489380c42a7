//! The HTTP floor: a minimal keep-alive HTTP/1.1 client over one socket that POSTs a JSON-RPC message and reads the whole answer.
//!
//! A request is written in one `write` (head and body in one buffer); the answer is read as far
//! as HTTP framing requires (`Content-Length`, or chunks up to the last one) and not parsed
//! further: an SSE stream or a JSON body alike, the only checks are the status and that the body
//! holds a `"result"`. No header is looked at but the framing ones and `Mcp-Session-Id`.
//! The socket sets `TCP_NODELAY`, as every socket we own does.

use std::net::SocketAddr;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The protocol revision the floor speaks.
const PROTOCOL_VERSION: &str = "2025-11-25";

/// Where to POST: address, `Host` header and path, from `http://HOST:PORT/PATH`.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    host: String,
    path: String,
    /// The bearer token sent in `Authorization`, if any.
    bearer: Option<String>,
}

impl Endpoint {
    /// Parses `http://IP:PORT/PATH` (the benchmark only ever uses loopback IP addresses).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("`{url}` is not an http:// URL"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("`{host}` is not IP:PORT"))?;
        Ok(Endpoint {
            addr,
            host: host.to_owned(),
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            bearer: None,
        })
    }

    /// The same endpoint, with `Authorization: Bearer <token>` on every request.
    pub(crate) fn with_bearer(mut self, token: &str) -> Endpoint {
        self.bearer = Some(token.to_owned());
        self
    }
}

/// One kept-alive connection.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    endpoint: Endpoint,
    /// What was read and not consumed yet: `input[consumed..]`.
    input: Vec<u8>,
    consumed: usize,
    /// The request being written (reused).
    output: Vec<u8>,
    /// The last answer's body (reused).
    body: Vec<u8>,
}

/// What an answer's head said.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) session_id: Option<String>,
}

impl Connection {
    pub(crate) async fn connect(endpoint: &Endpoint) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .with_context(|| format!("cannot connect to {}", endpoint.addr))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            endpoint: endpoint.clone(),
            input: Vec::with_capacity(8 * 1024),
            consumed: 0,
            output: Vec::with_capacity(1024),
            body: Vec::with_capacity(1024),
        })
    }

    /// The last answer's body.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    /// Sends one request and reads its whole answer.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        session_id: Option<&str>,
        message: &[u8],
    ) -> anyhow::Result<Answer> {
        self.output.clear();
        let output = &mut self.output;
        output.extend_from_slice(method.as_bytes());
        output.push(b' ');
        output.extend_from_slice(self.endpoint.path.as_bytes());
        output.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        output.extend_from_slice(self.endpoint.host.as_bytes());
        output.extend_from_slice(
            b"\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n",
        );
        if let Some(token) = &self.endpoint.bearer {
            output.extend_from_slice(b"Authorization: Bearer ");
            output.extend_from_slice(token.as_bytes());
            output.extend_from_slice(b"\r\n");
        }
        if let Some(session_id) = session_id {
            output.extend_from_slice(b"Mcp-Session-Id: ");
            output.extend_from_slice(session_id.as_bytes());
            output.extend_from_slice(b"\r\nMCP-Protocol-Version: ");
            output.extend_from_slice(PROTOCOL_VERSION.as_bytes());
            output.extend_from_slice(b"\r\n");
        }
        output.extend_from_slice(b"Content-Length: ");
        output.extend_from_slice(message.len().to_string().as_bytes());
        output.extend_from_slice(b"\r\n\r\n");
        output.extend_from_slice(message);
        self.stream.write_all(&self.output).await?;
        self.read_answer().await
    }

    /// POSTs a JSON-RPC request and checks that a result came back.
    pub(crate) async fn post_request(
        &mut self,
        session_id: Option<&str>,
        message: &[u8],
    ) -> anyhow::Result<Answer> {
        let answer = self.request("POST", session_id, message).await?;
        if answer.status != 200 {
            bail!(
                "HTTP {} for a request: {}",
                answer.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        if !contains(&self.body, b"\"result\"") {
            bail!("no result in {}", String::from_utf8_lossy(&self.body));
        }
        Ok(answer)
    }

    async fn read_answer(&mut self) -> anyhow::Result<Answer> {
        let head_end = loop {
            if let Some(end) = find(&self.input[self.consumed..], b"\r\n\r\n") {
                break self.consumed + end + 4;
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.input[self.consumed..head_end])
            .context("the answer's head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .context("no status line")?;
        let mut content_length = None;
        let mut chunked = false;
        let mut session_id = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse::<usize>().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("mcp-session-id") {
                session_id = Some(value.to_owned());
            }
        }
        self.consumed = head_end;
        self.body.clear();
        if chunked {
            self.read_chunks().await?;
        } else if let Some(length) = content_length {
            self.read_exactly(length).await?;
        } else if !matches!(status, 202 | 204 | 304) && status >= 200 {
            bail!(
                "an answer without Content-Length or chunks (HTTP {status}) cannot be kept alive"
            );
        }
        Ok(Answer { status, session_id })
    }

    async fn read_chunks(&mut self) -> anyhow::Result<()> {
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.input[self.consumed..], b"\r\n") {
                    break self.consumed + end;
                }
                self.read_more().await?;
            };
            let size_text = std::str::from_utf8(&self.input[self.consumed..line_end])
                .context("a chunk size is not UTF-8")?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size `{size_text}`"))?;
            self.consumed = line_end + 2;
            if size == 0 {
                // Trailers (none expected), up to the empty line.
                loop {
                    let line_end = loop {
                        if let Some(end) = find(&self.input[self.consumed..], b"\r\n") {
                            break self.consumed + end;
                        }
                        self.read_more().await?;
                    };
                    let empty = line_end == self.consumed;
                    self.consumed = line_end + 2;
                    if empty {
                        return Ok(());
                    }
                }
            }
            self.read_exactly(size).await?;
            while self.input.len() - self.consumed < 2 {
                self.read_more().await?;
            }
            self.consumed += 2;
        }
    }

    /// Moves `length` bytes of body from the input (reading as needed) into `body`.
    async fn read_exactly(&mut self, length: usize) -> anyhow::Result<()> {
        while self.input.len() - self.consumed < length {
            self.read_more().await?;
        }
        self.body
            .extend_from_slice(&self.input[self.consumed..self.consumed + length]);
        self.consumed += length;
        Ok(())
    }

    /// Reads what the socket has into `input`, after dropping what was consumed; fails at end of stream.
    async fn read_more(&mut self) -> anyhow::Result<()> {
        if self.consumed > 0 {
            self.input.drain(..self.consumed);
            self.consumed = 0;
        }
        let filled = self.input.len();
        if self.input.capacity() - filled < 4096 {
            self.input.reserve(8 * 1024);
        }
        let spare = self.input.capacity() - filled;
        self.input.resize(filled + spare, 0);
        let read = self.stream.read(&mut self.input[filled..]).await;
        let n_read = match read {
            Ok(n_read) => n_read,
            Err(error) => {
                self.input.truncate(filled);
                return Err(error.into());
            }
        };
        self.input.truncate(filled + n_read);
        if n_read == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}

/// Opens a session: `initialize` on a new connection, then `notifications/initialized`; the
/// connection and the session id the server gave (if any).
pub(crate) async fn open_session(
    endpoint: &Endpoint,
) -> anyhow::Result<(Connection, Option<String>)> {
    let mut connection = Connection::connect(endpoint).await?;
    let answer = connection
        .post_request(
            None,
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw-http","version":"0"}}}"#,
        )
        .await?;
    let id = answer.session_id;
    let answer = connection
        .request(
            "POST",
            id.as_deref(),
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await?;
    if answer.status != 202 && answer.status != 200 {
        bail!("HTTP {} for notifications/initialized", answer.status);
    }
    Ok((connection, id))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let endpoint = Endpoint::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(endpoint.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(endpoint.host, "127.0.0.1:8080");
        assert_eq!(endpoint.path, "/mcp");
        assert_eq!(Endpoint::parse("http://127.0.0.1:80").unwrap().path, "/");
        assert!(Endpoint::parse("https://127.0.0.1:80/").is_err());
        assert!(Endpoint::parse("http://localhost:80/").is_err());
    }

    /// A server that writes each answer of `answers` in pieces, one answer per request it reads;
    /// the client must read each whole body.
    async fn check(answers: &[&[&[u8]]], expect_bodies: &[&str]) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = async {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for pieces in answers {
                let _ = stream.read(&mut buf).await.unwrap();
                for piece in *pieces {
                    stream.write_all(piece).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        };
        let client = async {
            let endpoint = Endpoint::parse(&format!("http://{addr}/mcp")).unwrap();
            let mut connection = Connection::connect(&endpoint).await.unwrap();
            for expect in expect_bodies {
                connection.request("POST", Some("s"), b"{}").await.unwrap();
                assert_eq!(String::from_utf8_lossy(connection.body()), *expect);
            }
        };
        tokio::join!(server, client);
    }

    #[tokio::test]
    async fn framing() {
        check(
            &[
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
                &[
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"3\r\nabc\r\n",
                    b"2;x=y\r\nde\r\n0\r\n\r\n",
                ],
                &[b"HTTP/1.1 202 Accepted\r\n\r\n"],
                &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r", b"\nok"],
            ],
            &["hello", "abcde", "", "ok"],
        )
        .await;
    }
}
