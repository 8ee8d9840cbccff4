//! The limits that keep the playground from taking the machine down: the memory guard
//! (live slab bytes against `memory_limit`) and the connection cap, on both servers.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{exchange, wait_until, DirectWs, Playground, BOUND, UPGRADE};
use futures_util::{SinkExt, StreamExt};
use snapshot::HeadMode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The wss's slab size in the tests (`common::test_config`).
const TCP_SLAB: u64 = 64 << 10;
/// The proxy's TLS slab size in the tests.
const TLS_SLAB: u64 = 128 << 10;

/// Every log line of this test binary (a global subscriber: scoped ones miss lines
/// when tests run in parallel). Tests count lines only they can write.
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> Logs {
        static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
        let buf = BUF.get_or_init(|| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = buf.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || Capture(sink.clone()))
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            buf
        });
        Logs(buf.clone())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Lines holding every one of `parts`.
    fn count(&self, parts: &[&str]) -> usize {
        self.text()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends a message and waits for its echo.
async fn echo<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, message: Message)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let len = message.len();
    ws.send(message).await.unwrap();
    let back = tokio::time::timeout(BOUND, ws.next())
        .await
        .expect("an echo")
        .unwrap()
        .unwrap();
    assert_eq!(back.len(), len);
}

async fn upgrade_answer(addr: std::net::SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    exchange(&mut tcp, UPGRADE.as_bytes()).await
}

/// The wss test's log lines: its limit (0.3 MB) is its own.
const TRIPPED: &[&str] = &[
    "WARN",
    "memory guard tripped: ",
    "MB of live slabs >= limit 0.3 MB; refusing new connections",
];
const RECOVERED: &[&str] = &[
    "INFO",
    "memory guard recovered: ",
    "10 % below the limit of 0.3 MB; taking new connections again",
];

#[tokio::test]
async fn the_wss_memory_guard_refuses_new_connections_until_memory_falls() {
    let logs = Logs::capture();
    let limit = 4 * TCP_SLAB;
    let pg = Playground::start_each(
        HeadMode::Retain,
        HeadMode::Copy,
        |c| c.memory_limit = limit,
        |c| c.memory_limit = 0,
    )
    .await;
    let snap = pg.snapshot(&pg.wss).await;
    assert_eq!(snap.guard.memory_limit_bytes, limit);
    assert!(!snap.guard.memory_tripped);
    // Each connection retains the slab its upgrade landed in; a slab of data after it
    // moves the pool on to the next: one more live slab per connection.
    let mut held: Vec<DirectWs> = Vec::new();
    while !pg.snapshot(&pg.wss).await.guard.memory_tripped {
        assert!(held.len() < 12, "the guard never tripped");
        let mut ws = pg.open_direct().await;
        echo(&mut ws, Message::binary(vec![1; TCP_SLAB as usize])).await;
        held.push(ws);
    }
    let snap = pg.snapshot(&pg.wss).await;
    assert!(snap.totals.retained_bytes >= limit, "{:?}", snap.totals);
    eprintln!(
        "wss: guard tripped with {} connections open, {} live slabs, {} bytes >= limit {limit}",
        held.len(),
        snap.totals.live_slabs,
        snap.totals.retained_bytes
    );
    assert_eq!(snap.guard.memory_trips_total, 1);

    // New connections: 503 with the reason, never an upgrade; twice, logged once.
    for _ in 0..2 {
        let answer = upgrade_answer(pg.wss.addr).await;
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable"),
            "{answer}"
        );
        assert!(answer.contains("wss: memory guard: "), "{answer}");
        assert!(answer.contains("MB of live slabs >= limit"), "{answer}");
    }
    // Open ones are served on.
    for ws in &mut held {
        echo(ws, Message::text("still served")).await;
    }
    let snap = pg.snapshot(&pg.wss).await;
    assert_eq!(snap.guard.refused_total, 2);
    assert_eq!(snap.connections.open, held.len() as u64);
    assert!(snap.connections.failed_total >= 2);
    // The limit (0.3 MB) is this test's own.
    assert_eq!(logs.count(TRIPPED), 1, "{}", logs.text());

    // Closing the connections frees their slabs: the guard recovers by itself.
    for mut ws in held.drain(..) {
        ws.close(None).await.unwrap();
    }
    wait_until("the guard recovers once the slabs are freed", || async {
        logs.count(RECOVERED) == 1
    })
    .await;
    let snap = pg.snapshot(&pg.wss).await;
    assert!(!snap.guard.memory_tripped);
    assert!(snap.totals.retained_bytes < limit);
    let _ws = pg.open_direct().await;
    let snap = pg.snapshot(&pg.wss).await;
    assert_eq!(
        (snap.guard.memory_trips_total, snap.guard.refused_total),
        (1, 2)
    );
    assert_eq!(logs.count(TRIPPED), 1);
}

/// The guard counts the small-Buffer pool's chunks too: in `copy`, each connection's
/// copy pins a chunk once small messages have moved the pool on, and those chunks
/// alone take the wss past a limit its read pool stays under.
#[tokio::test]
async fn the_wss_memory_guard_counts_the_buffer_pools_chunks() {
    const CHUNK: u64 = 8 << 10;
    let limit = 2 * TCP_SLAB + 6 * CHUNK;
    let pg = Playground::start_each(
        HeadMode::Copy,
        HeadMode::Copy,
        |c| c.memory_limit = limit,
        |c| c.memory_limit = 0,
    )
    .await;
    let mut data = pg.open_direct().await;
    let mut held: Vec<DirectWs> = Vec::new();
    while !pg.snapshot(&pg.wss).await.guard.memory_tripped {
        assert!(held.len() < 40, "the guard never tripped");
        held.push(pg.open_direct().await);
        for _ in 0..3 {
            echo(&mut data, Message::binary(vec![2; 3000])).await;
        }
    }
    let snap = pg.snapshot(&pg.wss).await;
    let (reads, buffer) = (snap.pool("tcp").unwrap(), snap.pool("buffer").unwrap());
    assert!(reads.retained_bytes < limit, "{reads:#?}");
    assert!(
        buffer
            .slabs
            .iter()
            .filter(|c| !c.retainers.is_empty())
            .count()
            >= 6,
        "{buffer:#?}"
    );
    assert!(snap.totals.retained_bytes >= limit, "{:?}", snap.totals);
    let answer = upgrade_answer(pg.wss.addr).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
}

#[tokio::test]
async fn the_proxy_memory_guard_refuses_without_reaching_the_wss() {
    // The proxy keeps the TLS slabs of its upgrades; the wss keeps nothing.
    let limit = 4 * TLS_SLAB;
    let pg = Playground::start_each(
        HeadMode::Copy,
        HeadMode::Retain,
        |c| c.memory_limit = 0,
        |c| c.memory_limit = limit,
    )
    .await;
    let mut data = pg.open().await;
    let mut held = Vec::new();
    while !pg.snapshot(&pg.proxy).await.guard.memory_tripped {
        assert!(held.len() < 12, "the guard never tripped");
        held.push(pg.open().await);
        echo(&mut data, Message::binary(vec![2; TLS_SLAB as usize])).await;
    }
    let wss_reads = pg.snapshot(&pg.wss).await.pool("tcp").unwrap().reads_total;
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, UPGRADE.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(answer.contains("proxy: memory guard: "), "{answer}");
    let wss = pg.snapshot(&pg.wss).await;
    assert_eq!(
        wss.pool("tcp").unwrap().reads_total,
        wss_reads,
        "reached the wss"
    );
    assert!(!wss.guard.memory_tripped);
    // The data connection is served on.
    echo(&mut data, Message::binary(vec![3; 1000])).await;
    let snap = pg.snapshot(&pg.proxy).await;
    assert_eq!(
        (snap.guard.memory_trips_total, snap.guard.refused_total),
        (1, 1)
    );

    drop(held);
    drop(data);
    wait_until("the proxy's guard recovers", || async {
        !pg.snapshot(&pg.proxy).await.guard.memory_tripped
    })
    .await;
    let _ws = pg.open().await;
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_get_503_and_open_ones_are_served() {
    let logs = Logs::capture();
    let pg = Playground::start(HeadMode::Copy, HeadMode::Copy, |c| c.max_connections = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(pg.open().await);
    }
    for server in [&pg.proxy, &pg.wss] {
        let snap = pg.snapshot(server).await;
        assert_eq!(snap.guard.max_connections, 3);
        assert!(snap.guard.at_connection_cap, "{}", snap.role);
    }
    // Through the proxy: refused by the proxy, nothing reaches the wss.
    let wss_reads = pg.snapshot(&pg.wss).await.pool("tcp").unwrap().reads_total;
    for _ in 0..2 {
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, UPGRADE.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable"),
            "{answer}"
        );
        assert!(
            answer.contains("proxy: at the connection cap (3)"),
            "{answer}"
        );
    }
    let wss = pg.snapshot(&pg.wss).await;
    assert_eq!(wss.pool("tcp").unwrap().reads_total, wss_reads);
    // Straight to the wss.
    let answer = upgrade_answer(pg.wss.addr).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(
        answer.contains("wss: at the connection cap (3)"),
        "{answer}"
    );
    // The open ones are served on.
    for ws in &mut open {
        echo(ws, Message::text("still served")).await;
    }
    let (proxy, wss) = (pg.snapshot(&pg.proxy).await, pg.snapshot(&pg.wss).await);
    assert_eq!((proxy.guard.refused_total, wss.guard.refused_total), (2, 1));
    assert_eq!((proxy.connections.open, wss.connections.open), (3, 3));
    // One warning per server, however many are refused within 10 s.
    assert_eq!(
        logs.count(&["WARN", "at the connection cap (3): refusing"]),
        2,
        "{}",
        logs.text()
    );

    // One closes: a place frees up on both servers.
    open.pop().unwrap().close(None).await.unwrap();
    wait_until("a place frees up on both servers", || async {
        let proxy = pg.snapshot(&pg.proxy).await;
        let wss = pg.snapshot(&pg.wss).await;
        !proxy.guard.at_connection_cap && !wss.guard.at_connection_cap
    })
    .await;
    open.push(pg.open().await);
    assert!(pg.snapshot(&pg.proxy).await.guard.at_connection_cap);
}

#[tokio::test]
async fn a_wss_at_its_cap_answers_503_through_the_proxy() {
    let pg = Playground::start_each(
        HeadMode::Copy,
        HeadMode::Copy,
        |c| c.max_connections = 2,
        |c| c.max_connections = 0,
    )
    .await;
    let _a = pg.open().await;
    let _b = pg.open().await;
    let mut refused = pg.raw_proxy().await;
    let answer = exchange(&mut refused, UPGRADE.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(
        answer.contains("wss: at the connection cap (2)"),
        "{answer}"
    );
    let proxy = pg.snapshot(&pg.proxy).await;
    assert_eq!(
        (proxy.guard.max_connections, proxy.guard.at_connection_cap),
        (0, false)
    );
    wait_until("the proxy closed the refused connection", || async {
        pg.snapshot(&pg.proxy).await.connections.open == 2
    })
    .await;
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let pg = Playground::start(HeadMode::Copy, HeadMode::Copy, |_| {}).await;
    let (before, after, hard) = runtime::server::raise_open_file_limit().unwrap();
    let (soft, now_hard) = runtime::server::open_file_limit().unwrap();
    assert_eq!((soft, now_hard), (after, hard));
    assert!(after >= before);
    if hard != u64::MAX {
        assert_eq!(soft, hard, "raised to the hard limit");
    }
    let _ws = pg.open().await;
}
