//! Paginated lists, prompts, resources and logging.

use mcp_host_testkit::FakeConfig;
use mcp_session::protocol::LoggingLevel;
use mcp_session::{Error, RequestOptions};
use serde_json::json;

use crate::{args, start};

#[tokio::test]
async fn pagination_follows_cursors() {
    let one_page = start(FakeConfig {
        n_tools: 25,
        ..FakeConfig::default()
    })
    .await;
    let expected = one_page.session.list_all_tools().await.unwrap();
    one_page.finish().await;

    let paged = start(FakeConfig {
        n_tools: 25,
        page_size: 4,
        ..FakeConfig::default()
    })
    .await;
    let first = paged.session.list_tools(None).await.unwrap();
    assert_eq!(first.tools.len(), 4);
    assert!(first.next_cursor.is_some());
    let tools = paged.session.list_all_tools().await.unwrap();
    assert_eq!(tools, expected);
    assert!(tools.iter().any(|tool| tool.name == "tool_24"));
    // Unknown fields of each tool are kept.
    assert!(tools.iter().all(|tool| tool.extra.contains_key("x-fake")));
    paged.finish().await;
}

#[tokio::test]
async fn repeated_cursor_stops_with_an_error() {
    let running = start(FakeConfig {
        repeat_cursor: true,
        ..FakeConfig::default()
    })
    .await;
    let err = running.session.list_all_tools().await.unwrap_err();
    assert!(matches!(err, Error::RepeatedCursor { .. }), "{err:?}");
    assert!(err.to_string().contains("again"), "{err}");
    running.finish().await;
}

#[tokio::test]
async fn prompts_resources_and_logging() {
    let running = start(FakeConfig::default()).await;
    let session = &running.session;
    let prompts = session.list_all_prompts().await.unwrap();
    assert_eq!(prompts[0].name, "greet");
    let prompt = session
        .get_prompt(
            "greet",
            args(json!({ "name": "Ada" })),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(prompt.messages[0].content.as_text(), Some("Hello, Ada!"));

    let resources = session.list_all_resources().await.unwrap();
    assert_eq!(resources[0].uri, "mem://hello");
    let templates = session.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "mem://item/{id}");
    let read = session
        .read_resource("mem://item/7", &RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(read.contents[0].text.as_deref(), Some("item 7"));
    let err = session
        .read_resource("mem://missing", &RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32002), "{err:?}");

    session
        .set_logging_level(LoggingLevel::Warning)
        .await
        .unwrap();
    running.finish().await;
}
