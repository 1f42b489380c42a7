//! The four clients behind one trait, so that every measurement runs the same code for each.

mod host;
mod raw;
mod rmcp_client;
mod session;

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use futures::stream::{FuturesUnordered, StreamExt as _};
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::spec::Target;

pub(crate) use host::HostClient;
pub(crate) use raw::RawClient;
pub(crate) use rmcp_client::RmcpClient;
pub(crate) use session::SessionClient;

/// Bound on one server's start, one server's stop, and one whole fleet's start or stop.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping server may take to exit after its input closes before it is signalled.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// The echo server's tool.
pub(crate) const ECHO_TOOL: &str = "echo";

/// The text every echo call sends.
pub(crate) const ECHO_TEXT: &str = "hello";

/// One client kind, connected to one server or to a fleet of them.
///
/// "Ready" means what a host needs before it can route a call: `initialize` answered,
/// `notifications/initialized` sent, and the tools listed (`McpHost` lists them by itself).
pub(crate) trait Client: Sized + Send + 'static {
    /// Many servers connected at once.
    type Fleet;

    /// Spawns one server and makes it ready. `index` distinguishes servers (names, ids).
    fn start(target: &Target, index: usize) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// One echo call, waiting for its answer.
    async fn call(&mut self) -> anyhow::Result<()>;

    /// `total` echo calls with up to `in_flight` outstanding at a time.
    async fn call_many(&mut self, in_flight: usize, total: usize) -> anyhow::Result<()>;

    /// Stops the server and waits until it has exited.
    fn stop(self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Starts `n_servers` servers concurrently and makes them all ready.
    async fn start_fleet(target: &Target, n_servers: usize) -> anyhow::Result<Self::Fleet>;

    /// Adds `n_servers` more servers to a fleet, concurrently.
    async fn grow_fleet(
        fleet: &mut Self::Fleet,
        target: &Target,
        n_servers: usize,
    ) -> anyhow::Result<()>;

    /// Stops every server of a fleet concurrently and waits until all have exited.
    async fn stop_fleet(fleet: Self::Fleet) -> anyhow::Result<()>;
}

/// Bounds `future` by `timeout`, naming `what` in the error.
pub(crate) async fn bounded<T>(
    what: &str,
    timeout: Duration,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, future)
        .await
        .with_context(|| format!("{what} took longer than {timeout:?}"))?
}

/// The echo tool's arguments, built afresh for each call as a caller would.
pub(crate) fn echo_arguments() -> Map<String, Value> {
    let mut arguments = Map::new();
    arguments.insert("text".to_owned(), Value::String(ECHO_TEXT.to_owned()));
    arguments
}

/// Runs `total` calls made by `call`, keeping up to `in_flight` of them outstanding, in one task.
pub(crate) async fn keep_in_flight<F, Fut>(
    in_flight: usize,
    total: usize,
    call: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut pending = FuturesUnordered::new();
    let mut n_started = 0;
    while n_started < total && pending.len() < in_flight.max(1) {
        pending.push(call());
        n_started += 1;
    }
    while let Some(outcome) = pending.next().await {
        outcome?;
        if n_started < total {
            pending.push(call());
            n_started += 1;
        }
    }
    Ok(())
}

/// Starts `n_servers` clients of kind `C` concurrently (servers `first_index..`), each in its own
/// task on the runtime's workers, as `McpHost` starts its clients.
///
/// If one fails, the others are dropped, which kills their servers.
pub(crate) async fn start_each<C: Client>(
    target: &Target,
    first_index: usize,
    n_servers: usize,
) -> anyhow::Result<Vec<C>> {
    let mut starts = JoinSet::new();
    for index in first_index..first_index + n_servers {
        let target = target.clone();
        starts.spawn(async move { C::start(&target, index).await });
    }
    let mut clients = Vec::with_capacity(n_servers);
    while let Some(started) = starts.join_next().await {
        clients.push(started.context("a start task failed")??);
    }
    Ok(clients)
}

/// Stops every client concurrently, each in its own task, and reports the first failure after
/// all have been stopped.
pub(crate) async fn stop_each<C: Client>(clients: Vec<C>) -> anyhow::Result<()> {
    let mut stops = JoinSet::new();
    for client in clients {
        stops.spawn(client.stop());
    }
    let mut first_error = None;
    while let Some(stopped) = stops.join_next().await {
        if let Err(error) = stopped
            .context("a stop task failed")
            .and_then(|stopped| stopped)
        {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}
