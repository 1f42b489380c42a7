//! Property tests of JSON-RPC decoding through the real session driver, against a scripted peer.
//!
//! The test plays the server on the far end of an in-memory transport: it reads the client's lines
//! with a `FrameReader` and writes raw bytes, in arbitrary chunks. Time is paused, so a hang shows
//! up at once as a timeout instead of a stuck test.

use std::time::Duration;

use mcp_session::{Error, RequestOptions, Session, SessionOptions};
use mcp_transport::{FrameReader, PeerIo, ServerName, TransportOptions};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Bound on one whole case, in paused (virtual) time: past every timeout of the session.
const BOUND: Duration = Duration::from_secs(3600);

/// Lines that look like JSON-RPC but answer no request the client has in flight: unknown,
/// malformed or non-numeric ids, notifications (well-formed or not), server requests, batches,
/// truncated and non-JSON lines.
const JUNK: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1000,"result":{}}"#,
    r#"{"jsonrpc":"2.0","id":"2","result":{}}"#,
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    r#"{"jsonrpc":"2.0","id":-2,"result":1}"#,
    r#"{"jsonrpc":"2.0","id":2.5,"result":1}"#,
    r#"{"jsonrpc":"2.0","id":18446744073709551615,"result":1}"#,
    r#"{"jsonrpc":"2.0","id":184467440737095516150,"result":1}"#,
    r#"{"jsonrpc":"2.0","id":{"n":2},"result":1}"#,
    r#"{"jsonrpc":"2.0","id":1001,"error":{"code":"x"}}"#,
    r#"{"jsonrpc":"2.0","id":1002}"#,
    r#"{"id":1003,"result":{},"result":{}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/message","params":"not an object"}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":2,"progress":1}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#,
    r#"{"jsonrpc":"2.0","method":"x/unknown","params":[1,2]}"#,
    r#"{"jsonrpc":"2.0","method":"ping","id":"server-1"}"#,
    r#"{"jsonrpc":"2.0","method":"roots/list","id":7}"#,
    r#"{"jsonrpc":"2.0","method":"sampling/createMessage","id":8,"params":{}}"#,
    r#"{"jsonrpc":"2.0","method":5,"id":9}"#,
    r#"{"jsonrpc":"2.0"}"#,
    r#"{}"#,
    r#"[]"#,
    r#"[{"jsonrpc":"2.0","id":1004,"result":{}}]"#,
    r#"{"jsonrpc":"2.0","id":1005,"result":{"#,
    r#"{"a":1}}"#,
    r#"{"id":10"#,
    "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1006,\"result\":{}}",
    "Content-Length: 42",
    "null",
    "\"just a string\"",
];

/// A fixed number of cases per property, so CI runs the same amount of work every time; nothing is
/// written next to the sources on failure (the minimal input is printed instead).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The server's end of the pipe.
struct Peer {
    reader: FrameReader<DuplexStream>,
    write: DuplexStream,
    /// Sizes of the chunks the server writes in (cycled).
    sizes: Vec<usize>,
    n_chunks: usize,
}

impl Peer {
    /// The next request with this method from the client (other lines are skipped), as its id
    /// and params; `None` once the client is gone.
    async fn request(&mut self, method: &str) -> Option<(Value, Value)> {
        loop {
            let frame = self.reader.next_frame().await.ok()??;
            let message: Value = serde_json::from_slice(frame).unwrap();
            if message["method"] == method {
                let id = message.get("id")?.clone();
                return Some((id, message["params"].clone()));
            }
        }
    }

    /// Writes `bytes` in chunks, yielding between them; `false` once the client is gone.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        let mut rest = bytes;
        while !rest.is_empty() {
            let size = self.sizes[self.n_chunks % self.sizes.len()].min(rest.len());
            self.n_chunks += 1;
            if self.write.write_all(&rest[..size]).await.is_err() {
                return false;
            }
            rest = &rest[size..];
            tokio::task::yield_now().await;
        }
        true
    }
}

/// A session over an in-memory pipe, its connection spawned, and the server's end of the pipe.
fn start(max_line_len: usize, sizes: Vec<usize>) -> (Session, JoinHandle<Result<(), Error>>, Peer) {
    let options = TransportOptions {
        max_line_len,
        ..TransportOptions::default()
    };
    let (transport, PeerIo { read, write }) =
        mcp_transport::in_memory(ServerName::new("prop"), &options);
    let (session, connection) = mcp_session::connect(transport, SessionOptions::default());
    let peer = Peer {
        reader: FrameReader::new(ServerName::new("client"), read, 1 << 20),
        write,
        sizes,
        n_chunks: 0,
    };
    (session, TaskTracker::new().spawn(connection), peer)
}

fn line(message: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap();
    line.push(b'\n');
    line
}

fn initialize_response(id: &Value) -> Vec<u8> {
    line(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "serverInfo": { "name": "prop", "version": "0" },
        },
    }))
}

/// [`start`], then the handshake with no noise.
async fn initialized(sizes: Vec<usize>) -> (Session, JoinHandle<Result<(), Error>>, Peer) {
    let (session, connection, mut peer) = start(1 << 20, sizes);
    let server = async {
        let (id, _) = peer.request("initialize").await.unwrap();
        assert!(peer.send(&initialize_response(&id)).await);
        // The client's `notifications/initialized` is skipped by the next `request`.
    };
    let (init, ()) = tokio::join!(session.initialize(), server);
    init.unwrap();
    (session, connection, peer)
}

/// Drops the server's end and checks how the connection ends.
async fn finish(
    session: Session,
    connection: JoinHandle<Result<(), Error>>,
    peer: Peer,
) -> Result<(), TestCaseError> {
    drop(peer);
    let ended = connection.await.unwrap();
    prop_assert!(
        matches!(ended, Err(Error::ServerClosed { .. })),
        "{ended:?}"
    );
    prop_assert_eq!(session.n_pending(), 0);
    Ok(())
}

fn is_line_too_long(err: &Error, max: usize) -> bool {
    matches!(
        err,
        Error::Transport {
            source: mcp_transport::Error::LineTooLong { limit, .. },
            ..
        } if *limit == max
    )
}

/// Bytes that are mostly framing-relevant; newlines are rare, so that some lines are long.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => any::<u8>(),
        3 => proptest::sample::select(b"{}[]\r \t\"a1:,".to_vec()),
    ]
}

/// Chunk sizes of the server's writes: mostly tiny, sometimes large.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![3 => 1..=16usize, 1 => 1..=4096usize], 1..8)
}

/// One noise line (its terminator included): arbitrary bytes, or a junk line from [`JUNK`].
fn noise_line() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        1 => vec(byte(), 0..600),
        2 => proptest::sample::select(JUNK).prop_map(|junk| junk.as_bytes().to_vec()),
    ];
    (body, any::<bool>()).prop_map(|(mut bytes, crlf)| {
        bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        bytes
    })
}

/// Where the first over-long line of the server's noise falls, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FirstTooLong {
    /// Before the `initialize` response: the handshake fails.
    BeforeInitialized,
    /// Before the response to the request: the request fails.
    BeforeResponse,
    /// After the response: the request succeeds, the connection fails.
    AfterResponse,
    /// Nowhere: the connection ends when the server closes its output.
    Nowhere,
}

/// The outcomes the four noise blobs allow (in the order they are sent: before the initialize
/// request, before its response, before the request's response, after it).
fn allowed_outcomes(blobs: &[Vec<u8>; 4], max: usize) -> Vec<FirstTooLong> {
    let phase = [
        FirstTooLong::BeforeInitialized,
        FirstTooLong::BeforeInitialized,
        FirstTooLong::BeforeResponse,
        FirstTooLong::AfterResponse,
    ];
    let mut allowed = Vec::new();
    for (blob, phase) in blobs.iter().zip(phase) {
        let mut segments: Vec<&[u8]> = blob.split(|&b| b == b'\n').collect();
        // What follows the last newline is an unterminated last line (or nothing).
        let unterminated = segments.pop().unwrap_or_default();
        for segment in segments {
            let trimmed = segment.strip_suffix(b"\r").unwrap_or(segment);
            if trimmed.len() > max {
                allowed.push(phase);
                return allowed;
            }
        }
        if unterminated.len() > max {
            allowed.push(phase);
            return allowed;
        }
    }
    allowed.push(FirstTooLong::Nowhere);
    allowed
}

proptest! {
    #![proptest_config(config(128))]

    /// Arbitrary bytes and junk JSON-RPC lines before and after the `initialize` response and
    /// around a request's response, written in arbitrary chunks: no panic, no hang, and the
    /// response is still delivered, unless a line was too long, in which case the pending request
    /// (or the connection, when nothing is pending) ends with the transport error.
    #[test]
    fn noise_never_breaks_the_session(
        max in 192..=512usize,
        blobs in proptest::array::uniform4(vec(noise_line(), 0..6)),
        last_terminated in any::<bool>(),
        sizes in sizes(),
    ) {
        let mut blobs = blobs.map(|lines| lines.concat());
        if !last_terminated && blobs[3].last() == Some(&b'\n') {
            blobs[3].pop();
        }
        let allowed = allowed_outcomes(&blobs, max);
        let outcome = runtime().block_on(async {
            tokio::time::timeout(BOUND, noise_case(max, blobs, sizes)).await.expect("hung")
        })?;
        prop_assert!(allowed.contains(&outcome), "{outcome:?} not in {allowed:?}");
    }

    /// Responses to concurrent requests in a shuffled order, some repeated (the first answer
    /// wins), with junk responses, notifications and server requests in between: each request
    /// gets exactly its own result or error.
    #[test]
    fn responses_reach_their_own_requests(
        errors in vec(any::<bool>(), 1..=8),
        order in vec(any::<u32>(), 8),
        repeats in vec((any::<Index>(), any::<Index>()), 0..4),
        extras in vec((proptest::sample::select(JUNK), any::<Index>()), 0..8),
        sizes in sizes(),
    ) {
        runtime().block_on(async {
            tokio::time::timeout(BOUND, interleaving_case(errors, order, repeats, extras, sizes))
                .await
                .expect("hung")
        })?;
    }

    /// Arbitrary JSON values as results come out of `request::<Value>` as they went in, and out
    /// of `request_raw` as the very text that was sent, whatever the order of the envelope's
    /// fields.
    #[test]
    fn results_round_trip(
        value in json_value(),
        result_first in any::<bool>(),
        sizes in sizes(),
    ) {
        runtime().block_on(async {
            tokio::time::timeout(BOUND, round_trip_case(value, result_first, sizes))
                .await
                .expect("hung")
        })?;
    }
}

async fn noise_case(
    max: usize,
    blobs: [Vec<u8>; 4],
    sizes: Vec<usize>,
) -> Result<FirstTooLong, TestCaseError> {
    let (session, connection, mut peer) = start(max, sizes);
    let response = |id: &Value| line(&json!({"jsonrpc": "2.0", "id": id, "result": {"n": 1}}));
    let server = async move {
        peer.send(&blobs[0]).await;
        let Some((id, _)) = peer.request("initialize").await else {
            return;
        };
        let init = initialize_response(&id);
        assert!(init.len() <= max);
        peer.send(&[&blobs[1][..], &init].concat()).await;
        let Some((id, _)) = peer.request("test/echo").await else {
            return;
        };
        peer.send(&[&blobs[2][..], &response(&id)].concat()).await;
        peer.send(&blobs[3]).await;
        // Dropping the peer closes the server's output.
    };
    let client = async {
        let init = session.initialize().await;
        let request = match init {
            Ok(_) => Some(
                session
                    .request::<Value>("test/echo", None, &RequestOptions::default())
                    .await,
            ),
            Err(err) => {
                prop_assert!(is_line_too_long(&err, max), "initialize: {err:?}");
                None
            }
        };
        Ok(request)
    };
    let ((), request) = tokio::join!(server, client);
    let ended = connection.await.unwrap();
    prop_assert_eq!(session.n_pending(), 0);
    let outcome = match request? {
        None => FirstTooLong::BeforeInitialized,
        Some(Err(err)) => {
            prop_assert!(is_line_too_long(&err, max), "request: {err:?}");
            FirstTooLong::BeforeResponse
        }
        Some(Ok(result)) => {
            prop_assert_eq!(result, json!({"n": 1}));
            match ended {
                Err(Error::ServerClosed { .. }) => FirstTooLong::Nowhere,
                Err(ref err) if is_line_too_long(err, max) => FirstTooLong::AfterResponse,
                other => {
                    return Err(TestCaseError::fail(format!(
                        "connection ended with {other:?}"
                    )))
                }
            }
        }
    };
    if outcome != FirstTooLong::Nowhere {
        prop_assert!(
            matches!(&ended, Err(err) if is_line_too_long(err, max)),
            "{ended:?}"
        );
    }
    Ok(outcome)
}

/// A line the server sends, with the request and variant it answers, if any.
type Scheduled = (Option<(usize, usize)>, Vec<u8>);

async fn interleaving_case(
    errors: Vec<bool>,
    order: Vec<u32>,
    repeats: Vec<(Index, Index)>,
    extras: Vec<(&'static str, Index)>,
    sizes: Vec<usize>,
) -> Result<(), TestCaseError> {
    let n = errors.len();
    let (session, connection, mut peer) = initialized(sizes).await;
    let tracker = TaskTracker::new();
    let calls: Vec<_> = (0..n)
        .map(|k| {
            let session = session.clone();
            tracker.spawn(async move {
                session
                    .request::<Value>(
                        "test/echo",
                        Some(json!({"k": k})),
                        &RequestOptions::default(),
                    )
                    .await
            })
        })
        .collect();
    let mut ids = vec![Value::Null; n];
    for _ in 0..n {
        let (id, params) = peer.request("test/echo").await.unwrap();
        ids[params["k"].as_u64().unwrap() as usize] = id;
    }

    // The schedule: one answer per request in a shuffled order, repeats (with a different
    // variant) and extras inserted anywhere.
    let answer = |k: usize, variant: usize| {
        let id = &ids[k];
        if errors[k] {
            let code = -32000 - k as i64;
            let error = json!({"code": code, "message": "no", "data": {"variant": variant}});
            line(&json!({"jsonrpc": "2.0", "id": id, "error": error}))
        } else {
            let result = json!({"k": k, "variant": variant});
            line(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
        }
    };
    let mut schedule: Vec<Scheduled> = Vec::new();
    let mut shuffled: Vec<usize> = (0..n).collect();
    shuffled.sort_by_key(|&k| order[k]);
    for k in shuffled {
        schedule.push((Some((k, 0)), answer(k, 0)));
    }
    for (variant, (which, at)) in repeats.iter().enumerate() {
        let k = which.index(n);
        let at = at.index(schedule.len() + 1);
        schedule.insert(at, (Some((k, variant + 1)), answer(k, variant + 1)));
    }
    for (junk, at) in &extras {
        let at = at.index(schedule.len() + 1);
        schedule.insert(at, (None, format!("{junk}\n").into_bytes()));
    }
    // A late answer to `initialize` too.
    schedule.push((
        None,
        line(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
    ));
    let bytes: Vec<u8> = schedule.iter().flat_map(|(_, line)| line.clone()).collect();
    prop_assert!(peer.send(&bytes).await);

    for (k, call) in calls.into_iter().enumerate() {
        let first = schedule
            .iter()
            .find_map(|(answer, _)| answer.filter(|&(which, _)| which == k))
            .map(|(_, variant)| variant)
            .unwrap();
        let got = call.await.unwrap();
        if errors[k] {
            let Err(Error::Rpc { code, data, .. }) = &got else {
                return Err(TestCaseError::fail(format!("request {k}: {got:?}")));
            };
            prop_assert_eq!(*code, -32000 - k as i64);
            prop_assert_eq!(data, &Some(json!({"variant": first})));
        } else {
            prop_assert_eq!(got.unwrap(), json!({"k": k, "variant": first}));
        }
    }
    finish(session, connection, peer).await
}

async fn round_trip_case(
    value: Value,
    result_first: bool,
    sizes: Vec<usize>,
) -> Result<(), TestCaseError> {
    let (session, connection, mut peer) = initialized(sizes).await;
    let text = serde_json::to_string(&value).unwrap();
    // What serde_json itself makes of the text (floats may not survive a text round trip
    // exactly; that is serde_json's business, not the session's).
    let expected: Value = serde_json::from_str(&text).unwrap();
    for raw in [false, true] {
        let server = async {
            let (id, _) = peer.request("test/value").await.unwrap();
            let response = if result_first {
                format!(r#"{{"result":{text},"id":{id},"jsonrpc":"2.0"}}"#)
            } else {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{text}}}"#)
            };
            assert!(peer.send(format!("{response}\n").as_bytes()).await);
        };
        let options = RequestOptions::default();
        if raw {
            let (got, ()) = tokio::join!(session.request_raw("test/value", None, &options), server);
            let got = got.unwrap();
            prop_assert_eq!(got.get(), text.as_str());
        } else {
            let request = session.request::<Value>("test/value", None, &options);
            let (got, ()) = tokio::join!(request, server);
            prop_assert_eq!(got.unwrap(), expected.clone());
        }
    }
    finish(session, connection, peer).await
}

/// Any JSON value, nested up to three levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        vec(any::<char>(), 0..8).prop_map(|chars| Value::String(chars.into_iter().collect())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((vec(any::<char>(), 0..6), inner), 0..6).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(key, value)| (key.into_iter().collect(), value))
                        .collect(),
                )
            }),
        ]
    })
}

/// Runs one scripted exchange after the handshake: the server answers the client's `test/x`
/// request with `lines` (each terminated by a newline), then closes; returns what the request got.
fn answer_with(lines: impl Fn(&Value) -> Vec<String>) -> Result<Value, Error> {
    runtime().block_on(async {
        let (session, _connection, mut peer) = initialized(vec![4096]).await;
        let server = async {
            let (id, _) = peer.request("test/x").await.unwrap();
            for line in lines(&id) {
                assert!(peer.send(format!("{line}\n").as_bytes()).await);
            }
        };
        let options = RequestOptions::default();
        let request = session.request::<Value>("test/x", None, &options);
        let (got, ()) = tokio::time::timeout(BOUND, async { tokio::join!(request, server) })
            .await
            .unwrap();
        got
    })
}

/// Regression: `{"id":2,"result":null}` is a successful response whose result is `null`; it was
/// read as a missing result (serde maps `null` to `None` for an `Option`).
#[test]
fn null_result_is_a_result() {
    let got = answer_with(|id| vec![format!(r#"{{"jsonrpc":"2.0","id":{id},"result":null}}"#)]);
    assert!(matches!(got, Ok(Value::Null)), "{got:?}");
}

/// Regression: a line that is a JSON array, such as `[2]`, is no JSON-RPC response, but was
/// decoded as one (serde reads a struct from a sequence, so `[2]` was `{"id":2}`).
#[test]
fn array_line_is_not_a_response() {
    let got = answer_with(|id| {
        vec![
            format!("[{id}]"),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"ok":true}}}}"#),
        ]
    });
    assert!(
        matches!(&got, Ok(value) if *value == json!({"ok": true})),
        "{got:?}"
    );
}
