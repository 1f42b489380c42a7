//! A server written with the Python SDK (`mcp` from PyPI) sends the host a request the host does not serve.

use serde_json::json;

use crate::{call, interop, start, stop, Scratch};

/// `sampling/createMessage` is refused with -32601 (method not found), promptly, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_request_gets_method_not_found() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let host = start(vec![interop.python_sdk_server(
        "sdk",
        "sampling_server.py",
        &scratch,
    )])
    .await;

    for _ in 0..2 {
        let result = call(&host, "sdk__ask_llm", json!({ "prompt": "hello" })).await;
        assert!(
            result.text().starts_with("refused: code=-32601 "),
            "{}",
            result.text()
        );
    }

    stop(host, &scratch).await;
}
