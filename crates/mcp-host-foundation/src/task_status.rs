//! The "I am ready, here is my value" handshake between a spawned task and the code that starts it.

use std::fmt;
use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::Error;

/// Handed to a task so that it can report readiness with a value, exactly once.
///
/// This is anyio's `task_status` from the seed plan. If the task drops it without calling
/// [`started`](TaskStatus::started) — it failed, returned early, or panicked — the starter gets
/// the task's own result instead.
pub struct TaskStatus<T> {
    ready: oneshot::Sender<T>,
}

impl<T> fmt::Debug for TaskStatus<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus")
            .field("starter_waiting", &!self.ready.is_closed())
            .finish()
    }
}

impl<T> TaskStatus<T> {
    /// Creates a status and the receiver its starter waits on.
    pub fn new() -> (TaskStatus<T>, oneshot::Receiver<T>) {
        let (ready, receiver) = oneshot::channel();
        (TaskStatus { ready }, receiver)
    }

    /// Reports readiness. Returns the value back if the starter no longer waits (it was
    /// cancelled); the task should then wind down.
    pub fn started(self, value: T) -> Result<(), T> {
        self.ready.send(value)
    }

    /// Whether the starter still waits for this task.
    pub fn is_awaited(&self) -> bool {
        !self.ready.is_closed()
    }
}

/// Spawns `task` on `tracker` and waits until it reports readiness.
///
/// Returns the value the task passed to [`TaskStatus::started`] together with the task's join
/// handle; the task keeps running on the tracker. If the task ends before reporting readiness,
/// its error is returned (or [`Error::TaskEnded`] if it returned `Ok` or panicked).
///
/// The wait is as long as the task takes to become ready or fail: bound the task itself (as
/// [`ClientManager::manage_client_lifecycle`](crate::ClientManager::manage_client_lifecycle)
/// does with the startup timeout).
///
/// # Cancel safety
///
/// If this future is dropped, the task keeps running on the tracker; its
/// [`TaskStatus::started`] then returns `Err`, which tells it that nobody waits for it.
pub async fn start_task<T, R, F, Fut>(
    tracker: &TaskTracker,
    name: &str,
    task: F,
) -> Result<(T, JoinHandle<Result<R, Error>>), Error>
where
    F: FnOnce(TaskStatus<T>) -> Fut,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
    R: Send + 'static,
{
    let (status, ready) = TaskStatus::new();
    let mut handle = tracker.spawn(task(status));
    tokio::select! {
        biased;
        ready = ready => match ready {
            Ok(value) => Ok((value, handle)),
            // The status was dropped without `started`: the task is ending; take its result.
            Err(_) => Err(task_outcome(handle.await, name)),
        },
        joined = &mut handle => Err(task_outcome(joined, name)),
    }
}

fn task_outcome<R>(joined: Result<Result<R, Error>, tokio::task::JoinError>, name: &str) -> Error {
    match joined {
        Ok(Err(error)) => error,
        Ok(Ok(_)) | Err(_) => Error::TaskEnded {
            client: name.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_value_comes_back_and_task_keeps_running() {
        let tracker = TaskTracker::new();
        let (value, handle) = start_task(&tracker, "a", |status: TaskStatus<u32>| async move {
            status.started(7).unwrap();
            Ok::<_, Error>("finished")
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(handle.await.unwrap().unwrap(), "finished");
    }

    #[tokio::test]
    async fn error_before_started_is_returned() {
        let tracker = TaskTracker::new();
        let result = start_task(&tracker, "a", |_status: TaskStatus<u32>| async move {
            Err::<(), _>(Error::Cancelled {
                client: "a".to_owned(),
            })
        })
        .await;
        assert!(matches!(result, Err(Error::Cancelled { .. })));
    }

    #[tokio::test]
    async fn return_or_panic_before_started_is_task_ended() {
        let tracker = TaskTracker::new();
        let result = start_task(&tracker, "a", |_status: TaskStatus<u32>| async move {
            Ok::<_, Error>(())
        })
        .await;
        assert!(matches!(result, Err(Error::TaskEnded { .. })));
        let result = start_task(&tracker, "b", |_status: TaskStatus<u32>| async move {
            if true {
                panic!("boom");
            }
            Ok::<_, Error>(())
        })
        .await;
        assert!(
            matches!(result, Err(Error::TaskEnded { ref client }) if client == "b"),
            "{result:?}"
        );
    }
}
