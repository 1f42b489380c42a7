//! The floor: a hand-written loop over the child's stdin and stdout, with no correlation map and no features.
//!
//! A call writes one request line and reads one reply line. With `n` in flight it writes `n`
//! requests in one write, then reads `n` replies. The only check is that a reply line arrived.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{bounded, start_each, stop_each, Client, ECHO_TEXT, STEP_TIMEOUT};
use crate::spec::Target;

/// One server driven by hand.
#[derive(Debug)]
pub(crate) struct RawClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    tool: String,
    next_id: u64,
    /// Reused buffers: the outgoing batch and the incoming line.
    out: Vec<u8>,
    line: Vec<u8>,
}

impl RawClient {
    fn queue_call(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            self.out,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{}","arguments":{{"text":"{ECHO_TEXT}"}}}}}}"#,
            self.tool
        );
    }

    fn queue_line(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.push(b'\n');
    }

    async fn send(&mut self) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the server's input is closed")?;
        stdin.write_all(&self.out).await?;
        stdin.flush().await?;
        self.out.clear();
        Ok(())
    }

    async fn receive(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        if self.stdout.read_until(b'\n', &mut self.line).await? == 0 {
            bail!("the server closed its output");
        }
        Ok(())
    }
}

impl Client for RawClient {
    type Fleet = Vec<RawClient>;

    async fn start(target: &Target, _index: usize) -> anyhow::Result<RawClient> {
        // The raw floor spawns its own child, as any client must; the ban is for library crates.
        #[allow(clippy::disallowed_methods)]
        let mut command = tokio::process::Command::new(&target.program);
        command
            .args(&target.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", target.program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the child's stdio could not be captured");
        };
        let mut client = RawClient {
            child,
            stdin: Some(stdin),
            // Default-sized buffers, as a minimal client would have: replies are short lines.
            stdout: BufReader::new(stdout),
            tool: target.tool.clone(),
            next_id: 1,
            out: Vec::new(),
            line: Vec::new(),
        };
        bounded("raw start", STEP_TIMEOUT, async {
            client.queue_line(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#);
            client.send().await?;
            client.receive().await?;
            client.queue_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
            client.queue_line(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
            client.send().await?;
            client.receive().await
        })
        .await?;
        Ok(client)
    }

    async fn call(&mut self) -> anyhow::Result<()> {
        self.queue_call();
        self.send().await?;
        self.receive().await
    }

    async fn call_many(&mut self, in_flight: usize, total: usize) -> anyhow::Result<()> {
        let mut n_left = total;
        while n_left > 0 {
            let n_batch = in_flight.clamp(1, n_left);
            for _ in 0..n_batch {
                self.queue_call();
            }
            self.send().await?;
            for _ in 0..n_batch {
                self.receive().await?;
            }
            n_left -= n_batch;
        }
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        // End of input is the stdio way to ask a server to exit.
        drop(self.stdin.take());
        match tokio::time::timeout(super::GRACE, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                self.child.start_kill()?;
                bounded("raw kill", Duration::from_secs(5), async {
                    self.child.wait().await?;
                    Ok(())
                })
                .await?;
                bail!("the server ignored end of input and was killed")
            }
        }
    }

    async fn start_fleet(target: &Target, n_servers: usize) -> anyhow::Result<Vec<RawClient>> {
        start_each(target, 0, n_servers).await
    }

    async fn grow_fleet(
        fleet: &mut Vec<RawClient>,
        target: &Target,
        n_servers: usize,
    ) -> anyhow::Result<()> {
        let more = start_each(target, fleet.len(), n_servers).await?;
        fleet.extend(more);
        Ok(())
    }

    async fn stop_fleet(fleet: Vec<RawClient>) -> anyhow::Result<()> {
        stop_each(fleet).await
    }
}
