//! Node core's small-Buffer pool, measured as a user would: the `wss` binary as its
//! own process, once per head mode. Long-lived copies of small upgrade requests
//! interleave with short-lived small messages (each a pooled buffer, as in Node's
//! `ws`): `copy` then keeps about a pool chunk alive per connection, `copy_unpooled`
//! only the small copies, `drop` nothing. RSS from /proc, the allocator's figures
//! and the chunks from the wss's snapshot; each mode against `drop`.

use common::{Server, BOUND};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

mod common;

/// Pinning connections per mode.
const N: usize = 400;
const CHUNK: u64 = 8 << 10;
/// A small message: under the pool's threshold (4096), three of them pass a chunk.
const MESSAGE: usize = 3000;

/// What one mode measured, from the wss's snapshots before and after the pinning.
struct Grew {
    allocated: i64,
    rss: i64,
    /// Buffer pool chunks that hold a kept copy.
    kept_chunks: usize,
    after: Snapshot,
}

/// A plain upgrade request of about 200 bytes, read by the wss in one read.
const REQUEST: &[u8] = b"GET /pin HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nUser-Agent: buffer-pool-test\r\n\r\n";

/// A websocket upgraded by hand, kept open (no client-side buffers beyond the socket).
async fn pin(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(REQUEST).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::time::timeout(BOUND, tcp.read_exact(&mut byte))
            .await
            .expect("the 101 within the bound")
            .unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{head:?}");
    tcp
}

async fn run(mode: HeadMode) -> Grew {
    let dir = tempfile::tempdir().unwrap();
    let wss = Server::wss(
        dir.path(),
        &[
            ("wss_echo", "true"),
            ("wss_head", mode.as_str()),
            ("buffer_pool_size", "8192"),
            ("buffer_pool_threshold", "4096"),
        ],
    );
    let url = format!("ws://{}/", wss.addr);
    let tcp = TcpStream::connect(wss.addr).await.unwrap();
    let (mut data, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let _greeting = data.next().await.unwrap().unwrap();
    let before_rss = wss.settled_rss().await as i64;
    let before = wss.snapshot().await;
    let mut pinning = Vec::with_capacity(N);
    for _ in 0..N {
        pinning.push(pin(wss.addr).await);
        // Three small messages move the pool past the copy just made.
        for _ in 0..3 {
            data.send(Message::binary(vec![0x6b; MESSAGE]))
                .await
                .unwrap();
            let echo = tokio::time::timeout(BOUND, data.next()).await.unwrap();
            assert_eq!(echo.unwrap().unwrap().len(), MESSAGE);
        }
    }
    let rss = wss.settled_rss().await as i64 - before_rss;
    let after = wss.snapshot().await;
    assert_eq!(after.connections.open, N as u64 + 1, "{mode}");
    let allocated = |s: &Snapshot| s.process.allocator.allocated_bytes.unwrap() as i64;
    let buffer = after.pool("buffer").expect("the buffer pool");
    let kept_chunks = buffer
        .slabs
        .iter()
        .filter(|s| !s.retainers.is_empty())
        .count();
    Grew {
        allocated: allocated(&after) - allocated(&before),
        rss,
        kept_chunks,
        after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_copies_keep_a_chunk_each_unpooled_copies_only_themselves_and_drop_nothing() {
    let _ = runtime::server::raise_open_file_limit();
    let drop = run(HeadMode::Drop).await;
    let unpooled = run(HeadMode::CopyUnpooled).await;
    let pooled = run(HeadMode::Copy).await;
    for (name, g) in [
        ("drop", &drop),
        ("copy_unpooled", &unpooled),
        ("copy", &pooled),
    ] {
        println!(
            "{name}: {N} connections grew the allocator by {} and RSS by {} bytes; {} chunks kept",
            g.allocated, g.rss, g.kept_chunks
        );
    }
    let chunks = N as i64 * CHUNK as i64;

    // copy: a chunk per connection, each found by the registry as an 8 KiB allocation.
    assert!(
        pooled.kept_chunks >= N,
        "{N} copies keep {} chunks",
        pooled.kept_chunks
    );
    let pinned = &pooled.after.pinned_allocations.allocations;
    let chunk_allocations = pinned.iter().filter(|a| a.size == CHUNK).count();
    assert!(
        chunk_allocations >= N,
        "{chunk_allocations} chunk allocations pinned"
    );
    assert!(
        pooled.allocated - drop.allocated >= chunks * 9 / 10,
        "{N} chunks of {CHUNK} bytes pinned, but copy grew the allocator by {} (drop: {})",
        pooled.allocated,
        drop.allocated
    );
    assert!(
        pooled.rss - drop.rss >= chunks / 2,
        "{N} chunks written, but copy grew RSS by {} (drop: {})",
        pooled.rss,
        drop.rss
    );

    // copy_unpooled: the copies alone (each registered where it lies), far below a
    // chunk each; no chunk kept. (The allocator moves by a few hundred KB between
    // runs, more than the copies' 400 x 224 bytes, so only the upper bound is checked.)
    assert_eq!(unpooled.kept_chunks, 0);
    let kept = &unpooled.after.pinned_allocations;
    assert!(
        kept.unattributed_parts > N as u64 && kept.allocations.is_empty(),
        "each small copy kept on its own: {kept:#?}"
    );
    // Every pinning connection's copy, and the data connection's (its own request).
    assert!(kept.unattributed_bytes > (N * REQUEST.len()) as u64);
    assert!(
        unpooled.allocated - drop.allocated < chunks / 8,
        "{N} copies of {} bytes, but copy_unpooled grew the allocator by {} (drop: {})",
        REQUEST.len(),
        unpooled.allocated,
        drop.allocated
    );
    // RSS moves by a few hundred KB between runs (tasks, sockets): the chunks' RSS
    // is checked against both other modes, the small copies by the allocator alone.
    assert!(
        pooled.rss - unpooled.rss >= chunks / 2,
        "copy grew RSS by {}, copy_unpooled by {}: the chunks should be the difference",
        pooled.rss,
        unpooled.rss
    );
    assert_eq!(drop.kept_chunks, 0);
}
