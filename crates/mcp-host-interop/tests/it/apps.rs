//! An MCP App (a `ui://` HTML resource that calls its server's tools by their own names) keeps
//! working behind the host when its server is named `"namespace": "auto"`, and through the HTTP
//! gateway, also beside a client in tool search mode.

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

/// The bearer tokens of the two clients of the gateway (test values, nothing secret).
const APPS_TOKEN: &str = "apps-token-0123456789";
const AGENT_TOKEN: &str = "agent-token-0123456789";

/// One client of `mcp-host serve --http`: its token and session.
struct HttpClient<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    token: &'static str,
    session: String,
    next_id: u64,
}

impl<'a> HttpClient<'a> {
    async fn post(&self, body: &serde_json::Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(self.token)
            .body(body.to_string());
        if !self.session.is_empty() {
            request = request.header("mcp-session-id", &self.session);
        }
        bounded("a POST to the gateway", PROMPTLY, request.send())
            .await
            .unwrap()
    }

    /// The response to `method` (its `result`, or panics with its error).
    async fn ask(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let response = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(response.status(), 200, "{method}");
        if self.session.is_empty() {
            if let Some(session) = response.headers().get("mcp-session-id") {
                self.session = session.to_str().unwrap().to_owned();
            }
        }
        let body = bounded("an answer", PROMPTLY, response.text())
            .await
            .unwrap();
        // A JSON body, or SSE events of which one is the response.
        let messages: Vec<serde_json::Value> = if body.trim_start().starts_with('{') {
            vec![serde_json::from_str(&body).unwrap()]
        } else {
            body.split("\n\n")
                .filter_map(|event| {
                    let data: Vec<&str> = event
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    let data = data.join("\n");
                    (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
                })
                .collect()
        };
        let answer = messages
            .into_iter()
            .find(|message| message["id"] == id)
            .unwrap_or_else(|| panic!("{method}: no response in {body}"));
        answer
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{method}: {answer}"))
    }

    async fn open(http: &'a reqwest::Client, url: &'a str, token: &'static str) -> HttpClient<'a> {
        let mut client = HttpClient {
            http,
            url,
            token,
            session: String::new(),
            next_id: 0,
        };
        let init = client
            .ask(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "interop", "version": "1"}}),
            )
            .await;
        assert_eq!(init["serverInfo"]["name"], "mcp-host", "{init}");
        assert!(!client.session.is_empty(), "no session id");
        let initialized = client
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(initialized.status(), 202);
        client
    }
}

/// The text of a tool result that succeeded (servers may leave `isError` out).
#[track_caller]
fn tool_text(result: &serde_json::Value) -> String {
    assert_ne!(result["isError"], true, "{result}");
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {result}"))
        .to_owned()
}

/// `mcp-host serve --http --tool-mode search` fronts the MCP Apps example (`"namespace":
/// "auto"`) and mcp-server-time for two clients: an MCP Apps host (its own `"toolMode": "all"`)
/// lists the `ui://` app, reads its HTML and calls the tool by the bare name the HTML uses; an
/// agent in search mode sees only `find_tools` and `call_tool`, finds and calls the time tools
/// through them, and may still call the app's tool by its name, as the app would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_app_through_the_http_gateway() {
    use crate::assert_no_process_left;
    use crate::cli::{entry, HttpGateway};

    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let mut app = entry(&interop.basic_app(&scratch));
    app["namespace"] = json!("auto");
    let mut time = entry(&interop.time(&scratch));
    time["namespace"] = json!("auto");
    let config = scratch.path.join("mcp.json");
    let file = json!({
        "mcpServers": {"app": app, "time": time},
        "gateway": {"clients": {
            "apps": {"token": "${env:APPS_TOKEN}", "toolMode": "all"},
            "agent": {"token": "${env:AGENT_TOKEN}"}
        }}
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    let gateway = HttpGateway::start(
        &config,
        &["127.0.0.1:0", "--tool-mode", "search"],
        &[("APPS_TOKEN", APPS_TOKEN), ("AGENT_TOKEN", AGENT_TOKEN)],
        &scratch,
        "gateway",
        std::time::Duration::from_secs(90),
    )
    .await;
    let url = gateway.url.clone();
    let http = reqwest::Client::new();

    // The MCP Apps host: the app's ui:// resource and the HTML it reads.
    let mut apps = HttpClient::open(&http, &url, APPS_TOKEN).await;
    let resources = apps.ask("resources/list", json!({})).await;
    let resource = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|resource| {
            resource["uri"]
                .as_str()
                .is_some_and(|uri| uri.starts_with("ui://"))
        })
        .unwrap_or_else(|| panic!("no ui:// resource in {resources}"))
        .clone();
    let uri = resource["uri"].as_str().unwrap().to_owned();
    let read = apps.ask("resources/read", json!({"uri": uri})).await;
    let contents = &read["contents"][0];
    assert!(
        contents["mimeType"]
            .as_str()
            .is_some_and(|mime| mime.starts_with("text/html")),
        "{contents}"
    );
    let html = contents["text"].as_str().unwrap_or_default().to_owned();

    // The tool that shows the app, by the name the HTML calls it.
    let tools = apps.ask("tools/list", json!({})).await;
    let tool = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| {
            let meta = &tool["_meta"];
            meta.pointer("/ui/resourceUri")
                .or_else(|| meta.get("ui/resourceUri"))
                .and_then(serde_json::Value::as_str)
                == Some(uri.as_str())
        })
        .unwrap_or_else(|| panic!("no tool shows {uri}: {tools}"))
        .clone();
    let name = tool["name"].as_str().unwrap().to_owned();
    assert!(
        html.contains(&format!("name:\"{name}\"")) || html.contains(&format!("name: \"{name}\"")),
        "the app does not call `{name}`"
    );
    let called = apps
        .ask("tools/call", json!({"name": name, "arguments": {}}))
        .await;
    assert!(!tool_text(&called).is_empty(), "{called}");

    // The agent, in the command line's search mode.
    let mut agent = HttpClient::open(&http, &url, AGENT_TOKEN).await;
    let listed = agent.ask("tools/list", json!({})).await;
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert_eq!(names, ["find_tools", "call_tool"], "{listed}");
    let found = agent
        .ask(
            "tools/call",
            json!({"name": "find_tools", "arguments": {"query": "current time in a timezone"}}),
        )
        .await;
    let found_names: Vec<&str> = found["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{found}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert!(found_names.contains(&"get_current_time"), "{found_names:?}");
    let now = agent
        .ask(
            "tools/call",
            json!({"name": "call_tool", "arguments": {
                "name": "get_current_time", "arguments": {"timezone": "UTC"}}}),
        )
        .await;
    assert!(tool_text(&now).contains("UTC"), "{now}");
    let direct = agent
        .ask("tools/call", json!({"name": name, "arguments": {}}))
        .await;
    assert!(!tool_text(&direct).is_empty(), "{direct}");

    gateway
        .terminate(std::time::Duration::from_secs(30), PROMPTLY)
        .await;
    assert_no_process_left(&scratch).await;
}
