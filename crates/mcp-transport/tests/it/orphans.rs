//! The orphan sweep of a child subreaper, in a process of its own (it is process-wide).

use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, in_own_process, pids_with_marker, FakeConfig};
use mcp_transport::{orphans, TransportOptions};

use crate::{spawn, INITIALIZE, PROMPTLY};

#[test]
fn the_sweep_kills_and_reaps_an_escaped_helper_and_nothing_else() {
    in_own_process(
        "orphans::the_sweep_kills_and_reaps_an_escaped_helper_and_nothing_else",
        || {
            orphans::become_child_subreaper().unwrap();
            // A current-thread runtime: the sweep's `/proc` reads must not hold it up.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let config = FakeConfig {
                    spawn_escaped_grandchild: true,
                    ..FakeConfig::default()
                };
                let mut spawned = spawn(&config, &TransportOptions::default());
                spawned.send(INITIALIZE).await;
                spawned.next().await.unwrap().unwrap();
                let found = async {
                    while pids_with_marker(&spawned.marker).len() < 2 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::time::timeout(PROMPTLY, found).await.unwrap();
                let server_pid = spawned.process.pid();
                let marker = spawned.marker.clone();
                // The server ends; its helper escaped the group and is adopted by this process.
                let tracker = spawned.tracker.clone();
                let report = spawned
                    .close_keeping_leftovers(Duration::from_secs(5))
                    .await;
                assert!(report.status.is_some());
                let helper: Vec<u32> = pids_with_marker(&marker);
                assert_eq!(helper.len(), 1, "the escaped helper is gone already");
                assert_ne!(helper[0], server_pid);
                assert_eq!(orphans::direct_children(), helper);
                let killed = orphans::kill_remaining_children(PROMPTLY).await;
                assert_eq!(killed, helper);
                assert!(orphans::direct_children().is_empty(), "not reaped");
                tracker.close();
                tracker.wait().await;
                assert_no_process_left(&marker).await;
            });
        },
    );
}
