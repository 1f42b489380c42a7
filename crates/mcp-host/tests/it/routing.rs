//! Namespaced and unprefixed names, collisions, filters, agent scopes, routing of prompts,
//! resources, completions and subscriptions, and relaying of servers' notifications.

use std::collections::BTreeSet;

use mcp_host::{AgentScope, CompletionRef, Error, McpHost, NotificationKind, ServerNotification};
use mcp_host_foundation::{ClientConfig, ClientId, ToolFilter};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use mcp_session::protocol::LoggingLevel;
use serde_json::json;
use tokio::sync::broadcast;

use crate::{args, fake_client, id, tool_names, PROMPTLY};

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
        ..AgentScope::default()
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

/// A fake server whose `serverInfo.name` is `<id>-server` (completions answer with it).
fn named_fake(client: &str, marker: &str) -> ClientConfig {
    let fake = FakeConfig {
        name: format!("{client}-server"),
        ..FakeConfig::default()
    };
    fake_client(client, &fake, marker)
}

/// Completes argument `name` of the prompt or template `reference` with `value`; the fake
/// answers `<server name>:<original name or uri>:<value>`.
async fn complete(host: &McpHost, reference: CompletionRef) -> Result<String, Error> {
    let params = args(json!({ "argument": { "name": "name", "value": "A" } })).unwrap();
    let raw = host
        .complete_raw(&reference, params, &AgentScope::all())
        .await?;
    let result: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
    Ok(result["completion"]["values"][0]
        .as_str()
        .unwrap()
        .to_owned())
}

fn prompt(name: &str) -> CompletionRef {
    CompletionRef::Prompt {
        name: name.to_owned(),
    }
}

/// The client that a tool's exposed name routes to.
fn tool_client(host: &McpHost, name: &str) -> Option<ClientId> {
    host.list_tools(&AgentScope::all())
        .into_iter()
        .find(|tool| tool.name == name)
        .map(|tool| tool.client)
}

#[tokio::test]
async fn unprefixed_servers_keep_their_names() {
    let marker = unique_marker();
    let plain = ClientConfig {
        namespace: mcp_host_foundation::Namespace::Never,
        ..named_fake("plain", &marker)
    };
    let host = McpHost::new(vec![plain, named_fake("ns", &marker)]).unwrap();
    host.initialize().await.unwrap();

    // `plain`'s components keep their own names, `ns`'s are namespaced.
    let names = tool_names(&host);
    for expect in ["echo", "add", "tool_0", "ns__echo", "ns__tool_0"] {
        assert!(names.contains(&expect.to_owned()), "{expect} in {names:?}");
    }
    assert_eq!(tool_client(&host, "echo"), Some(id("plain")));
    let result = host
        .call_tool("echo", args(json!({ "text": "as is" })), &AgentScope::all())
        .await
        .unwrap();
    assert_eq!(result.text(), "as is");
    let prompts: Vec<String> = host
        .list_prompts(&AgentScope::all())
        .into_iter()
        .map(|prompt| prompt.name)
        .collect();
    assert_eq!(prompts, vec!["greet", "ns__greet"]);
    let greeting = host
        .get_prompt("greet", args(json!({ "name": "Ada" })), &AgentScope::all())
        .await
        .unwrap();
    assert_eq!(greeting.messages[0].content.as_text(), Some("Hello, Ada!"));

    // Completions go to the server that owns the prompt, under its original name; templates
    // route to the first client (by id) that lists them.
    assert_eq!(
        complete(&host, prompt("greet")).await.unwrap(),
        "plain-server:greet:A"
    );
    assert_eq!(
        complete(&host, prompt("ns__greet")).await.unwrap(),
        "ns-server:greet:A"
    );
    let template = CompletionRef::ResourceTemplate {
        uri_template: "mem://item/{id}".to_owned(),
    };
    assert_eq!(
        complete(&host, template).await.unwrap(),
        "ns-server:mem://item/{id}:A"
    );
    let err = complete(&host, prompt("plain__greet")).await.unwrap_err();
    assert!(matches!(err, Error::UnknownPrompt { .. }), "{err:?}");
    let unknown_template = CompletionRef::ResourceTemplate {
        uri_template: "mem://nothing/{id}".to_owned(),
    };
    let err = complete(&host, unknown_template).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownResourceTemplate { .. }),
        "{err:?}"
    );

    // A second unprefixed server with the same names, started later: the names stay with
    // `plain`, and the newcomer's fall back to `<id>__<name>_<hash>`.
    let also = ClientConfig {
        namespace: mcp_host_foundation::Namespace::Never,
        ..named_fake("also", &marker)
    };
    host.register_client(also).await.unwrap();
    assert_eq!(tool_client(&host, "echo"), Some(id("plain")));
    let names = tool_names(&host);
    let fallback = names
        .iter()
        .find(|name| name.starts_with("also__echo_"))
        .unwrap_or_else(|| panic!("no fallback name in {names:?}"));
    assert!(fallback.len() <= 64);
    assert_eq!(tool_client(&host, fallback), Some(id("also")));
    let result = host
        .call_tool(
            fallback,
            args(json!({ "text": "moved" })),
            &AgentScope::all(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "moved");
    assert_eq!(
        complete(&host, prompt("greet")).await.unwrap(),
        "plain-server:greet:A"
    );
    let also_greet = host
        .list_prompts(&AgentScope::all())
        .into_iter()
        .find(|prompt| prompt.client == id("also"))
        .unwrap();
    assert!(
        also_greet.name.starts_with("also__greet_"),
        "{also_greet:?}"
    );
    assert_eq!(
        complete(&host, prompt(&also_greet.name)).await.unwrap(),
        "also-server:greet:A"
    );

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// The next relayed notification, within [`PROMPTLY`].
async fn next_notification(
    notifications: &mut broadcast::Receiver<ServerNotification>,
) -> ServerNotification {
    tokio::time::timeout(PROMPTLY, notifications.recv())
        .await
        .expect("no notification in time")
        .unwrap()
}

#[tokio::test]
async fn subscriptions_and_log_messages_are_relayed() {
    let marker = unique_marker();
    let host = McpHost::new(vec![
        named_fake("left", &marker),
        named_fake("right", &marker),
    ])
    .unwrap();
    host.initialize().await.unwrap();
    let mut notifications = host.subscribe_notifications();
    let all = AgentScope::all();

    // Both list `mem://hello`: the subscription goes where a read would, to `left`; the fake
    // reports one update at once.
    host.subscribe_resource("mem://hello", &all).await.unwrap();
    let updated = next_notification(&mut notifications).await;
    assert_eq!(
        updated,
        ServerNotification {
            client: id("left"),
            kind: NotificationKind::ResourceUpdated {
                uri: "mem://hello".to_owned()
            },
        }
    );
    // Routed by template, limited by scope.
    let only_right = AgentScope {
        allowed_clients: Some([id("right")].into_iter().collect()),
        ..AgentScope::default()
    };
    host.subscribe_resource("mem://item/7", &only_right)
        .await
        .unwrap();
    let updated = next_notification(&mut notifications).await;
    assert_eq!(updated.client, id("right"));
    // A second subscriber is counted, not forwarded; unsubscribing twice releases both.
    host.subscribe_resource("mem://hello", &all).await.unwrap();
    host.unsubscribe_resource("mem://hello", &all)
        .await
        .unwrap();
    host.unsubscribe_resource("mem://hello", &all)
        .await
        .unwrap();
    let err = host
        .subscribe_resource("other://nothing", &all)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownResource { .. }), "{err:?}");

    // The level goes to every server; each says so in a log message, which is relayed. Had the
    // second subscription been forwarded, its update would have come first.
    let failures = host.set_logging_level(LoggingLevel::Warning).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut clients = BTreeSet::new();
    for _ in 0..2 {
        let notification = next_notification(&mut notifications).await;
        let NotificationKind::Log(message) = notification.kind else {
            panic!("expected a log message, got {notification:?}");
        };
        assert_eq!(message.level, LoggingLevel::Warning);
        assert_eq!(message.data, json!("log level set to \"warning\""));
        clients.insert(notification.client);
    }
    assert_eq!(clients, [id("left"), id("right")].into_iter().collect());

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
