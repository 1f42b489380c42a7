//! How well `find_tools` finds: the five real servers plus a 250-tool business API (the fake's
//! `--catalogue`), and 20 queries written from the tools' own descriptions. The figure is
//! printed, and at least 90 % of the intended tools must be in the top 5.

use mcp_host::AgentScope;
use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{fake_server_args, fake_server_path, unique_marker, FakeConfig};

use crate::{git_repository, interop, start, stop, Scratch, MARKER_VAR};

/// Each query, and the tool it is meant to find.
const QUERIES: &[(&str, &str)] = &[
    ("echo back the input string", "everything__echo"),
    ("add two numbers together", "everything__get-sum"),
    (
        "compress a file using gzip",
        "everything__gzip-file-as-resource",
    ),
    (
        "print environment variables for debugging",
        "everything__get-env",
    ),
    ("make a new folder", "filesystem__create_directory"),
    (
        "recursive tree view of files and directories",
        "filesystem__directory_tree",
    ),
    ("rename a file", "filesystem__move_file"),
    ("read a text file", "filesystem__read_text_file"),
    (
        "find files matching a glob pattern",
        "filesystem__search_files",
    ),
    ("stage file contents for the next commit", "git__git_add"),
    ("record changes to the repository", "git__git_commit"),
    ("create a new git branch", "git__git_create_branch"),
    ("show the commit log", "git__git_log"),
    (
        "add observations to entities in the knowledge graph",
        "memory__add_observations",
    ),
    (
        "search the knowledge graph for nodes",
        "memory__search_nodes",
    ),
    ("what time is it in Tokyo", "time__get_current_time"),
    ("convert a time between timezones", "time__convert_time"),
    ("export invoices to a CSV file", "api__export_invoice"),
    ("share a document with a colleague", "api__share_document"),
    ("permanently delete a customer", "api__delete_customer"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_tools_puts_the_intended_tool_in_the_top_five() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let files = scratch.dir("files");
    let repository = scratch.dir("repo");
    git_repository(&repository);
    let marker = unique_marker();
    let api = FakeConfig {
        name: "api".to_owned(),
        n_tools: 0,
        catalogue: 250,
        ..FakeConfig::default()
    };
    let mut api = ClientConfig {
        args: fake_server_args(&api, &marker),
        ..ClientConfig::new("api", fake_server_path().to_string_lossy())
    };
    api.env
        .insert(MARKER_VAR.to_owned(), scratch.marker.clone());
    let host = start(vec![
        interop.everything(&scratch, None),
        interop.filesystem(&scratch, &files),
        interop.memory(&scratch, &scratch.path.join("memory.jsonl")),
        interop.time(&scratch),
        interop.git(&scratch, &repository),
        api,
    ])
    .await;
    let scope = AgentScope::all();
    let n_tools = host.list_tools(&scope).len();
    assert!(n_tools > 300, "{n_tools} tools");
    let mut n_hits = 0;
    for (query, intended) in QUERIES {
        let found = host.find_tools(query, 5, &scope);
        let rank = found.iter().position(|found| found.tool.name == *intended);
        let top: Vec<&str> = found.iter().map(|found| found.tool.name.as_str()).collect();
        match rank {
            Some(rank) => {
                n_hits += 1;
                eprintln!("find_tools: {query:?} -> {intended} at rank {}", rank + 1);
            }
            None => eprintln!("find_tools: {query:?} -> {intended} MISSED; top 5: {top:?}"),
        }
    }
    let hit_rate = f64::from(n_hits) / QUERIES.len() as f64;
    eprintln!(
        "find_tools: the intended tool is in the top 5 for {n_hits} of {} queries ({:.0} %) among {n_tools} tools",
        QUERIES.len(),
        hit_rate * 100.0
    );
    assert!(hit_rate >= 0.9, "hit rate {hit_rate}");
    stop(host, &scratch).await;
}
