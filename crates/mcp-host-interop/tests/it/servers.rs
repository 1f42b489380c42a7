//! All five real servers in one host: their tools under their namespaces, one real call each, a clean shutdown.

use serde_json::json;

use crate::{call, git_repository, interop, start, stop, text, tool_names, Scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_servers_in_one_host() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let files = scratch.dir("files");
    std::fs::write(files.join("hello.txt"), "hello from mcp-host\n").unwrap();
    let repository = scratch.dir("repo");
    git_repository(&repository);
    let memory_file = scratch.path.join("memory.jsonl");
    let everything_root = scratch.dir("everything-root");

    let host = start(vec![
        interop.everything(&scratch, Some(&everything_root)),
        interop.filesystem(&scratch, &files),
        interop.memory(&scratch, &memory_file),
        interop.time(&scratch),
        interop.git(&scratch, &repository),
    ])
    .await;

    let names = tool_names(&host);
    for expected in [
        "everything__echo",
        "filesystem__list_directory",
        "memory__create_entities",
        "memory__read_graph",
        "time__get_current_time",
        "git__git_status",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not in {names:?}"
        );
    }

    let echo = call(&host, "everything__echo", json!({ "message": "interop" })).await;
    assert_eq!(echo.text(), "Echo: interop");

    let time = call(
        &host,
        "time__get_current_time",
        json!({ "timezone": "UTC" }),
    )
    .await;
    assert!(time.text().contains("UTC"), "{}", time.text());

    let status = call(
        &host,
        "git__git_status",
        json!({ "repo_path": text(&repository) }),
    )
    .await;
    assert!(status.text().contains("main"), "{}", status.text());

    let listing = call(
        &host,
        "filesystem__list_directory",
        json!({ "path": text(&files) }),
    )
    .await;
    assert!(
        listing.text().contains("[FILE] hello.txt"),
        "{}",
        listing.text()
    );

    let entities = json!({ "entities": [{
        "name": "mcp-host",
        "entityType": "project",
        "observations": ["hosts MCP servers"],
    }] });
    call(&host, "memory__create_entities", entities).await;
    let graph = call(&host, "memory__read_graph", json!({})).await;
    assert!(
        graph.text().contains("hosts MCP servers"),
        "{}",
        graph.text()
    );
    assert!(memory_file.is_file(), "server-memory wrote no file");

    stop(host, &scratch).await;
}
