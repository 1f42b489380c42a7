//! An incremental, bounded parser of `text/event-stream` bodies (server-sent events).
//!
//! It follows the WHATWG event-stream rules that matter for MCP: lines end with CRLF, LF or CR
//! (also when split across chunks), `:` starts a comment, `data` lines of one event are joined
//! with LF, `id` sets the last event id (kept across events, for resumption), `retry` sets the
//! reconnection delay, and a blank line dispatches the event. Lines and events longer than the
//! limit are dropped whole and counted, never buffered without bound.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` when the stream named none).
    pub kind: String,
    /// The event's data, lines joined with LF.
    pub data: Vec<u8>,
    /// The last event id seen on the stream when this event was dispatched.
    pub last_id: Option<String>,
}

/// Parses an event stream fed in arbitrary chunks.
#[derive(Debug)]
pub struct SseParser {
    max_len: usize,
    line: Vec<u8>,
    /// The current line grew past the limit: its bytes are discarded up to its end.
    line_too_long: bool,
    /// The last chunk ended with CR: an LF at the start of the next one belongs to it.
    after_cr: bool,
    data: Vec<u8>,
    has_data: bool,
    event_too_long: bool,
    kind: Option<String>,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    n_dropped: u64,
}

impl SseParser {
    /// A parser that accepts lines and events of at most `max_len` bytes.
    pub fn new(max_len: usize) -> SseParser {
        SseParser {
            max_len,
            line: Vec::new(),
            line_too_long: false,
            after_cr: false,
            data: Vec::new(),
            has_data: false,
            event_too_long: false,
            kind: None,
            last_id: None,
            retry_ms: None,
            n_dropped: 0,
        }
    }

    /// A parser that resumes a stream whose last event id was `last_id`.
    pub fn resuming(max_len: usize, last_id: Option<String>) -> SseParser {
        let mut parser = SseParser::new(max_len);
        parser.last_id = last_id;
        parser
    }

    /// The last event id the stream set, if any.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection delay the stream asked for, in milliseconds, if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// How many events were dropped for being longer than the limit.
    pub fn n_dropped(&self) -> u64 {
        self.n_dropped
    }

    /// Feeds one chunk of the body; completed events are appended to `events`.
    pub fn feed(&mut self, mut chunk: &[u8], events: &mut Vec<SseEvent>) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.push_line_bytes(&chunk[..end]);
            self.end_line(events);
            let ended_with_cr = chunk[end] == b'\r';
            chunk = &chunk[end + 1..];
            if ended_with_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.push_line_bytes(chunk);
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > self.max_len {
            self.line_too_long = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.line_too_long) {
            // An over-long line can only have been data or garbage: the event is lost.
            self.event_too_long = true;
            return;
        }
        if line.is_empty() {
            self.dispatch(events);
        } else {
            self.field(&line);
        }
        // Keep the buffer's allocation for the next line unless it grew large.
        if line.capacity() <= 8 * 1024 {
            self.line = line;
            self.line.clear();
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_len {
                    self.event_too_long = true;
                    self.data = Vec::new();
                }
                if !self.event_too_long {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
                self.has_data = true;
            }
            b"event" => self.kind = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let kind = self.kind.take();
        let has_data = std::mem::take(&mut self.has_data);
        if std::mem::take(&mut self.event_too_long) {
            self.data.clear();
            self.n_dropped += 1;
            return;
        }
        if !has_data {
            self.data.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.last() == Some(&b'\n') {
            data.pop();
        }
        events.push(SseEvent {
            kind: kind
                .filter(|kind| !kind.is_empty())
                .unwrap_or_else(|| "message".to_owned()),
            data,
            last_id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_in(chunks: &[&[u8]], max_len: usize) -> (Vec<SseEvent>, SseParser) {
        let mut parser = SseParser::new(max_len);
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut events);
        }
        (events, parser)
    }

    fn data(events: &[SseEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8(e.data.clone()).unwrap())
            .collect()
    }

    #[test]
    fn events_ids_comments_and_multiline_data() {
        let body =
            b": keep-alive\nid: 1\nevent: message\ndata: {\"a\":\ndata: 1}\n\nid: 2\ndata:x\n\n";
        let (events, parser) = parse_in(&[body], 1024);
        assert_eq!(data(&events), ["{\"a\":\n1}", "x"]);
        assert_eq!(events[0].last_id.as_deref(), Some("1"));
        assert_eq!(events[1].kind, "message");
        assert_eq!(parser.last_id(), Some("2"));
    }

    #[test]
    fn every_line_ending_and_every_split_give_the_same_events() {
        for ending in ["\n", "\r\n", "\r"] {
            let body = format!(
                "id: 7{e}retry: 1500{e}data: hello{e}{e}data: world{e}{e}",
                e = ending
            );
            let body = body.as_bytes();
            for split in 0..=body.len() {
                let (events, parser) = parse_in(&[&body[..split], &body[split..]], 1024);
                assert_eq!(
                    data(&events),
                    ["hello", "world"],
                    "ending {ending:?} split {split}"
                );
                assert_eq!(parser.last_id(), Some("7"));
                assert_eq!(parser.retry_ms(), Some(1500));
            }
        }
    }

    #[test]
    fn an_id_without_data_primes_resumption_but_dispatches_nothing() {
        let (events, parser) = parse_in(&[b"id: abc\ndata\n\nid: def\n\n"], 1024);
        // `data` with no colon is a data field with an empty value: one empty event.
        assert_eq!(data(&events), [""]);
        assert_eq!(parser.last_id(), Some("def"));
    }

    #[test]
    fn over_long_events_are_dropped_and_counted() {
        let long = "x".repeat(100);
        let body = format!(
            "data: {long}\n\ndata: ok\n\ndata: {}\ndata: {}\n\n",
            &long[..40],
            &long[..40]
        );
        let (events, parser) = parse_in(&[body.as_bytes()], 64);
        assert_eq!(data(&events), ["ok"]);
        assert_eq!(parser.n_dropped(), 2);
    }
}
