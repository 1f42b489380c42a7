//! Multi-round-trip requests of revision 2026-07-28 (`resultType: input_required`), and
//! elicitation modes, against the fake server process.

use std::sync::{Arc, Mutex};

use mcp_host_testkit::FakeConfig;
use mcp_session::protocol::Root;
use mcp_session::{Handshake, RequestOptions, SessionOptions};
use mcp_transport::TransportOptions;
use serde_json::{json, Map, Value};

use crate::{args, start_with};

/// Answers sampling and elicitation (the elicitation modes it was made with), recording what
/// it was asked.
struct Answers {
    elicitation: Value,
    asked: Mutex<Vec<(String, Option<Value>)>>,
}

impl Answers {
    fn new(elicitation: Value) -> Arc<Answers> {
        Arc::new(Answers {
            elicitation,
            asked: Mutex::new(Vec::new()),
        })
    }
}

impl mcp_session::ClientRequestHandler for Answers {
    fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = Map::new();
        capabilities.insert("sampling".to_owned(), json!({}));
        capabilities.insert("elicitation".to_owned(), self.elicitation.clone());
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        matches!(method, "sampling/createMessage" | "elicitation/create")
    }

    fn handle(
        &self,
        _server: &mcp_session::ServerName,
        method: &str,
        params: Option<Value>,
    ) -> mcp_session::HandlerFuture {
        self.asked
            .lock()
            .unwrap()
            .push((method.to_owned(), params.clone()));
        let answer = match method {
            "sampling/createMessage" => json!({
                "role": "assistant", "model": "test",
                "content": {"type": "text", "text": "Paris"},
            }),
            _ => json!({"action": "accept", "content": {"confirmed": true}}),
        };
        Box::pin(async move { Ok(answer) })
    }
}

fn stateless(handler: Option<Arc<Answers>>, roots: bool) -> SessionOptions {
    SessionOptions {
        handshake: Handshake::Discover,
        client_requests: handler
            .map(|handler| handler as Arc<dyn mcp_session::ClientRequestHandler>),
        roots: roots.then(|| {
            Arc::new(vec![Root {
                uri: "file:///work".to_owned(),
                name: Some("work".to_owned()),
            }]) as Arc<dyn mcp_session::RootsProvider>
        }),
        ..SessionOptions::default()
    }
}

fn discovering() -> FakeConfig {
    FakeConfig {
        discover: true,
        ..FakeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_required_is_answered_through_the_handler_and_the_request_retried() {
    let handler = Answers::new(json!({}));
    let options = stateless(Some(handler.clone()), true);
    let running = start_with(discovering(), options, TransportOptions::default()).await;
    assert!(running.session.is_stateless());
    // A state with characters JSON may escape in more than one way: echoed as it came.
    let state = "opaque \"state\" é \u{1F600} / \\";
    let requests = json!({
        "confirm": {"method": "elicitation/create", "params": {
            "message": "Confirm?",
            "requestedSchema": {"type": "object", "properties": {"confirmed": {"type": "boolean"}}},
        }},
        "capital": {"method": "sampling/createMessage", "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": "Capital of France?"}}],
            "maxTokens": 10,
        }},
        "where": {"method": "roots/list"},
    });
    let result = running
        .session
        .call_tool(
            "input_required",
            args(json!({"requests": requests, "state": state})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(!result.is_tool_error());
    let echo: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(echo["requestState"], state);
    assert_eq!(echo["inputResponses"]["confirm"]["action"], "accept");
    assert_eq!(
        echo["inputResponses"]["capital"]["content"]["text"],
        "Paris"
    );
    assert_eq!(
        echo["inputResponses"]["where"]["roots"][0]["uri"],
        "file:///work"
    );
    // The host declares what it answers in this revision too.
    let declared = &echo["clientCapabilities"];
    for capability in ["roots", "sampling", "elicitation"] {
        assert!(
            declared.get(capability).is_some(),
            "{capability}: {declared}"
        );
    }
    let asked = handler.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");

    // Without a state, the retry carries none.
    let requests = json!({"confirm": {"method": "elicitation/create", "params": {"message": "Sure?", "requestedSchema": {"type": "object"}}}});
    let result = running
        .session
        .call_tool(
            "input_required",
            args(json!({"requests": requests})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let echo: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(echo["requestState"], Value::Null);
    assert_eq!(echo["inputResponses"]["confirm"]["action"], "accept");

    // A state alone is echoed with no responses.
    let result = running
        .session
        .call_tool(
            "input_required",
            args(json!({"state": "s1"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let echo: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(echo["requestState"], "s1");
    assert_eq!(echo["inputResponses"], Value::Null);
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_host_cannot_give_fails_the_request_naming_what_was_asked() {
    // No handler and no roots: nothing to answer with.
    let running = start_with(
        discovering(),
        stateless(None, false),
        TransportOptions::default(),
    )
    .await;
    let requests = json!({"capital": {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 1}}});
    let error = running
        .session
        .call_tool(
            "input_required",
            args(json!({"requests": requests, "state": "s"})),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, mcp_session::Error::InputRequest { input_method, code: -32601, .. } if input_method == "sampling/createMessage"),
        "{text}"
    );
    assert!(
        text.contains("fake-server") && text.contains("tools/call"),
        "{text}"
    );

    // A server that never stops asking is given up on.
    let error = running
        .session
        .call_tool(
            "input_required",
            args(json!({"state": "again", "always": true})),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            mcp_session::Error::TooManyInputRounds {
                rounds: mcp_session::MAX_INPUT_ROUNDS,
                ..
            }
        ),
        "{error}"
    );
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_mode_the_client_did_not_declare_is_refused_cleanly() {
    // A handler that declared form mode only (`{}`) is never asked for a URL.
    let handler = Answers::new(json!({}));
    let options = stateless(Some(handler.clone()), false);
    let running = start_with(discovering(), options, TransportOptions::default()).await;
    let requests = json!({"login": {"method": "elicitation/create", "params": {
        "mode": "url", "message": "Log in", "url": "https://example.com/login", "elicitationId": "e1",
    }}});
    let error = running
        .session
        .call_tool(
            "input_required",
            args(json!({"requests": requests})),
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, mcp_session::Error::InputRequest { code: -32602, message, .. } if message.contains("url-mode")),
        "{error}"
    );
    assert!(handler.asked.lock().unwrap().is_empty());
    running.finish().await;

    // The same over 2025-11-25, where the server asks with a request of its own; a handler that
    // declared URL mode only gets no form.
    let handler = Answers::new(json!({"url": {}}));
    let options = SessionOptions {
        client_requests: Some(handler.clone()),
        ..SessionOptions::default()
    };
    let running = start_with(FakeConfig::default(), options, TransportOptions::default()).await;
    let result = running
        .session
        .call_tool(
            "ask_client",
            args(json!({"method": "elicitation/create", "params": {"message": "Name?", "requestedSchema": {"type": "object"}}})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let response: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let result = running
        .session
        .call_tool(
            "ask_client",
            args(json!({"method": "elicitation/create", "params": {"mode": "url", "message": "Log in", "url": "https://example.com/", "elicitationId": "e2"}})),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let response: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(response["result"]["action"], "accept", "{response}");
    assert_eq!(handler.asked.lock().unwrap().len(), 1);
    running.finish().await;
}
