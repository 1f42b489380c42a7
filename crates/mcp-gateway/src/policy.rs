//! Who may call what: the clients of a shared gateway, each with its credential, its policy
//! (servers, tools, prompts, resources, read-only), its quotas and its audit setting.
//!
//! The `"gateway"` object of the configuration file is read into [`GatewaySettings`]; the
//! gateway keeps the live [`Policies`] (replaced whole on reload) and, per client, the state of
//! its quotas (`QuotaState`), which outlives reloads that do not change the quota.
//! A policy becomes an `mcp_host::AgentScope`, so listing, routing and calling are filtered by
//! the host itself, on every path.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_host::AgentScope;
use mcp_host_foundation::{ClientId, ToolFilter};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::search::ToolMode;

/// The name of the client a single `--bearer-token-env` token stands for.
pub const DEFAULT_CLIENT: &str = "default";

/// The `"gateway"` object of the configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySettings {
    /// The clients of the gateway by name, each with its credential and policy. Without any,
    /// every caller the transport lets in (loopback, or the one bearer token) sees everything.
    #[serde(default)]
    pub clients: BTreeMap<String, ClientSettings>,
    /// Clients identified by OAuth access tokens (JWTs) instead of, or besides, static tokens:
    /// the gateway is then an OAuth resource server (MCP authorization, 2025-11-25).
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// What `tools/list` shows: every tool (`all`, the default), or only `find_tools` and
    /// `call_tool` (`search`). A client's own `toolMode` overrides it.
    #[serde(default)]
    pub tool_mode: Option<ToolMode>,
}

/// One client of the gateway.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSettings {
    /// Its bearer token, usually `${env:NAME}` (the value is never logged, and only its SHA-256
    /// is kept).
    #[serde(default)]
    pub token: Option<String>,
    /// Its bearer token's SHA-256, as 64 hex digits, instead of `token`.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The servers it may use, by id. Default: all.
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    /// Which tools, by exposed name (`<server>__<tool>`): `allow` and `deny` lists of names, or
    /// prefixes ending in `*`. Default: all.
    #[serde(default)]
    pub tools: ToolFilter,
    /// Which prompts, by exposed name, in the same syntax. Default: all.
    #[serde(default)]
    pub prompts: ToolFilter,
    /// Which resources and templates, by URI, in the same syntax. Default: all.
    #[serde(default)]
    pub resources: ToolFilter,
    /// Only tools annotated `readOnlyHint: true`. Default: false.
    #[serde(default)]
    pub read_only: bool,
    /// Its quotas. Default: none.
    #[serde(default)]
    pub quota: QuotaSettings,
    /// Whether its calls' arguments go into the audit log (masked like every secret).
    /// Default: false (only their size).
    #[serde(default)]
    pub audit_arguments: bool,
    /// With OAuth: the scopes its access token must carry (403 `insufficient_scope` otherwise).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Its tool mode, instead of the gateway's `toolMode`.
    #[serde(default)]
    pub tool_mode: Option<ToolMode>,
}

/// A client's quotas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaSettings {
    /// Tool calls per minute (a token bucket: the whole minute's worth may come in a burst).
    #[serde(default)]
    pub calls_per_minute: Option<u32>,
    /// Tool calls running at once, across all its sessions.
    #[serde(default)]
    pub concurrent_calls: Option<u32>,
    /// Sessions open at once.
    #[serde(default)]
    pub sessions: Option<u32>,
}

/// The gateway as an OAuth resource server.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthSettings {
    /// The authorization server's issuer identifier (the `iss` every token must carry).
    pub issuer: String,
    /// The gateway's canonical URL (`https://gateway.example.com/mcp`): the `aud` every token
    /// must carry, and the `resource` of its protected resource metadata.
    pub audience: String,
    /// Where the issuer's signing keys are. Default: `jwks_uri` from the issuer's metadata
    /// (`/.well-known/oauth-authorization-server`, then OpenID discovery).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim that names the client (a key of `clients`; `*` stands for any other value).
    /// Default: `sub`.
    #[serde(default = "default_claim")]
    pub claim: String,
    /// Scopes advertised in the protected resource metadata and asked for on 401.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

fn default_claim() -> String {
    "sub".to_owned()
}

/// What a client may do, as the gateway enforces it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientPolicy {
    /// The client's name.
    pub name: String,
    /// What it may see and use.
    pub scope: AgentScope,
    /// Its quotas.
    pub quota: QuotaSettings,
    /// Whether the audit log carries its calls' arguments.
    pub audit_arguments: bool,
    /// With OAuth: the scopes its token must carry.
    pub required_scopes: Vec<String>,
    /// Its own tool mode; `None`: the gateway's.
    pub tool_mode: Option<ToolMode>,
    token_sha256: Option<[u8; 32]>,
}

impl ClientPolicy {
    /// A client that may use everything, without quotas.
    pub fn unrestricted(name: &str) -> ClientPolicy {
        ClientPolicy {
            name: name.to_owned(),
            scope: AgentScope::all(),
            quota: QuotaSettings::default(),
            audit_arguments: false,
            required_scopes: Vec::new(),
            tool_mode: None,
            token_sha256: None,
        }
    }
}

/// Every client the gateway knows, as the configuration (or the command line) says now.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    clients: BTreeMap<String, Arc<ClientPolicy>>,
    oauth: Option<OAuthSettings>,
    tool_mode: ToolMode,
}

impl Policies {
    /// Builds the policies from the `"gateway"` settings, resolving `${env:NAME}` in tokens with
    /// `env`.
    ///
    /// # Errors
    ///
    /// A message naming the field (`gateway.clients.ci-bot.token`) and what is wrong with it,
    /// never the token itself.
    pub fn from_settings(
        settings: &GatewaySettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Policies, String> {
        let mut clients = BTreeMap::new();
        for (name, client) in &settings.clients {
            let path = format!("gateway.clients.{name}");
            if name != "*" && ClientId::new(name).is_err() {
                return Err(format!(
                    "`{path}`: a client name is 1 to 64 letters, digits, `_`, `.` or `-`"
                ));
            }
            let token_sha256 = match (&client.token, &client.token_sha256) {
                (Some(_), Some(_)) => {
                    return Err(format!("`{path}`: give `token` or `tokenSha256`, not both"))
                }
                (Some(token), None) => Some(digest(
                    &resolve(token, &env).map_err(|why| format!("`{path}.token`: {why}"))?,
                )),
                (None, Some(hex)) => Some(parse_digest(hex).ok_or_else(|| {
                    format!("`{path}.tokenSha256`: must be 64 hex digits (a SHA-256)")
                })?),
                (None, None) => None,
            };
            if token_sha256.is_none() && settings.oauth.is_none() {
                return Err(format!(
                    "`{path}`: a client needs a `token` or `tokenSha256` (or an `oauth` section that names it)"
                ));
            }
            for (field, filter) in [
                ("tools", &client.tools),
                ("prompts", &client.prompts),
                ("resources", &client.resources),
            ] {
                check_patterns(filter).map_err(|why| format!("`{path}.{field}`: {why}"))?;
            }
            let allowed_clients = match &client.servers {
                None => None,
                Some(servers) => {
                    let mut ids = std::collections::BTreeSet::new();
                    for server in servers {
                        let id = ClientId::new(server).map_err(|_| {
                            format!("`{path}.servers`: `{server}` is not a server id")
                        })?;
                        ids.insert(id);
                    }
                    Some(ids)
                }
            };
            if matches!(client.quota.calls_per_minute, Some(0))
                || matches!(client.quota.concurrent_calls, Some(0))
                || matches!(client.quota.sessions, Some(0))
            {
                return Err(format!(
                    "`{path}.quota`: a quota is a positive number (leave it out for no limit)"
                ));
            }
            let policy = ClientPolicy {
                name: name.clone(),
                scope: AgentScope {
                    allowed_clients,
                    tools: client.tools.clone(),
                    prompts: client.prompts.clone(),
                    resources: client.resources.clone(),
                    read_only: client.read_only,
                    ..AgentScope::default()
                },
                quota: client.quota.clone(),
                audit_arguments: client.audit_arguments,
                required_scopes: client.scopes.clone(),
                tool_mode: client.tool_mode,
                token_sha256,
            };
            clients.insert(name.clone(), Arc::new(policy));
        }
        let digests: Vec<[u8; 32]> = clients
            .values()
            .filter_map(|client| client.token_sha256)
            .collect();
        for (idx, a) in digests.iter().enumerate() {
            if digests[idx + 1..].contains(a) {
                return Err("`gateway.clients`: two clients have the same token".to_owned());
            }
        }
        Ok(Policies {
            clients,
            oauth: settings.oauth.clone(),
            tool_mode: settings.tool_mode.unwrap_or_default(),
        })
    }

    /// The gateway's tool mode (`gateway.toolMode`), for clients without one of their own.
    pub fn tool_mode(&self) -> ToolMode {
        self.tool_mode
    }

    /// The same policies with the gateway's tool mode set to `mode`.
    pub fn with_tool_mode(mut self, mode: ToolMode) -> Policies {
        self.tool_mode = mode;
        self
    }

    /// The tool mode of `policy`'s client: its own, else the gateway's.
    pub fn tool_mode_of(&self, policy: &ClientPolicy) -> ToolMode {
        policy.tool_mode.unwrap_or(self.tool_mode)
    }

    /// One client named [`DEFAULT_CLIENT`] with `token` and no restrictions (the
    /// `--bearer-token-env` of earlier versions), added to these policies.
    pub fn with_default_token(mut self, token: &str) -> Policies {
        let mut policy = ClientPolicy::unrestricted(DEFAULT_CLIENT);
        policy.token_sha256 = Some(digest(token));
        self.clients
            .insert(DEFAULT_CLIENT.to_owned(), Arc::new(policy));
        self
    }

    /// Whether any credential is configured (then every request must carry one).
    pub fn requires_credentials(&self) -> bool {
        self.oauth.is_some() || self.clients.values().any(|c| c.token_sha256.is_some())
    }

    /// The OAuth settings, if the gateway is a resource server.
    pub fn oauth(&self) -> Option<&OAuthSettings> {
        self.oauth.as_ref()
    }

    /// The client whose static token is `token`. Every client's digest is compared, without
    /// an early exit, so the time taken tells nothing about the tokens.
    pub fn by_token(&self, token: &str) -> Option<Arc<ClientPolicy>> {
        let presented = digest(token);
        let mut found = None;
        for client in self.clients.values() {
            if let Some(expected) = &client.token_sha256 {
                if constant_time_eq(expected, &presented) {
                    found = Some(client.clone());
                }
            }
        }
        found
    }

    /// The client named `name` (an OAuth claim's value falls back to the `*` entry).
    pub fn by_name(&self, name: &str) -> Option<Arc<ClientPolicy>> {
        self.clients.get(name).cloned()
    }

    /// The client an OAuth claim value names: its entry, else the `*` entry (as that name).
    pub fn by_claim(&self, value: &str) -> Option<Arc<ClientPolicy>> {
        if let Some(client) = self.clients.get(value) {
            return Some(client.clone());
        }
        let any = self.clients.get("*")?;
        let mut policy = (**any).clone();
        policy.name = value.to_owned();
        Some(Arc::new(policy))
    }
}

/// The live state of every client's quotas, kept across reloads.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    clients: Mutex<HashMap<String, Arc<QuotaState>>>,
}

/// One client's quota counters.
#[derive(Debug)]
pub(crate) struct QuotaState {
    settings: QuotaSettings,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    calls: AtomicUsize,
    sessions: AtomicUsize,
}

/// Why a quota refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QuotaRefusal {
    /// Too many calls this minute; the next is allowed after this long.
    Rate(Duration),
    /// Too many calls at once.
    Concurrency(u32),
    /// Too many sessions.
    Sessions(u32),
}

impl std::fmt::Display for QuotaRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaRefusal::Rate(wait) => write!(
                f,
                "quota exceeded: too many calls per minute; retry in {} s",
                wait.as_secs().max(1)
            ),
            QuotaRefusal::Concurrency(limit) => {
                write!(f, "quota exceeded: at most {limit} calls at once")
            }
            QuotaRefusal::Sessions(limit) => {
                write!(f, "quota exceeded: at most {limit} sessions at once")
            }
        }
    }
}

impl QuotaRefusal {
    /// The `Retry-After` to answer with, in whole seconds.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        match self {
            QuotaRefusal::Rate(wait) => wait.as_secs() + 1,
            QuotaRefusal::Concurrency(_) | QuotaRefusal::Sessions(_) => 1,
        }
    }
}

/// A call or session counted against a quota until dropped.
#[derive(Debug)]
pub(crate) struct QuotaPermit {
    state: Arc<QuotaState>,
    kind: PermitKind,
}

#[derive(Debug)]
enum PermitKind {
    Call,
    Session,
}

impl Drop for QuotaPermit {
    fn drop(&mut self) {
        let counter = match self.kind {
            PermitKind::Call => &self.state.calls,
            PermitKind::Session => &self.state.sessions,
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Quotas {
    /// The quota state of `policy`'s client (made anew when its quota changed).
    pub(crate) fn of(&self, policy: &ClientPolicy) -> Arc<QuotaState> {
        let mut clients = lock(&self.clients);
        if let Some(state) = clients.get(&policy.name) {
            if state.settings == policy.quota {
                return state.clone();
            }
        }
        let limiter = policy
            .quota
            .calls_per_minute
            .and_then(NonZeroU32::new)
            .map(|per_minute| {
                governor::RateLimiter::direct(governor::Quota::per_minute(per_minute))
            });
        let state = Arc::new(QuotaState {
            settings: policy.quota.clone(),
            limiter,
            calls: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
        });
        // Bounded by the clients the configuration names (and OAuth subjects that reached
        // the `*` entry): forget the idle ones when there are many.
        if clients.len() >= MAX_QUOTA_STATES {
            clients.retain(|_, state| Arc::strong_count(state) > 1);
        }
        clients.insert(policy.name.clone(), state.clone());
        state
    }
}

/// How many clients' quota states are kept before idle ones are forgotten.
const MAX_QUOTA_STATES: usize = 4096;

impl QuotaState {
    /// Counts one call, or says which quota refuses it.
    pub(crate) fn start_call(self: &Arc<Self>) -> Result<QuotaPermit, QuotaRefusal> {
        if let Some(limit) = self.settings.concurrent_calls {
            let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
            if self.calls.fetch_add(1, Ordering::AcqRel) >= limit_usize {
                self.calls.fetch_sub(1, Ordering::AcqRel);
                return Err(QuotaRefusal::Concurrency(limit));
            }
        } else {
            self.calls.fetch_add(1, Ordering::AcqRel);
        }
        let permit = QuotaPermit {
            state: self.clone(),
            kind: PermitKind::Call,
        };
        if let Some(limiter) = &self.limiter {
            if let Err(not_until) = limiter.check() {
                use governor::clock::{Clock as _, DefaultClock};
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(QuotaRefusal::Rate(wait));
            }
        }
        Ok(permit)
    }

    /// Counts one session, or refuses it.
    pub(crate) fn start_session(self: &Arc<Self>) -> Result<QuotaPermit, QuotaRefusal> {
        let count = self.sessions.fetch_add(1, Ordering::AcqRel);
        let permit = QuotaPermit {
            state: self.clone(),
            kind: PermitKind::Session,
        };
        match self.settings.sessions {
            Some(limit) if count >= usize::try_from(limit).unwrap_or(usize::MAX) => {
                Err(QuotaRefusal::Sessions(limit))
            }
            _ => Ok(permit),
        }
    }
}

/// A token's SHA-256.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (idx, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(idx * 2..idx * 2 + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// A literal value, or `${env:NAME}` taken from the environment.
fn resolve(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let value = value.trim();
    let resolved = match value
        .strip_prefix("${env:")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(name) => env(name).ok_or_else(|| format!("the variable `{name}` is not set"))?,
        None => value.to_owned(),
    };
    if resolved.trim().is_empty() {
        return Err("the token is empty".to_owned());
    }
    Ok(resolved.trim().to_owned())
}

fn check_patterns(filter: &ToolFilter) -> Result<(), String> {
    let patterns = filter.allow.iter().flatten().chain(&filter.deny);
    for pattern in patterns {
        if pattern.is_empty() {
            return Err("a pattern must not be empty".to_owned());
        }
        if pattern.strip_suffix('*').unwrap_or(pattern).contains('*') {
            return Err(format!("`{pattern}` may contain `*` only at its end"));
        }
    }
    Ok(())
}

/// Compares without an early exit.
pub(crate) fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> GatewaySettings {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn tokens_find_their_client() {
        let env = |name: &str| (name == "BOT").then(|| "bot-secret-1".to_owned());
        let hashed = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        let policies = Policies::from_settings(
            &settings(serde_json::json!({"clients": {
                "bot": {"token": "${env:BOT}", "servers": ["a"]},
                "alice": {"tokenSha256": hashed, "readOnly": true}
            }})),
            env,
        )
        .unwrap();
        assert_eq!(policies.by_token("bot-secret-1").unwrap().name, "bot");
        assert!(policies.by_token("bot-secret-2").is_none());
        assert_eq!(policies.by_token("hello world").unwrap().name, "alice");
        assert!(policies.requires_credentials());
    }

    #[test]
    fn errors_name_the_field_not_the_token() {
        let check = |json: serde_json::Value, expect: &str| {
            let error = Policies::from_settings(&settings(json), |_| None).unwrap_err();
            assert!(error.contains(expect), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        };
        check(
            serde_json::json!({"clients": {"bot": {"token": "${env:MISSING}"}}}),
            "`gateway.clients.bot.token`: the variable `MISSING` is not set",
        );
        check(
            serde_json::json!({"clients": {"bot": {"tokenSha256": "s3cret"}}}),
            "`gateway.clients.bot.tokenSha256`",
        );
        check(
            serde_json::json!({"clients": {"bot": {"token": "s3cret", "tools": {"deny": ["a*b"]}}}}),
            "`gateway.clients.bot.tools`",
        );
        check(
            serde_json::json!({"clients": {"a": {"token": "s3cret"}, "b": {"token": "s3cret"}}}),
            "two clients have the same token",
        );
        check(
            serde_json::json!({"clients": {"bot": {"servers": ["a"]}}}),
            "needs a `token`",
        );
    }

    #[test]
    fn quotas_count_and_release() {
        let mut policy = ClientPolicy::unrestricted("q");
        policy.quota = QuotaSettings {
            calls_per_minute: Some(3),
            concurrent_calls: Some(2),
            sessions: Some(1),
        };
        let quotas = Quotas::default();
        let state = quotas.of(&policy);
        let first = state.start_call().unwrap();
        let second = state.start_call().unwrap();
        assert_eq!(
            state.start_call().unwrap_err(),
            QuotaRefusal::Concurrency(2)
        );
        drop((first, second));
        let _third = state.start_call().unwrap();
        assert!(matches!(state.start_call(), Err(QuotaRefusal::Rate(_))));
        let _session = state.start_session().unwrap();
        assert_eq!(
            state.start_session().unwrap_err(),
            QuotaRefusal::Sessions(1)
        );
        // The same quota after a reload: the same counters.
        assert!(Arc::ptr_eq(&quotas.of(&policy), &state));
    }
}
