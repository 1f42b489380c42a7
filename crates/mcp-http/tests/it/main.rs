//! Integration tests of the Streamable HTTP client transport, driven by a real session against
//! the testkit's fake HTTP server (real sockets, real HTTP), with its scripted faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_host_testkit::fake_http::{FakeHttpConfig, FakeHttpServer, StreamBreak};
use mcp_http::{HttpConnection, HttpOptions, TRANSPORT_ERROR_CODE};
use mcp_session::{Connection, Event, RequestOptions, Session, SessionOptions};
use mcp_transport::{CloseStep, ServerName, TransportOptions};
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

const PROMPTLY: Duration = Duration::from_secs(20);

fn args(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => panic!("arguments must be an object"),
    }
}

/// A session over HTTP with its connection driven on a join set.
struct Client {
    session: Session,
    http: HttpConnection,
    driver: JoinSet<Result<(), mcp_session::Error>>,
    tracker: TaskTracker,
}

fn client_with(options: HttpOptions) -> Client {
    client_with_session(options, SessionOptions::default())
}

fn client_with_session(options: HttpOptions, session_options: SessionOptions) -> Client {
    let tracker = TaskTracker::new();
    let (http, transport) = mcp_http::connect(
        ServerName::new("remote"),
        options,
        &TransportOptions::default(),
        &tracker,
    )
    .unwrap();
    let (session, connection) = mcp_session::connect(transport, session_options);
    let mut driver = JoinSet::new();
    driver.spawn(connection_future(connection));
    Client {
        session,
        http,
        driver,
        tracker,
    }
}

async fn connection_future(connection: Connection) -> Result<(), mcp_session::Error> {
    connection.await
}

fn client(server: &FakeHttpServer) -> Client {
    client_with(HttpOptions::new(server.url()))
}

impl Client {
    /// Closes the HTTP session and checks that every task of the connection has ended.
    async fn close(mut self) -> mcp_transport::ExitReport {
        self.session.shut_down();
        let url = self.http.url().to_owned();
        let report = self.http.close(Duration::from_secs(2)).await;
        tokio::time::timeout(PROMPTLY, self.driver.join_next())
            .await
            .expect("the connection ends after the close");
        self.tracker.close();
        tokio::time::timeout(PROMPTLY, self.tracker.wait())
            .await
            .expect("no bridge task is left behind");
        let port = url.rsplit_once(':').and_then(|(_, rest)| {
            rest.split('/')
                .next()
                .and_then(|port| port.parse::<u16>().ok())
        });
        if let Some(port) = port {
            // The connection pool went with the bridge: no TCP connection to the server is left
            // open on our side.
            let deadline = Instant::now() + PROMPTLY;
            while established_to(port) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "{} connection(s) to port {port} still open",
                    established_to(port)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        report
    }
}

impl Client {
    /// Waits for a connection the server ended (or that could not reach it) to end by itself,
    /// and for every task of it to be gone.
    async fn wait_until_lost(mut self, why: &str) -> HttpConnection {
        let ended = tokio::time::timeout(PROMPTLY, self.driver.join_next())
            .await
            .unwrap();
        assert!(ended.is_some(), "{why}");
        self.tracker.close();
        tokio::time::timeout(PROMPTLY, self.tracker.wait())
            .await
            .unwrap();
        self.http
    }
}

/// The TCP connections of this machine in state ESTABLISHED whose remote port is `port` (our
/// side of connections to a server listening there), from `/proc/net/tcp` and `tcp6`.
fn established_to(port: u16) -> usize {
    let remote = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.len() > 3 && fields[2].ends_with(&remote) && fields[3] == "01"
                })
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_http_lists_calls_and_ends_with_a_delete() {
    let server = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let client = client(&server);
    let mut events = client.session.take_events().unwrap();
    let init = client.session.initialize().await.unwrap();
    assert_eq!(init.protocol_version, "2025-11-25");
    assert_eq!(init.server_info.name, "fake-http-server");

    let tools = client.session.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert_eq!(names, ["echo", "slow"]);
    let result = client
        .session
        .call_tool(
            "echo",
            args(json!({"text": "over http"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "over http");
    // The standalone GET stream delivers what the server sends outside any request.
    let event = tokio::time::timeout(PROMPTLY, events.recv()).await.unwrap();
    assert_eq!(event, Some(Event::ToolsListChanged));
    // While the session lives, its connections are open (so the check in `close` that none is
    // left means something).
    assert!(established_to(server.addr().port()) >= 1);

    let report = client.close().await;
    assert_eq!(report.step, CloseStep::Disconnected);
    let log = server.log();
    assert_eq!(log.sessions, ["session-1"]);
    assert_eq!(log.deleted, ["session-1"], "the session ends with a DELETE");
    assert_eq!(log.get_streams, 1);
    assert_eq!(
        log.methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call"
        ]
    );
    assert!(
        log.protocol_versions
            .iter()
            .all(|v| v.as_deref() == Some("2025-11-25")),
        "every request after initialize names the negotiated version: {:?}",
        log.protocol_versions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_work_as_well_as_event_streams() {
    let server = FakeHttpServer::start(FakeHttpConfig {
        json_responses: true,
        get_stream: false,
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    let result = client
        .session
        .call_tool(
            "echo",
            args(json!({"text": "json"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "json");
    client.close().await;
    assert_eq!(server.log().get_streams, 0, "405 on GET means no stream");
}

async fn slow_call_with_progress(client: &Client) -> (String, Vec<f64>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = RequestOptions {
        timeout: Some(PROMPTLY),
        on_progress: Some(Arc::new(
            move |progress: mcp_session::protocol::Progress| {
                sink.lock().unwrap().push(progress.progress);
            },
        )),
    };
    let result = client
        .session
        .call_tool("slow", None, &options)
        .await
        .unwrap();
    let progress = seen.lock().unwrap().clone();
    (result.text(), progress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_arrives_on_the_call_stream() {
    let server = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    let (text, progress) = slow_call_with_progress(&client).await;
    assert_eq!(text, "slow done");
    assert_eq!(progress, [1.0, 2.0]);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_breaks_is_resumed_with_the_last_event_id() {
    for stream_break in [
        StreamBreak::CloseAfterFirstEvent,
        StreamBreak::AbortAfterFirstEvent,
    ] {
        let server = FakeHttpServer::start(FakeHttpConfig {
            stream_break,
            get_stream: false,
            ..FakeHttpConfig::default()
        })
        .await
        .unwrap();
        let client = client(&server);
        client.session.initialize().await.unwrap();
        let (text, progress) = slow_call_with_progress(&client).await;
        assert_eq!(text, "slow done", "{stream_break:?}");
        assert_eq!(
            progress,
            [1.0, 2.0],
            "nothing lost or repeated ({stream_break:?})"
        );
        let log = server.log();
        assert_eq!(log.resumed_from.len(), 1, "{stream_break:?}: {log:?}");
        assert!(log.resumed_from[0].ends_with("/0"), "{log:?}");
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_server_is_retried() {
    let server = FakeHttpServer::start(FakeHttpConfig {
        refuse_first_posts: 2,
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    assert_eq!(server.log().refused, 2);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_http_session_ends_the_session_and_says_why() {
    let server = FakeHttpServer::start(FakeHttpConfig {
        expire_session_after: Some(2),
        get_stream: false,
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    client.session.list_all_tools().await.unwrap();
    let error = client
        .session
        .call_tool(
            "echo",
            args(json!({"text": "x"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, mcp_session::Error::ServerClosed { .. }),
        "{error:?}"
    );
    assert!(
        error.stderr_tail().unwrap_or_default().contains("HTTP 404"),
        "{error:?}"
    );
    let http = client
        .wait_until_lost("the connection ends when the server forgets the session")
        .await;
    assert!(http.is_finished());
    assert!(
        server.log().deleted.is_empty(),
        "no DELETE for a session the server forgot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_the_handshake_promptly_and_names_the_cause() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let client = client_with(HttpOptions::new(format!("http://127.0.0.1:{port}/mcp")));
    let error = client.session.initialize().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = format!("{error} {}", client.http.diagnostics().stderr_tail());
    assert!(
        text.contains("remote"),
        "the error names the server: {text}"
    );
    assert!(text.to_lowercase().contains("connect"), "{text}");
    client
        .wait_until_lost("the session ends when its server cannot be reached")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_headers_are_sent_and_an_http_error_becomes_a_typed_error() {
    let config = FakeHttpConfig {
        required_header: Some(("authorization".to_owned(), "Bearer s3cret".to_owned())),
        ..FakeHttpConfig::default()
    };
    let server = FakeHttpServer::start(config).await.unwrap();

    let mut options = HttpOptions::new(server.url());
    options.headers = vec![("Authorization".to_owned(), "Bearer s3cret".to_owned())];
    let authorized = client_with(options);
    authorized.session.initialize().await.unwrap();
    authorized.close().await;

    let refused = client(&server);
    let error = refused.session.initialize().await.unwrap_err();
    assert_eq!(error.rpc_code(), Some(TRANSPORT_ERROR_CODE), "{error:?}");
    assert!(error.to_string().contains("401"), "{error}");
    refused.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_headers_are_refused_naming_the_server() {
    let tracker = TaskTracker::new();
    let connect = |options: HttpOptions| {
        mcp_http::connect(
            ServerName::new("remote"),
            options,
            &TransportOptions::default(),
            &tracker,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let error = connect(HttpOptions::new("not a url"));
    assert!(
        error.contains("`remote`") && error.contains("invalid url"),
        "{error}"
    );
    let error = connect(HttpOptions::new("ftp://example.com/mcp"));
    assert!(error.contains("http or https"), "{error}");
    let mut options = HttpOptions::new("http://127.0.0.1:1/mcp");
    options.headers = vec![("X-Token".to_owned(), "line\nbreak-secret".to_owned())];
    let error = connect(options);
    assert!(
        error.contains("X-Token") && !error.contains("secret"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_after_the_server_vanished_is_bounded() {
    let server = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    server.stop().await;
    let started = Instant::now();
    client.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_are_answered() {
    let server = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    let calls = (0..200).map(|n| {
        let session = client.session.clone();
        async move {
            let text = format!("call {n}");
            let result = session
                .call_tool(
                    "echo",
                    args(json!({"text": text})),
                    &RequestOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(result.text(), text);
        }
    });
    futures::future::join_all(calls).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_does_not_come_in_time_fails_that_request_only() {
    let server = FakeHttpServer::start(FakeHttpConfig {
        json_responses: true,
        get_stream: false,
        // Far beyond the test's bound: only the response timeout can end the call.
        slow_step: Duration::from_secs(600),
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    let mut options = HttpOptions::new(server.url());
    options.response_timeout = Duration::from_millis(200);
    let client = client_with(options);
    client.session.initialize().await.unwrap();
    let error = tokio::time::timeout(
        PROMPTLY,
        client
            .session
            .call_tool("slow", None, &RequestOptions::default()),
    )
    .await
    .expect("the response timeout did not end the call")
    .unwrap_err();
    assert_eq!(error.rpc_code(), Some(TRANSPORT_ERROR_CODE), "{error:?}");
    assert!(
        error.to_string().contains("no response within 200 ms"),
        "{error}"
    );
    // The connection goes on.
    let result = client
        .session
        .call_tool(
            "echo",
            args(json!({"text": "still here"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "still here");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_mid_session_ends_the_session() {
    let server = FakeHttpServer::start(FakeHttpConfig {
        get_stream: false,
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    let client = client(&server);
    client.session.initialize().await.unwrap();
    server.stop().await;
    let error = client
        .session
        .call_tool(
            "echo",
            args(json!({"text": "x"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    let text = format!("{error} {}", error.stderr_tail().unwrap_or_default());
    assert!(text.to_lowercase().contains("connect"), "{text}");
    client
        .wait_until_lost("the session ends when its server cannot be reached")
        .await;
}

mod stateless {
    //! The stateless revision 2026-07-28 over HTTP: `server/discover`, `_meta` on every request,
    //! its headers, and the fallback to `initialize`.

    use mcp_host_testkit::fake_http::{ModernRequest, Revisions};
    use mcp_session::Handshake;

    use super::*;

    fn client_in(server: &FakeHttpServer, handshake: Handshake) -> Client {
        let options = SessionOptions {
            handshake,
            ..SessionOptions::default()
        };
        client_with_session(HttpOptions::new(server.url()), options)
    }

    fn modern_server() -> FakeHttpConfig {
        FakeHttpConfig {
            revisions: Revisions::Modern,
            ..FakeHttpConfig::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn discover_then_every_request_carries_version_capabilities_and_headers() {
        for handshake in [Handshake::Discover, Handshake::Auto] {
            let server = FakeHttpServer::start(modern_server()).await.unwrap();
            let client = client_in(&server, handshake);
            let init = client.session.initialize().await.unwrap();
            assert_eq!(init.protocol_version, "2026-07-28");
            assert_eq!(init.server_info.name, "fake-http-server");
            assert_eq!(init.server_info.version, "2.0.0");
            let tools = client.session.list_all_tools().await.unwrap();
            assert_eq!(tools[0].name, "echo");
            let result = client
                .session
                .call_tool(
                    "echo",
                    args(json!({"text": "stateless"})),
                    &RequestOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(result.text(), "stateless");
            client.close().await;

            let log = server.log();
            assert!(log.sessions.is_empty() && log.deleted.is_empty(), "{log:?}");
            assert_eq!(log.get_streams, 0);
            let expect = |method: &str, name: Option<&str>| ModernRequest {
                method: method.to_owned(),
                mcp_method: Some(method.to_owned()),
                mcp_name: name.map(str::to_owned),
                version_header: Some("2026-07-28".to_owned()),
                has_capabilities: true,
            };
            assert_eq!(
                log.modern_requests,
                [
                    expect("server/discover", None),
                    expect("tools/list", None),
                    expect("tools/call", Some("echo")),
                ],
                "{handshake:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn auto_falls_back_to_initialize_with_a_2025_server() {
        let server = FakeHttpServer::start(FakeHttpConfig::default())
            .await
            .unwrap();
        let client = client_in(&server, Handshake::Auto);
        let init = client.session.initialize().await.unwrap();
        assert_eq!(init.protocol_version, "2025-11-25");
        let result = client
            .session
            .call_tool(
                "echo",
                args(json!({"text": "classic"})),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(result.text(), "classic");
        client.close().await;
        let log = server.log();
        assert_eq!(log.methods[..2], ["server/discover", "initialize"]);
        assert_eq!(
            log.deleted.len(),
            1,
            "a 2025-11-25 session still ends with a DELETE"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_of_both_revisions_gets_the_one_asked_for() {
        let both = FakeHttpConfig {
            revisions: Revisions::Both,
            ..FakeHttpConfig::default()
        };
        for (handshake, version) in [
            (Handshake::Initialize, "2025-11-25"),
            (Handshake::Auto, "2026-07-28"),
        ] {
            let server = FakeHttpServer::start(both.clone()).await.unwrap();
            let client = client_in(&server, handshake);
            let init = client.session.initialize().await.unwrap();
            assert_eq!(init.protocol_version, version, "{handshake:?}");
            client.session.list_all_tools().await.unwrap();
            client.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_default_handshake_with_a_stateless_only_server_fails_naming_it() {
        let server = FakeHttpServer::start(modern_server()).await.unwrap();
        let client = client_in(&server, Handshake::Initialize);
        let error = client.session.initialize().await.unwrap_err();
        // The server refuses `initialize` with a 4xx and a JSON-RPC error in the body (-32602:
        // no `_meta` version, which it checks before the method), which reaches the caller.
        assert!(
            matches!(error.rpc_code(), Some(-32601 | -32602)),
            "{error:?}"
        );
        assert!(error.to_string().contains("remote"), "{error}");
        client.close().await;
    }
}

/// A restarted server on the TypeScript SDK answers 400, not 404, for the session it forgot:
/// the GET stream, refused after it had worked, tells that the session is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_session_refused_with_400_is_lost() {
    let server = FakeHttpServer::start(FakeHttpConfig {
        unknown_session_status: 400,
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    let client = client(&server);
    let mut events = client.session.take_events().unwrap();
    client.session.initialize().await.unwrap();
    // The GET stream is up once its first event arrived.
    let first = tokio::time::timeout(PROMPTLY, events.recv()).await.unwrap();
    assert_eq!(first, Some(Event::ToolsListChanged));
    server.forget_sessions();
    let http = client
        .wait_until_lost("the session ends when the server refuses it")
        .await;
    let tail = http.diagnostics().stderr_tail();
    assert!(tail.contains("HTTP 400"), "{tail}");
}

mod auth;
