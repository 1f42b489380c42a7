//! The audit log: one JSON line per call a client makes through the gateway.
//!
//! Each line has the time, the client, its session, the method, the server and tool (or
//! prompt, or resource), the outcome, the duration and the size of the arguments; the
//! arguments themselves only for a client whose policy says `auditArguments`, masked like every
//! secret. Lines go to the `audit` tracing target, and to a file when one is given: appended,
//! rotated by size (the previous file kept as `<file>.1`), reopened on request (after
//! logrotate moved it). The file is written by a thread of its own, behind a bounded queue:
//! a slow disk never slows a call; lines that do not fit are counted and dropped.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

/// How many lines may wait for the file.
const QUEUE: usize = 4096;

/// One audited call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When the call ended (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The client, as its policy names it.
    pub client: String,
    /// The session (the first 8 hex digits of an HTTP session id, or `stdio`).
    pub session: String,
    /// The JSON-RPC method.
    pub method: String,
    /// The server that served it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The tool or prompt (its exposed name), or the resource URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `ok`, `tool_error`, `error`, `denied`, `quota` or `cancelled`.
    pub outcome: &'static str,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// The size of its arguments as JSON, in bytes.
    pub argument_bytes: usize,
    /// Its arguments (masked), when the client's policy asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

/// Where audit lines go.
#[derive(Debug)]
pub struct AuditLog {
    file: Option<FileSink>,
    n_dropped: AtomicU64,
}

#[derive(Debug)]
struct FileSink {
    sender: Mutex<Option<SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

enum Command {
    Line(String),
    Reopen,
}

impl AuditLog {
    /// Audit lines to the `audit` tracing target only.
    pub fn tracing_only() -> AuditLog {
        AuditLog {
            file: None,
            n_dropped: AtomicU64::new(0),
        }
    }

    /// Audit lines to `path` too (created if needed, appended to), rotated past `max_bytes`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or the writer thread cannot start.
    pub fn to_file(path: PathBuf, max_bytes: u64) -> std::io::Result<AuditLog> {
        let file = open(&path)?;
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("mcp-audit".to_owned())
            .spawn(move || write_lines(path, file, max_bytes, receiver))?;
        Ok(AuditLog {
            file: Some(FileSink {
                sender: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
            }),
            n_dropped: AtomicU64::new(0),
        })
    }

    /// Records one call.
    pub fn record(&self, record: &AuditRecord) {
        let Ok(line) = serde_json::to_string(record) else {
            return;
        };
        tracing::info!(target: "audit", "{line}");
        let Some(file) = &self.file else {
            return;
        };
        let sender = match file.sender.lock() {
            Ok(sender) => sender.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(sender) = sender {
            if let Err(TrySendError::Full(_)) = sender.try_send(Command::Line(line)) {
                self.n_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes and opens the file again (after logrotate moved it away).
    pub fn reopen(&self) {
        if let Some(file) = &self.file {
            if let Ok(sender) = file.sender.lock() {
                if let Some(sender) = sender.as_ref() {
                    let _ = sender.try_send(Command::Reopen);
                }
            }
        }
    }

    /// Lines dropped because the file could not keep up.
    pub fn n_dropped(&self) -> u64 {
        self.n_dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AuditLog {
    /// # Drop behavior
    ///
    /// Closes the queue and waits for the writer thread to write what is in it.
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            if let Ok(mut sender) = file.sender.lock() {
                sender.take();
            }
            if let Ok(mut thread) = file.thread.lock() {
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

fn open(path: &PathBuf) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn write_lines(path: PathBuf, mut file: File, max_bytes: u64, commands: Receiver<Command>) {
    let mut size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    for command in commands {
        match command {
            Command::Line(mut line) => {
                line.push('\n');
                if size > 0 && size + line.len() as u64 > max_bytes {
                    let rotated = PathBuf::from(format!("{}.1", path.display()));
                    if std::fs::rename(&path, rotated).is_ok() {
                        if let Ok(reopened) = open(&path) {
                            file = reopened;
                            size = 0;
                        }
                    }
                }
                if file.write_all(line.as_bytes()).is_ok() {
                    size += line.len() as u64;
                }
            }
            Command::Reopen => {
                if let Ok(reopened) = open(&path) {
                    file = reopened;
                    size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                }
            }
        }
    }
    let _ = file.flush();
}

/// Now as RFC 3339 in UTC with milliseconds (`2026-11-30T05:02:03.456Z`).
pub(crate) fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn the_file_rotates_and_reopens() {
        let dir = std::env::temp_dir().join(format!("mcp-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let log = AuditLog::to_file(path.clone(), 600).unwrap();
        let record = AuditRecord {
            time: now_rfc3339(),
            client: "c".to_owned(),
            session: "stdio".to_owned(),
            method: "tools/call".to_owned(),
            server: Some("s".to_owned()),
            target: Some("s__echo".to_owned()),
            outcome: "ok",
            duration_ms: 1.5,
            argument_bytes: 10,
            arguments: None,
        };
        for _ in 0..4 {
            log.record(&record);
        }
        drop(log);
        let current = std::fs::read_to_string(&path).unwrap();
        let rotated = std::fs::read_to_string(dir.join("audit.log.1")).unwrap();
        assert_eq!(current.lines().count() + rotated.lines().count(), 4);
        assert!(current.len() <= 600 && rotated.len() <= 600);
        let line: Value = serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!(line["outcome"], "ok");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
