//! OAuth through the transport: a fake MCP server protected by the testkit's fake authorization
//! server, and an `mcp_auth::Authorizer` on the connection.

use std::sync::Arc;
use std::time::Duration;

use mcp_auth::{AuthOptions, AuthStatus, Authorizer, Browser, BrowserFuture, Callback, TokenStore};
use mcp_host_testkit::fake_http::{FakeHttpConfig, FakeHttpServer};
use mcp_host_testkit::fake_oauth::{FakeAuthConfig, FakeAuthServer};
use mcp_host_testkit::TempDir;
use mcp_http::HttpOptions;
use mcp_session::RequestOptions;
use mcp_transport::ServerName;
use serde_json::json;

use crate::{args, client_with, Client, PROMPTLY};

/// Plays the person at the authorization endpoint: reads its redirect without following it
/// (and, to play an attacker, changes what it brings back).
struct FollowRedirect {
    client: reqwest::Client,
    tamper: fn(&mut Callback),
}

impl FollowRedirect {
    fn new() -> Arc<FollowRedirect> {
        FollowRedirect::tampering(|_| {})
    }

    fn tampering(tamper: fn(&mut Callback)) -> Arc<FollowRedirect> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Arc::new(FollowRedirect { client, tamper })
    }
}

impl Browser for FollowRedirect {
    fn redirect_uri(&self) -> String {
        "http://127.0.0.1:9/callback".to_owned()
    }

    fn visit<'a>(&'a self, url: &'a reqwest::Url) -> BrowserFuture<'a> {
        Box::pin(async move {
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let location = response
                .headers()
                .get("location")
                .ok_or("no redirect")?
                .to_str()
                .map_err(|e| e.to_string())?;
            let mut callback = Callback::from_url(&reqwest::Url::parse(location).unwrap());
            (self.tamper)(&mut callback);
            Ok(callback)
        })
    }
}

/// An authorization server and an MCP server it protects.
async fn protected(config: FakeAuthConfig) -> (FakeAuthServer, FakeHttpServer) {
    let auth = FakeAuthServer::start(config).await.unwrap();
    let server = FakeHttpServer::start(FakeHttpConfig {
        oauth: Some(auth.guard()),
        // Each request on its own: the GET stream would add a request per renewal.
        get_stream: false,
        ..FakeHttpConfig::default()
    })
    .await
    .unwrap();
    (auth, server)
}

fn authorizer(server: &FakeHttpServer, store: TokenStore) -> Authorizer {
    Authorizer::new(
        ServerName::new("remote"),
        &server.url(),
        AuthOptions::default(),
        store,
    )
    .unwrap()
}

/// Logs in, then opens a session whose requests carry the authorizer's tokens.
async fn logged_in_client(server: &FakeHttpServer, authorizer: &Authorizer) -> Client {
    let outcome = authorizer.login(FollowRedirect::new()).await.unwrap();
    assert!(
        matches!(outcome, mcp_auth::LoginOutcome::LoggedIn { .. }),
        "{outcome:?}"
    );
    let client = client_with(HttpOptions {
        auth: Some(authorizer.clone()),
        ..HttpOptions::new(server.url())
    });
    tokio::time::timeout(PROMPTLY, client.session.initialize())
        .await
        .unwrap()
        .unwrap();
    client
}

/// Calls `echo` `n_calls` times at once; returns the errors.
async fn burst(client: &Client, n_calls: usize) -> Vec<String> {
    let calls = (0..n_calls).map(|idx| {
        let session = client.session.clone();
        async move {
            session
                .call_tool(
                    "echo",
                    args(json!({"text": format!("call {idx}")})),
                    &RequestOptions::default(),
                )
                .await
                .map(|result| assert_eq!(result.text(), format!("call {idx}")))
                .map_err(|error| error.to_string())
        }
    });
    let outcomes = tokio::time::timeout(PROMPTLY, futures::future::join_all(calls))
        .await
        .unwrap();
    outcomes.into_iter().filter_map(Result::err).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_on_an_expiring_token_make_one_refresh() {
    // The first token lives 4 s, so it is refreshed from its third second on.
    let (auth, server) = protected(FakeAuthConfig {
        first_access_lifetime_secs: Some(4),
        token_delay: Duration::from_millis(100),
        ..FakeAuthConfig::default()
    })
    .await;
    let authorizer = authorizer(&server, TokenStore::memory());
    let client = logged_in_client(&server, &authorizer).await;
    assert!(burst(&client, 1).await.is_empty());
    assert_eq!(auth.log().n_grants("refresh_token"), 0);
    let AuthStatus::LoggedIn {
        expires_at: Some(expires_at),
        ..
    } = authorizer.status().await.unwrap()
    else {
        panic!("logged in with an expiring token");
    };
    // Wait for the refresh margin (a quarter of the lifetime before expiry).
    tokio::time::timeout(PROMPTLY, async {
        while now_secs() + 1 < expires_at {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();

    let errors = burst(&client, 200).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(auth.log().n_grants("refresh_token"), 1);
    assert_eq!(authorizer.stats().refreshes, 1);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_refused_with_401_make_one_refresh() {
    let (auth, server) = protected(FakeAuthConfig {
        token_delay: Duration::from_millis(100),
        ..FakeAuthConfig::default()
    })
    .await;
    let authorizer = authorizer(&server, TokenStore::memory());
    let client = logged_in_client(&server, &authorizer).await;
    auth.invalidate_access_tokens();

    let errors = burst(&client, 200).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(auth.log().n_grants("refresh_token"), 1);
    assert_eq!(auth.log().authorizations.len(), 1, "no second login");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_means_needs_login_not_a_failure_per_call() {
    let dir = TempDir::new("mcp-http-auth-revoked");
    let (auth, server) = protected(FakeAuthConfig::default()).await;
    let authorizer = authorizer(&server, TokenStore::in_dir(dir.path()));
    let client = logged_in_client(&server, &authorizer).await;
    auth.invalidate_access_tokens();
    auth.revoke_refresh_tokens();

    let errors = burst(&client, 20).await;
    assert_eq!(errors.len(), 20);
    assert!(
        errors[0].contains("server `remote` needs login (run `mcp-host login remote`): the refresh token was refused (invalid_grant"),
        "{}",
        errors[0]
    );
    let status = authorizer.status().await.unwrap();
    assert!(
        matches!(&status, AuthStatus::NeedsLogin { reason } if reason.contains("invalid_grant")),
        "{status:?}"
    );
    // One refresh was tried; the others learned from it, and the next calls too.
    assert_eq!(auth.log().n_grants("refresh_token"), 1);
    assert_eq!(burst(&client, 5).await.len(), 5);
    assert_eq!(auth.log().n_grants("refresh_token"), 1);
    // The token file says so too, for `mcp-host status` in another process.
    let stored = Authorizer::new(
        ServerName::new("remote"),
        &server.url(),
        AuthOptions::default(),
        TokenStore::in_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(stored.status().await.unwrap(), status);
    // A new login puts it right.
    authorizer.login(FollowRedirect::new()).await.unwrap();
    assert!(burst(&client, 5).await.is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_the_users_alone_and_written_whole() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = TempDir::new("mcp-http-auth-file");
    let store_dir = dir.path().join("oauth");
    let (auth, server) = protected(FakeAuthConfig::default()).await;
    let authorizer = authorizer(&server, TokenStore::in_dir(&store_dir));
    let client = logged_in_client(&server, &authorizer).await;
    auth.invalidate_access_tokens();
    assert!(
        burst(&client, 3).await.is_empty(),
        "refreshed and saved again"
    );

    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store_dir), 0o700);
    let file = authorizer.token_file().unwrap();
    assert_eq!(mode(&file), 0o600);
    let names: Vec<String> = std::fs::read_dir(&store_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(record["serverUrl"], server.url());
    assert!(record["tokens"]["refreshToken"].is_string());
    // A directory that was made too open is closed again.
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    auth.invalidate_access_tokens();
    assert!(burst(&client, 1).await.is_empty());
    assert_eq!(mode(&store_dir), 0o700);
    assert!(authorizer.logout().await.unwrap());
    assert!(!file.exists());
    client.close().await;
}

/// Collects every log line (the whole process, every level) into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn no_token_code_or_secret_reaches_the_log_at_trace_level() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    // One thread: the servers' and the client's events all reach the subscriber.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = runtime.block_on(async {
        let (auth, server) = protected(FakeAuthConfig::default()).await;
        let authorizer = Authorizer::new(
            ServerName::new("remote"),
            &server.url(),
            AuthOptions {
                client_id: Some("configured-client".to_owned()),
                client_secret: Some("client-secret-qwhfbvkrtz".to_owned()),
                ..AuthOptions::default()
            },
            TokenStore::memory(),
        )
        .unwrap();
        let client = logged_in_client(&server, &authorizer).await;
        assert!(burst(&client, 3).await.is_empty());
        auth.invalidate_access_tokens();
        assert!(burst(&client, 3).await.is_empty(), "refreshed after a 401");
        auth.invalidate_access_tokens();
        auth.revoke_refresh_tokens();
        assert_eq!(burst(&client, 1).await.len(), 1, "needs login");
        client.close().await;
        let mut secrets = auth.log().secrets;
        secrets.push("client-secret-qwhfbvkrtz".to_owned());
        secrets
    });
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("TRACE") && text.contains("refreshing the access token"),
        "the log was captured at trace level"
    );
    assert!(secrets.len() >= 5, "{secrets:?}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} is in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malicious_metadata_is_refused_before_anything_is_sent_to_it() {
    #[track_caller]
    fn check(error: mcp_auth::Error, expect: &str) {
        let text = error.to_string();
        assert!(
            matches!(error, mcp_auth::Error::Refused { .. }) && text.contains(expect),
            "{text}"
        );
    }

    // An issuer that is not the authorization server the resource named.
    let (auth, server) = protected(FakeAuthConfig {
        issuer_override: Some("http://127.0.0.1:1/elsewhere".to_owned()),
        ..FakeAuthConfig::default()
    })
    .await;
    let error = authorizer(&server, TokenStore::memory())
        .login(FollowRedirect::new())
        .await
        .unwrap_err();
    check(
        error,
        &format!(
            "its issuer is http://127.0.0.1:1/elsewhere, not {}, the authorization server it was asked for",
            auth.issuer()
        ),
    );
    assert!(auth.log().authorizations.is_empty() && auth.log().token_requests.is_empty());

    // A token endpoint over plain http on another host.
    let (auth, server) = protected(FakeAuthConfig {
        token_endpoint_override: Some("http://auth.example.com/token".to_owned()),
        ..FakeAuthConfig::default()
    })
    .await;
    let error = authorizer(&server, TokenStore::memory())
        .login(FollowRedirect::new())
        .await
        .unwrap_err();
    check(
        error,
        "refused http://auth.example.com/token: plain http to a host other than this machine",
    );
    assert!(auth.log().authorizations.is_empty());

    // Metadata that redirects to another host (`localhost` is not `127.0.0.1`).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (auth, server) = protected(FakeAuthConfig {
        metadata_redirect: Some(format!(
            "http://localhost:{port}/.well-known/oauth-authorization-server"
        )),
        ..FakeAuthConfig::default()
    })
    .await;
    let error = authorizer(&server, TokenStore::memory())
        .login(FollowRedirect::new())
        .await
        .unwrap_err();
    check(
        error,
        &format!("it redirects to another host (http://localhost:{port}); only redirects within http://127.0.0.1:"),
    );
    assert_eq!(auth.log().metadata_requests, 1);
    assert!(auth.log().authorizations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pkce_s256_a_forged_state_or_another_issuer_in_the_redirect_is_refused() {
    let (auth, server) = protected(FakeAuthConfig {
        pkce_methods: Some(vec!["plain".to_owned()]),
        ..FakeAuthConfig::default()
    })
    .await;
    let error = authorizer(&server, TokenStore::memory())
        .login(FollowRedirect::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("its metadata does not list PKCE with S256"),
        "{error}"
    );
    assert!(auth.log().authorizations.is_empty());

    let (auth, server) = protected(FakeAuthConfig::default()).await;
    let error = authorizer(&server, TokenStore::memory())
        .login(FollowRedirect::tampering(|callback| {
            callback.state = Some("forged".to_owned());
        }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with("authorization failed: the redirect's `state` is not the one sent (a forged or stale redirect)"),
        "{error}"
    );
    let error = authorizer(&server, TokenStore::memory())
        .login(FollowRedirect::tampering(|callback| {
            callback.issuer = Some("http://127.0.0.1:1".to_owned());
        }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "refused the authorization redirect: it comes from the issuer http://127.0.0.1:1"
        ),
        "{error}"
    );
    assert_eq!(auth.log().authorizations.len(), 2);
    assert!(
        auth.log().token_requests.is_empty(),
        "no code was exchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_login_a_protected_server_says_so_naming_the_command() {
    let (_auth, server) = protected(FakeAuthConfig::default()).await;
    let client = client_with(HttpOptions {
        auth: Some(authorizer(&server, TokenStore::memory())),
        ..HttpOptions::new(server.url())
    });
    let error = tokio::time::timeout(PROMPTLY, client.session.initialize())
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("server `remote` needs login (run `mcp-host login remote`): no token yet"),
        "{error}"
    );
    client.close().await;
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
