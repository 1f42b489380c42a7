//! What `call` shows a person on stderr while a call runs: URL-mode elicitations (the URL to
//! open, then its completion), a task's status and progress until it ends.
//!
//! `call` declares URL-mode elicitation only (`{"elicitation": {"url": {}}}`): a terminal command
//! can show a link, not a form, so a server asking for a form is refused by the session (-32602)
//! without a prompt. A URL elicitation is accepted once shown (the interaction happens in the
//! person's browser); `notifications/elicitation/complete` says when it is done. A call refused
//! with -32042 (URL elicitation required) shows each URL, waits for their completion (bounded by
//! the call's timeout) and is tried once more.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_host::protocol::{RpcError, Task};
use mcp_host::{
    AgentScope, ClientRequestHandler, HandlerFuture, McpHost, NotificationKind, RequestOptions,
    ServerName,
};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

/// The JSON-RPC code of "URL elicitation required" (2025-11-25).
pub(crate) const URL_ELICITATION_REQUIRED: i64 = -32042;

/// Shows URL-mode elicitations and remembers which are waiting for completion.
#[derive(Debug, Default)]
pub(crate) struct UrlElicitations {
    waiting: Mutex<BTreeSet<String>>,
}

impl UrlElicitations {
    pub(crate) fn new() -> Arc<UrlElicitations> {
        Arc::new(UrlElicitations::default())
    }

    /// Shows one URL elicitation (`params` of `elicitation/create`, or an entry of a -32042
    /// error's `elicitations`); returns its id.
    fn show(&self, server: &str, params: &Value) -> Option<String> {
        let url = params.get("url").and_then(Value::as_str)?;
        let message = params.get("message").and_then(Value::as_str).unwrap_or("");
        let id = params
            .get("elicitationId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .unwrap_or(url);
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "server `{server}` asks you to open a page on {host}: {message}\n  {url}"
        );
        if !id.is_empty() {
            let _ = writeln!(stderr, "waiting for `{server}` to see it done…");
            lock(&self.waiting).insert(id.clone());
        }
        Some(id)
    }

    /// Notes a completion; says so if it was one shown here.
    fn complete(&self, server: &str, id: &str) -> bool {
        let known = lock(&self.waiting).remove(id);
        if known {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "server `{server}`: the page was completed");
        }
        known
    }

    fn n_waiting(&self) -> usize {
        lock(&self.waiting).len()
    }
}

impl ClientRequestHandler for UrlElicitations {
    fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = Map::new();
        capabilities.insert("elicitation".to_owned(), json!({"url": {}}));
        capabilities
    }

    fn handles(&self, method: &str) -> bool {
        method == "elicitation/create"
    }

    fn handle(&self, server: &ServerName, _method: &str, params: Option<Value>) -> HandlerFuture {
        // The session let only URL mode through.
        let shown = params
            .as_ref()
            .and_then(|params| self.show(server.as_str(), params));
        Box::pin(async move {
            match shown {
                Some(_) => Ok(json!({"action": "accept"})),
                None => Err(RpcError::invalid_params("the elicitation has no url")),
            }
        })
    }
}

/// Follows the host's notifications while a call runs: completions of URL elicitations, and
/// status changes of tasks (printed when `task` is the one followed). Never ends by itself.
pub(crate) async fn follow(
    mut notifications: broadcast::Receiver<mcp_host::ServerNotification>,
    elicitations: &UrlElicitations,
    task: Option<&str>,
) {
    loop {
        match notifications.recv().await {
            Ok(notification) => match notification.kind {
                NotificationKind::ElicitationComplete { elicitation_id } => {
                    elicitations.complete(notification.client.as_str(), &elicitation_id);
                }
                NotificationKind::TaskStatus(status) if Some(status.task_id.as_str()) == task => {
                    print_task(&status);
                }
                _ => {}
            },
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Shows the URLs of a -32042 error and waits (at most `bound`) until each is completed.
/// Returns whether they all were.
pub(crate) async fn await_required_elicitations(
    notifications: broadcast::Receiver<mcp_host::ServerNotification>,
    elicitations: &UrlElicitations,
    server: &str,
    data: &Value,
    bound: Duration,
) -> bool {
    let listed = data
        .get("elicitations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for elicitation in &listed {
        elicitations.show(server, elicitation);
    }
    let done = async {
        let following = follow(notifications, elicitations, None);
        tokio::pin!(following);
        while elicitations.n_waiting() > 0 {
            tokio::select! {
                () = &mut following => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    };
    tokio::time::timeout(bound, done).await.is_ok()
}

/// Waits for task `id` to end while showing its status (polled at the task's `pollInterval`,
/// between 100 ms and 5 s, and from notifications) and progress; returns its result.
pub(crate) async fn follow_task(
    host: &McpHost,
    created: &Task,
    elicitations: &UrlElicitations,
    bound: Duration,
) -> Result<mcp_host::protocol::CallToolResult, mcp_host::Error> {
    let scope = AgentScope::all();
    print_task(created);
    let id = created.task_id.as_str();
    let interval = Duration::from_millis(created.poll_interval.unwrap_or(1000).clamp(100, 5000));
    let options = RequestOptions::with_timeout(bound);
    let result = host.task_result(id, &scope, &options);
    tokio::pin!(result);
    let following = follow(host.subscribe_notifications(), elicitations, Some(id));
    tokio::pin!(following);
    let mut last = (created.status, created.status_message.clone());
    loop {
        tokio::select! {
            result = &mut result => return result,
            () = &mut following => {}
            () = tokio::time::sleep(interval) => {
                if let Ok(task) = host.task_status(id, &scope).await {
                    let now = (task.status, task.status_message.clone());
                    if now != last {
                        print_task(&task);
                        last = now;
                    }
                }
            }
        }
    }
}

fn print_task(task: &Task) {
    let status = serde_json::to_value(task.status)
        .ok()
        .and_then(|status| status.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut stderr = std::io::stderr().lock();
    let _ = match &task.status_message {
        Some(message) => writeln!(stderr, "task {}: {status}: {message}", task.task_id),
        None => writeln!(stderr, "task {}: {status}", task.task_id),
    };
}

/// Prints a progress report of the call on stderr.
pub(crate) fn print_progress(progress: mcp_host::protocol::Progress) {
    let mut stderr = std::io::stderr().lock();
    let total = progress
        .total
        .map(|total| format!("/{total}"))
        .unwrap_or_default();
    let message = progress
        .message
        .map(|message| format!(" {message}"))
        .unwrap_or_default();
    let _ = writeln!(stderr, "progress {}{total}{message}", progress.progress);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
