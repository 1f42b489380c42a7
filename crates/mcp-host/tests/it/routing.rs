//! Namespaced names, collisions, filters, agent scopes, and routing of prompts and resources.

use std::collections::BTreeSet;

use mcp_host::{AgentScope, Error, McpHost};
use mcp_host_foundation::{ClientConfig, ToolFilter};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::json;

use crate::{args, fake_client, id, tool_names};

#[tokio::test]
async fn collisions_filters_and_scopes() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let filtered = ClientConfig {
        tools: ToolFilter {
            allow: Some(vec![
                "echo".to_owned(),
                "add".to_owned(),
                "tool_*".to_owned(),
            ]),
            deny: vec!["add".to_owned()],
        },
        exclude: vec!["tool_1".to_owned()],
        ..fake_client("filtered", &fake, &marker)
    };
    let host = McpHost::new(vec![
        fake_client("a.b", &fake, &marker),
        fake_client("a_b", &fake, &marker),
        filtered,
    ])
    .unwrap();
    host.initialize().await.unwrap();

    // `a.b` and `a_b` both want `a_b__echo`; both get a distinct name and route correctly.
    let names = tool_names(&host);
    let echoes: Vec<&String> = names
        .iter()
        .filter(|name| name.starts_with("a_b__echo"))
        .collect();
    assert_eq!(echoes.len(), 2, "{names:?}");
    let mut routed = BTreeSet::new();
    for name in &echoes {
        let tool = host
            .list_tools(&AgentScope::all())
            .into_iter()
            .find(|tool| &&tool.name == name)
            .unwrap();
        assert!(name.len() <= 64);
        routed.insert(tool.client.clone());
        let result = host
            .call_tool(name, args(json!({ "text": "which" })), &AgentScope::all())
            .await
            .unwrap();
        assert_eq!(result.text(), "which");
    }
    assert_eq!(routed, [id("a.b"), id("a_b")].into_iter().collect());

    // Allow/deny and excluded components.
    let filtered_names: Vec<&String> = names
        .iter()
        .filter(|name| name.starts_with("filtered__"))
        .collect();
    assert_eq!(
        filtered_names,
        vec!["filtered__echo", "filtered__tool_0", "filtered__tool_2"]
    );

    // An agent scope limits listing and calling alike.
    let scope = AgentScope {
        allowed_clients: Some([id("filtered")].into_iter().collect()),
        excluded: ["filtered__tool_0".to_owned()].into_iter().collect(),
    };
    let visible: Vec<String> = host
        .list_tools(&scope)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(visible, vec!["filtered__echo", "filtered__tool_2"]);
    for hidden in ["filtered__tool_0", "a_b__add", "filtered__add"] {
        let err = host.call_tool(hidden, None, &scope).await.unwrap_err();
        assert!(
            matches!(err, Error::UnknownTool { .. }),
            "{hidden}: {err:?}"
        );
    }
    host.call_tool("filtered__tool_2", None, &scope)
        .await
        .unwrap();

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn prompts_and_resources_are_routed() {
    let marker = unique_marker();
    let host = McpHost::new(vec![
        fake_client(
            "left",
            &FakeConfig {
                name: "left-server".to_owned(),
                ..FakeConfig::default()
            },
            &marker,
        ),
        fake_client(
            "right",
            &FakeConfig {
                name: "right-server".to_owned(),
                ..FakeConfig::default()
            },
            &marker,
        ),
    ])
    .unwrap();
    host.initialize().await.unwrap();
    let prompts: Vec<String> = host
        .list_prompts(&AgentScope::all())
        .into_iter()
        .map(|prompt| prompt.name)
        .collect();
    assert_eq!(prompts, vec!["left__greet", "right__greet"]);
    let prompt = host
        .get_prompt(
            "right__greet",
            args(json!({ "name": "Ada" })),
            &AgentScope::all(),
        )
        .await
        .unwrap();
    assert_eq!(prompt.messages[0].content.as_text(), Some("Hello, Ada!"));

    // Both list `mem://hello`: it goes to the first client by id; templates route the rest.
    assert_eq!(host.list_resources(&AgentScope::all()).len(), 2);
    assert_eq!(host.list_resource_templates(&AgentScope::all()).len(), 2);
    let read = host
        .read_resource("mem://hello", &AgentScope::all())
        .await
        .unwrap();
    assert_eq!(
        read.contents[0].text.as_deref(),
        Some("hello from left-server")
    );
    let only_right = AgentScope {
        allowed_clients: Some([id("right")].into_iter().collect()),
        ..AgentScope::default()
    };
    let read = host
        .read_resource("mem://hello", &only_right)
        .await
        .unwrap();
    assert_eq!(
        read.contents[0].text.as_deref(),
        Some("hello from right-server")
    );
    let read = host
        .read_resource("mem://item/9", &only_right)
        .await
        .unwrap();
    assert_eq!(read.contents[0].text.as_deref(), Some("item 9"));
    let err = host
        .read_resource("other://nothing", &AgentScope::all())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownResource { .. }), "{err:?}");

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn roots_change_at_runtime() {
    let marker = unique_marker();
    let first = std::env::temp_dir().join(format!("{marker}-first"));
    let second = std::env::temp_dir().join(format!("{marker}-second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let config = ClientConfig {
        roots: vec![first.to_string_lossy().into_owned()],
        ..fake_client("rooted", &FakeConfig::default(), &marker)
    };
    let host = McpHost::new(vec![config]).unwrap();
    host.initialize().await.unwrap();
    let before = client_roots(&host).await;
    assert_eq!(before.len(), 1);
    assert!(before[0].ends_with("-first"), "{before:?}");
    host.set_roots(&id("rooted"), &[second.to_string_lossy().into_owned()])
        .unwrap();
    let after = client_roots(&host).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].ends_with("-second"), "{after:?}");
    // A root that does not exist is refused and changes nothing.
    let err = host
        .set_roots(&id("rooted"), &["/nonexistent/root/dir".to_owned()])
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_eq!(client_roots(&host).await, after);
    host.shutdown().await;
    assert_no_process_left(&marker).await;
    let _ = std::fs::remove_dir_all(&first);
    let _ = std::fs::remove_dir_all(&second);
}

async fn client_roots(host: &McpHost) -> Vec<String> {
    let result = host
        .call_tool(
            "rooted__ask_client",
            args(json!({ "method": "roots/list" })),
            &AgentScope::all(),
        )
        .await
        .unwrap();
    let response: serde_json::Value = serde_json::from_str(&result.text()).unwrap();
    response["result"]["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|root| root["uri"].as_str().unwrap().to_owned())
        .collect()
}
