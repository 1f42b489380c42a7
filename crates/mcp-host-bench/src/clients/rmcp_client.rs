//! The official Rust SDK: `().serve(TokioChildProcess)`, `Peer::call_tool`, `RunningService::cancel`.

use std::borrow::Cow;
use std::process::Stdio;

use anyhow::Context as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt as _};

use super::{
    bounded, echo_arguments, keep_in_flight, start_each, stop_each, Client, ECHO_TOOL, STEP_TIMEOUT,
};
use crate::spec::Target;

/// One server behind an rmcp client with the default (empty) handler.
pub(crate) struct RmcpClient {
    service: RunningService<RoleClient, ()>,
    /// Borrowed when it is a constant, as a caller would write it.
    tool: Cow<'static, str>,
}

impl std::fmt::Debug for RmcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcpClient").finish_non_exhaustive()
    }
}

impl RmcpClient {
    async fn call_once(&self) -> anyhow::Result<()> {
        let params = CallToolRequestParams::new(self.tool.clone()).with_arguments(echo_arguments());
        self.service.call_tool(params).await?;
        Ok(())
    }
}

impl Client for RmcpClient {
    type Fleet = Vec<RmcpClient>;

    async fn start(target: &Target, _index: usize) -> anyhow::Result<RmcpClient> {
        // rmcp takes the command to spawn; the ban is for library crates.
        #[allow(clippy::disallowed_methods)]
        let mut command = tokio::process::Command::new(&target.program);
        command.args(&target.args).kill_on_drop(true);
        let (transport, _stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", target.program.display()))?;
        bounded("rmcp start", STEP_TIMEOUT, async {
            let service = ().serve(transport).await?;
            service.list_all_tools().await?;
            Ok(RmcpClient {
                service,
                tool: if target.tool == ECHO_TOOL {
                    Cow::Borrowed(ECHO_TOOL)
                } else {
                    Cow::Owned(target.tool.clone())
                },
            })
        })
        .await
    }

    async fn call(&mut self) -> anyhow::Result<()> {
        self.call_once().await
    }

    async fn call_many(&mut self, in_flight: usize, total: usize) -> anyhow::Result<()> {
        let client = &*self;
        keep_in_flight(in_flight, total, || client.call_once()).await
    }

    async fn stop(self) -> anyhow::Result<()> {
        // `cancel` closes the transport, which closes the server's input and waits for its exit
        // (then SIGTERM, then SIGKILL, each after 3 s).
        bounded("rmcp stop", STEP_TIMEOUT, async {
            self.service.cancel().await?;
            Ok(())
        })
        .await
    }

    async fn start_fleet(target: &Target, n_servers: usize) -> anyhow::Result<Vec<RmcpClient>> {
        start_each(target, 0, n_servers).await
    }

    async fn grow_fleet(
        fleet: &mut Vec<RmcpClient>,
        target: &Target,
        n_servers: usize,
    ) -> anyhow::Result<()> {
        let more = start_each(target, fleet.len(), n_servers).await?;
        fleet.extend(more);
        Ok(())
    }

    async fn stop_fleet(fleet: Vec<RmcpClient>) -> anyhow::Result<()> {
        stop_each(fleet).await
    }
}
