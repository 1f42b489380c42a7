//! Our host: `McpHost::new` + `initialize`, calls routed by namespaced name (`srv__echo`), `shutdown`.
//!
//! A fleet is one host with many clients, which is how the host is meant to be used: it starts
//! them concurrently and stops them in parallel. Growing a fleet uses `register_client`.

use mcp_host::{AgentScope, McpHost};
use mcp_host_foundation::ClientConfig;

use super::{bounded, echo_arguments, keep_in_flight, Client, GRACE, STEP_TIMEOUT};
use crate::spec::Target;

/// One host; in a fleet, with many clients.
#[derive(Debug)]
pub(crate) struct HostClient {
    host: McpHost,
    /// The namespaced name of the first client's echo tool.
    tool: String,
    scope: AgentScope,
}

fn config(target: &Target, id: &str) -> ClientConfig {
    ClientConfig {
        args: target.args.clone(),
        shutdown_grace_ms: u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX),
        ..ClientConfig::new(id, target.program.to_string_lossy())
    }
}

impl HostClient {
    async fn start_with(target: &Target, ids: &[String]) -> anyhow::Result<HostClient> {
        let configs = ids.iter().map(|id| config(target, id)).collect();
        let host = McpHost::new(configs)?;
        let report = bounded("host initialize", STEP_TIMEOUT, async {
            Ok(host.initialize().await?)
        })
        .await?;
        if let Some((client, error)) = report.failed.first() {
            anyhow::bail!(
                "client {client} failed to start: {}",
                mcp_host::error_chain(error)
            );
        }
        let first = ids.first().map_or("srv", String::as_str);
        Ok(HostClient {
            host,
            tool: mcp_host::naming::namespaced(first, &target.tool),
            scope: AgentScope::all(),
        })
    }

    async fn call_once(&self) -> anyhow::Result<()> {
        self.host
            .call_tool(&self.tool, Some(echo_arguments()), &self.scope)
            .await?;
        Ok(())
    }
}

impl Client for HostClient {
    type Fleet = HostClient;

    async fn start(target: &Target, _index: usize) -> anyhow::Result<HostClient> {
        HostClient::start_with(target, &["srv".to_owned()]).await
    }

    async fn call(&mut self) -> anyhow::Result<()> {
        self.call_once().await
    }

    async fn call_many(&mut self, in_flight: usize, total: usize) -> anyhow::Result<()> {
        let client = &*self;
        keep_in_flight(in_flight, total, || client.call_once()).await
    }

    async fn stop(self) -> anyhow::Result<()> {
        let report = bounded("host shutdown", STEP_TIMEOUT, async {
            Ok(self.host.shutdown().await)
        })
        .await?;
        if !report.killed.is_empty() {
            anyhow::bail!("the host had to kill {:?}", report.killed);
        }
        Ok(())
    }

    async fn start_fleet(target: &Target, n_servers: usize) -> anyhow::Result<HostClient> {
        let ids: Vec<String> = (0..n_servers).map(|index| format!("srv{index}")).collect();
        HostClient::start_with(target, &ids).await
    }

    async fn grow_fleet(
        fleet: &mut HostClient,
        target: &Target,
        n_servers: usize,
    ) -> anyhow::Result<()> {
        let first_index = fleet.host.clients().len();
        let registrations = (first_index..first_index + n_servers).map(|index| {
            let config = config(target, &format!("srv{index}"));
            fleet.host.register_client(config)
        });
        bounded("host register_client", STEP_TIMEOUT, async {
            for registered in futures::future::join_all(registrations).await {
                registered?;
            }
            Ok(())
        })
        .await
    }

    async fn stop_fleet(fleet: HostClient) -> anyhow::Result<()> {
        fleet.stop().await
    }
}
