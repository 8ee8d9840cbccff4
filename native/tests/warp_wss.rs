//! The wss on the warp stack (`wss_stack: warp`): a `warp::ws()` route on hyper, real
//! sockets on 127.0.0.1, through the slab TLS proxy and directly. What its head modes
//! keep is found in the snapshot's `pinned_allocations`, by pointer.

mod common;

use std::time::{Duration, Instant};

use common::{exchange, read_all, wait_until, Playground, BOUND, UPGRADE};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot, Stack};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// hyper's read buffer: the allocation a kept header value lies in.
const HYPER_BUFFER: u64 = 8192;
/// tungstenite's default read buffer: the allocation a kept first message lies in.
const TUNGSTENITE_BUFFER: u64 = 128 << 10;

/// A playground whose wss is on the warp stack (the proxy stays on the slab stack).
async fn warp_playground(
    mode: HeadMode,
    tweak: impl FnOnce(&mut runtime::config::Config),
) -> Playground {
    Playground::start(mode, HeadMode::Copy, |c| {
        c.wss_stack = Stack::Warp;
        tweak(c);
    })
    .await
}

/// A websocket straight to the wss, and the connection id its greeting names.
async fn open_direct(pg: &Playground) -> (common::DirectWs, u64) {
    let tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let url = format!("ws://{}/", pg.wss.addr);
    let (mut ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::client_async(url, tcp))
        .await
        .unwrap()
        .unwrap();
    let id = greeting_id(&mut ws).await;
    (ws, id)
}

/// Reads the greeting and returns the connection id it names.
async fn greeting_id<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> u64 {
    let greeting = next(ws).await;
    let text = greeting.to_text().unwrap().to_owned();
    let rest = text
        .strip_prefix("hello from wss, connection ")
        .unwrap_or_else(|| panic!("not the greeting: {text}"));
    assert!(rest.contains("(head mode "), "{text}");
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// The next message, within [`BOUND`].
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    tokio::time::timeout(BOUND, ws.next())
        .await
        .expect("a message within the bound")
        .expect("the websocket is open")
        .expect("a message")
}

/// Sends `message` and checks the echo is the same.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, message: Message) {
    ws.send(message.clone()).await.unwrap();
    assert_eq!(next(ws).await, message);
}

/// The seed's traffic: a 100-byte first message, then 10 of 16 KiB (echoed).
async fn traffic<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, id: u64) {
    let first = format!("first message of connection {id:<10}").repeat(3);
    echo(ws, Message::text(format!("{first:<100}"))).await;
    for i in 0..10u8 {
        echo(ws, Message::binary(vec![i; 16 << 10])).await;
    }
}

/// The pinned allocations that hold parts of connection `id`: (size, part) pairs.
fn pinned_of(snapshot: &Snapshot, id: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for allocation in &snapshot.pinned_allocations.allocations {
        for kept in allocation.kept.iter().filter(|k| k.connection == id) {
            out.push((allocation.size, kept.part.to_string()));
        }
    }
    out
}

/// Whether a good websocket still opens and echoes, directly.
async fn still_serving(pg: &Playground) {
    let (mut ws, _) = open_direct(pg).await;
    echo(&mut ws, Message::text("still here")).await;
}

#[tokio::test]
async fn greets_and_echoes_directly_and_through_the_slab_proxy() {
    let pg = warp_playground(HeadMode::Retain, |_| {}).await;
    let (mut direct, id) = open_direct(&pg).await;
    assert!(id > 0);
    echo(&mut direct, Message::text("hello, warp")).await;
    echo(&mut direct, Message::binary(vec![7u8; 70_000])).await;
    // A ping is answered by tungstenite.
    direct
        .send(Message::Ping(b"ping!"[..].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut direct).await, Message::Pong(b"ping!"[..].into()));

    let mut proxied = pg.open().await;
    echo(&mut proxied, Message::text("through the TLS proxy")).await;
    echo(&mut proxied, Message::binary(vec![1u8; 20_000])).await;

    // Closes properly: the close is acknowledged, and the connection counted closed.
    direct.close(None).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(BOUND, direct.next()).await.unwrap(),
        None | Some(Ok(Message::Close(_)))
    ));
    let state = pg.wss.state.clone();
    wait_until("the closed websocket is counted closed", || {
        let state = state.clone();
        async move { state.connections.open() == 1 }
    })
    .await;
    let snapshot = pg.snapshot(&pg.wss).await;
    assert_eq!(snapshot.settings.stack, Some(Stack::Warp));
}

#[tokio::test]
async fn retain_pins_hyper_s_and_tungstenite_s_buffers_per_connection_and_copy_and_drop_do_not() {
    let pg = warp_playground(HeadMode::Retain, |c| c.wss_echo = true).await;
    let mut retained = Vec::new();
    for _ in 0..3 {
        let (mut ws, id) = open_direct(&pg).await;
        traffic(&mut ws, id).await;
        retained.push((ws, id));
    }
    let snapshot = pg.snapshot(&pg.wss).await;
    for (_, id) in &retained {
        let pinned = pinned_of(&snapshot, *id);
        let headers: Vec<_> = pinned
            .iter()
            .filter(|(_, p)| p.starts_with("header "))
            .collect();
        assert!(
            headers.iter().any(|(_, p)| p == "header sec-websocket-key"),
            "connection {id}: {pinned:?}"
        );
        assert!(
            headers.iter().all(|(size, _)| *size >= HYPER_BUFFER),
            "connection {id}: header parts lie in hyper's read buffer: {pinned:?}"
        );
        let first: Vec<_> = pinned
            .iter()
            .filter(|(_, p)| p == "first message")
            .collect();
        assert_eq!(first.len(), 1, "connection {id}: {pinned:?}");
        assert!(
            first[0].0 >= TUNGSTENITE_BUFFER,
            "connection {id}: the first message lies in tungstenite's read buffer: {pinned:?}"
        );
    }
    // Each connection's parts lie in its own buffers.
    let first_allocations: std::collections::BTreeSet<u64> = snapshot
        .pinned_allocations
        .allocations
        .iter()
        .filter(|a| a.kept.iter().any(|k| &*k.part == "first message"))
        .map(|a| a.id)
        .collect();
    assert_eq!(first_allocations.len(), retained.len());

    // The run-time switch applies to new connections; the open ones keep theirs.
    for (mode, name) in [(HeadMode::Copy, "copy"), (HeadMode::Drop, "drop")] {
        client::fetch::put_json(
            pg.wss.snapshot_addr,
            "/settings",
            &serde_json::json!({ "head_mode": name }),
        )
        .await
        .unwrap();
        let (mut ws, id) = open_direct(&pg).await;
        traffic(&mut ws, id).await;
        let snapshot = pg.snapshot(&pg.wss).await;
        assert_eq!(
            pinned_of(&snapshot, id),
            vec![],
            "{mode}: nothing of connection {id} in a tracked allocation"
        );
        let parts = pg
            .wss
            .state
            .kept
            .entries()
            .into_iter()
            .filter(|p| p.connection() == id)
            .count();
        match mode {
            // Owned copies, small: unattributed.
            HeadMode::Copy => {
                assert!(parts > 1, "copy keeps the headers and the first message");
                assert!(snapshot.pinned_allocations.unattributed_parts >= parts as u64);
            }
            _ => assert_eq!(parts, 0, "drop keeps nothing"),
        }
        for (_, id) in &retained {
            assert!(
                !pinned_of(&snapshot, *id).is_empty(),
                "retained {id} still pinned"
            );
        }
        assert_eq!(
            snapshot.connections.open_by_head_mode.retain,
            retained.len() as u64
        );
        drop(ws);
    }

    // Connections that end release what they kept.
    drop(retained);
    let state = pg.wss.state.clone();
    wait_until("every kept part is released", || {
        let state = state.clone();
        async move { state.connections.open() == 0 && state.kept.is_empty() }
    })
    .await;
    let snapshot = pg.snapshot(&pg.wss).await;
    assert!(snapshot.pinned_allocations.allocations.is_empty());
}

#[tokio::test]
async fn a_4096_byte_read_buffer_pins_4_kib_with_the_first_message_not_128() {
    let pg = warp_playground(HeadMode::Retain, |c| c.ws_read_buffer_size = 4096).await;
    let (mut ws, id) = open_direct(&pg).await;
    traffic(&mut ws, id).await;
    // Through the proxy too: the upgrade taken below warp::ws() serves the same.
    let mut proxied = pg.open().await;
    echo(&mut proxied, Message::text("hello below warp")).await;

    let snapshot = pg.snapshot(&pg.wss).await;
    let pinned = pinned_of(&snapshot, id);
    let first: Vec<_> = pinned
        .iter()
        .filter(|(_, p)| p == "first message")
        .collect();
    assert_eq!(first.len(), 1, "{pinned:?}");
    assert!(
        (4096..16 << 10).contains(&first[0].0),
        "the first message keeps a ~4 KiB buffer: {pinned:?}"
    );
    // The headers still pin hyper's buffer: the read buffer is tungstenite's alone.
    assert!(pinned
        .iter()
        .any(|(size, p)| p.starts_with("header ") && *size >= HYPER_BUFFER));
}

/// Sends a websocket upgrade by hand and returns the whole answer.
async fn raw_upgrade(pg: &Playground) -> String {
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    let answer = read_all(&mut tcp).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_connection_cap_and_the_memory_guard_answer_503() {
    let pg = warp_playground(HeadMode::Retain, |c| c.max_connections = 1).await;
    let (mut first, _) = open_direct(&pg).await;
    let answer = raw_upgrade(&pg).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("at the connection cap (1)"), "{answer}");
    // The open one is served on.
    echo(&mut first, Message::text("still served")).await;
    drop(first);
    let state = pg.wss.state.clone();
    wait_until("the first websocket is closed", || {
        let state = state.clone();
        async move { state.connections.open() == 0 }
    })
    .await;
    still_serving(&pg).await;

    let pg = warp_playground(HeadMode::Retain, |c| c.memory_limit = 1).await;
    let answer = raw_upgrade(&pg).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("memory guard") && answer.contains("allocated memory"),
        "{answer}"
    );
    assert!(pg.snapshot(&pg.wss).await.guard.memory_tripped);
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_the_wss_serves_on() {
    let pg = warp_playground(HeadMode::Retain, |c| c.max_message_size = 1000).await;

    // A plain request: 426 with the reason.
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut tcp, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(
        answer.contains("this is the playground's websocket server: connect with a websocket"),
        "{answer}"
    );
    still_serving(&pg).await;

    // An upgrade warp::ws() refuses: its own 400.
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let bad = UPGRADE.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let answer = exchange(&mut tcp, bad.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // Another method: warp's 405.
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut tcp, UPGRADE.replacen("GET", "PUT", 1).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    // A head over max_header_bytes: hyper's 431.
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let big = UPGRADE.replace(
        "Host: localhost\r\n",
        &format!(
            "Host: localhost\r\nX-Big: {}\r\n",
            "b".repeat(pg.config.max_header_bytes)
        ),
    );
    let answer = exchange(&mut tcp, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // Garbage: hyper's 400.
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut tcp, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    still_serving(&pg).await;

    // Headers too slow: closed after header_timeout_ms.
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: loc").await.unwrap();
    let _ = read_all(&mut tcp).await;
    let took = started.elapsed();
    let timeout = Duration::from_millis(pg.config.header_timeout_ms);
    assert!(
        took >= timeout - Duration::from_millis(100) && took < BOUND,
        "closed after {took:?}, the header timeout is {timeout:?}"
    );
    still_serving(&pg).await;

    // A message above max_message_size: closed with 1009.
    let (mut ws, _) = open_direct(&pg).await;
    ws.send(Message::binary(vec![0u8; 2000])).await.unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close 1009, got {other:?}"),
    }
    still_serving(&pg).await;
    let state = pg.wss.state.clone();
    wait_until(
        "only the good websockets were counted, and all closed",
        || {
            let state = state.clone();
            async move { state.connections.open() == 0 }
        },
    )
    .await;
}

#[tokio::test]
async fn shutdown_closes_open_websockets_and_finishes() {
    let pg = warp_playground(HeadMode::Retain, |_| {}).await;
    let (mut on_warp, _) = open_direct(&pg).await;
    let mut proxied = pg.open().await;
    // A connection still in HTTP (headers not finished).
    let mut slow = TcpStream::connect(pg.wss.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    wait_until("both websockets are open", || async {
        pg.wss.state.connections.open() == 2
    })
    .await;

    pg.shutdown.trigger();
    assert!(pg.shutdown.finish(BOUND).await, "every task ended");
    match tokio::time::timeout(BOUND, on_warp.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close 1001, got {other:?}"),
    }
    // The proxied one ends too (the proxy is shut down as well).
    loop {
        match tokio::time::timeout(BOUND, proxied.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        }
    }
    let _ = read_all(&mut slow).await;
    assert_eq!(pg.wss.state.connections.open(), 0);
    assert!(pg.wss.state.kept.is_empty());
}
