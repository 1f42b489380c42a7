//! Integration tests of the session against the real fake-server process (and the in-process fake).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod calls;
mod faults;
mod handshake;
mod input;
mod lists;
mod props;
mod server;
mod tasks;

use std::time::Duration;

use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, unique_marker, FakeConfig,
};
use mcp_session::protocol::InitializeResult;
use mcp_session::{Connection, Session, SessionOptions};
use mcp_transport::{ChildProcess, ServerCommand, ServerName, Transport, TransportOptions};
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;

/// A generous bound for anything that should happen "promptly" in a test with real processes.
pub(crate) const PROMPTLY: Duration = Duration::from_secs(20);

/// Tool arguments from a JSON object literal.
pub(crate) fn args(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => panic!("arguments must be an object"),
    }
}

/// A fake server process, not yet connected.
pub(crate) struct Spawned {
    pub(crate) process: ChildProcess,
    pub(crate) transport: Transport,
    pub(crate) marker: String,
    pub(crate) tracker: TaskTracker,
}

pub(crate) fn spawn_fake(config: &FakeConfig, options: &TransportOptions) -> Spawned {
    let marker = unique_marker();
    let tracker = TaskTracker::new();
    let command = ServerCommand::new(fake_server_path()).args(fake_server_args(config, &marker));
    let (process, transport) =
        mcp_transport::spawn(ServerName::new(&config.name), &command, options, &tracker).unwrap();
    Spawned {
        process,
        transport,
        marker,
        tracker,
    }
}

/// A fake server process with an initialized session whose connection runs on the tracker.
pub(crate) struct Running {
    pub(crate) process: ChildProcess,
    pub(crate) session: Session,
    pub(crate) init: InitializeResult,
    pub(crate) marker: String,
    pub(crate) tracker: TaskTracker,
    pub(crate) connection: tokio::task::JoinHandle<Result<(), mcp_session::Error>>,
}

pub(crate) async fn start(config: FakeConfig) -> Running {
    start_with(
        config,
        SessionOptions::default(),
        TransportOptions::default(),
    )
    .await
}

pub(crate) async fn start_with(
    config: FakeConfig,
    options: SessionOptions,
    transport_options: TransportOptions,
) -> Running {
    let spawned = spawn_fake(&config, &transport_options);
    let (session, connection, init) =
        tokio::time::timeout(PROMPTLY, mcp_session::handshake(spawned.transport, options))
            .await
            .expect("handshake timed out")
            .expect("handshake failed");
    let connection = spawn_connection(&spawned.tracker, connection);
    Running {
        process: spawned.process,
        session,
        init,
        marker: spawned.marker,
        tracker: spawned.tracker,
        connection,
    }
}

pub(crate) fn spawn_connection(
    tracker: &TaskTracker,
    connection: Connection,
) -> tokio::task::JoinHandle<Result<(), mcp_session::Error>> {
    tracker.spawn(connection)
}

impl Running {
    /// Closes the server gracefully and checks that nothing is left behind.
    pub(crate) async fn finish(self) -> mcp_transport::ExitReport {
        let report = tokio::time::timeout(PROMPTLY, self.process.close(Duration::from_secs(5)))
            .await
            .expect("close timed out");
        drop(self.session);
        self.tracker.close();
        tokio::time::timeout(PROMPTLY, self.tracker.wait())
            .await
            .expect("tasks did not end");
        assert_no_process_left(&self.marker).await;
        report
    }
}
