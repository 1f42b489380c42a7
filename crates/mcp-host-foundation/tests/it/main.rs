//! Integration tests of `ClientManager::manage_client_lifecycle` with the real fake server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mcp_host_foundation::{
    start_task, ClientConfig, ClientExit, ClientManager, ClientSession, Error, ExitCause,
    RootManager, SecurityManager,
};
use mcp_host_testkit::{
    assert_no_process_left, fake_server_args, fake_server_path, unique_marker, FakeConfig,
};
use mcp_session::RequestOptions;
use mcp_transport::CloseStep;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const PROMPTLY: Duration = Duration::from_secs(20);

fn fake_client(id: &str, fake: &FakeConfig, marker: &str) -> ClientConfig {
    ClientConfig {
        args: fake_server_args(fake, marker),
        ..ClientConfig::new(id, fake_server_path().to_string_lossy())
    }
}

struct Started {
    manager: ClientManager,
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Started {
    fn new() -> Started {
        let tracker = TaskTracker::new();
        Started {
            manager: ClientManager::new(tracker.clone(), RootManager::new()),
            tracker,
            token: CancellationToken::new(),
        }
    }

    async fn start(
        &self,
        config: ClientConfig,
        security: SecurityManager,
    ) -> Result<(ClientSession, JoinHandle<Result<ClientExit, Error>>), Error> {
        let manager = self.manager.clone();
        let token = self.token.clone();
        let name = config.id.clone();
        let start = start_task(&self.tracker, &name, move |status| async move {
            manager
                .manage_client_lifecycle(config, &security, token, status)
                .await
        });
        tokio::time::timeout(PROMPTLY, start).await.unwrap()
    }
}

#[tokio::test]
async fn ready_then_cancelled() {
    let marker = unique_marker();
    let started = Started::new();
    let (client, lifecycle) = started
        .start(
            fake_client("alpha", &FakeConfig::default(), &marker),
            SecurityManager::new(),
        )
        .await
        .unwrap();
    assert_eq!(client.id.as_str(), "alpha");
    assert_eq!(started.manager.active_clients(), vec![client.id.clone()]);
    let result = client
        .session
        .call_tool(
            "echo",
            json!({ "text": "hi" }).as_object().cloned(),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(result.text(), "hi");

    started.token.cancel();
    let exit = tokio::time::timeout(PROMPTLY, lifecycle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(exit.cause, ExitCause::Cancelled));
    assert_eq!(exit.report.step, CloseStep::InputClosed);
    assert!(started.manager.active_clients().is_empty());
    started.tracker.close();
    tokio::time::timeout(PROMPTLY, started.tracker.wait())
        .await
        .unwrap();
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn server_exit_ends_the_lifecycle_with_its_status() {
    let marker = unique_marker();
    let started = Started::new();
    let (client, lifecycle) = started
        .start(
            fake_client("beta", &FakeConfig::default(), &marker),
            SecurityManager::new(),
        )
        .await
        .unwrap();
    let _ = client
        .session
        .call_tool("crash", None, &RequestOptions::default())
        .await
        .unwrap_err();
    let exit = tokio::time::timeout(PROMPTLY, lifecycle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(exit.cause, ExitCause::ServerExited { error: Some(_) }),
        "{exit:?}"
    );
    assert_eq!(exit.report.status.and_then(|status| status.code()), Some(6));
    assert!(exit.report.stderr_tail.contains("crashing in tool crash"));
    assert!(started.manager.active_clients().is_empty());
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn startup_timeout_is_an_error_with_the_stderr_tail() {
    let marker = unique_marker();
    let started = Started::new();
    let config = ClientConfig {
        startup_timeout_ms: 200,
        ..fake_client(
            "gamma",
            &FakeConfig {
                init_delay_ms: 60_000,
                stderr_flood_bytes: 300,
                ..FakeConfig::default()
            },
            &marker,
        )
    };
    let err = started
        .start(config, SecurityManager::new())
        .await
        .unwrap_err();
    match &err {
        Error::StartupTimeout {
            client,
            stderr_tail,
            ..
        } => {
            assert_eq!(client, "gamma");
            assert!(stderr_tail.contains("flood line"), "{err}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("gamma"));
    assert!(started.manager.active_clients().is_empty());
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn environment_is_isolated_and_secrets_are_resolved() {
    let marker = unique_marker();
    let started = Started::new();
    let path = std::env::var("PATH").unwrap_or_default();
    let security = SecurityManager::with_host_env([
        ("PATH".to_owned(), path.clone()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            "fake-aws-secret".to_owned(),
        ),
        ("MY_TOKEN".to_owned(), "s3cr3t-t0ken".to_owned()),
    ]);
    let mut config = fake_client("delta", &FakeConfig::default(), &marker);
    config
        .env
        .insert("API_TOKEN".to_owned(), "Bearer ${env:MY_TOKEN}".to_owned());
    config.env.insert("PLAIN".to_owned(), "visible".to_owned());
    let (client, lifecycle) = started.start(config, security.clone()).await.unwrap();
    let result = client
        .session
        .call_tool("env", None, &RequestOptions::default())
        .await
        .unwrap();
    let env: Value = serde_json::from_str(&result.text()).unwrap();
    assert_eq!(env["API_TOKEN"], "Bearer s3cr3t-t0ken");
    assert_eq!(env["PLAIN"], "visible");
    assert_eq!(env["PATH"], path.as_str());
    assert!(env.get("AWS_SECRET_ACCESS_KEY").is_none(), "{env}");
    assert!(env.get("MY_TOKEN").is_none(), "{env}");
    // The variable's name says it is a secret: the whole value, and the token alone.
    assert_eq!(
        security.mask("token is Bearer s3cr3t-t0ken"),
        "token is ****"
    );
    assert_eq!(security.mask("token is s3cr3t-t0ken"), "token is ****");
    started.token.cancel();
    tokio::time::timeout(PROMPTLY, lifecycle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn a_servers_error_is_masked_in_its_message_and_its_data() {
    let marker = unique_marker();
    let started = Started::new();
    let security =
        SecurityManager::with_host_env([("MY_TOKEN".to_owned(), "s3cr3t-t0ken".to_owned())]);
    let mut config = fake_client("zeta", &FakeConfig::default(), &marker);
    config
        .env
        .insert("TOKEN".to_owned(), "${env:MY_TOKEN}".to_owned());
    let (client, lifecycle) = started.start(config, security.clone()).await.unwrap();
    // The server echoes what it was asked for in its error's data (`{"uri": …}`).
    let error = client
        .session
        .read_resource("mem://nothing/s3cr3t-t0ken", &RequestOptions::default())
        .await
        .unwrap_err();
    assert!(format!("{error:?}").contains("s3cr3t-t0ken"), "{error:?}");
    let masked = security.mask_session_error(error);
    let shown = format!("{masked:?} {masked}");
    assert!(!shown.contains("s3cr3t-t0ken"), "{shown}");
    match &masked {
        mcp_session::Error::Rpc { code, data, .. } => {
            assert_eq!(*code, -32002);
            assert_eq!(data, &Some(json!({"uri": "mem://nothing/****"})));
        }
        other => panic!("unexpected {other:?}"),
    }
    started.token.cancel();
    tokio::time::timeout(PROMPTLY, lifecycle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The client is gone: its secrets can be forgotten.
    security.forget_client(&mcp_host_foundation::ClientId::new("zeta").unwrap());
    assert_eq!(security.mask("s3cr3t-t0ken"), "s3cr3t-t0ken");
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn roots_are_served_per_client() {
    let marker = unique_marker();
    let started = Started::new();
    let dir = std::env::temp_dir();
    let config = ClientConfig {
        roots: vec![dir.to_string_lossy().into_owned()],
        ..fake_client("epsilon", &FakeConfig::default(), &marker)
    };
    let (client, lifecycle) = started.start(config, SecurityManager::new()).await.unwrap();
    let result = client
        .session
        .call_tool(
            "ask_client",
            json!({ "method": "roots/list" }).as_object().cloned(),
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    let response: Value = serde_json::from_str(&result.text()).unwrap();
    let roots = response["result"]["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{response}");
    let uri = roots[0]["uri"].as_str().unwrap();
    assert!(uri.starts_with("file:///"), "{uri}");
    started.token.cancel();
    tokio::time::timeout(PROMPTLY, lifecycle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn a_command_is_never_run_through_a_shell() {
    let started = Started::new();
    let witness = std::env::temp_dir().join(unique_marker());
    let command = format!("true; touch {}", witness.display());
    let err = started
        .start(ClientConfig::new("shell", command), SecurityManager::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(!witness.exists(), "a shell ran the command");
}

mod remote {
    //! Remote clients (`url`) over Streamable HTTP, against the testkit's fake HTTP server.

    use mcp_host_testkit::fake_http::{FakeHttpConfig, FakeHttpServer};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_client_runs_its_lifecycle_over_http() {
        let server = FakeHttpServer::start(FakeHttpConfig::default())
            .await
            .unwrap();
        let started = Started::new();
        let (client, lifecycle) = started
            .start(
                ClientConfig::remote("web", server.url()),
                SecurityManager::new(),
            )
            .await
            .unwrap();
        assert_eq!(client.pid, None);
        assert!(client.killer.is_none());
        assert_eq!(client.init.server_info.name, "fake-http-server");
        let result = client
            .session
            .call_tool(
                "echo",
                json!({"text": "far"}).as_object().cloned(),
                &RequestOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(result.text(), "far");

        started.token.cancel();
        let exit = tokio::time::timeout(PROMPTLY, lifecycle)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(exit.cause, ExitCause::Cancelled), "{exit:?}");
        assert_eq!(exit.report.step, CloseStep::Disconnected);
        assert_eq!(server.log().deleted, ["session-1"]);
        started.tracker.close();
        tokio::time::timeout(PROMPTLY, started.tracker.wait())
            .await
            .expect("no connection task is left behind");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn header_secrets_are_sent_but_never_shown() {
        let server = FakeHttpServer::start(FakeHttpConfig {
            required_header: Some(("authorization".to_owned(), "Bearer t0p-s3cret".to_owned())),
            ..FakeHttpConfig::default()
        })
        .await
        .unwrap();
        let security =
            SecurityManager::with_host_env([("API_TOKEN".to_owned(), "t0p-s3cret".to_owned())]);
        let mut config = ClientConfig::remote("web", server.url());
        config.headers.insert(
            "Authorization".to_owned(),
            "Bearer ${env:API_TOKEN}".to_owned(),
        );
        let started = Started::new();
        let (client, _lifecycle) = started.start(config, security.clone()).await.unwrap();
        assert_eq!(client.init.server_info.name, "fake-http-server");
        assert_eq!(security.mask("sent Bearer t0p-s3cret"), "sent ****");
        assert_eq!(security.mask("token t0p-s3cret"), "token ****");

        // A literal credential header is a secret too, and a refused one fails naming the client.
        let mut config = ClientConfig::remote("web2", server.url());
        config
            .headers
            .insert("X-Api-Key".to_owned(), "literal-key-123".to_owned());
        let error = started.start(config, security.clone()).await.unwrap_err();
        let text = format!("{error:#} {:?}", error);
        assert!(text.contains("web2") && text.contains("401"), "{text}");
        assert_eq!(security.mask("k=literal-key-123"), "k=****");
        started.token.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_remote_server_fails_startup_naming_the_client() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let started = Started::new();
        let error = started
            .start(
                ClientConfig::remote("gone", format!("http://127.0.0.1:{port}/mcp")),
                SecurityManager::new(),
            )
            .await
            .unwrap_err();
        let text = format!("{error} / {:?}", error);
        assert!(text.contains("gone"), "{text}");
        assert!(text.to_lowercase().contains("connect"), "{text}");
        assert!(started.manager.active_clients().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_configured_protocol_choice_is_used() {
        use mcp_host_foundation::ProtocolChoice;
        use mcp_host_testkit::fake_http::Revisions;

        for (revisions, choice, expect) in [
            (Revisions::Modern, ProtocolChoice::Stateless, "2026-07-28"),
            (Revisions::Modern, ProtocolChoice::Auto, "2026-07-28"),
            (Revisions::Classic, ProtocolChoice::Auto, "2025-11-25"),
            (Revisions::Both, ProtocolChoice::Initialize, "2025-11-25"),
        ] {
            let server = FakeHttpServer::start(FakeHttpConfig {
                revisions,
                ..FakeHttpConfig::default()
            })
            .await
            .unwrap();
            let config = ClientConfig {
                protocol: choice,
                ..ClientConfig::remote("web", server.url())
            };
            let started = Started::new();
            let (client, lifecycle) = started.start(config, SecurityManager::new()).await.unwrap();
            assert_eq!(
                client.init.protocol_version, expect,
                "{revisions:?} {choice:?}"
            );
            let result = client
                .session
                .call_tool(
                    "echo",
                    json!({"text": "v"}).as_object().cloned(),
                    &RequestOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(result.text(), "v");
            started.token.cancel();
            let exit = tokio::time::timeout(PROMPTLY, lifecycle)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(exit.report.step, CloseStep::Disconnected);
        }
    }

    #[test]
    fn remote_configs_are_validated() {
        let invalid = |config: ClientConfig| config.validate().unwrap_err().to_string();
        assert!(invalid(ClientConfig::remote("a", "ftp://x")).contains("`url`"));
        let mut both = ClientConfig::remote("a", "http://x/mcp");
        both.command = "srv".to_owned();
        assert!(invalid(both).contains("cannot be combined"));
        let mut bad_header = ClientConfig::remote("a", "http://x/mcp");
        bad_header
            .headers
            .insert("Bad Name".to_owned(), "v".to_owned());
        assert!(invalid(bad_header).contains("headers.Bad Name"));
        let mut local_with_headers = ClientConfig::new("a", "srv");
        local_with_headers
            .headers
            .insert("X".to_owned(), "v".to_owned());
        assert!(invalid(local_with_headers).contains("`url` servers only"));
        assert!(ClientConfig::remote("a", "https://example.com/mcp")
            .validate()
            .is_ok());
    }
}
