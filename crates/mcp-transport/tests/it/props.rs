//! Property tests of the line framing: arbitrary bytes and splits, bounded buffers, round trips.
//!
//! The reader is checked against a small line model (`model`), fed through a source that hands
//! out bytes in arbitrary chunks, stalls now and then, and counts how many bytes were pulled.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use mcp_transport::{Error, FrameReader, FrameWriter, ServerName};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the reader may hold beyond `max_line_len`: one read chunk (64 KiB) and a CRLF.
const SLACK: usize = 64 * 1024 + 2;

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
        .build()
        .unwrap()
}

/// Hands out `input` in chunks of the given sizes (cycled), returning `Pending` before a chunk
/// when the matching `stalls` entry says so, and counts the bytes pulled.
struct Chunked {
    input: Vec<u8>,
    sizes: Vec<usize>,
    stalls: Vec<bool>,
    n_chunks: usize,
    stalled: bool,
    pulled: Rc<Cell<usize>>,
}

impl Chunked {
    fn new(input: Vec<u8>, sizes: Vec<usize>, stalls: Vec<bool>) -> (Chunked, Rc<Cell<usize>>) {
        let pulled = Rc::new(Cell::new(0));
        let source = Chunked {
            input,
            sizes,
            stalls,
            n_chunks: 0,
            stalled: false,
            pulled: pulled.clone(),
        };
        (source, pulled)
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let stall = this.stalls[this.n_chunks % this.stalls.len()];
        if stall && !this.stalled {
            this.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.stalled = false;
        let pos = this.pulled.get();
        let size = this.sizes[this.n_chunks % this.sizes.len()];
        let n = size.min(buf.remaining()).min(this.input.len() - pos);
        buf.put_slice(&this.input[pos..pos + n]);
        this.pulled.set(pos + n);
        this.n_chunks += 1;
        Poll::Ready(Ok(()))
    }
}

/// One line that is `{` followed by `len - 1` bytes of `a` and a newline, generated lazily.
struct LongLine {
    len: usize,
    pulled: Rc<Cell<usize>>,
}

impl AsyncRead for LongLine {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pos = self.pulled.get();
        let n = buf.remaining().min(self.len + 1 - pos);
        let chunk = buf.initialize_unfilled_to(n);
        chunk.fill(b'a');
        if pos == 0 && n > 0 {
            chunk[0] = b'{';
        }
        if n > 0 && pos + n == self.len + 1 {
            chunk[n - 1] = b'\n';
        }
        buf.advance(n);
        self.pulled.set(pos + n);
        Poll::Ready(Ok(()))
    }
}

/// Accepts at most the given sizes (cycled) per write, stalling like [`Chunked`].
struct Sink {
    out: Rc<RefCell<Vec<u8>>>,
    sizes: Vec<usize>,
    stalls: Vec<bool>,
    n_writes: usize,
    stalled: bool,
}

impl AsyncWrite for Sink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let stall = this.stalls[this.n_writes % this.stalls.len()];
        if stall && !this.stalled {
            this.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.stalled = false;
        let n = this.sizes[this.n_writes % this.sizes.len()].min(buf.len());
        this.out.borrow_mut().extend_from_slice(&buf[..n]);
        this.n_writes += 1;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What reading a whole input yields.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    too_long: bool,
    n_skipped: u64,
}

/// The reader's contract on a whole input, plus where each frame's line ends (and where the
/// offending line starts), for the buffering bound.
#[derive(Debug)]
struct Model {
    /// Acceptable outcomes (the documented one).
    outcomes: Vec<Outcome>,
    frame_ends: Vec<usize>,
    error_start: Option<usize>,
}

fn model(input: &[u8], max: usize) -> Model {
    let mut outcome = Outcome {
        frames: Vec::new(),
        too_long: false,
        n_skipped: 0,
    };
    let mut frame_ends = Vec::new();
    let mut error_start = None;
    let mut pos = 0;
    while pos < input.len() {
        let (line, next, terminated) = match input[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (&input[pos..pos + i], pos + i + 1, true),
            None => (&input[pos..], input.len(), false),
        };
        // A CR before the newline is part of the terminator; an unterminated last line is
        // measured whole.
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        let measured = if terminated {
            trimmed.len()
        } else {
            line.len()
        };
        if measured > max {
            outcome.too_long = true;
            error_start = Some(pos);
            break;
        }
        let content = trimmed.trim_ascii();
        match content.first() {
            None => {}
            Some(b'{' | b'[') => {
                outcome.frames.push(content.to_vec());
                frame_ends.push(next);
            }
            Some(_) => outcome.n_skipped += 1,
        }
        pos = next;
    }
    let outcomes = vec![outcome];
    Model {
        outcomes,
        frame_ends,
        error_start,
    }
}

/// Reads `input` to the end through a [`Chunked`] source, cancelling a `next_frame` call midway
/// whenever `cancels` says so, and checks the invariants that hold whatever the input.
fn read_all(
    input: &[u8],
    max: usize,
    sizes: Vec<usize>,
    stalls: Vec<bool>,
    cancels: &[bool],
) -> Result<(Outcome, Vec<usize>), TestCaseError> {
    let (source, pulled) = Chunked::new(input.to_vec(), sizes, stalls);
    let mut reader = FrameReader::new(ServerName::new("prop"), source, max);
    runtime().block_on(async {
        let mut outcome = Outcome {
            frames: Vec::new(),
            too_long: false,
            n_skipped: 0,
        };
        // Bytes pulled from the source when each frame (or the error) came out.
        let mut pulled_at = Vec::new();
        let mut n_calls = 0;
        loop {
            let cancel = cancels[n_calls % cancels.len()];
            n_calls += 1;
            let next = if cancel {
                tokio::select! {
                    biased;
                    next = reader.next_frame() => next.map(|frame| frame.map(<[u8]>::to_vec)),
                    () = tokio::task::yield_now() => continue,
                }
            } else {
                reader
                    .next_frame()
                    .await
                    .map(|frame| frame.map(<[u8]>::to_vec))
            };
            pulled_at.push(pulled.get());
            match next {
                Ok(Some(frame)) => {
                    prop_assert!(!frame.is_empty());
                    prop_assert!(frame.len() <= max, "frame of {} > {max}", frame.len());
                    prop_assert!(matches!(frame[0], b'{' | b'['), "{frame:?}");
                    prop_assert!(!frame.last().unwrap().is_ascii_whitespace(), "{frame:?}");
                    prop_assert!(!frame.contains(&b'\n'), "{frame:?}");
                    outcome.frames.push(frame);
                }
                Ok(None) => break,
                Err(err) => {
                    prop_assert!(
                        matches!(err, Error::LineTooLong { limit, .. } if limit == max),
                        "{err:?}"
                    );
                    outcome.too_long = true;
                    break;
                }
            }
        }
        outcome.n_skipped = reader.n_skipped();
        // The end (or the error) is final: no more frames, and nothing more is read.
        let pulled_at_end = pulled.get();
        for _ in 0..2 {
            prop_assert!(matches!(reader.next_frame().await, Ok(None)));
        }
        prop_assert_eq!(pulled.get(), pulled_at_end);
        Ok((outcome, pulled_at))
    })
}

fn check_against_model(
    input: &[u8],
    max: usize,
    sizes: Vec<usize>,
    stalls: Vec<bool>,
    cancels: &[bool],
) -> Result<(), TestCaseError> {
    let (outcome, pulled_at) = read_all(input, max, sizes, stalls, cancels)?;
    let model = model(input, max);
    prop_assert!(
        model.outcomes.contains(&outcome),
        "got {outcome:?}, expected one of {:?}",
        model.outcomes
    );
    if outcome == model.outcomes[0] {
        // Buffering bound: when a frame comes out, the reader holds at most `max + SLACK`
        // bytes past the end of its line; when the error comes out, past the start of the line.
        for (i, &end) in model.frame_ends.iter().enumerate() {
            prop_assert!(
                pulled_at[i] <= end + max + SLACK,
                "frame {i}: pulled {} with the line ending at {end}",
                pulled_at[i]
            );
        }
        if let Some(start) = model.error_start {
            let at_error = pulled_at[model.frame_ends.len()];
            prop_assert!(at_error <= start + max + SLACK, "pulled {at_error}");
        }
    }
    Ok(())
}

/// Bytes that are mostly framing-relevant, so that inputs hit JSON-looking lines often.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => any::<u8>(),
        3 => proptest::sample::select(b"{}[]\r\n\n \t\"a1:,\x0b\x0c".to_vec()),
    ]
}

/// Read or write sizes: mostly tiny, sometimes large.
fn sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![3 => 1..=8usize, 1 => 1..=4096usize], 1..16)
}

fn flags() -> impl Strategy<Value = Vec<bool>> {
    vec(proptest::bool::weighted(0.3), 1..8)
}

/// A JSON value, encoded compactly.
fn json_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| format!("{x:e}")),
        json_string(),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| json_container(inner.boxed()))
        .boxed()
}

/// A JSON array or object of the given values, encoded compactly.
fn json_container(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
        vec((json_string(), inner), 0..6).prop_map(|fields| {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", fields.join(","))
        }),
    ]
    .boxed()
}

fn json_string() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..8).prop_map(|chars| {
        let mut out = String::from("\"");
        for c in chars {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    })
}

/// One line of a mixed stream, without its terminator.
#[derive(Clone, Debug)]
enum Line {
    /// Compact JSON with optional surrounding blanks; the frame must be exactly the JSON text.
    Json {
        text: String,
        before: String,
        after: String,
    },
    /// Only blanks.
    Blank(String),
    /// Not JSON: the first non-blank byte is neither `{` nor `[`.
    Garbage(Vec<u8>),
}

fn no_newline(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>().prop_filter("no newline", |&b| b != b'\n'), len)
}

fn blanks() -> impl Strategy<Value = String> {
    vec(proptest::sample::select(vec![' ', '\t']), 0..3).prop_map(String::from_iter)
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => (json_container(json_value()), blanks(), blanks())
            .prop_map(|(text, before, after)| Line::Json { text, before, after }),
        1 => blanks().prop_map(Line::Blank),
        2 => (
            blanks(),
            any::<u8>().prop_filter("starts garbage", |b| {
                !b.is_ascii_whitespace() && !matches!(b, b'{' | b'[')
            }),
            no_newline(0..40),
        )
            .prop_map(|(before, first, rest)| {
                let mut bytes = before.into_bytes();
                bytes.push(first);
                bytes.extend(rest);
                Line::Garbage(bytes)
            }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes in arbitrary splits: never a panic, frames always within the limit and
    /// JSON-looking, exactly the model's frames and skips, the error is final, and the reader never
    /// runs more than one chunk ahead of the line it is on.
    #[test]
    fn arbitrary_bytes_follow_the_line_model(
        input in vec(byte(), 0..2048),
        max in 1..=256usize,
        sizes in sizes(),
        stalls in flags(),
        cancels in flags(),
    ) {
        check_against_model(&input, max, sizes, stalls, &cancels)?;
    }

    /// Lines of `max - 2 ..= max + 2` bytes, so that the boundary is hit.
    #[test]
    fn lines_around_the_limit_follow_the_line_model(
        max in 1..=64usize,
        lines in vec((0..5usize, byte(), any::<bool>(), any::<bool>()), 1..12),
        sizes in sizes(),
        stalls in flags(),
    ) {
        let mut input = Vec::new();
        for (delta, fill, json, crlf) in lines {
            let len = (max + delta).saturating_sub(2);
            if json && len > 0 {
                input.push(b'{');
                input.extend(std::iter::repeat_n(fill, len - 1));
            } else {
                input.extend(std::iter::repeat_n(fill, len));
            }
            input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        check_against_model(&input, max, sizes, stalls, &[false])?;
    }

    /// Valid JSON lines mixed with blank and garbage lines, LF or CRLF, the last terminator
    /// optional, split arbitrarily: exactly the JSON texts come out, in order, and every garbage
    /// line is counted.
    #[test]
    fn json_lines_round_trip(
        lines in vec((line(), any::<bool>()), 0..24),
        last_terminated in any::<bool>(),
        sizes in sizes(),
        stalls in flags(),
        cancels in flags(),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        let mut n_garbage = 0;
        let n_lines = lines.len();
        for (i, (line, crlf)) in lines.into_iter().enumerate() {
            match line {
                Line::Json { text, before, after } => {
                    input.extend_from_slice(before.as_bytes());
                    input.extend_from_slice(text.as_bytes());
                    input.extend_from_slice(after.as_bytes());
                    expected.push(text.into_bytes());
                }
                Line::Blank(blank) => input.extend_from_slice(blank.as_bytes()),
                Line::Garbage(bytes) => {
                    input.extend_from_slice(&bytes);
                    n_garbage += 1;
                }
            }
            if i + 1 < n_lines || last_terminated {
                input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
        }
        let (outcome, _) = read_all(&input, 1024 * 1024, sizes, stalls, &cancels)?;
        let expected = Outcome { frames: expected, too_long: false, n_skipped: n_garbage };
        prop_assert_eq!(outcome, expected);
    }

    /// Frames queued in batches and flushed into a sink that takes arbitrary partial writes (and
    /// flushes cancelled midway) come out exactly as `frame\n...`, nothing split or repeated.
    #[test]
    fn writer_output_is_the_frames_with_newlines(
        batches in vec(vec(no_newline(0..300), 0..6), 0..6),
        sizes in sizes(),
        stalls in flags(),
        cancels in flags(),
    ) {
        let out = Rc::new(RefCell::new(Vec::new()));
        let sink = Sink { out: out.clone(), sizes, stalls, n_writes: 0, stalled: false };
        let mut writer = FrameWriter::new(ServerName::new("prop"), sink);
        let mut expected = Vec::new();
        runtime().block_on(async {
            for (n_flushes, batch) in batches.iter().enumerate() {
                let mut n_queued = writer.n_pending();
                for frame in batch {
                    writer.queue(frame);
                    n_queued += frame.len() + 1;
                    prop_assert_eq!(writer.n_pending(), n_queued);
                    expected.extend_from_slice(frame);
                    expected.push(b'\n');
                }
                if cancels[n_flushes % cancels.len()] {
                    // Cancel one flush after it made some progress; the next batch's flush resumes.
                    tokio::select! {
                        biased;
                        flushed = writer.flush() => flushed.unwrap(),
                        () = tokio::task::yield_now() => {}
                    }
                } else {
                    writer.flush().await.unwrap();
                    prop_assert_eq!(writer.n_pending(), 0);
                    prop_assert_eq!(&*out.borrow(), &expected);
                }
            }
            writer.flush().await.unwrap();
            prop_assert_eq!(writer.n_pending(), 0);
            Ok(())
        })?;
        prop_assert_eq!(&*out.borrow(), &expected);
    }
}

proptest! {
    // Each case reads about 200 KiB.
    #![proptest_config(config(64))]

    /// Streams of several read chunks (lines repeated to ~200 KiB, reads up to 128 KiB): the
    /// reader stays within `max + SLACK` bytes of the line it is on.
    #[test]
    fn long_streams_stay_bounded(
        lines in vec((line(), any::<bool>()), 1..12),
        max in 64..=4096usize,
        sizes in vec(prop_oneof![1..=4096usize, 60_000..=128 * 1024usize], 1..8),
        stalls in flags(),
    ) {
        let mut pattern = Vec::new();
        for (line, crlf) in lines {
            match line {
                Line::Json { text, before, after } => {
                    pattern.extend_from_slice(before.as_bytes());
                    pattern.extend_from_slice(text.as_bytes());
                    pattern.extend_from_slice(after.as_bytes());
                }
                Line::Blank(blank) => pattern.extend_from_slice(blank.as_bytes()),
                Line::Garbage(bytes) => pattern.extend_from_slice(&bytes),
            }
            pattern.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        let input = pattern.repeat((200 * 1024) / pattern.len() + 1);
        check_against_model(&input, max, sizes, stalls, &[false])?;
    }
}

/// A 64 MiB line with a 1 MiB limit fails having pulled at most the limit and two read chunks.
#[test]
fn huge_line_fails_after_a_bounded_read() {
    const MAX: usize = 1024 * 1024;
    let pulled = Rc::new(Cell::new(0));
    let source = LongLine {
        len: 64 * 1024 * 1024,
        pulled: pulled.clone(),
    };
    let mut reader = FrameReader::new(ServerName::new("prop"), source, MAX);
    runtime().block_on(async {
        let err = reader.next_frame().await.unwrap_err();
        assert!(
            matches!(err, Error::LineTooLong { limit: MAX, .. }),
            "{err:?}"
        );
        assert!(reader.next_frame().await.unwrap().is_none());
    });
    assert!(
        pulled.get() <= MAX + 2 * 64 * 1024,
        "pulled {} bytes",
        pulled.get()
    );
}

/// Regression: a CRLF-terminated line of exactly `max_line_len` bytes was rejected when a read
/// ended between its CR and its LF (found by the properties above; minimal input: max 2, `{}\r\n`
/// read as `{}\r` then `\n`).
#[test]
fn crlf_line_of_max_len_does_not_depend_on_read_splits() {
    for sizes in [vec![4], vec![3, 1], vec![1]] {
        let (source, _) = Chunked::new(b"{}\r\n".to_vec(), sizes.clone(), vec![false]);
        let mut reader = FrameReader::new(ServerName::new("prop"), source, 2);
        let frame = runtime().block_on(async {
            reader
                .next_frame()
                .await
                .map(|frame| frame.map(<[u8]>::to_vec))
        });
        assert!(
            matches!(&frame, Ok(Some(frame)) if frame == b"{}"),
            "reads of {sizes:?}: {frame:?}"
        );
    }
}
