//! Tool calls run as tasks (revision 2025-11-25), routed by the server that owns them.
//!
//! [`McpHost::call_tool_as_task`] asks the tool's server to run the call as a task when the
//! server declares tool tasks and the tool allows them (`execution.taskSupport`), and calls it
//! normally otherwise. A task is known to the host as `<client>:<server's task id>`, so ids of
//! two servers never meet; the host keeps, per task, its client, tool, owner and last known
//! state (never its result: results stay at the server until `tasks/result` fetches them), at
//! most [`MAX_TASKS_PER_CLIENT`] per client (the oldest ended ones make room). A task is seen only
//! through a scope that may use its tool and has the same [`AgentScope::owner`]. A task outlives
//! nothing: [`McpHost::client_shutdown`] cancels its client's tasks that have not ended (bounded
//! by [`TASK_CANCEL_BOUND`]), and a client that stops or restarts forgets its tasks.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcp_host_foundation::ClientId;
use mcp_session::protocol::{CallToolResult, Task, META_RELATED_TASK};
use mcp_session::{RequestOptions, ToolTask};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::registry::AgentScope;
use crate::{Error, McpHost};

/// The most tasks the host keeps per client.
pub const MAX_TASKS_PER_CLIENT: usize = 1024;

/// How long [`McpHost::client_shutdown`] waits for its client's tasks to be cancelled: short,
/// as it comes out of the bound on the whole shutdown (`serve` has 1.5 s for everything).
pub const TASK_CANCEL_BOUND: Duration = Duration::from_millis(500);

/// Between the client id and the server's task id in a task id of the host.
pub const TASK_ID_SEPARATOR: char = ':';

/// What a call as a task gave: a task (its id the host's), or, from a server or tool that does
/// not run tasks, the result of a normal call.
#[derive(Debug)]
pub enum TaskCall<R> {
    /// The task that was created (boxed: it is much larger than a raw result).
    Task(Box<Task>),
    /// The call's result: it was not run as a task.
    Done(R),
}

/// The tasks the host knows, by host id.
#[derive(Debug, Default)]
pub(crate) struct TaskRegistry {
    entries: Mutex<BTreeMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    client: ClientId,
    /// The exposed name of the tool it runs.
    tool: String,
    owner: Option<String>,
    /// Its last known state (the server's id in `task_id`).
    last: Task,
    created: Instant,
    /// Keeps the call's progress reaching its callback for the task's life.
    _handle: ToolTask,
}

impl TaskRegistry {
    fn insert(
        &self,
        client: &ClientId,
        tool: &str,
        owner: Option<String>,
        handle: ToolTask,
    ) -> Result<Task, Error> {
        let task = handle.created().clone();
        let host_id = host_id(client, &task.task_id);
        let mut entries = lock(&self.entries);
        let n_client = entries
            .values()
            .filter(|entry| entry.client == *client)
            .count();
        if n_client >= MAX_TASKS_PER_CLIENT {
            // Room is made by the oldest tasks that ended or outlived their ttl.
            let expired = |entry: &Entry| {
                entry.last.status.is_terminal()
                    || entry
                        .last
                        .ttl
                        .is_some_and(|ttl| entry.created.elapsed() > Duration::from_millis(ttl))
            };
            let oldest = entries
                .iter()
                .filter(|(_, entry)| entry.client == *client && expired(entry))
                .min_by_key(|(_, entry)| entry.created)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    entries.remove(&id);
                }
                None => {
                    return Err(Error::TooManyTasks {
                        client: client.to_string(),
                        limit: MAX_TASKS_PER_CLIENT,
                    })
                }
            }
        }
        entries.insert(
            host_id.clone(),
            Entry {
                client: client.clone(),
                tool: tool.to_owned(),
                owner,
                last: task.clone(),
                created: Instant::now(),
                _handle: handle,
            },
        );
        Ok(with_id(task, host_id))
    }

    /// The client, server id and tool of task `id`, if `scope` may see it.
    fn lookup(&self, id: &str, scope: &AgentScope) -> Result<(ClientId, String, String), Error> {
        let entries = lock(&self.entries);
        entries
            .get(id)
            .filter(|entry| visible(entry, scope))
            .map(|entry| {
                (
                    entry.client.clone(),
                    entry.last.task_id.clone(),
                    entry.tool.clone(),
                )
            })
            .ok_or_else(|| Error::UnknownTask { id: id.to_owned() })
    }

    /// Records a task's new state (from `tasks/get`, `tasks/cancel` or a notification);
    /// returns it under its host id if the task is known.
    pub(crate) fn update(&self, client: &ClientId, task: &Task) -> Option<Task> {
        let host_id = host_id(client, &task.task_id);
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(&host_id)?;
        entry.last = task.clone();
        Some(with_id(task.clone(), host_id))
    }

    /// The tasks `scope` may see, by host id.
    fn list(&self, scope: &AgentScope) -> Vec<Task> {
        lock(&self.entries)
            .iter()
            .filter(|(_, entry)| visible(entry, scope))
            .map(|(id, entry)| with_id(entry.last.clone(), id.clone()))
            .collect()
    }

    /// Forgets every task started through a scope whose owner is `owner`; returns how many, and
    /// the client and server id of those that had not ended.
    fn forget_owner(&self, owner: &str) -> (usize, Vec<(ClientId, String)>) {
        let mut entries = lock(&self.entries);
        let n_before = entries.len();
        let mut running = Vec::new();
        entries.retain(|_, entry| {
            if entry.owner.as_deref() != Some(owner) {
                return true;
            }
            if !entry.last.status.is_terminal() {
                running.push((entry.client.clone(), entry.last.task_id.clone()));
            }
            false
        });
        (n_before - entries.len(), running)
    }

    /// Forgets every task of `client`; returns the server ids of those that had not ended.
    pub(crate) fn forget_client(&self, client: &ClientId) -> Vec<String> {
        let mut entries = lock(&self.entries);
        let mut running = Vec::new();
        entries.retain(|_, entry| {
            if entry.client != *client {
                return true;
            }
            if !entry.last.status.is_terminal() {
                running.push(entry.last.task_id.clone());
            }
            false
        });
        running
    }
}

fn visible(entry: &Entry, scope: &AgentScope) -> bool {
    entry.owner == scope.owner
        && scope.permits(&entry.client, &entry.tool)
        && scope.tools.allows(&entry.tool)
}

fn host_id(client: &ClientId, server_id: &str) -> String {
    format!("{client}{TASK_ID_SEPARATOR}{server_id}")
}

fn with_id(mut task: Task, id: String) -> Task {
    task.task_id = id;
    task
}

impl McpHost {
    /// Calls a tool as a task when its server declares tool tasks and the tool allows them
    /// (`execution.taskSupport` `optional` or `required`), else normally; `ttl` asks the server
    /// to keep the task that long. The task's progress reports reach `options.on_progress` for
    /// as long as the host knows the task.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`]; a task already created goes on (cancel it with
    /// [`McpHost::cancel_task`]).
    pub async fn call_tool_as_task(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        scope: &AgentScope,
        ttl: Option<Duration>,
        options: &RequestOptions,
    ) -> Result<TaskCall<CallToolResult>, Error> {
        match self
            .start_task(name, arguments, scope, ttl, options)
            .await?
        {
            Ok(task) => Ok(TaskCall::Task(Box::new(task))),
            Err(arguments) => self
                .call_tool_with(name, arguments, scope, options)
                .await
                .map(TaskCall::Done),
        }
    }

    /// [`McpHost::call_tool_as_task`] with the result of a normal call undecoded (the gateway).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool_as_task`].
    pub async fn call_tool_as_task_raw(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        scope: &AgentScope,
        ttl: Option<Duration>,
        options: &RequestOptions,
    ) -> Result<TaskCall<Box<RawValue>>, Error> {
        match self
            .start_task(name, arguments.cloned(), scope, ttl, options)
            .await?
        {
            Ok(task) => Ok(TaskCall::Task(Box::new(task))),
            Err(arguments) => self
                .call_tool_raw(name, arguments.as_ref(), scope, options)
                .await
                .map(TaskCall::Done),
        }
    }

    /// Starts the task, or gives the arguments back when the call is not to be a task.
    async fn start_task(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        scope: &AgentScope,
        ttl: Option<Duration>,
        options: &RequestOptions,
    ) -> Result<Result<Task, Option<Map<String, Value>>>, Error> {
        let tool = self
            .resolve_tool(name, scope)
            .ok_or_else(|| Error::UnknownTool {
                name: name.to_owned(),
            })?;
        let client = self.ready_client(&tool.client)?;
        if !(client.session.supports_tool_tasks() && tool.item.takes_tasks()) {
            return Ok(Err(arguments));
        }
        let handle = client
            .session
            .call_tool_as_task(&tool.item.name, arguments, ttl, options)
            .await
            .map_err(|error| self.call_error(&tool.client, error))?;
        let task = self
            .tasks()
            .insert(&tool.client, name, scope.owner.clone(), handle)?;
        Ok(Ok(task))
    }

    /// The state of task `id` now (`tasks/get` at its server).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn task_status(&self, id: &str, scope: &AgentScope) -> Result<Task, Error> {
        let (client, server_id, _) = self.tasks().lookup(id, scope)?;
        let session = self.ready_client(&client)?.session;
        let task = session
            .get_task(&server_id)
            .await
            .map_err(|error| self.call_error(&client, error))?;
        Ok(self
            .tasks()
            .update(&client, &task)
            .unwrap_or_else(|| with_id(task, id.to_owned())))
    }

    /// The result of task `id`: its server answers once the task has ended, so this waits up to
    /// `options.timeout` (give a long one). A tool that declares an output schema has its
    /// structured content checked, as for [`McpHost::call_tool`].
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn task_result(
        &self,
        id: &str,
        scope: &AgentScope,
        options: &RequestOptions,
    ) -> Result<CallToolResult, Error> {
        let (client, _, _) = self.tasks().lookup(id, scope)?;
        let raw = self.task_result_raw(id, scope, options).await?;
        serde_json::from_str(raw.get()).map_err(|source| {
            let error = mcp_session::Error::Decode {
                server: client.server_name().clone(),
                method: "tasks/result".to_owned(),
                source,
            };
            self.call_error(&client, error)
        })
    }

    /// [`McpHost::task_result`] undecoded, for forwarding it as it came (the gateway).
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn task_result_raw(
        &self,
        id: &str,
        scope: &AgentScope,
        options: &RequestOptions,
    ) -> Result<Box<RawValue>, Error> {
        let (client, server_id, tool) = self.tasks().lookup(id, scope)?;
        let session = self.ready_client(&client)?.session;
        let raw = session
            .task_result_raw(&server_id, options)
            .await
            .map_err(|error| self.call_error(&client, error))?;
        self.check_output(&client, &tool, &raw)?;
        Ok(with_related_task(raw, id))
    }

    /// Whether task `id` is one `scope` may see (to pass on its status notifications only to
    /// the clients it belongs to).
    pub fn task_visible(&self, id: &str, scope: &AgentScope) -> bool {
        self.tasks().lookup(id, scope).is_ok()
    }

    /// Cancels task `id` (`tasks/cancel` at its server); returns its state.
    ///
    /// # Cancel safety
    ///
    /// As for [`McpHost::call_tool`].
    pub async fn cancel_task(&self, id: &str, scope: &AgentScope) -> Result<Task, Error> {
        let (client, server_id, _) = self.tasks().lookup(id, scope)?;
        let session = self.ready_client(&client)?.session;
        let task = session
            .cancel_task(&server_id)
            .await
            .map_err(|error| self.call_error(&client, error))?;
        Ok(self
            .tasks()
            .update(&client, &task)
            .unwrap_or_else(|| with_id(task, id.to_owned())))
    }

    /// The tasks `scope` may see, with their last known state, by id.
    pub fn list_tasks(&self, scope: &AgentScope) -> Vec<Task> {
        self.tasks().list(scope)
    }

    /// Ends the tasks of `owner` (see [`AgentScope::owner`]), as the gateway does when a
    /// client's session ends: those that have not ended are cancelled at their servers (all at
    /// once, waiting at most [`TASK_CANCEL_BOUND`]), and every one is forgotten. Returns how
    /// many were forgotten.
    ///
    /// # Cancel safety
    ///
    /// The tasks are forgotten before anything is awaited; dropping the future only stops the
    /// cancellations that are still on their way.
    pub async fn end_tasks_of(&self, owner: &str) -> usize {
        let (forgotten, running) = self.tasks().forget_owner(owner);
        let cancels = running.iter().map(|(client, server_id)| async move {
            let Ok(client_session) = self.ready_client(client) else {
                return false;
            };
            if !client_session.init.capabilities.task_cancel() {
                return false;
            }
            client_session.session.cancel_task(server_id).await.is_ok()
        });
        match tokio::time::timeout(TASK_CANCEL_BOUND, futures::future::join_all(cancels)).await {
            Ok(outcomes) => {
                let n_cancelled = outcomes.iter().filter(|cancelled| **cancelled).count();
                tracing::debug!(
                    owner,
                    n_tasks = forgotten,
                    n_cancelled,
                    "ended an owner's tasks"
                );
            }
            Err(_) => {
                tracing::warn!(
                    owner,
                    n_running = running.len(),
                    "an owner's tasks were not all cancelled in time"
                );
            }
        }
        forgotten
    }
}

/// `raw` with its `_meta` related task (the server's id) replaced by the host's `id`.
fn with_related_task(raw: Box<RawValue>, id: &str) -> Box<RawValue> {
    if !raw.get().contains(META_RELATED_TASK) {
        return raw;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(raw.get()) else {
        return raw;
    };
    if let Some(related) = value
        .get_mut("_meta")
        .and_then(|meta| meta.get_mut(META_RELATED_TASK))
        .and_then(Value::as_object_mut)
    {
        related.insert("taskId".to_owned(), Value::String(id.to_owned()));
    }
    serde_json::value::to_raw_value(&value).unwrap_or(raw)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
