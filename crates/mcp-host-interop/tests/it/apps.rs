//! An MCP App (a `ui://` HTML resource that calls its server's tools by their own names) keeps
//! working behind the host when its server is named `"namespace": "auto"`.

use mcp_host::{AgentScope, Namespace};
use mcp_host_foundation::ClientConfig;
use serde_json::json;

use crate::{bounded, call, interop, start, stop, tool_names, Scratch, PROMPTLY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_app_calls_its_tool_by_the_name_it_knows() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let app = ClientConfig {
        namespace: Namespace::Auto,
        ..interop.basic_app(&scratch)
    };
    let time = ClientConfig {
        namespace: Namespace::Auto,
        ..interop.time(&scratch)
    };
    let host = start(vec![app, time]).await;
    let scope = AgentScope::all();

    // The app: a ui:// resource, HTML for an MCP Apps host.
    let (client, resource) = host
        .list_resources(&scope)
        .into_iter()
        .find(|(_, resource)| resource.uri.starts_with("ui://"))
        .expect("the server lists a ui:// resource");
    assert_eq!(client.as_str(), "app");
    let read = bounded(
        "read the app",
        PROMPTLY,
        host.read_resource(&resource.uri, &scope),
    )
    .await
    .unwrap();
    let html = read.contents[0].text.clone().unwrap_or_default();
    assert!(
        read.contents[0]
            .mime_type
            .as_deref()
            .is_some_and(|mime| mime.starts_with("text/html")),
        "{:?}",
        read.contents[0].mime_type
    );

    // The tool that shows it names it in `_meta.ui.resourceUri`; the app calls it by its own
    // name, and the host exposes it by that very name (no collision, so no prefix).
    let tool = host
        .list_tools(&scope)
        .into_iter()
        .find(|tool| {
            let meta = tool.item.extra.get("_meta");
            meta.and_then(|meta| meta.pointer("/ui/resourceUri"))
                .or_else(|| meta.and_then(|meta| meta.get("ui/resourceUri")))
                .and_then(serde_json::Value::as_str)
                == Some(resource.uri.as_str())
        })
        .expect("a tool shows the app");
    assert_eq!(tool.name, tool.item.name, "{:?}", tool_names(&host));
    assert!(
        html.contains(&format!("name:\"{}\"", tool.item.name))
            || html.contains(&format!("name: \"{}\"", tool.item.name)),
        "the app does not call `{}`",
        tool.item.name
    );
    let result = call(&host, &tool.name, json!({})).await;
    assert!(!result.content.is_empty(), "{result:?}");
    // The other server's tools keep their own names too.
    let names = tool_names(&host);
    assert!(names.contains(&"get_current_time".to_owned()), "{names:?}");
    stop(host, &scratch).await;
}
