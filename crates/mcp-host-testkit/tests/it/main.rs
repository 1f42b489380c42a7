//! Integration tests of the testkit itself: the fake server binary, the in-process fake and the leak checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod config;
mod in_process;
mod process;
