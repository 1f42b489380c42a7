//! Running `mcp-host` like the tools people already run: shell completions, a manual page, and
//! systemd's readiness protocol.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use serde_json::json;

use crate::gateway::signal;
use crate::http_gateway::start_http_gateway;
use crate::{fake_entry, run_cli, stdout};

#[tokio::test]
async fn completions_and_manual_page() {
    for (shell, expected) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef mcp-host"),
        ("fish", "complete -c mcp-host"),
    ] {
        let output = run_cli(&["completions", shell], None).await;
        assert!(output.status.success(), "{output:?}");
        let script = stdout(&output);
        assert!(script.contains(expected), "{shell}: {script}");
        assert!(script.contains("serve"), "{shell}: {script}");
    }
    let output = run_cli(&["man"], None).await;
    assert!(output.status.success(), "{output:?}");
    let page = stdout(&output);
    assert!(page.contains(".TH mcp-host 1"), "{page}");
    assert!(page.contains("config\\-schema"), "{page}");
}

/// With `NOTIFY_SOCKET` set (systemd's `Type=notify`), `serve` says READY=1 once it listens and
/// STOPPING=1 when it stops.
#[tokio::test]
async fn serve_notifies_systemd() {
    let marker = unique_marker();
    let dir = std::env::temp_dir().join(unique_marker());
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let config = json!({ "mcpServers": { "a": fake_entry(&FakeConfig::default(), &marker) } });
    let socket_text = socket_path.to_string_lossy().into_owned();
    let gateway =
        start_http_gateway(&config, &[], &[("NOTIFY_SOCKET", socket_text.as_str())]).await;
    let receive = |socket: &UnixDatagram| {
        let mut buffer = [0u8; 256];
        let n = socket.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    assert_eq!(receive(&socket), "READY=1");
    signal(gateway.child.id().unwrap(), "TERM").await;
    assert_eq!(receive(&socket), "STOPPING=1");
    gateway.terminate_after_signal().await;
    assert_no_process_left(&marker).await;
    let _ = std::fs::remove_dir_all(&dir);
}
