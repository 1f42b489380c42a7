//! Passing the servers' sampling and elicitation requests on to the gateway's own client.
//!
//! In a gateway, the host declares `sampling` and `elicitation` to its servers and answers their
//! `sampling/createMessage` and `elicitation/create` requests by sending them to a client of the
//! gateway that declared the same capability: over stdio the one client; over HTTP the session
//! that connected last among those that declared it (a request from a server carries nothing
//! that ties it to the client whose call caused it). Without such a client the server gets an
//! error that says so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_session::protocol::RpcError;
use mcp_session::server::ServerPeer;
use mcp_session::{ClientRequestHandler, HandlerFuture, ServerName};
use serde_json::{Map, Value};

/// How long a relayed request may wait for the gateway's client (a person may be answering an
/// elicitation); the session's own request timeout bounds it too.
const RELAY_TIMEOUT: Duration = Duration::from_secs(600);

/// The methods relayed, with the client capability each needs.
const RELAYED: &[(&str, &str)] = &[
    ("sampling/createMessage", "sampling"),
    ("elicitation/create", "elicitation"),
];

/// The gateway's connected clients that may be asked: give it to the host as its
/// [`HostOptions::client_requests`](mcp_host::HostOptions) and to the gateway with
/// [`GatewayBuilder::relay`](crate::GatewayBuilder::relay).
#[derive(Default)]
pub struct ClientRelay {
    clients: Mutex<Vec<(u64, ServerPeer)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for ClientRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRelay")
            .field("clients", &lock(&self.clients).len())
            .finish()
    }
}

/// Keeps a client in the relay while it is alive.
pub(crate) struct Attached {
    relay: Arc<ClientRelay>,
    key: u64,
}

impl Drop for Attached {
    fn drop(&mut self) {
        lock(&self.relay.clients).retain(|(key, _)| *key != self.key);
    }
}

impl ClientRelay {
    /// A relay with no client attached yet.
    pub fn new() -> Arc<ClientRelay> {
        Arc::new(ClientRelay::default())
    }

    /// Makes a connected client available to relay to, until the returned guard is dropped.
    pub(crate) fn attach(self: &Arc<Self>, peer: ServerPeer) -> Attached {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.clients).push((key, peer));
        Attached {
            relay: self.clone(),
            key,
        }
    }

    /// The latest connected client that declared `capability`.
    fn pick(&self, capability: &str) -> Option<ServerPeer> {
        lock(&self.clients)
            .iter()
            .rev()
            .map(|(_, peer)| peer)
            .find(|peer| {
                peer.client()
                    .and_then(|hello| hello.capabilities.get(capability))
                    .is_some()
            })
            .cloned()
    }
}

impl ClientRequestHandler for ClientRelay {
    fn capabilities(&self) -> Map<String, Value> {
        RELAYED
            .iter()
            .map(|(_, capability)| ((*capability).to_owned(), Value::Object(Map::new())))
            .collect()
    }

    fn handles(&self, method: &str) -> bool {
        RELAYED.iter().any(|(relayed, _)| *relayed == method)
    }

    fn handle(&self, server: &ServerName, method: &str, params: Option<Value>) -> HandlerFuture {
        let capability = RELAYED
            .iter()
            .find(|(relayed, _)| *relayed == method)
            .map_or("", |(_, capability)| *capability);
        let client = self.pick(capability);
        let method = method.to_owned();
        let server = server.clone();
        Box::pin(async move {
            let Some(client) = client else {
                return Err(RpcError::new(
                    -32601,
                    format!("no client of the mcp-host gateway offers {capability}"),
                ));
            };
            tracing::debug!(server = %server, method, "relaying a server's request to the gateway's client");
            client.request(&method, params, RELAY_TIMEOUT).await
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
