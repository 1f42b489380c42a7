//! Environment isolation and secrets: what a server inherits from the host, and what is masked.
//!
//! A server does not inherit the host's environment. [`SecurityManager::command_for`] builds its
//! command from an allow-list of harmless host variables plus the variables its configuration
//! sets, resolving `${env:NAME}` references against a snapshot of the host's environment.
//!
//! Values that can be secrets are registered, for the client they were resolved for, and
//! [`SecurityManager::mask`] replaces them by `****` in any text before it is logged or put in
//! an error ([`SecurityManager::mask_value`], [`SecurityManager::mask_rpc_error`] and
//! [`SecurityManager::mask_session_error`] do the same for JSON and errors). A value can be a
//! secret when the configuration marks it (`{"value": "…", "secret": true}`), when the name of
//! its variable or header, or of the host variable it came from, says so (`token`, `key`,
//! `secret`, `password`, `auth`, …), or when it is a resolved value of at least 8 characters
//! that is not an absolute path; a value of 1 to 3 characters never is (masking every `1` of
//! every line helps nobody). [`SecurityManager::forget_client`] forgets the secrets of a client
//! that was removed, unless another client or the host registered the same value.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use mcp_session::protocol::RpcError;
use mcp_transport::ServerCommand;
use serde_json::Value;

use crate::{ClientConfig, ClientId, Error};

/// The host variables a server inherits when they are set.
///
/// These carry no credentials and are what ordinary programs need to run: `PATH` to find
/// programs (`npx`, `uvx`, `node`, `python`); `HOME`, `USER`, `LOGNAME` and `SHELL` to find the
/// user's configuration and caches; `LANG`, `LANGUAGE` and `LC_*` for the locale and text
/// encoding; `TERM` for terminal handling; `TMPDIR` for temporary files; `TZ` for the time zone;
/// and the `XDG_*` base directories.
///
/// Everything else, in particular credentials such as `AWS_*`, `GITHUB_TOKEN` or
/// `OPENAI_API_KEY`, is not inherited: a configuration passes it on explicitly, as
/// `"env": {"GITHUB_TOKEN": "${env:GITHUB_TOKEN}"}`.
pub const DEFAULT_ENV_ALLOW_LIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TERM",
    "TMPDIR",
    "TZ",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
];

/// Builds isolated server commands and masks the secrets they were given.
///
/// Holds a snapshot of the host's environment taken when it is created, the allow-list of
/// variables servers inherit ([`DEFAULT_ENV_ALLOW_LIST`] unless changed), and the registered
/// secrets with the clients they belong to. Cheap to clone: clones share the snapshot and the
/// secrets, so a secret registered through one clone is masked by all.
///
/// Its `Debug` output shows counts and variable names, never values or secrets.
#[derive(Clone)]
pub struct SecurityManager {
    /// The host's environment when the manager was created.
    host_env: Arc<HashMap<String, String>>,
    /// The names of the host variables servers inherit.
    allow_list: Arc<[String]>,
    /// Every registered secret, longest first, without duplicate values.
    secrets: Arc<RwLock<Vec<Secret>>>,
}

/// A registered secret and who registered it.
struct Secret {
    value: String,
    /// The clients it was resolved for; it is forgotten when the last one is.
    clients: BTreeSet<String>,
    /// Registered by the host itself ([`SecurityManager::register_secret`]): never forgotten.
    host: bool,
}

/// Who registers a secret.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Host,
    Client(&'a str),
}

/// What replaces a secret in masked text.
const MASK: &str = "****";

/// Values shorter than this (in characters) are never secrets.
const MIN_SECRET_CHARS: usize = 4;

/// Resolved values at least this long (in characters) are secrets even when nothing names them
/// so (unless they are absolute paths).
const SECRET_BY_LENGTH: usize = 8;

/// Words that, in the name of a variable or header, say that its value is a secret.
const SECRET_WORDS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "credential",
    "auth",
    "cookie",
];

/// Whether the name of a variable or header says that its value is a secret.
fn says_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// Whether `value` can be a secret: never below [`MIN_SECRET_CHARS`] characters; otherwise when
/// `named` (a name or the configuration says so), or when at least [`SECRET_BY_LENGTH`]
/// characters long and not an absolute path (`${env:HOME}` is not a secret).
fn can_be_secret(value: &str, named: bool) -> bool {
    let n_chars = value.chars().count();
    if n_chars < MIN_SECRET_CHARS {
        return false;
    }
    named || (n_chars >= SECRET_BY_LENGTH && !std::path::Path::new(value).is_absolute())
}

impl SecurityManager {
    /// A manager with a snapshot of the host's environment (variables whose name or value is not
    /// UTF-8 are skipped) and the [`DEFAULT_ENV_ALLOW_LIST`].
    pub fn new() -> SecurityManager {
        SecurityManager::with_host_env(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// A manager that sees `vars` as the host's environment, with the [`DEFAULT_ENV_ALLOW_LIST`].
    pub fn with_host_env(vars: impl IntoIterator<Item = (String, String)>) -> SecurityManager {
        SecurityManager {
            host_env: Arc::new(vars.into_iter().collect()),
            allow_list: DEFAULT_ENV_ALLOW_LIST
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            secrets: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// The same manager, with `names` as the host variables servers inherit.
    pub fn with_allow_list(self, names: &[&str]) -> SecurityManager {
        SecurityManager {
            allow_list: names.iter().map(|name| (*name).to_owned()).collect(),
            ..self
        }
    }

    /// Builds the command that runs the server of a validated `config`.
    ///
    /// The program is `config.command`, run directly, never through a shell. In the arguments
    /// and in the values of `config.env`, every `${env:NAME}` reference (also inside a longer
    /// text, as in `Bearer ${env:TOKEN}`) is replaced by the value of `NAME` in the host's
    /// environment, and that value is registered as a secret. `$${` stands for a literal `${`,
    /// and a `${` that does not start a complete `${env:NAME}` is kept as it is. The server
    /// starts from an empty environment (`inherit_env` is `false`) with the allow-listed host
    /// variables that are set, then the variables of `config.env`, which win over inherited
    /// ones. The working directory is `config.cwd`.
    ///
    /// Fails with [`Error::MissingSecret`] when a reference names a variable that is not set in
    /// the host's environment.
    pub fn command_for(&self, config: &ClientConfig) -> Result<ServerCommand, Error> {
        let client = config.id.as_str();
        let args = config
            .args
            .iter()
            .map(|arg| self.resolve(client, arg, false))
            .collect::<Result<Vec<_>, _>>()?;

        let mut seen = HashSet::new();
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        for name in self.allow_list.iter() {
            if config.env.contains_key(name) || !seen.insert(name.as_str()) {
                continue;
            }
            if let Some(value) = self.host_env.get(name) {
                env.push((name.into(), value.into()));
            }
        }
        for (name, value) in &config.env {
            let named = config.env.is_secret(name) || says_secret(name);
            let resolved = self.resolve(client, value, named)?;
            if named && can_be_secret(&resolved, true) {
                // The whole value, even when written literally.
                self.register(&resolved, Owner::Client(client));
            }
            env.push((name.into(), resolved.into()));
        }

        let mut command = ServerCommand::new(&config.command).args(args);
        command.env = env;
        command.inherit_env = false;
        command.cwd = config.cwd.clone();
        Ok(command)
    }

    /// Builds the HTTP options that reach the remote server of a validated `config` (one with a
    /// `url`).
    ///
    /// `${env:NAME}` references in the URL and in header values are resolved as for
    /// [`SecurityManager::command_for`], and their values registered as secrets when they can be
    /// ones; so are the whole values of credential headers (`Authorization`,
    /// `Proxy-Authorization`, `Cookie`, names containing `token`, `key`, `secret`, `password` or
    /// `auth`, and headers marked `"secret": true`), and the credential after a scheme
    /// (`Bearer …`), even when written literally.
    ///
    /// Fails with [`Error::MissingSecret`] when a reference names a variable that is not set,
    /// and with [`Error::InvalidConfig`] when the configuration has no `url`.
    pub fn http_for(&self, config: &ClientConfig) -> Result<mcp_http::HttpOptions, Error> {
        let client = config.id.as_str();
        let Some(url) = &config.url else {
            return Err(Error::InvalidConfig {
                client: client.to_owned(),
                field: "url".to_owned(),
                reason: "is not set".to_owned(),
            });
        };
        let mut options = mcp_http::HttpOptions::new(self.resolve(client, url, false)?);
        for (name, value) in &config.headers {
            // `Authorization`, `Proxy-Authorization` and `Cookie` say it by their names too.
            let credential = config.headers.is_secret(name) || says_secret(name);
            let value = self.resolve(client, value, credential)?;
            if credential {
                // `Bearer abc`: mask the credential itself too, wherever it shows up alone.
                if can_be_secret(&value, true) {
                    self.register(&value, Owner::Client(client));
                }
                if let Some((_, credential)) = value.split_once(' ') {
                    if can_be_secret(credential.trim(), true) {
                        self.register(credential.trim(), Owner::Client(client));
                    }
                }
            }
            options.headers.push((name.clone(), value));
        }
        Ok(options)
    }

    /// The OAuth settings of a validated remote `config`, or `None` when the host does not
    /// authorize with it: OAuth turned off (`"auth": false`), or an `Authorization` header
    /// configured (a static token wins).
    ///
    /// `${env:NAME}` references in `clientId`, `clientSecret` and `privateKey` are resolved;
    /// the secret and the key are registered as secrets (masked in every output).
    ///
    /// Fails with [`Error::MissingSecret`] when a reference names a variable that is not set.
    pub fn auth_for(&self, config: &ClientConfig) -> Result<Option<mcp_auth::AuthOptions>, Error> {
        let client = config.id.as_str();
        let Some(auth) = config.auth.config() else {
            return Ok(None);
        };
        if config
            .headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("authorization"))
        {
            return Ok(None);
        }
        let secret = |value: &Option<String>| -> Result<Option<String>, Error> {
            let Some(value) = value else {
                return Ok(None);
            };
            let resolved = self.resolve(client, value, true)?;
            if can_be_secret(&resolved, true) {
                self.register(&resolved, Owner::Client(client));
            }
            Ok(Some(resolved))
        };
        let client_secret = secret(&auth.client_secret)?;
        let private_key = secret(&auth.private_key)?;
        let identity_provider = match &auth.identity_provider {
            Some(provider) => Some(mcp_auth::IdentityProvider {
                token_endpoint: self.resolve(client, &provider.token_endpoint, false)?,
                client_id: self.resolve(client, &provider.client_id, false)?,
                client_secret: secret(&provider.client_secret)?,
                id_token: secret(&Some(provider.id_token.clone()))?.unwrap_or_default(),
            }),
            None => None,
        };
        let client_id = match &auth.client_id {
            Some(id) => Some(self.resolve(client, id, false)?),
            None => None,
        };
        Ok(Some(mcp_auth::AuthOptions {
            client_id,
            client_secret,
            client_metadata_url: auth.client_metadata_url.clone(),
            scopes: auth.scopes.clone(),
            grant: match auth.grant {
                crate::GrantChoice::AuthorizationCode => mcp_auth::Grant::AuthorizationCode,
                crate::GrantChoice::ClientCredentials => mcp_auth::Grant::ClientCredentials,
                crate::GrantChoice::IdentityAssertion => mcp_auth::Grant::IdentityAssertion,
            },
            identity_provider,
            token_endpoint_auth_method: auth.token_endpoint_auth_method.clone(),
            private_key,
            signing_algorithm: auth.signing_algorithm.clone(),
            ..mcp_auth::AuthOptions::default()
        }))
    }

    /// Registers `value` as a secret of the host, so that [`SecurityManager::mask`] hides it from
    /// now on (it is never forgotten).
    ///
    /// A value of fewer than 4 characters is ignored: it is not a secret anyone could keep, and
    /// masking it would hide every occurrence of it in every line.
    pub fn register_secret(&self, value: &str) {
        self.register(value, Owner::Host);
    }

    /// Forgets the secrets registered for `client` (a client that was removed), except values
    /// that another client or the host registered too.
    pub fn forget_client(&self, client: &ClientId) {
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        secrets.retain_mut(|secret| {
            secret.clients.remove(client.as_str());
            secret.host || !secret.clients.is_empty()
        });
    }

    /// How many secrets are registered.
    pub fn n_secrets(&self) -> usize {
        self.secrets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn register(&self, value: &str, owner: Owner<'_>) {
        if value.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        let secret = match secrets.iter_mut().position(|secret| secret.value == value) {
            Some(secret_idx) => &mut secrets[secret_idx],
            None => {
                secrets.push(Secret {
                    value: value.to_owned(),
                    clients: BTreeSet::new(),
                    host: false,
                });
                secrets.sort_by_key(|secret| std::cmp::Reverse(secret.value.len()));
                let Some(secret_idx) = secrets.iter().position(|secret| secret.value == value)
                else {
                    return;
                };
                &mut secrets[secret_idx]
            }
        };
        match owner {
            Owner::Host => secret.host = true,
            Owner::Client(client) => {
                secret.clients.insert(client.to_owned());
            }
        }
    }

    /// `value` with every string in it (object keys too, at any depth) masked as by
    /// [`SecurityManager::mask`].
    pub fn mask_value(&self, value: Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.mask_owned(text)),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|item| self.mask_value(item))
                    .collect(),
            ),
            Value::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(key, member)| (self.mask_owned(key), self.mask_value(member)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// A JSON-RPC error with its `message` and its `data` masked: the one masking of an error
    /// that came from a server (or was built from its words), for every path where it leaves
    /// the host (a call's error, an error relayed by a gateway).
    pub fn mask_rpc_error(&self, error: RpcError) -> RpcError {
        RpcError {
            code: error.code,
            message: self.mask_owned(error.message),
            data: error.data.map(|data| self.mask_value(data)),
        }
    }

    /// A session error with everything in it that came from the server masked: the message and
    /// data of a JSON-RPC error ([`SecurityManager::mask_rpc_error`]), the stderr tail of a
    /// closed connection.
    pub fn mask_session_error(&self, error: mcp_session::Error) -> mcp_session::Error {
        match error {
            mcp_session::Error::ServerClosed {
                server,
                status,
                stderr_tail,
            } => mcp_session::Error::ServerClosed {
                server,
                status,
                stderr_tail: Arc::from(self.mask(&stderr_tail).as_ref()),
            },
            mcp_session::Error::Rpc {
                server,
                method,
                code,
                message,
                data,
            } => {
                let masked = self.mask_rpc_error(RpcError {
                    code,
                    message,
                    data,
                });
                mcp_session::Error::Rpc {
                    server,
                    method,
                    code: masked.code,
                    message: masked.message,
                    data: masked.data,
                }
            }
            other => other,
        }
    }

    /// `text` masked, without a copy when there is nothing to mask.
    fn mask_owned(&self, text: String) -> String {
        match self.mask(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(masked) => masked,
        }
    }

    /// `text` with every occurrence of every registered secret replaced by `****`.
    ///
    /// Occurrences that overlap or touch are masked together by one `****`, so no part of a
    /// secret survives. Borrows `text` when there is nothing to mask.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.secrets.read().unwrap_or_else(PoisonError::into_inner);
        let mut ranges = Vec::new();
        for secret in secrets.iter() {
            let secret = secret.value.as_str();
            let mut from = 0;
            while let Some(idx) = text.get(from..).and_then(|rest| rest.find(secret)) {
                let start = from + idx;
                ranges.push((start, start + secret.len()));
                // Search again from the next character, to find overlapping occurrences too.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        drop(secrets);
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.sort_unstable();

        let mut masked = String::with_capacity(text.len());
        let mut copied_to = 0;
        let mut ranges = ranges.into_iter().peekable();
        while let Some((start, mut end)) = ranges.next() {
            while let Some(&(next_start, next_end)) = ranges.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                ranges.next();
            }
            masked.push_str(&text[copied_to..start]);
            masked.push_str(MASK);
            copied_to = end;
        }
        masked.push_str(&text[copied_to..]);
        Cow::Owned(masked)
    }

    /// `text` with its `${env:NAME}` references resolved, and their values registered as secrets
    /// of `client` when they can be ones (`named`: the variable or header they are for says so).
    fn resolve(&self, client: &str, text: &str, named: bool) -> Result<String, Error> {
        let mut resolved = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(idx) = rest.find('$') {
            resolved.push_str(&rest[..idx]);
            let tail = &rest[idx..];
            if let Some(after) = tail.strip_prefix("$${") {
                resolved.push_str("${");
                rest = after;
                continue;
            }
            let reference = tail
                .strip_prefix("${env:")
                .and_then(|after| Some((after, after.find('}')?)))
                .filter(|(_, end)| *end > 0);
            if let Some((after, end)) = reference {
                let variable = &after[..end];
                let value = self
                    .host_env
                    .get(variable)
                    .ok_or_else(|| Error::MissingSecret {
                        client: client.to_owned(),
                        variable: variable.to_owned(),
                    })?;
                if can_be_secret(value, named || says_secret(variable)) {
                    self.register(value, Owner::Client(client));
                }
                resolved.push_str(value);
                rest = &after[end + 1..];
                continue;
            }
            resolved.push('$');
            rest = &tail[1..];
        }
        resolved.push_str(rest);
        Ok(resolved)
    }
}

impl Default for SecurityManager {
    fn default() -> SecurityManager {
        SecurityManager::new()
    }
}

impl fmt::Debug for SecurityManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_secrets = self
            .secrets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("SecurityManager")
            .field("host_env_vars", &self.host_env.len())
            .field("allow_list", &self.allow_list)
            .field("secrets", &n_secrets)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> SecurityManager {
        SecurityManager::with_host_env(
            [
                ("PATH", "/usr/bin:/bin"),
                ("HOME", "/home/user"),
                ("TERM", "xterm"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
                ("TOKEN", "tok-123"),
                ("OTHER", "other-456"),
                ("EMPTY", ""),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        )
    }

    /// What a built command should be.
    struct Expect<'a> {
        args: &'a [&'a str],
        env: &'a [(&'a str, &'a str)],
    }

    /// Builds the command for `args` and `env` with `security` and checks it against `expect`
    /// (or the error's display).
    #[track_caller]
    fn check(
        security: &SecurityManager,
        args: &[&str],
        env: &[(&str, &str)],
        expect: Result<Expect<'_>, &str>,
    ) {
        let mut config = ClientConfig::new("srv", "server-bin");
        config.args = args.iter().map(|arg| (*arg).to_owned()).collect();
        config.env = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        config.cwd = Some("/work".into());
        match (security.command_for(&config), expect) {
            (Ok(command), Ok(expect)) => {
                assert_eq!(command.program, std::path::Path::new("server-bin"));
                assert!(!command.inherit_env);
                assert_eq!(command.cwd.as_deref(), Some(std::path::Path::new("/work")));
                let actual_args: Vec<_> =
                    command.args.iter().map(|a| a.to_str().unwrap()).collect();
                assert_eq!(actual_args, expect.args);
                let actual_env: Vec<_> = command
                    .env
                    .iter()
                    .map(|(name, value)| (name.to_str().unwrap(), value.to_str().unwrap()))
                    .collect();
                assert_eq!(actual_env, expect.env);
            }
            (Err(err), Err(expect)) => assert_eq!(err.to_string(), expect),
            (Ok(command), Err(expect)) => panic!("expected {expect:?}, got {command:?}"),
            (Err(err), Ok(_)) => panic!("unexpected error: {err}"),
        }
    }

    #[test]
    fn command_for() {
        let security = manager();
        let inherited = [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/user"),
            ("TERM", "xterm"),
        ];

        // Only allow-listed variables are inherited: not AWS_SECRET_ACCESS_KEY nor TOKEN.
        check(
            &security,
            &[],
            &[],
            Ok(Expect {
                args: &[],
                env: &inherited,
            }),
        );
        check(
            &security,
            &["--flag", "plain"],
            &[("EXTRA", "1")],
            Ok(Expect {
                args: &["--flag", "plain"],
                env: &[inherited[0], inherited[1], inherited[2], ("EXTRA", "1")],
            }),
        );
        // The configuration wins over an inherited variable.
        check(
            &security,
            &[],
            &[("PATH", "/opt/bin")],
            Ok(Expect {
                args: &[],
                env: &[inherited[1], inherited[2], ("PATH", "/opt/bin")],
            }),
        );
        // References are resolved, also embedded, also several in one value.
        check(
            &security,
            &[
                "--token=${env:TOKEN}",
                "${env:OTHER}${env:TOKEN}",
                "${env:EMPTY}x",
            ],
            &[
                ("AUTH", "Bearer ${env:TOKEN}"),
                ("AWS_SECRET_ACCESS_KEY", "${env:AWS_SECRET_ACCESS_KEY}"),
            ],
            Ok(Expect {
                args: &["--token=tok-123", "other-456tok-123", "x"],
                env: &[
                    inherited[0],
                    inherited[1],
                    inherited[2],
                    ("AUTH", "Bearer tok-123"),
                    ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
                ],
            }),
        );
        // What is not a complete reference is kept.
        check(
            &security,
            &[
                "$${env:TOKEN}",
                "${env:TOKEN",
                "${TOKEN}",
                "${env:}",
                "$$",
                "a$",
                "$",
                "${}",
                "€${env:TOKEN}€",
            ],
            &[],
            Ok(Expect {
                args: &[
                    "${env:TOKEN}",
                    "${env:TOKEN",
                    "${TOKEN}",
                    "${env:}",
                    "$$",
                    "a$",
                    "$",
                    "${}",
                    "€tok-123€",
                ],
                env: &inherited,
            }),
        );
        // A missing variable is an error naming the client and the variable.
        let missing = "client `srv` refers to environment variable `NOPE`, which is not set";
        check(&security, &["${env:NOPE}"], &[], Err(missing));
        check(&security, &[], &[("KEY", "x ${env:NOPE} y")], Err(missing));

        // A custom allow-list.
        let security = manager().with_allow_list(&["TOKEN", "UNSET", "TOKEN"]);
        check(
            &security,
            &[],
            &[],
            Ok(Expect {
                args: &[],
                env: &[("TOKEN", "tok-123")],
            }),
        );
        check(
            &security,
            &[],
            &[("TOKEN", "mine")],
            Ok(Expect {
                args: &[],
                env: &[("TOKEN", "mine")],
            }),
        );
        let security = manager().with_allow_list(&[]);
        check(
            &security,
            &[],
            &[],
            Ok(Expect {
                args: &[],
                env: &[],
            }),
        );
    }

    #[test]
    fn mask() {
        #[track_caller]
        fn check_mask(secrets: &[&str], text: &str, expect: &str) {
            let security = manager();
            for secret in secrets {
                security.register_secret(secret);
            }
            let masked = security.mask(text);
            assert_eq!(masked, expect);
            if text == expect {
                assert!(matches!(masked, Cow::Borrowed(_)), "{text:?} was copied");
            }
        }
        check_mask(&[], "tok-123", "tok-123");
        check_mask(&[""], "tok-123", "tok-123");
        check_mask(&["tok-123"], "no secret here", "no secret here");
        check_mask(&["tok-123"], "tok-123", "****");
        check_mask(
            &["tok-123"],
            "Bearer tok-123, again tok-123.",
            "Bearer ****, again ****.",
        );
        // A secret inside a longer one, in either order.
        check_mask(&["tok-", "tok-123"], "tok-123 tok-", "**** ****");
        check_mask(&["tok-123", "tok-"], "tok-123 tok-", "**** ****");
        // Overlapping and touching secrets are masked as one.
        check_mask(&["abcd", "cdef"], "xabcdefx", "x****x");
        check_mask(&["abcd", "efgh"], "abcdefgh", "****");
        check_mask(&["aaaa"], "aaaaa b", "**** b");
        check_mask(&["é€é€"], "aé€é€é€b", "a****b");
        // Never a value of 1 to 3 characters.
        check_mask(&["1", "ab", "é€x"], "1 ab é€x", "1 ab é€x");

        // Values resolved by command_for are registered; clones share the secrets.
        let security = manager();
        let clone = security.clone();
        let mut config = ClientConfig::new("srv", "x");
        config
            .env
            .insert("HEADER".into(), "Bearer ${env:TOKEN}".into());
        security.command_for(&config).unwrap();
        assert_eq!(
            clone.mask("auth failed: Bearer tok-123"),
            "auth failed: Bearer ****"
        );
        assert_eq!(security.mask("other-456"), "other-456");
        // A variable whose name says it is a secret is masked whole.
        config
            .env
            .insert("AUTH".into(), "Bearer ${env:TOKEN}".into());
        security.command_for(&config).unwrap();
        assert_eq!(
            clone.mask("auth failed: Bearer tok-123"),
            "auth failed: ****"
        );
    }

    #[test]
    fn only_values_that_can_be_secrets_are_masked() {
        let security = SecurityManager::with_host_env(
            [
                ("DEBUG", "1"),
                ("HOME", "/home/user"),
                ("PORT", "8080"),
                ("GH_TOKEN", "abc"),
                ("API_KEY", "abcd"),
                ("UPSTREAM", "averylongvalue"),
                ("PIN", "12345"),
                ("SHORT_PIN", "123"),
                ("PLAIN", "plain"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        let mut config = ClientConfig::new("srv", "x");
        for (name, value) in [
            ("DEBUG", "${env:DEBUG}"),
            ("HOME_DIR", "${env:HOME}"),
            ("PORT", "${env:PORT}"),
            ("GITHUB_TOKEN", "${env:GH_TOKEN}"),
            ("X", "${env:API_KEY}"),
            ("Y", "${env:UPSTREAM}"),
            // A literal value of a variable whose name says it is a secret.
            ("DB_PASSWORD", "hunter2"),
            ("Z", "literal-but-long"),
        ] {
            config.env.insert(name.to_owned(), value.to_owned());
        }
        config.env.insert_secret("P", "${env:PIN}");
        config.env.insert_secret("Q", "${env:SHORT_PIN}");
        config.env.insert_secret("R", "${env:PLAIN}");
        config.args = vec!["--port=${env:PORT}".to_owned()];
        security.command_for(&config).unwrap();
        // Not secrets: short values, paths, short values nothing names a secret, literals.
        let harmless = "step 1 of 10 in /home/user, port 8080, abc, 123, literal-but-long";
        assert_eq!(security.mask(harmless), harmless);
        // Secrets: named (from 4 characters), long, or marked.
        assert_eq!(
            security.mask("abcd averylongvalue 12345 hunter2 plain"),
            "**** **** **** **** ****"
        );
    }

    #[test]
    fn secrets_of_a_removed_client_are_forgotten() {
        let security = SecurityManager::with_host_env(
            [
                ("A_TOKEN", "token-of-a"),
                ("B_TOKEN", "token-of-b"),
                ("SHARED_TOKEN", "token-of-both"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        let client = |id: &str, variable: &str| {
            let mut config = ClientConfig::new(id, "x");
            config
                .env
                .insert("T".to_owned(), format!("${{env:{variable}}}"));
            config
                .env
                .insert("S".to_owned(), "${env:SHARED_TOKEN}".to_owned());
            security.command_for(&config).unwrap();
            ClientId::new(id).unwrap()
        };
        let a = client("a", "A_TOKEN");
        let b = client("b", "B_TOKEN");
        security.register_secret("host-secret");
        let text = "token-of-a token-of-b token-of-both host-secret";
        assert_eq!(security.mask(text), "**** **** **** ****");
        assert_eq!(security.n_secrets(), 4);
        security.forget_client(&a);
        assert_eq!(security.mask(text), "token-of-a **** **** ****");
        // Registered again when the client comes back (a restart).
        let a = client("a", "A_TOKEN");
        assert_eq!(security.mask(text), "**** **** **** ****");
        security.forget_client(&a);
        security.forget_client(&b);
        assert_eq!(
            security.mask(text),
            "token-of-a token-of-b token-of-both ****"
        );
        assert_eq!(security.n_secrets(), 1);
    }

    #[test]
    fn errors_are_masked_in_message_and_data() {
        let security = manager();
        security.register_secret("tok-123");
        let data = serde_json::json!({
            "uri": "mem://tok-123",
            "nested": [{"tok-123": "as a key"}, "again tok-123", 7, null],
        });
        let masked_data = serde_json::json!({
            "uri": "mem://****",
            "nested": [{"****": "as a key"}, "again ****", 7, null],
        });
        let rpc = RpcError {
            code: -32002,
            message: "no tok-123 here".to_owned(),
            data: Some(data.clone()),
        };
        assert_eq!(
            security.mask_rpc_error(rpc),
            RpcError {
                code: -32002,
                message: "no **** here".to_owned(),
                data: Some(masked_data.clone()),
            }
        );
        let error = mcp_session::Error::Rpc {
            server: mcp_transport::ServerName::new("srv"),
            method: "resources/read".to_owned(),
            code: -32002,
            message: "no tok-123 here".to_owned(),
            data: Some(data),
        };
        match security.mask_session_error(error) {
            mcp_session::Error::Rpc { message, data, .. } => {
                assert_eq!(message, "no **** here");
                assert_eq!(data, Some(masked_data));
            }
            other => panic!("unexpected {other:?}"),
        }
        let closed = mcp_session::Error::ServerClosed {
            server: mcp_transport::ServerName::new("srv"),
            status: None,
            stderr_tail: Arc::from("failed with tok-123"),
        };
        assert_eq!(
            security.mask_session_error(closed).stderr_tail(),
            Some("failed with ****")
        );
    }

    #[test]
    fn debug_hides_values() {
        let security = manager();
        security.register_secret("hunter2");
        let debug = format!("{security:?}");
        assert_eq!(
            debug,
            "SecurityManager { host_env_vars: 7, allow_list: [\"PATH\", \"HOME\", \"USER\", \
             \"LOGNAME\", \"SHELL\", \"LANG\", \"LANGUAGE\", \"LC_ALL\", \"LC_CTYPE\", \
             \"LC_MESSAGES\", \"TERM\", \"TMPDIR\", \"TZ\", \"XDG_RUNTIME_DIR\", \
             \"XDG_CONFIG_HOME\", \"XDG_CACHE_HOME\", \"XDG_DATA_HOME\"], secrets: 1 }"
        );
        for value in ["hunter2", "aws-secret", "tok-123", "/usr/bin"] {
            assert!(!debug.contains(value), "{value} in {debug}");
        }
        // The real environment can be snapshotted.
        let _ = SecurityManager::new();
        let _ = SecurityManager::default();
    }
}
