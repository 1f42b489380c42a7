//! The client side of MCP authorization (revision 2025-11-25): OAuth 2.1 to remote MCP servers.
//!
//! This crate sits between `mcp-transport` and `mcp-http`: an [`Authorizer`] is one server's
//! authorization, and `mcp-http` asks it for the bearer token of each request
//! ([`Authorizer::bearer`]) and hands it the server's 401 and 403 answers
//! ([`Authorizer::unauthorized`], [`Authorizer::forbidden`]). On a 401 it finds the server's
//! authorization server (protected resource metadata, RFC 9728; authorization server metadata,
//! RFC 8414 or OpenID Connect discovery; the fallbacks of revision 2025-03-26), identifies the
//! client (a configured client id, a Client ID Metadata Document, or Dynamic Client Registration,
//! RFC 7591), and gets a token: by refreshing, with the client credentials grant, or, when a
//! [`Browser`] is at hand, with the authorization code grant and PKCE (S256 only), `state`
//! checked, the resource indicator (RFC 8707) on both requests and scopes chosen as the
//! specification says. A 403 `insufficient_scope` authorizes again with the scopes asked for
//! (step-up), once per set of scopes. Tokens are kept in a [`TokenStore`] (a file per server and
//! client, mode 0600) and refreshed before they expire and after a 401, one renewal at a time per
//! server; a refresh token the server no longer accepts marks the server [`AuthStatus::NeedsLogin`]
//! instead of failing each call anew.
//!
//! **Architecture Invariant:** no token, code, verifier or secret is ever logged or put in an
//! error: `Debug` of every type that holds one hides it, header values are marked sensitive,
//! and [`Authorizer::mask`] replaces the tokens it has held in text that came from a server.
//!
//! **Architecture Invariant:** every request of authorization is bounded in time and size, goes
//! over HTTPS or to this machine, and is never redirected to another host; metadata whose issuer
//! or resource is not the one asked for is refused.
//!
//! **Architecture Invariant:** spawns no task: renewals run inside the requests that need them.

mod authorizer;
mod challenge;
mod error;
mod fetch;
mod grant;
mod identity;
pub mod loopback;
mod metadata;
mod store;

use std::time::Duration;

pub use authorizer::{AuthStats, AuthStatus, Authorizer, LoginOutcome};
pub use challenge::Challenge;
pub use error::Error;
pub use store::TokenStore;

/// The future a [`Browser`] returns.
pub type BrowserFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Callback, String>> + Send + 'a>>;

/// Shows the authorization URL to the person who authorizes, and brings back where the
/// authorization server redirected their browser.
///
/// [`loopback::LoopbackBrowser`] is the command line's: a redirect to `127.0.0.1:<port>/callback`,
/// a browser opened by the caller, the URL printed. A test or the conformance client follows the
/// redirect itself.
pub trait Browser: Send + Sync {
    /// The redirect URI to register and send in the authorization request.
    fn redirect_uri(&self) -> String;

    /// Sends the person to `url` and returns the query of the redirect that came back, or why
    /// none did.
    fn visit<'a>(&'a self, url: &'a reqwest::Url) -> BrowserFuture<'a>;
}

/// The parameters of the redirect back from the authorization endpoint. `Debug` hides the code.
#[derive(Clone, Default)]
pub struct Callback {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error` (the person or the server said no).
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `iss` (RFC 9207), when the server sends it.
    pub issuer: Option<String>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("has_code", &self.code.is_some())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// The parameters in the query of `url`.
    pub fn from_url(url: &reqwest::Url) -> Callback {
        let mut callback = Callback::default();
        for (name, value) in url.query_pairs() {
            let slot = match name.as_ref() {
                "code" => &mut callback.code,
                "state" => &mut callback.state,
                "error" => &mut callback.error,
                "error_description" => &mut callback.error_description,
                "iss" => &mut callback.issuer,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.into_owned());
            }
        }
        callback
    }
}

/// Which grant gets tokens for a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Grant {
    /// The authorization code grant with PKCE: a person logs in once (`mcp-host login`); refresh
    /// tokens keep it going.
    #[default]
    AuthorizationCode,
    /// The client credentials grant: machine to machine, with a configured client id and a secret
    /// or private key; no person involved.
    ClientCredentials,
    /// Enterprise-Managed Authorization (SEP-990): the enterprise identity provider exchanges the
    /// user's ID token for an identity assertion (RFC 8693), which the authorization server takes
    /// with the JWT bearer grant (RFC 7523); needs a configured client id and an
    /// [`IdentityProvider`].
    IdentityAssertion,
}

/// The enterprise identity provider of the identity assertion grant. `Debug` shows no secret.
#[derive(Clone)]
pub struct IdentityProvider {
    /// Its token endpoint (RFC 8693 token exchange).
    pub token_endpoint: String,
    /// This client's id there.
    pub client_id: String,
    /// This client's secret there, if it has one.
    pub client_secret: Option<String>,
    /// The user's ID token from the provider's single sign-on.
    pub id_token: String,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// How this host authorizes with one server. Everything is optional: discovery and registration
/// fill in the rest. `Debug` shows no secret.
#[derive(Clone)]
pub struct AuthOptions {
    /// A client id registered with the server's authorization server (pre-registration).
    pub client_id: Option<String>,
    /// Its secret, for `client_secret_basic` or `client_secret_post`.
    pub client_secret: Option<String>,
    /// The HTTPS URL of this client's Client ID Metadata Document, used as its client id with
    /// authorization servers that support such documents.
    pub client_metadata_url: Option<String>,
    /// The scopes to ask for, instead of those the server names.
    pub scopes: Option<Vec<String>>,
    /// The grant.
    pub grant: Grant,
    /// The token endpoint authentication method, instead of the one chosen from what the server
    /// supports (`none`, `client_secret_basic`, `client_secret_post`, `private_key_jwt`).
    pub token_endpoint_auth_method: Option<String>,
    /// A private key in PEM, for `private_key_jwt`.
    pub private_key: Option<String>,
    /// The algorithm of the client assertions (default `ES256`; `RS256`, `PS256`, `EdDSA`, …).
    pub signing_algorithm: Option<String>,
    /// The identity provider of [`Grant::IdentityAssertion`].
    pub identity_provider: Option<IdentityProvider>,
    /// The client's name in a dynamic registration.
    pub client_name: String,
    /// Bound on each request to an OAuth endpoint (default 10 s).
    pub request_timeout: Duration,
    /// Bound on the person's visit to the authorization page (default 5 min).
    pub login_timeout: Duration,
}

impl Default for AuthOptions {
    fn default() -> AuthOptions {
        AuthOptions {
            client_id: None,
            client_secret: None,
            client_metadata_url: None,
            scopes: None,
            grant: Grant::AuthorizationCode,
            token_endpoint_auth_method: None,
            private_key: None,
            signing_algorithm: None,
            identity_provider: None,
            client_name: "mcp-host".to_owned(),
            request_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .field("client_metadata_url", &self.client_metadata_url)
            .field("scopes", &self.scopes)
            .field("grant", &self.grant)
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field("has_private_key", &self.private_key.is_some())
            .field("signing_algorithm", &self.signing_algorithm)
            .field("identity_provider", &self.identity_provider)
            .field("client_name", &self.client_name)
            .finish_non_exhaustive()
    }
}
