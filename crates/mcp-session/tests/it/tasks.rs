//! Task-augmented tool calls (revision 2025-11-25, tasks) against the fake server process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_host_testkit::FakeConfig;
use mcp_session::protocol::{Progress, TaskStatus};
use mcp_session::{Event, RequestOptions, SessionOptions};
use mcp_transport::TransportOptions;
use serde_json::json;

use crate::{args, start, start_with, PROMPTLY};

fn tasks() -> FakeConfig {
    FakeConfig {
        tasks: true,
        ..FakeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_runs_as_a_task_with_progress_until_its_result() {
    let running = start(tasks()).await;
    let session = &running.session;
    assert!(session.supports_tool_tasks());
    let mut events = session.take_events().unwrap();
    let reports: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let collected = reports.clone();
    let options = RequestOptions {
        timeout: None,
        on_progress: Some(Arc::new(move |progress| {
            collected.lock().unwrap().push(progress)
        })),
    };
    let task = session
        .call_tool_as_task(
            "slow",
            args(json!({"ms": 300})),
            Some(Duration::from_secs(60)),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(task.created().status, TaskStatus::Working);
    assert_eq!(task.created().ttl, Some(60_000));
    let status = task.status().await.unwrap();
    assert_eq!(status.task_id, task.id());
    let result = tokio::time::timeout(PROMPTLY, task.result())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.text(), "slept 300 ms");
    assert_eq!(task.status().await.unwrap().status, TaskStatus::Completed);
    // The progress token stays valid for the task's life.
    assert_eq!(reports.lock().unwrap().len(), 5);
    // The server said so too.
    let completed = async {
        loop {
            if let Some(Event::TaskStatus(task)) = events.recv().await {
                if task.status == TaskStatus::Completed {
                    return task;
                }
            }
        }
    };
    let completed = tokio::time::timeout(PROMPTLY, completed).await.unwrap();
    assert_eq!(completed.task_id, task.id());
    let listed = session.list_tasks(None).await.unwrap();
    assert!(listed
        .tasks
        .iter()
        .any(|listed| listed.task_id == task.id()));
    drop(task);
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_cancelled_and_a_failed_one_gives_the_tool_error() {
    let running = start(tasks()).await;
    let session = &running.session;
    let options = RequestOptions::default();
    let task = session
        .call_tool_as_task("slow", args(json!({"ms": 60000})), None, &options)
        .await
        .unwrap();
    let cancelled = task.cancel().await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(task.status().await.unwrap().status, TaskStatus::Cancelled);
    // A task that has ended cannot be cancelled again.
    let error = task.cancel().await.unwrap_err();
    assert_eq!(error.rpc_code(), Some(-32602), "{error}");
    let error = task.result().await.unwrap_err();
    assert!(error.rpc_code().is_some(), "{error}");

    let failing = session
        .call_tool_as_task("fail", None, None, &options)
        .await
        .unwrap();
    let result = failing.result().await.unwrap();
    assert!(result.is_tool_error());
    assert_eq!(failing.status().await.unwrap().status, TaskStatus::Failed);
    // Unknown tasks are invalid params.
    let error = session.get_task("no-such-task").await.unwrap_err();
    assert_eq!(error.rpc_code(), Some(-32602), "{error}");
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_needs_input_is_answered_through_the_handler() {
    struct Accept;
    impl mcp_session::ClientRequestHandler for Accept {
        fn capabilities(&self) -> serde_json::Map<String, serde_json::Value> {
            let mut capabilities = serde_json::Map::new();
            capabilities.insert("elicitation".to_owned(), json!({}));
            capabilities
        }
        fn handles(&self, method: &str) -> bool {
            method == "elicitation/create"
        }
        fn handle(
            &self,
            _server: &mcp_session::ServerName,
            _method: &str,
            _params: Option<serde_json::Value>,
        ) -> mcp_session::HandlerFuture {
            Box::pin(async { Ok(json!({"action": "accept", "content": {"name": "Ada"}})) })
        }
    }
    let options = SessionOptions {
        client_requests: Some(Arc::new(Accept)),
        ..SessionOptions::default()
    };
    let running = start_with(tasks(), options, TransportOptions::default()).await;
    let task = running
        .session
        .call_tool_as_task(
            "ask_client",
            args(json!({"method": "elicitation/create", "params": {"message": "Name?", "requestedSchema": {"type": "object"}}})),
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let result = tokio::time::timeout(PROMPTLY, task.result())
        .await
        .unwrap()
        .unwrap();
    assert!(result.text().contains("Ada"), "{}", result.text());
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tasks_is_not_sent_one() {
    let running = start(FakeConfig::default()).await;
    assert!(!running.session.supports_tool_tasks());
    let error = running
        .session
        .call_tool_as_task(
            "echo",
            args(json!({"text": "x"})),
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, mcp_session::Error::TasksNotSupported { .. }),
        "{error}"
    );
    running.finish().await;
}
