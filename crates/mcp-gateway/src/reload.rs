//! Live reconfiguration: the configuration file is watched, and each change (or a request such
//! as SIGHUP) is applied to the running host with `McpHost::apply`.
//!
//! The file's directory is watched rather than the file, so that editors that save by writing
//! a new file and renaming it over the old one, and Kubernetes ConfigMaps (a symlink swapped
//! atomically), are seen. Changes are debounced ([`DEBOUNCE`]); a file whose text did not
//! change is not applied again. A file that cannot be read or is invalid changes nothing: the
//! host keeps the configuration it runs, and one error names the file, the field and the reason.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use mcp_host::{error_chain, McpHost};
use mcp_host_foundation::ClientConfig;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::auth::PolicyStore;
use crate::config::{self, ConfigError};
use crate::policy::{GatewaySettings, Policies};

/// How long the file must stay quiet before a change is applied.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// How long a stream of changes may put a reload off.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Asks the gateway to read its configuration file again; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    state: Arc<ReloadState>,
}

impl ReloadHandle {
    /// Reloads the file as soon as possible (after [`DEBOUNCE`]), even when its text did not
    /// change, so that servers that failed are tried again. Requests made while a reload runs
    /// are coalesced into one more reload.
    pub fn reload_now(&self) {
        *lock(&self.state.forced) = true;
        self.state.wake.notify_one();
    }
}

/// What the last reload did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReloadRecord {
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// `applied` or `refused`.
    pub outcome: ReloadOutcome,
    /// Servers started, stopped, restarted and failed (empty when refused).
    pub added: Vec<String>,
    /// Servers stopped and forgotten.
    pub removed: Vec<String>,
    /// Servers restarted.
    pub restarted: Vec<String>,
    /// Servers that failed to start, with why.
    pub failed: Vec<(String, String)>,
    /// Why the file was refused.
    pub error: Option<String>,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadOutcome {
    /// The file was valid and applied (some servers may still have failed to start).
    Applied,
    /// The file could not be read or was invalid; nothing changed.
    Refused,
}

/// The reload state of one gateway.
#[derive(Debug)]
pub(crate) struct ReloadState {
    path: PathBuf,
    wake: Notify,
    /// A reload was asked for explicitly: apply even an unchanged file.
    forced: Mutex<bool>,
    /// The gateway settings applied last (`None` until the first reload).
    gateway: Mutex<Option<GatewaySettings>>,
    last: Mutex<Option<ReloadRecord>>,
    counts: Mutex<ReloadCounts>,
}

/// How many reloads ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReloadCounts {
    pub(crate) applied: u64,
    pub(crate) refused: u64,
}

impl ReloadState {
    pub(crate) fn new(path: PathBuf) -> Arc<ReloadState> {
        Arc::new(ReloadState {
            path,
            wake: Notify::new(),
            forced: Mutex::new(false),
            gateway: Mutex::new(None),
            last: Mutex::new(None),
            counts: Mutex::new(ReloadCounts::default()),
        })
    }

    pub(crate) fn handle(self: &Arc<Self>) -> ReloadHandle {
        ReloadHandle {
            state: self.clone(),
        }
    }

    pub(crate) fn last(&self) -> Option<ReloadRecord> {
        lock(&self.last).clone()
    }

    /// The configuration file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How many reloads were applied and refused.
    pub(crate) fn counts(&self) -> ReloadCounts {
        *lock(&self.counts)
    }
}

/// Watches the file and applies each change until dropped.
pub(crate) async fn watch(host: Arc<McpHost>, state: Arc<ReloadState>, policies: Arc<PolicyStore>) {
    let _watcher = match start_watcher(&state) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::error!(
                file = %state.path.display(),
                error = %error,
                "cannot watch the configuration file; reloads happen on request (SIGHUP) only"
            );
            None
        }
    };
    // A change made between the host's start and the watch would be missed: look once now.
    state.wake.notify_one();
    loop {
        state.wake.notified().await;
        // Debounce: wait until the file has been quiet for a while, but not forever.
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let quiet = tokio::time::sleep(DEBOUNCE);
            tokio::select! {
                () = quiet => break,
                () = state.wake.notified() => {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        let forced = std::mem::take(&mut *lock(&state.forced));
        match read(&state.path).await {
            Ok((servers, gateway)) => {
                // A touch, or another file of the directory: nothing to do (a forced reload
                // still tries the servers that failed again).
                if !forced && host.configs() == servers {
                    tracing::debug!(file = %state.path.display(), "servers unchanged");
                } else {
                    apply(&host, &state, servers).await;
                }
                // After the servers, so that a session sees the reload's end state once.
                if lock(&state.gateway).as_ref() != Some(&gateway) {
                    // Validated by `read`: the clients and their policies take effect at each
                    // session's next request.
                    if let Ok(new) =
                        Policies::from_settings(&gateway, |name| std::env::var(name).ok())
                    {
                        policies.replace(new);
                        tracing::info!(file = %state.path.display(), "gateway clients reloaded");
                    }
                    *lock(&state.gateway) = Some(gateway);
                }
            }
            Err(error) => refuse(&state, &error),
        }
    }
}

/// Reads and validates the file (off the async threads: it reads the disk and looks programs up);
/// the servers come sorted by id, as [`McpHost::configs`] gives them, with the gateway settings.
async fn read(path: &Path) -> Result<(Vec<ClientConfig>, GatewaySettings), ConfigError> {
    let path = path.to_path_buf();
    let mut reading = JoinSet::new();
    reading.spawn_blocking(move || {
        let text = std::fs::read_to_string(&path).map_err(|error| {
            ConfigError::from_message(format!(
                "cannot read the configuration file {}: {error}",
                path.display()
            ))
        })?;
        let file = config::parse(&text).map_err(|error| error.in_file(&path))?;
        for warning in &file.warnings {
            tracing::warn!(file = %path.display(), "{warning}");
        }
        let path_var = std::env::var("PATH").ok();
        config::check_commands(&file.servers, path_var.as_deref())
            .map_err(|error| error.in_file(&path))?;
        Policies::from_settings(&file.gateway, |name| std::env::var(name).ok())
            .map_err(|error| ConfigError::from_message(error).in_file(&path))?;
        let mut servers = file.servers;
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((servers, file.gateway))
    });
    match reading.join_next().await {
        Some(Ok(read)) => read,
        _ => Err(ConfigError::from_message(
            "reading the configuration file failed",
        )),
    }
}

async fn apply(host: &McpHost, state: &ReloadState, servers: Vec<ClientConfig>) {
    let record = match host.apply(servers).await {
        Ok(report) => {
            let names = |ids: &[mcp_host_foundation::ClientId]| -> Vec<String> {
                ids.iter().map(ToString::to_string).collect()
            };
            let failed: Vec<(String, String)> = report
                .failed
                .iter()
                .map(|(id, error)| (id.to_string(), error_chain(error)))
                .collect();
            tracing::info!(
                file = %state.path.display(),
                added = ?names(&report.added),
                removed = ?names(&report.removed),
                restarted = ?names(&report.restarted),
                n_unchanged = report.unchanged.len(),
                "configuration reloaded"
            );
            for (id, error) in &failed {
                tracing::warn!(server = %id, "server failed to start on reload: {error}");
            }
            ReloadRecord {
                at_unix_ms: now_unix_ms(),
                outcome: ReloadOutcome::Applied,
                added: names(&report.added),
                removed: names(&report.removed),
                restarted: names(&report.restarted),
                failed,
                error: None,
            }
        }
        Err(error) => {
            let error = ConfigError::from_message(error_chain(&error)).in_file(&state.path);
            return refuse(state, &error);
        }
    };
    lock(&state.counts).applied += 1;
    *lock(&state.last) = Some(record);
}

fn refuse(state: &ReloadState, error: &ConfigError) {
    tracing::error!("{error}; the gateway keeps the configuration it runs");
    lock(&state.counts).refused += 1;
    *lock(&state.last) = Some(ReloadRecord {
        at_unix_ms: now_unix_ms(),
        outcome: ReloadOutcome::Refused,
        added: Vec::new(),
        removed: Vec::new(),
        restarted: Vec::new(),
        failed: Vec::new(),
        error: Some(error.to_string()),
    });
}

/// Watches the file's directory; every event there wakes the reload loop.
fn start_watcher(state: &Arc<ReloadState>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let dir = match state.path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let wake = Arc::downgrade(state);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event.is_ok_and(|event| !event.kind.is_access());
        if let (true, Some(state)) = (relevant, wake.upgrade()) {
            state.wake.notify_one();
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
