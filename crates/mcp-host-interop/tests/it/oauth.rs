//! A real OAuth-protected server nobody here wrote: the TypeScript SDK's example server
//! (`simpleStreamableHttp --oauth --oauth-strict`: the SDK's authorization server, dynamic
//! registration, PKCE, and a resource server that takes only tokens issued for its own URL),
//! reached through `mcp-host login` driven headlessly, then `tools`, `call`, `status` and `logout`.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::cli::{assert_exit, json_stdout, mcp_host_binary, stdout};
use crate::{assert_no_process_left, bounded, interop, Interop, Scratch, MARKER_VAR, PROMPTLY};

/// The SDK's example server on two free loopback ports (MCP and authorization), killed on drop.
struct SdkOAuthServer {
    child: tokio::process::Child,
    url: String,
    auth_url: String,
    /// Reads the server's stdout to its end: it logs every request, and dies of a closed pipe.
    drain: tokio::task::JoinSet<()>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl SdkOAuthServer {
    #[allow(clippy::disallowed_methods)] // Test setup: the server under test, not a host spawn.
    async fn start(interop: &Interop, scratch: &Scratch) -> SdkOAuthServer {
        let (port, auth_port) = (free_port(), free_port());
        let mut child = tokio::process::Command::new(&interop.node)
            .arg(interop.sdk_example("simpleStreamableHttp.js"))
            .args(["--oauth", "--oauth-strict"])
            .env("MCP_PORT", port.to_string())
            .env("MCP_AUTH_PORT", auth_port.to_string())
            .env(MARKER_VAR, &scratch.marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        bounded("the SDK's example server listening", PROMPTLY, async {
            let (mut mcp, mut auth) = (false, false);
            while let Some(line) = lines.next_line().await.unwrap() {
                mcp |= line.contains("MCP Streamable HTTP Server listening");
                auth |= line.contains("OAuth Authorization Server listening");
                if mcp && auth {
                    return;
                }
            }
            panic!("the SDK's example server ended before listening");
        })
        .await;
        let mut drain = tokio::task::JoinSet::new();
        drain.spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        SdkOAuthServer {
            child,
            // The server's own idea of its URL: tokens are issued for it (RFC 8707).
            url: format!("http://localhost:{port}/mcp"),
            auth_url: format!("http://localhost:{auth_port}"),
            drain,
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = bounded("the SDK's example server exit", PROMPTLY, self.child.wait()).await;
        let _ = bounded("its stdout's end", PROMPTLY, self.drain.join_next()).await;
    }
}

/// `mcp-host --config <config> <args>` with the scratch's token store, to completion.
#[allow(clippy::disallowed_methods)] // The binary under test.
async fn mcp_host(scratch: &Scratch, config: &Path, args: &[&str]) -> Output {
    let what = format!("mcp-host {}", args.join(" "));
    let output = tokio::process::Command::new(mcp_host_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("XDG_DATA_HOME", scratch.path.join("data"))
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .env(MARKER_VAR, &scratch.marker)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    bounded(&what, Duration::from_secs(60), output)
        .await
        .unwrap()
}

/// `mcp-host login <server> --no-browser`, with a person's browser played headlessly: the URL the
/// command prints is fetched, and every redirect followed, the last one to the command's loopback
/// listener.
#[allow(clippy::disallowed_methods)] // The binary under test.
async fn login_headlessly(
    scratch: &Scratch,
    config: &Path,
    server: &str,
    auth_url: &str,
) -> Output {
    let mut child = tokio::process::Command::new(mcp_host_binary())
        .arg("--config")
        .arg(config)
        .args(["login", server, "--no-browser", "--timeout-secs", "60"])
        .env("XDG_DATA_HOME", scratch.path.join("data"))
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .env(MARKER_VAR, &scratch.marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = bounded("the login URL on stderr", PROMPTLY, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            printed.push(line.clone());
            if let Some(url) = line.trim().strip_prefix(&format!("{auth_url}/authorize?")) {
                return format!("{auth_url}/authorize?{url}");
            }
        }
        panic!("no authorization URL printed: {printed:?}");
    })
    .await;
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("resource="),
        "{url}"
    );
    let browser = reqwest::Client::builder().build().unwrap();
    let landed = bounded("the browser's visit", PROMPTLY, browser.get(&url).send())
        .await
        .unwrap();
    assert!(landed.url().path() == "/callback", "{}", landed.url());
    let page = landed.text().await.unwrap();
    assert!(page.contains("is authorized"), "{page}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = bounded("mcp-host login exit", PROMPTLY, child.wait())
        .await
        .unwrap();
    Output {
        status,
        stdout: out.into_bytes(),
        stderr: printed.join("\n").into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_headlessly_then_tools_call_status_and_logout_with_the_typescript_sdk_server() {
    let Some(interop) = interop() else { return };
    let scratch = Scratch::new();
    let server = SdkOAuthServer::start(&interop, &scratch).await;
    let config = scratch.path.join("mcp.json");
    let file = json!({"mcpServers": {"sdk": {"url": server.url}}});
    std::fs::write(&config, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    // Before a login: the server is there, but refuses; the command says what to do.
    let output = mcp_host(&scratch, &config, &["tools"]).await;
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        text.contains("server `sdk` needs login (run `mcp-host login sdk`)"),
        "{text}"
    );

    let started = Instant::now();
    let output = login_headlessly(&scratch, &config, "sdk", &server.auth_url).await;
    assert_exit(&output, 0, "login");
    let said = stdout(&output);
    assert!(
        said.starts_with("logged in to `sdk` (scopes: mcp:tools); the token expires in"),
        "{said}"
    );
    eprintln!("login: {:.1?}", started.elapsed());

    let token_dir = scratch.path.join("data/mcp-host/oauth");
    let files: Vec<_> = std::fs::read_dir(&token_dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let file = files[0].as_ref().unwrap().path();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&token_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    let output = mcp_host(&scratch, &config, &["tools", "--json"]).await;
    assert_exit(&output, 0, "tools");
    let names: Vec<String> = json_stdout(&output)
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"sdk__greet".to_owned()),
        "{names:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = mcp_host(
        &scratch,
        &config,
        &["call", "sdk__greet", r#"{"name":"oauth"}"#],
    )
    .await;
    assert_exit(&output, 0, "call");
    assert_eq!(stdout(&output).trim(), "Hello, oauth!");

    let output = mcp_host(&scratch, &config, &["status", "--json"]).await;
    assert_exit(&output, 0, "status");
    let status = json_stdout(&output);
    assert_eq!(status[0]["state"], "ready");
    assert_eq!(status[0]["auth"]["state"], "logged_in", "{status}");
    assert!(
        status[0]["auth"]["expiresAt"].as_u64().is_some(),
        "{status}"
    );

    let output = mcp_host(&scratch, &config, &["logout", "sdk"]).await;
    assert_exit(&output, 0, "logout");
    assert!(std::fs::read_dir(&token_dir).unwrap().next().is_none());
    let output = mcp_host(&scratch, &config, &["status", "--json"]).await;
    let status = json_stdout(&output);
    assert_eq!(status[0]["state"], "failed", "{status}");
    assert_eq!(status[0]["auth"]["state"], "not_logged_in", "{status}");

    server.stop().await;
    assert_no_process_left(&scratch).await;
}
