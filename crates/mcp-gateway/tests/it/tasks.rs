//! Issue #18 through the gateway: tool calls as tasks (2025-11-25) and URL-mode elicitation,
//! over Streamable HTTP with our own client session (mcp-http) on each end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_gateway::{ClientRelay, Gateway, HttpListener, HttpOptions};
use mcp_host::protocol::TaskStatus;
use mcp_host::{HostOptions, McpHost};
use mcp_host_foundation::{ClientConfig, SecurityManager};
use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, unique_marker, FakeConfig,
};
use mcp_session::{
    ClientRequestHandler, Event, HandlerFuture, RequestOptions, ServerName, Session, SessionOptions,
};
use mcp_transport::TransportOptions;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Served, PROMPTLY};

/// A fake server `id`, with tasks or without.
fn fake(id: &str, marker: &str, tasks: bool) -> ClientConfig {
    let fake = FakeConfig {
        tasks,
        ..FakeConfig::default()
    };
    ClientConfig {
        args: fake_server_args(&fake, marker),
        ..ClientConfig::new(id, fake_server_path().to_string_lossy())
    }
}

/// Serves `t` (a fake server with tasks) and `p` (one without) through a gateway whose host
/// relays the servers' requests to its clients, with at most `max_tasks` tasks per session.
async fn serve(marker: &str, max_tasks: usize) -> Served {
    let relay = ClientRelay::new();
    let options = HostOptions {
        client_requests: Some(relay.clone()),
        ..HostOptions::default()
    };
    let servers = vec![fake("t", marker, true), fake("p", marker, false)];
    let host = Arc::new(McpHost::with_options(servers, SecurityManager::new(), options).unwrap());
    host.initialize().await.unwrap();
    let listener = HttpListener::bind(HttpOptions::new("127.0.0.1:0"))
        .await
        .unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let gateway = Gateway::builder(host.clone())
        .relay(relay)
        .max_tasks_per_session(max_tasks)
        .build();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let stopped = stop.clone();
    tasks.spawn(async move {
        gateway
            .serve_http(listener, stopped.cancelled_owned())
            .await
            .unwrap();
    });
    Served {
        url,
        host,
        stop,
        tasks,
        client: reqwest::Client::new(),
    }
}

/// One client of the gateway: a session over Streamable HTTP.
struct Client {
    session: Session,
    events: mpsc::Receiver<Event>,
    connection: mcp_http::HttpConnection,
    tracker: TaskTracker,
}

impl Client {
    async fn connect(url: &str, handler: Option<Arc<dyn ClientRequestHandler>>) -> Client {
        let tracker = TaskTracker::new();
        let (connection, transport) = mcp_http::connect(
            ServerName::new("gateway"),
            mcp_http::HttpOptions::new(url),
            &TransportOptions::default(),
            &tracker,
        )
        .unwrap();
        let options = SessionOptions {
            client_requests: handler,
            ..SessionOptions::default()
        };
        let (session, driver, _) =
            tokio::time::timeout(PROMPTLY, mcp_session::handshake(transport, options))
                .await
                .unwrap()
                .unwrap();
        tracker.spawn(driver);
        let events = session.take_events().unwrap();
        // A first request, so that the session's GET stream is open before anything happens.
        let _: Value = session
            .request("tools/list", None, &RequestOptions::default())
            .await
            .unwrap();
        Client {
            session,
            events,
            connection,
            tracker,
        }
    }

    /// The events that came before the log message a `logging/setLevel` makes every server
    /// send to every client: what this client was sent until now.
    async fn events_so_far(&mut self) -> Vec<Event> {
        let _: Value = self
            .session
            .request(
                "logging/setLevel",
                Some(json!({"level": "debug"})),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        tokio::time::timeout(PROMPTLY, async {
            while let Some(event) = self.events.recv().await {
                if matches!(event, Event::Log(_)) {
                    return;
                }
                seen.push(event);
            }
        })
        .await
        .expect("no log message came");
        seen
    }

    /// Waits for the first event `wanted` picks.
    async fn wait_for(&mut self, wanted: impl Fn(&Event) -> bool) -> Event {
        tokio::time::timeout(PROMPTLY, async {
            while let Some(event) = self.events.recv().await {
                if wanted(&event) {
                    return event;
                }
            }
            panic!("the session ended");
        })
        .await
        .expect("the event did not come")
    }

    /// Ends the HTTP session (DELETE) and the session's tasks.
    async fn close(self) {
        self.connection.close(Duration::from_secs(5)).await;
        drop(self.session);
        self.tracker.close();
        tokio::time::timeout(PROMPTLY, self.tracker.wait())
            .await
            .unwrap();
    }
}

fn arguments(value: Value) -> Option<Map<String, Value>> {
    value.as_object().cloned()
}

/// A task-augmented `tools/call`, answered as it came.
async fn call_as_task(
    client: &Client,
    tool: &str,
    args: Value,
) -> Result<Value, mcp_session::Error> {
    client
        .session
        .request(
            "tools/call",
            Some(json!({"name": tool, "arguments": args, "task": {"ttl": 60_000}})),
            &RequestOptions::default(),
        )
        .await
}

fn rpc_code(error: &mcp_session::Error) -> Option<i64> {
    match error {
        mcp_session::Error::Rpc { code, .. } => Some(*code),
        _ => None,
    }
}

/// A client calls a tool as a task: it gets the task by the gateway's id, hears it complete,
/// polls it and fetches its result; it lists its own tasks, and another session sees and hears
/// none of them. A server without tasks answers a task-augmented call with its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_through_the_http_gateway_is_polled_to_its_result() {
    let marker = unique_marker();
    let served = serve(&marker, 8).await;
    let mut owner = Client::connect(&served.url, None).await;
    let mut other = Client::connect(&served.url, None).await;
    assert!(
        owner.session.supports_tool_tasks(),
        "the gateway must declare tool tasks"
    );

    let task = owner
        .session
        .call_tool_as_task(
            "t__slow",
            arguments(json!({"ms": 200})),
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let id = task.id().to_owned();
    assert!(id.starts_with("t:"), "{id}");
    let heard = owner
        .wait_for(|event| matches!(event, Event::TaskStatus(task) if task.task_id == id && task.status.is_terminal()))
        .await;
    let Event::TaskStatus(heard) = heard else {
        unreachable!()
    };
    assert_eq!(heard.status, TaskStatus::Completed);
    let status = owner.session.get_task(&id).await.unwrap();
    assert_eq!(
        (status.task_id.as_str(), status.status),
        (id.as_str(), TaskStatus::Completed)
    );
    let result = task.result().await.unwrap();
    assert_eq!(result.text(), "slept 200 ms");
    let related = &result.extra["_meta"]["io.modelcontextprotocol/related-task"]["taskId"];
    assert_eq!(related, &json!(id));
    let listed = owner.session.list_tasks(None).await.unwrap();
    let ids: Vec<&str> = listed
        .tasks
        .iter()
        .map(|task| task.task_id.as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);

    // The other session: no task listed, none to poll, no status heard.
    assert!(other
        .session
        .list_tasks(None)
        .await
        .unwrap()
        .tasks
        .is_empty());
    let refused = other.session.get_task(&id).await.unwrap_err();
    assert_eq!(rpc_code(&refused), Some(-32602), "{refused}");
    let heard = other.events_so_far().await;
    assert!(
        !heard
            .iter()
            .any(|event| matches!(event, Event::TaskStatus(_))),
        "{heard:?}"
    );

    // A server without tasks: the call is made normally and its result is the answer.
    let plain = call_as_task(&owner, "p__echo", json!({"text": "plain"}))
        .await
        .unwrap();
    assert!(plain.get("task").is_none(), "{plain}");
    assert_eq!(plain["content"][0]["text"], "plain", "{plain}");

    owner.close().await;
    other.close().await;
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// A session has at most its limit of tasks that have not ended: the next is refused with an
/// error that says so, a cancelled task makes room, and the session's end cancels the rest at
/// their server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_limited_per_session_cancelled_and_ended_with_it() {
    let marker = unique_marker();
    let served = serve(&marker, 2).await;
    let client = Client::connect(&served.url, None).await;
    let long = json!({"ms": 60_000});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created = call_as_task(&client, "t__slow", long.clone())
            .await
            .unwrap();
        assert_eq!(created["task"]["status"], "working", "{created}");
        ids.push(created["task"]["taskId"].as_str().unwrap().to_owned());
    }
    let refused = call_as_task(&client, "t__slow", long.clone())
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&refused), Some(-32000), "{refused}");
    assert!(
        refused.to_string().contains("2 tasks that have not ended"),
        "{refused}"
    );

    let cancelled = client.session.cancel_task(&ids[0]).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let created = call_as_task(&client, "t__slow", long.clone())
        .await
        .unwrap();
    ids.push(created["task"]["taskId"].as_str().unwrap().to_owned());

    // The session ends: its tasks are cancelled at the server.
    client.close().await;
    let server = served
        .host
        .clients()
        .into_iter()
        .find(|id| id.server_name().as_str() == "t")
        .and_then(|id| served.host.session(&id))
        .unwrap()
        .session;
    let all_cancelled = tokio::time::timeout(PROMPTLY, async {
        loop {
            let tasks = server.list_tasks(None).await.unwrap().tasks;
            if tasks.len() == 3
                && tasks
                    .iter()
                    .all(|task| task.status == TaskStatus::Cancelled)
            {
                return;
            }
            // The session's end is handled after the DELETE is answered.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(all_cancelled.is_ok(), "the ended session's tasks still run");
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// A client that answers elicitations: it declares `capabilities` and accepts every request,
/// keeping its params.
struct Elicitor {
    capabilities: Value,
    asked: Arc<Mutex<Vec<Value>>>,
}

impl Elicitor {
    fn new(capabilities: Value) -> (Arc<Elicitor>, Arc<Mutex<Vec<Value>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let elicitor = Elicitor {
            capabilities,
            asked: asked.clone(),
        };
        (Arc::new(elicitor), asked)
    }
}

impl ClientRequestHandler for Elicitor {
    fn capabilities(&self) -> Map<String, Value> {
        self.capabilities.as_object().cloned().unwrap_or_default()
    }

    fn handles(&self, method: &str) -> bool {
        method == "elicitation/create"
    }

    fn handle(&self, _server: &ServerName, _method: &str, params: Option<Value>) -> HandlerFuture {
        self.asked
            .lock()
            .unwrap()
            .push(params.unwrap_or(Value::Null));
        Box::pin(async { Ok(json!({"action": "accept"})) })
    }
}

fn url_elicitation(id: &str) -> Value {
    json!({"method": "elicitation/create", "params": {
        "mode": "url", "elicitationId": id, "message": "Connect your account.",
        "url": "https://auth.example.com/connect",
    }})
}

/// What the fake's `ask_client` got back from its client: the JSON-RPC response.
fn answer_of(result: &mcp_session::protocol::CallToolResult) -> Value {
    serde_json::from_str(&result.text()).unwrap_or_else(|_| panic!("{}", result.text()))
}

/// A server's URL elicitation reaches the client that declared `elicitation.url` (not a
/// form-only client, even one that connected later), its answer goes back, and the server's
/// completion reaches that client only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_elicitations_reach_a_url_client_and_complete_there() {
    let marker = unique_marker();
    let served = serve(&marker, 8).await;
    let (url_handler, url_asked) = Elicitor::new(json!({"elicitation": {"url": {}}}));
    let mut url_client = Client::connect(&served.url, Some(url_handler)).await;
    let (form_handler, form_asked) = Elicitor::new(json!({"elicitation": {}}));
    let mut form_client = Client::connect(&served.url, Some(form_handler)).await;

    let result = url_client
        .session
        .call_tool(
            "t__ask_client",
            arguments(url_elicitation("e-1")),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        answer_of(&result)["result"]["action"],
        "accept",
        "{}",
        result.text()
    );
    let asked = url_asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["url"], "https://auth.example.com/connect");
    assert!(form_asked.lock().unwrap().is_empty());
    url_client
        .wait_for(|event| {
            matches!(event, Event::ElicitationComplete { elicitation_id } if elicitation_id == "e-1")
        })
        .await;
    let heard = form_client.events_so_far().await;
    assert!(
        !heard
            .iter()
            .any(|event| matches!(event, Event::ElicitationComplete { .. })),
        "{heard:?}"
    );
    // A form goes to a client that takes forms.
    let form = json!({"method": "elicitation/create", "params": {
        "message": "Your name?", "requestedSchema": {"type": "object"},
    }});
    let result = url_client
        .session
        .call_tool("t__ask_client", arguments(form), &RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(
        answer_of(&result)["result"]["action"],
        "accept",
        "{}",
        result.text()
    );
    assert_eq!(form_asked.lock().unwrap().len(), 1);
    assert_eq!(url_asked.lock().unwrap().len(), 1);

    url_client.close().await;
    form_client.close().await;
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// With only a form-only client connected, a server's URL elicitation is refused with -32602
/// naming the capability missing, and the client is not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_elicitation_without_a_url_client_is_refused_cleanly() {
    let marker = unique_marker();
    let served = serve(&marker, 8).await;
    let (form_handler, form_asked) = Elicitor::new(json!({"elicitation": {"form": {}}}));
    let form_client = Client::connect(&served.url, Some(form_handler)).await;
    let result = form_client
        .session
        .call_tool(
            "t__ask_client",
            arguments(url_elicitation("e-2")),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let answer = answer_of(&result);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("elicitation.url"), "{message}");
    assert!(form_asked.lock().unwrap().is_empty());
    form_client.close().await;
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// Over a single connection (as `serve_stdio` serves one): a task runs and is fetched, and
/// when the client goes away (end of input) its running task is cancelled at its server
/// before `serve_connection` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_connection_runs_tasks_and_ends_them_with_it() {
    let marker = unique_marker();
    let served = serve(&marker, 8).await;
    let gateway = Gateway::builder(served.host.clone()).build();
    let options = TransportOptions::default();
    let (client_write, gateway_read) = tokio::io::duplex(64 * 1024);
    let (gateway_write, client_read) = tokio::io::duplex(64 * 1024);
    let to_client = mcp_transport::Transport::from_io(
        ServerName::new("client"),
        gateway_read,
        gateway_write,
        &options,
    );
    let to_gateway = mcp_transport::Transport::from_io(
        ServerName::new("gateway"),
        client_read,
        client_write,
        &options,
    );
    let mut serving = JoinSet::new();
    serving.spawn(async move {
        gateway
            .serve_connection(to_client, std::future::pending())
            .await
            .unwrap()
    });
    let (session, driver, init) = tokio::time::timeout(
        PROMPTLY,
        mcp_session::handshake(to_gateway, SessionOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(init.capabilities.tool_tasks(), "{:?}", init.capabilities);
    let mut driving = JoinSet::new();
    driving.spawn(driver);

    let done = session
        .call_tool_as_task(
            "t__echo",
            arguments(json!({"text": "hi"})),
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(done.result().await.unwrap().text(), "hi");
    let running = session
        .call_tool_as_task(
            "t__slow",
            arguments(json!({"ms": 60_000})),
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(running.created().status, TaskStatus::Working);
    let listed = session.list_tasks(None).await.unwrap().tasks;
    assert_eq!(listed.len(), 2, "{listed:?}");

    // The client goes away: end of input for the gateway.
    drop((done, running, session));
    driving.abort_all();
    while driving.join_next().await.is_some() {}
    let stop = tokio::time::timeout(PROMPTLY, serving.join_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stop, mcp_gateway::Stop::EndOfInput);
    let server = served
        .host
        .clients()
        .into_iter()
        .find(|id| id.server_name().as_str() == "t")
        .and_then(|id| served.host.session(&id))
        .unwrap()
        .session;
    let statuses: Vec<TaskStatus> = server
        .list_tasks(None)
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|task| task.status)
        .collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.contains(&TaskStatus::Completed), "{statuses:?}");
    assert!(statuses.contains(&TaskStatus::Cancelled), "{statuses:?}");
    served.finish().await;
    assert_no_process_left(&marker).await;
}

/// A server's request about a task (its `_meta` names the task, as when a task needs input)
/// goes to the client whose task it is, even with a client that connected later, and names
/// the task by the gateway's id; a request about a task no client has goes to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_about_a_task_goes_to_the_tasks_client() {
    let marker = unique_marker();
    let served = serve(&marker, 8).await;
    let capabilities = json!({"elicitation": {"form": {}, "url": {}}});
    let (owner_handler, owner_asked) = Elicitor::new(capabilities.clone());
    let owner = Client::connect(&served.url, Some(owner_handler)).await;
    let (later_handler, later_asked) = Elicitor::new(capabilities);
    let later = Client::connect(&served.url, Some(later_handler)).await;
    // The fake numbers its tasks from 1: this is the task the call creates.
    let ask = json!({"method": "elicitation/create", "params": {
        "message": "Proceed?", "requestedSchema": {"type": "object"},
        "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "fake-server-task-1"}},
    }});
    let task = owner
        .session
        .call_tool_as_task(
            "t__ask_client",
            arguments(ask),
            None,
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(task.id(), "t:fake-server-task-1");
    let result = task.result().await.unwrap();
    assert_eq!(
        answer_of(&result)["result"]["action"],
        "accept",
        "{}",
        result.text()
    );
    let asked = owner_asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        "t:fake-server-task-1"
    );
    assert!(later_asked.lock().unwrap().is_empty());
    // About a task no connected client has: refused (after a bounded wait), nobody asked.
    let stray = json!({"method": "elicitation/create", "params": {
        "message": "Proceed?", "requestedSchema": {"type": "object"},
        "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "fake-server-task-99"}},
    }});
    let result = later
        .session
        .call_tool(
            "t__ask_client",
            arguments(stray),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let answer = answer_of(&result);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(later_asked.lock().unwrap().is_empty());
    assert_eq!(owner_asked.lock().unwrap().len(), 1);
    drop(task);
    owner.close().await;
    later.close().await;
    served.finish().await;
    assert_no_process_left(&marker).await;
}
