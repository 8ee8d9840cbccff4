//! The burst step: back to idle after traffic.
//!
//! The traffic step paces its sends (a ping after every message, 64 websockets at a
//! time), so the wss reads each message on its own. Users' clients do not: Node's
//! `ws` client queues every message at once and the server reads them as they pile
//! up, which is what grows tungstenite's buffers. So the stack is started anew and
//! `bench/peers/node/burst.js` (Node's `ws` client, a client the project did not
//! write) opens the plan's websockets through the proxy, each waits for its
//! greeting, and then all of them send their first message and their bytes at once
//! and read the echoes. Memory is read before the client, once its websockets are
//! idle, right after the last echo and then every `burst_every_ms` for
//! `burst_window_ms`: whether each server goes back to its idle cost.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::results::{Burst, BurstSample, Plan};
use crate::scenario::memory_sample;
use crate::stacks::{self, Env, Ports, Running, Stack};

/// Time the client has to open its websockets, and to finish its burst.
const OPEN_BOUND: Duration = Duration::from_secs(120);
const BURST_BOUND: Duration = Duration::from_secs(300);

/// The burst step on `stack`, started anew on `ports` (and stopped after).
pub async fn run(env: &Env, plan: &Plan, stack: &Stack, ports: Ports) -> Result<Burst> {
    let mut running = stacks::start(env, stack, ports).await?;
    let outcome = measure(env, plan, &mut running).await;
    if outcome.is_err() {
        running.check_alive()?;
    }
    outcome
}

async fn measure(env: &Env, plan: &Plan, running: &mut Running) -> Result<Burst> {
    let n = plan.burst_connections;
    let settle = Duration::from_millis(plan.settle_ms);
    tokio::time::sleep(settle).await;
    let base = memory_sample(running, 0).await?;
    let mut client = NodeClient::start(env, plan, running)?;
    client.expect("open", OPEN_BOUND).await?;
    tokio::time::sleep(settle).await;
    running.check_alive()?;
    let idle = memory_sample(running, n).await?;
    client.send("burst").await?;
    let done = client.expect("done", BURST_BOUND).await?;
    let secs: f64 = done
        .parse()
        .map_err(|_| anyhow!("the burst client said {done:?}"))?;
    let stopped = Instant::now();
    let mut after = Vec::new();
    let every = Duration::from_millis(plan.burst_every_ms.max(100));
    loop {
        running.check_alive()?;
        let at_ms = stopped.elapsed().as_millis() as u64;
        after.push(BurstSample {
            at_ms,
            memory: memory_sample(running, n).await?,
        });
        if at_ms >= plan.burst_window_ms {
            break;
        }
        let next = every * after.len() as u32;
        tokio::time::sleep(next.saturating_sub(stopped.elapsed())).await;
    }
    let (first, last) = (&after[0].memory, &after[after.len() - 1].memory);
    eprintln!(
        "bench:    burst ({n} websockets, {secs:.1}s): wss {:.1} → {:.1} → {:.1} MB (idle, after, {:.0} s later), proxy {:.1} → {:.1} → {:.1} MB",
        idle.wss_rss as f64 / 1e6,
        first.wss_rss as f64 / 1e6,
        last.wss_rss as f64 / 1e6,
        plan.burst_window_ms as f64 / 1e3,
        idle.proxy_rss as f64 / 1e6,
        first.proxy_rss as f64 / 1e6,
        last.proxy_rss as f64 / 1e6,
    );
    client.stop().await;
    Ok(Burst {
        connections: n,
        first_message: plan.traffic_first_message,
        bytes: plan.burst_bytes,
        message: plan.traffic_message,
        secs,
        base,
        idle,
        after,
    })
}

/// `node burst.js`, spoken to on its stdin and read on its stdout.
struct NodeClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NodeClient {
    fn start(env: &Env, plan: &Plan, running: &Running) -> Result<NodeClient> {
        if !running.stack.proxy.exists() {
            bail!("the burst client speaks TLS to a proxy; this stack has none");
        }
        let (cert, _) = env.certificate();
        let script = env.root.join("bench/peers/node/burst.js");
        let mut cmd = Command::new(&env.node);
        cmd.arg(&script)
            .args([
                "--url",
                &format!("wss://127.0.0.1:{}/", running.client_port()),
            ])
            .args(["--servername", "localhost"])
            .arg("--ca")
            .arg(&cert)
            .args(["--connections", &plan.burst_connections.to_string()])
            .args(["--first", &plan.traffic_first_message.to_string()])
            .args(["--bytes", &plan.burst_bytes.to_string()])
            .args(["--message", &plan.traffic_message.to_string()])
            .args(["--echo", &running.stack.echo.to_string()])
            .current_dir(env.root.join("bench/peers/node"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} {}", env.node.display(), script.display()))?;
        let stdout = child.stdout.take().expect("piped");
        Ok(NodeClient {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.child.stdin.as_mut().expect("piped");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .context("the burst client's stdin")
    }

    /// The rest of the client's next line, which must start with `word`, within `bound`.
    async fn expect(&mut self, word: &str, bound: Duration) -> Result<String> {
        let line = tokio::time::timeout(bound, self.lines.next_line())
            .await
            .map_err(|_| {
                anyhow!("the burst client said nothing for {bound:?} (waiting for {word:?})")
            })?
            .context("the burst client's stdout")?
            .ok_or_else(|| anyhow!("the burst client ended (waiting for {word:?})"))?;
        match line.split_once(' ') {
            Some((w, rest)) if w == word => Ok(rest.to_string()),
            _ => bail!("the burst client: {line}"),
        }
    }

    /// Closes its stdin (it closes its websockets and exits), bounded.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
