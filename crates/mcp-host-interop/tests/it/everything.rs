//! `server-everything` in detail: prompts, resources, progress, roots, logging, and the requests the host does not serve.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_host::{error_chain, AgentScope};
use mcp_host_foundation::ClientId;
use mcp_session::protocol::{LoggingLevel, Progress};
use mcp_session::RequestOptions;
use serde_json::json;

use crate::{
    args, bounded, call, eventually, interop, start, stop, text, tool_names, Scratch, PROMPTLY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_resources() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let host = start(vec![interop.everything(&scratch, None)]).await;
    let scope = AgentScope::all();

    let prompts: Vec<String> = host
        .list_prompts(&scope)
        .into_iter()
        .map(|prompt| prompt.name)
        .collect();
    assert!(
        prompts
            .iter()
            .any(|name| name == "everything__simple-prompt"),
        "{prompts:?}"
    );
    let prompt = bounded(
        "get_prompt",
        PROMPTLY,
        host.get_prompt("everything__simple-prompt", None, &scope),
    )
    .await
    .unwrap_or_else(|error| panic!("get_prompt failed: {}", error_chain(&error)));
    let texts: Vec<&str> = prompt
        .messages
        .iter()
        .filter_map(|message| message.content.as_text())
        .collect();
    assert_eq!(texts, ["This is a simple prompt without arguments."]);

    let resources = host.list_resources(&scope);
    let (_, first) = resources
        .first()
        .expect("server-everything lists resources");
    let read = bounded(
        "read_resource",
        PROMPTLY,
        host.read_resource(&first.uri, &scope),
    )
    .await
    .unwrap_or_else(|error| {
        panic!(
            "read_resource {} failed: {}",
            first.uri,
            error_chain(&error)
        )
    });
    assert_eq!(read.contents.len(), 1, "{read:?}");
    assert_eq!(read.contents[0].uri, first.uri);
    assert!(
        read.contents[0]
            .text
            .as_deref()
            .is_some_and(|text| !text.is_empty()),
        "{read:?}"
    );

    stop(host, &scratch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_running_operation_reports_progress() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let host = start(vec![interop.everything(&scratch, None)]).await;

    let (result, reports) = long_running_operation(&host, "everything").await;
    assert!(!result.is_tool_error(), "{result:?}");
    assert!(result.text().contains("completed"), "{}", result.text());
    let steps: Vec<(f64, Option<f64>)> = reports
        .iter()
        .map(|report| (report.progress, report.total))
        .collect();
    assert_eq!(
        steps,
        [
            (1.0, Some(4.0)),
            (2.0, Some(4.0)),
            (3.0, Some(4.0)),
            (4.0, Some(4.0))
        ]
    );

    stop(host, &scratch).await;
}

/// The host offers roots and answers `roots/list`; it offers neither sampling nor elicitation, so
/// server-everything does not register the tools that would send those requests (the Python SDK test sends
/// `sampling/createMessage` regardless and checks the -32601 answer). Logging: `logging/setLevel` is accepted
/// and the log notifications that follow are taken in without disturbing the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_logging_and_capabilities() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let root = scratch.dir("root");
    let host = start(vec![interop.everything(&scratch, Some(&root))]).await;

    // Registered once the server has seen the client's capabilities, then announced with `list_changed`.
    eventually("everything__get-roots-list is listed", || {
        tool_names(&host)
            .iter()
            .any(|name| name == "everything__get-roots-list")
    })
    .await;
    let roots = call(&host, "everything__get-roots-list", json!({})).await;
    let expected = format!("URI: file://{}", text(&root));
    assert!(
        roots.text().contains(&expected),
        "{expected} not in {}",
        roots.text()
    );

    let names = tool_names(&host);
    for absent in [
        "everything__trigger-sampling-request",
        "everything__trigger-elicitation-request",
    ] {
        assert!(
            !names.iter().any(|name| name == absent),
            "{absent} in {names:?}"
        );
    }

    let id = ClientId::new("everything").unwrap();
    let session = host.session(&id).expect("everything is ready").session;
    bounded(
        "logging/setLevel",
        PROMPTLY,
        session.set_logging_level(LoggingLevel::Debug),
    )
    .await
    .unwrap_or_else(|error| panic!("logging/setLevel failed: {error}"));
    // Sends one log message at once, then one every 5 s.
    let started = call(&host, "everything__toggle-simulated-logging", json!({})).await;
    assert!(started.text().starts_with("Started"), "{}", started.text());
    let echo = call(
        &host,
        "everything__echo",
        json!({ "message": "after logs" }),
    )
    .await;
    assert_eq!(echo.text(), "Echo: after logs");
    let stopped = call(&host, "everything__toggle-simulated-logging", json!({})).await;
    assert!(stopped.text().starts_with("Stopped"), "{}", stopped.text());
    assert_eq!(session.n_events_dropped(), 0);
    drop(session);

    let status = host.status();
    assert_eq!(status[0].last_error, None, "{status:?}");

    stop(host, &scratch).await;
}

/// Calls `<server>__trigger-long-running-operation` (2 s, 4 steps) with a timeout shorter than
/// the operation, which only its progress reports, restarting the timeout, let it outlive;
/// returns the result and the reports.
pub(crate) async fn long_running_operation(
    host: &mcp_host::McpHost,
    server: &str,
) -> (mcp_session::protocol::CallToolResult, Vec<Progress>) {
    let reports: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&reports);
    let options = RequestOptions {
        timeout: Some(Duration::from_millis(1500)),
        on_progress: Some(Arc::new(move |progress| {
            sink.lock().unwrap().push(progress)
        })),
    };
    let result = bounded(
        "trigger-long-running-operation",
        PROMPTLY,
        host.call_tool_with(
            &format!("{server}__trigger-long-running-operation"),
            args(json!({ "duration": 2, "steps": 4 })),
            &AgentScope::all(),
            &options,
        ),
    )
    .await
    .unwrap_or_else(|error| panic!("the long-running operation failed: {}", error_chain(&error)));
    let reports = reports.lock().unwrap().clone();
    (result, reports)
}
