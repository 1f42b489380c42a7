//! The driver of a session: reads the server's messages, writes the host's, routes both.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use mcp_transport::{BoxedRead, FrameReader};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::envelope::{self, ResultMember};
use crate::outbox::{write_loop, WriteEnd};
use crate::protocol::RpcError;
use crate::protocol::{LoggingMessage, Progress};
use crate::session::{lock, CloseReason, Event, Reply, Shared, MAX_CLIENT_REQUESTS};
use crate::Error;

/// The future that drives one session: poll it (spawn it on a tracker) for the session to work.
///
/// It completes when the server closes its output, when the output breaks the protocol's framing
/// (an over-long line), or when every [`Session`](crate::Session) handle is dropped. On
/// completion every pending request has been failed. It resolves to `Ok(())` when the end was
/// asked for by the host and to the error otherwise.
///
/// It also keeps the deadlines of the session's requests (one timer for all of them), so a
/// request times out only while its connection is polled; a dropped connection fails them all.
///
/// # Drop behavior
///
/// Dropping it closes the server's input and fails every pending request with
/// [`Error::ShuttingDown`]; it does not touch the process (that is `ChildProcess`'s job).
#[must_use = "a session does nothing unless its connection is polled"]
pub struct Connection {
    inner: Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.shared.server)
            .finish_non_exhaustive()
    }
}

impl Future for Connection {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close(CloseReason::ShuttingDown);
        self.shared.outbox.close();
    }
}

pub(crate) fn new(
    shared: Arc<Shared>,
    reader: FrameReader<BoxedRead>,
    events: mpsc::Sender<Event>,
) -> Connection {
    Connection {
        inner: Box::pin(drive(shared.clone(), reader, events)),
        shared,
    }
}

/// An answer to a server request being worked out by the client-request handler.
type Answering = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn drive(
    shared: Arc<Shared>,
    reader: FrameReader<BoxedRead>,
    events: mpsc::Sender<Event>,
) -> Result<(), Error> {
    let (answering_tx, mut answering_rx) = mpsc::channel::<Answering>(MAX_CLIENT_REQUESTS);
    let reading = read_loop(&shared, reader, events, answering_tx);
    // The handler's answers run here, inside the driver, never as tasks of their own (this
    // future never ends by itself). At most MAX_CLIENT_REQUESTS exist at once: each holds a
    // slot of `server_requests`, taken before the handler is called.
    let answering = async {
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                next = answering_rx.recv() => match next {
                    Some(answer) => running.push(answer),
                    None => std::future::pending::<()>().await,
                },
                Some(()) = futures::StreamExt::next(&mut running), if !running.is_empty() => {}
            }
        }
    };
    let write_timeout = shared.options.write_timeout;
    let writing = async {
        let end = write_loop(
            &shared.server,
            &shared.diagnostics,
            &shared.outbox,
            Some(write_timeout),
        )
        .await;
        if let WriteEnd::Failed(cause) = &end {
            // New requests fail at once from now on, with this cause.
            shared.input_failed(cause.clone());
        }
        match end {
            // Closed on request: the reader goes on until the output ends.
            WriteEnd::Closed => std::future::pending().await,
            end => end,
        }
    };
    tokio::pin!(reading);
    // One timer for every request's deadline, instead of one per request.
    let deadlines = async {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut set_for = None;
        std::future::poll_fn(|cx| shared.poll_deadlines(sleep.as_mut(), &mut set_for, cx)).await
    };
    let ended = tokio::select! {
        ended = &mut reading => ended,
        () = answering => Ok(()),
        never = deadlines => match never {},
        end = writing => match end {
            WriteEnd::Failed(cause) => {
                // A server closes its input mostly because it is exiting; then its output ends
                // too, and the reader explains the end best (exit status, stderr tail). One
                // that keeps its output open can answer nothing sent to it any more.
                match tokio::time::timeout(shared.options.exit_wait, &mut reading).await {
                    Ok(ended) => ended,
                    Err(_) => {
                        shared.close(CloseReason::InputClosed { cause: cause.clone() });
                        let error = Error::InputClosed { server: shared.server.clone(), source: cause };
                        tracing::error!(server = %shared.server, error = %error, "server closed its input");
                        return Err(error);
                    }
                }
            }
            WriteEnd::Backlog { limit } => {
                shared.close(CloseReason::InputBacklog { limit });
                let error = Error::InputBacklog { server: shared.server.clone(), limit };
                tracing::error!(server = %shared.server, error = %error, "server reads its input too slowly");
                return Err(error);
            }
            _ => {
                shared.close(CloseReason::InputStalled { timeout: write_timeout });
                let error = Error::InputStalled { server: shared.server.clone(), timeout: write_timeout };
                tracing::error!(server = %shared.server, error = %error, "server stopped reading its input");
                return Err(error);
            }
        },
        () = shared.handles_gone.cancelled() => {
            shared.close(CloseReason::ShuttingDown);
            shared.outbox.close();
            return Ok(());
        }
    };
    // Close the server's input (the session handles keep the outbox alive).
    shared.outbox.close();
    let expected = shared.close_reason().is_some() || shared.diagnostics.is_input_close_requested();
    match ended {
        Ok(()) => {
            let status = shared
                .diagnostics
                .wait_for_exit(shared.options.exit_wait)
                .await;
            shared
                .diagnostics
                .wait_for_stderr_end(shared.options.exit_wait)
                .await;
            let reason = CloseReason::ServerClosed {
                status,
                stderr_tail: Arc::from(shared.diagnostics.stderr_tail()),
            };
            shared.close(reason.clone());
            if expected {
                tracing::debug!(server = %shared.server, "server closed its output");
                Ok(())
            } else {
                // The error goes back to whoever drives the connection, who reports it (with
                // secrets masked from the stderr tail): not logged here, which would say it twice
                // and unmasked.
                tracing::debug!(server = %shared.server, "server closed the connection unexpectedly");
                Err(reason.to_error(&shared.server))
            }
        }
        Err(source) => {
            let reason = match &source {
                mcp_transport::Error::LineTooLong { limit, .. } => {
                    CloseReason::LineTooLong { limit: *limit }
                }
                _ => CloseReason::ServerClosed {
                    status: shared.diagnostics.exit_status(),
                    stderr_tail: Arc::from(shared.diagnostics.stderr_tail()),
                },
            };
            shared.close(reason);
            let error = Error::Transport {
                server: shared.server.clone(),
                source,
            };
            tracing::error!(server = %shared.server, error = %error, "connection failed");
            Err(error)
        }
    }
}

async fn read_loop(
    shared: &Arc<Shared>,
    mut reader: FrameReader<BoxedRead>,
    events: mpsc::Sender<Event>,
    answering: mpsc::Sender<Answering>,
) -> Result<(), mcp_transport::Error> {
    while let Some(frame) = reader.next_frame().await? {
        let message = match envelope::parse(frame, |id| shared.decoder_for(id)) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(server = %shared.server, error = %error, "skipping a message that is not valid JSON-RPC");
                continue;
            }
        };
        match (message.method, message.id) {
            (Some(method), Some(id)) => {
                answer_request(shared, &answering, &method, id, message.params)
            }
            (Some(method), None) => deliver_notification(shared, &events, &method, message.params),
            (None, Some(id)) => deliver_response(shared, id, message.result, message.error),
            (None, None) => {
                tracing::warn!(server = %shared.server, "skipping a message with neither method nor id");
            }
        }
    }
    Ok(())
}

fn deliver_response(
    shared: &Shared,
    id: &RawValue,
    result: Option<ResultMember<'_>>,
    error: Option<RpcError>,
) {
    let Some(id_number) = request_id(id) else {
        tracing::warn!(server = %shared.server, id = id.get(), "skipping a response with an id this host never uses");
        return;
    };
    let reply = match (result, error) {
        (_, Some(error)) => Reply::Error(error),
        (Some(ResultMember::Decoded(value)), None) => Reply::Result(value),
        (Some(ResultMember::Undecodable(error)), None) => Reply::Undecodable(error),
        // The result came before the id: decode it now, if a request waits for it.
        (Some(ResultMember::Raw(raw)), None) => match shared.decoder_for(id) {
            Some(decode) => match envelope::decode_raw(raw, decode) {
                Ok(value) => Reply::Result(value),
                Err(error) => Reply::Undecodable(error),
            },
            None => Reply::Error(RpcError::internal("no request waits for this response")),
        },
        (None, None) => Reply::Error(RpcError::internal(
            "the response has neither result nor error",
        )),
    };
    if !shared.complete(id_number, reply) {
        if shared.was_issued(id_number) {
            // Cancelled or timed out already, or a duplicate answer.
            tracing::debug!(server = %shared.server, request_id = id_number, "ignoring a late or duplicate response");
        } else {
            tracing::warn!(server = %shared.server, request_id = id_number, "skipping a response to a request never sent");
        }
    }
}

/// The id of a response to one of this host's requests (they are all unsigned integers).
pub(crate) fn request_id(id: &RawValue) -> Option<u64> {
    // A `RawValue` is valid JSON already, so digits only is a JSON unsigned integer.
    id.get().parse().ok()
}

fn deliver_notification(
    shared: &Shared,
    events: &mpsc::Sender<Event>,
    method: &str,
    params: Option<&RawValue>,
) {
    let event = match method {
        "notifications/progress" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct ProgressParams {
                progress_token: Value,
                #[serde(flatten)]
                progress: Progress,
            }
            let parsed = params.map(|params| serde_json::from_str::<ProgressParams>(params.get()));
            match parsed {
                Some(Ok(parsed)) => {
                    let routed = parsed
                        .progress_token
                        .as_u64()
                        .is_some_and(|id| shared.report_progress(id, parsed.progress));
                    if !routed {
                        tracing::debug!(server = %shared.server, "ignoring progress for a request not in flight");
                    }
                }
                _ => {
                    tracing::warn!(server = %shared.server, "skipping a malformed progress notification")
                }
            }
            return;
        }
        "notifications/cancelled" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Cancelled {
                request_id: Value,
            }
            // Requests answered inline (`ping`, `roots/list`) are answered already.
            match params.map(|params| serde_json::from_str::<Cancelled>(params.get())) {
                Some(Ok(cancelled)) => {
                    if !shared.server_requests.cancel(&cancelled.request_id) {
                        tracing::debug!(server = %shared.server, "ignoring a cancellation of a request not being answered");
                    }
                }
                _ => {
                    tracing::warn!(server = %shared.server, "skipping a malformed cancellation")
                }
            }
            return;
        }
        "notifications/tasks/status" => {
            match params.map(|params| serde_json::from_str::<crate::protocol::Task>(params.get())) {
                Some(Ok(task)) => Event::TaskStatus(task),
                _ => {
                    tracing::warn!(server = %shared.server, "skipping a malformed task status notification");
                    return;
                }
            }
        }
        "notifications/elicitation/complete" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Complete {
                elicitation_id: String,
            }
            match params.map(|params| serde_json::from_str::<Complete>(params.get())) {
                Some(Ok(complete)) => Event::ElicitationComplete {
                    elicitation_id: complete.elicitation_id,
                },
                _ => {
                    tracing::warn!(server = %shared.server, "skipping a malformed elicitation/complete notification");
                    return;
                }
            }
        }
        "notifications/tools/list_changed" => Event::ToolsListChanged,
        "notifications/prompts/list_changed" => Event::PromptsListChanged,
        "notifications/resources/list_changed" => Event::ResourcesListChanged,
        "notifications/resources/updated" => {
            #[derive(Deserialize)]
            struct Updated {
                uri: String,
            }
            match params.map(|params| serde_json::from_str::<Updated>(params.get())) {
                Some(Ok(updated)) => Event::ResourceUpdated { uri: updated.uri },
                _ => {
                    tracing::warn!(server = %shared.server, "skipping a malformed resources/updated notification");
                    return;
                }
            }
        }
        "notifications/message" => {
            match params.map(|params| serde_json::from_str::<LoggingMessage>(params.get())) {
                Some(Ok(message)) => Event::Log(message),
                _ => {
                    tracing::warn!(server = %shared.server, "skipping a malformed log notification");
                    return;
                }
            }
        }
        other => Event::Other {
            method: other.to_owned(),
            params: params.and_then(|params| serde_json::from_str(params.get()).ok()),
        },
    };
    match events.try_send(event) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            let n_dropped = shared.n_events_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n_dropped.is_power_of_two() {
                tracing::warn!(server = %shared.server, n_dropped, "event queue full; dropping notifications");
            }
        }
    }
}

fn answer_request(
    shared: &Arc<Shared>,
    answering: &mpsc::Sender<Answering>,
    method: &str,
    id: &RawValue,
    params: Option<&RawValue>,
) {
    let outcome: Result<Value, RpcError> = match method {
        "ping" => Ok(Value::Object(serde_json::Map::new())),
        "roots/list" => match &shared.options.roots {
            Some(provider) => Ok(serde_json::json!({ "roots": provider.roots() })),
            None => Err(RpcError::method_not_found(method)),
        },
        _ => match &shared.options.client_requests {
            Some(handler) if handler.handles(method) => {
                let mode = params
                    .and_then(|params| serde_json::from_str::<Value>(params.get()).ok())
                    .filter(|_| method == "elicitation/create");
                match crate::input::check_elicitation_mode(handler.as_ref(), method, mode.as_ref())
                    .and_then(|()| start_answer(shared, handler.as_ref(), method, id, params))
                {
                    Ok(answer) => match answering.try_send(answer) {
                        Ok(()) => return,
                        // The channel holds at most as many answers as there are slots.
                        Err(_) => Err(too_many_requests()),
                    },
                    Err(refused) => Err(refused),
                }
            }
            _ => Err(RpcError::method_not_found(method)),
        },
    };
    respond(shared, method, id, outcome);
}

/// The requests of the server that the client-request handler is answering: at most
/// [`MAX_CLIENT_REQUESTS`] at once (a slot is taken before the handler is called and given back
/// when its answer's future ends or is dropped), each cancellable by the server.
pub(crate) struct ServerRequests {
    slots: Arc<Semaphore>,
    /// The cancellation of each answer in progress (and the answer's own number), by the
    /// request's id as canonical JSON text.
    running: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_number: AtomicU64,
}

impl ServerRequests {
    pub(crate) fn new() -> ServerRequests {
        ServerRequests {
            slots: Arc::new(Semaphore::new(MAX_CLIENT_REQUESTS)),
            running: Mutex::new(HashMap::new()),
            next_number: AtomicU64::new(0),
        }
    }

    /// Waits for a free slot (the caller bounds the wait); `None` if the semaphore is closed.
    pub(crate) async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Cancels the answer to request `id` (the server's `notifications/cancelled`); returns
    /// false if no answer to it is in progress.
    fn cancel(&self, id: &Value) -> bool {
        match lock(&self.running).remove(&id.to_string()) {
            Some((_, cancel)) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// Removes an answer's entry from [`ServerRequests::running`] when the answer ends, on every path.
struct RunningEntry {
    shared: Arc<Shared>,
    key: String,
    number: u64,
}

impl Drop for RunningEntry {
    fn drop(&mut self) {
        let mut running = lock(&self.shared.server_requests.running);
        // Only our own entry: a cancelled answer's id may be in use by a newer request already.
        if running
            .get(&self.key)
            .is_some_and(|(number, _)| *number == self.number)
        {
            running.remove(&self.key);
        }
    }
}

/// Calls the handler for one server request, if a slot is free, and returns the future that
/// answers it (bounded by the request timeout, ended early by the server's cancellation).
fn start_answer(
    shared: &Arc<Shared>,
    handler: &dyn crate::ClientRequestHandler,
    method: &str,
    id: &RawValue,
    params: Option<&RawValue>,
) -> Result<Answering, RpcError> {
    let key = match serde_json::from_str::<Value>(id.get()) {
        Ok(id) => id.to_string(),
        Err(_) => return Err(RpcError::new(-32600, "the request id is not valid JSON")),
    };
    let Ok(slot) = shared.server_requests.slots.clone().try_acquire_owned() else {
        return Err(too_many_requests());
    };
    let cancel = CancellationToken::new();
    let number = shared
        .server_requests
        .next_number
        .fetch_add(1, Ordering::Relaxed);
    {
        let mut running = lock(&shared.server_requests.running);
        if running.contains_key(&key) {
            return Err(RpcError::new(
                -32600,
                "a request with this id is still being answered",
            ));
        }
        running.insert(key.clone(), (number, cancel.clone()));
    }
    let entry = RunningEntry {
        shared: shared.clone(),
        key,
        number,
    };
    let params: Option<Value> = params.and_then(|params| serde_json::from_str(params.get()).ok());
    let answer = handler.handle(&shared.server, method, params);
    let timeout = shared.options.request_timeout;
    let shared = shared.clone();
    let id = id.to_owned();
    let method = method.to_owned();
    Ok(Box::pin(async move {
        let _slot = slot;
        let _entry = entry;
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            outcome = tokio::time::timeout(timeout, answer) => Some(match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err(RpcError::internal(format!(
                    "the host did not answer {method} within {} ms",
                    timeout.as_millis()
                ))),
            }),
        };
        match outcome {
            Some(outcome) => respond(&shared, &method, &id, outcome),
            // A cancelled request gets no answer.
            None => {
                tracing::debug!(server = %shared.server, method, "the server cancelled its request")
            }
        }
    }))
}

fn too_many_requests() -> RpcError {
    RpcError::new(
        -32000,
        format!("too many requests to the host at once (at most {MAX_CLIENT_REQUESTS})"),
    )
}

/// Writes the answer to a server request.
fn respond(shared: &Shared, method: &str, id: &RawValue, outcome: Result<Value, RpcError>) {
    if let Err(error) = &outcome {
        tracing::debug!(server = %shared.server, method, code = error.code, "refusing a server request");
    }
    let response = match outcome {
        Ok(result) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(error) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    };
    match serde_json::to_vec(&response) {
        Ok(line) => {
            shared.outbox.send(line);
        }
        Err(error) => {
            tracing::warn!(server = %shared.server, error = %error, "failed to encode a response");
        }
    }
}
