//! Faults, with the real binaries where a process has to die: the wss or the proxy
//! killed (SIGKILL) under load, a certificate folder that cannot be made, a full
//! disk (RLIMIT_FSIZE), and `--save-snapshots` into a folder that cannot be written.
//!
//! Each binary runs with `--config` of its own config.json in a temporary folder,
//! on free loopback ports, with its certificate in that folder. Every child is
//! killed when its handle drops, so a failing test leaves no process behind.
//!
//! Every test runs on both server stacks (`slab::name`, `warp::name`): the servers
//! started with `--wss_stack` and `--proxy_stack` of that stack. What a stack holds
//! for its connections is read from its snapshot: slab retainers on the slab stack,
//! pinned allocations (the buffers kept header values pin) on the warp stack.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{ClientError, ClientOptions, WsStream};
use futures_util::{SinkExt, StreamExt};
use runtime::config::Config;
use runtime::shutdown::Shutdown;
use serde_json::{json, Value};
use snapshot::{HeadMode, Snapshot, Stack};
use testkit::{free_port, ChildGuard, Lines};
use tokio_tungstenite::tungstenite::Message;

on_both_stacks! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    killing_the_wss_closes_the_client_sides_releases_the_views_and_502s_until_it_is_back,
    killing_the_proxy_ends_the_client_with_one_clear_error_and_a_non_zero_exit,
    with_reconnect_the_client_comes_back_once_the_proxy_does,
    a_certificate_folder_that_cannot_be_made_stops_the_proxy_with_one_error_naming_it,
    a_full_disk_stops_the_proxy_with_one_error_and_leaves_no_half_certificate,
    save_snapshots_writes_both_servers_snapshots_whole,
    save_snapshots_into_an_unusable_folder_says_what_and_where_and_writes_nothing,
}

/// The command-line flags that put both servers on `stack`.
fn stack_args(stack: Stack) -> [&'static str; 4] {
    let name = stack.as_str();
    ["--wss_stack", name, "--proxy_stack", name]
}

/// Websockets held open through the proxy when the wss is killed (1,000 in
/// `scripts/soak --faults`).
const HELD: usize = 200;
/// Time within which the clients must see their websockets end, and the proxy
/// must have released them, once the wss is killed.
const PROMPTLY: Duration = Duration::from_secs(5);
/// Upper bound of every other wait.
const BOUND: Duration = Duration::from_secs(30);

/// A config.json for the binaries in `dir`: free ports, certificate in `dir`, small
/// slabs (so a few hundred connections spread over several slabs), `retain` on both
/// servers (so released views show), then `extra` on top.
fn write_config(dir: &Path, extra: Value) -> (PathBuf, Value) {
    let wss = free_port();
    let mut config = json!({
        "wss_port": wss,
        "wss_heapdump_port": free_port(),
        "proxy_port": free_port(),
        "proxy_heapdump_port": free_port(),
        "client_heapdump_port": free_port(),
        "proxy_target": {"host": "127.0.0.1", "port": wss},
        "client_proxy_host": "localhost",
        "cert_dir": dir.join("certs"),
        "tcp_slab_size": 65536,
        "tls_slab_size": 131072,
        "read_size": 4096,
        "wss_head": "retain",
        "proxy_head": "retain",
        "wss_echo": true,
        "upstream_timeout_ms": 2000,
    });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    (path, config)
}

/// The typed config of a config.json, as the binaries read it.
fn typed(path: &Path) -> Config {
    runtime::config::ConfigArgs {
        path: Some(path.to_path_buf()),
        overrides: vec![],
    }
    .load()
    .unwrap()
}

/// A child process whose stderr (and stdout) lines are collected; killed on drop.
struct Proc {
    name: &'static str,
    child: ChildGuard,
    lines: Lines,
    out: Lines,
}

impl Proc {
    /// Starts `cmd` (RUST_LOG=info) with stdout and stderr collected.
    fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let mut child = ChildGuard::spawn(
            cmd.env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Lines::stderr(&mut child);
        let out = Lines::stdout(&mut child);
        Proc {
            name,
            child,
            lines,
            out,
        }
    }

    /// Starts a server binary on `config` and `stack` and waits for its "listening
    /// on" line.
    async fn server(name: &'static str, bin: &str, config: &Path, stack: Stack) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(config).args(stack_args(stack));
        let mut p = Proc::spawn(name, cmd);
        p.wait_line("listening on").await;
        p
    }

    fn stderr(&self) -> Vec<String> {
        self.lines.so_far()
    }

    fn stdout(&self) -> Vec<String> {
        self.out.so_far()
    }

    /// Waits (within [`BOUND`]) for a stderr line containing `text`.
    async fn wait_line(&mut self, text: &str) {
        let poll = Duration::from_millis(20);
        let (lines, child) = (&self.lines, &mut self.child);
        let said = testkit::until(BOUND, poll, || {
            let said = lines.so_far().iter().any(|l| l.contains(text));
            std::future::ready(said || matches!(child.try_wait(), Ok(Some(_))))
        })
        .await;
        if self.stderr().iter().any(|l| l.contains(text)) {
            return;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => panic!(
                "{} exited ({status}) before saying {text:?}: {:#?}",
                self.name,
                self.stderr()
            ),
            _ => panic!(
                "{} did not say {text:?} within {BOUND:?} ({said}): {:#?}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// Waits (within `bound`) for the process to exit by itself, and for its last
    /// lines to be read.
    async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let poll = Duration::from_millis(20);
        let exited = testkit::until(bound, poll, || {
            std::future::ready(matches!(self.child.try_wait(), Ok(Some(_))))
        })
        .await;
        assert!(
            exited,
            "{} still running after {bound:?}: {:#?}",
            self.name,
            self.stderr()
        );
        // Its pipes closed with it: every line is read once they have ended.
        for (stream, lines) in [("stderr", &self.lines), ("stdout", &self.out)] {
            assert!(lines.wait_end(BOUND), "{}'s {stream} still open", self.name);
        }
        self.child.try_wait().unwrap().expect("exited")
    }

    /// SIGKILL, as when the process crashes or is killed by the OOM killer.
    fn kill(&mut self) {
        self.child.stop();
    }

    /// SIGINT (Ctrl-C).
    fn interrupt(&mut self) {
        let sent = self.child.interrupt();
        assert!(sent.is_ok(), "{sent:?}");
    }
}

/// Lines that start with `error:` (the binaries' one fatal line) or hold a
/// tracing ERROR.
fn error_lines(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.starts_with("error:") || l.contains(" ERROR "))
        .collect()
}

/// A server's snapshot from its port, checked against the schema.
async fn snapshot_at(port: u16) -> Snapshot {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let json = client::fetch::get_json(addr, "/snapshot").await.unwrap();
    common::checked(json)
}

/// Polls a server's snapshot until `check` holds, within `bound`; returns it.
async fn snapshot_until(
    port: u16,
    bound: Duration,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let start = Instant::now();
    loop {
        let snap = snapshot_at(port).await;
        if check(&snap) {
            return snap;
        }
        assert!(
            start.elapsed() < bound,
            "not within {bound:?}: {what}; last snapshot: connections {:?}, pools {:#?}",
            snap.connections,
            snap.pools
                .iter()
                .map(|p| (
                    &p.name,
                    p.live_slabs,
                    p.slabs.iter().map(|s| s.retainers.len()).sum::<usize>()
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retainers over all live slabs of a snapshot.
fn retainers(snap: &Snapshot) -> usize {
    snap.pools
        .iter()
        .flat_map(|p| &p.slabs)
        .map(|s| s.retainers.len())
        .sum()
}

/// Opens a websocket through the proxy and reads the wss's greeting.
async fn open_greeted(config: &Config, tls: &Arc<rustls::ClientConfig>) -> WsStream {
    let mut ws = client::open_websocket(config, Some(tls)).await.unwrap();
    let greeting = tokio::time::timeout(BOUND, ws.next())
        .await
        .expect("a greeting")
        .expect("open")
        .expect("a message");
    assert!(
        greeting.to_text().unwrap().starts_with("hello from wss"),
        "{greeting:?}"
    );
    ws
}

/// Sends `bytes` on the data websocket and waits for their echo (the wss read them).
async fn burst(data: &mut WsStream, bytes: usize) {
    data.send(Message::binary(vec![0x5A; bytes])).await.unwrap();
    let echo = tokio::time::timeout(BOUND, data.next())
        .await
        .expect("an echo")
        .expect("open")
        .expect("a message");
    assert_eq!(echo.len(), bytes);
}

async fn killing_the_wss_closes_the_client_sides_releases_the_views_and_502s_until_it_is_back(
    stack: Stack,
) {
    wss_killed(stack, json!({})).await
}

/// The same with the warp proxy's lean settings: its own copy (no copy buffer while
/// idle) and each side's IO taken back from hyper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_wss_behind_the_lean_warp_proxy_closes_the_client_sides() {
    let lean = json!({
        "proxy_copy_on_readable": true,
        "proxy_release_upgrade": true,
        "proxy_tls_buffer_limit": 16384,
    });
    wss_killed(Stack::Warp, lean).await
}

/// Kills the wss with websockets open through the proxy (`extra` added to the config):
/// every client side ends promptly, the proxy releases what they kept, 502 while the
/// wss is down, served again once it is back.
async fn wss_killed(stack: Stack, extra: Value) {
    let dir = tempfile::tempdir().unwrap();
    let (path, raw) = write_config(dir.path(), extra);
    let config = typed(&path);
    let proxy_snap = raw["proxy_heapdump_port"].as_u64().unwrap() as u16;
    let mut wss = Proc::server("wss", env!("CARGO_BIN_EXE_wss"), &path, stack).await;
    let proxy = Proc::server("proxy", env!("CARGO_BIN_EXE_proxy"), &path, stack).await;
    let tls = runtime::tls::client_config(&config).unwrap();

    // HELD websockets through the proxy, with data between them so that their
    // upgrade requests sit in many slabs (slab stack) or each in a hyper read buffer
    // (warp stack), all pinned (retain).
    let mut data = open_greeted(&config, &tls).await;
    let mut held = Vec::with_capacity(HELD);
    while held.len() < HELD {
        let batch =
            futures_util::future::join_all((0..20).map(|_| open_greeted(&config, &tls))).await;
        held.extend(batch);
        burst(&mut data, 64 << 10).await;
    }
    let before = snapshot_until(proxy_snap, BOUND, "every websocket counted", |s| {
        s.connections.open == HELD as u64 + 1
    })
    .await;
    assert_eq!(before.settings.stack, Some(stack));
    match stack {
        Stack::Slab => {
            let tls_pool = before.pool("tls").unwrap();
            assert!(
                tls_pool.live_slabs > 2,
                "several slabs pinned: {tls_pool:#?}"
            );
            assert!(retainers(&before) >= HELD, "every upgrade retained");
        }
        Stack::Warp | Stack::Socketio => {
            let pinned = &before.pinned_allocations;
            assert!(
                pinned.allocations.len() >= HELD,
                "a read buffer pinned per upgrade: {} allocations",
                pinned.allocations.len()
            );
        }
    }

    // Kill the wss: every client side must end, promptly.
    let ends: Vec<_> = held
        .into_iter()
        .chain([data])
        .map(|mut ws| {
            tokio::spawn(async move {
                let start = Instant::now();
                let ended = tokio::time::timeout(PROMPTLY, async {
                    loop {
                        match ws.next().await {
                            None | Some(Err(_)) => return,
                            Some(Ok(_)) => {}
                        }
                    }
                })
                .await
                .is_ok();
                // The socket is dropped once it ended, as a browser or the client does.
                (ended, start.elapsed())
            })
        })
        .collect();
    wss.kill();
    let killed = Instant::now();
    let mut slowest = Duration::ZERO;
    for end in ends {
        let (ended, took) = end.await.unwrap();
        assert!(
            ended,
            "a client websocket was still open {PROMPTLY:?} after the wss died"
        );
        slowest = slowest.max(took);
    }
    eprintln!(
        "all {} client websockets ended within {slowest:?} of the kill",
        HELD + 1
    );

    // The proxy released them: nothing open, no retainers, at most the current slab
    // (slab stack); no pinned allocation (warp stack).
    let after = snapshot_until(
        proxy_snap,
        PROMPTLY,
        "views released",
        common::holds_nothing,
    )
    .await;
    eprintln!(
        "proxy ({stack}) released every view {:?} after the kill: {:?}, {} pinned allocations",
        killed.elapsed(),
        after
            .pools
            .iter()
            .map(|p| (&p.name, p.live_slabs))
            .collect::<Vec<_>>(),
        after.pinned_allocations.allocations.len()
    );
    assert_eq!(
        after.connections.closed_total,
        before.connections.closed_total + HELD as u64 + 1
    );

    // While the wss is down, new upgrades get 502.
    for _ in 0..3 {
        let err = client::open_websocket(&config, Some(&tls))
            .await
            .expect_err("no upstream");
        assert!(
            matches!(err, ClientError::Handshake { .. }) && err.to_string().contains("502"),
            "{err}"
        );
    }

    // And as soon as the wss is back, the proxy serves new websockets.
    let _wss = Proc::server("wss", env!("CARGO_BIN_EXE_wss"), &path, stack).await;
    let mut ws = open_greeted(&config, &tls).await;
    burst(&mut ws, 1000).await;
    let snap = snapshot_at(proxy_snap).await;
    assert_eq!(snap.connections.open, 1);
    drop(ws);
    assert!(
        error_lines(&proxy.stderr()).is_empty(),
        "the proxy logged errors: {:#?}",
        proxy.stderr()
    );
}

/// wss + proxy binaries on `stack` and the client binary with `args`, its pinning
/// connections all open through the proxy.
struct ClientRun {
    dir: tempfile::TempDir,
    path: PathBuf,
    stack: Stack,
    proxy_snap: u16,
    client_snap: SocketAddr,
    _wss: Proc,
    proxy: Proc,
    client: Proc,
}

const PINNING: u64 = 40;

/// The client's snapshot, or `None` while its endpoint is not up (or it has exited).
async fn client_snapshot(addr: SocketAddr) -> Option<Snapshot> {
    let json = client::fetch::get_json(addr, "/snapshot").await.ok()?;
    serde_json::from_value(json).ok()
}

async fn client_through_proxy(stack: Stack, args: &[&str]) -> ClientRun {
    let dir = tempfile::tempdir().unwrap();
    let (path, raw) = write_config(
        dir.path(),
        json!({
            "client_maxConnections": PINNING,
            "client_connectionspersecond": 400,
            "client_dataSize": 20000,
            "client_dataDelay": 50,
            "wss_head": "copy",
            "proxy_head": "copy",
        }),
    );
    let proxy_snap = raw["proxy_heapdump_port"].as_u64().unwrap() as u16;
    let wss = Proc::server("wss", env!("CARGO_BIN_EXE_wss"), &path, stack).await;
    let proxy = Proc::server("proxy", env!("CARGO_BIN_EXE_proxy"), &path, stack).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_client"));
    cmd.arg("--config")
        .arg(&path)
        .arg("--no-progress")
        .args(args);
    let client = Proc::spawn("client", cmd);
    // Open as the client counts them (greeted through the proxy), not as the proxy
    // does (from its upstream connect on): the two differ for a moment.
    // (Its snapshot endpoint comes up with it: refused connections are retried.)
    let client_snap: SocketAddr = (
        [127, 0, 0, 1],
        raw["client_heapdump_port"].as_u64().unwrap() as u16,
    )
        .into();
    common::wait_until("every client connection open", || async {
        client_snapshot(client_snap)
            .await
            .is_some_and(|s| s.connections.open == PINNING + 1)
    })
    .await;
    ClientRun {
        dir,
        path,
        stack,
        proxy_snap,
        client_snap,
        _wss: wss,
        proxy,
        client,
    }
}

async fn killing_the_proxy_ends_the_client_with_one_clear_error_and_a_non_zero_exit(stack: Stack) {
    let mut run = client_through_proxy(stack, &["--report"]).await;
    run.proxy.kill();
    let status = run.client.wait_exit(BOUND).await;
    let stderr = run.client.stderr();
    assert_eq!(status.code(), Some(1), "{stderr:#?}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "one error line: {stderr:#?}");
    let line = errors[0];
    for part in [
        "error: lost the proxy at localhost:",
        &format!("all open connections ({PINNING} pinning connections and the data connection)"),
        "the proxy no longer accepts connections",
        "--reconnect",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    // The report came first, with the proxy's row saying why it is missing.
    let stdout = run.client.stdout();
    assert!(
        stdout
            .iter()
            .any(|l| l.starts_with("proxy") && l.contains("unavailable")),
        "{stdout:#?}"
    );
    assert!(stdout.iter().any(|l| l.starts_with("wss")), "{stdout:#?}");
}

async fn with_reconnect_the_client_comes_back_once_the_proxy_does(stack: Stack) {
    let mut run = client_through_proxy(stack, &["--reconnect"]).await;
    run.proxy.kill();
    // Down for a moment: the client keeps trying, with backoff (its own count of
    // failed attempts grows while the proxy is away).
    let failed_before = client_snapshot(run.client_snap)
        .await
        .expect("the client's snapshot")
        .connections
        .failed_total;
    common::wait_until("three failed attempts to reach the proxy", || async {
        client_snapshot(run.client_snap)
            .await
            .is_some_and(|s| s.connections.failed_total >= failed_before + 3)
    })
    .await;
    assert!(
        run.client.child.try_wait().unwrap().is_none(),
        "the client stays up"
    );
    let proxy = Proc::server("proxy", env!("CARGO_BIN_EXE_proxy"), &run.path, run.stack).await;
    let back = Instant::now();
    snapshot_until(run.proxy_snap, BOUND, "every connection reopened", |s| {
        s.connections.open == PINNING + 1
    })
    .await;
    eprintln!(
        "all {} connections reopened {:?} after the proxy came back",
        PINNING + 1,
        back.elapsed()
    );
    run.client.interrupt();
    let status = run.client.wait_exit(BOUND).await;
    let stderr = run.client.stderr();
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    assert!(error_lines(&stderr).is_empty(), "{stderr:#?}");
    assert!(
        stderr.iter().any(|l| l.contains("reconnected:")),
        "{stderr:#?}"
    );
    let summary = stderr
        .iter()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary line: {stderr:#?}"));
    assert!(
        summary.contains(&format!("{} reconnects", PINNING + 1)),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{PINNING} closed by the other side")),
        "{summary}"
    );
    drop(proxy);
    drop(run.dir);
}

/// Runs the proxy on `config` until it exits by itself; returns its exit status and stderr.
async fn proxy_exit(cmd: Command) -> (ExitStatus, Vec<String>) {
    let mut p = Proc::spawn("proxy", cmd);
    let status = p.wait_exit(BOUND).await;
    (status, p.stderr())
}

/// Files left in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

/// `cmd` with RLIMIT_FSIZE at `bytes` (a full disk, for files it writes) and
/// SIGXFSZ ignored, so that writes past the limit fail with EFBIG instead of
/// killing the process: `trap "" XFSZ` (an ignored signal stays ignored across exec)
/// then `prlimit --fsize`.
fn with_file_size_limit(bytes: u64, program: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap "" XFSZ; exec prlimit --fsize="$0" -- "$@""#)
        .arg(bytes.to_string())
        .arg(program);
    cmd
}

async fn a_certificate_folder_that_cannot_be_made_stops_the_proxy_with_one_error_naming_it(
    stack: Stack,
) {
    let dir = tempfile::tempdir().unwrap();
    // The parent of cert_dir is a regular file: ENOTDIR, even for root.
    std::fs::write(dir.path().join("file"), "not a folder").unwrap();
    let cert_dir = dir.path().join("file").join("certs");
    let (path, _) = write_config(dir.path(), json!({ "cert_dir": cert_dir }));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxy"));
    cmd.arg("--config").arg(&path).args(stack_args(stack));
    let (status, stderr) = proxy_exit(cmd).await;
    assert_eq!(status.code(), Some(1), "{stderr:#?}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr:#?}");
    assert!(
        errors[0].starts_with(&format!(
            "error: {}: cannot create the certificate folder",
            cert_dir.display()
        )),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("Not a directory"), "{}", errors[0]);
    let mut left = files_in(dir.path());
    left.sort();
    assert_eq!(left, ["config.json", "file"]);
}

async fn a_full_disk_stops_the_proxy_with_one_error_and_leaves_no_half_certificate(stack: Stack) {
    // 100 bytes: the key cannot be written. 400 bytes: the key (about 240 bytes)
    // is, the certificate (about 580) is not, and the key must go again.
    for (limit, failing) in [(100, "localhost.key.pem"), (400, "localhost.pem")] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_config(dir.path(), json!({}));
        let mut cmd = with_file_size_limit(limit, env!("CARGO_BIN_EXE_proxy"));
        cmd.arg("--config").arg(&path).args(stack_args(stack));
        let (status, stderr) = proxy_exit(cmd).await;
        assert_eq!(status.code(), Some(1), "limit {limit}: {stderr:#?}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "limit {limit}: {stderr:#?}");
        let certs = dir.path().join("certs");
        assert!(
            errors[0].starts_with(&format!(
                "error: {}: cannot write",
                certs.join(failing).display()
            )),
            "limit {limit}: {}",
            errors[0]
        );
        assert!(errors[0].contains("File too large"), "{}", errors[0]);
        assert_eq!(
            files_in(&certs),
            Vec::<String>::new(),
            "limit {limit}: nothing half-written"
        );
    }
}

/// A playground (wss + TLS proxy on `stack`, in this process) and a config for a
/// client of it.
async fn playground_and_client_config(stack: Stack) -> (common::Playground, Config) {
    let pg = common::Playground::start_on(stack, HeadMode::Copy, HeadMode::Copy, |_| {}).await;
    let mut config = pg.config.clone();
    config.proxy_heapdump_port = pg.proxy.snapshot_addr.port();
    config.wss_heapdump_port = pg.wss.snapshot_addr.port();
    config.client_heapdump_port = 0;
    config.client_max_connections = 5;
    config.client_connections_per_second = 100.0;
    config.client_data_size = 10_000;
    config.client_data_delay = 50;
    (pg, config)
}

async fn save_snapshots_writes_both_servers_snapshots_whole(stack: Stack) {
    let (pg, config) = playground_and_client_config(stack).await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("snapshots");
    let options = ClientOptions {
        duration: Some(Duration::from_millis(1500)),
        save_snapshots: Some(target.clone()),
        ..ClientOptions::default()
    };
    let summary = client::run(config, options, Shutdown::new()).await.unwrap();
    // Each server's snapshot as JSON, as a Chrome heap snapshot and as a pprof profile.
    assert_eq!(summary.saved.len(), 6, "{summary:?}");
    let mut names = files_in(&target);
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    let profiles: Vec<&String> = names.iter().filter(|n| n.ends_with(".pb.gz")).collect();
    let (heaps, jsons): (Vec<_>, Vec<_>) = names
        .iter()
        .filter(|n| !n.ends_with(".pb.gz"))
        .partition(|n| n.ends_with(".heapsnapshot"));
    for (name, role) in jsons.iter().zip(["proxy", "wss"]) {
        let prefix = format!("{role}-snapshot-");
        let ms = name
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(".json"))
            .unwrap_or_else(|| panic!("{name} is not {prefix}<ms>.json"));
        let json: Value =
            serde_json::from_slice(&std::fs::read(target.join(name)).unwrap()).unwrap();
        if let Err(errors) = snapshot::validate(&json) {
            panic!("{name} does not match the schema: {errors:#?}");
        }
        assert_eq!(json["role"], role);
        assert_eq!(json["taken_at_ms"].as_u64().unwrap().to_string(), ms);
        // Taken while the client's 5 pinning connections and its data connection were open.
        assert_eq!(json["connections"]["open"], 6, "{name}");
        // The heap snapshot beside it holds the same snapshot's figures.
        let heap = format!("{role}-{ms}.heapsnapshot");
        assert!(heaps.contains(&&heap), "{heap} missing: {names:?}");
        let file: Value =
            serde_json::from_slice(&std::fs::read(target.join(&heap)).unwrap()).unwrap();
        let nodes = file["snapshot"]["node_count"].as_u64().unwrap();
        let fields = file["snapshot"]["meta"]["node_fields"]
            .as_array()
            .unwrap()
            .len() as u64;
        assert_eq!(
            file["nodes"].as_array().unwrap().len() as u64,
            nodes * fields,
            "{heap}"
        );
        let connections = file["strings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s.as_str().is_some_and(|s| s.starts_with("Connection")))
            .count();
        assert!(connections >= 1, "{heap} names its connections");
        // And so does the pprof profile: the same snapshot's retaining paths.
        let profile = format!("{role}-{ms}.pb.gz");
        assert!(profiles.contains(&&profile), "{profile} missing: {names:?}");
        let snap: snapshot::Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(
            std::fs::read(target.join(&profile)).unwrap(),
            snapshot::pprof::to_vec(&snap),
            "{profile}"
        );
    }
    drop(pg);
}

async fn save_snapshots_into_an_unusable_folder_says_what_and_where_and_writes_nothing(
    stack: Stack,
) {
    let (pg, config) = playground_and_client_config(stack).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();

    // A folder that cannot be made: said at once, before any connection.
    let target = dir.path().join("file").join("snapshots");
    let options = ClientOptions {
        duration: Some(Duration::from_secs(30)),
        save_snapshots: Some(target.clone()),
        ..ClientOptions::default()
    };
    let started = Instant::now();
    let err = client::run(config.clone(), options, Shutdown::new())
        .await
        .expect_err("unusable folder");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        format!(
            "--save-snapshots: cannot use the folder {}: Not a directory (os error 20)",
            target.display()
        )
    );

    // A full disk at the end of the run (the client binary, RLIMIT_FSIZE 100
    // bytes, less than any of the three files): one error line naming the file,
    // exit 1, and no partial file.
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
    let target = dir.path().join("full");
    let mut cmd = with_file_size_limit(100, env!("CARGO_BIN_EXE_client"));
    cmd.arg("--config")
        .arg(&config_path)
        .args(["--no-progress", "--duration", "1.5", "--save-snapshots"])
        .arg(&target);
    let mut client = Proc::spawn("client", cmd);
    let status = client.wait_exit(BOUND).await;
    let stderr = client.stderr();
    assert_eq!(status.code(), Some(1), "{stderr:#?}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr:#?}");
    assert!(
        errors[0].starts_with(&format!(
            "error: --save-snapshots: cannot write the proxy snapshot to {}/proxy-snapshot-",
            target.display()
        )),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("File too large"), "{}", errors[0]);
    assert!(
        errors[0].contains("cannot write the wss snapshot"),
        "{}",
        errors[0]
    );
    assert_eq!(files_in(&target), Vec::<String>::new(), "no partial file");
    drop(pg);
}
