//! The playground's native clients speaking socket.io to the socketio wss, on real
//! sockets: the load client through our TLS proxy (pinning and data connections as
//! socket.io sockets, their traffic as `message` events, the server's pings
//! answered), and `client audit --socketio` against the wss as its own process.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use client::audit::report::AuditReport;
use client::{ClientOptions, ClientSummary};
use common::{wait_until, Playground, Server};
use runtime::config::Config;
use runtime::shutdown::Shutdown;
use snapshot::{HeadMode, Snapshot, Stack};

/// Pinning connections of a load run.
const PINNING: u64 = 6;

/// A playground whose wss runs the socketio stack in `mode` (echoing), behind our
/// TLS proxy.
async fn socketio_playground(mode: HeadMode) -> Playground {
    Playground::start(mode, HeadMode::Drop, |c| c.wss_stack = Stack::Socketio).await
}

/// A load client's config for `pg`: `PINNING` pinning connections sending their
/// own traffic, a data connection, the servers' snapshot ports, its own on a free port.
fn client_config(pg: &Playground) -> Config {
    let mut config = pg.client_config(PINNING);
    config.client_data_size = 3000;
    config.client_data_delay = 50;
    config.client_pin_message_size = 100;
    config.client_pin_data_bytes = 40_000;
    config.client_pin_data_message_size = 16 << 10;
    config
}

async fn snapshot_at(addr: SocketAddr) -> Option<Snapshot> {
    client::fetch::fetch(addr).await.ok()
}

/// Starts a load run of `config`; returns its task and the shutdown that ends it.
fn start_run(
    config: Config,
    options: ClientOptions,
) -> (
    tokio::task::JoinHandle<Result<ClientSummary, client::ClientError>>,
    Shutdown,
) {
    let shutdown = Shutdown::new();
    let run = tokio::spawn(client::run(config, options, shutdown.clone()));
    (run, shutdown)
}

/// The load client finds from the wss's snapshot that it runs the socketio stack
/// and speaks socket.io through the TLS proxy: every pinning connection and the
/// data connection is a socket.io socket on the wss (greeted, sending its traffic
/// as `message` events, echoed), and in `retain` each of them pins one hyper read
/// buffer (8 KiB or more) in the wss's `pinned_allocations`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_client_speaks_socketio_through_the_proxy_and_each_socket_pins_a_buffer_in_retain()
{
    let pg = socketio_playground(HeadMode::Retain).await;
    let config = client_config(&pg);
    let own = SocketAddr::from(([127, 0, 0, 1], config.client_heapdump_port));
    let (run, shutdown) = start_run(config, ClientOptions::default());
    let sockets = PINNING + 1;
    wait_until("every socket open and the pin traffic sent", || async {
        let wss = pg.snapshot(&pg.wss).await;
        let done = snapshot_at(own)
            .await
            .and_then(|s| s.client)
            .is_some_and(|c| c.pin_traffic_done == PINNING);
        done && wss.connections.open == sockets
    })
    .await;
    let snap = pg.snapshot(&pg.wss).await;
    assert_eq!(snap.settings.stack, Some(Stack::Socketio));
    assert_eq!(snap.connections.open_by_head_mode.retain, sockets);
    let pinned = common::pinned_by_connection(&snap);
    assert_eq!(
        pinned.len() as u64,
        sockets,
        "every socket pins: {:#?}",
        snap.pinned_allocations
    );
    for (connection, parts) in &pinned {
        assert!(
            parts.iter().any(|(_, size)| *size >= 8192),
            "connection {connection} pins hyper's read buffer: {parts:?}"
        );
    }
    // Long enough for some of the data connection's messages and their echoes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    let summary = tokio::time::timeout(common::BOUND, run)
        .await
        .expect("the run ends")
        .unwrap()
        .expect("the run succeeds");
    assert!(summary.socketio, "{summary:?}");
    assert_eq!(summary.pinning_opened, PINNING, "{summary:?}");
    assert_eq!(summary.pinning_closed, 0, "{summary:?}");
    assert_eq!(summary.pin_traffic_done, PINNING, "{summary:?}");
    assert_eq!(summary.pin_bytes_sent, PINNING * 40_100, "{summary:?}");
    assert!(summary.data_messages_sent > 2, "{summary:?}");
    assert_eq!(summary.data_bytes_sent, summary.data_messages_sent * 3000);
    // The wss echoes each message event: the data connection gets its bytes back
    // (but those in flight at the end).
    assert!(
        summary.data_bytes_received >= 3000
            && summary.data_bytes_received <= summary.data_bytes_sent,
        "{summary:?}"
    );
    // A greeting on every socket, an echo of every pin message.
    assert!(
        summary.messages_received >= sockets + PINNING * 4,
        "{summary:?}"
    );
}

/// Idle sockets stay open: socketioxide (engineioxide 0.17) pings each socket as it
/// connects (the first tick of its interval is immediate) and then every 25 s (its
/// pingInterval), and closes a socket whose pong does not come within 20 s (its
/// pingTimeout). The run lasts one interval and a margin (the long test of this
/// file, about 28 s): no socket was closed, so the first ping was answered (else
/// each would have closed at about 20 s), and the pong count (pings answered once
/// the socket was open: those that came during the handshake are answered by the
/// dialer, uncounted) shows the interval's pings answered too. No config key makes
/// the interval shorter: a user gains nothing from one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_answer_the_servers_pings_within_one_ping_interval() {
    let pg = socketio_playground(HeadMode::Drop).await;
    let mut config = client_config(&pg);
    config.client_pin_message_size = 0;
    config.client_pin_data_bytes = 0;
    config.client_data_size = 0;
    let options = ClientOptions {
        duration: Some(Duration::from_secs(28)),
        socketio: true,
        ..ClientOptions::default()
    };
    let (run, _shutdown) = start_run(config, options);
    let summary = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .unwrap()
        .expect("the run succeeds");
    assert_eq!(summary.pinning_open, PINNING, "{summary:?}");
    assert_eq!(summary.pinning_closed, 0, "{summary:?}");
    assert!(
        summary.pings_answered >= PINNING,
        "one ping answered per socket at least: {summary:?}"
    );
    assert_eq!(
        summary.messages_received, PINNING,
        "the greetings: {summary:?}"
    );
}

/// The wss binary on the socketio stack, as its own process, in `head` mode.
fn wss_process(dir: &Path, head: &str, echo: bool) -> Server {
    Server::wss(
        dir,
        &[
            ("wss_stack", "socketio"),
            ("wss_head", head),
            ("wss_echo", if echo { "true" } else { "false" }),
            ("max_connections", "0"),
            ("ws_read_buffer_size", "4096"),
        ],
    )
}

/// `client audit` of `target` measuring `pid` at `levels`, with `extra` options;
/// its JSON in `dir`.
fn audit(dir: &Path, target: &str, pid: u32, levels: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_client"))
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .args(["audit", "--target", target, "--levels", levels])
        .args(["--pid", &pid.to_string()])
        .args(["--rate", "400", "--settle", "12", "--no-progress"])
        .args(["--client_heapdump_port", "0"])
        .args(extra)
        .arg("--json")
        .arg(dir.join("audit.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for an audit and returns its report, asserting it went to its end.
fn finished(child: Child, dir: &Path) -> AuditReport {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(180))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("the audit did not end within 180 s")
        })
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    println!("{stdout}");
    let json = std::fs::read(dir.join("audit.json")).expect("the audit's JSON");
    let report: AuditReport = serde_json::from_slice(&json).unwrap();
    assert!(report.error.is_none(), "{:?}", report.error);
    report
}

/// `client audit` speaks socket.io to our socketio wss (retain with `--socketio`
/// on the bare URL and `--echo`, each echo awaited; drop with the URL at
/// socket.io's path, paced by pings alone): every socket opens, sends its message
/// and its traffic as events, and closes; in `retain` each idle socket keeps
/// hyper's read buffer, so an idle socket costs the wss more than in `drop`.
#[test]
fn client_audit_speaks_socketio_and_sees_retain_cost_more_than_drop() {
    const LEVEL: &str = "150";
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let retain = wss_process(dirs[0].path(), "retain", true);
    let dropped = wss_process(dirs[1].path(), "drop", false);
    let bare = format!("ws://{}/", retain.addr);
    let at_path = format!("ws://{}{}", dropped.addr, socketio_wire::WEBSOCKET_PATH);
    let a = audit(
        dirs[0].path(),
        &bare,
        retain.program.child.id(),
        LEVEL,
        &["--socketio", "--echo"],
    );
    let r_retain = finished(a, dirs[0].path());
    let b = audit(
        dirs[1].path(),
        &at_path,
        dropped.program.child.id(),
        LEVEL,
        &[],
    );
    let r_drop = finished(b, dirs[1].path());
    let idle = |r: &AuditReport| r.levels[0].processes[0].kb_per_connection.unwrap();
    let (kept, none) = (idle(&r_retain), idle(&r_drop));
    println!("idle KB per socket: retain {kept}, drop {none}");
    assert!(
        kept > none + 3.0,
        "retain keeps hyper's 8 KiB read buffer per socket: idle {kept} KB per socket, drop {none}"
    );
    for r in [&r_retain, &r_drop] {
        let p = &r.levels[0].processes[0];
        assert!(p.returned_percent.is_some(), "{p:?}");
    }
}

/// `node`, or `None` after saying why the test is skipped: only a machine without
/// node skips it (`scripts/setup --browser` installs it, and `scripts/test` runs
/// that first).
fn node_or_skip(what: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("node"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "SKIPPED: {what}: node is not installed (scripts/setup --browser installs \
             Debian's nodejs and npm)"
        );
    }
    found
}

/// Node's socket.io client (npm's `socket.io-client` 4, pinned in
/// `tests/socketio-client/package-lock.json`), a client nobody here wrote, connects
/// through our TLS proxy to our socketio wss over a websocket: it is greeted with
/// the `hello` event and gets its `message` echoed; the wss counted its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_socketio_client_is_greeted_and_echoed_through_our_tls_proxy() {
    let Some(node) = node_or_skip("Node's socket.io-client through our proxy") else {
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap();
    let status = Command::new(root.join("scripts/socketio-client-install"))
        .status()
        .expect("scripts/socketio-client-install runs");
    assert!(status.success(), "scripts/socketio-client-install failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));

    let pg = socketio_playground(HeadMode::Retain).await;
    let (cert, _) = runtime::tls::cert_paths(&pg.config);
    let url = format!("https://127.0.0.1:{}", pg.proxy.addr.port());
    // hello.js gives up by itself after 10 s: the wait is bounded.
    let mut cmd = Command::new(node);
    cmd.arg(manifest.join("tests/socketio-client/hello.js"))
        .arg(&url)
        .arg(&cert)
        .env("NODE_PATH", target.join("socketio-client/node_modules"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let said: serde_json::Value = serde_json::from_str(stdout.trim()).expect("hello.js's JSON");
    let hello = said["hello"].as_str().unwrap_or_default();
    assert!(
        hello.starts_with("hello from wss, connection ") && hello.ends_with("(head mode retain)"),
        "{said}"
    );
    assert_eq!(said["echo"], said["sent"], "{said}");
    let snap = pg.snapshot(&pg.wss).await;
    assert!(
        snap.connections.accepted_total >= 1,
        "{:?}",
        snap.connections
    );
}
