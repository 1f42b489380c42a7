//! Issue #17: replicas. A sealed session started on one replica is served by another with the
//! same key, and by no gateway without it; ended, tampered, expired and foreign ids are
//! refused; a stopping gateway drains.

use std::sync::Arc;
use std::time::Duration;

use mcp_gateway::policy::{GatewaySettings, Policies};
use mcp_gateway::SessionKeys;
use mcp_host_testkit::{assert_no_process_left, unique_marker};
use serde_json::{json, Value};

use crate::{call, events, fake, serve_with, session_id, Served, EVENT_STREAM, PROMPTLY};

const KEY: &str = "7:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "7:ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=";

async fn replica(marker: &str, key: Option<&str>, ttl: Duration) -> Served {
    let gateway: GatewaySettings = serde_json::from_value(json!({"clients": {
        "alpha": {"tokenSha256": "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"},
        "beta": {"tokenSha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}
    }}))
    .unwrap();
    let policies = Policies::from_settings(&gateway, |_| None).unwrap();
    let keys = key.map(|key| Arc::new(SessionKeys::parse(key).unwrap()));
    serve_with(
        vec![fake("s", marker)],
        |options| {
            options.session_keys = keys;
            options.session_ttl = ttl;
        },
        |builder| builder.policies(policies),
    )
    .await
}

const ALPHA: &str = "hello world";
const BETA: &str = "hello";

async fn status_of(served: &Served, token: &str, session: &str, request: &Value) -> u16 {
    served
        .post_as(Some(token), Some(session), request, EVENT_STREAM)
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_with_the_key_serves_a_sealed_session() {
    let marker = unique_marker();
    let day = Duration::from_secs(24 * 3600);
    let a = replica(&marker, Some(KEY), day).await;
    let b = replica(&marker, Some(KEY), day).await;
    let stranger = replica(&marker, Some(OTHER_KEY), day).await;
    let unsealed = replica(&marker, None, day).await;

    let opened = a.session_as(Some(ALPHA), true).await;
    assert_eq!(opened.status(), 200);
    let session = session_id(&opened);
    assert!(session.len() <= 255 && session.bytes().all(|byte| byte.is_ascii_graphic()));

    // Replica B has never seen the session: it serves it all the same.
    let answer = b
        .ask(
            ALPHA,
            &session,
            &call(1, "s__echo", json!({"text": "from b"})),
        )
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "from b", "{answer}");
    let tools = b
        .ask(
            ALPHA,
            &session,
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert!(
        tools["result"]["tools"].as_array().unwrap().len() > 3,
        "{tools}"
    );
    // Progress comes back on the call's own stream there too.
    let mut slow = call(3, "s__slow", json!({"ms": 200}));
    slow["params"]["_meta"] = json!({"progressToken": "p"});
    let streamed = b
        .post_as(Some(ALPHA), Some(&session), &slow, EVENT_STREAM)
        .await;
    let messages = events(&streamed.text().await.unwrap());
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{messages:?}"
    );

    // Another client, another key, or no key: no such session.
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    assert_eq!(status_of(&b, BETA, &session, &list).await, 404);
    assert_eq!(status_of(&stranger, ALPHA, &session, &list).await, 404);
    assert_eq!(status_of(&unsealed, ALPHA, &session, &list).await, 404);
    let mut tampered = session.clone().into_bytes();
    let idx = tampered.len() / 2;
    tampered[idx] = if tampered[idx] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(status_of(&b, ALPHA, &tampered, &list).await, 404);

    // Ended on B: B does not open it again.
    let deleted = b
        .client
        .delete(&b.url)
        .header("mcp-session-id", &session)
        .bearer_auth(ALPHA)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(status_of(&b, ALPHA, &session, &list).await, 404);

    for served in [a, b, stranger, unsealed] {
        served.finish().await;
    }
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sealed_session_is_refused() {
    let marker = unique_marker();
    let a = replica(&marker, Some(KEY), Duration::ZERO).await;
    let b = replica(&marker, Some(KEY), Duration::ZERO).await;
    let session = session_id(&a.session_as(Some(ALPHA), false).await);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(status_of(&b, ALPHA, &session, &list).await, 404);
    a.finish().await;
    b.finish().await;
    assert_no_process_left(&marker).await;
}

/// Stopping: `/readyz` says 503 at once, no new session is taken, and a call in flight
/// finishes with its answer before the gateway stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_drains() {
    let marker = unique_marker();
    let served = serve_with(vec![fake("s", &marker)], |_| {}, |builder| builder).await;
    let session = session_id(&served.session(true).await);
    let slow = served
        .post(
            Some(&session),
            &call(1, "s__slow", json!({"ms": 1500})),
            EVENT_STREAM,
        )
        .await;
    served.stop.cancel();
    let readyz = served.url.replace("/mcp", "/readyz");
    let not_ready = tokio::time::timeout(PROMPTLY, async {
        loop {
            let response = served.client.get(&readyz).send().await.unwrap();
            if response.status() == 503 {
                return response.text().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(not_ready.contains("draining"), "{not_ready}");
    assert_eq!(served.session(false).await.status(), 503);
    let body = slow.text().await.unwrap();
    let messages = events(&body);
    assert!(
        messages
            .iter()
            .any(|m| m["id"] == 1 && m.get("result").is_some()),
        "{messages:?}"
    );
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// A client that lost a request stream with its replica resumes it on another: that replica
/// cannot replay it, and says at once that the request's answer is lost (the Python SDK would
/// otherwise wait on a stream that never answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stream_resumed_on_another_replica_fails_at_once() {
    let marker = unique_marker();
    let day = Duration::from_secs(24 * 3600);
    let a = replica(&marker, Some(KEY), day).await;
    let b = replica(&marker, Some(KEY), day).await;
    let session = session_id(&a.session_as(Some(ALPHA), true).await);
    let mut slow = a
        .post_as(
            Some(ALPHA),
            Some(&session),
            &call(41, "s__slow", json!({"ms": 3000})),
            EVENT_STREAM,
        )
        .await;
    let first = tokio::time::timeout(PROMPTLY, slow.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    let event_id = first
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .expect("the priming event has an id")
        .to_owned();
    let resumed = b
        .client
        .get(&b.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", &event_id)
        .bearer_auth(ALPHA)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let body = tokio::time::timeout(PROMPTLY, resumed.text())
        .await
        .unwrap()
        .unwrap();
    let messages = events(&body);
    assert_eq!(messages.len(), 1, "{body}");
    assert_eq!(messages[0]["id"], 41);
    assert!(messages[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("went away"));
    drop(slow);
    a.finish().await;
    b.finish().await;
    assert_no_process_left(&marker).await;
}

/// Many requests of a session another replica started reach this one at once: it rebuilds the
/// session once, not once per request (the extra copies would be orphans nobody sweeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_session_is_rebuilt_once_under_concurrent_requests() {
    let marker = unique_marker();
    let day = Duration::from_secs(24 * 3600);
    let a = replica(&marker, Some(KEY), day).await;
    let b = replica(&marker, Some(KEY), day).await;
    let session = session_id(&a.session_as(Some(ALPHA), true).await);
    let mut requests = tokio::task::JoinSet::new();
    for id in 0..16u64 {
        let client = b.client.clone();
        let url = b.url.clone();
        let session = session.clone();
        requests.spawn(async move {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", EVENT_STREAM)
                .header("mcp-session-id", session)
                .bearer_auth(ALPHA)
                .body(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let metrics = b
        .client
        .get(b.url.replace("/mcp", "/metrics"))
        .bearer_auth(ALPHA)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("mcp_gateway_sessions_open "))
        .collect();
    assert_eq!(open, vec!["mcp_gateway_sessions_open 1"], "{metrics}");
    a.finish().await;
    b.finish().await;
    assert_no_process_left(&marker).await;
}
