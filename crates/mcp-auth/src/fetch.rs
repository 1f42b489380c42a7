//! The HTTP requests of authorization: bounded in time and size, over HTTPS (or to this machine),
//! never redirected to another host.
//!
//! Every request to a metadata document, a registration or a token endpoint goes through one
//! [`Fetcher`]: its reqwest client follows at most 3 redirects and only within the same origin
//! (scheme, host and port), so that a document cannot send the client, or its credentials, to a
//! host the server did not name; a redirect elsewhere comes back as an error naming that host.
//! Every URL is checked first ([`check_url`]): `https`, or `http` to a loopback address.

use std::time::Duration;

use futures::StreamExt as _;
use mcp_transport::ServerName;
use oauth2::url;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::Error;

/// The longest body read from an OAuth endpoint (metadata documents and token answers are a few
/// kilobytes).
pub(crate) const MAX_BODY_LEN: usize = 1024 * 1024;

/// How many same-origin redirects a request follows.
const MAX_REDIRECTS: usize = 3;

/// Sends the requests of authorization for one server.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    pub(crate) server: ServerName,
    pub(crate) client: reqwest::Client,
    pub(crate) timeout: Duration,
}

/// Why an OAuth request failed, for the token endpoint's client (`oauth2`), which wants an error
/// type of its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FetchError(pub(crate) String);

/// What a GET of a metadata document found.
pub(crate) enum Found {
    /// A JSON document.
    Document(Value),
    /// Nothing there (a 4xx answer): the next candidate may have it.
    Absent(StatusCode),
}

impl Fetcher {
    /// A fetcher whose requests take at most `timeout` each.
    pub(crate) fn new(server: ServerName, timeout: Duration) -> Result<Fetcher, Error> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(FetchError(format!("more than {MAX_REDIRECTS} redirects")))
            } else if same_origin {
                attempt.follow()
            } else {
                // The 3xx answer comes back to the caller, which names the other host.
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            // Authorization asks a few times an hour: no connection is kept open between.
            .pool_max_idle_per_host(0)
            .redirect(policy)
            .build()
            .map_err(|error| Error::Config {
                server: server.clone(),
                reason: format!("cannot set up the HTTP client: {}", error_chain(&error)),
            })?;
        Ok(Fetcher {
            server,
            client,
            timeout,
        })
    }

    /// GETs the JSON document at `url` (checked with [`check_url`] first).
    pub(crate) async fn get_json(&self, url: &Url) -> Result<Found, Error> {
        check_url(&self.server, url)?;
        let request = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json");
        let response = self.send(url, request).await?;
        let status = response.status();
        if status.is_client_error() {
            return Ok(Found::Absent(status));
        }
        if !status.is_success() {
            return Err(self.http_error(url, format!("HTTP {status}")));
        }
        let body = self.body(url, response).await?;
        let document = serde_json::from_slice(&body)
            .map_err(|error| self.http_error(url, format!("not a JSON document: {error}")))?;
        Ok(Found::Document(document))
    }

    /// POSTs `body` as JSON to `url`; returns the status and the body.
    pub(crate) async fn post_json(
        &self,
        url: &Url,
        body: &Value,
    ) -> Result<(StatusCode, Vec<u8>), Error> {
        check_url(&self.server, url)?;
        let request = self
            .client
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default());
        let response = self.send(url, request).await?;
        let status = response.status();
        let body = self.body(url, response).await?;
        Ok((status, body))
    }

    /// POSTs a form to `url`, with HTTP Basic client authentication (RFC 6749 §2.3.1: both parts
    /// form-encoded) when `basic` is given; returns the status and the body.
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, String)],
        basic: Option<(&str, &str)>,
    ) -> Result<(StatusCode, Vec<u8>), Error> {
        check_url(&self.server, url)?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(name, value)| (*name, value.as_str())))
            .finish();
        let mut request = self
            .client
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            use base64::Engine as _;
            let encode = |text: &str| {
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
            };
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                encode(id),
                encode(secret)
            ));
            if let Some(value) = sensitive(&format!("Basic {credentials}")) {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
        }
        let response = self.send(url, request).await?;
        let status = response.status();
        let body = self.body(url, response).await?;
        Ok((status, body))
    }

    /// Sends an OAuth request built by the `oauth2` crate (a token request): the URL is checked,
    /// header values are marked sensitive (they carry client credentials), and the answer is
    /// read whole, bounded.
    pub(crate) async fn oauth(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, FetchError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|error| FetchError(format!("invalid URL {}: {error}", parts.uri)))?;
        check_url(&self.server, &url).map_err(|error| FetchError(error.to_string()))?;
        let mut builder = self.client.request(parts.method, url.clone());
        for (name, value) in &parts.headers {
            let mut value = value.clone();
            value.set_sensitive(true);
            builder = builder.header(name, value);
        }
        let response = self
            .send(&url, builder.body(body))
            .await
            .map_err(|error| FetchError(error.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self
            .body(&url, response)
            .await
            .map_err(|error| FetchError(error.to_string()))?;
        let mut answer = oauth2::HttpResponse::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }

    /// Sends a request, bounded by the timeout; a redirect to another origin is an error.
    pub(crate) async fn send(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(self.http_error(url, error_chain(&error))),
            Err(_) => {
                return Err(self.http_error(
                    url,
                    format!("no answer within {} ms", self.timeout.as_millis()),
                ))
            }
        };
        if response.status().is_redirection() {
            let target = response
                .headers()
                .get(LOCATION)
                .and_then(|location| location.to_str().ok())
                .and_then(|location| response.url().join(location).ok());
            let reason = match target {
                Some(target) => format!(
                    "it redirects to another host ({}); only redirects within {} are followed",
                    origin_text(&target),
                    origin_text(url)
                ),
                None => format!(
                    "it answers HTTP {} without a usable Location",
                    response.status()
                ),
            };
            return Err(Error::Refused {
                server: self.server.clone(),
                what: url.to_string(),
                reason,
            });
        }
        Ok(response)
    }

    /// Reads a body whole, refusing one longer than [`MAX_BODY_LEN`], bounded by the timeout.
    async fn body(&self, url: &Url, response: reqwest::Response) -> Result<Vec<u8>, Error> {
        let mut stream = response.bytes_stream();
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| error_chain(&error))?;
                if body.len() + chunk.len() > MAX_BODY_LEN {
                    return Err(format!("the answer is longer than {MAX_BODY_LEN} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(reason)) => Err(self.http_error(url, reason)),
            Err(_) => Err(self.http_error(
                url,
                format!(
                    "the answer did not end within {} ms",
                    self.timeout.as_millis()
                ),
            )),
        }
    }

    fn http_error(&self, url: &Url, reason: String) -> Error {
        Error::Http {
            server: self.server.clone(),
            url: url.to_string(),
            reason,
        }
    }
}

/// Checks that `url` may be used for authorization: `https`, or `http` to a loopback host
/// (`localhost`, `127.0.0.0/8`, `[::1]`), as OAuth 2.1 asks; no user name or password in it.
pub(crate) fn check_url(server: &ServerName, url: &Url) -> Result<(), Error> {
    let refuse = |reason: &str| Error::Refused {
        server: server.clone(),
        what: url.to_string(),
        reason: reason.to_owned(),
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) => {}
        "http" => return Err(refuse(
            "plain http to a host other than this machine (authorization endpoints must use https)",
        )),
        _ => return Err(refuse("not an http(s) URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries a user name or password"));
    }
    Ok(())
}

/// Whether `url`'s host is this machine.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `scheme://host:port` of a URL.
pub(crate) fn origin_text(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// A header value for a bearer token, marked sensitive (never shown by `Debug`).
pub(crate) fn sensitive(text: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The text of an error and its causes (reqwest's own message alone says little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_that_may_be_used() {
        let server = ServerName::new("s");
        let check =
            |url: &str| check_url(&server, &Url::parse(url).unwrap()).map_err(|e| e.to_string());
        for ok in [
            "https://auth.example.com/token",
            "http://127.0.0.1:8080/token",
            "http://127.1.2.3/x",
            "http://localhost:9/x",
            "http://LOCALHOST/x",
            "http://[::1]:9/x",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check("http://auth.example.com/token").unwrap_err(),
            "server `s`: refused http://auth.example.com/token: plain http to a host other than this machine (authorization endpoints must use https)"
        );
        assert!(check("http://10.0.0.1/token").is_err());
        assert!(check("http://localhost.evil.com/token").is_err());
        assert!(check("ftp://127.0.0.1/x").is_err());
        assert!(check("https://user:pw@auth.example.com/").is_err());
    }
}
