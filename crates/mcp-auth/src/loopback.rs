//! The loopback redirect of a command-line login (RFC 8252 §7.3): a one-shot HTTP listener on
//! `127.0.0.1:<port>/callback` that the authorization server sends the person's browser back to.
//!
//! [`LoopbackBrowser::bind`] listens (on the given port when it is free, else on any); its
//! [`Browser::visit`] hands the authorization URL to a function of the
//! caller (which prints it and opens a browser), then answers connections one at a time until a
//! `GET /callback` arrives, whose query it returns. Each request is read within 10 s and 8 KiB;
//! the whole wait is bounded by the authorizer's login timeout.

use std::time::Duration;

use reqwest::Url;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::{Browser, BrowserFuture, Callback};

/// The longest request read on the redirect listener.
const MAX_REQUEST_LEN: usize = 8 * 1024;

/// How long one connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Browser`] whose redirect comes back to a listener on this machine.
pub struct LoopbackBrowser {
    listener: TcpListener,
    port: u16,
    title: String,
    show: Box<dyn Fn(&Url) + Send + Sync>,
}

impl std::fmt::Debug for LoopbackBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackBrowser")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl LoopbackBrowser {
    /// Listens on `127.0.0.1:<port>` (`port` when given and free, else a port the system picks);
    /// `show` gets the authorization URL; `title` names what was authorized on the page the
    /// browser shows at the end.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub async fn bind(
        port: Option<u16>,
        title: impl Into<String>,
        show: impl Fn(&Url) + Send + Sync + 'static,
    ) -> std::io::Result<LoopbackBrowser> {
        let listener = match port {
            Some(port) => match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => listener,
                Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
            },
            None => TcpListener::bind(("127.0.0.1", 0)).await?,
        };
        let port = listener.local_addr()?.port();
        Ok(LoopbackBrowser {
            listener,
            port,
            title: title.into(),
            show: Box::new(show),
        })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the redirect.
    async fn wait(&self) -> Result<Callback, String> {
        loop {
            let (stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|error| format!("the redirect listener failed: {error}"))?;
            match tokio::time::timeout(REQUEST_TIMEOUT, self.answer(stream)).await {
                Ok(Some(callback)) => return Ok(callback),
                Ok(None) | Err(_) => continue,
            }
        }
    }

    /// Reads one request; answers it; returns the callback if it was the redirect.
    async fn answer(&self, mut stream: TcpStream) -> Option<Callback> {
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            let n_read = stream.read(&mut buffer).await.ok()?;
            if n_read == 0 || request.len() + n_read > MAX_REQUEST_LEN {
                return None;
            }
            request.extend_from_slice(&buffer[..n_read]);
        }
        let line = request.split(|&b| b == b'\r').next()?;
        let line = std::str::from_utf8(line).ok()?;
        let mut parts = line.split(' ');
        let (method, target) = (parts.next()?, parts.next()?);
        let url = Url::parse(&format!("http://127.0.0.1:{}{target}", self.port)).ok();
        let callback = url
            .filter(|url| method == "GET" && url.path() == "/callback")
            .map(|url| Callback::from_url(&url));
        let (status, body) = match &callback {
            Some(callback) if callback.error.is_none() => (
                "200 OK",
                format!(
                    "<!doctype html><title>mcp-host</title><p>{} is authorized. You can close this window.</p>",
                    escape(&self.title)
                ),
            ),
            Some(_) => (
                "200 OK",
                format!(
                    "<!doctype html><title>mcp-host</title><p>The authorization of {} was refused. You can close this window.</p>",
                    escape(&self.title)
                ),
            ),
            None => ("404 Not Found", String::from("not found")),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        callback
    }
}

impl Browser for LoopbackBrowser {
    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn visit<'a>(&'a self, url: &'a Url) -> BrowserFuture<'a> {
        Box::pin(async move {
            (self.show)(url);
            self.wait().await
        })
    }
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_redirect_is_answered_and_other_requests_are_not_taken_for_it() {
        let browser = LoopbackBrowser::bind(None, "<srv>", |_| {}).await.unwrap();
        let port = browser.port();
        assert_eq!(
            browser.redirect_uri(),
            format!("http://127.0.0.1:{port}/callback")
        );
        let url = Url::parse("https://auth.example/authorize").unwrap();
        let visit = browser.visit(&url);
        let client = async move {
            let get = |path: &'static str| async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                stream
                    .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.unwrap();
                answer
            };
            let other = get("/favicon.ico").await;
            assert!(other.starts_with("HTTP/1.1 404"), "{other}");
            let done = get("/callback?code=c%2B1&state=s&iss=https%3A%2F%2Fas").await;
            assert!(done.contains("&lt;srv&gt; is authorized"), "{done}");
        };
        let (callback, ()) = tokio::join!(visit, client);
        let callback = callback.unwrap();
        assert_eq!(callback.code.as_deref(), Some("c+1"));
        assert_eq!(callback.state.as_deref(), Some("s"));
        assert_eq!(callback.issuer.as_deref(), Some("https://as"));
    }
}
