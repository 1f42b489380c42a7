//! Our session, used directly: `mcp_transport::spawn`, `mcp_session::handshake`, `Session::call_tool`.
//!
//! Each server gets its own `TaskTracker` for its stderr drain, its reaper and its connection
//! driver, as `mcp-host-foundation` does; stopping follows the foundation's order:
//! `Session::shut_down`, then `ChildProcess::close` with the grace period.

use mcp_session::{RequestOptions, Session, SessionOptions};
use mcp_transport::{ChildProcess, ServerCommand, ServerName, TransportOptions};
use tokio_util::task::TaskTracker;

use super::{
    bounded, echo_arguments, keep_in_flight, start_each, stop_each, Client, GRACE, STEP_TIMEOUT,
};
use crate::spec::Target;

/// One server behind one of our sessions.
#[derive(Debug)]
pub(crate) struct SessionClient {
    session: Session,
    process: ChildProcess,
    tracker: TaskTracker,
    tool: String,
    options: RequestOptions,
}

impl SessionClient {
    async fn call_once(&self) -> anyhow::Result<()> {
        self.session
            .call_tool(&self.tool, Some(echo_arguments()), &self.options)
            .await?;
        Ok(())
    }
}

impl Client for SessionClient {
    type Fleet = Vec<SessionClient>;

    async fn start(target: &Target, index: usize) -> anyhow::Result<SessionClient> {
        let tracker = TaskTracker::new();
        let command = ServerCommand::new(&target.program).args(&target.args);
        let (process, transport) = mcp_transport::spawn(
            ServerName::new(format!("srv{index}")),
            &command,
            &TransportOptions::default(),
            &tracker,
        )?;
        let (session, connection, _initialized) =
            bounded("session handshake", STEP_TIMEOUT, async {
                Ok(mcp_session::handshake(transport, SessionOptions::default()).await?)
            })
            .await?;
        tracker.spawn(connection);
        bounded("session tools/list", STEP_TIMEOUT, async {
            Ok(session.list_all_tools().await?)
        })
        .await?;
        Ok(SessionClient {
            session,
            process,
            tracker,
            tool: target.tool.clone(),
            options: RequestOptions::default(),
        })
    }

    async fn call(&mut self) -> anyhow::Result<()> {
        self.call_once().await
    }

    async fn call_many(&mut self, in_flight: usize, total: usize) -> anyhow::Result<()> {
        let client = &*self;
        keep_in_flight(in_flight, total, || client.call_once()).await
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.session.shut_down();
        // `close` is bounded by itself (two grace periods plus a few seconds); bound it anyway.
        bounded("session close", STEP_TIMEOUT, async {
            self.process.close(GRACE).await;
            Ok(())
        })
        .await?;
        drop(self.session);
        self.tracker.close();
        bounded("session tasks", STEP_TIMEOUT, async {
            self.tracker.wait().await;
            Ok(())
        })
        .await
    }

    async fn start_fleet(target: &Target, n_servers: usize) -> anyhow::Result<Vec<SessionClient>> {
        start_each(target, 0, n_servers).await
    }

    async fn grow_fleet(
        fleet: &mut Vec<SessionClient>,
        target: &Target,
        n_servers: usize,
    ) -> anyhow::Result<()> {
        let more = start_each(target, fleet.len(), n_servers).await?;
        fleet.extend(more);
        Ok(())
    }

    async fn stop_fleet(fleet: Vec<SessionClient>) -> anyhow::Result<()> {
        stop_each(fleet).await
    }
}
