//! Requests in flight: correlation, timeouts and cancellation, progress, errors, server requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcp_host_testkit::{spawn_in_process, FakeConfig};
use mcp_session::protocol::Root;
use mcp_session::{Error, Event, RequestOptions, SessionOptions};
use mcp_transport::{ServerName, Transport, TransportOptions};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::{args, start, start_with, PROMPTLY};

/// The request ids the fake server saw in `notifications/cancelled`.
async fn cancelled_ids(session: &mcp_session::Session) -> Vec<Value> {
    let result = session
        .call_tool("cancelled", None, &RequestOptions::default())
        .await
        .unwrap();
    serde_json::from_str(&result.text()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_answered_out_of_order() {
    let running = start(FakeConfig::default()).await;
    let mut calls = JoinSet::new();
    for call_idx in 0..1000u64 {
        let session = running.session.clone();
        calls.spawn(async move {
            // Different delays make the server answer in a different order than asked.
            let delay_ms = (call_idx * 7919) % 50;
            let text = format!("call {call_idx}");
            let result = session
                .call_tool(
                    "echo",
                    args(json!({ "text": text, "delay_ms": delay_ms })),
                    &RequestOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(result.text(), text);
        });
    }
    let mut n_done = 0;
    while let Some(joined) = tokio::time::timeout(PROMPTLY, calls.join_next())
        .await
        .unwrap()
    {
        joined.unwrap();
        n_done += 1;
    }
    assert_eq!(n_done, 1000);
    assert_eq!(running.session.n_pending(), 0);
    running.finish().await;
}

#[tokio::test]
async fn timeout_fails_the_call_and_tells_the_server() {
    let running = start(FakeConfig::default()).await;
    let err = running
        .session
        .call_tool(
            "slow",
            args(json!({ "ms": 30_000 })),
            &RequestOptions::with_timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("tools/call"), "{err}");
    // The cancellation is written before the next request, and the server handles input in order.
    let cancelled = cancelled_ids(&running.session).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert!(cancelled[0].is_u64());
    assert_eq!(running.session.n_pending(), 0);
    running.finish().await;
}

#[tokio::test]
async fn dropping_the_call_tells_the_server() {
    let running = start(FakeConfig::default()).await;
    let options = RequestOptions::default();
    let call = running
        .session
        .call_tool("slow", args(json!({ "ms": 30_000 })), &options);
    // Give up on the call from outside; the future is dropped unfinished.
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    let cancelled = cancelled_ids(&running.session).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(running.session.n_pending(), 0);
    running.finish().await;
}

/// Over the in-process fake in paused time: the fake's sleeps and the session's deadlines run
/// on the same virtual clock, so the order of progress reports and deadlines is exact, however
/// loaded the machine.
#[tokio::test(start_paused = true)]
async fn progress_is_reported_and_extends_the_timeout() {
    let tracker = TaskTracker::new();
    let fake = spawn_in_process(FakeConfig::default(), &tracker);
    let transport = Transport::from_io(
        ServerName::new("in-process"),
        fake.client_read,
        fake.client_write,
        &TransportOptions::default(),
    );
    let (session, connection, _) = mcp_session::handshake(transport, SessionOptions::default())
        .await
        .unwrap();
    let connection = tracker.spawn(connection);
    let n_reports = Arc::new(AtomicUsize::new(0));
    let counter = n_reports.clone();
    let options = RequestOptions {
        // The call takes 2 s; a progress report every 400 ms keeps a 1 s timeout from firing.
        timeout: Some(Duration::from_secs(1)),
        on_progress: Some(Arc::new(move |progress| {
            assert!(progress.progress > 0.0);
            counter.fetch_add(1, Ordering::Relaxed);
        })),
    };
    let started = tokio::time::Instant::now();
    let result = session
        .call_tool("slow", args(json!({ "ms": 2_000 })), &options)
        .await
        .unwrap();
    assert!(!result.is_tool_error());
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(n_reports.load(Ordering::Relaxed), 5);
    // Without progress reports, the same call times out at 1 s.
    let err = session
        .call_tool(
            "slow",
            args(json!({ "ms": 2_000 })),
            &RequestOptions::with_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    drop(session);
    assert!(connection.await.unwrap().is_ok());
    fake.stop.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn tool_error_is_a_result_and_rpc_error_is_an_error() {
    let running = start(FakeConfig::default()).await;
    let result = running
        .session
        .call_tool("fail", None, &RequestOptions::default())
        .await
        .unwrap();
    assert!(result.is_tool_error());
    assert_eq!(result.text(), "tool failed on purpose");

    let err = running
        .session
        .call_tool("no_such_tool", None, &RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32602), "{err:?}");
    assert!(err.to_string().contains("fake-server"), "{err}");

    let result = running
        .session
        .call_tool(
            "add",
            args(json!({ "a": 2, "b": 3 })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        result.structured_content.as_ref().unwrap()["sum"].as_f64(),
        Some(5.0)
    );
    running.finish().await;
}

#[tokio::test]
async fn ping_both_ways_and_server_requests() {
    let options = SessionOptions {
        roots: Some(Arc::new(vec![Root {
            uri: "file:///tmp".to_owned(),
            name: Some("tmp".to_owned()),
        }])),
        ..SessionOptions::default()
    };
    let running = start_with(FakeConfig::default(), options, TransportOptions::default()).await;
    running
        .session
        .ping(&RequestOptions::default())
        .await
        .unwrap();

    let ask = |method: &'static str| {
        let session = running.session.clone();
        async move {
            let result = session
                .call_tool(
                    "ask_client",
                    args(json!({ "method": method })),
                    &RequestOptions::default(),
                )
                .await
                .unwrap();
            serde_json::from_str::<Value>(&result.text()).unwrap()
        }
    };
    assert_eq!(ask("ping").await["result"], json!({}));
    assert_eq!(
        ask("roots/list").await["result"]["roots"][0]["uri"],
        "file:///tmp"
    );
    assert_eq!(ask("sampling/createMessage").await["error"]["code"], -32601);
    assert_eq!(ask("no/such/method").await["error"]["code"], -32601);
    running.finish().await;
}

#[tokio::test]
async fn roots_list_without_provider_is_method_not_found() {
    let running = start(FakeConfig::default()).await;
    let result = running
        .session
        .call_tool(
            "ask_client",
            args(json!({ "method": "roots/list" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let response: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(response["error"]["code"], -32601);
    running.finish().await;
}

#[tokio::test]
async fn list_changed_arrives_as_an_event() {
    let config = FakeConfig {
        list_changed: true,
        ..FakeConfig::default()
    };
    let running = start(config).await;
    let mut events = running.session.take_events().unwrap();
    assert!(running.session.take_events().is_none());
    let event = tokio::time::timeout(PROMPTLY, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, Event::ToolsListChanged);
    running
        .session
        .call_tool("touch", None, &RequestOptions::default())
        .await
        .unwrap();
    let event = tokio::time::timeout(PROMPTLY, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, Event::ToolsListChanged);
    running.finish().await;
}

#[tokio::test]
async fn notification_flood_is_bounded_and_counted() {
    let config = FakeConfig {
        notify_flood: 5_000,
        ..FakeConfig::default()
    };
    let options = SessionOptions {
        event_capacity: 16,
        ..SessionOptions::default()
    };
    let running = start_with(config, options, TransportOptions::default()).await;
    // Calls still work while nobody reads the events.
    let result = running
        .session
        .call_tool(
            "echo",
            args(json!({ "text": "still here" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "still here");
    let flood_done = async {
        while running.session.n_events_dropped() < 5_000 - 16 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, flood_done).await.unwrap();
    let mut events = running.session.take_events().unwrap();
    let mut n_queued = 0;
    while events.try_recv().is_ok() {
        n_queued += 1;
    }
    assert_eq!(n_queued, 16);
    assert_eq!(running.session.n_events_dropped(), 5_000 - 16);
    running.finish().await;
}

/// Answers `sampling/createMessage` once two of them are in flight at the same time (so answers
/// that ran one after the other would never come); takes nothing else.
struct Sampler(Arc<tokio::sync::Barrier>);

impl mcp_session::ClientRequestHandler for Sampler {
    fn capabilities(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("sampling".to_owned(), serde_json::json!({}));
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        method == "sampling/createMessage"
    }

    fn handle(
        &self,
        server: &mcp_session::ServerName,
        _method: &str,
        params: Option<serde_json::Value>,
    ) -> mcp_session::HandlerFuture {
        let server = server.to_string();
        let barrier = self.0.clone();
        Box::pin(async move {
            barrier.wait().await;
            let asked = params.and_then(|params| {
                params
                    .get("tag")
                    .and_then(|tag| tag.as_str().map(str::to_owned))
            });
            Ok(serde_json::json!({
                "role": "assistant", "model": "test",
                "content": {"type": "text", "text": format!("sampled for {server}: {}", asked.unwrap_or_default())},
            }))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_are_answered_by_the_handler_without_blocking_the_session() {
    let options = mcp_session::SessionOptions {
        client_requests: Some(Arc::new(Sampler(Arc::new(tokio::sync::Barrier::new(2))))),
        ..mcp_session::SessionOptions::default()
    };
    let running = crate::start_with(
        mcp_host_testkit::FakeConfig::default(),
        options,
        mcp_transport::TransportOptions::default(),
    )
    .await;
    let ask = |tag: &str| {
        let session = running.session.clone();
        let arguments = crate::args(serde_json::json!({
            "method": "sampling/createMessage",
            "params": {"tag": tag, "messages": [], "maxTokens": 5},
        }));
        async move {
            session
                .call_tool(
                    "ask_client",
                    arguments,
                    &mcp_session::RequestOptions::default(),
                )
                .await
                .unwrap()
                .text()
        }
    };
    // Two sampling requests in flight at once, and an ordinary call meanwhile.
    let options = mcp_session::RequestOptions::default();
    let echo = running.session.call_tool(
        "echo",
        crate::args(serde_json::json!({"text": "meanwhile"})),
        &options,
    );
    let (first, second, echoed) = tokio::join!(ask("one"), ask("two"), echo);
    assert!(first.contains("sampled for fake-server: one"), "{first}");
    assert!(second.contains("sampled for fake-server: two"), "{second}");
    assert_eq!(echoed.unwrap().text(), "meanwhile");
    // A method the handler does not take is refused.
    let refused = running
        .session
        .call_tool(
            "ask_client",
            crate::args(serde_json::json!({"method": "elicitation/create"})),
            &mcp_session::RequestOptions::default(),
        )
        .await
        .unwrap()
        .text();
    assert!(refused.contains("-32601"), "{refused}");
    running.finish().await;
}

/// Answers `sampling/createMessage` after `delay` (or never, with `None`), counting the runs
/// that exist at once (from `handle` until the answer's future is finished or dropped).
struct CountingSampler {
    delay: Option<Duration>,
    n_running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
    n_ended: Arc<AtomicUsize>,
}

impl CountingSampler {
    fn new(delay: Option<Duration>) -> CountingSampler {
        CountingSampler {
            delay,
            n_running: Arc::new(AtomicUsize::new(0)),
            max_running: Arc::new(AtomicUsize::new(0)),
            n_ended: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn counters(&self) -> (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        (
            self.n_running.clone(),
            self.max_running.clone(),
            self.n_ended.clone(),
        )
    }
}

/// Counts a run as ended when dropped (answered, or its future dropped unfinished).
struct RunGuard {
    n_running: Arc<AtomicUsize>,
    n_ended: Arc<AtomicUsize>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.n_running.fetch_sub(1, Ordering::SeqCst);
        self.n_ended.fetch_add(1, Ordering::SeqCst);
    }
}

impl mcp_session::ClientRequestHandler for CountingSampler {
    fn capabilities(&self) -> serde_json::Map<String, Value> {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("sampling".to_owned(), json!({}));
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        method == "sampling/createMessage"
    }

    fn handle(
        &self,
        _server: &mcp_session::ServerName,
        _method: &str,
        _params: Option<Value>,
    ) -> mcp_session::HandlerFuture {
        let n_running = self.n_running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(n_running, Ordering::SeqCst);
        let guard = RunGuard {
            n_running: self.n_running.clone(),
            n_ended: self.n_ended.clone(),
        };
        let delay = self.delay;
        Box::pin(async move {
            let _guard = guard;
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            Ok(json!({
                "role": "assistant", "model": "test",
                "content": {"type": "text", "text": "sampled"},
            }))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampling_flood_runs_at_most_32_handlers_at_once_and_calls_still_answer() {
    const N_REQUESTS: u64 = 10_000;
    let sampler = CountingSampler::new(Some(Duration::from_millis(20)));
    let (n_running, max_running, n_ended) = sampler.counters();
    let options = SessionOptions {
        client_requests: Some(Arc::new(sampler)),
        ..SessionOptions::default()
    };
    let config = FakeConfig {
        request_flood: N_REQUESTS,
        request_flood_method: Some("sampling/createMessage".to_owned()),
        ..FakeConfig::default()
    };
    let running = start_with(config, options, TransportOptions::default()).await;
    // The host's own calls are answered during the flood.
    let result = running
        .session
        .call_tool(
            "echo",
            args(json!({ "text": "meanwhile" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "meanwhile");
    // Every request gets an answer: a result, or -32000 while 32 are running.
    let answered = async {
        loop {
            let result = running
                .session
                .call_tool("flood_answers", None, &RequestOptions::default())
                .await
                .unwrap();
            if result.text() == N_REQUESTS.to_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, answered).await.unwrap();
    let max_running = max_running.load(Ordering::SeqCst);
    assert!(
        max_running <= mcp_session::MAX_CLIENT_REQUESTS,
        "{max_running} handler runs at once"
    );
    assert!(max_running > 0);
    assert!(n_ended.load(Ordering::SeqCst) >= 1);
    assert_eq!(n_running.load(Ordering::SeqCst), 0);
    assert_eq!(running.session.n_pending(), 0);
    running.finish().await;
}

#[tokio::test]
async fn a_request_the_server_cancels_ends_its_handler_run_without_an_answer() {
    // The handler never answers by itself; only the server's cancellation can end the run.
    let sampler = CountingSampler::new(None);
    let (n_running, _max_running, n_ended) = sampler.counters();
    let options = SessionOptions {
        client_requests: Some(Arc::new(sampler)),
        // Far beyond the test's bound: the run must end because the server cancelled it.
        request_timeout: Duration::from_secs(300),
        ..SessionOptions::default()
    };
    let running = start_with(FakeConfig::default(), options, TransportOptions::default()).await;
    let result = running
        .session
        .call_tool(
            "ask_client",
            args(json!({
                "method": "sampling/createMessage",
                "params": {"messages": [], "maxTokens": 5},
                "cancel_after_ms": 50,
                "wait_ms": 500,
            })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    // No answer to a cancelled request.
    assert!(result.is_tool_error(), "{}", result.text());
    assert!(result.text().contains("no response"), "{}", result.text());
    let ended = async {
        while n_ended.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, ended)
        .await
        .expect("the cancelled handler run goes on");
    assert_eq!(n_running.load(Ordering::SeqCst), 0);
    running.finish().await;
}
