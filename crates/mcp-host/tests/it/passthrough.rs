//! Icons, titles, `_meta` and every other field the host does not own pass through it
//! unchanged, byte for byte (the members keep their order and their text).

use std::collections::BTreeMap;

use mcp_host::{AgentScope, McpHost};
use mcp_host_testkit::{
    assert_no_process_left, unique_marker, FakeConfig, DECORATED_PROMPT, DECORATED_RESOURCE,
    DECORATED_SERVER_INFO, DECORATED_TOOL,
};
use serde_json::value::RawValue;

use crate::fake_client;

/// Each member of a JSON object as its exact text.
fn members(text: &str) -> BTreeMap<String, Box<RawValue>> {
    serde_json::from_str(text).unwrap()
}

/// Checks that `ours` carries every member of `original` but those in `owned` with the same
/// text, and no other member.
#[track_caller]
fn check_unchanged(original: &str, ours: &str, owned: &[&str]) {
    let original = members(original);
    let ours = members(ours);
    for (key, value) in &original {
        if owned.contains(&key.as_str()) {
            continue;
        }
        let got = ours.get(key).map(|value| value.get());
        assert_eq!(got, Some(value.get()), "member `{key}`");
    }
    let extra: Vec<&String> = ours
        .keys()
        .filter(|key| !original.contains_key(*key))
        .collect();
    assert!(extra.is_empty(), "members added: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_a_server_sends_passes_through_unchanged() {
    let marker = unique_marker();
    let fake = FakeConfig {
        every_field: true,
        ..FakeConfig::default()
    };
    let host = McpHost::new(vec![fake_client("deco", &fake, &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();

    let tool = host
        .list_tools(&scope)
        .into_iter()
        .find(|tool| tool.item.name == "decorated")
        .unwrap();
    assert_eq!(tool.name, "deco__decorated");
    let ours = serde_json::to_string(&tool.item).unwrap();
    // Even the name is the server's in the item; the host's name is beside it.
    check_unchanged(DECORATED_TOOL, &ours, &[]);

    let prompt = host
        .list_prompts(&scope)
        .into_iter()
        .find(|prompt| prompt.item.name == "decorated_prompt")
        .unwrap();
    check_unchanged(
        DECORATED_PROMPT,
        &serde_json::to_string(&prompt.item).unwrap(),
        &[],
    );

    let (_, resource) = host
        .list_resources(&scope)
        .into_iter()
        .find(|(_, resource)| resource.uri.starts_with("ui://"))
        .unwrap();
    check_unchanged(
        DECORATED_RESOURCE,
        &serde_json::to_string(&resource).unwrap(),
        &[],
    );

    let status = host.status();
    let info = status[0].server_info.as_ref().unwrap();
    check_unchanged(
        DECORATED_SERVER_INFO,
        &serde_json::to_string(info).unwrap(),
        &[],
    );
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
