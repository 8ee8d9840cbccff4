//! The snapshot tied to real memory: what it says a connection keeps is what the
//! allocator and the kernel see the process hold, and what comes back when it closes.
//!
//! The servers run in this test process, so its allocator and RSS are theirs; the
//! tests here run one at a time (one lock) so that none measures another's memory.

mod common;

use common::{expect_greeting, wait_until, Playground, BOUND};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// One test at a time measures this process.
static ALONE: Mutex<()> = Mutex::const_new(());

const SLAB: u64 = 1 << 20;
const READ: u64 = 64 << 10;

fn allocated(snap: &Snapshot) -> i64 {
    snap.process
        .allocator
        .allocated_bytes
        .expect("readable on Linux") as i64
}

fn rss(snap: &Snapshot) -> i64 {
    snap.process.rss_bytes.expect("readable on Linux") as i64
}

fn live_tcp(snap: &Snapshot) -> u64 {
    snap.pool("tcp").expect("a tcp pool").live_slabs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_slabs_raise_allocated_and_rss_by_their_size_and_come_back_when_closed() {
    const PINNING: u64 = 8;
    let _alone = ALONE.lock().await;
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |c| {
        c.tcp_slab_size = SLAB as usize;
        c.read_size = READ as usize;
    })
    .await;
    let mut data = pg.open_direct().await;
    let before = pg.snapshot(&pg.wss).await;
    // Each pinning connection's request lands in the current slab; the burst after it
    // fills that slab to its end (every page written) and moves the pool on.
    let burst = vec![0x5a; (SLAB + READ) as usize];
    let mut pinning = Vec::new();
    for _ in 0..PINNING {
        pinning.push(pg.open_direct().await);
        data.send(Message::binary(burst.clone())).await.unwrap();
        let echo = tokio::time::timeout(BOUND, data.next()).await.unwrap();
        assert_eq!(echo.unwrap().unwrap().len(), burst.len());
    }
    let pinned = pg.snapshot(&pg.wss).await;
    let held = pinned
        .pool("tcp")
        .unwrap()
        .slabs
        .iter()
        .filter(|s| s.retainers.iter().any(|r| &*r.part == "upgrade request"))
        .count() as u64;
    assert!(held >= PINNING, "slabs held by upgrade requests: {held}");
    let grew = allocated(&pinned) - allocated(&before);
    assert!(
        grew >= (PINNING * SLAB) as i64,
        "{PINNING} pinned slabs of {SLAB} bytes, but allocated grew by {grew}"
    );
    let rss_grew = rss(&pinned) - rss(&before);
    assert!(
        rss_grew >= (PINNING * (SLAB - READ)) as i64,
        "{PINNING} pinned slabs written to their ends, but RSS grew by {rss_grew}"
    );

    for mut ws in pinning {
        ws.close(None).await.unwrap();
    }
    data.close(None).await.unwrap();
    drop((data, burst));
    // Back within two slabs (the current one, and one the last burst may have begun).
    wait_until(
        "the pinned slabs freed, in the allocator and in RSS",
        || async {
            let now = pg.snapshot(&pg.wss).await;
            now.connections.open == 0
                && live_tcp(&now) <= 1
                && allocated(&now) - allocated(&before) < (2 * SLAB) as i64
                && rss(&pinned) - rss(&now) >= ((PINNING - 2) * (SLAB - READ)) as i64
        },
    )
    .await;
}

/// An upgrade request of `len` bytes (one long header pads it).
fn request_of(len: usize) -> Vec<u8> {
    let mut text = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nX-Pad: "
        .to_vec();
    text.resize(len - 4, b'p');
    text.extend_from_slice(b"\r\n\r\n");
    text
}

/// Opens a connection straight to the wss with `bytes` as its first write; returns
/// it once the `101` has come (the wss has kept what it keeps by then), unread beyond.
async fn upgrade_raw(pg: &Playground, bytes: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_keeps_exactly_the_request_and_drop_nothing_in_the_snapshot_and_the_allocator() {
    const PEERS: usize = 16;
    const LEN: usize = 32 << 10;
    let _alone = ALONE.lock().await;
    let request = request_of(LEN);
    let mut growth = Vec::new();
    for mode in [HeadMode::Copy, HeadMode::Drop] {
        let pg = Playground::start(mode, mode, |c| {
            c.tcp_slab_size = SLAB as usize;
            c.read_size = READ as usize;
            c.max_header_bytes = 2 * LEN;
        })
        .await;
        // A first connection makes the pool's first slab.
        drop(upgrade_raw(&pg, &request).await);
        wait_until("the first connection closed", || async {
            pg.snapshot(&pg.wss).await.connections.open == 0
        })
        .await;
        let before = pg.snapshot(&pg.wss).await;
        let mut open = Vec::new();
        for _ in 0..PEERS {
            open.push(upgrade_raw(&pg, &request).await);
        }
        let snap = pg.snapshot(&pg.wss).await;
        assert_eq!(snap.connections.open, PEERS as u64);
        let pinned = &snap.pinned_allocations;
        growth.push(allocated(&snap) - allocated(&before));
        match mode {
            HeadMode::Copy => {
                // Each copy is one allocation of exactly the request's length, kept
                // as that connection's upgrade request.
                assert_eq!(pinned.allocations.len(), PEERS, "{pinned:#?}");
                for a in &pinned.allocations {
                    assert_eq!(a.size, LEN as u64);
                    assert_eq!(a.kept.len(), 1);
                    assert_eq!(&*a.kept[0].part, "upgrade request");
                    assert_eq!(a.kept[0].bytes, LEN as u64);
                    assert_eq!(
                        &*a.kept[0].label,
                        &format!("upgrade request of connection {}", a.kept[0].connection)
                    );
                }
                assert_eq!(pinned.kept_bytes, (PEERS * LEN) as u64);
            }
            _ => {
                assert!(pinned.allocations.is_empty(), "{pinned:#?}");
                assert_eq!((pinned.kept_bytes, pinned.unattributed_parts), (0, 0));
            }
        }
        // No slab is retained in either mode.
        assert!(snap
            .pools
            .iter()
            .flat_map(|p| &p.slabs)
            .all(|s| s.retainers.is_empty()));
        drop(open);
        wait_until("the copies freed", || async {
            let now = pg.snapshot(&pg.wss).await;
            now.connections.open == 0 && now.pinned_allocations.allocations.is_empty()
        })
        .await;
    }
    // Copy grows the allocator by the copies (and little else); drop by far less.
    let (copy, dropped) = (growth[0], growth[1]);
    let expected = (PEERS * LEN) as i64;
    assert!(
        copy >= expected * 9 / 10 && copy < expected + (256 << 10),
        "{PEERS} copies of {LEN} bytes, but copy grew the allocator by {copy} bytes"
    );
    assert!(
        dropped < expected / 4,
        "drop keeps nothing, but it grew the allocator by {dropped} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_in_the_same_write_as_the_request_is_kept_as_the_head_and_answered() {
    let _alone = ALONE.lock().await;
    let request = request_of(600);
    let ping = common::client_frame(0x9, true, b"with the request");
    let both = [&request[..], &ping].concat();
    for mode in [HeadMode::Retain, HeadMode::Copy, HeadMode::CopyUnpooled] {
        let pg = Playground::start(mode, mode, |_| {}).await;
        let tcp = upgrade_raw(&pg, &both).await;
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            tcp,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        expect_greeting(&mut ws).await;
        // The ping came with the request: its pong is the first frame after the greeting.
        let answer = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
        assert_eq!(
            answer.unwrap().unwrap(),
            Message::Pong(b"with the request".to_vec().into()),
            "{mode}"
        );
        let snap = pg.snapshot(&pg.wss).await;
        // Views (of the read pool, or of the buffer pool for a pooled copy) are listed
        // by their slabs; a copy of its own by the registry.
        let parts: Vec<(String, u64)> = match mode {
            HeadMode::Retain | HeadMode::Copy => snap
                .pools
                .iter()
                .flat_map(|p| &p.slabs)
                .flat_map(|s| &s.retainers)
                .map(|r| (r.part.to_string(), r.bytes))
                .collect(),
            _ => snap
                .pinned_allocations
                .allocations
                .iter()
                .flat_map(|a| &a.kept)
                .map(|r| (r.part.to_string(), r.bytes))
                .collect(),
        };
        let sum = |name: &str| -> u64 {
            parts
                .iter()
                .filter(|(p, _)| p == name)
                .map(|(_, b)| b)
                .sum()
        };
        if mode == HeadMode::CopyUnpooled {
            // 600 + 22 bytes: under the registry's threshold, so unattributed.
            assert_eq!(
                snap.pinned_allocations.unattributed_bytes,
                both.len() as u64,
                "{mode}"
            );
        } else {
            assert_eq!(sum("upgrade request"), request.len() as u64, "{mode}");
            assert_eq!(sum("upgrade head"), ping.len() as u64, "{mode}");
        }
    }
}
