//! Who is calling: a request's bearer credential becomes a client of the gateway.
//!
//! A static token is looked up by its SHA-256 (every client compared, no early exit); an OAuth
//! access token (a JWT) is checked against the issuer's signing keys (JWKS, cached, fetched
//! again when a token names a key we do not have, at most every 30 s): its signature, `iss`,
//! `aud` (the gateway's canonical URL), `exp` and `nbf` (30 s leeway), with an asymmetric
//! algorithm only. The claim that names the client (default `sub`) selects its policy, and the
//! token's scopes must include the ones that policy requires.
//!
//! The client's token is never forwarded anywhere: the servers behind the gateway get their own
//! credentials from the configuration (MCP authorization forbids token passthrough).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::policy::{ClientPolicy, OAuthSettings, Policies};
use crate::search::ToolMode;

/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many key fetches in [`REFETCH_WINDOW`]: a key rotation is picked up at once,
/// and tokens naming made-up keys cannot make us hammer the issuer.
const MAX_FETCHES: usize = 3;
const REFETCH_WINDOW: Duration = Duration::from_secs(30);
/// How large a metadata document or key set may be.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// The algorithms a signing key may use: asymmetric only (never `none`, never HMAC, whose
/// "secret" would be a public key).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The gateway's clients as configured now, replaced whole on reload; watchers see each
/// replacement (their lists may have changed).
#[derive(Debug)]
pub(crate) struct PolicyStore {
    current: RwLock<Arc<Policies>>,
    /// The `--bearer-token-env` token, kept through reloads as the client `default`.
    default_token: RwLock<Option<String>>,
    /// The tool mode the command line set, kept through reloads over the file's `toolMode`.
    tool_mode: RwLock<Option<ToolMode>>,
    version: watch::Sender<u64>,
    keys: tokio::sync::Mutex<KeyCache>,
    http: reqwest::Client,
}

#[derive(Debug, Default)]
struct KeyCache {
    /// The settings the keys were fetched for.
    issuer: Option<String>,
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    /// Keys without a `kid`, tried in turn.
    anonymous: Vec<(DecodingKey, Option<Algorithm>)>,
    /// When the keys were fetched, within the last [`REFETCH_WINDOW`].
    fetches: std::collections::VecDeque<Instant>,
}

/// Who a request comes from.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The client's policy as it was when the request came.
    pub(crate) policy: Arc<ClientPolicy>,
    /// The name to look the policy up by again later (a `*` client's entry is `*`), or `None`
    /// when no credential is configured and everyone is the same anonymous client.
    pub(crate) key: Option<String>,
}

/// Why a request is refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No credential, or one that is not valid: 401.
    Unauthorized(&'static str),
    /// A valid credential that may not do this: 403.
    Forbidden(String),
    /// A valid token without the scopes its client needs: 403 `insufficient_scope`.
    InsufficientScope(Vec<String>),
}

impl PolicyStore {
    pub(crate) fn new(policies: Policies) -> Arc<PolicyStore> {
        Arc::new(PolicyStore {
            current: RwLock::new(Arc::new(policies)),
            default_token: RwLock::new(None),
            tool_mode: RwLock::new(None),
            version: watch::Sender::new(0),
            keys: tokio::sync::Mutex::new(KeyCache::default()),
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .tcp_nodelay(true)
                .build()
                .unwrap_or_default(),
        })
    }

    pub(crate) fn current(&self) -> Arc<Policies> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `token` the credential of the client `default` (who may use everything), now and
    /// after every reload.
    pub(crate) fn set_default_token(&self, token: String) {
        match self.default_token.write() {
            Ok(mut default_token) => *default_token = Some(token),
            Err(poisoned) => *poisoned.into_inner() = Some(token),
        }
        let current = (*self.current()).clone();
        self.replace(current);
    }

    /// Makes `mode` the gateway's tool mode, now and after every reload (whatever the file's
    /// `gateway.toolMode` says; a client's own `toolMode` still applies).
    pub(crate) fn set_tool_mode(&self, mode: ToolMode) {
        match self.tool_mode.write() {
            Ok(mut tool_mode) => *tool_mode = Some(mode),
            Err(poisoned) => *poisoned.into_inner() = Some(mode),
        }
        let current = (*self.current()).clone();
        self.replace(current);
    }

    /// Replaces the policies (a reload); sessions see the new ones at their next request.
    pub(crate) fn replace(&self, policies: Policies) {
        let default_token = match self.default_token.read() {
            Ok(token) => token.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let policies = match default_token {
            Some(token) => policies.with_default_token(&token),
            None => policies,
        };
        let tool_mode = match self.tool_mode.read() {
            Ok(tool_mode) => *tool_mode,
            Err(poisoned) => *poisoned.into_inner(),
        };
        let policies = match tool_mode {
            Some(mode) => policies.with_tool_mode(mode),
            None => policies,
        };
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(policies),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policies),
        }
        self.version.send_modify(|version| *version += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The current policy of a caller (it may have changed, or gone, since it connected).
    pub(crate) fn policy_of(&self, caller: &Caller) -> Option<Arc<ClientPolicy>> {
        match &caller.key {
            None => Some(caller.policy.clone()),
            Some(key) => {
                let policies = self.current();
                let mut policy = (*policies.by_name(key)?).clone();
                policy.name = caller.policy.name.clone();
                Some(Arc::new(policy))
            }
        }
    }

    /// The client a request's headers identify.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Refused> {
        let policies = self.current();
        if !policies.requires_credentials() {
            return Ok(Caller {
                policy: Arc::new(ClientPolicy::unrestricted("anonymous")),
                key: None,
            });
        }
        let token = bearer(headers).ok_or(Refused::Unauthorized("a bearer token is required"))?;
        if let Some(policy) = policies.by_token(token) {
            return Ok(Caller {
                key: Some(policy.name.clone()),
                policy,
            });
        }
        let Some(oauth) = policies.oauth() else {
            return Err(Refused::Unauthorized("the token is not valid"));
        };
        let claims = self.verify(oauth, token).await?;
        let subject = claims
            .get(&oauth.claim)
            .and_then(Value::as_str)
            .ok_or(Refused::Unauthorized("the token does not name its client"))?;
        let policy = policies.by_claim(subject).ok_or_else(|| {
            Refused::Forbidden("no client of this gateway is configured for this token".to_owned())
        })?;
        let granted = token_scopes(&claims);
        let missing: Vec<String> = policy
            .required_scopes
            .iter()
            .filter(|scope| !granted.contains(&scope.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Refused::InsufficientScope(policy.required_scopes.clone()));
        }
        let key = if policies.by_name(subject).is_some() {
            subject.to_owned()
        } else {
            "*".to_owned()
        };
        Ok(Caller {
            policy,
            key: Some(key),
        })
    }

    /// Checks a JWT's signature and claims; returns its claims.
    async fn verify(&self, oauth: &OAuthSettings, token: &str) -> Result<Value, Refused> {
        let invalid = Refused::Unauthorized("the token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid_token())?;
        if !ALGORITHMS.contains(&header.alg) {
            tracing::debug!(alg = ?header.alg, "refused a token with an algorithm we do not accept");
            return Err(invalid);
        }
        let candidates = self.keys_for(oauth, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[oauth.issuer.as_str()]);
        validation.set_audience(&[oauth.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        for (key, key_alg) in candidates {
            if key_alg.is_some_and(|alg| alg != header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => {
                    tracing::debug!(error = %error, "refused a token");
                }
            }
        }
        Err(invalid)
    }

    /// The keys a token with `kid` may be signed with: fetched when not cached (or when the
    /// issuer changed), and fetched again for an unknown `kid` at most every 30 s.
    async fn keys_for(
        &self,
        oauth: &OAuthSettings,
        kid: Option<&str>,
    ) -> Result<Vec<(DecodingKey, Option<Algorithm>)>, Refused> {
        let mut cache = self.keys.lock().await;
        if cache.issuer.as_deref() != Some(oauth.issuer.as_str()) {
            *cache = KeyCache::default();
        }
        let known = |cache: &KeyCache| match kid {
            Some(kid) => cache.keys.get(kid).cloned().map(|key| vec![key]),
            None if !cache.anonymous.is_empty() => Some(cache.anonymous.clone()),
            None => None,
        };
        if let Some(keys) = known(&cache) {
            return Ok(keys);
        }
        while cache
            .fetches
            .front()
            .is_some_and(|at| at.elapsed() >= REFETCH_WINDOW)
        {
            cache.fetches.pop_front();
        }
        if cache.fetches.len() >= MAX_FETCHES {
            return Err(Refused::Unauthorized("the token is not valid"));
        }
        cache.fetches.push_back(Instant::now());
        match self.fetch_keys(oauth).await {
            Ok(set) => {
                cache.issuer = Some(oauth.issuer.clone());
                cache.keys.clear();
                cache.anonymous.clear();
                for jwk in &set.keys {
                    let Ok(key) = DecodingKey::from_jwk(jwk) else {
                        continue;
                    };
                    let alg = jwk
                        .common
                        .key_algorithm
                        .and_then(|alg| alg.to_string().parse::<Algorithm>().ok());
                    match &jwk.common.key_id {
                        Some(kid) => {
                            cache.keys.insert(kid.clone(), (key, alg));
                        }
                        None => cache.anonymous.push((key, alg)),
                    }
                }
                tracing::info!(
                    n_keys = set.keys.len(),
                    "fetched the token issuer's signing keys"
                );
            }
            Err(why) => {
                tracing::warn!(issuer = %oauth.issuer, "cannot fetch the token issuer's signing keys: {why}");
            }
        }
        known(&cache).ok_or(Refused::Unauthorized("the token is not valid"))
    }

    async fn fetch_keys(&self, oauth: &OAuthSettings) -> Result<JwkSet, String> {
        let jwks_uri = match &oauth.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover_jwks_uri(&oauth.issuer).await?,
        };
        let document = self.fetch_json(&jwks_uri).await?;
        serde_json::from_value(document)
            .map_err(|error| format!("{jwks_uri}: not a JWK set: {error}"))
    }

    /// The issuer's `jwks_uri`, from its authorization server metadata (RFC 8414, the path
    /// inserted after the well-known prefix), else its OpenID configuration.
    async fn discover_jwks_uri(&self, issuer: &str) -> Result<String, String> {
        let issuer_url = reqwest::Url::parse(issuer).map_err(|error| format!("issuer: {error}"))?;
        let path = issuer_url.path().trim_end_matches('/');
        let origin = issuer_url.origin().ascii_serialization();
        let candidates = [
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
        ];
        let mut last = String::new();
        for url in candidates {
            match self.fetch_json(&url).await {
                Ok(metadata) => {
                    if metadata["issuer"].as_str() != Some(issuer) {
                        last = format!("{url}: its issuer is not `{issuer}`");
                        continue;
                    }
                    if let Some(uri) = metadata["jwks_uri"].as_str() {
                        return Ok(uri.to_owned());
                    }
                    last = format!("{url}: no jwks_uri");
                }
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    async fn fetch_json(&self, url: &str) -> Result<Value, String> {
        let parsed = reqwest::Url::parse(url).map_err(|error| format!("{url}: {error}"))?;
        let loopback = parsed.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
                || host == "[::1]"
        });
        if parsed.scheme() != "https" && !loopback {
            return Err(format!("{url}: only https is used outside loopback"));
        }
        let response = self
            .http
            .get(parsed)
            .send()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!("{url}: the document is too large"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url}: the document is too large"));
        }
        serde_json::from_slice(&body).map_err(|error| format!("{url}: not JSON: {error}"))
    }
}

fn invalid_token() -> Refused {
    Refused::Unauthorized("the token is not valid")
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

/// The scopes a token grants: `scope` (space-separated) or `scp` (a list).
fn token_scopes(claims: &Value) -> Vec<&str> {
    match (&claims["scope"], &claims["scp"]) {
        (Value::String(scopes), _) => scopes.split_whitespace().collect(),
        (_, Value::Array(scopes)) => scopes.iter().filter_map(Value::as_str).collect(),
        (_, Value::String(scopes)) => scopes.split_whitespace().collect(),
        _ => Vec::new(),
    }
}

/// The metadata URL of the protected resource `/mcp` of a gateway whose canonical URL is
/// `audience` (RFC 9728: the well-known path, then the resource's path).
pub(crate) fn resource_metadata_url(audience: &str) -> String {
    match reqwest::Url::parse(audience) {
        Ok(url) => format!(
            "{}/.well-known/oauth-protected-resource{}",
            url.origin().ascii_serialization(),
            url.path().trim_end_matches('/')
        ),
        Err(_) => format!("{audience}/.well-known/oauth-protected-resource"),
    }
}

/// The protected resource metadata document (RFC 9728).
pub(crate) fn resource_metadata(oauth: &OAuthSettings) -> Value {
    json!({
        "resource": oauth.audience,
        "authorization_servers": [oauth.issuer],
        "scopes_supported": oauth.scopes_supported,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-host gateway",
    })
}

impl Refused {
    /// The HTTP answer, with the `WWW-Authenticate` challenge the MCP authorization spec asks
    /// for when the gateway is a resource server.
    pub(crate) fn response(&self, oauth: Option<&OAuthSettings>) -> Response {
        let (status, message, challenge) = match self {
            Refused::Unauthorized(why) => (
                StatusCode::UNAUTHORIZED,
                (*why).to_owned(),
                match oauth {
                    Some(oauth) => {
                        let mut challenge = format!(
                            "Bearer resource_metadata=\"{}\"",
                            resource_metadata_url(&oauth.audience)
                        );
                        if !oauth.scopes_supported.is_empty() {
                            challenge.push_str(&format!(
                                ", scope=\"{}\"",
                                oauth.scopes_supported.join(" ")
                            ));
                        }
                        challenge
                    }
                    None => "Bearer".to_owned(),
                },
            ),
            Refused::Forbidden(why) => (StatusCode::FORBIDDEN, why.clone(), String::new()),
            Refused::InsufficientScope(scopes) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope".to_owned(),
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\"{}",
                    scopes.join(" "),
                    oauth
                        .map(|oauth| format!(
                            ", resource_metadata=\"{}\"",
                            resource_metadata_url(&oauth.audience)
                        ))
                        .unwrap_or_default()
                ),
            ),
        };
        let body =
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": message}});
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            if !challenge.is_empty() {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        assert_eq!(bearer(&headers), Some("secret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  secret "),
        );
        assert_eq!(bearer(&headers), Some("secret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic secret"),
        );
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn scopes_and_metadata_urls() {
        assert_eq!(token_scopes(&json!({"scope": "a b"})), vec!["a", "b"]);
        assert_eq!(token_scopes(&json!({"scp": ["a", "b"]})), vec!["a", "b"]);
        assert_eq!(
            resource_metadata_url("https://gw.example.com/mcp"),
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
        );
    }
}
