//! Tool calls run as tasks through the gateway (revision 2025-11-25, tasks): a client's
//! task-augmented `tools/call`, its `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel`,
//! and the servers' `notifications/tasks/status`.
//!
//! The host runs the task at the tool's server ([`McpHost::call_tool_as_task_raw`]) and names it
//! by its own id; every task method goes through the host with the connection's scope, whose
//! [`AgentScope::owner`] is unique to the connection, so that a client sees, polls, cancels and
//! hears of its own tasks only. A tool whose server (or the tool itself) does not run tasks is
//! called normally and its result is the answer, as the specification asks of a receiver that
//! does not run that request as a task.
//!
//! Results stay at the servers until `tasks/result` fetches them. The gateway keeps, per
//! connection, only the ids of its tasks that have not ended, at most
//! [`GatewayBuilder::max_tasks_per_session`](crate::GatewayBuilder::max_tasks_per_session)
//! (past it a task-augmented call is refused with [`TOO_MANY_TASKS`]); an id is released when
//! the task is seen ending (a status, `tasks/get`, `tasks/cancel`, `tasks/result`), and when
//! the connection ends its tasks are cancelled and forgotten ([`McpHost::end_tasks_of`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_host::{AgentScope, Error, McpHost, TaskCall};
use mcp_session::protocol::{RpcError, ServerCapabilities, Task};
use mcp_session::server::{IncomingRequest, ServerPeer};
use mcp_session::RequestOptions;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::connection::{progress_relay, rpc_failure, tool_failure};
use crate::relay::Clients;

/// How many tasks that have not ended one connection may have by default.
pub(crate) const MAX_TASKS_PER_SESSION: usize = 64;

/// The JSON-RPC code of a task-augmented call refused because the connection has as many tasks
/// as it may (a server error: the request was valid).
pub(crate) const TOO_MANY_TASKS: i64 = -32000;

/// The task methods a client may send.
pub(crate) const METHODS: [&str; 4] = ["tasks/get", "tasks/result", "tasks/list", "tasks/cancel"];

/// How long `tasks/result` may wait for its task to end (the client may cancel it sooner).
const RESULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The capability the gateway declares: tool-call tasks, listed and cancellable, when one of
/// its ready servers runs them (its other servers' tools are called normally).
pub(crate) fn capability(servers: &[ServerCapabilities]) -> Option<Value> {
    servers
        .iter()
        .any(ServerCapabilities::tool_tasks)
        .then(|| json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } }))
}

/// Whether a `tools/call` asks to run as a task (it has a `task` member).
pub(crate) fn is_task_call(params: &Value) -> bool {
    params.get("task").is_some()
}

/// The tasks of one connection.
#[derive(Debug)]
pub(crate) struct SessionTasks {
    /// The owner of this connection's tasks at the host: unique per connection.
    owner: String,
    limit: usize,
    live: Mutex<Live>,
    /// Told when a task starts.
    relay: Arc<Clients>,
}

#[derive(Debug, Default)]
struct Live {
    /// The host ids of the tasks not yet seen ending.
    ids: BTreeSet<String>,
    /// Calls that may create a task, under way.
    starting: usize,
}

/// A place for one task, taken before the call and given back unless a task fills it.
struct Reservation<'a> {
    tasks: &'a SessionTasks,
}

impl SessionTasks {
    /// The tasks of a new connection of `client`, at most `limit` that have not ended.
    pub(crate) fn new(client: &str, limit: usize, relay: Arc<Clients>) -> SessionTasks {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let connection = NEXT.fetch_add(1, Ordering::Relaxed);
        SessionTasks {
            owner: format!("{client}#{connection}"),
            limit: limit.max(1),
            live: Mutex::new(Live::default()),
            relay,
        }
    }

    /// `scope` as this connection's: its tasks are the ones it sees.
    fn scope(&self, scope: &AgentScope) -> AgentScope {
        AgentScope {
            owner: Some(self.owner.clone()),
            ..scope.clone()
        }
    }

    /// Takes a place for a task; at the limit, first forgets the tasks the host knows have
    /// ended (or no longer shows this connection).
    fn reserve(&self, host: &McpHost, scope: &AgentScope) -> Result<Reservation<'_>, RpcError> {
        let full = |live: &Live| live.ids.len() + live.starting >= self.limit;
        if full(&lock(&self.live)) {
            let running: BTreeSet<String> = host
                .list_tasks(scope)
                .into_iter()
                .filter(|task| !task.status.is_terminal())
                .map(|task| task.task_id)
                .collect();
            lock(&self.live).ids.retain(|id| running.contains(id));
        }
        let mut live = lock(&self.live);
        if full(&live) {
            return Err(RpcError {
                code: TOO_MANY_TASKS,
                message: format!(
                    "this session has {} tasks that have not ended, as many as the mcp-host gateway keeps per session; wait for one to end or cancel one (tasks/cancel)",
                    self.limit
                ),
                data: Some(json!({ "limit": self.limit })),
            });
        }
        live.starting += 1;
        Ok(Reservation { tasks: self })
    }

    /// Whether task `id` (the host's id) is one of this connection's that has not ended.
    pub(crate) fn holds(&self, id: &str) -> bool {
        lock(&self.live).ids.contains(id)
    }

    /// Forgets task `id`: it has ended.
    fn ended(&self, id: &str) {
        lock(&self.live).ids.remove(id);
    }

    /// Cancels this connection's tasks that have not ended and makes the host forget them all:
    /// the connection has ended.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::end_tasks_of`].
    pub(crate) async fn end(&self, host: &McpHost) {
        lock(&self.live).ids.clear();
        host.end_tasks_of(&self.owner).await;
    }
}

impl Reservation<'_> {
    /// Fills the place with task `id`.
    fn fill(self, id: String) {
        lock(&self.tasks.live).ids.insert(id);
        // A server's request about it may be waiting for its client.
        self.tasks.relay.task_started();
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut live = lock(&self.tasks.live);
        live.starting = live.starting.saturating_sub(1);
    }
}

/// Forwards a task-augmented `tools/call`: `Ok` carries the `CreateTaskResult` (the task by the
/// host's id), or the result of a call that did not run as a task, undecoded; `Err` the answer
/// to send instead, as for a normal call.
pub(crate) async fn call(
    host: &McpHost,
    tasks: &SessionTasks,
    scope: &AgentScope,
    request: &IncomingRequest,
    params: &Value,
) -> Result<Box<RawValue>, Result<Value, RpcError>> {
    let ttl = match params.get("task") {
        Some(Value::Object(task)) => task
            .get("ttl")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
        _ => {
            return Err(Err(RpcError::invalid_params(
                "`task` must be an object (with an optional `ttl` in milliseconds)",
            )))
        }
    };
    let Some(name) = params["name"].as_str() else {
        return Err(Err(RpcError::invalid_params("`name` must be a string")));
    };
    let arguments = params.get("arguments").and_then(Value::as_object);
    let scope = tasks.scope(scope);
    let reservation = tasks.reserve(host, &scope).map_err(Err)?;
    let options = progress_relay(request);
    match host
        .call_tool_as_task_raw(name, arguments, &scope, ttl, &options)
        .await
    {
        Ok(TaskCall::Task(task)) => {
            if !task.status.is_terminal() {
                reservation.fill(task.task_id.clone());
            }
            to_raw(&json!({ "task": task })).map_err(Err)
        }
        // Not run as a task: the result is the answer.
        Ok(TaskCall::Done(raw)) => Ok(raw),
        Err(Error::TooManyTasks { limit, .. }) => Err(Err(RpcError {
            code: TOO_MANY_TASKS,
            message: format!(
                "the tool's server has {limit} tasks that have not ended, as many as mcp-host keeps per server"
            ),
            data: Some(json!({ "limit": limit })),
        })),
        Err(error) => Err(tool_failure(error)),
    }
}

/// Answers `tasks/get`, `tasks/result`, `tasks/list` or `tasks/cancel` (one of [`METHODS`]).
pub(crate) async fn answer(
    host: &McpHost,
    tasks: &SessionTasks,
    scope: &AgentScope,
    request: &IncomingRequest,
    params: &Value,
) -> Result<Box<RawValue>, RpcError> {
    let scope = tasks.scope(scope);
    if request.method() == "tasks/list" {
        // Every task of this connection the host knows, on one page.
        return to_raw(&json!({ "tasks": host.list_tasks(&scope) }));
    }
    let Some(id) = params["taskId"].as_str() else {
        return Err(RpcError::invalid_params("`taskId` must be a string"));
    };
    match request.method() {
        "tasks/get" | "tasks/cancel" => {
            let task = if request.method() == "tasks/get" {
                host.task_status(id, &scope).await
            } else {
                host.cancel_task(id, &scope).await
            }
            .map_err(task_failure)?;
            if task.status.is_terminal() {
                tasks.ended(id);
            }
            to_raw(&task)
        }
        "tasks/result" => {
            let options = RequestOptions::with_timeout(RESULT_TIMEOUT);
            let outcome = host.task_result_raw(id, &scope, &options).await;
            // The server answers (with the result, or the error the call gave) once it has ended.
            if matches!(&outcome, Ok(_) | Err(Error::Call { .. })) {
                tasks.ended(id);
            }
            outcome.map_err(task_failure)
        }
        other => Err(RpcError::method_not_found(other)),
    }
}

/// Passes a task's status on to this connection if the task is its own.
pub(crate) fn relay_status(
    host: &McpHost,
    peer: &ServerPeer,
    tasks: &SessionTasks,
    scope: Option<&AgentScope>,
    task: Task,
) {
    let Some(scope) = scope.map(|scope| tasks.scope(scope)) else {
        return;
    };
    if !host.task_visible(&task.task_id, &scope) {
        return;
    }
    if task.status.is_terminal() {
        tasks.ended(&task.task_id);
    }
    if let Ok(params) = serde_json::to_value(&task) {
        peer.notify("notifications/tasks/status", Some(params));
    }
}

/// A task the connection may not see is one that does not exist (-32602, as the specification
/// answers an unknown task id).
fn task_failure(error: Error) -> RpcError {
    match error {
        Error::UnknownTask { id } => RpcError {
            code: -32602,
            message: "no such task, or it is not this session's".to_owned(),
            data: Some(json!({ "taskId": id })),
        },
        other => rpc_failure(other),
    }
}

fn to_raw(value: &impl serde::Serialize) -> Result<Box<RawValue>, RpcError> {
    serde_json::value::to_raw_value(value).map_err(|error| RpcError::internal(error.to_string()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_unique_per_connection() {
        let a = SessionTasks::new("ci", 4, Arc::default());
        let b = SessionTasks::new("ci", 4, Arc::default());
        assert_ne!(a.owner, b.owner);
        assert!(a.owner.starts_with("ci#"), "{}", a.owner);
        assert_eq!(
            a.scope(&AgentScope::all()).owner.as_deref(),
            Some(a.owner.as_str())
        );
    }

    #[test]
    fn the_capability_follows_the_servers() {
        let plain = ServerCapabilities::default();
        let mut tasks = ServerCapabilities::default();
        tasks.extra.insert(
            "tasks".to_owned(),
            json!({ "requests": { "tools": { "call": {} } } }),
        );
        assert_eq!(capability(std::slice::from_ref(&plain)), None);
        let declared = capability(&[plain, tasks]).unwrap();
        assert!(
            declared.pointer("/requests/tools/call").is_some(),
            "{declared}"
        );
        assert!(declared.get("list").is_some() && declared.get("cancel").is_some());
    }
}
