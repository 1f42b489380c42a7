//! The client under test of the official MCP conformance suite's client scenarios
//! (`@modelcontextprotocol/conformance`, run by `cargo xtask conformance`).
//!
//! The suite starts a mock server and runs `conformance-client <url>` with the scenario's name in
//! `MCP_CONFORMANCE_SCENARIO` (and, in its 0.2 versions, the revision under test in
//! `MCP_CONFORMANCE_PROTOCOL_VERSION`: for `2026-07-28` the client negotiates with
//! `server/discover`, else with `initialize`). This program does what the scenario asks of a client, with our
//! Streamable HTTP transport (`mcp-http`) and session (`mcp-session`), and exits 0 when every
//! step succeeded, 1 (saying why on stderr) otherwise. The suite judges the traffic.
//!
//! For the `auth/*` scenarios the connection carries an OAuth authorizer (`mcp-auth`) with an
//! in-memory token store; it authorizes on the server's first 401, following the authorization
//! endpoint's redirect itself instead of opening a browser (the suite's authorization server
//! approves at once). The scenario's `MCP_CONFORMANCE_CONTEXT` (pre-registered client
//! credentials, a private key for `private_key_jwt`) becomes the authorizer's settings, as a
//! server's `auth` object in the configuration would.
#![allow(clippy::print_stderr)]

use std::time::Duration;

use mcp_http::HttpOptions;
use mcp_session::{Handshake, RequestOptions, Session, SessionOptions};
use mcp_transport::{ServerName, TransportOptions};
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

/// Every step of a scenario is bounded by this.
const STEP: Duration = Duration::from_secs(20);

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: conformance-client <server-url> (scenario in MCP_CONFORMANCE_SCENARIO)");
        std::process::exit(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conformance-client: cannot start tokio: {error}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(&url, &scenario)) {
        Ok(()) => eprintln!("conformance-client: scenario `{scenario}` done"),
        Err(error) => {
            eprintln!("conformance-client: scenario `{scenario}` failed: {error}");
            std::process::exit(1);
        }
    }
}

async fn run(url: &str, scenario: &str) -> Result<(), String> {
    let tracker = TaskTracker::new();
    let server = ServerName::new("conformance");
    let mut http_options = HttpOptions::new(url);
    if scenario.starts_with("auth/") {
        let authorizer = mcp_auth::Authorizer::new(
            server.clone(),
            url,
            auth_options(),
            mcp_auth::TokenStore::memory(),
        )
        .map_err(|error| error.to_string())?
        .with_browser(std::sync::Arc::new(FollowRedirect::new()?));
        http_options.auth = Some(authorizer);
    }
    let (http, transport) =
        mcp_http::connect(server, http_options, &TransportOptions::default(), &tracker)
            .map_err(|error| error.to_string())?;
    let stateless = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION")
        .is_ok_and(|version| version == mcp_session::protocol::STATELESS_PROTOCOL_VERSION);
    let options = SessionOptions {
        request_timeout: STEP,
        // What an application's user would do with a form: take the defaults it offers.
        client_requests: Some(std::sync::Arc::new(AcceptDefaults)),
        handshake: if stateless {
            Handshake::Discover
        } else {
            Handshake::Initialize
        },
        ..SessionOptions::default()
    };
    let (session, connection) = mcp_session::connect(transport, options);
    let mut driver = JoinSet::new();
    driver.spawn(connection);

    let outcome = scenario_steps(&session, scenario).await;

    session.shut_down();
    let report = http.close(Duration::from_secs(2)).await;
    let _ = tokio::time::timeout(STEP, driver.join_next()).await;
    tracker.close();
    if tokio::time::timeout(STEP, tracker.wait()).await.is_err() {
        return Err("the HTTP connection's tasks did not end".to_owned());
    }
    if !report.stderr_tail.is_empty() {
        eprintln!(
            "conformance-client: connection log:\n{}",
            report.stderr_tail
        );
    }
    outcome
}

async fn scenario_steps(session: &Session, scenario: &str) -> Result<(), String> {
    let init = bounded("initialize", session.initialize()).await?;
    eprintln!(
        "conformance-client: connected to {} {} (protocol {})",
        init.server_info.name, init.server_info.version, init.protocol_version
    );
    let tools = bounded("tools/list", session.list_all_tools()).await?;
    let has = |name: &str| tools.iter().any(|tool| tool.name == name);
    match scenario {
        "tools_call" if has("add_numbers") => {
            let result = call(session, "add_numbers", json!({"a": 5, "b": 3})).await?;
            eprintln!("conformance-client: add_numbers -> {result}");
        }
        "sse-retry" if has("test_reconnection") => {
            let result = call(session, "test_reconnection", json!({})).await?;
            eprintln!("conformance-client: test_reconnection -> {result}");
        }
        "json-schema-2020-12-preservation" if has("json_schema_echo") => {
            // Echo a tool's input schema as this client stored it: the suite checks that
            // nothing of JSON Schema 2020-12 ($schema, $defs, …) was lost on the way in.
            let schema = tools
                .iter()
                .find(|tool| tool.name == "json_schema_2020_12_tool")
                .map(|tool| tool.input_schema.clone())
                .ok_or("the server lists no json_schema_2020_12_tool")?;
            let result = call(session, "json_schema_echo", json!({ "schema": schema })).await?;
            eprintln!("conformance-client: json_schema_echo -> {result}");
        }
        "elicitation-sep1034-client-defaults" if has("test_client_elicitation_defaults") => {
            // The server asks for a form; the handler accepts it with the schema's defaults.
            let result = call(session, "test_client_elicitation_defaults", json!({})).await?;
            eprintln!("conformance-client: test_client_elicitation_defaults -> {result}");
        }
        "http-custom-headers" if has("test_custom_headers") => {
            // Arguments the tool mirrors into Mcp-Param-* headers (the HTTP transport does it),
            // with every kind of value that needs plain or Base64 encoding.
            let arguments = json!({
                "region": "us-west1", "priority": 42, "verbose": false, "debug": true,
                "empty_val": "", "method_val": "GET", "float_val": 1.5,
                "non_ascii_val": "café ☕", "whitespace_val": "  padded  ",
                "leading_space_val": " lead", "trailing_space_val": "trail ",
                "internal_space_val": "a b c", "control_char_val": "a\u{1}b",
                "crlf_val": "a\r\nb", "tab_val": "\tx", "query": "plain query",
            });
            call(session, "test_custom_headers", arguments).await?;
            if has("test_custom_headers_null") {
                let arguments =
                    json!({"region": "eu", "priority": 1, "verbose": null, "query": "q"});
                call(session, "test_custom_headers_null", arguments).await?;
            }
        }
        auth if auth.starts_with("auth/") => {
            // The suite's protected server has one tool; calling it is what needs the token
            // (and, in `auth/scope-step-up`, a scope more than listing did).
            for tool in &tools {
                let arguments = dummy_arguments(&tool.input_schema);
                call(session, &tool.name, arguments).await?;
            }
        }
        "sep-2322-client-request-state" => {
            // Each tool answers `input_required` (or, the last, a result without `resultType`);
            // the session answers the elicitation it asks for and retries, echoing the state.
            for name in [
                "test_mrtr_echo_state",
                "test_mrtr_no_state",
                "test_mrtr_state_only",
                "test_mrtr_unrelated",
                "test_mrtr_no_result_type",
            ] {
                if has(name) {
                    let result = call(session, name, json!({})).await?;
                    eprintln!("conformance-client: {name} -> {result}");
                }
            }
        }
        "http-invalid-tool-headers" => {
            // Call every tool we were given: the transport must have left out the invalid ones.
            for tool in &tools {
                let arguments = dummy_arguments(&tool.input_schema);
                call(session, &tool.name, arguments).await?;
            }
        }
        _ => {
            // Other scenarios (`initialize`, …) ask for the handshake and nothing more; call
            // nothing we were not asked to.
        }
    }
    Ok(())
}

/// The client id of the conformance suite's Client ID Metadata Document scenario: a URL the
/// suite's authorization server takes as it is.
const CLIENT_METADATA_URL: &str = "https://conformance-test.local/client-metadata.json";

/// The authorizer's settings for the scenario, from `MCP_CONFORMANCE_CONTEXT`.
fn auth_options() -> mcp_auth::AuthOptions {
    let context: Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let text = |name: &str| context.get(name).and_then(Value::as_str).map(str::to_owned);
    let scenario = text("name").unwrap_or_default();
    let mut options = mcp_auth::AuthOptions {
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        client_metadata_url: Some(CLIENT_METADATA_URL.to_owned()),
        private_key: text("private_key_pem"),
        signing_algorithm: text("signing_algorithm"),
        client_name: "mcp-host conformance client".to_owned(),
        ..mcp_auth::AuthOptions::default()
    };
    if scenario.starts_with("auth/client-credentials") {
        options.grant = mcp_auth::Grant::ClientCredentials;
    }
    if let (Some(token_endpoint), Some(client_id), Some(id_token)) = (
        text("idp_token_endpoint"),
        text("idp_client_id"),
        text("idp_id_token"),
    ) {
        options.grant = mcp_auth::Grant::IdentityAssertion;
        options.identity_provider = Some(mcp_auth::IdentityProvider {
            token_endpoint,
            client_id,
            client_secret: None,
            id_token,
        });
    }
    options
}

/// Plays the person at the authorization endpoint: fetches the authorization URL and reads the
/// redirect it answers with, without following it.
struct FollowRedirect {
    client: reqwest::Client,
}

impl FollowRedirect {
    fn new() -> Result<FollowRedirect, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(STEP)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(FollowRedirect { client })
    }
}

impl mcp_auth::Browser for FollowRedirect {
    fn redirect_uri(&self) -> String {
        "http://localhost:3000/callback".to_owned()
    }

    fn visit<'a>(&'a self, url: &'a reqwest::Url) -> mcp_auth::BrowserFuture<'a> {
        Box::pin(async move {
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|error| format!("the authorization endpoint failed: {error}"))?;
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| {
                    format!(
                        "the authorization endpoint answered HTTP {} without a redirect",
                        response.status()
                    )
                })?;
            let redirect = url
                .join(location)
                .map_err(|error| format!("the redirect is not a URL: {error}"))?;
            Ok(mcp_auth::Callback::from_url(&redirect))
        })
    }
}

/// Answers `elicitation/create` by accepting the form with the defaults its schema gives.
struct AcceptDefaults;

impl mcp_session::ClientRequestHandler for AcceptDefaults {
    fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = Map::new();
        capabilities.insert("elicitation".to_owned(), json!({}));
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        method == "elicitation/create"
    }

    fn handle(
        &self,
        _server: &ServerName,
        _method: &str,
        params: Option<Value>,
    ) -> mcp_session::HandlerFuture {
        let mut content = Map::new();
        let properties = params
            .as_ref()
            .and_then(|params| params.pointer("/requestedSchema/properties"))
            .and_then(Value::as_object);
        for (name, schema) in properties.into_iter().flatten() {
            if let Some(default) = schema.get("default") {
                content.insert(name.clone(), default.clone());
            }
        }
        Box::pin(async move { Ok(json!({ "action": "accept", "content": content })) })
    }
}

/// Arguments for a tool's required properties: "x" for strings, 1 for integers and numbers,
/// true for booleans.
fn dummy_arguments(schema: &Value) -> Value {
    let mut arguments = Map::new();
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        let kind = schema
            .pointer(&format!("/properties/{name}/type"))
            .and_then(Value::as_str);
        let value = match kind {
            Some("integer" | "number") => json!(1),
            Some("boolean") => json!(true),
            _ => json!("x"),
        };
        arguments.insert(name.to_owned(), value);
    }
    Value::Object(arguments)
}

async fn call(session: &Session, name: &str, arguments: Value) -> Result<String, String> {
    let arguments: Option<Map<String, Value>> = arguments.as_object().cloned();
    let result = bounded(
        name,
        session.call_tool(name, arguments, &RequestOptions::default()),
    )
    .await?;
    if result.is_tool_error() {
        return Err(format!("{name} returned a tool error: {}", result.text()));
    }
    Ok(result.text())
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer within {STEP:?}")),
    }
}
