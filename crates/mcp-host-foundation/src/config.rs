//! The configuration of one client: what to run, how long to wait for it, and what it may see.
//!
//! A [`ClientConfig`] is plain data as it appears in the host's configuration file (camelCase JSON,
//! every field but `command` optional). [`ClientConfig::validate`] checks everything that can be
//! checked before the server is started and returns the client's [`ClientId`];
//! [`validate_all`] does the same for a whole configuration and rejects repeated ids.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mcp_transport::ServerName;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// The longest client id, in characters.
const MAX_ID_LEN: usize = 64;

/// The validated id of a client: 1 to 64 characters of `A-Z`, `a-z`, `0-9`, `_`, `.` and `-`.
///
/// The id names the server in logs, errors and reports, so it is also its
/// [`ServerName`]. Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(ServerName);

/// The configuration of one client (one MCP server the host starts and talks to).
///
/// Durations are in milliseconds.
/// Either `command` (a local server on stdio) or `url` (a remote server over Streamable HTTP) is
/// required; every other field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// The client's id: 1 to 64 characters of letters, digits, `_`, `.` and `-`.
    /// In a map of servers the id is the key, and this field may be left out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The program to run: a path, or a name looked up in `PATH`.
    /// It is run directly, never through a shell. Exactly one of `command` and `url` is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// The MCP endpoint of a remote server reached over Streamable HTTP (`http://` or
    /// `https://`), instead of a `command`. It may contain `${env:NAME}` references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers sent with every request to a `url` server (for example `Authorization`).
    /// Values may contain `${env:NAME}` references. A value may also be written
    /// `{"value": "…", "secret": true}` to mark it a secret. The whole values of credential
    /// headers (`Authorization`, `Cookie`, names containing `token`, `key`, `secret`,
    /// `password` or `auth`) and of marked ones, and the resolved values that can be secrets,
    /// are masked in every output. Default: none.
    #[serde(default, skip_serializing_if = "ValueMap::has_none")]
    pub headers: ValueMap,
    /// The program's arguments. They may contain `${env:NAME}` references to the host's
    /// environment. Default: none.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables to set in the server's environment, in addition to the allow-listed variables
    /// inherited from the host. Values may contain `${env:NAME}` references to the host's
    /// environment. A value may also be written `{"value": "…", "secret": true}` to mark it a
    /// secret. Marked values, values of variables whose names say `token`, `key`, `secret`,
    /// `password` or `auth`, and resolved values of 8 characters or more (other than absolute
    /// paths) are masked in every output; a value of 1 to 3 characters never is.
    /// Default: none.
    #[serde(default)]
    pub env: ValueMap,
    /// The server's working directory; an existing directory. Default: the host's.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The directories the server may work in, answered to `roots/list`: `file://` URIs or
    /// absolute paths of existing directories. Default: none.
    #[serde(default)]
    pub roots: Vec<String>,
    /// How long the server may take to start and finish the `initialize` handshake, in
    /// milliseconds; more than 0. Default: 30000.
    #[serde(default = "default_startup_timeout_ms")]
    pub startup_timeout_ms: u64,
    /// How long one request to the server may take, in milliseconds; more than 0.
    /// Default: 60000.
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// How long the server may take to exit after its input is closed, before it is
    /// terminated, in milliseconds; 0 terminates it at once. Default: 2000.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Whether the host fails to start when this server fails to start. Default: `false`.
    #[serde(default)]
    pub required: bool,
    /// Which of the server's tools are exposed. Default: all.
    #[serde(default)]
    pub tools: ToolFilter,
    /// Names of components (tools, prompts, resource URIs) that are not exposed.
    /// Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How the server's tools and prompts are named: `true`, namespaced as `<id>__<name>`;
    /// `false`, their own names (with characters outside `A-Z`, `a-z`, `0-9`, `_` and `-`
    /// replaced by `_`), as when one server is bridged as it is, a name another server already
    /// took falling back to `<id>__<name>_<hash>`; `"auto"`, their own names, namespaced only
    /// where another server exposes the same name (both then are, unless the other keeps its
    /// name by `false` or an alias). A name containing `__` is always namespaced, so that no
    /// server takes another's namespaced name. Resource URIs are never namespaced.
    /// Default: `true`.
    #[serde(default)]
    pub namespace: Namespace,
    /// Names to expose instead of the server's own, by tool or prompt name
    /// (`{"get_time": "clock"}`), whatever `namespace` says: 1 to 64 characters of `A-Z`, `a-z`,
    /// `0-9`, `_` and `-`, without `__`, each used once. An alias another server already
    /// exposes falls back to `<id>__<name>_<hash>`. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    /// The protocol revision to agree with the server: `"2025-11-25"` (the `initialize`
    /// handshake; older revisions down to 2024-11-05 are accepted), `"2026-07-28"` (the stateless
    /// revision's `server/discover` only) or `"auto"` (`server/discover`, falling back to
    /// `initialize` when the server answers like an older one; some older stdio servers exit on
    /// the probe). Default: `"2025-11-25"`.
    #[serde(default)]
    pub protocol: ProtocolChoice,
    /// Whether and how the server is restarted after it exits unexpectedly.
    /// Default: never restarted.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How the host authorizes with a `url` server that asks for OAuth (MCP authorization):
    /// every field is optional, discovery and dynamic registration fill in the rest; `false`
    /// turns OAuth off for the server. Default: OAuth when the server asks for it, with tokens
    /// from `mcp-host login`, unless `headers` sets `Authorization`.
    #[serde(default, skip_serializing_if = "AuthSetting::is_default")]
    pub auth: AuthSetting,
}

/// Whether and how the host authorizes with a remote server: `false`, or the settings.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum AuthSetting {
    /// `true` (OAuth when the server asks, with defaults) or `false` (never).
    Enabled(bool),
    /// OAuth with these settings.
    Settings(Box<AuthConfig>),
}

impl Default for AuthSetting {
    fn default() -> AuthSetting {
        AuthSetting::Enabled(true)
    }
}

/// A boolean, or the settings read as [`AuthConfig`] (so that a mistake in them is named, which
/// an untagged enum's error would not do).
impl<'de> Deserialize<'de> for AuthSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AuthSetting, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(enabled) => Ok(AuthSetting::Enabled(enabled)),
            settings => AuthConfig::deserialize(settings)
                .map(|config| AuthSetting::Settings(Box::new(config)))
                .map_err(serde::de::Error::custom),
        }
    }
}

impl AuthSetting {
    fn is_default(&self) -> bool {
        *self == AuthSetting::Enabled(true)
    }

    /// The settings, unless OAuth is turned off (`false`).
    pub fn config(&self) -> Option<AuthConfig> {
        match self {
            AuthSetting::Enabled(false) => None,
            AuthSetting::Enabled(true) => Some(AuthConfig::default()),
            AuthSetting::Settings(config) => Some(AuthConfig::clone(config)),
        }
    }
}

/// How the host authorizes with a remote server (OAuth 2.1, MCP revision 2025-11-25).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// A client id registered with the server's authorization server. Default: a Client ID
    /// Metadata Document (`clientMetadataUrl`) where the server supports them, else dynamic
    /// registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client's secret; write it as `${env:NAME}`. It is masked in every output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The HTTPS URL of this client's Client ID Metadata Document, used as its client id where
    /// the authorization server supports such documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<String>,
    /// The scopes to ask for. Default: those the server names in its challenge, else all those
    /// its protected resource metadata lists (and `offline_access` when the authorization server
    /// offers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// `"authorization_code"` (a person logs in with `mcp-host login`) or `"client_credentials"`
    /// (machine to machine: needs `clientId` and `clientSecret` or `privateKey`).
    /// Default: `"authorization_code"`.
    #[serde(default)]
    pub grant: GrantChoice,
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`. Default: chosen
    /// from what the authorization server supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// A private key in PEM for `private_key_jwt`; write it as `${env:NAME}`. Masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The algorithm of the client assertions signed with `privateKey`. Default: `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<String>,
    /// The enterprise identity provider of `"grant": "identity_assertion"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<IdentityProviderConfig>,
}

/// The enterprise identity provider whose identity assertions the authorization server takes
/// (Enterprise-Managed Authorization, SEP-990).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProviderConfig {
    /// Its token endpoint (RFC 8693 token exchange).
    pub token_endpoint: String,
    /// This client's id there.
    pub client_id: String,
    /// This client's secret there; write it as `${env:NAME}`. Masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The user's ID token from the provider's single sign-on; write it as `${env:NAME}`. Masked.
    pub id_token: String,
}

/// The OAuth grant of a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GrantChoice {
    /// The authorization code grant with PKCE.
    #[default]
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    /// The client credentials grant.
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    /// Enterprise-Managed Authorization (SEP-990): an identity assertion from the identity
    /// provider, taken with the JWT bearer grant.
    #[serde(rename = "identity_assertion")]
    IdentityAssertion,
}

/// How a server's tools and prompts are named (`namespace` in the configuration: `true`,
/// `false` or `"auto"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Namespace {
    /// `<id>__<name>` (`true`).
    #[default]
    Always,
    /// The server's own names (`false`); a name another server took first falls back to
    /// `<id>__<name>_<hash>`.
    Never,
    /// The server's own names, namespaced only where another server exposes the same name
    /// (`"auto"`).
    Auto,
}

impl Serialize for Namespace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Namespace::Always => serializer.serialize_bool(true),
            Namespace::Never => serializer.serialize_bool(false),
            Namespace::Auto => serializer.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Namespace, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Mode(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Flag(true) => Ok(Namespace::Always),
            Written::Flag(false) => Ok(Namespace::Never),
            Written::Mode(mode) if mode == "auto" => Ok(Namespace::Auto),
            Written::Mode(other) => Err(serde::de::Error::custom(format!(
                "expected true, false or \"auto\", found \"{other}\""
            ))),
        }
    }
}

impl JsonSchema for Namespace {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Namespace".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "true: <id>__<name>; false: the server's own names; \"auto\": own names, namespaced only where another server exposes the same name.",
            "oneOf": [{"type": "boolean"}, {"const": "auto"}],
        })
    }
}

/// How the protocol revision is agreed with a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProtocolChoice {
    /// The `initialize` handshake of revision 2025-11-25 (and older).
    #[default]
    #[serde(rename = "2025-11-25")]
    Initialize,
    /// `server/discover` of the stateless revision 2026-07-28 only.
    #[serde(rename = "2026-07-28")]
    Stateless,
    /// `server/discover`, then `initialize` for a server that does not speak 2026-07-28.
    #[serde(rename = "auto")]
    Auto,
}

impl ProtocolChoice {
    /// The session's handshake for this choice.
    pub fn handshake(self) -> mcp_session::Handshake {
        match self {
            ProtocolChoice::Initialize => mcp_session::Handshake::Initialize,
            ProtocolChoice::Stateless => mcp_session::Handshake::Discover,
            ProtocolChoice::Auto => mcp_session::Handshake::Auto,
        }
    }
}

/// Which of a server's tools are exposed.
///
/// A pattern is an exact tool name, or a prefix followed by `*` (`git_*`; `*` alone matches
/// every name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolFilter {
    /// Patterns of the tools that are exposed. Default (absent): all tools.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Patterns of the tools that are never exposed, even when allowed. Default: none.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Whether and how a server is restarted after it exits unexpectedly.
///
/// The delay before restart `n` (counting from 0) is `initialBackoffMs * 2^n`, capped at
/// `maxBackoffMs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    /// How many times the server is restarted at most; 0 turns restarting off. Default: 0.
    #[serde(default)]
    pub max_restarts: u32,
    /// The delay before the first restart, in milliseconds; more than 0. Default: 500.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The longest delay between restarts, in milliseconds; at least `initialBackoffMs`.
    /// Default: 30000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

/// Validates every configuration and checks that no id is used twice.
///
/// Returns the ids in the order of `configs`, or the first error.
pub fn validate_all(configs: &[ClientConfig]) -> Result<Vec<ClientId>, Error> {
    let mut seen = HashSet::with_capacity(configs.len());
    let mut ids = Vec::with_capacity(configs.len());
    for config in configs {
        let id = config.validate()?;
        if !seen.insert(id.clone()) {
            return Err(Error::DuplicateClientId {
                client: id.as_str().to_owned(),
            });
        }
        ids.push(id);
    }
    Ok(ids)
}

impl ClientId {
    /// Checks `id` and wraps it.
    ///
    /// Fails with [`Error::InvalidConfig`] (field `id`) unless `id` has 1 to 64 characters,
    /// each an ASCII letter or digit, `_`, `.` or `-`.
    pub fn new(id: &str) -> Result<ClientId, Error> {
        let invalid = |reason: String| Error::InvalidConfig {
            client: id.to_owned(),
            field: "id".to_owned(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("must not be empty".to_owned()));
        }
        if id.chars().count() > MAX_ID_LEN {
            return Err(invalid(format!(
                "must be at most {MAX_ID_LEN} characters long"
            )));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(invalid(format!(
                "contains {bad:?}; only ASCII letters, digits, `_`, `.` and `-` are allowed"
            )));
        }
        Ok(ClientId(ServerName::new(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id as the name of the server in logs, errors and reports.
    pub fn server_name(&self) -> &ServerName {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Deserializes a string and validates it as [`ClientId::new`] does.
impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClientId, D::Error> {
        let id = String::deserialize(deserializer)?;
        ClientId::new(&id).map_err(serde::de::Error::custom)
    }
}

impl ClientConfig {
    /// A configuration running `command` with no arguments, and defaults everywhere else.
    pub fn new(id: impl Into<String>, command: impl Into<String>) -> ClientConfig {
        ClientConfig {
            id: id.into(),
            command: command.into(),
            url: None,
            headers: ValueMap::new(),
            args: Vec::new(),
            env: ValueMap::new(),
            cwd: None,
            roots: Vec::new(),
            startup_timeout_ms: default_startup_timeout_ms(),
            call_timeout_ms: default_call_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            required: false,
            tools: ToolFilter::default(),
            exclude: Vec::new(),
            namespace: Namespace::Always,
            aliases: BTreeMap::new(),
            protocol: ProtocolChoice::Initialize,
            restart: RestartPolicy::default(),
            auth: AuthSetting::default(),
        }
    }

    /// A configuration of a remote server at `url` (Streamable HTTP), with defaults everywhere
    /// else.
    pub fn remote(id: impl Into<String>, url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            url: Some(url.into()),
            ..ClientConfig::new(id, "")
        }
    }

    /// Whether the server is remote (`url`) rather than a local process (`command`).
    pub fn is_remote(&self) -> bool {
        self.url.is_some()
    }

    /// How long the server may take to start and finish the handshake.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }

    /// How long one request may take.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// How long the server may take to exit after its input is closed.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Checks everything that can be checked before the server is started, and returns the
    /// client's id.
    ///
    /// Checks the id; that exactly one of `command` (not blank) and `url` (`http(s)://`) is set,
    /// and that the fields of the other kind (`args`, `env`, `cwd` / `headers`) are not;
    /// that header names are tokens and values have no line breaks; that no argument or env entry contains NUL
    /// and no env name is empty or contains `=`; that `cwd`, if set, is an existing directory;
    /// that every root is a `file://` URI or an absolute path; that the startup and call
    /// timeouts are more than 0; that tool patterns are well formed; and that the restart
    /// backoffs are more than 0 and ordered. Does not check that roots exist (the
    /// [`RootManager`](crate::RootManager) does when they are set) or that `${env:NAME}`
    /// references resolve (the [`SecurityManager`](crate::SecurityManager) does).
    ///
    /// Fails with [`Error::InvalidConfig`] naming the field (`command`, `args[0]`,
    /// `env.KEY`, `cwd`, `roots[1]`, `startupTimeoutMs`, `tools.allow[0]`,
    /// `restart.maxBackoffMs`, …).
    ///
    /// This reads the file system (`std::fs::metadata` of `cwd`), so it blocks briefly: call it
    /// when loading the configuration, not in async hot paths.
    pub fn validate(&self) -> Result<ClientId, Error> {
        let id = ClientId::new(&self.id)?;
        let invalid = |field: String, reason: &str| Error::InvalidConfig {
            client: self.id.clone(),
            field,
            reason: reason.to_owned(),
        };

        if let Some(url) = &self.url {
            if !self.command.is_empty() {
                return Err(invalid(
                    "url".to_owned(),
                    "cannot be combined with `command`: a server is either local or remote",
                ));
            }
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.contains(char::is_whitespace) {
                return Err(invalid(
                    "url".to_owned(),
                    "must be an http:// or https:// URL without spaces",
                ));
            }
            for (field, set) in [
                ("args", !self.args.is_empty()),
                ("env", !self.env.is_empty()),
                ("cwd", self.cwd.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        field.to_owned(),
                        "applies to `command` servers only, not to a `url`",
                    ));
                }
            }
            for (name, value) in &self.headers {
                let field = format!("headers.{name}");
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if name.is_empty() || !name.chars().all(token) {
                    return Err(invalid(field, "is not a valid header name"));
                }
                if value.contains(['\0', '\r', '\n']) {
                    return Err(invalid(field, "must not contain NUL or line breaks"));
                }
            }
        } else {
            if self.command.trim().is_empty() {
                return Err(invalid(
                    "command".to_owned(),
                    "must not be empty (set `command` for a local server or `url` for a remote one)",
                ));
            }
            if !self.headers.is_empty() {
                return Err(invalid(
                    "headers".to_owned(),
                    "applies to `url` servers only",
                ));
            }
        }
        if self.command.contains('\0') {
            return Err(invalid("command".to_owned(), "must not contain NUL"));
        }
        if let Some(arg_idx) = self.args.iter().position(|arg| arg.contains('\0')) {
            return Err(invalid(format!("args[{arg_idx}]"), "must not contain NUL"));
        }
        for (key, value) in &self.env {
            let field = format!("env.{key}");
            if key.is_empty() {
                return Err(invalid(field, "has an empty variable name"));
            }
            if key.contains('=') || key.contains('\0') {
                return Err(invalid(field, "has a name containing `=` or NUL"));
            }
            if value.contains('\0') {
                return Err(invalid(field, "must not contain NUL"));
            }
        }
        if let Some(cwd) = &self.cwd {
            match std::fs::metadata(cwd) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => return Err(invalid("cwd".to_owned(), "is not a directory")),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Err(invalid("cwd".to_owned(), "does not exist"))
                }
                Err(err) => {
                    return Err(invalid(
                        "cwd".to_owned(),
                        &format!("cannot be read ({})", err.kind()),
                    ))
                }
            }
        }
        for (root_idx, root) in self.roots.iter().enumerate() {
            if let Err(reason) = crate::roots::root_path(root) {
                return Err(invalid(format!("roots[{root_idx}]"), &reason));
            }
        }
        if self.startup_timeout_ms == 0 {
            return Err(invalid(
                "startupTimeoutMs".to_owned(),
                "must be more than 0",
            ));
        }
        if self.call_timeout_ms == 0 {
            return Err(invalid("callTimeoutMs".to_owned(), "must be more than 0"));
        }
        self.tools.validate(&self.id)?;
        if let AuthSetting::Settings(auth) = &self.auth {
            if self.url.is_none() {
                return Err(invalid("auth".to_owned(), "applies to `url` servers only"));
            }
            auth.validate(&invalid)?;
        }
        let mut exposed = HashSet::new();
        for (original, alias) in &self.aliases {
            let field = format!("aliases.{original}");
            let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if alias.is_empty() || alias.len() > MAX_ID_LEN || !alias.chars().all(valid_char) {
                return Err(invalid(
                    field,
                    "must be 1 to 64 characters of ASCII letters, digits, `_` and `-`",
                ));
            }
            if alias.contains("__") {
                return Err(invalid(
                    field,
                    "must not contain `__`, which only namespaced names contain",
                ));
            }
            if !exposed.insert(alias.as_str()) {
                return Err(invalid(field, "is the alias of another name too"));
            }
        }
        if self.restart.initial_backoff_ms == 0 {
            return Err(invalid(
                "restart.initialBackoffMs".to_owned(),
                "must be more than 0",
            ));
        }
        if self.restart.max_backoff_ms < self.restart.initial_backoff_ms {
            return Err(invalid(
                "restart.maxBackoffMs".to_owned(),
                "must be at least `restart.initialBackoffMs`",
            ));
        }
        Ok(id)
    }
}

impl AuthConfig {
    fn validate(&self, invalid: &dyn Fn(String, &str) -> Error) -> Result<(), Error> {
        if let Some(method) = &self.token_endpoint_auth_method {
            let known = [
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ];
            if !known.contains(&method.as_str()) {
                return Err(invalid(
                    "auth.tokenEndpointAuthMethod".to_owned(),
                    "must be `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`",
                ));
            }
        }
        if let Some(url) = &self.client_metadata_url {
            if !url.starts_with("https://") {
                return Err(invalid(
                    "auth.clientMetadataUrl".to_owned(),
                    "must be an https:// URL",
                ));
            }
        }
        if self.grant == GrantChoice::ClientCredentials && self.client_id.is_none() {
            return Err(invalid(
                "auth.clientId".to_owned(),
                "is required with `\"grant\": \"client_credentials\"`",
            ));
        }
        if self.grant == GrantChoice::IdentityAssertion {
            if self.client_id.is_none() {
                return Err(invalid(
                    "auth.clientId".to_owned(),
                    "is required with `\"grant\": \"identity_assertion\"`",
                ));
            }
            if self.identity_provider.is_none() {
                return Err(invalid(
                    "auth.identityProvider".to_owned(),
                    "is required with `\"grant\": \"identity_assertion\"`",
                ));
            }
        }
        if (self.client_secret.is_some() || self.private_key.is_some()) && self.client_id.is_none()
        {
            return Err(invalid(
                "auth.clientId".to_owned(),
                "is required with `clientSecret` or `privateKey`",
            ));
        }
        Ok(())
    }
}

impl ToolFilter {
    /// Whether the tool `tool_name` is exposed: it matches no `deny` pattern, and `allow` is
    /// absent or it matches one of its patterns.
    pub fn allows(&self, tool_name: &str) -> bool {
        if self.deny.iter().any(|pattern| matches(pattern, tool_name)) {
            return false;
        }
        match &self.allow {
            None => true,
            Some(allow) => allow.iter().any(|pattern| matches(pattern, tool_name)),
        }
    }

    /// Checks that every pattern is non-empty and has `*` only at its end.
    fn validate(&self, client: &str) -> Result<(), Error> {
        let lists = [
            ("allow", self.allow.as_deref().unwrap_or_default()),
            ("deny", &self.deny),
        ];
        for (list, patterns) in lists {
            for (pattern_idx, pattern) in patterns.iter().enumerate() {
                let reason = if pattern.is_empty() {
                    "must not be empty"
                } else if pattern.strip_suffix('*').unwrap_or(pattern).contains('*') {
                    "may contain `*` only at its end"
                } else {
                    continue;
                };
                return Err(Error::InvalidConfig {
                    client: client.to_owned(),
                    field: format!("tools.{list}[{pattern_idx}]"),
                    reason: reason.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl RestartPolicy {
    /// Whether the server is restarted at all (`maxRestarts` > 0).
    pub fn is_enabled(&self) -> bool {
        self.max_restarts > 0
    }

    /// The delay before restart `attempt` (counting from 0): the initial backoff doubled
    /// `attempt` times, capped at the maximum backoff. Never overflows.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let millis = 1u64
            .checked_shl(attempt)
            .and_then(|factor| self.initial_backoff_ms.checked_mul(factor))
            .map_or(self.max_backoff_ms, |millis| {
                millis.min(self.max_backoff_ms)
            });
        Duration::from_millis(millis)
    }
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 0,
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

/// Whether `name` matches `pattern`: equal, or starting with the part before a final `*`.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn default_startup_timeout_ms() -> u64 {
    30_000
}

fn default_call_timeout_ms() -> u64 {
    60_000
}

fn default_shutdown_grace_ms() -> u64 {
    2_000
}

fn default_initial_backoff_ms() -> u64 {
    500
}

fn default_max_backoff_ms() -> u64 {
    30_000
}

/// Named values of a configuration (`env` variables, `headers`): each a text, or an object
/// `{"value": "…", "secret": true}` that marks the value a secret whatever it looks like.
///
/// It derefs to the map of names to values, so it reads and changes like one; the secret marks
/// are kept beside it ([`ValueMap::insert_secret`], [`ValueMap::is_secret`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValueMap {
    values: BTreeMap<String, String>,
    secret: BTreeSet<String>,
}

/// One value as it is written: a text, or a text with its secret mark.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
enum ConfigValue {
    /// The value.
    Text(String),
    /// The value, marked a secret (or not).
    Marked {
        /// The value; it may contain `${env:NAME}` references.
        value: String,
        /// Whether the value is a secret, masked in every output whatever its length (from 4
        /// characters). Default: `false`, which still treats values as secrets when they look
        /// like one (see the security documentation).
        #[serde(default)]
        secret: bool,
    },
}

impl ValueMap {
    /// An empty map.
    pub fn new() -> ValueMap {
        ValueMap::default()
    }

    /// Sets `name` to `value` and marks the value a secret.
    pub fn insert_secret(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.secret.insert(name.clone());
        self.values.insert(name, value.into());
    }

    /// Whether the map is empty.
    fn has_none(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether the value of `name` is marked a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        self.secret.contains(name) && self.values.contains_key(name)
    }
}

impl std::ops::Deref for ValueMap {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &BTreeMap<String, String> {
        &self.values
    }
}

impl std::ops::DerefMut for ValueMap {
    fn deref_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.values
    }
}

impl<'a> IntoIterator for &'a ValueMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.values.iter()
    }
}

impl FromIterator<(String, String)> for ValueMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> ValueMap {
        ValueMap {
            values: iter.into_iter().collect(),
            secret: BTreeSet::new(),
        }
    }
}

impl From<BTreeMap<String, String>> for ValueMap {
    fn from(values: BTreeMap<String, String>) -> ValueMap {
        ValueMap {
            values,
            secret: BTreeSet::new(),
        }
    }
}

impl Serialize for ValueMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in &self.values {
            if self.is_secret(name) {
                let marked = ConfigValue::Marked {
                    value: value.clone(),
                    secret: true,
                };
                map.serialize_entry(name, &marked)?;
            } else {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ValueMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ValueMap, D::Error> {
        let written = BTreeMap::<String, ConfigValue>::deserialize(deserializer)?;
        let mut map = ValueMap::new();
        for (name, value) in written {
            match value {
                ConfigValue::Text(value)
                | ConfigValue::Marked {
                    value,
                    secret: false,
                } => {
                    map.values.insert(name, value);
                }
                ConfigValue::Marked {
                    value,
                    secret: true,
                } => map.insert_secret(name, value),
            }
        }
        Ok(map)
    }
}

impl JsonSchema for ValueMap {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValueMap".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <BTreeMap<String, ConfigValue>>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_host_testkit::TempDir;

    fn config() -> ClientConfig {
        ClientConfig::new("srv", "server-bin")
    }

    /// Checks that validating `config` succeeds (`expect = None`) or fails with the error whose
    /// display is `expect`.
    #[track_caller]
    fn check(config: ClientConfig, expect: Option<&str>) {
        let actual = config.validate().map_err(|err| err.to_string());
        match (actual, expect) {
            (Ok(id), None) => assert_eq!(id.as_str(), config.id),
            (Err(actual), Some(expect)) => assert_eq!(actual, expect),
            (actual, expect) => panic!("expected {expect:?}, got {actual:?}"),
        }
    }

    #[test]
    fn ids() {
        #[track_caller]
        fn check_id(id: &str, expect: Option<&str>) {
            check(ClientConfig::new(id, "x"), expect);
        }
        check_id("a", None);
        check_id("my-server_2.0", None);
        check_id(&"a".repeat(64), None);
        check_id(
            "",
            Some("invalid configuration of client ``: `id` must not be empty"),
        );
        check_id(
            &"a".repeat(65),
            Some(&format!(
                "invalid configuration of client `{}`: `id` must be at most 64 characters long",
                "a".repeat(65)
            )),
        );
        check_id(
            "a/b",
            Some("invalid configuration of client `a/b`: `id` contains '/'; only ASCII letters, digits, `_`, `.` and `-` are allowed"),
        );
        check_id(
            "é",
            Some("invalid configuration of client `é`: `id` contains 'é'; only ASCII letters, digits, `_`, `.` and `-` are allowed"),
        );
        check_id(
            "a b",
            Some("invalid configuration of client `a b`: `id` contains ' '; only ASCII letters, digits, `_`, `.` and `-` are allowed"),
        );

        let id = ClientId::new("srv").unwrap();
        assert_eq!(id.to_string(), "srv");
        assert_eq!(format!("{id:?}"), "\"srv\"");
        assert_eq!(id.server_name().as_str(), "srv");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"srv\"");
        assert_eq!(serde_json::from_str::<ClientId>("\"srv\"").unwrap(), id);
        assert!(serde_json::from_str::<ClientId>("\"a/b\"").is_err());
    }

    #[test]
    fn validation() {
        let dir = TempDir::new("mcp-host-foundation-config-validation");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let with = |edit: &dyn Fn(&mut ClientConfig)| {
            let mut config = config();
            edit(&mut config);
            config
        };
        let err = |field: &str, reason: &str| {
            format!("invalid configuration of client `srv`: `{field}` {reason}")
        };

        check(config(), None);
        check(
            with(&|c| {
                c.args = vec!["--x".into(), "${env:TOKEN}".into()];
                c.env.insert("KEY".into(), "${env:TOKEN}".into());
                c.cwd = Some(dir.path().to_path_buf());
                c.roots = vec!["/".into(), "file:///tmp".into()];
                c.shutdown_grace_ms = 0;
                c.tools.allow = Some(vec!["*".into(), "git_*".into(), "read".into()]);
                c.restart = RestartPolicy {
                    max_restarts: 3,
                    initial_backoff_ms: 100,
                    max_backoff_ms: 100,
                };
            }),
            None,
        );
        check(
            with(&|c| c.command = String::new()),
            Some(&err(
                "command",
                "must not be empty (set `command` for a local server or `url` for a remote one)",
            )),
        );
        check(
            with(&|c| c.command = " \t".into()),
            Some(&err(
                "command",
                "must not be empty (set `command` for a local server or `url` for a remote one)",
            )),
        );
        check(
            with(&|c| c.args = vec!["ok".into(), "a\0b".into()]),
            Some(&err("args[1]", "must not contain NUL")),
        );
        check(
            with(&|c| {
                c.env.insert("A=B".into(), "v".into());
            }),
            Some(&err("env.A=B", "has a name containing `=` or NUL")),
        );
        check(
            with(&|c| {
                c.env.insert(String::new(), "v".into());
            }),
            Some(&err("env.", "has an empty variable name")),
        );
        check(
            with(&|c| {
                c.env.insert("KEY".into(), "a\0".into());
            }),
            Some(&err("env.KEY", "must not contain NUL")),
        );
        check(
            with(&|c| c.cwd = Some(dir.path().join("missing"))),
            Some(&err("cwd", "does not exist")),
        );
        check(
            with(&|c| c.cwd = Some(file.clone())),
            Some(&err("cwd", "is not a directory")),
        );
        check(
            with(&|c| c.roots = vec!["/ok".into(), "relative/dir".into()]),
            Some(&err(
                "roots[1]",
                "must be a `file://` URI or an absolute path",
            )),
        );
        check(
            with(&|c| c.roots = vec!["file://host/x".into()]),
            Some(&err(
                "roots[0]",
                "must be a `file://` URI with an empty host or `localhost`",
            )),
        );
        check(
            with(&|c| c.startup_timeout_ms = 0),
            Some(&err("startupTimeoutMs", "must be more than 0")),
        );
        check(
            with(&|c| c.call_timeout_ms = 0),
            Some(&err("callTimeoutMs", "must be more than 0")),
        );
        check(
            with(&|c| c.tools.allow = Some(vec!["a".into(), String::new()])),
            Some(&err("tools.allow[1]", "must not be empty")),
        );
        check(
            with(&|c| {
                c.tools.allow = Some(vec!["a".into()]);
                c.tools.deny = vec!["b".into(), "a*b".into()];
            }),
            Some(&err("tools.deny[1]", "may contain `*` only at its end")),
        );
        check(
            with(&|c| {
                c.aliases.insert("a".into(), "x".into());
                c.aliases.insert("b".into(), "y-1".into());
            }),
            None,
        );
        for (alias, reason) in [
            (
                "",
                "must be 1 to 64 characters of ASCII letters, digits, `_` and `-`",
            ),
            (
                "a b",
                "must be 1 to 64 characters of ASCII letters, digits, `_` and `-`",
            ),
            (
                "github__x",
                "must not contain `__`, which only namespaced names contain",
            ),
        ] {
            check(
                with(&|c| {
                    c.aliases.insert("t".into(), alias.into());
                }),
                Some(&err("aliases.t", reason)),
            );
        }
        check(
            with(&|c| {
                c.aliases.insert("a".into(), "same".into());
                c.aliases.insert("b".into(), "same".into());
            }),
            Some(&err("aliases.b", "is the alias of another name too")),
        );
        check(
            with(&|c| c.restart.initial_backoff_ms = 0),
            Some(&err("restart.initialBackoffMs", "must be more than 0")),
        );
        check(
            with(&|c| c.restart.max_backoff_ms = 10),
            Some(&err(
                "restart.maxBackoffMs",
                "must be at least `restart.initialBackoffMs`",
            )),
        );
    }

    #[test]
    fn duplicates() {
        #[track_caller]
        fn check_all(ids: &[&str], expect: Result<&[&str], &str>) {
            let configs: Vec<_> = ids.iter().map(|id| ClientConfig::new(*id, "x")).collect();
            let actual = validate_all(&configs);
            match (actual, expect) {
                (Ok(actual), Ok(expect)) => {
                    let actual: Vec<_> = actual.iter().map(ClientId::as_str).collect();
                    assert_eq!(actual, expect);
                }
                (Err(actual), Err(expect)) => assert_eq!(actual.to_string(), expect),
                (actual, expect) => panic!("expected {expect:?}, got {actual:?}"),
            }
        }
        check_all(&[], Ok(&[]));
        check_all(&["b", "a"], Ok(&["b", "a"]));
        check_all(
            &["a", "b", "a"],
            Err("client id `a` is used more than once"),
        );
        check_all(
            &["a", "", "a"],
            Err("invalid configuration of client ``: `id` must not be empty"),
        );
    }

    #[test]
    fn serde() {
        #[track_caller]
        fn check_json(json: &str, expect: ClientConfig) {
            let actual: ClientConfig = serde_json::from_str(json).unwrap();
            assert_eq!(actual, expect);
            let round_trip: ClientConfig =
                serde_json::from_value(serde_json::to_value(&actual).unwrap()).unwrap();
            assert_eq!(round_trip, expect);
        }
        check_json(r#"{"command":"x"}"#, ClientConfig::new("", "x"));
        // A value marked secret, beside plain ones.
        let mut marked = ClientConfig::new("", "x");
        marked.env.insert("A".into(), "1".into());
        marked.env.insert_secret("PIN", "${env:PIN}");
        check_json(
            r#"{"command":"x","env":{"A":"1","PIN":{"value":"${env:PIN}","secret":true}}}"#,
            marked.clone(),
        );
        assert!(marked.env.is_secret("PIN") && !marked.env.is_secret("A"));
        let unmarked: ClientConfig =
            serde_json::from_str(r#"{"command":"x","env":{"A":{"value":"1"}}}"#).unwrap();
        assert_eq!(unmarked.env["A"], "1");
        assert!(!unmarked.env.is_secret("A"));
        let bad = serde_json::from_str::<ClientConfig>(r#"{"command":"x","env":{"A":7}}"#);
        assert!(bad.is_err());
        let mut full = ClientConfig::new("srv", "npx");
        full.args = vec!["-y".into()];
        full.env.insert("TOKEN".into(), "${env:GH}".into());
        full.cwd = Some("/tmp".into());
        full.roots = vec!["file:///tmp".into()];
        full.startup_timeout_ms = 1;
        full.call_timeout_ms = 2;
        full.shutdown_grace_ms = 3;
        full.required = true;
        full.tools = ToolFilter {
            allow: Some(vec!["a*".into()]),
            deny: vec!["b".into()],
        };
        full.exclude = vec!["prompt".into()];
        full.namespace = Namespace::Never;
        full.aliases.insert("get_time".into(), "clock".into());
        full.protocol = ProtocolChoice::Auto;
        full.restart = RestartPolicy {
            max_restarts: 4,
            initial_backoff_ms: 5,
            max_backoff_ms: 6,
        };
        check_json(
            r#"{
                "id": "srv", "command": "npx", "args": ["-y"], "env": {"TOKEN": "${env:GH}"},
                "cwd": "/tmp", "roots": ["file:///tmp"], "startupTimeoutMs": 1,
                "callTimeoutMs": 2, "shutdownGraceMs": 3, "required": true,
                "tools": {"allow": ["a*"], "deny": ["b"]}, "exclude": ["prompt"],
                "namespace": false, "aliases": {"get_time": "clock"}, "protocol": "auto",
                "restart": {"maxRestarts": 4, "initialBackoffMs": 5, "maxBackoffMs": 6}
            }"#,
            full,
        );
        let mut partial_restart = ClientConfig::new("", "x");
        partial_restart.restart.max_restarts = 2;
        check_json(
            r#"{"command":"x","restart":{"maxRestarts":2}}"#,
            partial_restart,
        );
        // The three name modes.
        for (written, mode) in [
            ("true", Namespace::Always),
            ("false", Namespace::Never),
            ("\"auto\"", Namespace::Auto),
        ] {
            let config: ClientConfig =
                serde_json::from_str(&format!(r#"{{"command":"x","namespace":{written}}}"#))
                    .unwrap();
            assert_eq!(config.namespace, mode);
            assert_eq!(
                serde_json::to_value(config.namespace).unwrap().to_string(),
                written
            );
        }
        let bad =
            serde_json::from_str::<ClientConfig>(r#"{"command":"x","namespace":"sometimes"}"#);
        assert!(bad.is_err());
        // Neither `command` nor `url`: it reads, but does not validate.
        let neither: ClientConfig = serde_json::from_str(r#"{"id":"x"}"#).unwrap();
        assert!(neither.validate().is_err());
    }

    #[test]
    fn schema() {
        let schema = serde_json::to_string(&schemars::schema_for!(ClientConfig)).unwrap();
        for expect in [
            "startupTimeoutMs",
            "callTimeoutMs",
            "shutdownGraceMs",
            "maxBackoffMs",
            "namespace",
            "aliases",
            "2026-07-28",
            "Default: 30000.",
            "\"secret\"",
        ] {
            assert!(schema.contains(expect), "{expect} not in {schema}");
        }
    }

    #[test]
    fn auth_settings() {
        let remote = |auth: &str| -> Result<ClientConfig, String> {
            let json = format!(r#"{{"id":"r","url":"https://mcp.example.com/mcp","auth":{auth}}}"#);
            let config: ClientConfig = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            config.validate().map(|_| config).map_err(|e| e.to_string())
        };
        assert_eq!(remote("false").unwrap().auth.config(), None);
        assert_eq!(
            remote("true").unwrap().auth.config(),
            Some(AuthConfig::default())
        );
        let full = remote(
            r#"{"clientId":"c","clientSecret":"${env:S}","clientMetadataUrl":"https://app.example/cimd.json",
                "scopes":["a","b"],"grant":"client_credentials","tokenEndpointAuthMethod":"client_secret_post",
                "privateKey":"${env:K}","signingAlgorithm":"RS256"}"#,
        )
        .unwrap();
        let auth = full.auth.config().unwrap();
        assert_eq!(auth.grant, GrantChoice::ClientCredentials);
        assert_eq!(
            auth.scopes.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        // Round trip; the default is not written.
        let round_trip: ClientConfig =
            serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap();
        assert_eq!(round_trip, full);
        let plain = serde_json::to_value(ClientConfig::remote("r", "https://x/mcp")).unwrap();
        assert!(plain.get("auth").is_none(), "{plain}");

        let err = |field: &str, reason: &str| {
            format!("invalid configuration of client `r`: `{field}` {reason}")
        };
        assert_eq!(
            remote(r#"{"grant":"client_credentials"}"#).unwrap_err(),
            err(
                "auth.clientId",
                "is required with `\"grant\": \"client_credentials\"`"
            )
        );
        assert_eq!(
            remote(r#"{"clientSecret":"s"}"#).unwrap_err(),
            err(
                "auth.clientId",
                "is required with `clientSecret` or `privateKey`"
            )
        );
        assert_eq!(
            remote(r#"{"tokenEndpointAuthMethod":"magic"}"#).unwrap_err(),
            err(
                "auth.tokenEndpointAuthMethod",
                "must be `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`"
            )
        );
        assert_eq!(
            remote(r#"{"clientMetadataUrl":"http://app.example/cimd.json"}"#).unwrap_err(),
            err("auth.clientMetadataUrl", "must be an https:// URL")
        );
        assert_eq!(
            remote(r#"{"grant":"identity_assertion","clientId":"c"}"#).unwrap_err(),
            err(
                "auth.identityProvider",
                "is required with `\"grant\": \"identity_assertion\"`"
            )
        );
        let enterprise = remote(
            r#"{"grant":"identity_assertion","clientId":"c","identityProvider":
                {"tokenEndpoint":"https://idp.example/token","clientId":"i","idToken":"${env:ID}"}}"#,
        )
        .unwrap();
        assert_eq!(
            enterprise
                .auth
                .config()
                .unwrap()
                .identity_provider
                .unwrap()
                .client_id,
            "i"
        );
        assert!(remote(r#"{"clientid":"typo"}"#)
            .unwrap_err()
            .contains("unknown field"));
        let mut local = ClientConfig::new("r", "x");
        local.auth = AuthSetting::Settings(Box::default());
        assert_eq!(
            local.validate().unwrap_err().to_string(),
            err("auth", "applies to `url` servers only")
        );
    }

    #[test]
    fn tool_filter() {
        #[track_caller]
        fn check_filter(allow: Option<&[&str]>, deny: &[&str], tool: &str, expect: bool) {
            let filter = ToolFilter {
                allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
                deny: deny.iter().map(|s| s.to_string()).collect(),
            };
            assert_eq!(filter.allows(tool), expect, "{filter:?} allows {tool}");
        }
        check_filter(None, &[], "any", true);
        check_filter(Some(&[]), &[], "any", false);
        check_filter(Some(&["read"]), &[], "read", true);
        check_filter(Some(&["read"]), &[], "read_file", false);
        check_filter(Some(&["read*"]), &[], "read_file", true);
        check_filter(Some(&["read*"]), &[], "read", true);
        check_filter(Some(&["read*"]), &[], "write", false);
        check_filter(Some(&["*"]), &[], "anything", true);
        check_filter(None, &["rm"], "rm", false);
        check_filter(None, &["rm"], "rmdir", true);
        check_filter(None, &["rm*"], "rmdir", false);
        check_filter(Some(&["*"]), &["rm*"], "rmdir", false);
        check_filter(Some(&["rm"]), &["rm"], "rm", false);
        check_filter(None, &["*"], "read", false);
    }

    #[test]
    fn restart_policy() {
        #[track_caller]
        fn check_backoff(initial: u64, max: u64, attempt: u32, expect_ms: u64) {
            let policy = RestartPolicy {
                max_restarts: 1,
                initial_backoff_ms: initial,
                max_backoff_ms: max,
            };
            assert_eq!(policy.backoff(attempt), Duration::from_millis(expect_ms));
        }
        assert!(!RestartPolicy::default().is_enabled());
        assert_eq!(RestartPolicy::default().initial_backoff_ms, 500);
        assert_eq!(RestartPolicy::default().max_backoff_ms, 30_000);
        check_backoff(500, 30_000, 0, 500);
        check_backoff(500, 30_000, 1, 1_000);
        check_backoff(500, 30_000, 2, 2_000);
        check_backoff(500, 30_000, 5, 16_000);
        check_backoff(500, 30_000, 6, 30_000);
        check_backoff(500, 30_000, 63, 30_000);
        check_backoff(500, 30_000, 64, 30_000);
        check_backoff(500, 30_000, 100, 30_000);
        check_backoff(500, 30_000, u32::MAX, 30_000);
        check_backoff(u64::MAX, u64::MAX, 1, u64::MAX);
        check_backoff(1, u64::MAX, 63, 1 << 63);
    }
}
