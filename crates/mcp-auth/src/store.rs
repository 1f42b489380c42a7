//! Where tokens live between runs: one file per server URL and client, readable by the user alone.
//!
//! A [`TokenStore`] is a directory (by default `$XDG_DATA_HOME/mcp-host/oauth`, else
//! `~/.local/share/mcp-host/oauth`) created with mode 0700, holding one JSON file per server URL
//! and configured client, named by a digest of both, with mode 0600. A file is replaced whole:
//! written to a temporary file in the same directory (0600 from its creation), flushed, then
//! renamed over the old one, so a reader sees the old record or the new one, never half of one.
//! [`TokenStore::memory`] keeps nothing (the conformance client, tests).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// Where the tokens of every server are kept.
#[derive(Clone, Debug)]
pub struct TokenStore {
    dir: Option<PathBuf>,
}

/// The key of one server's record: its URL and the configured client id (`None` for a client
/// that registers itself).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RecordKey {
    pub(crate) server_url: String,
    pub(crate) client_id: Option<String>,
}

/// What is kept for one server: how this client is known to its authorization server, and the
/// tokens it was given. `Debug` shows no secret.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    /// The format's version (1).
    pub(crate) version: u32,
    /// The server's name in the configuration when the record was written (for people).
    #[serde(default)]
    pub(crate) server: String,
    /// The server's URL.
    pub(crate) server_url: String,
    /// The resource indicator tokens were asked for.
    #[serde(default)]
    pub(crate) resource: Option<String>,
    /// The authorization server's issuer.
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    /// Its token endpoint (for refreshing without discovery).
    #[serde(default)]
    pub(crate) token_endpoint: Option<String>,
    /// How the client is known there.
    #[serde(default)]
    pub(crate) client: Option<ClientRecord>,
    /// The tokens.
    #[serde(default)]
    pub(crate) tokens: Option<Tokens>,
    /// The scopes last asked for.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// Why the tokens cannot be used any more, when a person has to log in again.
    #[serde(default)]
    pub(crate) needs_login: Option<String>,
}

/// How the client is known to the authorization server.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientRecord {
    /// The client id (for a Client ID Metadata Document, its URL).
    pub(crate) client_id: String,
    /// The client secret, for a registration that gave one.
    #[serde(default)]
    pub(crate) client_secret: Option<String>,
    /// The token endpoint authentication method: `none`, `client_secret_basic`,
    /// `client_secret_post` or `private_key_jwt`.
    pub(crate) auth_method: String,
    /// The redirect URI registered (dynamic registration), if any.
    #[serde(default)]
    pub(crate) redirect_uri: Option<String>,
    /// Where the identity came from: `config`, `metadata-document` or `registration`.
    pub(crate) source: String,
    /// The issuer it belongs to.
    #[serde(default)]
    pub(crate) issuer: Option<String>,
}

/// The tokens of one server.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    /// When the access token expires (seconds since the epoch), if the server said.
    #[serde(default)]
    pub(crate) expires_at: Option<u64>,
    /// When it was obtained (seconds since the epoch).
    #[serde(default)]
    pub(crate) obtained_at: u64,
    /// The scopes granted (the server's `scope`, else those asked for).
    #[serde(default)]
    pub(crate) scope: Vec<String>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("server", &self.server)
            .field("server_url", &self.server_url)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client.as_ref().map(|c| &c.client_id))
            .field("has_tokens", &self.tokens.is_some())
            .field("needs_login", &self.needs_login)
            .finish_non_exhaustive()
    }
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl TokenStore {
    /// The store in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> TokenStore {
        TokenStore {
            dir: Some(dir.into()),
        }
    }

    /// A store that keeps nothing: tokens live as long as the authorizer.
    pub fn memory() -> TokenStore {
        TokenStore { dir: None }
    }

    /// The user's store: `$XDG_DATA_HOME/mcp-host/oauth`, else `$HOME/.local/share/mcp-host/oauth`;
    /// `None` when neither variable is set (to an absolute path).
    pub fn default_dir() -> Option<PathBuf> {
        let absolute = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|path| path.is_absolute())
        };
        let data = absolute("XDG_DATA_HOME")
            .or_else(|| absolute("HOME").map(|home| home.join(".local/share")))?;
        Some(data.join("mcp-host").join("oauth"))
    }

    /// The user's store ([`TokenStore::default_dir`]), or a memory store when there is no such
    /// directory.
    pub fn user() -> TokenStore {
        match TokenStore::default_dir() {
            Some(dir) => TokenStore::in_dir(dir),
            None => TokenStore::memory(),
        }
    }

    /// The directory, for a store that keeps files.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The file of a record.
    pub(crate) fn path(&self, key: &RecordKey) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut digest = sha2::Sha256::new();
        digest.update(key.server_url.as_bytes());
        digest.update([0]);
        digest.update(key.client_id.as_deref().unwrap_or("").as_bytes());
        let hex: String = digest
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(dir.join(format!("{hex}.json")))
    }

    /// Reads a record; `None` when there is none (or no file store). A file that is not a
    /// record counts as none, and is replaced at the next save.
    pub(crate) async fn load(&self, key: &RecordKey) -> std::io::Result<Option<Record>> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                Ok(record) if record.server_url == key.server_url => Ok(Some(record)),
                Ok(_) => Ok(None),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "token file unreadable; ignoring it");
                    Ok(None)
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes a record atomically, creating the directory (0700) and the file (0600).
    pub(crate) async fn save(&self, key: &RecordKey, record: &Record) -> std::io::Result<()> {
        let Some(path) = self.path(key) else {
            return Ok(());
        };
        let Some(dir) = path.parent().map(Path::to_path_buf) else {
            return Ok(());
        };
        create_private_dir(&dir).await?;
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|error| std::io::Error::other(error.to_string()))?;
        let temp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("record"),
            u64::from_le_bytes(suffix)
        ));
        let written = async {
            use tokio::io::AsyncWriteExt as _;
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .await?;
            file.write_all(&bytes).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&temp, &path).await
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        written
    }

    /// Removes a record; no record is no error.
    pub(crate) async fn remove(&self, key: &RecordKey) -> std::io::Result<bool> {
        let Some(path) = self.path(key) else {
            return Ok(false);
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// Creates `dir` and its parents; `dir` itself gets mode 0700 (and is set to it if it existed
/// with more).
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;

    if let Some(parent) = dir.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut builder = tokio::fs::DirBuilder::new();
    builder.mode(0o700);
    match builder.create(dir).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let metadata = tokio::fs::metadata(dir).await?;
            if metadata.permissions().mode() & 0o077 != 0 {
                tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}
