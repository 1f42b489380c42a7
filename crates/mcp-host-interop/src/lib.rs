//! Interop tests of the mcp-host crates against real MCP servers: `server-everything`, `server-filesystem` and
//! `server-memory` from npm, `mcp-server-time` and `mcp-server-git` from PyPI, and a small server written with the
//! Python SDK (`mcp`). The library is empty; the tests live in `tests/it/`.
//!
//! The servers are not vendored: `cargo xtask interop` installs pinned versions into `target/interop/` and then
//! runs these tests with `MCP_HOST_INTEROP_DIR` pointing there. Without that variable each test says it was
//! skipped and passes, unless `MCP_HOST_INTEROP_REQUIRED` is set, in which case it fails. `cargo xtask ci` runs
//! them as its last step and keeps them out of its ordinary `test` step.
//!
//! **Architecture Invariant:** this crate depends on the others only as dev-dependencies and is never published;
//! nothing here is part of the host, and no other crate's tests need the network or real servers.
