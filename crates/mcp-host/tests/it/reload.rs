//! Replacing clients at runtime: a new registration of an id never overlaps the old one, and
//! `McpHost::apply` reconfigures a running host by diffing server ids.

use std::time::Duration;

use mcp_host::McpHost;
use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{assert_no_process_left, pid_alive, unique_marker, FakeConfig};

use crate::{echo, fake_client, id, tool_names};

/// Issue #13, item 5: a client whose shutdown was given up on (its server ignores end of input
/// and SIGTERM, so it takes two grace periods to die) must not, when its supervisor finally
/// ends, remove what a new registration of the same id owns: its killer, its components, its
/// session, its roots and its status.
#[tokio::test]
async fn a_new_registration_of_an_id_waits_for_the_old_one_to_end() {
    let marker = unique_marker();
    let stubborn = FakeConfig {
        ignore_eof: true,
        ignore_sigterm: true,
        ..FakeConfig::default()
    };
    let host = McpHost::new(Vec::new()).unwrap();
    host.register_client(ClientConfig {
        shutdown_grace_ms: 300,
        ..fake_client("x", &stubborn, &marker)
    })
    .await
    .unwrap();
    let old_pid = host.session(&id("x")).unwrap().pid.unwrap();

    // Ask it to stop, then give up waiting: its supervisor goes on closing it by itself.
    let gave_up = tokio::time::timeout(Duration::from_millis(20), host.client_shutdown(&id("x")))
        .await
        .is_err();
    assert!(
        gave_up,
        "a server that ignores EOF and SIGTERM cannot stop in 20 ms"
    );
    assert!(pid_alive(old_pid));

    let roots_dir = std::env::temp_dir();
    let new_config = ClientConfig {
        roots: vec![roots_dir.to_string_lossy().into_owned()],
        ..fake_client("x", &FakeConfig::default(), &marker)
    };
    host.register_client(new_config).await.unwrap();
    // The old registration was over before the new one started.
    assert!(
        !pid_alive(old_pid),
        "the old server outlived the new registration"
    );
    let new_pid = host.session(&id("x")).unwrap().pid.unwrap();
    assert_ne!(new_pid, old_pid);

    // The new registration owns everything under the id.
    assert!(tool_names(&host).contains(&"x__echo".to_owned()));
    echo(&host, "x", "still mine").await;
    assert_eq!(host.client_manager().active_clients(), vec![id("x")]);
    let status = host.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].state, mcp_host::ClientState::Ready);
    assert_eq!(status[0].pid, Some(new_pid));
    let killed = host.kill_all();
    assert_eq!(killed, vec![id("x")]);
    crate::eventually("the new server is killed", || !pid_alive(new_pid)).await;
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Issue #14: a reload diffs by id; the unchanged client keeps its process and its call in
/// flight, the changed one restarts alone, the removed one is stopped and forgotten, the new
/// one starts, and the catalogue's watchers see one change.
#[tokio::test]
async fn apply_diffs_by_id_and_leaves_unchanged_clients_alone() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let host = std::sync::Arc::new(
        McpHost::new(vec![
            fake_client("same", &fake, &marker),
            fake_client("changed", &fake, &marker),
            fake_client("gone", &fake, &marker),
        ])
        .unwrap(),
    );
    host.initialize().await.unwrap();
    let pid = |name: &str| host.session(&id(name)).unwrap().pid.unwrap();
    let (same_pid, changed_pid, gone_pid) = (pid("same"), pid("changed"), pid("gone"));
    let mut catalogue = host.subscribe_catalogue();
    let version = *catalogue.borrow_and_update();

    // A call that is in flight during the whole reload.
    let mut in_flight = tokio::task::JoinSet::new();
    {
        let host = host.clone();
        in_flight.spawn(async move {
            host.call_tool(
                "same__slow",
                crate::args(serde_json::json!({ "ms": 1500 })),
                &mcp_host::AgentScope::all(),
            )
            .await
        });
    }
    let more_tools = FakeConfig {
        n_tools: 5,
        ..FakeConfig::default()
    };
    let report = host
        .apply(vec![
            fake_client("same", &fake, &marker),
            fake_client("changed", &more_tools, &marker),
            fake_client("new", &fake, &marker),
        ])
        .await
        .unwrap();
    assert_eq!(report.added, vec![id("new")]);
    assert_eq!(report.removed, vec![id("gone")]);
    assert_eq!(report.restarted, vec![id("changed")]);
    assert_eq!(report.unchanged, vec![id("same")]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    assert_eq!(pid("same"), same_pid);
    assert_ne!(pid("changed"), changed_pid);
    assert!(!pid_alive(changed_pid) && !pid_alive(gone_pid));
    let names = tool_names(&host);
    assert!(names.contains(&"changed__tool_4".to_owned()), "{names:?}");
    assert!(names.contains(&"new__echo".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|name| name.starts_with("gone__")),
        "{names:?}"
    );
    let ids: Vec<String> = host.status().iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, vec!["changed", "new", "same"]);
    assert_eq!(host.clients(), vec![id("changed"), id("new"), id("same")]);
    // One reload, one change of the catalogue.
    assert_eq!(*catalogue.borrow_and_update(), version + 1);

    let result = in_flight.join_next().await.unwrap().unwrap().unwrap();
    assert!(!result.is_tool_error(), "{result:?}");
    echo(&host, "new", "hello").await;

    // Applying the same configuration again changes nothing.
    let again = host
        .apply(vec![
            fake_client("same", &fake, &marker),
            fake_client("changed", &more_tools, &marker),
            fake_client("new", &fake, &marker),
        ])
        .await
        .unwrap();
    assert!(!again.changed_anything(), "{again:?}");
    assert_eq!(again.unchanged.len(), 3);
    assert!(!catalogue.has_changed().unwrap());

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// An invalid configuration changes nothing; a client that fails to start on reload (even a
/// required one) is reported, not fatal, and tried again by the next reload.
#[tokio::test]
async fn apply_refuses_invalid_configurations_and_reports_failed_starts() {
    let marker = unique_marker();
    let fake = FakeConfig::default();
    let host = McpHost::new(vec![fake_client("a", &fake, &marker)]).unwrap();
    host.initialize().await.unwrap();
    let a_pid = host.session(&id("a")).unwrap().pid.unwrap();

    let invalid = ClientConfig {
        startup_timeout_ms: 0,
        ..fake_client("b", &fake, &marker)
    };
    let error = host
        .apply(vec![fake_client("a", &fake, &marker), invalid])
        .await
        .unwrap_err();
    assert!(matches!(error, mcp_host::Error::Config { .. }), "{error:?}");
    assert_eq!(host.clients(), vec![id("a")]);

    let broken = ClientConfig {
        required: true,
        ..ClientConfig::new("broken", "/nonexistent/mcp-server")
    };
    let report = host
        .apply(vec![fake_client("a", &fake, &marker), broken.clone()])
        .await
        .unwrap();
    assert_eq!(report.unchanged, vec![id("a")]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, id("broken"));
    assert_eq!(host.session(&id("a")).unwrap().pid, Some(a_pid));
    echo(&host, "a", "unaffected").await;

    // Still configured: the next reload tries it again.
    let report = host
        .apply(vec![fake_client("a", &fake, &marker), broken])
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let report = host
        .apply(vec![fake_client("a", &fake, &marker)])
        .await
        .unwrap();
    assert_eq!(report.removed, vec![id("broken")]);
    assert_eq!(host.status().len(), 1);

    host.shutdown().await;
    assert_no_process_left(&marker).await;
}

/// Issue #14: a client that crashes and comes back through its restart policy changes the
/// catalogue twice (its tools go, then come back), so the gateway's sessions hear of both.
#[tokio::test]
async fn a_crash_and_a_restart_each_change_the_catalogue() {
    let marker = unique_marker();
    let config = ClientConfig {
        restart: mcp_host_foundation::RestartPolicy {
            max_restarts: 3,
            initial_backoff_ms: 10,
            max_backoff_ms: 10,
        },
        ..fake_client("flaky", &FakeConfig::default(), &marker)
    };
    let host = McpHost::new(vec![config]).unwrap();
    host.initialize().await.unwrap();
    let first_pid = host.session(&id("flaky")).unwrap().pid.unwrap();
    let mut catalogue = host.subscribe_catalogue();
    catalogue.borrow_and_update();
    let _ = host
        .call_tool("flaky__crash", None, &mcp_host::AgentScope::all())
        .await;
    // The tools go away with the crash...
    tokio::time::timeout(crate::PROMPTLY, catalogue.changed())
        .await
        .unwrap()
        .unwrap();
    let after_crash = *catalogue.borrow_and_update();
    // ...and come back with the restart.
    crate::eventually("the client is back", || {
        host.session(&id("flaky"))
            .is_some_and(|session| session.pid != Some(first_pid))
            && tool_names(&host).contains(&"flaky__echo".to_owned())
    })
    .await;
    assert!(
        *catalogue.borrow() > after_crash,
        "the restart did not change the catalogue"
    );
    host.shutdown().await;
    assert_no_process_left(&marker).await;
}
