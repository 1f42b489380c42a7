//! `mcp-host serve --http`: a raw HTTP client talks Streamable HTTP to the gateway process.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::task::JoinSet;

use crate::gateway::signal;
use crate::{binary, fake_entry, run_cli, stderr, write_config, PROMPTLY};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A running `mcp-host serve --http 127.0.0.1:0`, its URL, and its drained stderr.
pub(crate) struct HttpGateway {
    pub(crate) child: tokio::process::Child,
    pub(crate) url: String,
    /// The configuration file it was started with.
    pub(crate) config_path: std::path::PathBuf,
    client: reqwest::Client,
    pub(crate) stderr: Arc<Mutex<String>>,
    _tasks: JoinSet<()>,
}

pub(crate) async fn start_http_gateway(
    config: &Value,
    extra_args: &[&str],
    envs: &[(&str, &str)],
) -> HttpGateway {
    let path = write_config(config);
    // Tests run the binary under test directly; the spawn ban is for library code.
    #[allow(clippy::disallowed_methods)]
    let mut command = tokio::process::Command::new(binary());
    command
        .arg("--config")
        .arg(&path)
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(extra_args)
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let stderr = Arc::new(Mutex::new(String::new()));
    // The gateway announces its address once every server is up.
    let url = tokio::time::timeout(PROMPTLY, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stderr.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        panic!("the gateway exited: {}", stderr.lock().unwrap());
    })
    .await
    .expect("the gateway did not announce its address");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    let mut tasks = JoinSet::new();
    let drained = stderr.clone();
    tasks.spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            drained.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    HttpGateway {
        child,
        url,
        config_path: path,
        client: reqwest::Client::new(),
        stderr,
        _tasks: tasks,
    }
}

impl HttpGateway {
    /// POSTs one message with the given extra headers.
    pub(crate) async fn post(
        &self,
        session: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        tokio::time::timeout(PROMPTLY, request.send())
            .await
            .expect("the request took too long")
            .unwrap()
    }

    /// Initializes a session and returns its id.
    pub(crate) async fn initialize(&self, headers: &[(&str, &str)]) -> String {
        let response = self.post(None, &initialize_request(), headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        let session = response
            .headers()
            .get("mcp-session-id")
            .expect("no session id")
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(session.len(), 32, "{session}");
        assert!(
            session.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "{session}"
        );
        let events = read_events(response).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["id"], 1);
        assert_eq!(events[0]["result"]["serverInfo"]["name"], "mcp-host");
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = self.post(Some(&session), &initialized, headers).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(response.bytes().await.unwrap().is_empty());
        session
    }

    /// Sends SIGTERM and waits (bounded) for a successful exit.
    pub(crate) async fn terminate(self) {
        signal(self.child.id().unwrap(), "TERM").await;
        self.terminate_after_signal().await;
    }

    /// Waits (bounded) for a successful exit after SIGTERM was sent.
    pub(crate) async fn terminate_after_signal(mut self) {
        let status = tokio::time::timeout(PROMPTLY, self.child.wait())
            .await
            .expect("the gateway did not exit")
            .unwrap();
        assert!(
            status.success(),
            "{status:?}: {}",
            self.stderr.lock().unwrap()
        );
    }
}

fn initialize_request() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": "http-test", "version": "1" }
        }
    })
}

pub(crate) fn request(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// Reads a whole SSE response (the gateway closes it after the response) into its messages.
pub(crate) async fn read_events(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let body = tokio::time::timeout(PROMPTLY, response.text())
        .await
        .expect("the stream did not end")
        .unwrap();
    parse_events(&body)
}

pub(crate) fn parse_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let mut id = None;
            let mut data = Vec::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value);
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push(value);
                }
            }
            assert!(
                data.is_empty() || id.is_some(),
                "an event without an id: {event:?}"
            );
            let data = data.join("\n");
            if data.is_empty() {
                // No message: a comment, or the priming event of a request stream.
                return None;
            }
            Some(serde_json::from_str(&data).unwrap())
        })
        .collect()
}

/// Reads from an open SSE stream until an event satisfies `wanted`.
pub(crate) async fn wait_for_event(
    response: &mut reqwest::Response,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let mut text = String::new();
    tokio::time::timeout(PROMPTLY, async {
        loop {
            let chunk = response.chunk().await.unwrap().expect("the stream ended");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            // Only complete events (ended by a blank line) are parsed.
            let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
            if let Some(event) = parse_events(complete)
                .into_iter()
                .find(|event| wanted(event))
            {
                return event;
            }
        }
    })
    .await
    .expect("the event did not come")
}

/// Sends only the head of a POST declaring `content_length` bytes, and returns the status line.
async fn raw_post_head(url: &str, session: &str, content_length: usize) -> String {
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         accept: {ACCEPT_BOTH}\r\nmcp-session-id: {session}\r\ncontent-length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    tokio::time::timeout(PROMPTLY, lines.next_line())
        .await
        .expect("no answer")
        .unwrap()
        .unwrap_or_default()
}

pub(crate) async fn open_stream(gateway: &HttpGateway, session: &str) -> reqwest::Response {
    tokio::time::timeout(
        PROMPTLY,
        gateway
            .client
            .get(&gateway.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .send(),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_gateway_serves_sessions() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": {
        "one": fake_entry(&FakeConfig::default(), &marker),
        "two": fake_entry(&FakeConfig::default(), &marker),
    }});
    let gateway = start_http_gateway(&config, &[], &[]).await;
    let session_id = gateway
        .initialize(&[("mcp-protocol-version", "2025-11-25")])
        .await;
    let session = Some(session_id.as_str());

    // tools/list comes back as an SSE stream holding just the response.
    let response = gateway
        .post(session, &request(2, "tools/list", json!({})), &[])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = read_events(response).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["id"], 2);
    let names: Vec<&str> = events[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"one__echo") && names.contains(&"two__echo"),
        "{names:?}"
    );

    // A call with a progress token: its progress, then its result, in one stream.
    let call = request(
        3,
        "tools/call",
        json!({ "name": "one__slow", "arguments": { "ms": 200 }, "_meta": { "progressToken": "tok-3" } }),
    );
    let events = read_events(gateway.post(session, &call, &[]).await).await;
    let (last, progress) = events.split_last().unwrap();
    assert_eq!(last["id"], 3, "{events:?}");
    assert_eq!(last["result"]["content"][0]["text"], "slept 200 ms");
    assert!(!progress.is_empty(), "{events:?}");
    assert!(progress
        .iter()
        .all(|event| event["method"] == "notifications/progress"
            && event["params"]["progressToken"] == "tok-3"));

    // A client that accepts only JSON gets the response as a plain JSON body.
    let call = request(
        4,
        "tools/call",
        json!({ "name": "two__echo", "arguments": { "text": "plain" } }),
    );
    let response = gateway
        .client
        .post(&gateway.url)
        .header("accept", "application/json")
        .header("mcp-session-id", session_id.as_str())
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["id"], 4);
    assert_eq!(body["result"]["content"][0]["text"], "plain");

    // A notification and a response are accepted without a body.
    let cancelled = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 99 } });
    assert_eq!(
        gateway.post(session, &cancelled, &[]).await.status(),
        StatusCode::ACCEPTED
    );
    let answer = json!({ "jsonrpc": "2.0", "id": "srv-1", "result": {} });
    assert_eq!(
        gateway.post(session, &answer, &[]).await.status(),
        StatusCode::ACCEPTED
    );

    // Refusals.
    let list = request(5, "tools/list", json!({}));
    let unknown = gateway
        .post(Some("00000000000000000000000000000000"), &list, &[])
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        gateway.post(None, &list, &[]).await.status(),
        StatusCode::BAD_REQUEST
    );
    let foreign = gateway
        .post(session, &list, &[("origin", "http://evil.example")])
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let rebinding = gateway
        .post(
            session,
            &list,
            &[("origin", "http://localhost.evil.example")],
        )
        .await;
    assert_eq!(rebinding.status(), StatusCode::FORBIDDEN);
    let local = gateway
        .post(session, &list, &[("origin", "http://localhost:5173")])
        .await;
    assert_eq!(local.status(), StatusCode::OK);
    let old = gateway
        .post(session, &list, &[("mcp-protocol-version", "1999-01-01")])
        .await;
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    let batch = json!([list.clone()]);
    assert_eq!(
        gateway.post(session, &batch, &[]).await.status(),
        StatusCode::BAD_REQUEST
    );
    let response = gateway
        .client
        .post(&gateway.url)
        .header("mcp-session-id", session_id.as_str())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A body over 16 MiB is refused from its declared length, before it is sent.
    let status_line = raw_post_head(&gateway.url, session_id.as_str(), 17 * 1024 * 1024).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    // The GET stream: one per session; it carries list_changed notifications.
    let mut stream = open_stream(&gateway, session_id.as_str()).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let second = open_stream(&gateway, session_id.as_str()).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let touch = request(6, "tools/call", json!({ "name": "one__touch" }));
    let events = read_events(gateway.post(session, &touch, &[]).await).await;
    assert_eq!(events.last().unwrap()["id"], 6, "{events:?}");
    let changed = wait_for_event(&mut stream, |event| {
        event["method"] == "notifications/tools/list_changed"
    })
    .await;
    assert!(changed.get("id").is_none(), "{changed:?}");

    // Sessions are independent: a second one works, and deleting the first leaves it alone.
    let other = gateway.initialize(&[]).await;
    assert_ne!(Some(other.as_str()), session);
    let delete = gateway
        .client
        .delete(&gateway.url)
        .header("mcp-session-id", session_id.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    // Its GET stream ends with it.
    let ended = tokio::time::timeout(PROMPTLY, async {
        while stream.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the GET stream outlived its session");
    assert_eq!(
        gateway.post(session, &list, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    let response = gateway.post(Some(&other), &list, &[]).await;
    assert_eq!(read_events(response).await[0]["id"], 5);

    // A cancelled request gets no response: its stream ends without one.
    let slow = request(
        8,
        "tools/call",
        json!({ "name": "two__slow", "arguments": { "ms": 60000 } }),
    );
    let cancelled_call = gateway.post(Some(&other), &slow, &[]).await;
    assert_eq!(cancelled_call.status(), StatusCode::OK);
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 8 } });
    assert_eq!(
        gateway.post(Some(&other), &cancel, &[]).await.status(),
        StatusCode::ACCEPTED
    );
    let events = read_events(cancelled_call).await;
    assert!(
        events.iter().all(|event| event.get("id").is_none()),
        "{events:?}"
    );

    // SIGTERM with a call in flight and a GET stream open: both end, every server stops.
    let mut stream = open_stream(&gateway, &other).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let slow = request(
        7,
        "tools/call",
        json!({ "name": "two__slow", "arguments": { "ms": 60000 } }),
    );
    let in_flight = gateway.post(Some(&other), &slow, &[]).await;
    assert_eq!(in_flight.status(), StatusCode::OK);
    gateway.terminate().await;
    assert!(tokio::time::timeout(PROMPTLY, in_flight.text())
        .await
        .is_ok());
    assert!(tokio::time::timeout(PROMPTLY, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await
    .is_ok());
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_gateway_requires_the_bearer_token() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "one": fake_entry(&FakeConfig::default(), &marker) } });
    let token = unique_marker();
    let gateway = start_http_gateway(
        &config,
        &["--bearer-token-env", "MCP_HOST_TEST_TOKEN"],
        &[("MCP_HOST_TEST_TOKEN", &token)],
    )
    .await;
    let missing = gateway.post(None, &initialize_request(), &[]).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers().get("www-authenticate").unwrap(), "Bearer");
    let wrong = gateway
        .post(
            None,
            &initialize_request(),
            &[("authorization", "Bearer not-the-token")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {token}");
    let session = gateway.initialize(&[("authorization", &bearer)]).await;
    // Every request needs it, not just the first.
    let list = request(2, "tools/list", json!({}));
    let anonymous = gateway.post(Some(&session), &list, &[]).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let response = gateway
        .post(Some(&session), &list, &[("authorization", &bearer)])
        .await;
    assert_eq!(read_events(response).await[0]["id"], 2);
    // The token is never logged.
    let logs = gateway.stderr.lock().unwrap().clone();
    assert!(!logs.contains(&token), "{logs}");
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn http_gateway_refuses_unsafe_setups() {
    let marker = unique_marker();
    let config = write_config(
        &json!({ "mcpServers": { "one": fake_entry(&FakeConfig::default(), &marker) } }),
    );
    // A non-loopback address without a token: refused before any server starts.
    let output = run_cli(&["serve", "--http", "0.0.0.0:0"], Some(&config)).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--bearer-token-env"),
        "{}",
        stderr(&output)
    );
    // A token variable that is not set.
    let output = run_cli(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--bearer-token-env",
            "MCP_HOST_TEST_UNSET_VARIABLE",
        ],
        Some(&config),
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("MCP_HOST_TEST_UNSET_VARIABLE"),
        "{}",
        stderr(&output)
    );
    // Security options without --http are a usage error.
    let output = run_cli(
        &["serve", "--allow-origin", "https://a.example"],
        Some(&config),
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert_no_process_left(&marker).await;
}

/// A request stream starts with a priming event (an id, the reconnection delay, no data); if the
/// client goes away before the response, a GET with that `Last-Event-ID` picks the request up
/// where it was, and gets its remaining progress and its response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_stream_is_resumed_with_last_event_id() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "one": fake_entry(&FakeConfig::default(), &marker) }});
    let gateway = start_http_gateway(&config, &[], &[]).await;
    let session = gateway.initialize(&[]).await;

    let call = request(
        7,
        "tools/call",
        json!({ "name": "one__slow", "arguments": { "ms": 600 }, "_meta": { "progressToken": "p7" } }),
    );
    let mut response = gateway.post(Some(&session), &call, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Read until the priming event is complete, then go away.
    let mut text = String::new();
    let priming_id = tokio::time::timeout(PROMPTLY, async {
        loop {
            let chunk = response.chunk().await.unwrap().expect("the stream ended");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some(end) = text.find("\n\n") {
                return text[..end].to_owned();
            }
        }
    })
    .await
    .expect("no priming event");
    let lines: Vec<&str> = priming_id.lines().collect();
    assert!(
        lines.contains(&"retry: 1000") && lines.contains(&"data: "),
        "{lines:?}"
    );
    let id = lines
        .iter()
        .find_map(|line| line.strip_prefix("id: "))
        .expect("the priming event has an id")
        .to_owned();
    drop(response);

    let mut resumed = tokio::time::timeout(
        PROMPTLY,
        gateway
            .client
            .get(&gateway.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("last-event-id", &id)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let result = wait_for_event(&mut resumed, |event| event["id"] == 7).await;
    assert!(result["result"]["content"].is_array(), "{result}");

    // A resumption while the first response is still open takes the stream over: the result
    // comes on the GET, and the first response ends without it.
    let call = request(
        8,
        "tools/call",
        json!({ "name": "one__slow", "arguments": { "ms": 600 } }),
    );
    let mut first = gateway.post(Some(&session), &call, &[]).await;
    let mut head = String::new();
    let id = tokio::time::timeout(PROMPTLY, async {
        loop {
            let chunk = first.chunk().await.unwrap().expect("the stream ended");
            head.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some(end) = head.find("\n\n") {
                let event = &head[..end];
                return event
                    .lines()
                    .find_map(|line| line.strip_prefix("id: "))
                    .unwrap()
                    .to_owned();
            }
        }
    })
    .await
    .unwrap();
    let mut taken = gateway
        .client
        .get(&gateway.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), StatusCode::OK);
    let result = wait_for_event(&mut taken, |event| event["id"] == 8).await;
    assert!(result["result"]["content"].is_array(), "{result}");
    let rest = tokio::time::timeout(PROMPTLY, first.text())
        .await
        .expect("the first response ends")
        .unwrap();
    assert!(!rest.contains("\"id\":8"), "{rest}");

    // An id nobody kept opens the ordinary GET stream instead.
    let other = gateway
        .client
        .get(&gateway.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", "999999")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    drop(other);
    drop(resumed);
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

/// mcp-host as the client of mcp-host: a configuration whose one server is the URL of a
/// `serve --http` gateway, in each revision the client can negotiate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_host_reaches_its_own_http_gateway() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "one": fake_entry(&FakeConfig::default(), &marker) }});
    let gateway = start_http_gateway(&config, &[], &[]).await;
    for protocol in ["2025-11-25", "auto", "2026-07-28"] {
        let client_config = write_config(&json!({ "mcpServers": {
            "far": { "type": "http", "url": gateway.url, "protocol": protocol },
        }}));
        let tools = crate::run_cli(&["tools"], Some(&client_config)).await;
        let listed = String::from_utf8_lossy(&tools.stdout);
        assert!(
            tools.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&tools.stderr)
        );
        assert!(
            listed.contains("far__one__echo"),
            "{listed}{}",
            String::from_utf8_lossy(&tools.stderr)
        );
        let call = crate::run_cli(
            &["call", "far__one__echo", r#"{"text":"through two hosts"}"#],
            Some(&client_config),
        )
        .await;
        assert!(
            call.status.success(),
            "{protocol}: {}",
            String::from_utf8_lossy(&call.stderr)
        );
        assert!(String::from_utf8_lossy(&call.stdout).contains("through two hosts"));
        let status = crate::run_cli(&["status", "--json"], Some(&client_config)).await;
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        // The gateway speaks both revisions: `auto` gets 2026-07-28 from its `server/discover`.
        let expected = if protocol == "2025-11-25" {
            "2025-11-25"
        } else {
            "2026-07-28"
        };
        assert_eq!(
            status[0]["protocolVersion"], expected,
            "{protocol}: {status}"
        );
    }
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}
