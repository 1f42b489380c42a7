//! `mcp-host login` and `logout`, and the OAuth state of each remote server for `status`.
//!
//! `login <server>` runs the server's grant: for the authorization code flow it listens on
//! `127.0.0.1:<port>/callback`, prints the authorization URL on stderr (always) and opens the
//! browser (unless `--no-browser`, or there is no display), and waits for the redirect; the tokens
//! go to the user's token store (`mcp_auth::TokenStore::user`), where every later command finds
//! them.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use mcp_auth::loopback::LoopbackBrowser;
use mcp_auth::{AuthStatus, Authorizer, LoginOutcome, TokenStore};
use mcp_host_foundation::{ClientConfig, SecurityManager};
use mcp_transport::ServerName;
use serde_json::{json, Value};

/// The authorizer of the remote server `client`, as the host would build it, with the user's
/// token store; `None` when the server does not use OAuth.
fn authorizer(
    client: &ClientConfig,
    security: &SecurityManager,
    login_timeout: Option<Duration>,
) -> anyhow::Result<Option<Authorizer>> {
    if !client.is_remote() {
        return Ok(None);
    }
    let http = security.http_for(client)?;
    let Some(mut options) = security.auth_for(client)? else {
        return Ok(None);
    };
    if let Some(timeout) = login_timeout {
        options.login_timeout = timeout;
    }
    let authorizer = Authorizer::new(
        ServerName::new(&client.id),
        &http.url,
        options,
        TokenStore::user(),
    )?;
    Ok(Some(authorizer))
}

fn find<'a>(clients: &'a [ClientConfig], server: &str) -> anyhow::Result<&'a ClientConfig> {
    let Some(client) = clients.iter().find(|client| client.id == server) else {
        let names: Vec<&str> = clients.iter().map(|client| client.id.as_str()).collect();
        bail!(
            "no server `{server}` in the configuration (it has: {})",
            names.join(", ")
        );
    };
    if !client.is_remote() {
        bail!("server `{server}` runs as a local process; only remote (`url`) servers log in");
    }
    Ok(client)
}

/// Logs in to `server`; returns the line to print.
pub(crate) async fn login(
    clients: &[ClientConfig],
    server: &str,
    no_browser: bool,
    timeout: Duration,
) -> anyhow::Result<String> {
    let client = find(clients, server)?;
    let security = SecurityManager::new();
    let Some(authorizer) = authorizer(client, &security, Some(timeout))? else {
        bail!("server `{server}` does not use OAuth (its `auth` is false, or `headers` sets Authorization)");
    };
    let name = server.to_owned();
    let open = !no_browser && has_display();
    let browser = LoopbackBrowser::bind(authorizer.redirect_port().await, server, move |url| {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "To log in to `{name}`, open this URL in a browser:\n\n    {url}\n"
        );
        if open && open_browser(url.as_str()) {
            let _ = writeln!(stderr, "(a browser was opened; waiting for the redirect)");
        }
    })
    .await
    .context("cannot listen for the login redirect on 127.0.0.1")?;
    let outcome = authorizer
        .login(Arc::new(browser))
        .await
        .map_err(|error| anyhow::anyhow!(security.mask(&error.to_string()).into_owned()))?;
    Ok(match outcome {
        LoginOutcome::LoggedIn { expires_at, scopes } => {
            let mut line = format!("logged in to `{server}`");
            if !scopes.is_empty() {
                line.push_str(&format!(" (scopes: {})", scopes.join(" ")));
            }
            if let Some(expires_at) = expires_at {
                line.push_str(&format!("; the token {}", expiry_text(expires_at)));
            }
            line.push('\n');
            line
        }
        LoginOutcome::NotRequired => format!("server `{server}` asks for no authorization\n"),
    })
}

/// Logs out of `server`; returns the line to print.
pub(crate) async fn logout(clients: &[ClientConfig], server: &str) -> anyhow::Result<String> {
    let client = find(clients, server)?;
    let Some(authorizer) = authorizer(client, &SecurityManager::new(), None)? else {
        bail!("server `{server}` does not use OAuth");
    };
    Ok(if authorizer.logout().await? {
        format!("logged out of `{server}`: its tokens are deleted\n")
    } else {
        format!("no tokens were kept for `{server}`\n")
    })
}

/// The OAuth state of each remote server that uses OAuth, by id.
pub(crate) async fn states(clients: &[ClientConfig]) -> Vec<(String, AuthStatus)> {
    let security = SecurityManager::new();
    let mut states = Vec::new();
    for client in clients {
        let Ok(Some(authorizer)) = authorizer(client, &security, None) else {
            continue;
        };
        match authorizer.status().await {
            Ok(status) => states.push((client.id.clone(), status)),
            Err(error) => tracing::warn!("{error}"),
        }
    }
    states
}

/// The `auth` member of a server's `status --json` object.
pub(crate) fn state_json(status: &AuthStatus) -> Value {
    match status {
        AuthStatus::NotLoggedIn => json!({"state": "not_logged_in"}),
        AuthStatus::LoggedIn {
            expires_at,
            refreshable,
        } => json!({"state": "logged_in", "expiresAt": expires_at, "refreshable": refreshable}),
        AuthStatus::NeedsLogin { reason } => json!({"state": "needs_login", "reason": reason}),
    }
}

/// The lines of the OAuth section of `status`.
pub(crate) fn state_lines(states: &[(String, AuthStatus)]) -> String {
    if states.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nOAuth:\n");
    for (server, status) in states {
        let line = match status {
            AuthStatus::NotLoggedIn => {
                format!("not logged in (`mcp-host login {server}` if it asks)")
            }
            AuthStatus::LoggedIn {
                expires_at,
                refreshable,
            } => {
                let mut line = "logged in".to_owned();
                if let Some(expires_at) = expires_at {
                    line.push_str(&format!(", the token {}", expiry_text(*expires_at)));
                }
                if *refreshable {
                    line.push_str(" (renewed automatically)");
                }
                line
            }
            AuthStatus::NeedsLogin { reason } => {
                format!("needs login: {reason}; run `mcp-host login {server}`")
            }
        };
        text.push_str(&format!("  {server}: {line}\n"));
    }
    text
}

/// "expires in 59 min" or "expired 3 min ago".
fn expiry_text(expires_at: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let minutes = |secs: u64| {
        if secs < 120 {
            format!("{secs} s")
        } else {
            format!("{} min", secs / 60)
        }
    };
    if expires_at > now {
        format!("expires in {}", minutes(expires_at - now))
    } else {
        format!("expired {} ago", minutes(now - expires_at))
    }
}

/// Whether a browser can be shown: `$BROWSER`, or a graphical session.
fn has_display() -> bool {
    ["BROWSER", "DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// Opens `url` in the user's browser (`$BROWSER`, else `xdg-open`); returns whether a program
/// was started. The browser is the user's and outlives this command, unlike a server: it is not
/// started through `mcp-transport` (which would put it in a process group that is killed).
#[allow(clippy::disallowed_methods)]
fn open_browser(url: &str) -> bool {
    let program = std::env::var("BROWSER")
        .ok()
        .filter(|program| !program.is_empty())
        .unwrap_or_else(|| "xdg-open".to_owned());
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
