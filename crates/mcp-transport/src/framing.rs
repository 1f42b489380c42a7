//! Newline-delimited framing with a bounded line length, in both directions.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Error, ServerName};

/// The read buffer starts small (most messages are small, and every connected server has one)
/// and doubles as needed, up to the line limit.
const INITIAL_READ_CAPACITY: usize = 8 * 1024;
/// Grow (or compact) when less than this is free after the buffered bytes.
const MIN_SPARE: usize = 4 * 1024;
/// A buffer grown beyond this by a big line is given back once the bytes it holds fit in a
/// quarter of it (as [`FrameWriter`] does), so a server that sent one big answer does not keep
/// up to the line limit allocated for the rest of its life. Lines below about half of it never
/// cause a shrink, so ordinary answers do not make the buffer grow and shrink again and again.
const SHRINK_ABOVE: usize = 256 * 1024;

/// Reads newline-delimited messages from a server's output.
///
/// Blank lines are skipped. Lines that cannot be JSON (their first non-blank byte is neither `{`
/// nor `[`) are logged with the server's name and skipped. A line longer than the configured
/// maximum is an [`Error::LineTooLong`]; the reader never buffers more than about that maximum,
/// and gives back the memory a big line made it grow once that line is consumed.
pub struct FrameReader<R> {
    inner: R,
    server: ServerName,
    max_line_len: usize,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// End of the valid bytes in `buf`.
    end: usize,
    /// Bytes in `buf[start..scanned]` are known to hold no newline.
    scanned: usize,
    eof: bool,
    n_skipped: u64,
    redactor: Option<crate::transport::Redactor>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner`, accepting lines of at most `max_line_len` bytes (newline excluded).
    pub fn new(server: ServerName, inner: R, max_line_len: usize) -> FrameReader<R> {
        FrameReader {
            inner,
            server,
            max_line_len,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            n_skipped: 0,
            redactor: None,
        }
    }

    /// Applies `redactor` to skipped lines before they are logged.
    pub fn with_redactor(mut self, redactor: Option<crate::transport::Redactor>) -> FrameReader<R> {
        self.redactor = redactor;
        self
    }

    /// The number of non-JSON lines skipped so far.
    pub fn n_skipped(&self) -> u64 {
        self.n_skipped
    }

    /// Returns the next message line, without its line terminator, or `None` at end of stream.
    ///
    /// The returned slice borrows the reader's buffer and is valid until the next call.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: bytes already read stay buffered, and a later call resumes
    /// where the cancelled one stopped.
    pub async fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        loop {
            if let Some(offset) = self.buf[self.scanned..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let newline = self.scanned + offset;
                let line_start = self.start;
                self.start = newline + 1;
                self.scanned = self.start;
                let line = trim_line(&self.buf[line_start..newline]);
                if line.len() > self.max_line_len {
                    return Err(self.too_long());
                }
                match classify(line) {
                    Line::Blank => continue,
                    Line::NotJson => {
                        self.skip_not_json(line_start, newline);
                        continue;
                    }
                    Line::Json(range) => {
                        let (from, to) = (line_start + range.0, line_start + range.1);
                        return Ok(Some(&self.buf[from..to]));
                    }
                }
            }
            self.scanned = self.end;
            // One byte of slack: a `\r` at the end may belong to a `\r\n` not read yet.
            if self.end - self.start > self.max_line_len.saturating_add(1) {
                return Err(self.too_long());
            }
            if self.eof {
                // A last line without a terminator still counts, measured whole.
                if self.start == self.end {
                    return Ok(None);
                }
                if self.end - self.start > self.max_line_len {
                    return Err(self.too_long());
                }
                let line_start = self.start;
                let line_end = self.end;
                self.start = self.end;
                match classify(trim_line(&self.buf[line_start..line_end])) {
                    Line::Blank => return Ok(None),
                    Line::NotJson => {
                        self.skip_not_json(line_start, line_end);
                        return Ok(None);
                    }
                    Line::Json(range) => {
                        let (from, to) = (line_start + range.0, line_start + range.1);
                        return Ok(Some(&self.buf[from..to]));
                    }
                }
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), Error> {
        let n_buffered = self.end - self.start;
        if self.buf.len() > SHRINK_ABOVE && n_buffered <= self.buf.len() / 4 {
            let mut smaller = vec![0; (n_buffered * 2).max(INITIAL_READ_CAPACITY)];
            smaller[..n_buffered].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = smaller;
            self.scanned -= self.start;
            self.end = n_buffered;
            self.start = 0;
        }
        if self.start > 0 && (self.start == self.end || self.buf.len() - self.end < MIN_SPARE) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < MIN_SPARE {
            let wanted = self
                .buf
                .len()
                .saturating_mul(2)
                .max(INITIAL_READ_CAPACITY)
                .min(self.max_line_len.saturating_add(MIN_SPARE + 2))
                .max(self.end + 1);
            self.buf.resize(wanted, 0);
        }
        let n_read = self
            .inner
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|source| Error::Read {
                server: self.server.clone(),
                source,
            })?;
        if n_read == 0 {
            self.eof = true;
        }
        self.end += n_read;
        Ok(())
    }

    fn skip_not_json(&mut self, from: usize, to: usize) {
        self.n_skipped += 1;
        let line = &self.buf[from..to];
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]);
        let shown = match &self.redactor {
            Some(redactor) => redactor(&shown),
            None => shown.into_owned(),
        };
        tracing::warn!(
            server = %self.server,
            line = %shown,
            "skipping a line that is not JSON on the server's stdout"
        );
    }

    fn too_long(&mut self) -> Error {
        // Drop what we hold: the stream cannot be resynchronised reliably.
        self.buf = Vec::new();
        self.start = 0;
        self.end = 0;
        self.scanned = 0;
        self.eof = true;
        Error::LineTooLong {
            server: self.server.clone(),
            limit: self.max_line_len,
        }
    }
}

impl<R> std::fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("server", &self.server)
            .field("max_line_len", &self.max_line_len)
            .field("n_buffered", &(self.end - self.start))
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<W> std::fmt::Debug for FrameWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("server", &self.server)
            .field("n_pending", &(self.buf.len() - self.written))
            .field("closed", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

enum Line {
    Blank,
    NotJson,
    /// The byte range of the JSON text within the trimmed line.
    Json((usize, usize)),
}

fn trim_line(line: &[u8]) -> &[u8] {
    match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    }
}

fn classify(line: &[u8]) -> Line {
    let first = line.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Line::Blank;
    };
    match line[first] {
        b'{' | b'[' => {
            let last = line
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .unwrap_or(first);
            Line::Json((first, last + 1))
        }
        _ => Line::NotJson,
    }
}

/// Writes newline-delimited messages to a server's input, batching writes until [`flush`].
///
/// [`flush`]: FrameWriter::flush
pub struct FrameWriter<W> {
    inner: Option<W>,
    server: ServerName,
    buf: Vec<u8>,
    /// Bytes in `buf[..written]` have already been handed to `inner`.
    written: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps `inner`.
    pub fn new(server: ServerName, inner: W) -> FrameWriter<W> {
        FrameWriter {
            inner: Some(inner),
            server,
            buf: Vec::with_capacity(8 * 1024),
            written: 0,
        }
    }

    /// Queues one message; it must not contain a newline byte (compact JSON never does).
    pub fn queue(&mut self, frame: &[u8]) {
        self.buf.reserve(frame.len() + 1);
        self.buf.extend_from_slice(frame);
        self.buf.push(b'\n');
    }

    /// The number of queued bytes not yet written.
    pub fn n_pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Whether [`close`](FrameWriter::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Writes everything queued and flushes it.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: progress is recorded after every partial write, so a later
    /// call continues exactly where a cancelled one stopped and no message is split or repeated.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(Error::InputClosed {
                server: self.server.clone(),
            });
        };
        while self.written < self.buf.len() {
            let n_written = inner
                .write(&self.buf[self.written..])
                .await
                .map_err(|source| Error::Write {
                    server: self.server.clone(),
                    source,
                })?;
            if n_written == 0 {
                return Err(Error::Write {
                    server: self.server.clone(),
                    source: std::io::ErrorKind::WriteZero.into(),
                });
            }
            self.written += n_written;
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > 1024 * 1024 {
            self.buf.shrink_to(64 * 1024);
        }
        inner.flush().await.map_err(|source| Error::Write {
            server: self.server.clone(),
            source,
        })
    }

    /// Closes the input: the server sees end of file. Queued bytes are discarded.
    pub fn close(&mut self) {
        self.inner = None;
        self.buf = Vec::new();
        self.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> (Vec<String>, Option<String>) {
        let mut reader = FrameReader::new(ServerName::new("t"), input, max);
        let mut out = Vec::new();
        loop {
            match reader.next_frame().await {
                Ok(Some(line)) => out.push(String::from_utf8_lossy(line).into_owned()),
                Ok(None) => return (out, None),
                Err(err) => return (out, Some(err.to_string())),
            }
        }
    }

    #[track_caller]
    fn check(input: &str, max: usize, expect: &[&str], expect_err: Option<&str>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (got, err) = rt.block_on(frames(input.as_bytes(), max));
        assert_eq!(got, expect);
        assert_eq!(err.as_deref(), expect_err);
    }

    #[test]
    fn splits_and_skips() {
        check(
            "{\"a\":1}\n{\"b\":2}\n",
            100,
            &["{\"a\":1}", "{\"b\":2}"],
            None,
        );
        check("\n\n  \r\n{}\r\n", 100, &["{}"], None);
        check("hello\n{}\nnot json\n[1]", 100, &["{}", "[1]"], None);
        check("  {} \n", 100, &["{}"], None);
        check("", 100, &[], None);
        check("{}", 100, &["{}"], None);
        check(
            "{\"x\":\"0123456789\"}\n",
            5,
            &[],
            Some("server `t` sent a line longer than 5 bytes"),
        );
        check(
            "{}\n{\"xxxxxxxx\"",
            5,
            &["{}"],
            Some("server `t` sent a line longer than 5 bytes"),
        );
        // One byte over the limit, unterminated at the end of the stream.
        check(
            "{123}",
            4,
            &[],
            Some("server `t` sent a line longer than 4 bytes"),
        );
        check("{12}\r\n", 4, &["{12}"], None);
    }

    #[test]
    fn long_input_in_small_reads() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut tx, rx) = tokio::io::duplex(7);
            let writer = async move {
                for i in 0..2000 {
                    tx.write_all(format!("{{\"i\":{i}}}\n").as_bytes())
                        .await
                        .unwrap();
                }
            };
            let reader = async move {
                let mut reader = FrameReader::new(ServerName::new("t"), rx, 1024);
                let mut n = 0;
                while let Some(line) = reader.next_frame().await.unwrap() {
                    assert_eq!(line, format!("{{\"i\":{n}}}").as_bytes());
                    n += 1;
                }
                n
            };
            let ((), n) = tokio::join!(writer, reader);
            assert_eq!(n, 2000);
        });
    }

    #[test]
    fn writer_batches() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            let mut writer = FrameWriter::new(ServerName::new("t"), &mut out);
            writer.queue(b"{}");
            writer.queue(b"[1]");
            assert_eq!(writer.n_pending(), 7);
            writer.flush().await.unwrap();
            writer.close();
            assert!(writer.flush().await.is_err());
            drop(writer);
            assert_eq!(out, b"{}\n[1]\n");
        });
    }

    #[test]
    fn the_buffer_shrinks_back_after_a_big_line() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut tx, rx) = tokio::io::duplex(64 * 1024);
            let mut reader = FrameReader::new(ServerName::new("t"), rx, 16 * 1024 * 1024);
            let big = format!("{{\"x\":\"{}\"}}\n", "a".repeat(8 * 1024 * 1024));
            let writing = async {
                tx.write_all(big.as_bytes()).await.unwrap();
            };
            let reading = async {
                let line = reader.next_frame().await.unwrap().unwrap();
                assert_eq!(line.len(), big.len() - 1);
            };
            tokio::join!(writing, reading);
            let grown = reader.buf.len();
            assert!(grown >= 8 * 1024 * 1024, "{grown}");
            // Small lines follow, as after any big answer.
            for idx in 0..3 {
                tx.write_all(format!("{{\"i\":{idx}}}\n").as_bytes())
                    .await
                    .unwrap();
                let line = reader.next_frame().await.unwrap().unwrap();
                assert_eq!(line, format!("{{\"i\":{idx}}}").as_bytes());
            }
            let kept = reader.buf.len();
            assert!(
                kept <= 64 * 1024,
                "the buffer kept {kept} bytes after a big line"
            );
        });
    }
}
