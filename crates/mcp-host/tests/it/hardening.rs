//! The host's share of issue #13 (hardening): one test per item, each of which failed before
//! its fix.

use std::time::Duration;

use mcp_host::{
    error_chain, AgentScope, ClientState, Error, HostOptions, McpHost, NotificationKind,
};
use mcp_host_foundation::{ClientConfig, RestartPolicy, SecurityManager};
use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use mcp_session::RequestOptions;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::{args, eventually, fake_client, id, PROMPTLY};

/// The state of one client.
fn state_of(host: &McpHost, client: &str) -> Option<ClientState> {
    host.status()
        .into_iter()
        .find(|status| status.id == id(client))
        .map(|status| status.state)
}

/// Whether the exposed tool `name` is listed with a description that contains `text`.
fn listed_with(host: &McpHost, name: &str, text: &str) -> bool {
    host.list_tools(&AgentScope::all()).iter().any(|tool| {
        tool.name == name
            && tool
                .item
                .description
                .as_deref()
                .is_some_and(|description| description.contains(text))
    })
}

/// A restart policy that restarts once, after a wait longer than any test.
fn restart_much_later() -> RestartPolicy {
    RestartPolicy {
        max_restarts: 1,
        initial_backoff_ms: 600_000,
        max_backoff_ms: 600_000,
    }
}

/// Item 10: a server without namespace lists a tool named like another server's namespaced
/// tool. It is exposed in its own namespace, so `github__create_issue` reaches `github` or
/// nothing: also while `github` waits to be restarted and a re-list of `plain` finds the name
/// free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_namespace_cannot_shadow_a_namespaced_tool() {
    let marker = unique_marker();
    let github = ClientConfig {
        restart: restart_much_later(),
        ..fake_client(
            "github",
            &FakeConfig {
                name: "github-server".to_owned(),
                extra_tools: vec!["create_issue".to_owned()],
                ..FakeConfig::default()
            },
            &marker,
        )
    };
    let plain = ClientConfig {
        namespace: mcp_host_foundation::Namespace::Never,
        ..fake_client(
            "plain",
            &FakeConfig {
                name: "plain-server".to_owned(),
                extra_tools: vec!["github__create_issue".to_owned()],
                ..FakeConfig::default()
            },
            &marker,
        )
    };
    let host = McpHost::new(vec![github.clone(), plain]).unwrap();
    host.initialize().await.unwrap();
    let scope = AgentScope::all();
    let text_of = |name: &'static str| {
        let host = &host;
        let scope = &scope;
        async move {
            host.call_tool(name, None, scope)
                .await
                .map(|result| result.text())
        }
    };
    assert_eq!(
        text_of("github__create_issue").await.unwrap(),
        "github-server:create_issue"
    );

    // `github` crashes and waits to be restarted; `plain` lists its tools again meanwhile.
    assert!(text_of("github__crash").await.is_err());
    eventually("github waiting to restart", || {
        state_of(&host, "github") == Some(ClientState::Restarting)
    })
    .await;
    assert_eq!(text_of("touch").await.unwrap(), "ok");
    eventually("plain listed again", || {
        listed_with(&host, "touch", "called 1 times")
    })
    .await;
    match text_of("github__create_issue").await {
        Err(Error::UnknownTool { .. }) => {}
        other => panic!("`github__create_issue` reached another server: {other:?}"),
    }
    assert_eq!(
        text_of("plain__github__create_issue").await.unwrap(),
        "plain-server:github__create_issue"
    );

    // `github` is back and has its name.
    let _stopped_while_waiting = host.client_shutdown(&id("github")).await;
    host.register_client(github).await.unwrap();
    assert_eq!(
        text_of("github__create_issue").await.unwrap(),
        "github-server:create_issue"
    );
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Item 15: a server sends 500 `list_changed` at once. The host lists its tools again at most
/// twice for them (one re-list in flight, one pending), not once per notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_list_changed_makes_one_relist_at_a_time() {
    let marker = unique_marker();
    let chatty = FakeConfig {
        list_changed_flood: 500,
        ..FakeConfig::default()
    };
    let host = McpHost::new(vec![fake_client("chatty", &chatty, &marker)]).unwrap();
    let mut notifications = host.subscribe_notifications();
    host.initialize().await.unwrap();
    let n_lists = || async {
        let result = host
            .call_tool("chatty__list_requests", None, &AgentScope::all())
            .await
            .unwrap();
        result.text().parse::<u64>().unwrap()
    };
    // The server sends a log line after the flood; the host relays it in order, so when it is
    // relayed, the whole flood has been taken.
    let flood_taken = async {
        loop {
            match notifications.recv().await {
                Ok(notification) => {
                    if let NotificationKind::Log(message) = notification.kind {
                        if message.data == json!("list_changed flood sent") {
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("the host stopped relaying"),
            }
        }
    };
    tokio::time::timeout(PROMPTLY, flood_taken).await.unwrap();
    let when_taken = n_lists().await;
    // The first listing, one re-list in flight and one pending.
    assert!(
        when_taken <= 3,
        "{when_taken} tools/list requests by the end of the flood"
    );

    // One more change after the flood is still seen, with hardly any more listing.
    host.call_tool("chatty__touch", None, &AgentScope::all())
        .await
        .unwrap();
    eventually("the change is listed", || {
        listed_with(&host, "chatty__touch", "called 1 times")
    })
    .await;
    let in_all = n_lists().await;
    assert!(
        in_all <= 4,
        "{in_all} tools/list requests for 501 list_changed notifications"
    );
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Item 16: a server that stays up longer than the healthy period before each exit is
/// restarted every time, although `maxRestarts` is 1: its restart count starts over after
/// each healthy run, as systemd's `StartLimitIntervalSec` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restart_count_starts_over_after_a_healthy_run() {
    let marker = unique_marker();
    // Ready for 600 ms each time (the host can only see it up longer), then exits.
    let exits_after_a_while = FakeConfig {
        exit_after_ms: Some(600),
        ..FakeConfig::default()
    };
    let config = ClientConfig {
        restart: RestartPolicy {
            max_restarts: 1,
            initial_backoff_ms: 10,
            max_backoff_ms: 10,
        },
        ..fake_client("daily", &exits_after_a_while, &marker)
    };
    let options = HostOptions {
        restart_reset_after: Duration::from_millis(200),
        ..HostOptions::default()
    };
    let host = McpHost::with_options(vec![config], SecurityManager::new(), options).unwrap();
    host.initialize().await.unwrap();
    eventually("restarted three times", || {
        host.status().iter().any(|status| status.restarts >= 3)
    })
    .await;
    let status = host.status();
    assert_ne!(status[0].state, ClientState::Exited, "{status:?}");
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Item 17: the shutdown report accounts for every client: the one that stopped, the one that
/// was waiting to be restarted, and the one still stopping at the deadline (then killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_report_keeps_every_client() {
    let marker = unique_marker();
    let stubborn = ClientConfig {
        shutdown_grace_ms: 60_000,
        ..fake_client(
            "stubborn",
            &FakeConfig {
                ignore_eof: true,
                ignore_sigterm: true,
                ..FakeConfig::default()
            },
            &marker,
        )
    };
    let waiting = ClientConfig {
        restart: restart_much_later(),
        ..fake_client("waiting", &FakeConfig::default(), &marker)
    };
    let configs = vec![
        fake_client("polite", &FakeConfig::default(), &marker),
        stubborn,
        waiting,
    ];
    let options = HostOptions {
        shutdown_deadline: Duration::from_secs(5),
        ..HostOptions::default()
    };
    let host = McpHost::with_options(configs, SecurityManager::new(), options).unwrap();
    host.initialize().await.unwrap();
    assert!(host
        .call_tool("waiting__crash", None, &AgentScope::all())
        .await
        .is_err());
    eventually("waiting to restart", || {
        state_of(&host, "waiting") == Some(ClientState::Restarting)
    })
    .await;
    let report = tokio::time::timeout(PROMPTLY, host.shutdown())
        .await
        .unwrap();
    assert_eq!(report.exits.len(), 1, "{report:?}");
    let failed: Vec<&str> = report
        .failed
        .iter()
        .map(|(client, _)| client.as_str())
        .collect();
    assert_eq!(failed, vec!["stubborn", "waiting"], "{report:?}");
    assert!(
        matches!(&report.failed[0].1, Error::StopTimeout { timeout, .. } if *timeout == Duration::from_secs(5)),
        "{report:?}"
    );
    assert!(
        matches!(
            &report.failed[1].1,
            Error::Start {
                source: mcp_host_foundation::Error::Cancelled { .. },
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(report.killed, vec![id("stubborn")]);
    assert_no_process_left(&marker).await;
}

/// Item 19: each cause is said once and the server named once: the host's wrappers add no
/// words to the errors they wrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_each_cause_once() {
    let marker = unique_marker();
    let host = McpHost::new(Vec::new()).unwrap();

    let missing = ClientConfig::new("x", "/nonexistent/mcp-server");
    let error = host.register_client(missing).await.unwrap_err();
    assert!(matches!(error, Error::Start { .. }), "{error:?}");
    assert_eq!(
        error_chain(&error),
        "failed to start server `x` (program `/nonexistent/mcp-server`): No such file or \
         directory (os error 2)"
    );

    host.register_client(fake_client("slowpoke", &FakeConfig::default(), &marker))
        .await
        .unwrap();
    let error = host
        .call_tool_with(
            "slowpoke__slow",
            args(json!({ "ms": 60_000 })),
            &AgentScope::all(),
            &RequestOptions::with_timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Call { .. }), "{error:?}");
    // The session says how long the request waited: 100 ms or a little more.
    let text = error_chain(&error);
    let (said, waited) = text.rsplit_once(" after ").unwrap();
    assert_eq!(
        said, "request `tools/call` to server `slowpoke` timed out",
        "{text}"
    );
    let waited_ms: u64 = waited.strip_suffix(" ms").unwrap().parse().unwrap();
    assert!(waited_ms >= 100, "{text}");

    let error = McpHost::new(vec![ClientConfig::new("bad id", "x")]).unwrap_err();
    assert_eq!(
        error_chain(&error),
        "invalid configuration of client `bad id`: `id` contains ' '; only ASCII letters, \
         digits, `_`, `.` and `-` are allowed"
    );
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Items 11 and 12, through the host: a server's error that echoes a secret leaves the host
/// masked (message, data and `Debug`), and once the client that brought the secret is removed
/// the host no longer masks it (nothing else registered it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_error_leaves_the_host_masked_and_a_removed_clients_secrets_are_forgotten() {
    let marker = unique_marker();
    let secret = "s3cr3t-t0ken-of-zeta";
    let security = SecurityManager::with_host_env([("ZETA_TOKEN".to_owned(), secret.to_owned())]);
    let mut zeta = fake_client("zeta", &FakeConfig::default(), &marker);
    zeta.env
        .insert("TOKEN".to_owned(), "${env:ZETA_TOKEN}".to_owned());
    let host = McpHost::with_options(vec![], security, HostOptions::default()).unwrap();
    host.initialize().await.unwrap();
    host.register_client(zeta).await.unwrap();
    // The fake server echoes the URI it could not find (`mem://item/gone-…`) in its error's
    // data and the host adds its own words.
    let error = host
        .read_resource(&format!("mem://item/gone-{secret}"), &AgentScope::all())
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?} {}", error_chain(&error));
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("****"), "{shown}");
    assert_eq!(
        host.mask_json(json!({ "text": format!("a {secret} b") })),
        json!({ "text": "a **** b" })
    );
    host.client_shutdown(&id("zeta")).await.unwrap();
    assert_eq!(
        host.mask_json(json!({ "text": format!("a {secret} b") })),
        json!({ "text": format!("a {secret} b") }),
        "the host still masks the secret of a client it removed"
    );
    tokio::time::timeout(PROMPTLY, host.shutdown())
        .await
        .unwrap();
    assert_no_process_left(&marker).await;
}
