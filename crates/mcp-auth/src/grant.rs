//! Requests to the token endpoint: the authorization code (with its PKCE verifier), the refresh
//! token and the client credentials grants, each with the client's authentication method.
//!
//! The `oauth2` crate builds the requests and reads the answers (standard token responses and
//! error responses); [`Fetcher::oauth`] sends them. Every request carries the resource indicator
//! (RFC 8707). Client authentication is `none` (the client id in the body), `client_secret_basic`,
//! `client_secret_post`, or `private_key_jwt` (a JWT assertion signed with the client's key,
//! RFC 7523, whose audience is the issuer).

use std::borrow::Cow;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse as _, TokenUrl,
};
use reqwest::Url;

use crate::challenge::split_scopes;
use crate::fetch::{FetchError, Fetcher};
use crate::store::{now_secs, ClientRecord, Tokens};
use crate::Error;

/// How long a client assertion (`private_key_jwt`) is valid.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The type of a JWT client assertion (RFC 7523 §2.2).
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `oauth2` crate's HTTP client: our [`Fetcher`].
struct OauthHttp<'a>(&'a Fetcher);

impl<'c> oauth2::AsyncHttpClient<'c> for OauthHttp<'_> {
    type Error = FetchError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, FetchError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.0.oauth(request))
    }
}

/// The JWT bearer grant type (RFC 7523 §2.1).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The token exchange grant type (RFC 8693).
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type of an Identity Assertion JWT Authorization Grant (SEP-990).
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// The token type of an OpenID Connect ID token.
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The key that signs client assertions.
#[derive(Clone)]
pub(crate) struct AssertionKey {
    pub(crate) pem: String,
    pub(crate) algorithm: jsonwebtoken::Algorithm,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// One token request: where, for which client, for which resource.
pub(crate) struct TokenRequest<'a> {
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) token_endpoint: &'a Url,
    pub(crate) issuer: &'a str,
    pub(crate) client: &'a ClientRecord,
    pub(crate) key: Option<&'a AssertionKey>,
    pub(crate) resource: Option<&'a str>,
}

/// Why a token request failed.
pub(crate) enum TokenFailure {
    /// `invalid_grant`: the code, or the refresh token, is not (any more) valid.
    InvalidGrant(String),
    /// Anything else.
    Other(Error),
}

impl TokenFailure {
    pub(crate) fn into_error(self, fetcher: &Fetcher, grant: &'static str) -> Error {
        match self {
            TokenFailure::InvalidGrant(reason) => Error::Token {
                server: fetcher.server.clone(),
                grant,
                reason,
            },
            TokenFailure::Other(error) => error,
        }
    }
}

impl TokenRequest<'_> {
    /// Exchanges an authorization code.
    pub(crate) async fn code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Result<Tokens, TokenFailure> {
        let grant = "authorization_code";
        let client = self.client_for(grant)?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|error| self.other(grant, format!("invalid redirect URI: {error}")))?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect));
        if let Some(resource) = self.resource {
            request = request.add_extra_param("resource", resource);
        }
        for (name, value) in self.assertion(grant)? {
            request = request.add_extra_param(name, value);
        }
        let http = OauthHttp(self.fetcher);
        let answer = request.request_async(&http).await;
        self.tokens(grant, answer, scopes, None)
    }

    /// Uses a refresh token. The answer keeps the old refresh token when it brings no new one.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        scopes: &[String],
    ) -> Result<Tokens, TokenFailure> {
        let grant = "refresh_token";
        let client = self.client_for(grant)?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let mut request = client.exchange_refresh_token(&token);
        if let Some(resource) = self.resource {
            request = request.add_extra_param("resource", resource);
        }
        for (name, value) in self.assertion(grant)? {
            request = request.add_extra_param(name, value);
        }
        let http = OauthHttp(self.fetcher);
        let answer = request.request_async(&http).await;
        self.tokens(grant, answer, scopes, Some(refresh_token))
    }

    /// The client credentials grant.
    pub(crate) async fn client_credentials(
        &self,
        scopes: &[String],
    ) -> Result<Tokens, TokenFailure> {
        let grant = "client_credentials";
        let client = self.client_for(grant)?;
        let mut request = client
            .exchange_client_credentials()
            .add_scopes(scopes.iter().cloned().map(Scope::new));
        if let Some(resource) = self.resource {
            request = request.add_extra_param("resource", resource);
        }
        for (name, value) in self.assertion(grant)? {
            request = request.add_extra_param(name, value);
        }
        let http = OauthHttp(self.fetcher);
        let answer = request.request_async(&http).await;
        self.tokens(grant, answer, scopes, None)
    }

    /// The JWT bearer grant with an identity assertion (an ID-JAG from the enterprise's identity
    /// provider, SEP-990).
    pub(crate) async fn jwt_bearer(
        &self,
        assertion: &str,
        scopes: &[String],
    ) -> Result<Tokens, TokenFailure> {
        let grant = "jwt-bearer";
        let mut form = vec![
            ("grant_type", JWT_BEARER.to_owned()),
            ("assertion", assertion.to_owned()),
        ];
        if !scopes.is_empty() {
            form.push(("scope", scopes.join(" ")));
        }
        if let Some(resource) = self.resource {
            form.push(("resource", resource.to_owned()));
        }
        let client = self.client;
        let mut basic = None;
        match client.auth_method.as_str() {
            "client_secret_basic" | "client_secret_post" => {
                let Some(secret) = &client.client_secret else {
                    return Err(self.other(
                        grant,
                        format!(
                            "the client authenticates with {} but has no secret",
                            client.auth_method
                        ),
                    ));
                };
                if client.auth_method == "client_secret_basic" {
                    basic = Some((client.client_id.as_str(), secret.as_str()));
                } else {
                    form.push(("client_id", client.client_id.clone()));
                    form.push(("client_secret", secret.clone()));
                }
            }
            _ => form.push(("client_id", client.client_id.clone())),
        }
        form.extend(self.assertion(grant)?);
        let (status, body) = self
            .fetcher
            .post_form(self.token_endpoint, &form, basic)
            .await
            .map_err(TokenFailure::Other)?;
        let answer = if status.is_success() {
            serde_json::from_slice::<oauth2::basic::BasicTokenResponse>(&body).map_err(|error| {
                RequestTokenError::Other(format!(
                    "the answer is not a token response ({:?} error at line {} column {})",
                    error.classify(),
                    error.line(),
                    error.column()
                ))
            })
        } else {
            match serde_json::from_slice::<oauth2::basic::BasicErrorResponse>(&body) {
                Ok(response) => Err(RequestTokenError::ServerResponse(response)),
                Err(_) => Err(RequestTokenError::Other(format!("HTTP {status}"))),
            }
        };
        self.tokens(grant, answer, scopes, None)
    }

    fn client_for(
        &self,
        grant: &'static str,
    ) -> Result<
        BasicClient<
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        TokenFailure,
    > {
        let token_url = TokenUrl::from_url(self.token_endpoint.clone());
        let mut client =
            BasicClient::new(ClientId::new(self.client.client_id.clone())).set_token_uri(token_url);
        match self.client.auth_method.as_str() {
            "client_secret_basic" | "client_secret_post" => {
                let Some(secret) = &self.client.client_secret else {
                    return Err(self.other(
                        grant,
                        format!(
                            "the client authenticates with {} but has no secret",
                            self.client.auth_method
                        ),
                    ));
                };
                client = client.set_client_secret(ClientSecret::new(secret.clone()));
                if self.client.auth_method == "client_secret_basic" {
                    client = client.set_auth_type(AuthType::BasicAuth);
                } else {
                    client = client.set_auth_type(AuthType::RequestBody);
                }
            }
            // `none` and `private_key_jwt`: the client id goes in the body (with the assertion).
            _ => client = client.set_auth_type(AuthType::RequestBody),
        }
        Ok(client)
    }

    /// The `client_assertion` parameters, for `private_key_jwt`.
    fn assertion(&self, grant: &'static str) -> Result<Vec<(&'static str, String)>, TokenFailure> {
        if self.client.auth_method != "private_key_jwt" {
            return Ok(Vec::new());
        }
        let Some(key) = self.key else {
            return Err(self.other(
                grant,
                "the client authenticates with private_key_jwt but has no private key".to_owned(),
            ));
        };
        let assertion = sign_assertion(&self.client.client_id, self.issuer, key)
            .map_err(|reason| self.other(grant, reason))?;
        Ok(vec![
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            ("client_assertion", assertion),
        ])
    }

    fn other(&self, grant: &'static str, reason: String) -> TokenFailure {
        TokenFailure::Other(Error::Token {
            server: self.fetcher.server.clone(),
            grant,
            reason,
        })
    }

    /// The tokens of a token answer.
    fn tokens(
        &self,
        grant: &'static str,
        answer: Result<
            oauth2::basic::BasicTokenResponse,
            RequestTokenError<FetchError, oauth2::basic::BasicErrorResponse>,
        >,
        scopes: &[String],
        old_refresh_token: Option<&str>,
    ) -> Result<Tokens, TokenFailure> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(RequestTokenError::ServerResponse(response)) => {
                let mut reason = response.error().to_string();
                if let Some(description) = response.error_description() {
                    reason.push_str(": ");
                    reason.push_str(description);
                }
                return Err(match response.error() {
                    BasicErrorResponseType::InvalidGrant => TokenFailure::InvalidGrant(reason),
                    _ => self.other(grant, reason),
                });
            }
            Err(RequestTokenError::Request(error)) => {
                return Err(TokenFailure::Other(Error::Http {
                    server: self.fetcher.server.clone(),
                    url: self.token_endpoint.to_string(),
                    reason: error.0,
                }))
            }
            Err(RequestTokenError::Parse(error, _body)) => {
                // The body is not quoted: it may hold a token.
                return Err(self.other(
                    grant,
                    format!("the answer is not a token response (at `{}`)", error.path()),
                ));
            }
            Err(RequestTokenError::Other(reason)) => return Err(self.other(grant, reason)),
        };
        let now = now_secs();
        let scope = match answer.scopes() {
            Some(granted) => granted.iter().map(|s| s.to_string()).collect(),
            None => scopes.to_vec(),
        };
        Ok(Tokens {
            access_token: answer.access_token().secret().clone(),
            refresh_token: answer
                .refresh_token()
                .map(|token| token.secret().clone())
                .or_else(|| old_refresh_token.map(str::to_owned)),
            expires_at: answer
                .expires_in()
                .map(|lifetime| now.saturating_add(lifetime.as_secs())),
            obtained_at: now,
            scope: split_scopes(&scope.join(" ")),
        })
    }
}

/// Exchanges the ID token of `provider` for an Identity Assertion JWT Authorization Grant
/// (RFC 8693 token exchange at the identity provider, SEP-990) for the authorization server
/// `audience` and the resource `resource`.
pub(crate) async fn exchange_id_token(
    fetcher: &Fetcher,
    provider: &crate::IdentityProvider,
    audience: &str,
    resource: &str,
    scopes: &[String],
) -> Result<String, Error> {
    let refused = |reason: String| Error::Token {
        server: fetcher.server.clone(),
        grant: "token-exchange",
        reason,
    };
    let endpoint = Url::parse(&provider.token_endpoint).map_err(|error| {
        refused(format!(
            "the identity provider's token endpoint is not a URL: {error}"
        ))
    })?;
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE.to_owned()),
        ("requested_token_type", ID_JAG.to_owned()),
        ("subject_token", provider.id_token.clone()),
        ("subject_token_type", ID_TOKEN.to_owned()),
        ("audience", audience.to_owned()),
        ("resource", resource.to_owned()),
    ];
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    let basic = match &provider.client_secret {
        Some(secret) => Some((provider.client_id.as_str(), secret.as_str())),
        None => {
            form.push(("client_id", provider.client_id.clone()));
            None
        }
    };
    let (status, body) = fetcher.post_form(&endpoint, &form, basic).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| refused(format!("{endpoint} answered HTTP {status} without JSON")))?;
    if !status.is_success() {
        let error = answer
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("an error");
        let description = answer
            .get("error_description")
            .and_then(serde_json::Value::as_str)
            .map(|text| format!(": {text}"))
            .unwrap_or_default();
        return Err(refused(format!("{endpoint} answered {error}{description}")));
    }
    if let Some(issued) = answer
        .get("issued_token_type")
        .and_then(serde_json::Value::as_str)
    {
        if issued != ID_JAG {
            return Err(refused(format!(
                "{endpoint} issued a {issued}, not an ID-JAG"
            )));
        }
    }
    answer
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| refused(format!("{endpoint} answered without an access_token")))
}

/// A client assertion: a JWT with `iss` and `sub` the client id, `aud` the issuer, valid for
/// five minutes, with a random `jti`.
pub(crate) fn sign_assertion(
    client_id: &str,
    issuer: &str,
    key: &AssertionKey,
) -> Result<String, String> {
    let encoding_key = encoding_key(key)?;
    let now = now_secs();
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti)
        .map_err(|error| format!("no randomness for the assertion: {error}"))?;
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": issuer,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(key.algorithm),
        &claims,
        &encoding_key,
    )
    .map_err(|error| format!("cannot sign the client assertion: {error}"))
}

/// The signing key of `key`, by its algorithm's family.
pub(crate) fn encoding_key(key: &AssertionKey) -> Result<jsonwebtoken::EncodingKey, String> {
    use jsonwebtoken::Algorithm::*;
    let pem = key.pem.as_bytes();
    let parsed = match key.algorithm {
        ES256 | ES384 => jsonwebtoken::EncodingKey::from_ec_pem(pem),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
            jsonwebtoken::EncodingKey::from_rsa_pem(pem)
        }
        EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem),
        _ => {
            return Err(format!(
                "private_key_jwt needs an asymmetric algorithm, not {:?}",
                key.algorithm
            ))
        }
    };
    parsed.map_err(|error| {
        format!(
            "the private key is not a {:?} key in PEM: {error}",
            key.algorithm
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hmac_or_unreadable_key_is_refused() {
        let hmac = AssertionKey {
            pem: String::new(),
            algorithm: jsonwebtoken::Algorithm::HS256,
        };
        assert!(sign_assertion("c", "https://as", &hmac).is_err());
        let garbage = AssertionKey {
            pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_owned(),
            algorithm: jsonwebtoken::Algorithm::ES256,
        };
        let error = sign_assertion("c", "https://as", &garbage).unwrap_err();
        assert!(
            error.starts_with("the private key is not a ES256 key"),
            "{error}"
        );
    }
}
