//! A fake OAuth 2.1 authorization server, in process, with scriptable lifetimes, revocations and
//! malicious metadata; and the guard a fake MCP server uses to accept only its tokens.
//!
//! It listens on `127.0.0.1:<free port>` (its issuer is `http://127.0.0.1:<port>`) and serves
//! RFC 8414 metadata, dynamic registration, an authorization endpoint that approves at once
//! (redirecting to the client's `redirect_uri` with a code and the `state`), and a token endpoint
//! for the authorization code (PKCE S256 checked), refresh token and client credentials grants.
//! [`FakeAuthServer::guard`] gives a [`FakeHttpConfig`](crate::fake_http::FakeHttpConfig) what it
//! needs to check bearer tokens and publish protected resource metadata naming this server.
//! [`FakeAuthServer::log`] says what it was asked and every secret it handed out, so that tests can
//! look for them in logs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the fake authorization server does.
#[derive(Clone, Debug)]
pub struct FakeAuthConfig {
    /// The lifetime (`expires_in`) of access tokens, in seconds.
    pub access_lifetime_secs: u64,
    /// The lifetime of the first access token it issues, when it differs (0: expired at once).
    pub first_access_lifetime_secs: Option<u64>,
    /// Whether it issues refresh tokens.
    pub refresh_tokens: bool,
    /// `scopes_supported` of its metadata.
    pub scopes_supported: Option<Vec<String>>,
    /// An `issuer` for its metadata other than its own (a malicious document).
    pub issuer_override: Option<String>,
    /// A `token_endpoint` for its metadata other than its own (a malicious document).
    pub token_endpoint_override: Option<String>,
    /// Its metadata URL answers with a redirect to this URL instead of the document.
    pub metadata_redirect: Option<String>,
    /// How long the token endpoint waits before it answers (to let concurrent callers pile up).
    pub token_delay: Duration,
    /// `code_challenge_methods_supported` of its metadata (`None`: left out).
    pub pkce_methods: Option<Vec<String>>,
}

impl Default for FakeAuthConfig {
    fn default() -> FakeAuthConfig {
        FakeAuthConfig {
            access_lifetime_secs: 3600,
            first_access_lifetime_secs: None,
            refresh_tokens: true,
            scopes_supported: None,
            issuer_override: None,
            token_endpoint_override: None,
            metadata_redirect: None,
            token_delay: Duration::ZERO,
            pkce_methods: Some(vec!["S256".to_owned()]),
        }
    }
}

/// What the fake authorization server saw and handed out.
#[derive(Clone, Debug, Default)]
pub struct FakeAuthLog {
    /// Requests for its metadata.
    pub metadata_requests: usize,
    /// Dynamic registrations.
    pub registrations: usize,
    /// Authorization requests (each approved at once), with their query.
    pub authorizations: Vec<HashMap<String, String>>,
    /// Token requests by grant type, in order of arrival.
    pub token_requests: Vec<String>,
    /// Every access token, refresh token, code and client secret it issued.
    pub secrets: Vec<String>,
}

impl FakeAuthLog {
    /// How many token requests used `grant`.
    pub fn n_grants(&self, grant: &str) -> usize {
        self.token_requests.iter().filter(|g| *g == grant).count()
    }
}

/// Checks bearer tokens for a fake MCP server, and names the authorization server in its
/// protected resource metadata.
#[derive(Clone)]
pub struct Guard {
    state: Arc<Shared>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Whether `token` is an access token the server issued and did not invalidate.
    pub fn accepts(&self, token: &str) -> bool {
        lock(&self.state.tokens).access.contains(token)
    }

    /// The issuer, for protected resource metadata.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The scopes the protected resource lists, if any.
    pub fn scopes(&self) -> Option<Vec<String>> {
        self.state.config.scopes_supported.clone()
    }
}

/// A running fake authorization server; dropping it stops it.
#[derive(Debug)]
pub struct FakeAuthServer {
    addr: SocketAddr,
    state: Arc<Shared>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

struct Shared {
    config: FakeAuthConfig,
    issuer: String,
    log: Mutex<FakeAuthLog>,
    tokens: Mutex<Tokens>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAuthServer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tokens {
    access: HashSet<String>,
    refresh: HashSet<String>,
    /// Code → (PKCE challenge, redirect URI, scope).
    codes: HashMap<String, (String, String, String)>,
    next: u64,
    issued_access: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl FakeAuthServer {
    /// Starts the server on a free loopback port.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub async fn start(config: FakeAuthConfig) -> std::io::Result<FakeAuthServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared {
            config,
            issuer: format!("http://{addr}"),
            log: Mutex::new(FakeAuthLog::default()),
            tokens: Mutex::new(Tokens::default()),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/register", post(register))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(FakeAuthServer {
            addr,
            state,
            tasks,
            shutdown,
        })
    }

    /// The issuer, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The guard for a fake MCP server protected by this authorization server.
    pub fn guard(&self) -> Guard {
        Guard {
            state: self.state.clone(),
        }
    }

    /// What it saw and issued so far.
    pub fn log(&self) -> FakeAuthLog {
        lock(&self.state.log).clone()
    }

    /// Invalidates every access token issued so far (the protected server answers 401).
    pub fn invalidate_access_tokens(&self) {
        lock(&self.state.tokens).access.clear();
    }

    /// Revokes every refresh token issued so far (a refresh gets `invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.state.tokens).refresh.clear();
    }

    /// Stops the server (bounded by 2 s).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

impl Drop for FakeAuthServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tasks.abort_all();
    }
}

async fn metadata(State(state): State<Arc<Shared>>) -> Response {
    lock(&state.log).metadata_requests += 1;
    if let Some(target) = &state.config.metadata_redirect {
        return (StatusCode::FOUND, [(header::LOCATION, target.clone())]).into_response();
    }
    let issuer = &state.issuer;
    let mut document = json!({
        "issuer": state.config.issuer_override.clone().unwrap_or_else(|| issuer.clone()),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": state.config.token_endpoint_override.clone().unwrap_or_else(|| format!("{issuer}/token")),
        "registration_endpoint": format!("{issuer}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
    });
    if let Some(scopes) = &state.config.scopes_supported {
        document["scopes_supported"] = json!(scopes);
    }
    if let Some(methods) = &state.config.pkce_methods {
        document["code_challenge_methods_supported"] = json!(methods);
    }
    Json(document).into_response()
}

async fn register(State(state): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let client_id = {
        let mut tokens = lock(&state.tokens);
        tokens.next += 1;
        format!("client-{}", tokens.next)
    };
    lock(&state.log).registrations += 1;
    let mut answer = body;
    answer["client_id"] = json!(client_id);
    answer["token_endpoint_auth_method"] = json!("none");
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn authorize(
    State(state): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    lock(&state.log).authorizations.push(query.clone());
    let (Some(redirect_uri), Some(challenge)) =
        (query.get("redirect_uri"), query.get("code_challenge"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and code_challenge are required",
        )
            .into_response();
    };
    let code = secret(&state, "code");
    lock(&state.tokens).codes.insert(
        code.clone(),
        (
            challenge.clone(),
            redirect_uri.clone(),
            query.get("scope").cloned().unwrap_or_default(),
        ),
    );
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut location = format!("{redirect_uri}{separator}code={code}");
    if let Some(state_param) = query.get("state") {
        location.push_str(&format!("&state={}", encode(state_param)));
    }
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(
    State(state): State<Arc<Shared>>,
    _headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    lock(&state.log).token_requests.push(grant.clone());
    if !state.config.token_delay.is_zero() {
        tokio::time::sleep(state.config.token_delay).await;
    }
    let refused = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": "refused by the fake"})),
        )
            .into_response()
    };
    let scope = match grant.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect_uri, scope)) = lock(&state.tokens).codes.remove(&code)
            else {
                return refused("invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if s256(&verifier) != challenge
                || form.get("redirect_uri") != Some(&redirect_uri)
                || !form.contains_key("resource")
            {
                return refused("invalid_grant");
            }
            scope
        }
        "refresh_token" => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if !lock(&state.tokens).refresh.remove(&presented) {
                return refused("invalid_grant");
            }
            form.get("scope").cloned().unwrap_or_default()
        }
        "client_credentials" => form.get("scope").cloned().unwrap_or_default(),
        _ => return refused("unsupported_grant_type"),
    };
    let access = secret(&state, "access");
    let lifetime = {
        let mut tokens = lock(&state.tokens);
        tokens.access.insert(access.clone());
        tokens.issued_access += 1;
        match (
            tokens.issued_access,
            state.config.first_access_lifetime_secs,
        ) {
            (1, Some(first)) => first,
            _ => state.config.access_lifetime_secs,
        }
    };
    let mut answer = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
    });
    if !scope.is_empty() {
        answer["scope"] = json!(scope);
    }
    if state.config.refresh_tokens && grant != "client_credentials" {
        let refresh = secret(&state, "refresh");
        lock(&state.tokens).refresh.insert(refresh.clone());
        answer["refresh_token"] = json!(refresh);
    }
    Json(answer).into_response()
}

/// A fresh secret value of some kind, logged as issued.
fn secret(state: &Shared, kind: &str) -> String {
    let next = {
        let mut tokens = lock(&state.tokens);
        tokens.next += 1;
        tokens.next
    };
    let value = format!("{kind}-{next:04}-{}", unique_suffix(next));
    lock(&state.log).secrets.push(value.clone());
    value
}

/// Characters unlikely to show up in a log by chance, so that a test finding them found a leak.
fn unique_suffix(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    let mut text = String::new();
    for _ in 0..12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push(char::from(b'a' + (x % 26) as u8));
    }
    text
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_of_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
