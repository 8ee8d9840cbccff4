//! The socket.io stack (`wss_stack: socketio`): socketioxide on warp, spoken to as a
//! socket.io client does (engine.io v4 over a websocket, `socketio_wire`), straight
//! and through the TLS proxy; what engine.io keeps of each socket's request, found
//! by the allocation registry, in each head mode; admission, echo and bad input.

mod common;

use std::net::SocketAddr;

use common::{exchange, wait_until, Playground, Server, BOUND};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot, Stack};
use socketio_wire::Packet;
use tokio::io::AsyncWriteExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A socket.io socket, connected to the default namespace.
struct Sio<S> {
    ws: WebSocketStream<S>,
    greeting: String,
}

/// The next packet the server sends (pings answered on the way), within the bound.
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Packet {
    loop {
        let message = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a packet within the bound")
            .expect("the socket open")
            .expect("a message");
        let Message::Text(text) = message else {
            continue;
        };
        match socketio_wire::parse(&text).expect("a socket.io packet") {
            Packet::Ping => ws.send(Message::text(socketio_wire::PONG)).await.unwrap(),
            packet => return packet,
        }
    }
}

/// Opens a socket.io socket over `io` (a socket.io client's handshake), with one
/// extra `cookie` header of `cookie` bytes when it is not 0; returns it greeted.
async fn sio_over<S: AsyncRead + AsyncWrite + Unpin>(io: S, host: &str, cookie: usize) -> Sio<S> {
    let url = format!("ws://{host}{}", socketio_wire::WEBSOCKET_PATH);
    let mut request = url.into_client_request().unwrap();
    if cookie > 0 {
        let value = format!("c={}", "k".repeat(cookie - 2));
        request
            .headers_mut()
            .insert("cookie", value.parse().unwrap());
    }
    let (mut ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::client_async(request, io))
        .await
        .expect("the upgrade within the bound")
        .expect("a websocket");
    assert!(matches!(next(&mut ws).await, Packet::Open { .. }));
    ws.send(Message::text(socketio_wire::CONNECT))
        .await
        .unwrap();
    let mut greeting = None;
    while greeting.is_none() {
        match next(&mut ws).await {
            Packet::Connected { .. } | Packet::Other => {}
            Packet::Event { name, data } if name == "hello" => {
                greeting = Some(data.as_str().unwrap().to_string())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    Sio {
        ws,
        greeting: greeting.unwrap(),
    }
}

async fn sio(addr: SocketAddr, cookie: usize) -> Sio<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    sio_over(tcp, &addr.to_string(), cookie).await
}

async fn socketio(mode: HeadMode, tweak: impl FnOnce(&mut runtime::config::Config)) -> Playground {
    Playground::start(mode, HeadMode::Drop, |c| {
        c.wss_stack = Stack::Socketio;
        tweak(c);
    })
    .await
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sio<S> {
    /// Sends a `message` event and returns what comes back as `message`.
    async fn echo(&mut self, data: &str) -> serde_json::Value {
        let packet = socketio_wire::text_event("message", data);
        self.ws.send(Message::text(packet)).await.unwrap();
        loop {
            if let Packet::Event { name, data } = next(&mut self.ws).await {
                if name == "message" {
                    return data;
                }
            }
        }
    }
}

/// The wss binary on the socketio stack, as its own process, in `mode`.
fn wss_process(dir: &std::path::Path, mode: HeadMode) -> Server {
    Server::wss(
        dir,
        &[
            ("wss_stack", "socketio"),
            ("wss_head", mode.as_str()),
            // Small websocket read buffers (socketioxide's own default), so that each
            // socket's own cost does not drown the read buffer its request pins.
            ("ws_read_buffer_size", "4096"),
        ],
    )
}

/// What engine.io keeps of each socket's request, measured on the wss binary as its
/// own process (4 KiB websocket read buffers): in `retain` every socket's header
/// values keep hyper's read buffer
/// (one allocation of 8 KiB or more each, found by the registry, with the cookie
/// among the parts), raising the allocator and RSS by about that per socket over
/// `drop`, which keeps only the handshake's few bytes; `copy` keeps copies (each
/// cookie its own allocation, smaller than the buffer).
/// Closing gives everything back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_pins_hypers_read_buffer_per_socket_copy_and_drop_only_their_copies() {
    const N: usize = 96;
    // Most of an 8 KiB read buffer, so that the pinned buffer's pages are all
    // written (RSS sees them) and well above what copies cost.
    const COOKIE: usize = 6000;
    let _ = runtime::server::raise_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let mut grew = Vec::new();
    for mode in [HeadMode::Retain, HeadMode::Copy, HeadMode::Drop] {
        let wss = wss_process(dir.path(), mode);
        let before = wss.snapshot().await;
        let before_rss = wss.settled_rss().await as i64;
        let mut open = Vec::new();
        for _ in 0..N {
            let sio = sio(wss.addr, COOKIE).await;
            assert!(
                sio.greeting.ends_with(&format!("(head mode {mode})")),
                "{}",
                sio.greeting
            );
            open.push(sio);
        }
        let rss = wss.settled_rss().await as i64 - before_rss;
        let snap = wss.snapshot().await;
        assert_eq!(snap.connections.open, N as u64, "{mode}");
        assert_eq!(snap.settings.stack, Some(Stack::Socketio));
        let allocated = |s: &Snapshot| s.process.allocator.allocated_bytes.unwrap() as i64;
        grew.push((mode, allocated(&snap) - allocated(&before), rss));
        let pinned = common::pinned_by_connection(&snap);
        let kept = &snap.pinned_allocations;
        match mode {
            HeadMode::Retain => {
                assert_eq!(pinned.len(), N, "every socket pins: {kept:#?}");
                for (connection, parts) in &pinned {
                    assert!(
                        parts
                            .iter()
                            .any(|(p, size)| p == "header cookie" && *size >= 8192),
                        "connection {connection}: {parts:?}"
                    );
                }
                assert!(kept.pinned_bytes >= (N * 8192) as u64);
            }
            HeadMode::Copy => {
                // A copied cookie is an allocation of its own (the registry tracks
                // it at 4 KiB or more): it holds itself, nothing larger.
                for a in &kept.allocations {
                    assert!(
                        a.size < 8192 && a.kept_bytes * 10 >= a.size * 9,
                        "a copy pins only itself: {a:#?}"
                    );
                }
                let cookies = kept.kept_bytes + kept.unattributed_bytes;
                assert!(cookies >= (N * COOKIE) as u64, "{kept:#?}");
            }
            _ => {
                assert!(pinned.is_empty(), "{kept:#?}");
                // The handshake's headers and the query: under 128 bytes a socket.
                assert!(kept.unattributed_bytes < (N * 128) as u64, "{kept:#?}");
                assert!(
                    kept.unattributed_bytes > 0,
                    "engine.io still keeps a little"
                );
            }
        }
        drop(open);
        wait_until("every socket closed and its parts let go", || async {
            let now = wss.snapshot().await;
            now.connections.open == 0
                && now.pinned_allocations.kept_bytes == 0
                && now.pinned_allocations.unattributed_parts == 0
        })
        .await;
    }
    for (mode, allocated, rss) in &grew {
        println!("{mode}: {N} sockets grew the allocator by {allocated} and RSS by {rss} bytes");
    }
    // Against `drop`, which keeps nothing of the cookie: `retain` holds a read buffer
    // per socket, `copy` the copied cookie (less than the buffer).
    let (retain, copy, dropped) = (&grew[0], &grew[1], &grew[2]);
    let buffers = (N * 8192) as i64;
    let copies = (N * COOKIE) as i64;
    assert!(
        retain.1 - dropped.1 >= buffers * 3 / 4,
        "{N} read buffers kept in retain: the allocator grew {} (drop: {})",
        retain.1,
        dropped.1
    );
    assert!(
        retain.2 - dropped.2 >= buffers / 2,
        "{N} read buffers kept in retain: RSS grew {} (drop: {})",
        retain.2,
        dropped.2
    );
    assert!(
        copy.1 - dropped.1 >= copies * 3 / 4 && copy.1 < retain.1,
        "{N} copies of {COOKIE} bytes: the allocator grew {} (drop: {}, retain: {})",
        copy.1,
        dropped.1,
        retain.1
    );
}

/// Through the TLS proxy, as the clients come: the greeting, the echo, and a switch
/// of the head mode at run time applying to the sockets opened after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_sockets_are_greeted_echoed_and_follow_a_switch_of_the_head_mode() {
    let pg = socketio(HeadMode::Retain, |_| {}).await;
    let host = format!("localhost:{}", pg.proxy.addr.port());
    let mut old = sio_over(pg.raw_proxy().await, &host, 1000).await;
    assert!(
        old.greeting.starts_with("hello from wss, connection "),
        "{}",
        old.greeting
    );
    assert_eq!(
        old.echo("ping through the proxy").await,
        "ping through the proxy"
    );
    let body = serde_json::json!({ "head_mode": "copy" });
    let answer = client::fetch::put_json(pg.wss.snapshot_addr, "/settings", &body)
        .await
        .unwrap();
    assert_eq!(answer["head_mode"], "copy");
    let mut new = sio_over(pg.raw_proxy().await, &host, 1000).await;
    assert!(
        new.greeting.ends_with("(head mode copy)"),
        "{}",
        new.greeting
    );
    let snap = pg.snapshot(&pg.wss).await;
    let by_mode = &snap.connections.open_by_head_mode;
    assert_eq!((by_mode.retain, by_mode.copy), (1, 1));
    let pinned = common::pinned_by_connection(&snap);
    assert_eq!(
        pinned.len(),
        1,
        "only the socket opened in retain pins: {pinned:?}"
    );
    assert_eq!(new.echo("after the switch").await, "after the switch");
}

/// The guard and the cap answer a new session 503 before any handshake; the
/// sockets open are served on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_new_session_gets_503_and_open_sockets_are_served() {
    let pg = socketio(HeadMode::Retain, |c| c.max_connections = 2).await;
    let mut a = sio(pg.wss.addr, 0).await;
    let _b = sio(pg.wss.addr, 0).await;
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        socketio_wire::WEBSOCKET_PATH
    );
    let answer = exchange(&mut tcp, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("connection cap"), "{answer}");
    assert_eq!(a.echo("still served").await, "still served");
    let snap = pg.snapshot(&pg.wss).await;
    assert_eq!((snap.connections.open, snap.guard.refused_total), (2, 1));
}

/// Bad input on this stack: requests off the engine.io path, HTTP that is not
/// HTTP, engine.io garbage over the websocket, a polling body over the limit and a
/// storm of pings. Each gets an answer or a close; the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_answer_or_a_close_and_the_server_serves_on() {
    let pg = socketio(HeadMode::Retain, |c| c.max_message_size = 64 << 10).await;
    let addr = pg.wss.addr;
    // Off the engine.io path: 404 saying where socket.io is.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut tcp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    assert!(answer.contains("/socket.io/"), "{answer}");
    // Not HTTP: hyper's 400.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut tcp, b"\x00\x01garbage\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    // Long-polling, answered as socketioxide answers it: an open packet.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let polling =
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(&mut tcp, polling).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let sid = answer
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an open packet with a sid")
        .to_string();
    // A polling body over max_payload (max_message_size): refused, not read whole.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let big = 1 << 20;
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: text/plain\r\nContent-Length: {big}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let _ = tcp.write_all(&vec![b'4'; big]).await;
    let answer = common::read_to_close(&mut tcp).await;
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "a 4xx for a body over the limit: {answer}"
    );
    // Garbage packets and a ping storm over a websocket: the socket may be closed,
    // the server must not be.
    for garbage in ["9garbage", "4", "42[", "40/nowhere,", "6", ""] {
        let mut sio = sio(addr, 0).await;
        let _ = sio.ws.send(Message::text(garbage)).await;
        let _ = sio.ws.send(Message::binary(vec![0xff; 32])).await;
    }
    let mut storm = sio(addr, 0).await;
    for _ in 0..2000 {
        if storm.ws.send(Message::text("2")).await.is_err() {
            break;
        }
    }
    // Served on: a new socket is greeted and echoed.
    let mut fine = sio(addr, 0).await;
    assert_eq!(fine.echo("still here").await, "still here");
    let snap = pg.snapshot(&pg.wss).await;
    assert!(snap.connections.open >= 1);
}

/// Ctrl-C ends the socket.io wss cleanly with sockets open: every socket is closed
/// and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_closes_every_socket_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let wss = wss_process(dir.path(), HeadMode::Retain);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(sio(wss.addr, 0).await);
    }
    let (code, lines) = wss.program.interrupt();
    assert_eq!(code, Some(0), "{lines:#?}");
    for mut sio in open {
        // The server's close (engine.io `close`, socket.io `disconnect`, or the
        // websocket's end) comes within the bound.
        let ended = tokio::time::timeout(BOUND, async {
            loop {
                match sio.ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a socket left open after Ctrl-C");
    }
}
