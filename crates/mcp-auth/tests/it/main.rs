//! Integration tests of `mcp-auth`.
