//! The gateway's status page in a real browser: headless Chromium renders it, the rendered DOM
//! names every server with its state, and screenshots (wide and phone-width) are saved under
//! `<target>/interop/`; a server that is killed shows as restarting.
//!
//! Chromium comes from Debian (`cargo xtask interop` installs it when missing); without it the
//! test is skipped, unless `MCP_HOST_INTEROP_REQUIRED` is set.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mcp_host_foundation::ClientConfig;
use mcp_host_testkit::{fake_server_args, fake_server_path, FakeConfig};
use serde_json::{json, Map, Value};

use crate::cli::{entry, HttpGateway};
use crate::{assert_no_process_left, bounded, interop, Scratch, MARKER_VAR, PROMPTLY};

/// Chromium, as the machine's probe and our tests start it: no sandbox (we run as root), no
/// GPU, and none of the background traffic this network would refuse.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MCP_HOST_CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
    ];
    candidates.into_iter().flatten().find(|path| path.is_file())
}

/// Runs Chromium on `url` with `args` (a fresh profile each time), bounded.
async fn run_chromium(chromium: &Path, scratch: &Scratch, args: &[String], url: &str) -> String {
    let profile = tempdir_in(scratch, "chromium-profile");
    #[allow(clippy::disallowed_methods)] // Test setup: the spawn ban is for library code.
    let mut command = tokio::process::Command::new(chromium);
    command
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env(MARKER_VAR, &scratch.marker)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = bounded("chromium", Duration::from_secs(60), command.output())
        .await
        .expect("cannot run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tempdir_in(scratch: &Scratch, name: &str) -> PathBuf {
    let path = scratch
        .path
        .join(format!("{name}-{}", mcp_host_testkit::unique_marker()));
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// The rendered row of `server`: from its `<tr id="server-…">` to the end of the row.
fn row<'a>(dom: &'a str, server: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr id=\"server-{server}\""))
        .unwrap_or_else(|| panic!("no row for `{server}` in the page:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

fn state_of(dom: &str, server: &str) -> String {
    let row = row(dom, server);
    let marker = "class=\"state ";
    let start = row.find(marker).expect("a state badge") + marker.len();
    row[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_a_real_browser() {
    let Some(interop) = interop() else { return };
    let required = std::env::var_os("MCP_HOST_INTEROP_REQUIRED").is_some_and(|v| !v.is_empty());
    let Some(chromium) = chromium() else {
        assert!(
            !required,
            "chromium is missing (cargo xtask interop installs Debian's chromium)"
        );
        eprintln!("skipped: no chromium");
        return;
    };
    let scratch = Scratch::new();
    let flaky = ClientConfig {
        args: fake_server_args(&FakeConfig::default(), &scratch.marker),
        ..ClientConfig::new("flaky", fake_server_path().to_string_lossy())
    };
    let mut flaky_entry = entry(&flaky);
    // Restarted once, after a minute: long enough to see it restarting.
    flaky_entry["restart"] =
        json!({ "maxRestarts": 1, "initialBackoffMs": 60000, "maxBackoffMs": 60000 });
    let servers: Map<String, Value> = [
        (
            "everything".to_owned(),
            entry(&interop.everything(&scratch, None)),
        ),
        ("time".to_owned(), entry(&interop.time(&scratch))),
        ("flaky".to_owned(), flaky_entry),
    ]
    .into_iter()
    .collect();
    let config = scratch.path.join("mcp.json");
    std::fs::write(
        &config,
        serde_json::to_vec_pretty(&json!({ "mcpServers": servers })).unwrap(),
    )
    .unwrap();

    let gateway = HttpGateway::start(
        &config,
        &["127.0.0.1:0"],
        &[],
        &scratch,
        "gateway",
        Duration::from_secs(90),
    )
    .await;
    let url = gateway.url.clone();
    let page = url.replace("/mcp", "/");
    let shots = scratch_target().join("interop");
    std::fs::create_dir_all(&shots).unwrap();

    let dom = run_chromium(&chromium, &scratch, &["--dump-dom".to_owned()], &page).await;
    for server in ["everything", "time", "flaky"] {
        assert_eq!(state_of(&dom, server), "ready", "{}", row(&dom, server));
    }
    assert!(
        row(&dom, "everything").contains("mcp-servers/everything"),
        "{dom}"
    );
    for (name, size) in [
        ("status-page.png", "1280,800"),
        ("status-page-phone.png", "390,844"),
    ] {
        let path = shots.join(name);
        let _ = std::fs::remove_file(&path);
        run_chromium(
            &chromium,
            &scratch,
            &[
                format!("--window-size={size}"),
                format!("--screenshot={}", path.display()),
            ],
            &page,
        )
        .await;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 10_000, "{} is {bytes} bytes", path.display());
        eprintln!("screenshot: {}", path.display());
    }

    // Kill the flaky server: the page shows it restarting.
    let status: Value = serde_json::from_str(&http_get(&url, "/status.json").await)
        .unwrap_or_else(|error| panic!("status.json: {error}"));
    let pid = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|server| server["id"] == "flaky")
        .and_then(|server| server["pid"].as_u64())
        .expect("the flaky server's pid");
    #[allow(clippy::disallowed_methods)]
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let restarting = bounded("the page shows the restart", PROMPTLY, async {
        loop {
            let dom = run_chromium(&chromium, &scratch, &["--dump-dom".to_owned()], &page).await;
            if state_of(&dom, "flaky") == "restarting" {
                return dom;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(state_of(&restarting, "everything"), "ready");
    let path = shots.join("status-page-restarting.png");
    run_chromium(
        &chromium,
        &scratch,
        &[
            "--window-size=1280,800".to_owned(),
            format!("--screenshot={}", path.display()),
        ],
        &page,
    )
    .await;

    gateway.terminate(Duration::from_secs(30), PROMPTLY).await;
    assert_no_process_left(&scratch).await;
}

/// The body of `GET path` at the gateway whose endpoint is `url` (HTTP/1.0: the server closes
/// the connection after the answer).
async fn http_get(url: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = url.trim_start_matches("http://").trim_end_matches("/mcp");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    bounded("GET", PROMPTLY, stream.read_to_string(&mut answer))
        .await
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

/// `<target>`: the directory the test binary runs from, two levels up (`<target>/debug/deps`).
fn scratch_target() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the target directory")
}
