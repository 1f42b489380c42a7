//! Fake MCP servers and process-leak checks for the tests of the mcp-host crates.
//!
//! The crate offers one scriptable fake server ([`fake`]) in two forms: the `mcp-fake-server` binary,
//! configured by flags, for tests that need a real child process (crashes, signals, grandchildren, stderr floods),
//! and [`in_process`], the same server behind in-memory pipes for fast tests.
//! [`fake_http`] is a separate, in-process fake Streamable HTTP server with scriptable faults, which
//! [`fake_oauth`], an in-process OAuth authorization server, can protect.
//! [`procs`] finds the binary and checks, through a unique argv marker, that a test left no process behind.
//!
//! **Architecture Invariant:** this crate depends on no higher mcp-host crate (not even `mcp-transport` or `mcp-session`),
//! so the fake server cannot share code, and hence bugs, with the client it tests.
//!
//! **Architecture Invariant:** other crates list this crate under `[dev-dependencies]` only.

pub mod fake;
pub mod fake_http;
pub mod fake_oauth;
pub mod in_process;
pub mod procs;

pub use fake::{
    catalogue_tools, serve, serve_with_log, Exit, FakeConfig, DECORATED_CALL_RESULT,
    DECORATED_PROMPT, DECORATED_PROMPT_RESULT, DECORATED_READ, DECORATED_RESOURCE,
    DECORATED_SERVER_INFO, DECORATED_TEMPLATE, DECORATED_TOOL,
};
pub use in_process::{spawn_in_process, InProcessFake};
pub use procs::{
    assert_no_process_left, assert_no_process_left_blocking, cmdline, fake_server_args,
    fake_server_path, in_own_process, in_own_process_within, pid_alive, pids_with_marker, rss_kib,
    unique_marker, TempDir,
};
