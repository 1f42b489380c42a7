//! Issue #15: who is calling. Clients by token and by OAuth access token, each seeing and
//! calling only what its policy allows, on every path; quotas; the audit log.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_gateway::policy::{GatewaySettings, Policies};
use mcp_gateway::AuditLog;
use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{assert_no_process_left, unique_marker};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::{call, fake, serve_with, session_id, EVENT_STREAM, PROMPTLY};

fn policies(gateway: Value) -> Policies {
    let settings: GatewaySettings = serde_json::from_value(gateway).unwrap();
    Policies::from_settings(&settings, |name| match name {
        "ALPHA_TOKEN" => Some("alpha-token-0123456789".to_owned()),
        "BETA_TOKEN" => Some("beta-token-0123456789".to_owned()),
        _ => None,
    })
    .unwrap()
}

const ALPHA: &str = "alpha-token-0123456789";
const BETA: &str = "beta-token-0123456789";

fn names(listing: &Value, field: &str) -> Vec<String> {
    listing["result"][field]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Two clients with different policies: each lists and calls only its own, and every other
/// path (prompts, resources, templates, subscriptions, completion, sessions) is refused the
/// same way, without saying whether the thing exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_and_call_only_their_own() {
    let marker = unique_marker();
    let gateway = policies(json!({"clients": {
        "alpha": {"token": "${env:ALPHA_TOKEN}", "servers": ["a"]},
        "beta": {"token": "${env:BETA_TOKEN}", "tools": {"allow": ["b__*"], "deny": ["b__add"]},
                 "prompts": {"deny": ["*"]}, "resources": {"deny": ["mem://*"]}}
    }}));
    let served = serve_with(
        vec![fake("a", &marker), fake("b", &marker)],
        |_| {},
        |builder| builder.policies(gateway),
    )
    .await;
    // No token, or a wrong one: 401 with a Bearer challenge.
    let anonymous = served.session_as(None, false).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(served.session_as(Some("nope"), false).await.status(), 401);

    let alpha = session_id(&served.session_as(Some(ALPHA), true).await);
    let beta = session_id(&served.session_as(Some(BETA), true).await);
    let alpha_tools = names(
        &served
            .ask(ALPHA, &alpha, &request(1, "tools/list", json!({})))
            .await,
        "tools",
    );
    assert!(
        alpha_tools.iter().all(|name| name.starts_with("a__")),
        "{alpha_tools:?}"
    );
    assert!(alpha_tools.contains(&"a__add".to_owned()));
    let beta_tools = names(
        &served
            .ask(BETA, &beta, &request(1, "tools/list", json!({})))
            .await,
        "tools",
    );
    assert!(
        beta_tools.iter().all(|name| name.starts_with("b__")),
        "{beta_tools:?}"
    );
    assert!(!beta_tools.contains(&"b__add".to_owned()), "{beta_tools:?}");

    // Calls: allowed ones answer; denied ones and unknown ones get the same refusal.
    let answer = served
        .ask(ALPHA, &alpha, &call(2, "a__echo", json!({"text": "hi"})))
        .await;
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    let denied = served
        .ask(ALPHA, &alpha, &call(3, "b__echo", json!({"text": "hi"})))
        .await;
    let unknown = served
        .ask(ALPHA, &alpha, &call(4, "a__no_such_tool", json!({})))
        .await;
    assert_eq!(denied["error"]["code"], unknown["error"]["code"]);
    assert!(
        denied["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available"),
        "{denied}"
    );
    let denied = served
        .ask(BETA, &beta, &call(5, "b__add", json!({"a": 1, "b": 2})))
        .await;
    assert_eq!(denied["error"]["code"], -32602, "{denied}");

    // Prompts, resources, templates, subscriptions, completion.
    let prompts = served
        .ask(BETA, &beta, &request(6, "prompts/list", json!({})))
        .await;
    assert!(names(&prompts, "prompts").is_empty(), "{prompts}");
    let alpha_prompts = served
        .ask(ALPHA, &alpha, &request(6, "prompts/list", json!({})))
        .await;
    let prompt = names(&alpha_prompts, "prompts")[0].clone();
    let got = served
        .ask(
            BETA,
            &beta,
            &request(7, "prompts/get", json!({"name": prompt})),
        )
        .await;
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available"),
        "{got}"
    );
    let resources = served
        .ask(BETA, &beta, &request(8, "resources/list", json!({})))
        .await;
    assert!(
        resources["result"]["resources"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{resources}"
    );
    let templates = served
        .ask(
            BETA,
            &beta,
            &request(9, "resources/templates/list", json!({})),
        )
        .await;
    assert!(
        templates["result"]["resourceTemplates"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{templates}"
    );
    let read = served
        .ask(
            BETA,
            &beta,
            &request(10, "resources/read", json!({"uri": "mem://hello"})),
        )
        .await;
    assert_eq!(read["error"]["code"], -32002, "{read}");
    let subscribed = served
        .ask(
            BETA,
            &beta,
            &request(11, "resources/subscribe", json!({"uri": "mem://hello"})),
        )
        .await;
    assert!(subscribed.get("error").is_some(), "{subscribed}");
    let read = served
        .ask(
            ALPHA,
            &alpha,
            &request(12, "resources/read", json!({"uri": "mem://hello"})),
        )
        .await;
    assert!(read.get("result").is_some(), "{read}");
    let completion = served
        .ask(BETA, &beta, &request(13, "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": prompt}, "argument": {"name": "x", "value": ""}})))
        .await;
    assert!(
        completion["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available"),
        "{completion}"
    );

    // A session belongs to its client: to another, it does not exist.
    let stolen = served
        .post_as(
            Some(BETA),
            Some(&alpha),
            &request(14, "tools/list", json!({})),
            EVENT_STREAM,
        )
        .await;
    assert_eq!(stolen.status(), 404);
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// Read-only clients keep only tools annotated `readOnlyHint: true`; a client's
/// `list_changed` comes only for changes in what it sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_and_filtered_list_changed() {
    let marker = unique_marker();
    let gateway = policies(json!({"clients": {
        "alpha": {"token": "${env:ALPHA_TOKEN}", "servers": ["a"]},
        "beta": {"token": "${env:BETA_TOKEN}", "readOnly": true}
    }}));
    let served = serve_with(
        vec![fake("a", &marker), fake("b", &marker)],
        |_| {},
        |builder| builder.policies(gateway),
    )
    .await;
    let alpha = session_id(&served.session_as(Some(ALPHA), true).await);
    let beta = session_id(&served.session_as(Some(BETA), true).await);
    let beta_tools = names(
        &served
            .ask(BETA, &beta, &request(1, "tools/list", json!({})))
            .await,
        "tools",
    );
    assert_eq!(beta_tools, vec!["a__echo".to_owned(), "b__echo".to_owned()]);
    let refused = served
        .ask(BETA, &beta, &call(2, "a__touch", json!({})))
        .await;
    assert!(refused.get("error").is_some(), "{refused}");

    // Alpha's stream: b changing its list is not alpha's business; a changing is.
    let stream = served
        .client
        .get(&served.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &alpha)
        .bearer_auth(ALPHA)
        .send()
        .await
        .unwrap();
    let mut reading = JoinSet::new();
    reading.spawn(async move {
        let mut stream = stream;
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if text.matches("tools/list_changed").count() >= 1 {
                break;
            }
        }
        text
    });
    // Beta may not call touch (read-only), so the test drives the servers through the host.
    let scope = mcp_host::AgentScope::all();
    served
        .host
        .call_tool("b__touch", None, &scope)
        .await
        .unwrap();
    served
        .host
        .call_tool("a__touch", None, &scope)
        .await
        .unwrap();
    let seen = tokio::time::timeout(PROMPTLY, reading.join_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.matches("tools/list_changed").count(), 1, "{seen}");
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// Quotas: calls per minute, calls at once and sessions, each refused with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_with_a_reason_and_a_retry_time() {
    let marker = unique_marker();
    let gateway = policies(json!({"clients": {
        "alpha": {"token": "${env:ALPHA_TOKEN}", "quota": {"callsPerMinute": 3}},
        "beta": {"token": "${env:BETA_TOKEN}", "quota": {"concurrentCalls": 1, "sessions": 1}}
    }}));
    let served = serve_with(
        vec![fake("a", &marker)],
        |_| {},
        |builder| builder.policies(gateway),
    )
    .await;
    let alpha = session_id(&served.session_as(Some(ALPHA), true).await);
    for id in 1..=3 {
        let answer = served
            .ask(ALPHA, &alpha, &call(id, "a__echo", json!({"text": "x"})))
            .await;
        assert!(answer.get("result").is_some(), "{answer}");
    }
    let over = served
        .ask(ALPHA, &alpha, &call(4, "a__echo", json!({"text": "x"})))
        .await;
    assert!(
        over["error"]["message"]
            .as_str()
            .unwrap()
            .contains("calls per minute"),
        "{over}"
    );
    assert!(
        over["error"]["data"]["retryAfterSeconds"].as_u64().unwrap() >= 1,
        "{over}"
    );

    let beta = session_id(&served.session_as(Some(BETA), true).await);
    let second = served.session_as(Some(BETA), false).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let slow = served
        .post_as(
            Some(BETA),
            Some(&beta),
            &call(1, "a__slow", json!({"ms": 1000})),
            EVENT_STREAM,
        )
        .await;
    let at_once = served
        .ask(BETA, &beta, &call(2, "a__echo", json!({"text": "x"})))
        .await;
    assert!(
        at_once["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at once"),
        "{at_once}"
    );
    assert!(slow.text().await.unwrap().contains("\"result\""));
    let after = served
        .ask(BETA, &beta, &call(3, "a__echo", json!({"text": "x"})))
        .await;
    assert!(after.get("result").is_some(), "{after}");
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// One JSON line per call, with arguments only for a client that asks for them, masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_audited_and_secrets_masked() {
    let marker = unique_marker();
    let dir = std::env::temp_dir().join(format!("mcp-audit-{marker}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.log");
    let secret = "audit-secret-value-42";
    // SAFETY: tests in this binary read no other variable of this name.
    unsafe { std::env::set_var("MCP_AUDIT_TEST_SECRET", secret) };
    let mut server = fake("a", &marker);
    server.env.insert(
        "TOKEN".to_owned(),
        "${env:MCP_AUDIT_TEST_SECRET}".to_owned(),
    );
    let gateway = policies(json!({"clients": {
        "alpha": {"token": "${env:ALPHA_TOKEN}", "auditArguments": true},
        "beta": {"token": "${env:BETA_TOKEN}"}
    }}));
    let audit = Arc::new(AuditLog::to_file(path.clone(), 1 << 20).unwrap());
    let served = serve_with(
        vec![server],
        |_| {},
        |builder| builder.policies(gateway).audit(audit.clone()),
    )
    .await;
    let alpha = session_id(&served.session_as(Some(ALPHA), true).await);
    let beta = session_id(&served.session_as(Some(BETA), true).await);
    served
        .ask(
            ALPHA,
            &alpha,
            &call(1, "a__echo", json!({"text": format!("my {secret}")})),
        )
        .await;
    served
        .ask(BETA, &beta, &call(1, "a__echo", json!({"text": "plain"})))
        .await;
    served
        .ask(BETA, &beta, &call(2, "a__fail", json!({})))
        .await;
    served.finish().await;
    drop(audit);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(secret), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["client"], "alpha");
    assert_eq!(lines[0]["method"], "tools/call");
    assert_eq!(lines[0]["server"], "a");
    assert_eq!(lines[0]["target"], "a__echo");
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["arguments"]["text"], "my ****", "{text}");
    assert!(lines[1].get("arguments").is_none(), "{text}");
    assert!(lines[1]["argumentBytes"].as_u64().unwrap() > 0);
    assert_eq!(lines[2]["outcome"], "tool_error");
    assert_eq!(lines[1]["session"].as_str().unwrap().len(), 8);
    let _ = std::fs::remove_dir_all(&dir);
    assert_no_process_left(&marker).await;
}

/// An issuer of access tokens for the tests: its keys, and its JWKS served over HTTP.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    _tasks: JoinSet<()>,
}

impl Issuer {
    async fn start() -> Issuer {
        let keys: Arc<Mutex<Vec<Jwk>>> = Arc::default();
        let served = keys.clone();
        let app = axum::Router::new().route(
            "/jwks",
            get(move || {
                let keys = served.lock().unwrap().clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        serde_json::to_string(&JwkSet { keys }).unwrap(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Issuer {
            url,
            keys,
            _tasks: tasks,
        }
    }

    fn publish(&self, key: &EncodingKey, kid: &str) {
        let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        self.keys.lock().unwrap().push(jwk);
    }
}

fn key(name: &str) -> EncodingKey {
    let pem = std::fs::read(format!(
        "{}/tests/it/keys/{name}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    EncodingKey::from_rsa_pem(&pem).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(key: &EncodingKey, kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// OAuth: the gateway is a resource server. Good tokens get in; expired, foreign-audience,
/// foreign-issuer, unsigned (`alg: none`) and HS256-with-the-public-key tokens are refused; a
/// token without the client's scope gets 403 `insufficient_scope`; a key the issuer rotated in
/// is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_access_tokens() {
    let marker = unique_marker();
    let issuer = Issuer::start().await;
    let (key_a, key_b) = (key("rsa-a"), key("rsa-b"));
    issuer.publish(&key_a, "a");
    let audience = "https://gateway.example.com/mcp";
    let gateway = policies(json!({
        "oauth": {"issuer": issuer.url, "audience": audience, "jwksUri": format!("{}/jwks", issuer.url),
                  "scopesSupported": ["mcp"]},
        "clients": {"alice": {"scopes": ["mcp"], "servers": ["a"]}, "*": {"scopes": ["mcp"], "readOnly": true}}
    }));
    let served = serve_with(
        vec![fake("a", &marker)],
        |_| {},
        |builder| builder.policies(gateway),
    )
    .await;
    let good = json!({"iss": issuer.url, "aud": audience, "sub": "alice", "scope": "mcp openid",
                      "exp": now() + 300, "nbf": now() - 10});

    // The protected resource metadata, and the challenge that points to it.
    let metadata: Value = serde_json::from_str(
        &served
            .client
            .get(
                served
                    .url
                    .replace("/mcp", "/.well-known/oauth-protected-resource/mcp"),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["resource"], audience);
    assert_eq!(metadata["authorization_servers"][0], issuer.url.as_str());
    let refused = served.session_as(None, false).await;
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("resource_metadata=\"https://gateway.example.com/.well-known/oauth-protected-resource/mcp\""), "{challenge}");
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");

    let alice = token(&key_a, "a", good.clone());
    let session = served.session_as(Some(&alice), true).await;
    assert_eq!(session.status(), 200);
    let session = session_id(&session);
    let tools = names(
        &served
            .ask(&alice, &session, &request(1, "tools/list", json!({})))
            .await,
        "tools",
    );
    assert!(tools.contains(&"a__add".to_owned()), "{tools:?}");
    // Anyone else with a good token is the `*` client: read-only.
    let mut bob = good.clone();
    bob["sub"] = json!("bob");
    let bob = token(&key_a, "a", bob);
    let bob_session = session_id(&served.session_as(Some(&bob), true).await);
    let tools = names(
        &served
            .ask(&bob, &bob_session, &request(1, "tools/list", json!({})))
            .await,
        "tools",
    );
    assert_eq!(tools, vec!["a__echo".to_owned()]);

    let refused_with = |claims: Value| token(&key_a, "a", claims);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    let mut foreign_audience = good.clone();
    foreign_audience["aud"] = json!("https://other.example.com/mcp");
    let mut foreign_issuer = good.clone();
    foreign_issuer["iss"] = json!("https://evil.example.com");
    for bad in [
        refused_with(expired),
        refused_with(foreign_audience),
        refused_with(foreign_issuer),
    ] {
        assert_eq!(served.session_as(Some(&bad), false).await.status(), 401);
    }
    // `alg: none`, and HS256 "signed" with the public key as the secret.
    use base64::Engine as _;
    let b64 =
        |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "a"})),
        b64(&good)
    );
    assert_eq!(
        served.session_as(Some(&unsigned), false).await.status(),
        401
    );
    let public = serde_json::to_string(&issuer.keys.lock().unwrap()[0]).unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("a".to_owned());
    let confused = jsonwebtoken::encode(
        &hs,
        &good,
        &EncodingKey::from_secret(public.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        served.session_as(Some(&confused), false).await.status(),
        401
    );

    // A valid token without the client's scope.
    let mut unscoped = good.clone();
    unscoped["scope"] = json!("openid");
    let forbidden = served
        .session_as(Some(&refused_with(unscoped)), false)
        .await;
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );

    // Key rotation: a token signed with a key the issuer has not published yet is refused;
    // once published, it is accepted without restarting anything.
    let rotated = token(&key_b, "b", good.clone());
    assert_eq!(served.session_as(Some(&rotated), false).await.status(), 401);
    issuer.publish(&key_b, "b");
    assert_eq!(served.session_as(Some(&rotated), true).await.status(), 200);

    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// The upstream server never sees the client's credential (no token passthrough): a remote
/// server behind the gateway gets its own configured header, never the caller's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_token_never_goes_upstream() {
    use mcp_host_testkit::fake_http::{FakeHttpConfig, FakeHttpServer};
    let upstream = FakeHttpServer::start(FakeHttpConfig::default())
        .await
        .unwrap();
    let mut remote = ClientConfig {
        url: Some(upstream.url()),
        ..ClientConfig::new("remote", "")
    };
    remote.headers.insert(
        "Authorization".to_owned(),
        "Bearer upstream-own-token".to_owned(),
    );
    let gateway = policies(json!({"clients": {"alpha": {"token": "${env:ALPHA_TOKEN}"}}}));
    let served = serve_with(vec![remote], |_| {}, |builder| builder.policies(gateway)).await;
    let alpha = session_id(&served.session_as(Some(ALPHA), true).await);
    let answer = served
        .ask(
            ALPHA,
            &alpha,
            &call(1, "remote__echo", json!({"text": "hi"})),
        )
        .await;
    assert!(answer.get("result").is_some(), "{answer}");
    served.finish().await;
    let log = upstream.log();
    assert!(!log.authorizations.is_empty());
    for authorization in &log.authorizations {
        let authorization = authorization.as_deref().unwrap_or_default();
        assert!(!authorization.contains(ALPHA), "{authorization}");
        assert_eq!(authorization, "Bearer upstream-own-token");
    }
}
