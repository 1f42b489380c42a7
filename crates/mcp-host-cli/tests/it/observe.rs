//! The gateway as a service: probes, Prometheus metrics and the status page, on `serve --http`
//! and on `serve --metrics` beside a stdio gateway.

use std::time::Duration;

use mcp_host_testkit::{assert_no_process_left, unique_marker, FakeConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::http_gateway::{read_events, request, start_http_gateway, HttpGateway};
use crate::{fake_entry, PROMPTLY};

async fn get(gateway: &HttpGateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let url = gateway.url.replace("/mcp", path);
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    tokio::time::timeout(PROMPTLY, request.send())
        .await
        .unwrap()
        .unwrap()
}

async fn call(gateway: &HttpGateway, session: &str, id: u64, name: &str) -> Value {
    let events = read_events(
        gateway
            .post(
                Some(session),
                &request(
                    id,
                    "tools/call",
                    json!({ "name": name, "arguments": { "text": "hi" } }),
                ),
                &[],
            )
            .await,
    )
    .await;
    events.into_iter().next().unwrap()
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn probes_and_metrics_follow_the_servers() {
    let marker = unique_marker();
    let mut required = fake_entry(&FakeConfig::default(), &marker);
    required["required"] = json!(true);
    let config = json!({ "mcpServers": {
        "main": required,
        "extra": fake_entry(&FakeConfig::default(), &marker),
    }});
    let gateway = start_http_gateway(&config, &[], &[]).await;
    assert_eq!(
        get(&gateway, "/healthz", None).await.status(),
        StatusCode::OK
    );
    let ready = get(&gateway, "/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);

    let session = gateway.initialize(&[]).await;
    for id in 0..5 {
        let answer = call(&gateway, &session, 10 + id, "main__echo").await;
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
    let answer = call(&gateway, &session, 20, "main__fail").await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    // Not a tool of any server: no series of its own (the label set stays bounded).
    call(&gateway, &session, 21, "main__no_such_tool").await;

    let metrics = get(&gateway, "/metrics", None).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let metrics = metrics.text().await.unwrap();
    let finished = |tool: &str, outcome: &str| {
        sample(
            &metrics,
            &format!(
                "mcp_gateway_calls_finished_total{{server=\"main\",tool=\"{tool}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(finished("echo", "ok"), Some(5.0), "{metrics}");
    assert_eq!(finished("fail", "tool_error"), Some(1.0), "{metrics}");
    assert!(!metrics.contains("no_such_tool"), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "mcp_gateway_call_duration_seconds_count{server=\"main\",tool=\"echo\"}"
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(&metrics, "mcp_gateway_server_up{server=\"main\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "mcp_gateway_server_processes{server=\"main\"}"),
        Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "mcp_gateway_server_resident_memory_bytes{server=\"main\"}"
        )
        .unwrap()
            > 1e6
    );
    assert_eq!(sample(&metrics, "mcp_gateway_sessions_open"), Some(1.0));
    assert!(sample(&metrics, "mcp_gateway_http_responses_total{code=\"200\"}").unwrap() >= 8.0);

    // The required server goes away: not ready, and the probe says which.
    call(&gateway, &session, 30, "main__crash").await;
    let not_ready = tokio::time::timeout(PROMPTLY, async {
        loop {
            let response = get(&gateway, "/readyz", None).await;
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                return serde_json::from_str::<Value>(&response.text().await.unwrap()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(not_ready["notReady"][0]["server"], "main", "{not_ready}");
    assert_eq!(
        get(&gateway, "/healthz", None).await.status(),
        StatusCode::OK
    );
    let metrics = get(&gateway, "/metrics", None).await.text().await.unwrap();
    assert_eq!(
        sample(&metrics, "mcp_gateway_server_up{server=\"main\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "mcp_gateway_server_state{server=\"main\",state=\"exited\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    let status: Value = serde_json::from_str(
        &get(&gateway, "/status.json", None)
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let extra = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|server| server["id"] == "extra")
        .unwrap();
    assert_eq!(extra["state"], "ready");
    assert_eq!(status["gateway"]["sessionsOpen"], 1);
    let page = get(&gateway, "/", None).await;
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(
        page.contains("id=\"server-extra\"") && page.contains("exited"),
        "{page}"
    );

    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

#[tokio::test]
async fn every_endpoint_needs_the_token_except_open_probes() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "a": fake_entry(&FakeConfig::default(), &marker) } });
    let envs = [("GATEWAY_TOKEN", "s3cret-token-value")];
    let gateway = start_http_gateway(
        &config,
        &[
            "--bearer-token-env",
            "GATEWAY_TOKEN",
            "--probes-without-auth",
        ],
        &envs,
    )
    .await;
    for path in ["/metrics", "/status.json", "/", "/status"] {
        assert_eq!(
            get(&gateway, path, None).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            get(&gateway, path, Some("s3cret-token-value"))
                .await
                .status(),
            StatusCode::OK,
            "{path}"
        );
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            get(&gateway, path, None).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let metrics = get(&gateway, "/metrics", Some("s3cret-token-value"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("s3cret"), "{metrics}");
    gateway.terminate().await;

    // Without --probes-without-auth the probes need the token too.
    let gateway =
        start_http_gateway(&config, &["--bearer-token-env", "GATEWAY_TOKEN"], &envs).await;
    assert_eq!(
        get(&gateway, "/healthz", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

/// `/metrics` scraped 100 times a second while calls run, and scrapers that never read their
/// answers: the gateway keeps serving and no call is lost.
#[tokio::test]
async fn scrapes_do_not_disturb_calls() {
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "a": fake_entry(&FakeConfig::default(), &marker) } });
    let gateway = start_http_gateway(&config, &[], &[]).await;
    let session = gateway.initialize(&[]).await;
    let addr = gateway
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    // Ten scrapers that send their request and never read a byte of the answer.
    let mut stalled = Vec::new();
    for _ in 0..10 {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let mut scrapes = JoinSet::new();
    let url = gateway.url.replace("/mcp", "/metrics");
    scrapes.spawn(async move {
        let client = reqwest::Client::new();
        let mut n_ok = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for _ in 0..100 {
            tick.tick().await;
            if client.get(&url).send().await.unwrap().status() == StatusCode::OK {
                n_ok += 1;
            }
        }
        n_ok
    });
    for id in 0..100 {
        let answer = call(&gateway, &session, 100 + id, "a__echo").await;
        assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    }
    assert_eq!(scrapes.join_next().await.unwrap().unwrap(), 100);
    drop(stalled);
    gateway.terminate().await;
    assert_no_process_left(&marker).await;
}

/// `serve --metrics ADDR` serves the probes and metrics of a gateway whose client is on stdio.
#[tokio::test]
async fn a_stdio_gateway_serves_metrics_beside() {
    use tokio::io::AsyncBufReadExt as _;
    let marker = unique_marker();
    let config = json!({ "mcpServers": { "a": fake_entry(&FakeConfig::default(), &marker) } });
    let path = crate::write_config(&config);
    #[allow(clippy::disallowed_methods)]
    let mut child = tokio::process::Command::new(crate::binary())
        .arg("--config")
        .arg(&path)
        .args(["serve", "--metrics", "127.0.0.1:0"])
        .env_remove("MCP_HOST_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(PROMPTLY, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        panic!("the gateway exited");
    })
    .await
    .unwrap();
    assert!(url.ends_with("/metrics"), "{url}");
    let metrics = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(&metrics, "mcp_gateway_server_up{server=\"a\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "mcp_gateway_sessions_open"), Some(1.0));
    let ready = reqwest::get(url.replace("/metrics", "/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // End of input ends the gateway, metrics and all.
    drop(child.stdin.take());
    let status = tokio::time::timeout(PROMPTLY, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_no_process_left(&marker).await;
}
