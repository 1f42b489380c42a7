//! One server's authorization: its tokens, and how they are renewed.
//!
//! An [`Authorizer`] is a cheap handle shared by every request to one server. The tokens and the
//! client's registration are held in memory and in the [`TokenStore`]. A token that expires
//! within a minute (or within a quarter of its lifetime, for short ones) is refreshed before it is
//! sent; a 401 renews the token that was refused. Renewals are serialized per server: a request
//! that finds a renewal under way waits for it and then uses its token, so 200 requests that meet
//! an expired token make one refresh. Renewing tries, in order: the refresh token; the client
//! credentials grant (for servers configured with it); the authorization code flow (when the
//! authorizer has a [`Browser`]); else the server needs a login.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_transport::ServerName;
use oauth2::{CsrfToken, PkceCodeChallenge};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Url;

use crate::challenge::{union_scopes, Challenge};
use crate::fetch::{check_url, sensitive, Fetcher, Found};
use crate::grant::{AssertionKey, TokenFailure, TokenRequest};
use crate::identity::identify;
use crate::metadata::{canonical_resource, discover, resource_metadata_urls, Discovered};
use crate::store::{now_secs, Record, RecordKey, TokenStore, Tokens};
use crate::{AuthOptions, Browser, Error, Grant};

/// The longest a token is refreshed before it expires.
const REFRESH_MARGIN_SECS: u64 = 60;

/// How many token values are remembered for masking.
const MASKED_TOKENS: usize = 8;

/// One server's authorization. Cheap to clone: clones share the tokens and the renewal.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

/// Whether this host can call a server on someone's behalf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStatus {
    /// No token, and none asked for yet (the server may need none).
    NotLoggedIn,
    /// A token, valid until `expires_at` (seconds since the epoch) if the server said.
    LoggedIn {
        /// When the access token expires.
        expires_at: Option<u64>,
        /// Whether it can be refreshed without a person.
        refreshable: bool,
    },
    /// The tokens are not accepted any more; a person has to log in again.
    NeedsLogin {
        /// Why.
        reason: String,
    },
}

/// How a login ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token was obtained and stored.
    LoggedIn {
        /// When it expires (seconds since the epoch), if the server said.
        expires_at: Option<u64>,
        /// The scopes granted.
        scopes: Vec<String>,
    },
    /// The server asks for no authorization.
    NotRequired,
}

/// What an authorizer did, for tests and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Refresh token requests.
    pub refreshes: u64,
    /// Authorization code flows started.
    pub authorizations: u64,
    /// Client credentials token requests.
    pub client_credentials: u64,
}

struct Inner {
    server: ServerName,
    server_url: Url,
    options: AuthOptions,
    key: RecordKey,
    store: TokenStore,
    fetcher: Fetcher,
    assertion_key: Option<AssertionKey>,
    browser: Mutex<Option<Arc<dyn Browser>>>,
    state: Mutex<State>,
    /// Held while tokens are renewed (or loaded): one renewal at a time.
    renewal: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
    authorizations: AtomicU64,
    client_credentials: AtomicU64,
}

#[derive(Default)]
struct State {
    loaded: bool,
    record: Record,
    /// Scope sets already authorized for since the last login: asking for one again would not
    /// help (the step-up limit).
    authorized: Vec<BTreeSet<String>>,
    /// Every token value held, newest last, for [`Authorizer::mask`].
    seen: Vec<String>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("server", &self.inner.server)
            .field("server_url", &self.inner.server_url.as_str())
            .field("options", &self.inner.options)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

fn lock_browser(
    browser: &Mutex<Option<Arc<dyn Browser>>>,
) -> MutexGuard<'_, Option<Arc<dyn Browser>>> {
    match browser.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Authorizer {
    /// The authorization of `server`, reached at `server_url`, keeping its tokens in `store`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a URL that is not one, or a private key or algorithm that cannot
    /// sign.
    pub fn new(
        server: ServerName,
        server_url: &str,
        options: AuthOptions,
        store: TokenStore,
    ) -> Result<Authorizer, Error> {
        let config_error = |reason: String| Error::Config {
            server: server.clone(),
            reason,
        };
        let server_url = Url::parse(server_url)
            .map_err(|error| config_error(format!("the server URL is not a URL: {error}")))?;
        let assertion_key = match &options.private_key {
            Some(pem) => {
                let algorithm = options.signing_algorithm.as_deref().unwrap_or("ES256");
                let algorithm: jsonwebtoken::Algorithm = algorithm.parse().map_err(|_| {
                    config_error(format!("unknown signing algorithm `{algorithm}`"))
                })?;
                let key = AssertionKey {
                    pem: pem.clone(),
                    algorithm,
                };
                crate::grant::encoding_key(&key).map_err(config_error)?;
                Some(key)
            }
            None => None,
        };
        let fetcher = Fetcher::new(server.clone(), options.request_timeout)?;
        let key = RecordKey {
            server_url: canonical_resource(&server_url),
            client_id: options.client_id.clone(),
        };
        Ok(Authorizer {
            inner: Arc::new(Inner {
                server,
                server_url,
                options,
                key,
                store,
                fetcher,
                assertion_key,
                browser: Mutex::new(None),
                state: Mutex::new(State::default()),
                renewal: tokio::sync::Mutex::new(()),
                refreshes: AtomicU64::new(0),
                authorizations: AtomicU64::new(0),
                client_credentials: AtomicU64::new(0),
            }),
        })
    }

    /// The same authorizer (and its clones), which from now on runs the authorization code flow
    /// with `browser` whenever it needs a new token and no refresh gives one.
    pub fn with_browser(self, browser: Arc<dyn Browser>) -> Authorizer {
        *lock_browser(&self.inner.browser) = Some(browser);
        self
    }

    /// The server.
    pub fn server(&self) -> &ServerName {
        &self.inner.server
    }

    /// The file the tokens are kept in, for a store that keeps files.
    pub fn token_file(&self) -> Option<std::path::PathBuf> {
        self.inner.store.path(&self.inner.key)
    }

    /// The port of the loopback redirect URI of the stored registration, so that a new login
    /// can listen on it and use the registration again (an authorization server may compare
    /// redirect URIs exactly).
    pub async fn redirect_port(&self) -> Option<u16> {
        self.ensure_loaded().await.ok()?;
        let state = lock(&self.inner.state);
        let client = state.record.client.as_ref()?;
        let uri = Url::parse(client.redirect_uri.as_deref()?).ok()?;
        uri.port()
    }

    /// What this authorizer did so far.
    pub fn stats(&self) -> AuthStats {
        AuthStats {
            refreshes: self.inner.refreshes.load(Ordering::Relaxed),
            authorizations: self.inner.authorizations.load(Ordering::Relaxed),
            client_credentials: self.inner.client_credentials.load(Ordering::Relaxed),
        }
    }

    /// The `Authorization` header for the next request: the access token, refreshed first if it
    /// expires soon; `None` without a token (the request goes without: the server may not ask
    /// for one). A refresh that fails for a passing reason leaves the old token in use.
    ///
    /// # Errors
    ///
    /// [`Error::NeedsLogin`] when the refresh token was refused and no other way is left; a
    /// token file that cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a renewal cut short by dropping the future leaves the old tokens in place.
    pub async fn bearer(&self) -> Result<Option<HeaderValue>, Error> {
        if !self.may_send_tokens() {
            return Ok(None);
        }
        self.ensure_loaded().await?;
        let Some((token, expiring)) = self.current() else {
            return Ok(None);
        };
        if expiring {
            match self.renew(Some(token), None, None).await {
                Ok(()) => {}
                Err(error) if error.needs_login() => return Err(error),
                Err(error) => {
                    tracing::warn!(server = %self.inner.server, error = %error, "the token could not be refreshed before it expires; using it as it is");
                }
            }
        }
        Ok(self
            .current()
            .and_then(|(token, _)| sensitive(&format!("Bearer {token}"))))
    }

    /// Renews the token after the server answered 401 to a request that carried `used` (the
    /// `Authorization` header sent, if any), with `challenge` its `WWW-Authenticate` value. When
    /// another request renewed it meanwhile, returns at once. Then the request may be sent again.
    ///
    /// # Errors
    ///
    /// [`Error::NeedsLogin`] when no token can be had without a person; the errors of discovery,
    /// registration and the token endpoint.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Authorizer::bearer`].
    pub async fn unauthorized(
        &self,
        challenge: Option<&str>,
        used: Option<&HeaderValue>,
    ) -> Result<(), Error> {
        self.refuse_plain_http()?;
        self.ensure_loaded().await?;
        let challenge = challenge.and_then(Challenge::parse);
        let used = used.and_then(bearer_text);
        self.renew(used, challenge, None).await
    }

    /// Handles a 403 answer: when its challenge says `insufficient_scope` with the scopes the
    /// request needs, authorizes again asking for them too (step-up) and returns `true` (send the
    /// request again); returns `false` for any other 403, which is the request's answer.
    ///
    /// A set of scopes is asked for once: a server that keeps refusing it gets
    /// [`Error::InsufficientScope`].
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientScope`]; [`Error::NeedsLogin`] without a browser (the scopes are
    /// remembered for the next login); the errors of the authorization.
    pub async fn forbidden(
        &self,
        challenge: Option<&str>,
        used: Option<&HeaderValue>,
    ) -> Result<bool, Error> {
        let Some(challenge) = challenge.and_then(Challenge::parse) else {
            return Ok(false);
        };
        let Some(required) = challenge
            .scopes()
            .filter(|_| challenge.is_insufficient_scope())
        else {
            return Ok(false);
        };
        self.refuse_plain_http()?;
        self.ensure_loaded().await?;
        let used = used.and_then(bearer_text);
        self.renew(used, Some(challenge), Some(required)).await?;
        Ok(true)
    }

    /// Logs in now: asks the server (an unauthenticated `initialize`) whether and how it wants
    /// authorization, then runs the configured grant, with `browser` for the authorization code
    /// flow, and stores the tokens.
    ///
    /// # Errors
    ///
    /// The errors of discovery, registration, the authorization step and the token endpoint.
    pub async fn login(&self, browser: Arc<dyn Browser>) -> Result<LoginOutcome, Error> {
        self.refuse_plain_http()?;
        self.ensure_loaded().await?;
        let challenge = self.probe().await?;
        if challenge.is_none() && !self.has_resource_metadata().await? {
            return Ok(LoginOutcome::NotRequired);
        }
        let _renewal = self.inner.renewal.lock().await;
        lock(&self.inner.state).authorized.clear();
        let tokens = match self.inner.options.grant {
            Grant::ClientCredentials => self.client_credentials(challenge, None).await?,
            Grant::IdentityAssertion => self.identity_assertion(challenge, None).await?,
            Grant::AuthorizationCode => self.authorize(browser, challenge, None).await?,
        };
        Ok(LoginOutcome::LoggedIn {
            expires_at: tokens.expires_at,
            scopes: tokens.scope,
        })
    }

    /// Forgets the tokens and the registration, in memory and in the store; returns whether
    /// there was anything to forget.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the file cannot be removed.
    pub async fn logout(&self) -> Result<bool, Error> {
        let _renewal = self.inner.renewal.lock().await;
        let had = {
            let mut state = lock(&self.inner.state);
            let had = state.record.tokens.is_some();
            state.record = Record::default();
            state.loaded = true;
            state.authorized.clear();
            had
        };
        let removed = self
            .inner
            .store
            .remove(&self.inner.key)
            .await
            .map_err(|source| self.store_error(source))?;
        Ok(had || removed)
    }

    /// Whether the server can be called on someone's behalf now.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the token file cannot be read.
    pub async fn status(&self) -> Result<AuthStatus, Error> {
        self.ensure_loaded().await?;
        let state = lock(&self.inner.state);
        Ok(match (&state.record.needs_login, &state.record.tokens) {
            (Some(reason), _) => AuthStatus::NeedsLogin {
                reason: reason.clone(),
            },
            (None, Some(tokens)) => AuthStatus::LoggedIn {
                expires_at: tokens.expires_at,
                refreshable: tokens.refresh_token.is_some()
                    || self.inner.options.grant != Grant::AuthorizationCode,
            },
            (None, None) => AuthStatus::NotLoggedIn,
        })
    }

    /// `text` with every token this authorizer has held replaced by `****` (for text that came
    /// from a server, which might echo one).
    pub fn mask(&self, text: &str) -> String {
        let state = lock(&self.inner.state);
        let mut masked = text.to_owned();
        for token in state.seen.iter().rev() {
            if token.len() >= 4 && masked.contains(token.as_str()) {
                masked = masked.replace(token.as_str(), "****");
            }
        }
        masked
    }

    /// Whether tokens may go to the server: over https, or to this machine.
    fn may_send_tokens(&self) -> bool {
        check_url(&self.inner.server, &self.inner.server_url).is_ok()
    }

    fn refuse_plain_http(&self) -> Result<(), Error> {
        check_url(&self.inner.server, &self.inner.server_url).map_err(|_| Error::Refused {
            server: self.inner.server.clone(),
            what: "to authorize".to_owned(),
            reason: format!(
                "the server's URL {} is plain http to another host, and tokens are only sent over https",
                self.inner.server_url
            ),
        })
    }

    /// The access token and whether it expires soon.
    fn current(&self) -> Option<(String, bool)> {
        let state = lock(&self.inner.state);
        let tokens = state.record.tokens.as_ref()?;
        Some((tokens.access_token.clone(), expiring(tokens, now_secs())))
    }

    /// Loads the record from the store the first time.
    async fn ensure_loaded(&self) -> Result<(), Error> {
        if lock(&self.inner.state).loaded {
            return Ok(());
        }
        let _renewal = self.inner.renewal.lock().await;
        if lock(&self.inner.state).loaded {
            return Ok(());
        }
        let record = self
            .inner
            .store
            .load(&self.inner.key)
            .await
            .map_err(|source| self.store_error(source))?;
        let mut state = lock(&self.inner.state);
        if let Some(record) = record {
            remember(&mut state.seen, record.tokens.as_ref());
            state.record = record;
        }
        state.loaded = true;
        Ok(())
    }

    /// Gets a new token in place of `stale` (the token that was refused or expires; `None` for
    /// none). `step_up` holds the scopes a 403 asked for.
    async fn renew(
        &self,
        stale: Option<String>,
        challenge: Option<Challenge>,
        step_up: Option<Vec<String>>,
    ) -> Result<(), Error> {
        let stale = stale.as_deref();
        let _renewal = self.inner.renewal.lock().await;
        // Renewed by another request while this one waited?
        if let Some((current, expiring)) = self.current() {
            if Some(current.as_str()) != stale && !expiring {
                let covered = step_up.as_ref().is_none_or(|required| {
                    let state = lock(&self.inner.state);
                    let granted = state.record.tokens.as_ref().map(|t| &t.scope);
                    granted.is_some_and(|granted| required.iter().all(|s| granted.contains(s)))
                });
                if covered {
                    return Ok(());
                }
            }
        }
        if step_up.is_none() {
            let refresh_token = lock(&self.inner.state)
                .record
                .tokens
                .as_ref()
                .and_then(|tokens| tokens.refresh_token.clone());
            if let Some(refresh_token) = refresh_token {
                match self.refresh(&refresh_token).await {
                    Ok(()) => return Ok(()),
                    Err(TokenFailure::InvalidGrant(reason)) => {
                        tracing::warn!(server = %self.inner.server, %reason, "the refresh token was refused; the server needs a login");
                        self.note_needs_login(
                            format!("the refresh token was refused ({reason})"),
                            true,
                        )
                        .await?;
                    }
                    Err(TokenFailure::Other(error)) => return Err(error),
                }
            }
        }
        let browser = lock_browser(&self.inner.browser).clone();
        match (self.inner.options.grant, browser) {
            (Grant::ClientCredentials, _) => {
                self.client_credentials(challenge, step_up).await?;
                Ok(())
            }
            (Grant::IdentityAssertion, _) => {
                self.identity_assertion(challenge, step_up).await?;
                Ok(())
            }
            (Grant::AuthorizationCode, Some(browser)) => {
                self.authorize(browser, challenge, step_up).await?;
                Ok(())
            }
            (Grant::AuthorizationCode, None) => {
                let needs_login = |reason: String| Error::NeedsLogin {
                    server: self.inner.server.clone(),
                    reason,
                };
                let reason = if let Some(scopes) = &step_up {
                    // The token still serves what it was granted for: it is kept.
                    self.remember_scopes(scopes);
                    let reason = format!("the server asks for scope `{}`", scopes.join(" "));
                    self.note_needs_login(reason.clone(), false).await?;
                    return Err(needs_login(reason));
                } else if let Some(reason) = lock(&self.inner.state).record.needs_login.clone() {
                    return Err(needs_login(reason));
                } else if stale.is_some() {
                    "the server refused the token and there is no refresh token".to_owned()
                } else {
                    return Err(needs_login("no token yet".to_owned()));
                };
                self.note_needs_login(reason.clone(), true).await?;
                Err(needs_login(reason))
            }
        }
    }

    /// Uses the refresh token.
    async fn refresh(&self, refresh_token: &str) -> Result<(), TokenFailure> {
        let record = lock(&self.inner.state).record.clone();
        let (Some(client), Some(endpoint), Some(issuer)) =
            (&record.client, &record.token_endpoint, &record.issuer)
        else {
            return Err(TokenFailure::InvalidGrant(
                "the stored record lacks the client or the token endpoint".to_owned(),
            ));
        };
        let endpoint = Url::parse(endpoint).map_err(|error| {
            TokenFailure::Other(Error::Discovery {
                server: self.inner.server.clone(),
                reason: format!("the stored token endpoint is not a URL: {error}"),
            })
        })?;
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(server = %self.inner.server, "refreshing the access token");
        let request = TokenRequest {
            fetcher: &self.inner.fetcher,
            token_endpoint: &endpoint,
            issuer,
            client,
            key: self.inner.assertion_key.as_ref(),
            resource: record.resource.as_deref(),
        };
        let tokens = request.refresh(refresh_token, &record.scopes).await?;
        let mut record = record;
        record.tokens = Some(tokens);
        record.needs_login = None;
        self.save(record).await.map_err(TokenFailure::Other)?;
        tracing::info!(server = %self.inner.server, "access token refreshed");
        Ok(())
    }

    /// The client credentials grant.
    async fn client_credentials(
        &self,
        challenge: Option<Challenge>,
        step_up: Option<Vec<String>>,
    ) -> Result<Tokens, Error> {
        let discovered = discover(
            &self.inner.fetcher,
            &self.inner.server_url,
            challenge.clone(),
        )
        .await?;
        if !discovered.supports_grant("client_credentials") {
            return Err(self.grant_not_offered(&discovered, "the client_credentials grant"));
        }
        let (scopes, client) = self
            .scopes_and_client(challenge.as_ref(), &discovered, step_up.as_deref())
            .await?;
        self.inner
            .client_credentials
            .fetch_add(1, Ordering::Relaxed);
        let tokens = self
            .token_request(&discovered, &client)
            .client_credentials(&scopes)
            .await
            .map_err(|failure| failure.into_error(&self.inner.fetcher, "client_credentials"))?;
        self.store_new(&discovered, client, tokens.clone(), scopes)
            .await?;
        tracing::info!(server = %self.inner.server, "access token obtained with the client credentials grant");
        Ok(tokens)
    }

    /// Enterprise-Managed Authorization (SEP-990): the identity provider's identity assertion
    /// for this server's authorization server, then the JWT bearer grant.
    async fn identity_assertion(
        &self,
        challenge: Option<Challenge>,
        step_up: Option<Vec<String>>,
    ) -> Result<Tokens, Error> {
        let Some(provider) = self.inner.options.identity_provider.clone() else {
            return Err(Error::Config {
                server: self.inner.server.clone(),
                reason: "the identity assertion grant needs an identity provider".to_owned(),
            });
        };
        let discovered = discover(
            &self.inner.fetcher,
            &self.inner.server_url,
            challenge.clone(),
        )
        .await?;
        let listed = discovered
            .metadata
            .as_ref()
            .and_then(|m| m.grant_types_supported.as_ref());
        if listed.is_some_and(|grants| !grants.iter().any(|g| g == crate::grant::JWT_BEARER)) {
            return Err(self.grant_not_offered(&discovered, "the JWT bearer grant"));
        }
        let (scopes, client) = self
            .scopes_and_client(challenge.as_ref(), &discovered, step_up.as_deref())
            .await?;
        let assertion = crate::grant::exchange_id_token(
            &self.inner.fetcher,
            &provider,
            &discovered.issuer,
            &discovered.resource,
            &scopes,
        )
        .await?;
        let tokens = self
            .token_request(&discovered, &client)
            .jwt_bearer(&assertion, &scopes)
            .await
            .map_err(|failure| failure.into_error(&self.inner.fetcher, "jwt-bearer"))?;
        self.store_new(&discovered, client, tokens.clone(), scopes)
            .await?;
        tracing::info!(server = %self.inner.server, "access token obtained with an identity assertion");
        Ok(tokens)
    }

    /// The refusal of a grant the authorization server does not offer.
    fn grant_not_offered(&self, discovered: &Discovered, grant: &str) -> Error {
        Error::Authorization {
            server: self.inner.server.clone(),
            reason: format!(
                "the authorization server {} does not offer {grant}",
                discovered.issuer
            ),
        }
    }

    /// What a grant without a person asks for: the scopes, and the client it authenticates as
    /// (the stored one, or one identified or registered now).
    async fn scopes_and_client(
        &self,
        challenge: Option<&Challenge>,
        discovered: &Discovered,
        step_up: Option<&[String]>,
    ) -> Result<(Vec<String>, crate::store::ClientRecord), Error> {
        let scopes = self.scopes_for(challenge, discovered, step_up, false)?;
        let stored = lock(&self.inner.state).record.client.clone();
        let client = identify(
            &self.inner.fetcher,
            &self.inner.options,
            discovered,
            None,
            stored.as_ref(),
        )
        .await?;
        Ok((scopes, client))
    }

    /// A request to the token endpoint of `discovered`, as `client`, for this server.
    fn token_request<'a>(
        &'a self,
        discovered: &'a Discovered,
        client: &'a crate::store::ClientRecord,
    ) -> TokenRequest<'a> {
        TokenRequest {
            fetcher: &self.inner.fetcher,
            token_endpoint: &discovered.token_endpoint,
            issuer: &discovered.issuer,
            client,
            key: self.inner.assertion_key.as_ref(),
            resource: Some(&discovered.resource),
        }
    }

    /// The authorization code flow with PKCE.
    async fn authorize(
        &self,
        browser: Arc<dyn Browser>,
        challenge: Option<Challenge>,
        step_up: Option<Vec<String>>,
    ) -> Result<Tokens, Error> {
        let server = &self.inner.server;
        let discovered = discover(
            &self.inner.fetcher,
            &self.inner.server_url,
            challenge.clone(),
        )
        .await?;
        if !discovered.supports_grant("authorization_code") {
            return Err(Error::Authorization {
                server: server.clone(),
                reason: format!(
                    "the authorization server {} does not offer the authorization_code grant (set `auth.grant` to the one it offers)",
                    discovered.issuer
                ),
            });
        }
        if let Some(metadata) = &discovered.metadata {
            let s256 = metadata
                .code_challenge_methods_supported
                .as_ref()
                .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
            if !s256 {
                return Err(Error::Refused {
                    server: server.clone(),
                    what: format!("the authorization server {}", discovered.issuer),
                    reason: "its metadata does not list PKCE with S256 (code_challenge_methods_supported), which MCP requires".to_owned(),
                });
            }
        }
        let Some(endpoint) = &discovered.authorization_endpoint else {
            return Err(Error::Discovery {
                server: server.clone(),
                reason: format!(
                    "the authorization server {} has no authorization_endpoint",
                    discovered.issuer
                ),
            });
        };
        let scopes = self.scopes_for(challenge.as_ref(), &discovered, step_up.as_deref(), true)?;
        let redirect_uri = browser.redirect_uri();
        let stored = lock(&self.inner.state).record.client.clone();
        let client = identify(
            &self.inner.fetcher,
            &self.inner.options,
            &discovered,
            Some(&redirect_uri),
            stored.as_ref(),
        )
        .await?;
        let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random();
        let mut url = endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("code_challenge", pkce.as_str())
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", state.secret());
            if !scopes.is_empty() {
                query.append_pair("scope", &scopes.join(" "));
            }
            query.append_pair("resource", &discovered.resource);
        }
        self.inner.authorizations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(server = %server, issuer = %discovered.issuer, scopes = %scopes.join(" "), "authorizing with the authorization code flow");
        let timeout = self.inner.options.login_timeout;
        let callback = match tokio::time::timeout(timeout, browser.visit(&url)).await {
            Ok(Ok(callback)) => callback,
            Ok(Err(reason)) => {
                return Err(Error::Authorization {
                    server: server.clone(),
                    reason,
                })
            }
            Err(_) => {
                return Err(Error::Authorization {
                    server: server.clone(),
                    reason: format!("no redirect came back within {} s", timeout.as_secs()),
                })
            }
        };
        if let Some(error) = &callback.error {
            let mut reason = format!("the authorization server answered `{error}`");
            if let Some(description) = &callback.error_description {
                reason.push_str(": ");
                reason.push_str(description);
            }
            return Err(Error::Authorization {
                server: server.clone(),
                reason,
            });
        }
        if callback.state.as_deref() != Some(state.secret().as_str()) {
            return Err(Error::Authorization {
                server: server.clone(),
                reason: "the redirect's `state` is not the one sent (a forged or stale redirect)"
                    .to_owned(),
            });
        }
        if let Some(issuer) = &callback.issuer {
            if issuer.trim_end_matches('/') != discovered.issuer.trim_end_matches('/') {
                return Err(Error::Refused {
                    server: server.clone(),
                    what: "the authorization redirect".to_owned(),
                    reason: format!(
                        "it comes from the issuer {issuer}, not {}",
                        discovered.issuer
                    ),
                });
            }
        }
        let Some(code) = &callback.code else {
            return Err(Error::Authorization {
                server: server.clone(),
                reason: "the redirect carries no code".to_owned(),
            });
        };
        let tokens = self
            .token_request(&discovered, &client)
            .code(code, verifier.secret(), &redirect_uri, &scopes)
            .await
            .map_err(|failure| failure.into_error(&self.inner.fetcher, "authorization_code"))?;
        self.store_new(&discovered, client, tokens.clone(), scopes)
            .await?;
        tracing::info!(server = %server, "authorized");
        Ok(tokens)
    }

    /// The scopes to ask for: the configured ones, else those of the challenge, else all that the
    /// protected resource lists, else none; with the scopes of a step-up added to those asked
    /// before; and `offline_access` for the code flow when the authorization server lists it.
    fn scopes_for(
        &self,
        challenge: Option<&Challenge>,
        discovered: &Discovered,
        step_up: Option<&[String]>,
        code_flow: bool,
    ) -> Result<Vec<String>, Error> {
        let mut scopes = if let Some(configured) = &self.inner.options.scopes {
            configured.clone()
        } else if let Some(challenged) = challenge.and_then(Challenge::scopes) {
            challenged
        } else {
            discovered.resource_scopes.clone().unwrap_or_default()
        };
        let remembered = lock(&self.inner.state).record.scopes.clone();
        if let Some(required) = step_up {
            scopes = union_scopes(&union_scopes(&remembered, &scopes), required);
            let wanted: BTreeSet<String> = scopes.iter().cloned().collect();
            let state = lock(&self.inner.state);
            if state.authorized.iter().any(|done| wanted.is_subset(done)) {
                return Err(Error::InsufficientScope {
                    server: self.inner.server.clone(),
                    scope: required.join(" "),
                });
            }
        } else if scopes.is_empty() && !remembered.is_empty() {
            // Scopes a step-up asked for before a login.
            scopes = remembered;
        }
        let offline = "offline_access".to_owned();
        if code_flow && discovered.server_scopes().contains(&offline) && !scopes.contains(&offline)
        {
            scopes.push(offline);
        }
        Ok(scopes)
    }

    /// Stores new tokens with the client and the discovery they came from.
    async fn store_new(
        &self,
        discovered: &Discovered,
        client: crate::store::ClientRecord,
        tokens: Tokens,
        scopes: Vec<String>,
    ) -> Result<(), Error> {
        {
            let mut state = lock(&self.inner.state);
            state.authorized.push(scopes.iter().cloned().collect());
        }
        let record = Record {
            version: 1,
            server: self.inner.server.as_str().to_owned(),
            server_url: self.inner.key.server_url.clone(),
            resource: Some(discovered.resource.clone()),
            issuer: Some(discovered.issuer.clone()),
            token_endpoint: Some(discovered.token_endpoint.to_string()),
            client: Some(client),
            tokens: Some(tokens),
            scopes,
            needs_login: None,
        };
        self.save(record).await
    }

    /// Replaces the record, in memory and in the store.
    async fn save(&self, record: Record) -> Result<(), Error> {
        {
            let mut state = lock(&self.inner.state);
            remember(&mut state.seen, record.tokens.as_ref());
            state.record = record.clone();
        }
        self.inner
            .store
            .save(&self.inner.key, &record)
            .await
            .map_err(|source| self.store_error(source))
    }

    /// Says why a login is needed, dropping the tokens when they are of no use any more.
    async fn note_needs_login(&self, reason: String, drop_tokens: bool) -> Result<(), Error> {
        let mut record = lock(&self.inner.state).record.clone();
        if drop_tokens {
            record.tokens = None;
        }
        record.needs_login = Some(reason);
        if record.server_url.is_empty() {
            record.version = 1;
            record.server = self.inner.server.as_str().to_owned();
            record.server_url = self.inner.key.server_url.clone();
        }
        self.save(record).await
    }

    fn remember_scopes(&self, scopes: &[String]) {
        let mut state = lock(&self.inner.state);
        let merged = union_scopes(&state.record.scopes, scopes);
        state.record.scopes = merged;
    }

    /// An unauthenticated `initialize` to the server: the challenge of its 401, or `None` when
    /// it answered otherwise (then a session it opened is ended).
    async fn probe(&self) -> Result<Option<Challenge>, Error> {
        let url = &self.inner.server_url;
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": self.inner.options.client_name, "version": env!("CARGO_PKG_VERSION")}
            }
        });
        let request = self
            .inner
            .fetcher
            .client
            .post(url.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let response = self.inner.fetcher.send(url, request).await?;
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .map(|value| Challenge::parse(value).unwrap_or_default());
        if status == 401 || status == 403 {
            return Ok(Some(challenge.unwrap_or_default()));
        }
        if let Some(session) = response.headers().get("mcp-session-id").cloned() {
            let delete = self
                .inner
                .fetcher
                .client
                .delete(url.clone())
                .header("mcp-session-id", session);
            let _ = self.inner.fetcher.send(url, delete).await;
        }
        Ok(None)
    }

    /// Whether the server publishes protected resource metadata at a well-known URL.
    async fn has_resource_metadata(&self) -> Result<bool, Error> {
        for url in resource_metadata_urls(&self.inner.server_url) {
            if let Found::Document(_) = self.inner.fetcher.get_json(&url).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn store_error(&self, source: std::io::Error) -> Error {
        Error::Store {
            server: self.inner.server.clone(),
            path: self.inner.store.path(&self.inner.key).unwrap_or_default(),
            source,
        }
    }
}

/// Whether `tokens` expire within the refresh margin: a minute, or a quarter of their lifetime
/// when that is shorter.
fn expiring(tokens: &Tokens, now: u64) -> bool {
    let Some(expires_at) = tokens.expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(tokens.obtained_at);
    let margin = REFRESH_MARGIN_SECS.min(lifetime / 4);
    now.saturating_add(margin) >= expires_at
}

/// Adds the values of `tokens` to the masked ones.
fn remember(seen: &mut Vec<String>, tokens: Option<&Tokens>) {
    let Some(tokens) = tokens else {
        return;
    };
    for value in [Some(&tokens.access_token), tokens.refresh_token.as_ref()]
        .into_iter()
        .flatten()
    {
        if !seen.contains(value) {
            seen.push(value.clone());
        }
    }
    let excess = seen.len().saturating_sub(MASKED_TOKENS);
    seen.drain(..excess);
}

/// The token of an `Authorization: Bearer …` value.
fn bearer_text(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_a_minute_or_a_quarter_of_their_life_early() {
        let tokens = |obtained_at, expires_at| Tokens {
            obtained_at,
            expires_at,
            ..Tokens::default()
        };
        assert!(!expiring(&tokens(1000, None), 10_000_000));
        // An hour's token: a minute early.
        assert!(!expiring(&tokens(1000, Some(4600)), 4539));
        assert!(expiring(&tokens(1000, Some(4600)), 4540));
        // A 20 s token: 5 s early.
        assert!(!expiring(&tokens(1000, Some(1020)), 1014));
        assert!(expiring(&tokens(1000, Some(1020)), 1015));
        // A token that expired.
        assert!(expiring(&tokens(1000, Some(1001)), 1001));
    }

    #[test]
    fn masked_tokens_are_bounded() {
        let mut seen = Vec::new();
        for idx in 0..20 {
            let tokens = Tokens {
                access_token: format!("access-{idx}"),
                refresh_token: Some(format!("refresh-{idx}")),
                ..Tokens::default()
            };
            remember(&mut seen, Some(&tokens));
        }
        assert_eq!(seen.len(), MASKED_TOKENS);
        assert_eq!(seen.last().map(String::as_str), Some("refresh-19"));
    }
}
