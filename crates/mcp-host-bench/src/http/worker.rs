//! The Rust HTTP clients (the raw floor and rmcp) as client processes: `mcp-host-bench http-client <kind> <spec-json>`.
//!
//! They measure exactly what `scripts/sdk_client.mjs` and `scripts/sdk_client.py` measure, in the
//! same order and with the same lanes: connect+initialize cycles, sequential calls, N lanes of
//! back-to-back calls on one session, then many sessions with a few lanes each. A lane is one
//! call at a time; N lanes are N calls in flight. The runtime is tokio's multi-threaded one, as
//! `#[tokio::main]` gives an application; every lane runs in the measuring task.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt as _};

use super::raw::{Connection, Endpoint};
use super::spec::{HttpClientKind, HttpClientResult, HttpClientSpec};
use crate::clients::bounded;

/// Bound on one connect + initialize, or one session's end.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `spec` with the client `kind` (raw or rmcp) on a fresh runtime.
pub(crate) fn run(kind: HttpClientKind, spec: &HttpClientSpec) -> anyhow::Result<HttpClientResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")?;
    let deadline = Duration::from_secs_f64(spec.deadline_s);
    let result = runtime.block_on(async {
        bounded("the client's run", deadline, async {
            match kind {
                HttpClientKind::RawHttp => measure(&RawDriver::new(spec)?, spec).await,
                HttpClientKind::Rmcp => measure(&RmcpDriver::new(spec), spec).await,
                other => bail!("{other} is not a Rust client"),
            }
        })
        .await
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// What a client must do; sessions and lanes are its own types.
trait Driver {
    type Session;
    type Lane;

    /// Connects and initializes a session (`notifications/initialized` sent).
    async fn open(&self) -> anyhow::Result<Self::Session>;

    /// A lane of calls on `session`.
    async fn lane(&self, session: &Self::Session) -> anyhow::Result<Self::Lane>;

    /// One echo call, checked.
    async fn call(&self, lane: &mut Self::Lane) -> anyhow::Result<()>;

    /// Ends the session (DELETE) and closes its connections.
    async fn close(&self, session: Self::Session) -> anyhow::Result<()>;
}

/// Failures of lane calls: counted, the first kept.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, error: &anyhow::Error) {
        self.count += 1;
        self.first.get_or_insert_with(|| format!("{error:#}"));
    }
}

async fn measure<D: Driver>(driver: &D, spec: &HttpClientSpec) -> anyhow::Result<HttpClientResult> {
    let mut result = HttpClientResult::default();
    let mut failures = Failures::default();
    // Connect + initialize; the first cycle warms up and is not counted.
    for cycle_idx in 0..=spec.startups {
        let started = Instant::now();
        let session = bounded("connect + initialize", STEP_TIMEOUT, driver.open()).await?;
        let elapsed = started.elapsed();
        bounded("session end", STEP_TIMEOUT, driver.close(session)).await?;
        if cycle_idx > 0 {
            result.startup_ns.push(nanos(elapsed));
        }
    }
    if spec.seq_calls > 0 {
        let session = bounded("connect + initialize", STEP_TIMEOUT, driver.open()).await?;
        let mut lane = driver.lane(&session).await?;
        for _ in 0..spec.seq_warmup {
            driver.call(&mut lane).await?;
        }
        let deadline = Instant::now() + Duration::from_secs_f64(spec.seq_max_s);
        result.seq_ns.reserve(spec.seq_calls);
        for _ in 0..spec.seq_calls {
            if Instant::now() >= deadline {
                break;
            }
            let started = Instant::now();
            driver.call(&mut lane).await?;
            result.seq_ns.push(nanos(started.elapsed()));
        }
        drop(lane);
        bounded("session end", STEP_TIMEOUT, driver.close(session)).await?;
    }
    if !spec.throughput.is_empty() {
        let session = bounded("connect + initialize", STEP_TIMEOUT, driver.open()).await?;
        let sessions = [session];
        for run in &spec.throughput {
            run_for(
                driver,
                &sessions,
                run.in_flight,
                run.warmup_s,
                &mut failures,
            )
            .await?;
            let rate = run_for(driver, &sessions, run.in_flight, run.run_s, &mut failures).await?;
            result.throughput.push((run.in_flight, rate));
        }
        let [session] = sessions;
        bounded("session end", STEP_TIMEOUT, driver.close(session)).await?;
    }
    if let Some(run) = &spec.sessions {
        let mut sessions = Vec::with_capacity(run.n_sessions);
        for _ in 0..run.n_sessions {
            sessions.push(bounded("connect + initialize", STEP_TIMEOUT, driver.open()).await?);
        }
        let n_lanes = run.n_sessions * run.in_flight;
        run_for(driver, &sessions, n_lanes, run.warmup_s, &mut failures).await?;
        result.sessions_throughput =
            Some(run_for(driver, &sessions, n_lanes, run.run_s, &mut failures).await?);
        for session in sessions {
            bounded("session end", STEP_TIMEOUT, driver.close(session)).await?;
        }
    }
    if let Some(run) = &spec.scale {
        let started = Instant::now();
        let opened = futures::future::join_all((0..run.n_sessions).map(|_| driver.open())).await;
        let sessions = opened.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        result.startup_ns.push(nanos(started.elapsed()));
        let mut lanes = Vec::with_capacity(sessions.len());
        for session in &sessions {
            lanes.push(driver.lane(session).await?);
        }
        result.seq_ns.reserve(run.seq_calls);
        for call_idx in 0..run.seq_calls {
            let lane_idx = call_idx % lanes.len().max(1);
            let lane = lanes.get_mut(lane_idx).context("no session")?;
            let started = Instant::now();
            driver.call(lane).await?;
            result.seq_ns.push(nanos(started.elapsed()));
        }
        drop(lanes);
        run_for(driver, &sessions, run.lanes, run.warmup_s, &mut failures).await?;
        let rate = run_for(driver, &sessions, run.lanes, run.run_s, &mut failures).await?;
        result.throughput.push((run.lanes, rate));
        for session in sessions {
            bounded("session end", STEP_TIMEOUT, driver.close(session)).await?;
        }
    }
    result.failures = failures.count;
    result.first_failure = failures.first;
    Ok(result)
}

/// `n_lanes` lanes (lane i on session i % n) calling back to back until `seconds` have passed;
/// returns completed calls per second. A failed call is counted and its lane starts afresh.
async fn run_for<D: Driver>(
    driver: &D,
    sessions: &[D::Session],
    n_lanes: usize,
    seconds: f64,
    failures: &mut Failures,
) -> anyhow::Result<f64> {
    let mut lanes = Vec::with_capacity(n_lanes);
    for lane_idx in 0..n_lanes {
        let session = &sessions[lane_idx % sessions.len()];
        lanes.push((session, driver.lane(session).await?));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let outcomes =
        futures::future::join_all(lanes.into_iter().map(|(session, mut lane)| async move {
            let mut completed = 0u64;
            let mut lane_failures = Failures::default();
            while Instant::now() < deadline {
                match driver.call(&mut lane).await {
                    Ok(()) => completed += 1,
                    Err(error) => {
                        lane_failures.add(&error);
                        match driver.lane(session).await {
                            Ok(fresh) => lane = fresh,
                            Err(error) => {
                                lane_failures.add(&error);
                                break;
                            }
                        }
                    }
                }
            }
            (completed, lane_failures)
        }))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut completed = 0;
    for (lane_completed, lane_failures) in outcomes {
        completed += lane_completed;
        failures.count += lane_failures.count;
        if failures.first.is_none() {
            failures.first = lane_failures.first;
        }
    }
    Ok(completed as f64 / elapsed.max(1e-9))
}

/// The floor: hand-written HTTP/1.1, one socket per lane.
struct RawDriver {
    endpoint: Endpoint,
    /// The `tools/call` body without its id: `…"id":` goes before, this after.
    call_tail: Vec<u8>,
    /// Lanes made so far: each lane's request ids start at its number × 2^32, so that lanes of
    /// one session never reuse an id.
    n_lanes: std::cell::Cell<u64>,
}

/// A raw session: its id and the connection that initialized it.
struct RawSession {
    id: Option<String>,
    connection: Connection,
}

/// A raw lane: its own connection, the session's id, the next request id.
struct RawLane {
    connection: Connection,
    session_id: Option<String>,
    next_id: u64,
    message: Vec<u8>,
}

impl RawDriver {
    fn new(spec: &HttpClientSpec) -> anyhow::Result<RawDriver> {
        let params = serde_json::json!({"name": spec.tool, "arguments": {"text": spec.text}});
        let call_tail = format!(r#","method":"tools/call","params":{params}}}"#).into_bytes();
        Ok(RawDriver {
            endpoint: Endpoint::parse(&spec.url)?,
            call_tail,
            n_lanes: std::cell::Cell::new(0),
        })
    }
}

impl Driver for RawDriver {
    type Session = RawSession;
    type Lane = RawLane;

    async fn open(&self) -> anyhow::Result<RawSession> {
        let (connection, id) = super::raw::open_session(&self.endpoint).await?;
        Ok(RawSession { id, connection })
    }

    async fn lane(&self, session: &RawSession) -> anyhow::Result<RawLane> {
        let lane_number = self.n_lanes.get() + 1;
        self.n_lanes.set(lane_number);
        Ok(RawLane {
            connection: Connection::connect(&self.endpoint).await?,
            session_id: session.id.clone(),
            next_id: lane_number << 32,
            message: Vec::with_capacity(256),
        })
    }

    async fn call(&self, lane: &mut RawLane) -> anyhow::Result<()> {
        lane.message.clear();
        lane.message.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        lane.message
            .extend_from_slice(lane.next_id.to_string().as_bytes());
        lane.message.extend_from_slice(&self.call_tail);
        lane.next_id += 1;
        lane.connection
            .post_request(lane.session_id.as_deref(), &lane.message)
            .await?;
        Ok(())
    }

    async fn close(&self, mut session: RawSession) -> anyhow::Result<()> {
        let Some(id) = session.id.as_deref() else {
            return Ok(());
        };
        // The session's first connection has been idle since `initialize`, and servers close idle
        // connections (uvicorn after 5 s): as any HTTP client does with an idempotent request, the
        // DELETE goes again on a new connection when the kept one turns out to be closed.
        let answer = match session.connection.request("DELETE", Some(id), b"").await {
            Ok(answer) => answer,
            Err(_) => {
                let mut connection = Connection::connect(&self.endpoint).await?;
                connection.request("DELETE", Some(id), b"").await?
            }
        };
        if !matches!(answer.status, 200 | 202 | 204 | 404 | 405) {
            bail!("HTTP {} for DELETE", answer.status);
        }
        Ok(())
    }
}

/// rmcp's Streamable HTTP client, as its documentation shows it: `from_uri`, which makes a
/// reqwest client (pooled connections, `TCP_NODELAY`) for each session.
struct RmcpDriver {
    url: String,
    tool: Cow<'static, str>,
    text: String,
}

impl RmcpDriver {
    fn new(spec: &HttpClientSpec) -> RmcpDriver {
        RmcpDriver {
            url: spec.url.clone(),
            tool: Cow::Owned(spec.tool.clone()),
            text: spec.text.clone(),
        }
    }
}

impl Driver for RmcpDriver {
    type Session = RunningService<RoleClient, ()>;
    type Lane = rmcp::Peer<RoleClient>;

    async fn open(&self) -> anyhow::Result<Self::Session> {
        let transport = StreamableHttpClientTransport::from_uri(self.url.as_str());
        Ok(().serve(transport).await?)
    }

    async fn lane(&self, session: &Self::Session) -> anyhow::Result<Self::Lane> {
        Ok(session.peer().clone())
    }

    async fn call(&self, lane: &mut Self::Lane) -> anyhow::Result<()> {
        let mut arguments = serde_json::Map::new();
        arguments.insert(
            "text".to_owned(),
            serde_json::Value::String(self.text.clone()),
        );
        let params = CallToolRequestParams::new(self.tool.clone()).with_arguments(arguments);
        let result = lane.call_tool(params).await?;
        if result.is_error == Some(true) {
            bail!("the tool answered an error");
        }
        Ok(())
    }

    async fn close(&self, session: Self::Session) -> anyhow::Result<()> {
        session.cancel().await?;
        Ok(())
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
