//! Multi-round-trip requests of revision 2026-07-28 through the host: a server's request for
//! input is answered by the host's roots and its `ClientRequestHandler`.

use std::sync::Arc;

use mcp_host::{
    AgentScope, ClientRequestHandler, HandlerFuture, HostOptions, McpHost, ProtocolChoice,
    ServerName,
};
use mcp_host_foundation::SecurityManager;
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig, TempDir};
use serde_json::{json, Map, Value};

use crate::{args, fake_client};

/// Answers every sampling request with "Paris".
struct Sampler;

impl ClientRequestHandler for Sampler {
    fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = Map::new();
        capabilities.insert("sampling".to_owned(), json!({}));
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        method == "sampling/createMessage"
    }

    fn handle(&self, server: &ServerName, _method: &str, _params: Option<Value>) -> HandlerFuture {
        let server = server.to_string();
        Box::pin(async move {
            Ok(
                json!({"role": "assistant", "model": "test", "content": {"type": "text", "text": format!("Paris, for {server}")}}),
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_server_asking_for_input_is_answered_by_the_host() {
    let marker = unique_marker();
    let dir = TempDir::new("mcp-host-input-roots");
    let fake = FakeConfig {
        discover: true,
        // Listed, so that the host routes it (its answer is the input_required tool's).
        extra_tools: vec!["input_required".to_owned()],
        ..FakeConfig::default()
    };
    let mut config = fake_client("next", &fake, &marker);
    config.protocol = ProtocolChoice::Stateless;
    config.roots = vec![dir.path().to_string_lossy().into_owned()];
    let options = HostOptions {
        client_requests: Some(Arc::new(Sampler)),
        ..HostOptions::default()
    };
    let host = McpHost::with_options(vec![config], SecurityManager::new(), options).unwrap();
    host.initialize().await.unwrap();
    assert_eq!(
        host.status()[0].protocol_version.as_deref(),
        Some("2026-07-28")
    );
    let requests = json!({
        "capital": {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}},
        "where": {"method": "roots/list"},
    });
    let result = host
        .call_tool(
            "next__input_required",
            args(json!({"requests": requests, "state": "opaque"})),
            &AgentScope::all(),
        )
        .await
        .unwrap();
    let echo: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(
        echo["inputResponses"]["capital"]["content"]["text"],
        "Paris, for next"
    );
    let root = echo["inputResponses"]["where"]["roots"][0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(root.starts_with("file://"), "{root}");
    assert_eq!(echo["requestState"], "opaque");
    for capability in ["roots", "sampling"] {
        assert!(
            echo["clientCapabilities"].get(capability).is_some(),
            "{capability}: {echo}"
        );
    }
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
