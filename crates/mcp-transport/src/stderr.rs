//! Draining a server's stderr into `tracing`, keeping a bounded tail for error reports.

use std::collections::VecDeque;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::Diagnostics;

/// Longest stderr line kept or logged; longer lines are cut.
const MAX_LOGGED_LINE: usize = 4 * 1024;

/// The last lines of a server's stderr, bounded in both line count and bytes.
#[derive(Debug)]
pub(crate) struct StderrTail {
    lines: VecDeque<String>,
    n_bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl StderrTail {
    pub(crate) fn new(max_lines: usize, max_bytes: usize) -> StderrTail {
        StderrTail {
            lines: VecDeque::new(),
            n_bytes: 0,
            max_lines,
            max_bytes,
        }
    }

    pub(crate) fn push(&mut self, line: &str) {
        if self.max_lines == 0 || self.max_bytes == 0 {
            return;
        }
        let line = cut(line, self.max_bytes);
        self.n_bytes += line.len();
        self.lines.push_back(line.to_owned());
        while self.lines.len() > self.max_lines || self.n_bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some(old) => self.n_bytes -= old.len(),
                None => break,
            }
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(self.n_bytes + self.lines.len());
        for (idx, line) in self.lines.iter().enumerate() {
            if idx > 0 {
                out.push('\n');
            }
            out.push_str(line);
        }
        out
    }
}

/// Cuts `line` to at most `max` bytes on a character boundary.
fn cut(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Reads `stderr` to its end: every line is logged and remembered in the tail.
///
/// Never stops early on bad input (invalid UTF-8 is replaced, very long lines are cut), so a
/// server that floods stderr can never stall on a full pipe.
pub(crate) async fn drain<R: AsyncRead + Unpin>(stderr: R, diagnostics: Diagnostics) {
    let mut reader = BufReader::with_capacity(8 * 1024, stderr);
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let available = match reader.fill_buf().await {
            Ok(available) => available,
            Err(err) => {
                tracing::debug!(server = %diagnostics.server(), error = %err, "reading stderr failed");
                break;
            }
        };
        if available.is_empty() {
            break;
        }
        let n_available = available.len();
        let mut rest = available;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            if partial.is_empty() {
                emit(&diagnostics, &rest[..newline]);
            } else {
                take(&mut partial, &rest[..newline]);
                emit(&diagnostics, &partial);
                partial.clear();
            }
            rest = &rest[newline + 1..];
        }
        take(&mut partial, rest);
        reader.consume(n_available);
    }
    if !partial.is_empty() {
        emit(&diagnostics, &partial);
    }
    diagnostics.mark_stderr_done();
}

fn take(partial: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LOGGED_LINE.saturating_sub(partial.len());
    partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn emit(diagnostics: &Diagnostics, line: &[u8]) {
    let line = &line[..line.len().min(MAX_LOGGED_LINE)];
    let line = match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    };
    let text = String::from_utf8_lossy(line);
    let text = diagnostics.redact(&text);
    tracing::debug!(target: "mcp_server_stderr", server = %diagnostics.server(), "{text}");
    diagnostics.push_stderr_line(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_bounded() {
        let mut tail = StderrTail::new(3, 10);
        for line in ["a", "b", "c", "d"] {
            tail.push(line);
        }
        assert_eq!(tail.render(), "b\nc\nd");
        tail.push("0123456789abc");
        assert_eq!(tail.render(), "0123456789");
        let mut tail = StderrTail::new(64, 4);
        tail.push("héllo");
        assert_eq!(tail.render(), "hél");
    }
}
