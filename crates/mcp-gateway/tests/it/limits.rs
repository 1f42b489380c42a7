//! Issue #13 items 1, 4, 6 and 7: every bound of the HTTP gateway enforced where requests
//! enter, and routes keyed per request.

use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, unique_marker};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::{call, events, serve, session_id, EVENT_STREAM, PROMPTLY};

/// Item 7: two requests in flight with the same progress token each get their own progress
/// (with the token they sent) and their own response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_with_the_same_progress_token_keep_their_own_progress() {
    let marker = unique_marker();
    let served = serve(&marker, |_| {}, 16).await;
    let session = session_id(&served.session(true).await);
    let mut requests = JoinSet::new();
    for id in [1u64, 2] {
        let mut request = call(id, "s__slow", json!({"ms": 400}));
        request["params"]["_meta"] = json!({"progressToken": "same"});
        let response = served.post(Some(&session), &request, EVENT_STREAM).await;
        requests.spawn(async move { (id, events(&response.text().await.unwrap())) });
    }
    while let Some(joined) = requests.join_next().await {
        let (id, messages) = joined.unwrap();
        let progress: Vec<&Value> = messages
            .iter()
            .filter(|message| message["method"] == "notifications/progress")
            .collect();
        assert!(
            !progress.is_empty(),
            "request {id} got no progress: {messages:?}"
        );
        assert!(
            progress
                .iter()
                .all(|p| p["params"]["progressToken"] == "same"),
            "{messages:?}"
        );
        let responses: Vec<&Value> = messages.iter().filter(|m| m.get("id").is_some()).collect();
        assert_eq!(responses.len(), 1, "{messages:?}");
        assert_eq!(responses[0]["id"], id);
    }
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// Item 4: a session may hold a bounded number of requests in flight (429 past it), a peer a
/// bounded number of sessions (503), and a session that never finishes its handshake ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_requests_are_bounded() {
    let marker = unique_marker();
    let served = serve(
        &marker,
        |options| {
            options.max_requests_per_session = 2;
            options.max_sessions_per_peer = 3;
            options.initialize_timeout = Duration::from_millis(300);
        },
        16,
    )
    .await;
    let session = session_id(&served.session(true).await);
    let mut slow = Vec::new();
    for id in [1u64, 2] {
        slow.push(
            served
                .post(
                    Some(&session),
                    &call(id, "s__slow", json!({"ms": 1000})),
                    EVENT_STREAM,
                )
                .await,
        );
    }
    let refused = served
        .post(
            Some(&session),
            &call(3, "s__echo", json!({"text": "x"})),
            EVENT_STREAM,
        )
        .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    for response in slow {
        let messages = events(&response.text().await.unwrap());
        assert!(
            messages.iter().any(|m| m.get("result").is_some()),
            "{messages:?}"
        );
    }
    // Room again once they are answered.
    let answered = served
        .post(
            Some(&session),
            &call(4, "s__echo", json!({"text": "x"})),
            EVENT_STREAM,
        )
        .await;
    assert_eq!(answered.status(), 200);

    // Two more sessions reach the per-address limit of three; the fourth is refused.
    let half_open = session_id(&served.session(false).await);
    let _third = session_id(&served.session(true).await);
    let fourth = served.session(true).await;
    assert_eq!(fourth.status(), 503);
    assert!(fourth.text().await.unwrap().contains("from this address"));

    // The session that never sent notifications/initialized is ended.
    let ended = tokio::time::timeout(PROMPTLY, async {
        loop {
            let response = served
                .post(
                    Some(&half_open),
                    &call(9, "s__echo", json!({"text": "x"})),
                    EVENT_STREAM,
                )
                .await;
            if response.status() == 404 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the half-open session was kept");
    // Which frees its place.
    assert_eq!(served.session(true).await.status(), 200);
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// Item 4: a JSON-mode POST whose client disconnects cancels its downstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_reply_whose_client_leaves_cancels_the_call() {
    let marker = unique_marker();
    let served = serve(&marker, |_| {}, 16).await;
    let session = session_id(&served.session(true).await);
    let request = served
        .client
        .post(&served.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &session)
        .body(call(1, "s__slow", json!({"ms": 20000})).to_string())
        .send();
    // The client gives up (its connection closes) while the call runs.
    assert!(tokio::time::timeout(Duration::from_millis(300), request)
        .await
        .is_err());
    let cancelled = tokio::time::timeout(PROMPTLY, async {
        let mut id = 10;
        loop {
            id += 1;
            let response = served
                .post(
                    Some(&session),
                    &call(id, "s__cancelled", json!({})),
                    EVENT_STREAM,
                )
                .await;
            let messages = events(&response.text().await.unwrap());
            let text = messages[0]["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("[]")
                .to_owned();
            let ids: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
            if !ids.is_empty() {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server never heard of the cancellation");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// Items 1 and 6: a client that sends far more than the gateway handles at once meets
/// backpressure (at most `max_requests_in_flight` run downstream at a time), and a message
/// the session cannot take in time is refused with 503 and never sent later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_and_a_message_is_sent_or_not() {
    let marker = unique_marker();
    let served = serve(
        &marker,
        |options| {
            options.max_requests_per_session = 10_000;
            options.write_timeout = Duration::from_millis(300);
        },
        2,
    )
    .await;
    let session = session_id(&served.session(true).await);
    // Large requests fill what lies between the session and the handlers quickly.
    let padding = "x".repeat(48 * 1024);
    let mut pending = JoinSet::new();
    let mut refused = None;
    let mut max_in_flight = 0;
    for id in 1..=400u64 {
        let request = call(id, "s__slow", json!({"ms": 100, "padding": padding}));
        let response = served.post(Some(&session), &request, EVENT_STREAM).await;
        let in_flight: i64 = served.host.call_stats().iter().map(|s| s.in_flight).sum();
        max_in_flight = max_in_flight.max(in_flight);
        if response.status() == 503 {
            // The refusal keeps its cause: busy, not a vanished session.
            let body = response.text().await.unwrap();
            assert!(
                body.contains("the session is busy: the message was not sent"),
                "{body}"
            );
            refused = Some(id);
            break;
        }
        assert_eq!(response.status(), 200);
        pending.spawn(async move { response.text().await.unwrap() });
    }
    let refused = refused.expect("the session took 400 large requests without pushing back");
    assert!(max_in_flight <= 2, "{max_in_flight} calls ran at once");
    // The refused message was not sent: once everything taken is answered, the server ran
    // exactly the calls that were taken.
    while let Some(body) = tokio::time::timeout(PROMPTLY * 4, pending.join_next())
        .await
        .unwrap()
    {
        assert!(body.unwrap().contains("\"result\""));
    }
    let taken: u64 = served
        .host
        .call_stats()
        .iter()
        .filter(|s| s.tool == "slow")
        .map(|s| s.finished.iter().sum::<u64>())
        .sum();
    assert_eq!(
        taken,
        refused - 1,
        "the refused request {refused} was run anyway"
    );
    served.finish().await;
    assert_no_process_left(&marker).await;
}
