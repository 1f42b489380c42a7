//! Passing the servers' sampling and elicitation requests on to the gateway's own client.
//!
//! In a gateway, the host declares `sampling` and `elicitation` to its servers and answers their
//! `sampling/createMessage` and `elicitation/create` requests by sending them to a client of the
//! gateway that declared the same capability: over stdio the one client; over HTTP the session
//! that connected last among those that declared it (a request from a server carries nothing
//! that ties it to the client whose call caused it), except a request about a task (its
//! `_meta` names the related task, as a server asks for input while it runs one): that goes to
//! the client whose task it is, with the task named by the gateway's id, and to no other (such a
//! request may come before the answer that creates the task has reached its client: it waits
//! for the task, at most [`TASK_OWNER_WAIT`]). Without such a client the server gets an error
//! that says so.
//!
//! Elicitation has two modes: the host declares both (`elicitation: {form: {}, url: {}}`), and
//! each request goes to a client that declared its mode (`elicitation.url` for a URL-mode one;
//! `elicitation.form`, or an `elicitation` without modes, for a form). A URL elicitation that no
//! connected client can take is refused with -32602, naming the capability. The
//! `notifications/elicitation/complete` that later ends a URL elicitation goes to the client
//! that was given it: the relay remembers, per URL elicitation passed on, its server, id and
//! client (at most [`MAX_URL_ELICITATIONS`], the oldest forgotten first, and forgotten when it
//! completes, is declined, or its client goes away).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_host::tasks::TASK_ID_SEPARATOR;
use mcp_session::protocol::{RpcError, META_RELATED_TASK};
use mcp_session::server::ServerPeer;
use mcp_session::{ClientRequestHandler, HandlerFuture, ServerName};
use serde_json::{Map, Value};

use crate::tasks::SessionTasks;

/// How long a relayed request may wait for the gateway's client (a person may be answering an
/// elicitation); the session's own request timeout bounds it too.
const RELAY_TIMEOUT: Duration = Duration::from_secs(600);

/// The methods relayed, with the client capability each needs.
const RELAYED: &[(&str, &str)] = &[
    ("sampling/createMessage", "sampling"),
    ("elicitation/create", "elicitation"),
];

/// How many URL elicitations passed on the relay remembers, to send their completion to the
/// client that got them.
pub(crate) const MAX_URL_ELICITATIONS: usize = 1024;

/// A URL elicitation passed on: its server, its `elicitationId` and the client's key.
type UrlElicitation = (String, String, u64);

/// The gateway's connected clients that may be asked: give it to the host as its
/// [`HostOptions::client_requests`](mcp_host::HostOptions) and to the gateway with
/// [`GatewayBuilder::relay`](crate::GatewayBuilder::relay).
#[derive(Default)]
pub struct ClientRelay {
    clients: Arc<Clients>,
    next: AtomicU64,
    /// The URL elicitations passed on and not yet completed.
    urls: Arc<UrlElicitations>,
}

/// The connected clients, and a signal for each task one of them starts.
#[derive(Default)]
pub(crate) struct Clients {
    list: Mutex<Vec<Attachment>>,
    /// Notified when a client's task starts (see [`SessionTasks`]), so that a server's request
    /// about a task that came before the task's creation reached its client can wait for it.
    task_started: tokio::sync::Notify,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("n_clients", &lock(&self.list).len())
            .finish()
    }
}

/// How long a server's request about a task waits for the task to be known as a client's
/// (its creation and the request race), before it goes to a client as any other request.
const TASK_OWNER_WAIT: Duration = Duration::from_secs(2);

/// A connected client: its key, its peer and its tasks.
struct Attachment {
    key: u64,
    peer: ServerPeer,
    tasks: Arc<SessionTasks>,
}

/// The URL elicitations passed on and not yet completed, oldest first.
#[derive(Default)]
struct UrlElicitations {
    list: Mutex<VecDeque<UrlElicitation>>,
}

impl std::fmt::Debug for ClientRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRelay")
            .field("clients", &lock(&self.clients.list).len())
            .field("url_elicitations", &lock(&self.urls.list).len())
            .finish()
    }
}

/// Keeps a client in the relay while it is alive.
pub(crate) struct Attached {
    relay: Arc<ClientRelay>,
    key: u64,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").field("key", &self.key).finish()
    }
}

impl Attached {
    /// Whether this client was given URL elicitation `elicitation_id` of `server` (then it is
    /// forgotten: its completion is passed on once).
    pub(crate) fn completes(&self, server: &ServerName, elicitation_id: &str) -> bool {
        self.relay.urls.forget(|(from, id, key)| {
            *key == self.key && from == server.as_str() && id == elicitation_id
        })
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        lock(&self.relay.clients.list).retain(|attachment| attachment.key != self.key);
        self.relay.urls.forget(|(_, _, key)| *key == self.key);
    }
}

impl ClientRelay {
    /// A relay with no client attached yet.
    pub fn new() -> Arc<ClientRelay> {
        Arc::new(ClientRelay::default())
    }

    /// What a connection's tasks tell when one starts.
    pub(crate) fn clients(&self) -> Arc<Clients> {
        self.clients.clone()
    }

    /// Makes a connected client (with its tasks) available to relay to, until the returned
    /// guard is dropped.
    pub(crate) fn attach(self: &Arc<Self>, peer: ServerPeer, tasks: Arc<SessionTasks>) -> Attached {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.clients.list).push(Attachment { key, peer, tasks });
        Attached {
            relay: self.clone(),
            key,
        }
    }
}

impl Clients {
    /// Wakes the requests waiting for their task's client.
    pub(crate) fn task_started(&self) {
        self.task_started.notify_waiters();
    }

    /// The latest connected client that declared `capability` (for elicitation, `mode` of
    /// it); with a `task` (the gateway's id), only the client whose task it is, waiting at most
    /// [`TASK_OWNER_WAIT`] for the task to be known (its creation and the request race).
    async fn pick(
        &self,
        capability: &str,
        mode: Option<&str>,
        task: Option<&str>,
    ) -> Result<(u64, ServerPeer), Refusal> {
        let offers = |attachment: &Attachment| {
            let declared = attachment
                .peer
                .client()
                .and_then(|hello| hello.capabilities.get(capability));
            match (declared, mode) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(modes), Some(mode)) => offers_mode(modes, mode),
            }
        };
        let picked = |attachment: &Attachment| (attachment.key, attachment.peer.clone());
        let Some(task) = task else {
            return lock(&self.list)
                .iter()
                .rev()
                .find(|attachment| offers(attachment))
                .map(picked)
                .ok_or(Refusal::NoClient);
        };
        let deadline = tokio::time::Instant::now() + TASK_OWNER_WAIT;
        loop {
            let started = self.task_started.notified();
            tokio::pin!(started);
            // Registered before looking, so that a task started in between is not missed.
            started.as_mut().enable();
            if let Some(owner) = lock(&self.list)
                .iter()
                .find(|attachment| attachment.tasks.holds(task))
            {
                return Some(owner)
                    .filter(|owner| offers(owner))
                    .map(picked)
                    .ok_or(Refusal::TaskClientLacks);
            }
            if tokio::time::timeout_at(deadline, started).await.is_err() {
                return Err(Refusal::NoTaskClient);
            }
        }
    }
}

/// Why no client is asked.
enum Refusal {
    /// No connected client declared the capability.
    NoClient,
    /// The request is about a task of no connected client (it ended, or its client went away).
    NoTaskClient,
    /// The client whose task it is did not declare the capability.
    TaskClientLacks,
}

impl UrlElicitations {
    /// Remembers a URL elicitation given to a client (forgetting the oldest at the bound).
    fn remember(&self, url: UrlElicitation) {
        let mut list = lock(&self.list);
        if list.len() >= MAX_URL_ELICITATIONS {
            list.pop_front();
        }
        list.push_back(url);
    }

    /// Forgets the URL elicitations `matches` picks; whether there was one.
    fn forget(&self, matches: impl Fn(&UrlElicitation) -> bool) -> bool {
        let mut list = lock(&self.list);
        let n_before = list.len();
        list.retain(|url| !matches(url));
        list.len() != n_before
    }
}

/// Whether an `elicitation` capability offers `mode`: `url` only when it says so; `form` when it
/// says so or names no mode at all (the form-only declaration of earlier revisions).
fn offers_mode(modes: &Value, mode: &str) -> bool {
    let has = |name: &str| modes.get(name).is_some();
    match mode {
        "form" => has("form") || !has("url"),
        other => has(other),
    }
}

impl ClientRequestHandler for ClientRelay {
    fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = Map::new();
        capabilities.insert("sampling".to_owned(), Value::Object(Map::new()));
        capabilities.insert(
            "elicitation".to_owned(),
            serde_json::json!({ "form": {}, "url": {} }),
        );
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        RELAYED.iter().any(|(relayed, _)| *relayed == method)
    }

    fn handle(
        &self,
        server: &ServerName,
        method: &str,
        mut params: Option<Value>,
    ) -> HandlerFuture {
        let capability = RELAYED
            .iter()
            .find(|(relayed, _)| *relayed == method)
            .map_or("", |(_, capability)| *capability);
        // An elicitation without a mode is a form.
        let mode = (capability == "elicitation").then(|| {
            params
                .as_ref()
                .and_then(|params| params.get("mode"))
                .and_then(Value::as_str)
                .unwrap_or("form")
                .to_owned()
        });
        // A request about a task goes to the task's client, which knows it by the gateway's id.
        let related = params.as_mut().and_then(|params| {
            params.pointer_mut(&format!(
                "/_meta/{}/taskId",
                META_RELATED_TASK.replace('/', "~1")
            ))
        });
        let task = related
            .as_ref()
            .and_then(|id| id.as_str())
            .map(|id| format!("{server}{TASK_ID_SEPARATOR}{id}"));
        if let (Some(related), Some(task)) = (related, &task) {
            *related = Value::String(task.clone());
        }
        let clients = self.clients.clone();
        let url_id = params
            .as_ref()
            .and_then(|params| params.get("elicitationId"))
            .and_then(Value::as_str)
            .filter(|_| mode.as_deref() == Some("url"))
            .map(str::to_owned);
        let method = method.to_owned();
        let server = server.clone();
        let urls = self.urls.clone();
        Box::pin(async move {
            let what = match mode.as_deref() {
                Some(mode) => format!("{capability} ({mode} mode)"),
                None => capability.to_owned(),
            };
            let picked = clients
                .pick(capability, mode.as_deref(), task.as_deref())
                .await;
            let (key, client) = match picked {
                Ok(client) => client,
                Err(Refusal::TaskClientLacks) => {
                    return Err(RpcError::new(
                        -32601,
                        format!("the client of the mcp-host gateway whose task this is does not offer {what}"),
                    ))
                }
                Err(Refusal::NoTaskClient) => {
                    return Err(RpcError::new(
                        -32602,
                        "the task this request is about is not one of a connected client of the mcp-host gateway",
                    ))
                }
                Err(Refusal::NoClient) => return Err(match mode.as_deref() {
                    Some("url") => RpcError::new(
                        -32602,
                        "no client of the mcp-host gateway offers URL-mode elicitation (client capability elicitation.url)",
                    ),
                    _ => RpcError::new(
                        -32601,
                        format!("no client of the mcp-host gateway offers {what}"),
                    ),
                }),
            };
            tracing::debug!(server = %server, method, "relaying a server's request to the gateway's client");
            let Some(url_id) = url_id else {
                return client.request(&method, params, RELAY_TIMEOUT).await;
            };
            // Its completion goes to this client: remembered before the client can answer.
            let url = (server.as_str().to_owned(), url_id, key);
            urls.remember(url.clone());
            let answer = client.request(&method, params, RELAY_TIMEOUT).await;
            let accepted = answer
                .as_ref()
                .is_ok_and(|answer| answer.get("action").and_then(Value::as_str) == Some("accept"));
            if !accepted {
                // Declined, cancelled or failed: no completion will follow.
                urls.forget(|remembered| *remembered == url);
            }
            answer
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
