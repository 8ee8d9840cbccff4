//! The load against tiny websocket servers in this process: counting, losing and
//! reopening connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::ramp::period;
use crate::{Backoff, ClientOptions};
use runtime::config::Config;
use runtime::shutdown::Shutdown;

/// A plain websocket server that greets, then counts the messages it receives.
async fn tiny_server() -> (u16, Arc<AtomicU64>) {
    let server = TinyServer::start(0).await;
    let port = server.port;
    let received = server.received.clone();
    std::mem::forget(server.task);
    (port, received)
}

/// [`tiny_server`] that can be killed (listener and every connection dropped
/// at once, as when a process dies) and started again on its port.
struct TinyServer {
    port: u16,
    received: Arc<AtomicU64>,
    /// Websockets accepted.
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TinyServer {
    async fn start(port: u16) -> TinyServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let (count, opened) = (received.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (count, opened) = (count.clone(), opened.clone());
                connections.spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let _ = ws.send(Message::text("hello")).await;
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_binary() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        TinyServer {
            port,
            received,
            accepted,
            task,
        }
    }

    /// Drops the listener and every connection.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    let (bound, poll) = (Duration::from_secs(10), Duration::from_millis(10));
    runtime::wait::expect(what, bound, poll, || std::future::ready(check())).await
}

/// The client's own snapshot at `port`, once its endpoint answers.
async fn client_snapshot(port: u16) -> Option<snapshot::Snapshot> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    crate::fetch::fetch(addr).await.ok()
}

/// Waits until the client's own snapshot (on `port`) satisfies `check`.
async fn wait_for_client(what: &str, port: u16, check: impl Fn(&snapshot::Snapshot) -> bool) {
    let (bound, poll) = (Duration::from_secs(10), Duration::from_millis(10));
    runtime::wait::expect(what, bound, poll, || async {
        client_snapshot(port).await.is_some_and(|s| check(&s))
    })
    .await
}

/// A free loopback port for the client's snapshot endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn plain(port: u16, max: u64) -> Config {
    Config {
        proxy_port: port,
        proxy_tls: false,
        client_proxy_host: "127.0.0.1".into(),
        client_heapdump_port: free_port(),
        client_connections_per_second: 500.0,
        client_max_connections: max,
        client_data_size: 1000,
        client_data_delay: 20,
        ..Config::default()
    }
}

#[tokio::test]
async fn losing_every_connection_without_reconnect_ends_the_run_saying_what() {
    let server = TinyServer::start(0).await;
    let config = plain(server.port, 5);
    let snap_port = config.client_heapdump_port;
    let run = tokio::spawn(super::super::run(
        config,
        ClientOptions::default(),
        Shutdown::new(),
    ));
    wait_for_client("the client counts 6 websockets open", snap_port, |s| {
        s.connections.open == 6
    })
    .await;
    server.kill().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ends by itself")
        .expect("no panic");
    let err = ended.expect_err("losing everything is an error");
    let message = err.to_string();
    assert!(
        message.contains("5 pinning connections and the data connection"),
        "{message}"
    );
    assert!(
        message.contains("the proxy no longer accepts connections"),
        "{message}"
    );
    assert!(message.contains("--reconnect"), "{message}");
    let summary = err.summary().expect("the summary comes with it");
    assert_eq!(summary.pinning_opened, 5);
    assert_eq!(summary.pinning_closed, 5);
    assert_eq!(summary.data_lost, 1);
    assert_eq!(summary.reconnects, 0);
}

#[tokio::test]
async fn with_reconnect_lost_connections_come_back_with_backoff() {
    let server = TinyServer::start(0).await;
    let (port, accepted) = (server.port, server.accepted.clone());
    let shutdown = Shutdown::new();
    let options = ClientOptions {
        reconnect: Some(Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(200),
        }),
        ..ClientOptions::default()
    };
    let config = plain(port, 5);
    let snap_port = config.client_heapdump_port;
    let run = tokio::spawn(super::super::run(config, options, shutdown.clone()));
    wait_for("6 websockets open", || {
        accepted.load(Ordering::Relaxed) == 6
    })
    .await;
    wait_for_client("the client counts them open", snap_port, |s| {
        s.connections.open == 6
    })
    .await;
    let failed_before = client_snapshot(snap_port)
        .await
        .unwrap()
        .connections
        .failed_total;
    server.kill().await;
    // Down for a while: attempts fail and back off.
    wait_for_client("three attempts failed", snap_port, |s| {
        s.connections.failed_total >= failed_before + 3
    })
    .await;
    let server = TinyServer::start(port).await;
    let again = server.accepted.clone();
    wait_for("6 websockets open again", || {
        again.load(Ordering::Relaxed) == 6
    })
    .await;
    wait_for_client("the client counts them open again", snap_port, |s| {
        s.connections.open == 6
    })
    .await;
    shutdown.trigger();
    let summary = run.await.expect("no panic").expect("run");
    assert_eq!(summary.reconnects, 6, "{summary:?}");
    assert!(summary.reconnect_failed > 0, "{summary:?}");
    assert_eq!(summary.pinning_opened, 5, "slots reopened, not new ones");
    assert_eq!(summary.pinning_closed, 5);
    assert_eq!(summary.pinning_open, 5);
    assert_eq!(summary.data_lost, 1);
    assert_eq!(again.load(Ordering::Relaxed), 6, "no extra connection");
    server.kill().await;
}

#[tokio::test]
async fn without_reconnect_one_lost_connection_is_not_replaced() {
    // A server that closes its third websocket right after greeting it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicU64::new(0));
    let opened = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let _ = ws.send(Message::text("hello")).await;
                if n == 3 {
                    let _ = ws.close(None).await;
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    let mut config = plain(port, 4);
    config.client_data_size = 0;
    let options = ClientOptions {
        duration: Some(Duration::from_millis(500)),
        ..ClientOptions::default()
    };
    let summary = super::super::run(config, options, Shutdown::new())
        .await
        .expect("one lost connection is not fatal");
    assert_eq!(summary.pinning_opened, 4);
    assert_eq!(summary.pinning_closed, 1);
    assert_eq!(summary.pinning_open, 3);
    assert_eq!(accepted.load(Ordering::Relaxed), 4, "not refilled");
}

#[tokio::test]
async fn run_opens_pins_sends_and_closes() {
    let (port, received) = tiny_server().await;
    let config = Config {
        proxy_port: port,
        proxy_tls: false,
        client_proxy_host: "127.0.0.1".into(),
        client_heapdump_port: 0,
        client_connections_per_second: 200.0,
        client_max_connections: 5,
        client_data_size: 1000,
        client_data_delay: 20,
        ..Config::default()
    };
    let options = ClientOptions {
        duration: Some(Duration::from_millis(600)),
        ..ClientOptions::default()
    };
    let summary = super::super::run(config, options, Shutdown::new())
        .await
        .expect("run");
    assert_eq!(summary.pinning_opened, 5);
    assert_eq!(summary.pinning_open, 5);
    assert_eq!(summary.pinning_failed, 0);
    assert!(summary.data_messages_sent >= 5, "{summary:?}");
    assert_eq!(summary.data_bytes_sent, summary.data_messages_sent * 1000);
    assert_eq!(summary.messages_received, 6, "one greeting per connection");
    assert!(received.load(Ordering::Relaxed) >= 5);
    assert_ne!(summary.snapshot_addr.port(), 0);
}

#[tokio::test]
async fn an_absent_proxy_is_counted_not_fatal() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let config = Config {
        proxy_port: port,
        proxy_tls: false,
        client_proxy_host: "127.0.0.1".into(),
        client_heapdump_port: 0,
        client_connections_per_second: 100.0,
        client_max_connections: 3,
        client_data_size: 0,
        ..Config::default()
    };
    let options = ClientOptions {
        duration: Some(Duration::from_millis(300)),
        ..ClientOptions::default()
    };
    let summary = super::super::run(config, options, Shutdown::new())
        .await
        .expect("run");
    assert_eq!(summary.pinning_opened, 0);
    assert!(summary.pinning_failed >= 3, "{summary:?}");
}

#[test]
fn period_follows_the_rate_within_bounds() {
    assert_eq!(period(1.0), Duration::from_secs(1));
    assert_eq!(period(0.25), Duration::from_secs(4));
    assert_eq!(period(1e12), Duration::from_micros(1));
    assert_eq!(period(1e-300), Duration::from_secs(365 * 24 * 3600));
    assert_eq!(
        period(f64::MIN_POSITIVE),
        Duration::from_secs(365 * 24 * 3600)
    );
}
