//! How this client is known to an authorization server, in the order MCP revision 2025-11-25
//! prefers: a client id from the configuration (pre-registration), a Client ID Metadata Document
//! (the client id is an HTTPS URL, when the server says it supports them), or Dynamic Client
//! Registration (RFC 7591). A registration is kept with the tokens and used again while it is for
//! the same issuer and redirect URI.

use reqwest::Url;
use serde::Deserialize;
use serde_json::json;

use crate::fetch::Fetcher;
use crate::metadata::Discovered;
use crate::store::ClientRecord;
use crate::{AuthOptions, Error};

/// The answer to a registration (RFC 7591 §3.2.1), the fields we use.
#[derive(Deserialize)]
struct Registered {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// The client for `discovered`'s authorization server: configured, reused from `stored`, a
/// metadata document, or registered now with `redirect_uri` (the code flow's; `None` for grants
/// without a redirect).
pub(crate) async fn identify(
    fetcher: &Fetcher,
    options: &AuthOptions,
    discovered: &Discovered,
    redirect_uri: Option<&str>,
    stored: Option<&ClientRecord>,
) -> Result<ClientRecord, Error> {
    let server = &fetcher.server;
    if let Some(client_id) = &options.client_id {
        return Ok(ClientRecord {
            client_id: client_id.clone(),
            client_secret: options.client_secret.clone(),
            auth_method: configured_method(options, discovered),
            redirect_uri: redirect_uri.map(str::to_owned),
            source: "config".to_owned(),
            issuer: Some(discovered.issuer.clone()),
        });
    }
    if let Some(stored) = stored {
        let same_issuer = stored.issuer.as_deref() == Some(discovered.issuer.as_str());
        let same_redirect = stored.source != "registration"
            || redirect_uri.is_none()
            || stored.redirect_uri.as_deref() == redirect_uri;
        if stored.source != "config" && same_issuer && same_redirect {
            return Ok(stored.clone());
        }
    }
    let supports_documents = discovered
        .metadata
        .as_ref()
        .and_then(|m| m.client_id_metadata_document_supported)
        == Some(true);
    if let (true, Some(document)) = (supports_documents, &options.client_metadata_url) {
        return Ok(ClientRecord {
            client_id: document.clone(),
            client_secret: None,
            auth_method: "none".to_owned(),
            redirect_uri: redirect_uri.map(str::to_owned),
            source: "metadata-document".to_owned(),
            issuer: Some(discovered.issuer.clone()),
        });
    }
    let Some(endpoint) = &discovered.registration_endpoint else {
        return Err(Error::Registration {
            server: server.clone(),
            reason: format!(
                "the authorization server {} offers neither dynamic registration nor client ID metadata documents{}; set `auth.clientId` (and `auth.clientSecret`) to a client registered there",
                discovered.issuer,
                if supports_documents { " this client has (set `auth.clientMetadataUrl`)" } else { "" }
            ),
        });
    };
    let Some(redirect_uri) = redirect_uri else {
        return Err(Error::Registration {
            server: server.clone(),
            reason: "this grant (client credentials, identity assertion) needs a registered client: set `auth.clientId` and `auth.clientSecret`".to_owned(),
        });
    };
    register(fetcher, options, discovered, endpoint, redirect_uri).await
}

/// Dynamic Client Registration: a public client when the server accepts one, else one with a
/// secret.
async fn register(
    fetcher: &Fetcher,
    options: &AuthOptions,
    discovered: &Discovered,
    endpoint: &Url,
    redirect_uri: &str,
) -> Result<ClientRecord, Error> {
    let server = &fetcher.server;
    let supported = discovered.auth_methods();
    let method = ["none", "client_secret_basic", "client_secret_post"]
        .into_iter()
        .find(|method| supported.iter().any(|s| s == method))
        .unwrap_or("none");
    let body = json!({
        "client_name": options.client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "application_type": "native",
    });
    let (status, answer) = fetcher.post_json(endpoint, &body).await?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
        return Err(Error::Registration {
            server: server.clone(),
            reason: format!("{endpoint} answered HTTP {status}: {}", text.trim()),
        });
    }
    let registered: Registered =
        serde_json::from_slice(&answer).map_err(|error| Error::Registration {
            server: server.clone(),
            reason: format!("{endpoint} did not answer with a client: {error}"),
        })?;
    let auth_method = registered
        .token_endpoint_auth_method
        .unwrap_or_else(|| method.to_owned());
    tracing::info!(server = %server, issuer = %discovered.issuer, %auth_method, "registered a client with the authorization server");
    Ok(ClientRecord {
        client_id: registered.client_id,
        client_secret: registered.client_secret,
        auth_method,
        redirect_uri: Some(redirect_uri.to_owned()),
        source: "registration".to_owned(),
        issuer: Some(discovered.issuer.clone()),
    })
}

/// The token endpoint authentication method of a configured client: the configured one, else
/// `private_key_jwt` with a key, else with a secret `client_secret_basic` (or `client_secret_post`
/// when the server lists only that), else `none`.
fn configured_method(options: &AuthOptions, discovered: &Discovered) -> String {
    if let Some(method) = &options.token_endpoint_auth_method {
        return method.clone();
    }
    if options.private_key.is_some() {
        return "private_key_jwt".to_owned();
    }
    if options.client_secret.is_none() {
        return "none".to_owned();
    }
    let supported = discovered.auth_methods();
    let has = |method: &str| supported.iter().any(|s| s == method);
    if !has("client_secret_basic") && has("client_secret_post") {
        "client_secret_post".to_owned()
    } else {
        "client_secret_basic".to_owned()
    }
}
