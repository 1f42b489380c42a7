//! Finding a server's authorization server: protected resource metadata (RFC 9728), then the
//! authorization server's metadata (RFC 8414, or OpenID Connect discovery), as MCP revision
//! 2025-11-25 orders them, with the fallbacks of revision 2025-03-26.
//!
//! The protected resource metadata is read from the URL the server's challenge names
//! (`resource_metadata`), else from `/.well-known/oauth-protected-resource/<path>`, else from
//! `/.well-known/oauth-protected-resource`. Its `resource` must be this server (same origin, and a
//! path that contains the server's), its first authorization server is the issuer. The issuer's
//! metadata comes from the first of: `/.well-known/oauth-authorization-server/<path>`,
//! `/.well-known/openid-configuration/<path>`, `<path>/.well-known/openid-configuration` (for an
//! issuer without a path: `/.well-known/oauth-authorization-server`, then
//! `/.well-known/openid-configuration`), and its `issuer` must be the issuer asked for.
//! A server with no protected resource metadata is a 2025-03-26 server: its own origin is the
//! authorization server, whose metadata is at the origin's `/.well-known/oauth-authorization-server`
//! or, failing that, whose endpoints are `/authorize`, `/token` and `/register`.

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::challenge::Challenge;
use crate::fetch::{check_url, origin_text, Fetcher, Found};
use crate::Error;

/// Protected resource metadata (RFC 9728 §2), the fields we use.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ResourceMetadata {
    #[serde(default)]
    pub(crate) resource: Option<String>,
    #[serde(default)]
    pub(crate) authorization_servers: Vec<String>,
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
}

/// Authorization server metadata (RFC 8414 §2, and the OpenID Connect fields that mean the
/// same), the fields we use.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ServerMetadata {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) authorization_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) token_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) registration_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) grant_types_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) client_id_metadata_document_supported: Option<bool>,
}

/// Where and how to authorize for one server.
#[derive(Clone, Debug)]
pub(crate) struct Discovered {
    /// The resource indicator (RFC 8707) sent with authorization and token requests.
    pub(crate) resource: String,
    /// The scopes the protected resource metadata lists.
    pub(crate) resource_scopes: Option<Vec<String>>,
    /// The authorization server's issuer identifier.
    pub(crate) issuer: String,
    /// Its metadata; `None` for a 2025-03-26 server without any (default endpoints).
    pub(crate) metadata: Option<ServerMetadata>,
    pub(crate) authorization_endpoint: Option<Url>,
    pub(crate) token_endpoint: Url,
    pub(crate) registration_endpoint: Option<Url>,
}

impl Discovered {
    /// Whether the authorization server supports `grant` (a server that does not say supports
    /// `authorization_code` and `refresh_token`, RFC 8414 §2's default).
    pub(crate) fn supports_grant(&self, grant: &str) -> bool {
        match self
            .metadata
            .as_ref()
            .and_then(|m| m.grant_types_supported.as_ref())
        {
            Some(grants) => grants.iter().any(|g| g == grant),
            None => matches!(
                grant,
                "authorization_code" | "refresh_token" | "client_credentials"
            ),
        }
    }

    /// The scopes the authorization server lists.
    pub(crate) fn server_scopes(&self) -> &[String] {
        self.metadata
            .as_ref()
            .and_then(|m| m.scopes_supported.as_deref())
            .unwrap_or_default()
    }

    /// The token endpoint authentication methods the authorization server lists (RFC 8414's
    /// default is `client_secret_basic`).
    pub(crate) fn auth_methods(&self) -> Vec<String> {
        self.metadata
            .as_ref()
            .and_then(|m| m.token_endpoint_auth_methods_supported.clone())
            .unwrap_or_else(|| vec!["client_secret_basic".to_owned()])
    }
}

/// Finds the authorization server of the server at `server_url`, from the challenge of its 401
/// answer when there was one.
pub(crate) async fn discover(
    fetcher: &Fetcher,
    server_url: &Url,
    challenge: Option<Challenge>,
) -> Result<Discovered, Error> {
    let server = &fetcher.server;
    let mut candidates = Vec::new();
    let named = challenge.and_then(|c| c.resource_metadata);
    if let Some(named) = named {
        let url = Url::parse(&named).map_err(|error| Error::Refused {
            server: server.clone(),
            what: "the resource_metadata of the server's challenge".to_owned(),
            reason: format!("not a URL ({error}): {named}"),
        })?;
        candidates.push(url);
    }
    candidates.extend(resource_metadata_urls(server_url));
    let mut resource_metadata = None;
    let mut tried = Vec::new();
    for url in candidates {
        match fetcher.get_json(&url).await? {
            Found::Document(document) => {
                let parsed: ResourceMetadata =
                    serde_json::from_value(document).map_err(|error| Error::Discovery {
                        server: server.clone(),
                        reason: format!("{url} is not protected resource metadata: {error}"),
                    })?;
                resource_metadata = Some((url, parsed));
                break;
            }
            Found::Absent(status) => tried.push(format!("{url} ({status})")),
        }
    }
    match resource_metadata {
        Some((url, metadata)) => discover_from_resource(fetcher, server_url, &url, metadata).await,
        None => {
            tracing::debug!(server = %server, tried = %tried.join(", "), "no protected resource metadata: authorizing as revision 2025-03-26 asks");
            discover_legacy(fetcher, server_url).await
        }
    }
}

async fn discover_from_resource(
    fetcher: &Fetcher,
    server_url: &Url,
    url: &Url,
    metadata: ResourceMetadata,
) -> Result<Discovered, Error> {
    let server = &fetcher.server;
    let resource = match &metadata.resource {
        Some(resource) => {
            if !resource_matches(server_url, resource) {
                return Err(Error::Refused {
                    server: server.clone(),
                    what: format!("the protected resource metadata at {url}"),
                    reason: format!(
                        "it describes the resource {resource}, not this server ({})",
                        canonical_resource(server_url)
                    ),
                });
            }
            resource.clone()
        }
        None => canonical_resource(server_url),
    };
    let Some(issuer) = metadata.authorization_servers.first() else {
        return Err(Error::Discovery {
            server: server.clone(),
            reason: format!(
                "the protected resource metadata at {url} names no authorization server"
            ),
        });
    };
    let issuer_url = Url::parse(issuer).map_err(|error| Error::Refused {
        server: server.clone(),
        what: format!("the protected resource metadata at {url}"),
        reason: format!("its authorization server is not a URL ({error}): {issuer}"),
    })?;
    check_url(server, &issuer_url)?;
    let mut tried = Vec::new();
    for candidate in server_metadata_urls(&issuer_url) {
        match fetcher.get_json(&candidate).await? {
            Found::Document(document) => {
                let server_metadata = parse_server_metadata(fetcher, &candidate, document)?;
                if trim_slash(&server_metadata.issuer) != trim_slash(issuer) {
                    return Err(Error::Refused {
                        server: server.clone(),
                        what: format!("the authorization server metadata at {candidate}"),
                        reason: format!(
                            "its issuer is {}, not {issuer}, the authorization server it was asked for",
                            server_metadata.issuer
                        ),
                    });
                }
                return finish(
                    fetcher,
                    resource,
                    metadata.scopes_supported,
                    server_metadata,
                    &candidate,
                );
            }
            Found::Absent(status) => tried.push(format!("{candidate} ({status})")),
        }
    }
    Err(Error::Discovery {
        server: server.clone(),
        reason: format!(
            "no metadata for the authorization server {issuer} (tried {})",
            tried.join(", ")
        ),
    })
}

async fn discover_legacy(fetcher: &Fetcher, server_url: &Url) -> Result<Discovered, Error> {
    let server = &fetcher.server;
    let resource = canonical_resource(server_url);
    let origin = origin_text(server_url);
    let base = Url::parse(&origin).map_err(|error| Error::Discovery {
        server: server.clone(),
        reason: format!("the server's URL has no origin: {error}"),
    })?;
    let join = |path: &str| {
        base.join(path).map_err(|error| Error::Discovery {
            server: server.clone(),
            reason: format!("cannot build {path} on {origin}: {error}"),
        })
    };
    let url = join("/.well-known/oauth-authorization-server")?;
    match fetcher.get_json(&url).await? {
        Found::Document(document) => {
            let server_metadata = parse_server_metadata(fetcher, &url, document)?;
            // In 2025-03-26 the server's origin is the authorization server's base URL, not its
            // issuer identifier: the metadata the server itself serves is trusted as long as its
            // issuer is on the same origin.
            let issuer_origin = Url::parse(&server_metadata.issuer)
                .map(|issuer| origin_text(&issuer))
                .unwrap_or_default();
            if issuer_origin != origin {
                return Err(Error::Refused {
                    server: server.clone(),
                    what: format!("the authorization server metadata at {url}"),
                    reason: format!(
                        "its issuer {} is not on the server's origin {origin}",
                        server_metadata.issuer
                    ),
                });
            }
            finish(fetcher, resource, None, server_metadata, &url)
        }
        Found::Absent(_) => {
            let discovered = Discovered {
                resource,
                resource_scopes: None,
                issuer: origin.clone(),
                metadata: None,
                authorization_endpoint: Some(join("/authorize")?),
                token_endpoint: join("/token")?,
                registration_endpoint: Some(join("/register")?),
            };
            tracing::debug!(server = %server, %origin, "no authorization server metadata: using the default endpoints of revision 2025-03-26");
            Ok(discovered)
        }
    }
}

fn parse_server_metadata(
    fetcher: &Fetcher,
    url: &Url,
    document: Value,
) -> Result<ServerMetadata, Error> {
    serde_json::from_value(document).map_err(|error| Error::Discovery {
        server: fetcher.server.clone(),
        reason: format!("{url} is not authorization server metadata: {error}"),
    })
}

/// Checks the endpoints of `metadata` and bundles what was found.
fn finish(
    fetcher: &Fetcher,
    resource: String,
    resource_scopes: Option<Vec<String>>,
    metadata: ServerMetadata,
    url: &Url,
) -> Result<Discovered, Error> {
    let server = &fetcher.server;
    let endpoint = |name: &str, value: Option<&String>| -> Result<Option<Url>, Error> {
        let Some(value) = value else {
            return Ok(None);
        };
        let endpoint = Url::parse(value).map_err(|error| Error::Refused {
            server: server.clone(),
            what: format!("the authorization server metadata at {url}"),
            reason: format!("its {name} is not a URL ({error}): {value}"),
        })?;
        check_url(server, &endpoint)?;
        Ok(Some(endpoint))
    };
    let authorization_endpoint = endpoint(
        "authorization_endpoint",
        metadata.authorization_endpoint.as_ref(),
    )?;
    let registration_endpoint = endpoint(
        "registration_endpoint",
        metadata.registration_endpoint.as_ref(),
    )?;
    let token_endpoint =
        endpoint("token_endpoint", metadata.token_endpoint.as_ref())?.ok_or_else(|| {
            Error::Discovery {
                server: server.clone(),
                reason: format!("the authorization server metadata at {url} has no token_endpoint"),
            }
        })?;
    Ok(Discovered {
        resource,
        resource_scopes,
        issuer: metadata.issuer.clone(),
        authorization_endpoint,
        token_endpoint,
        registration_endpoint,
        metadata: Some(metadata),
    })
}

/// The well-known URLs of a server's protected resource metadata, in the order they are tried:
/// with the server's path inserted (when it has one), then at the root.
pub(crate) fn resource_metadata_urls(server_url: &Url) -> Vec<Url> {
    let path = trim_slash(server_url.path());
    let mut suffixes = vec![path];
    if !path.is_empty() {
        suffixes.push("");
    }
    suffixes
        .into_iter()
        .map(|suffix| {
            let mut url = server_url.clone();
            url.set_path(&format!("/.well-known/oauth-protected-resource{suffix}"));
            url.set_query(None);
            url.set_fragment(None);
            url
        })
        .collect()
}

/// The URLs of an issuer's metadata, in the order MCP revision 2025-11-25 tries them.
pub(crate) fn server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = trim_slash(issuer.path());
    let paths: Vec<String> = if path.is_empty() {
        vec![
            "/.well-known/oauth-authorization-server".to_owned(),
            "/.well-known/openid-configuration".to_owned(),
        ]
    } else {
        vec![
            format!("/.well-known/oauth-authorization-server{path}"),
            format!("/.well-known/openid-configuration{path}"),
            format!("{path}/.well-known/openid-configuration"),
        ]
    };
    paths
        .into_iter()
        .map(|path| {
            let mut url = issuer.clone();
            url.set_path(&path);
            url.set_query(None);
            url.set_fragment(None);
            url
        })
        .collect()
}

/// The canonical URI of a server (MCP 2025-11-25, RFC 8707): its URL without fragment, and
/// without the `/` of an empty path.
pub(crate) fn canonical_resource(server_url: &Url) -> String {
    let mut url = server_url.clone();
    url.set_fragment(None);
    let text = url.to_string();
    if url.path() == "/" && url.query().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text
    }
}

/// Whether the protected resource `resource` covers the server at `server_url`: the same origin,
/// and a path that is the server's or one of its parents (whole segments).
pub(crate) fn resource_matches(server_url: &Url, resource: &str) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.origin() != server_url.origin() || resource.fragment().is_some() {
        return false;
    }
    let parent = trim_slash(resource.path());
    let path = trim_slash(server_url.path());
    path == parent
        || path
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn trim_slash(text: &str) -> &str {
    text.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn texts(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn resource_metadata_is_looked_for_with_the_path_then_at_the_root() {
        assert_eq!(
            texts(resource_metadata_urls(&url(
                "https://mcp.example.com/public/mcp?x=1"
            ))),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            texts(resource_metadata_urls(&url("http://127.0.0.1:9/"))),
            ["http://127.0.0.1:9/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn server_metadata_follows_the_path_insertion_rules() {
        assert_eq!(
            texts(server_metadata_urls(&url("https://auth.example.com"))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            texts(server_metadata_urls(&url(
                "https://auth.example.com/tenant1/"
            ))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn resources() {
        let server = url("https://MCP.example.com:443/mcp");
        assert_eq!(canonical_resource(&server), "https://mcp.example.com/mcp");
        assert_eq!(
            canonical_resource(&url("https://a.example/#x")),
            "https://a.example"
        );
        for (resource, expect) in [
            ("https://mcp.example.com/mcp", true),
            ("https://mcp.example.com/mcp/", true),
            ("https://mcp.example.com", true),
            ("https://mcp.example.com/", true),
            ("https://mcp.example.com/m", false),
            ("https://mcp.example.com/mcp/more", false),
            ("http://mcp.example.com/mcp", false),
            ("https://mcp.example.com:8443/mcp", false),
            ("https://evil.example.com/mcp", false),
            ("https://mcp.example.com/mcp#f", false),
            ("not a url", false),
        ] {
            assert_eq!(resource_matches(&server, resource), expect, "{resource}");
        }
    }
}
