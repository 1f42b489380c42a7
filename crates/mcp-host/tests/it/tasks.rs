//! Tool calls as tasks through the host: routed by their server, bound to their owner,
//! cancelled with their client, and plain calls for servers without tasks.

use std::sync::{Arc, Mutex};

use mcp_host::protocol::TaskStatus;
use mcp_host::{AgentScope, Error, McpHost, NotificationKind, RequestOptions, TaskCall};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::json;

use crate::{args, fake_client, id, PROMPTLY};

fn tasks_fake(id: &str, marker: &str) -> mcp_host::ClientConfig {
    let fake = FakeConfig {
        tasks: true,
        ..FakeConfig::default()
    };
    fake_client(id, &fake, marker)
}

fn task_of<R: std::fmt::Debug>(call: TaskCall<R>) -> mcp_host::protocol::Task {
    match call {
        TaskCall::Task(task) => *task,
        TaskCall::Done(result) => panic!("not run as a task: {result:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_routed_to_the_server_that_owns_them() {
    let marker = unique_marker();
    let host = McpHost::new(vec![tasks_fake("a", &marker), tasks_fake("b", &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    let mut notifications = host.subscribe_notifications();
    let reports = Arc::new(Mutex::new(0));
    let counted = reports.clone();
    let options = RequestOptions {
        timeout: None,
        on_progress: Some(Arc::new(move |_| *counted.lock().unwrap() += 1)),
    };
    let first = task_of(
        host.call_tool_as_task("a__slow", args(json!({"ms": 200})), &scope, None, &options)
            .await
            .unwrap(),
    );
    let second = task_of(
        host.call_tool_as_task(
            "b__echo",
            args(json!({"text": "from b"})),
            &scope,
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap(),
    );
    // Both servers number their tasks alike; the host's ids tell them apart.
    assert_eq!(first.task_id, "a:fake-server-task-1");
    assert_eq!(second.task_id, "b:fake-server-task-1");
    let long = RequestOptions::with_timeout(PROMPTLY);
    let result = host
        .task_result(&first.task_id, &scope, &long)
        .await
        .unwrap();
    assert_eq!(result.text(), "slept 200 ms");
    let result = host
        .task_result(&second.task_id, &scope, &long)
        .await
        .unwrap();
    assert_eq!(result.text(), "from b");
    // The result names the task by the host's id.
    let related = &result.extra["_meta"]["io.modelcontextprotocol/related-task"]["taskId"];
    assert_eq!(related, &json!(second.task_id));
    assert!(host.task_visible(&second.task_id, &scope));
    let status = host.task_status(&first.task_id, &scope).await.unwrap();
    assert_eq!(status.task_id, first.task_id);
    assert_eq!(status.status, TaskStatus::Completed);
    assert_eq!(*reports.lock().unwrap(), 5);
    let listed: Vec<String> = host
        .list_tasks(&scope)
        .into_iter()
        .map(|task| task.task_id)
        .collect();
    assert_eq!(listed, [first.task_id.clone(), second.task_id.clone()]);
    // Status notifications are relayed under the host's ids.
    let relayed = async {
        loop {
            let notification = notifications.recv().await.unwrap();
            if let NotificationKind::TaskStatus(task) = notification.kind {
                if task.status == TaskStatus::Completed {
                    return (notification.client, task);
                }
            }
        }
    };
    let (client, task) = tokio::time::timeout(PROMPTLY, relayed).await.unwrap();
    assert!(task.task_id.starts_with(&format!("{client}:")), "{task:?}");

    // Tasks are bound to the owner that started them.
    let alice = AgentScope {
        owner: Some("alice".to_owned()),
        ..AgentScope::default()
    };
    let bob = AgentScope {
        owner: Some("bob".to_owned()),
        ..AgentScope::default()
    };
    let hers = task_of(
        host.call_tool_as_task("a__slow", args(json!({"ms": 10})), &alice, None, &options)
            .await
            .unwrap(),
    );
    let error = host.task_status(&hers.task_id, &bob).await.unwrap_err();
    assert!(matches!(error, Error::UnknownTask { .. }), "{error}");
    assert!(host.list_tasks(&bob).is_empty());
    assert_eq!(host.list_tasks(&alice).len(), 1);
    assert!(host.cancel_task(&hers.task_id, &bob).await.is_err());
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_and_tools_without_tasks_are_called_normally() {
    let marker = unique_marker();
    let host = McpHost::new(vec![
        fake_client("plain", &FakeConfig::default(), &marker),
        tasks_fake("tasks", &marker),
    ])
    .unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    let options = RequestOptions::default();
    for name in ["plain__echo", "tasks__add"] {
        let arguments = if name == "tasks__add" {
            json!({"a": 1, "b": 2})
        } else {
            json!({"text": "normal"})
        };
        let call = host
            .call_tool_as_task(name, args(arguments), &scope, None, &options)
            .await
            .unwrap();
        match call {
            TaskCall::Done(result) => assert!(!result.is_tool_error()),
            TaskCall::Task(task) => panic!("{name} ran as a task: {task:?}"),
        }
    }
    let raw = host
        .call_tool_as_task_raw(
            "plain__echo",
            args(json!({"text": "raw"})).as_ref(),
            &scope,
            None,
            &options,
        )
        .await
        .unwrap();
    assert!(matches!(raw, TaskCall::Done(raw) if raw.get().contains("raw")));
    let error = host.task_status("plain:nothing", &scope).await.unwrap_err();
    assert!(matches!(error, Error::UnknownTask { .. }), "{error}");
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_client_cancels_its_tasks() {
    let marker = unique_marker();
    let host = McpHost::new(vec![tasks_fake("worker", &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    let task = task_of(
        host.call_tool_as_task(
            "worker__slow",
            args(json!({"ms": 60000})),
            &scope,
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap(),
    );
    let report = host.client_shutdown(&id("worker")).await.unwrap();
    assert!(
        report
            .stderr_tail
            .contains("task fake-server-task-1 cancelled"),
        "{}",
        report.stderr_tail
    );
    let error = host.task_status(&task.task_id, &scope).await.unwrap_err();
    assert!(matches!(error, Error::UnknownTask { .. }), "{error}");
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// `end_tasks_of` (a gateway session that ended) forgets one owner's tasks and cancels those
/// still running at their server; another owner's tasks are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_an_owners_tasks_cancels_and_forgets_them_only() {
    let marker = unique_marker();
    let host = McpHost::new(vec![tasks_fake("worker", &marker)]).unwrap();
    host.initialize().await.unwrap();
    let owner = |name: &str| AgentScope {
        owner: Some(name.to_owned()),
        ..AgentScope::default()
    };
    let (alice, bob) = (owner("alice"), owner("bob"));
    let options = RequestOptions::default();
    let long = || args(json!({"ms": 60000}));
    let hers = task_of(
        host.call_tool_as_task("worker__slow", long(), &alice, None, &options)
            .await
            .unwrap(),
    );
    let his = task_of(
        host.call_tool_as_task("worker__slow", long(), &bob, None, &options)
            .await
            .unwrap(),
    );
    assert_eq!(host.end_tasks_of("alice").await, 1);
    assert!(host.list_tasks(&alice).is_empty());
    let error = host.task_status(&hers.task_id, &alice).await.unwrap_err();
    assert!(matches!(error, Error::UnknownTask { .. }), "{error}");
    // At the server: hers cancelled, his still working.
    let server = host.session(&id("worker")).unwrap().session;
    let statuses: Vec<(String, TaskStatus)> = server
        .list_tasks(None)
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|task| (task.task_id, task.status))
        .collect();
    assert!(
        statuses.contains(&("fake-server-task-1".to_owned(), TaskStatus::Cancelled)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("fake-server-task-2".to_owned(), TaskStatus::Working)),
        "{statuses:?}"
    );
    assert_eq!(
        host.task_status(&his.task_id, &bob).await.unwrap().status,
        TaskStatus::Working
    );
    assert_eq!(host.end_tasks_of("nobody").await, 0);
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_keeps_at_most_1024_tasks_per_client() {
    use mcp_host::tasks::MAX_TASKS_PER_CLIENT;
    let marker = unique_marker();
    let host = McpHost::new(vec![tasks_fake("busy", &marker)]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    let options = RequestOptions::default();
    let start = || {
        host.call_tool_as_task(
            "busy__slow",
            args(json!({"ms": 600000})),
            &scope,
            None,
            &options,
        )
    };
    let mut first = None;
    for _ in 0..MAX_TASKS_PER_CLIENT {
        let task = task_of(start().await.unwrap());
        first.get_or_insert(task.task_id);
    }
    // All running: no room.
    let error = start().await.unwrap_err();
    assert!(
        matches!(error, Error::TooManyTasks { limit: 1024, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("busy"), "{error}");
    // One ends: it makes room for the next.
    let first = first.unwrap();
    host.cancel_task(&first, &scope).await.unwrap();
    task_of(start().await.unwrap());
    assert!(host.task_status(&first, &scope).await.is_err());
    assert_eq!(host.list_tasks(&scope).len(), MAX_TASKS_PER_CLIENT);
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
