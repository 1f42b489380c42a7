//! Task-augmented `tools/call` (revision 2025-11-25, tasks): a call the server runs as a task,
//! polled with `tasks/get`, awaited with `tasks/result`, cancelled with `tasks/cancel`.
//!
//! [`Session::call_tool_as_task`] sends the call with a `task` member and returns a [`ToolTask`]
//! handle as soon as the server has created the task. Progress reports keep reaching the call's
//! progress callback for as long as the handle lives (the progress token stays valid for the
//! task's lifetime), for at most [`MAX_TASK_PROGRESS`] handles at once. `notifications/tasks/status`
//! arrive as [`Event::TaskStatus`](crate::Event::TaskStatus).

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::protocol::{CallToolResult, CreateTaskResult, ListTasksResult, Task};
use crate::session::{encode_request, lock};
use crate::{Error, RequestOptions, Session};

/// How many task handles at once may keep their call's progress callback.
pub const MAX_TASK_PROGRESS: usize = 1024;

/// A tool call the server runs as a task.
///
/// # Drop behavior
///
/// Dropping the handle stops routing the task's progress reports to the call's callback; the
/// task itself goes on at the server (cancel it with [`ToolTask::cancel`]).
#[derive(Debug)]
pub struct ToolTask {
    session: Session,
    created: Task,
    /// The progress token registered for the task's lifetime, if any.
    progress_token: Option<u64>,
}

impl Session {
    /// Whether the server takes `tools/call` as a task (it declared
    /// `tasks.requests.tools.call`).
    pub fn supports_tool_tasks(&self) -> bool {
        self.peer()
            .is_some_and(|peer| peer.capabilities.tool_tasks())
    }

    /// Calls a tool as a task: the server creates it and answers at once; the result comes later
    /// through the returned handle. `ttl` asks the server to keep the task that long.
    ///
    /// Fails with [`Error::TasksNotSupported`] when the server did not declare tool tasks (call
    /// the tool normally then).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`]; once the task is created, dropping the handle does not
    /// cancel it.
    pub async fn call_tool_as_task(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        ttl: Option<Duration>,
        options: &RequestOptions,
    ) -> Result<ToolTask, Error> {
        if !self.supports_tool_tasks() {
            return Err(Error::TasksNotSupported {
                server: self.server().clone(),
            });
        }
        let mut params = Map::new();
        params.insert("name".to_owned(), Value::String(name.to_owned()));
        if let Some(arguments) = arguments {
            params.insert("arguments".to_owned(), Value::Object(arguments));
        }
        let mut task = Map::new();
        if let Some(ttl) = ttl {
            let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            task.insert("ttl".to_owned(), Value::from(ttl));
        }
        params.insert("task".to_owned(), Value::Object(task));
        let mut token = None;
        let created: CreateTaskResult = self
            .exchange("tools/call", options, |id, meta| {
                token = meta.progress.then_some(id);
                encode_request(id, "tools/call", Some(Value::Object(params)), meta)
            })
            .await?;
        // The token stays valid for the task's life: its reports go on reaching the callback.
        let progress_token = match (token, &options.on_progress) {
            (Some(token), Some(callback)) => {
                let mut routes = lock(&self.shared.task_progress);
                (routes.len() < MAX_TASK_PROGRESS).then(|| {
                    routes.insert(token, callback.clone());
                    token
                })
            }
            _ => None,
        };
        tracing::debug!(server = %self.server(), task_id = %created.task.task_id, "task created");
        Ok(ToolTask {
            session: self.clone(),
            created: created.task,
            progress_token,
        })
    }

    /// The state of a task (`tasks/get`).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn get_task(&self, task_id: &str) -> Result<Task, Error> {
        self.request(
            "tasks/get",
            Some(task_params(task_id)),
            &RequestOptions::default(),
        )
        .await
    }

    /// The result of a tool-call task (`tasks/result`): the server answers once the task has
    /// ended, so this waits up to the request's timeout (give a long one).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn task_result(
        &self,
        task_id: &str,
        options: &RequestOptions,
    ) -> Result<CallToolResult, Error> {
        self.request("tasks/result", Some(task_params(task_id)), options)
            .await
    }

    /// [`Session::task_result`] undecoded, for forwarding it as it came.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn task_result_raw(
        &self,
        task_id: &str,
        options: &RequestOptions,
    ) -> Result<Box<RawValue>, Error> {
        self.request_raw("tasks/result", Some(task_params(task_id)), options)
            .await
    }

    /// Cancels a task (`tasks/cancel`); returns its state, `cancelled`.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn cancel_task(&self, task_id: &str) -> Result<Task, Error> {
        self.request(
            "tasks/cancel",
            Some(task_params(task_id)),
            &RequestOptions::default(),
        )
        .await
    }

    /// One page of the server's tasks (`tasks/list`).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn list_tasks(&self, cursor: Option<&str>) -> Result<ListTasksResult, Error> {
        self.list_page(cursor).await
    }
}

impl ToolTask {
    /// The task's id at the server.
    pub fn id(&self) -> &str {
        &self.created.task_id
    }

    /// The task as the server created it.
    pub fn created(&self) -> &Task {
        &self.created
    }

    /// The task's state now (`tasks/get`).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn status(&self) -> Result<Task, Error> {
        self.session.get_task(self.id()).await
    }

    /// The tool's result, once the task has ended (`tasks/result`, which the server answers at
    /// the end), waiting at most the session's `max_request_timeout`. A task that failed gives
    /// the tool error or the JSON-RPC error the call would have given.
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn result(&self) -> Result<CallToolResult, Error> {
        let options = RequestOptions::with_timeout(self.session.options().max_request_timeout);
        self.session.task_result(self.id(), &options).await
    }

    /// Cancels the task (`tasks/cancel`).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`].
    pub async fn cancel(&self) -> Result<Task, Error> {
        self.session.cancel_task(self.id()).await
    }
}

impl Drop for ToolTask {
    fn drop(&mut self) {
        if let Some(token) = self.progress_token {
            lock(&self.session.shared.task_progress).remove(&token);
        }
    }
}

fn task_params(task_id: &str) -> Value {
    serde_json::json!({ "taskId": task_id })
}

/// The progress callbacks of live task handles, by progress token.
pub(crate) type TaskProgress = std::collections::HashMap<u64, crate::ProgressCallback>;

/// Whether `id`'s progress goes to a task handle; calls its callback if so.
pub(crate) fn report_task_progress(
    routes: &std::sync::Mutex<TaskProgress>,
    id: u64,
    progress: crate::protocol::Progress,
) -> bool {
    let callback: Option<Arc<dyn Fn(crate::protocol::Progress) + Send + Sync>> =
        lock(routes).get(&id).cloned();
    match callback {
        Some(callback) => {
            callback(progress);
            true
        }
        None => false,
    }
}
