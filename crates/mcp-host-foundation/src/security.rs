//! Environment isolation and secrets: what a server inherits from the host, and what is masked.
//!
//! A server does not inherit the host's environment. [`SecurityManager::command_for`] builds its
//! command from an allow-list of harmless host variables plus the variables its configuration
//! sets, resolving `${env:NAME}` references against a snapshot of the host's environment. Every
//! resolved value is registered as a secret, and [`SecurityManager::mask`] replaces secrets by
//! `****` in any text before it is logged or put in an error.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use mcp_transport::ServerCommand;

use crate::{ClientConfig, Error};

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
/// secrets. Cheap to clone: clones share the snapshot and the secrets, so a secret registered
/// through one clone is masked by all.
///
/// Its `Debug` output shows counts and variable names, never values or secrets.
#[derive(Clone)]
pub struct SecurityManager {
    /// The host's environment when the manager was created.
    host_env: Arc<HashMap<String, String>>,
    /// The names of the host variables servers inherit.
    allow_list: Arc<[String]>,
    /// Every registered secret, longest first, without duplicates or empty strings.
    secrets: Arc<RwLock<Vec<String>>>,
}

/// What replaces a secret in masked text.
const MASK: &str = "****";

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
            .map(|arg| self.resolve(client, arg))
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
            env.push((name.into(), self.resolve(client, value)?.into()));
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
    /// [`SecurityManager::command_for`] and their values registered as secrets; so are the
    /// whole values of credential headers (`Authorization`, `Proxy-Authorization`, `Cookie`,
    /// and names containing `token`, `key` or `secret`), even when written literally.
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
        let mut options = mcp_http::HttpOptions::new(self.resolve(client, url)?);
        for (name, value) in &config.headers {
            let value = self.resolve(client, value)?;
            let lower = name.to_ascii_lowercase();
            let credential = ["authorization", "proxy-authorization", "cookie"]
                .contains(&lower.as_str())
                || ["token", "key", "secret"]
                    .iter()
                    .any(|word| lower.contains(word));
            if credential {
                // `Bearer abc`: mask the credential itself too, wherever it shows up alone.
                self.register_secret(&value);
                if let Some((_, credential)) = value.split_once(' ') {
                    self.register_secret(credential.trim());
                }
            }
            options.headers.push((name.clone(), value));
        }
        Ok(options)
    }

    /// Registers `value` as a secret, so that [`SecurityManager::mask`] hides it from now on.
    ///
    /// An empty value is ignored.
    pub fn register_secret(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        if secrets.iter().any(|secret| secret == value) {
            return;
        }
        secrets.push(value.to_owned());
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    }

    /// `text` with every occurrence of every registered secret replaced by `****`.
    ///
    /// Occurrences that overlap or touch are masked together by one `****`, so no part of a
    /// secret survives. Borrows `text` when there is nothing to mask.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.secrets.read().unwrap_or_else(PoisonError::into_inner);
        let mut ranges = Vec::new();
        for secret in secrets.iter() {
            let mut from = 0;
            while let Some(idx) = text.get(from..).and_then(|rest| rest.find(secret.as_str())) {
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

    /// `text` with its `${env:NAME}` references resolved and their values registered as secrets.
    fn resolve(&self, client: &str, text: &str) -> Result<String, Error> {
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
                self.register_secret(value);
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
        check_mask(&["tok", "tok-123"], "tok-123 tok", "**** ****");
        check_mask(&["tok-123", "tok"], "tok-123 tok", "**** ****");
        // Overlapping and touching secrets are masked as one.
        check_mask(&["abcd", "cdef"], "xabcdefx", "x****x");
        check_mask(&["ab", "cd"], "abcd", "****");
        check_mask(&["aa"], "aaa b", "**** b");
        check_mask(&["é€"], "aé€é€b", "a****b");

        // Values resolved by command_for are registered; clones share the secrets.
        let security = manager();
        let clone = security.clone();
        let mut config = ClientConfig::new("srv", "x");
        config
            .env
            .insert("AUTH".into(), "Bearer ${env:TOKEN}".into());
        security.command_for(&config).unwrap();
        assert_eq!(
            clone.mask("auth failed: Bearer tok-123"),
            "auth failed: Bearer ****"
        );
        assert_eq!(security.mask("other-456"), "other-456");
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
