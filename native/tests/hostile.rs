//! Bad input and bad luck: each leaves both servers serving and their slabs accounted for.

mod common;

use std::time::{Duration, Instant};

use common::{
    client_frame, connect_unread, exchange, read_to_close, wait_until, Playground, UPGRADE,
};
use snapshot::HeadMode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Both servers still take websockets, and no slab beyond the current ones is held.
async fn still_serving(pg: &Playground) {
    let ws = pg.open().await;
    drop(ws);
    wait_until(
        "no connection left open and at most the current slabs live",
        || async {
            let mut ok = true;
            for server in [&pg.proxy, &pg.wss] {
                let snap = pg.snapshot(server).await;
                ok &= snap.connections.open == 0;
                ok &= snap
                    .pools
                    .iter()
                    .all(|p| p.live_slabs <= 1 && p.slabs.iter().all(|s| s.retainers.is_empty()));
            }
            ok
        },
    )
    .await;
}

async fn playground() -> Playground {
    Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await
}

#[tokio::test]
async fn a_malformed_request_gets_400_from_both_servers() {
    let pg = playground().await;
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut wss, b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("malformed request"), "{answer}");
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, b"\x00\x01garbage\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    still_serving(&pg).await;
}

#[tokio::test]
async fn a_bad_upgrade_is_refused_with_a_reason() {
    let pg = playground().await;
    let no_key = UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let old_version = UPGRADE.replace("Version: 13", "Version: 8");
    let h2c = UPGRADE.replace("Upgrade: websocket", "Upgrade: h2c");
    for (request, status, reason) in [
        (no_key.as_str(), "400", "Sec-WebSocket-Key"),
        (old_version.as_str(), "426", "Version must be 13"),
        (h2c.as_str(), "400", "only websocket"),
        (
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "426",
            "connect with a websocket",
        ),
    ] {
        // Straight to the wss, and through the proxy (which forwards the answer).
        let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
        let answer = exchange(&mut wss, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains(reason), "{answer}");
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "via proxy: {answer}"
        );
    }
    still_serving(&pg).await;
}

#[tokio::test]
async fn an_oversized_header_block_gets_431() {
    let pg = playground().await;
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut wss, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut wss, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    still_serving(&pg).await;
}

#[tokio::test]
async fn headers_sent_byte_by_byte_then_stalled_are_closed_after_the_timeout() {
    let pg = playground().await;
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    let mut proxy = pg.raw_proxy().await;
    for byte in UPGRADE.as_bytes()[..20].iter() {
        wss.write_all(&[*byte]).await.unwrap();
        proxy.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Then nothing: both answer 408 and close once header_timeout_ms (1.5 s) is up.
    let answer = read_to_close(&mut wss).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let answer = read_to_close(&mut proxy).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    still_serving(&pg).await;
}

#[tokio::test]
async fn a_client_that_vanishes_mid_frame_is_cleaned_up() {
    let pg = playground().await;
    let mut proxy = pg.raw_proxy().await;
    proxy.write_all(UPGRADE.as_bytes()).await.unwrap();
    // Half of a masked 1000-byte binary frame, then the socket is dropped.
    let mut frame = vec![0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4];
    frame.extend(std::iter::repeat_n(0u8, 500));
    proxy.write_all(&frame).await.unwrap();
    wait_until("the proxy counts the connection", || async {
        pg.snapshot(&pg.proxy).await.connections.open == 1
    })
    .await;
    drop(proxy);
    still_serving(&pg).await;
}

#[tokio::test]
async fn the_upstream_down_gets_502_and_the_proxy_keeps_serving() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |c| {
        c.proxy_target.port = closed
    })
    .await;
    for _ in 0..3 {
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, UPGRADE.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway"), "{answer}");
        assert!(answer.contains("unreachable"), "{answer}");
    }
    // A refused connection's place is given back once its task ends, just after
    // the answer went out: wait for it.
    wait_until("the refused connections' places given back", || async {
        pg.snapshot(&pg.proxy).await.connections.open == 0
    })
    .await;
    let snap = pg.snapshot(&pg.proxy).await;
    assert_eq!(snap.connections.failed_total, 3);
    assert!(snap
        .pools
        .iter()
        .all(|p| p.slabs.iter().all(|s| s.retainers.is_empty())));
}

#[tokio::test]
async fn garbage_instead_of_a_tls_handshake_is_dropped() {
    let pg = playground().await;
    let mut raw = TcpStream::connect(pg.proxy.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let _ = read_to_close(&mut raw).await;
    wait_until("the failed handshake is counted", || async {
        pg.snapshot(&pg.proxy).await.connections.failed_total >= 1
    })
    .await;
    still_serving(&pg).await;
}

#[tokio::test]
async fn protocol_violations_close_the_websocket_with_a_code() {
    let pg = playground().await;
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    wss.write_all(UPGRADE.as_bytes()).await.unwrap();
    // An unmasked client frame: the server answers close 1002 and hangs up.
    wss.write_all(&[0x82, 0x02, 0xAA, 0xBB]).await.unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(
        common::BOUND,
        tokio::io::AsyncReadExt::read_to_end(&mut wss, &mut all),
    )
    .await;
    let close = all.windows(4).position(|w| w == [0x88, w[1], 0x03, 0xea]);
    assert!(close.is_some(), "close 1002 expected in {all:?}");
    still_serving(&pg).await;
}

/// Socket reads the wss has made so far.
async fn wss_reads(pg: &Playground) -> u64 {
    pg.snapshot(&pg.wss).await.pool("tcp").unwrap().reads_total
}

#[tokio::test]
async fn request_smuggling_shapes_get_400_and_are_never_forwarded() {
    let pg = playground().await;
    let post = |headers: &str, body: &str| {
        format!("POST /submit HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n{body}")
    };
    let smuggled = "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let shapes = [
        (
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                smuggled,
            ),
            "Content-Length together with Transfer-Encoding",
        ),
        (
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
                smuggled,
            ),
            "Content-Length together with Transfer-Encoding",
        ),
        (
            post("Content-Length: 6\r\nContent-Length: 40\r\n", smuggled),
            "two different Content-Length values",
        ),
        (
            post("Content-Length: 6, 40\r\n", smuggled),
            "two different Content-Length values",
        ),
        (
            post("Content-Length: 6x\r\n", "abcdef"),
            "Content-Length is not a number",
        ),
        (
            post("Content-Length: -1\r\n", ""),
            "Content-Length is not a number",
        ),
        (
            post("Content-Length:\r\n", ""),
            "Content-Length is not a number",
        ),
        (
            post("Transfer-Encoding: chunked, identity\r\n", smuggled),
            "Transfer-Encoding must end with a single chunked",
        ),
        (
            post("Transfer-Encoding: identity\r\n", smuggled),
            "Transfer-Encoding must end with a single chunked",
        ),
        (
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                smuggled,
            ),
            "Transfer-Encoding must end with a single chunked",
        ),
        (
            post("Transfer-Encoding:\r\n", smuggled),
            "Transfer-Encoding must end with a single chunked",
        ),
        (post("Host: elsewhere\r\n", ""), "more than one Host header"),
        (
            "GET / HTTP/1.1\r\nHost:\r\n\r\n".to_string(),
            "empty Host header",
        ),
        (
            "GET / HTTP/1.1\r\nUpgrade: \r\nConnection: Upgrade\r\nHost: x\r\n\r\n".to_string(),
            "empty Upgrade header",
        ),
        (
            UPGRADE.replace("Host: localhost\r\n", ""),
            "HTTP/1.1 request without a Host header",
        ),
        (
            UPGRADE.replace(
                "Sec-WebSocket-Version: 13\r\n",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
            ),
            "more than one Sec-WebSocket-Version header",
        ),
    ];
    for (request, why) in &shapes {
        let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
        let answer = exchange(&mut wss, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{request:?}: {answer}");
        assert!(answer.contains(why), "{request:?}: {answer}");

        let reads = wss_reads(&pg).await;
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "via proxy {request:?}: {answer}"
        );
        assert!(
            answer.contains(&format!("proxy: malformed request: {why}")),
            "{answer}"
        );
        assert_eq!(
            wss_reads(&pg).await,
            reads,
            "forwarded to the wss: {request:?}"
        );
    }
    let proxy = pg.snapshot(&pg.proxy).await;
    assert_eq!(proxy.connections.failed_total, shapes.len() as u64);
    assert_eq!(proxy.connections.accepted_total, 0);
    still_serving(&pg).await;
}

#[tokio::test]
async fn an_upgrade_that_carries_a_body_is_refused() {
    let pg = playground().await;
    let with = |header: &str, body: &str| {
        UPGRADE.replace(
            "Sec-WebSocket-Version: 13\r\n",
            &format!("Sec-WebSocket-Version: 13\r\n{header}\r\n"),
        ) + body
    };
    for request in [
        with("Content-Length: 5", "hello"),
        with("Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n"),
    ] {
        let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
        let answer = exchange(&mut wss, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("cannot carry a body"), "{answer}");
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "via proxy: {answer}");
        assert!(
            answer.contains("cannot carry a body"),
            "via proxy: {answer}"
        );
    }
    // Content-Length: 0 announces no body: a websocket as usual.
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    wss.write_all(with("Content-Length: 0", "").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut wss, &mut first)
        .await
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 101");
    drop(wss);
    still_serving(&pg).await;
}

/// A playground whose writes time out after 500 ms.
async fn impatient() -> Playground {
    Playground::start(HeadMode::Retain, HeadMode::Retain, |c| {
        c.write_timeout_ms = 500;
        c.max_message_size = 1 << 20;
    })
    .await
}

/// Sends 256 KiB binary messages on `io` (never reading) until a write fails.
fn flood(
    mut io: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let message = client_frame(0x2, true, &vec![0x5a; 256 << 10]);
        let mut sent = 0;
        while sent < 1000 && io.write_all(&message).await.is_ok() {
            sent += 1;
        }
        sent
    })
}

#[tokio::test]
async fn a_websocket_client_that_never_reads_is_closed_after_the_write_timeout() {
    let pg = impatient().await;
    let mut tcp = connect_unread(pg.wss.addr).await;
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    let started = Instant::now();
    let writer = flood(tcp);
    wait_until(
        "the wss closed the connection that does not read",
        || async {
            let c = pg.snapshot(&pg.wss).await.connections;
            c.accepted_total == 1 && c.open == 0
        },
    )
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    // The flood ends once the server has gone (its writes fail).
    let sent = tokio::time::timeout(common::BOUND, writer)
        .await
        .expect("the client's writes fail once the server has closed")
        .unwrap();
    assert!(sent < 1000, "{sent} messages went through");
    eprintln!(
        "wss: a client that never reads closed after {took:?} ({sent} messages of 256 KiB sent)"
    );
    still_serving(&pg).await;
}

#[tokio::test]
async fn through_the_proxy_a_client_that_never_reads_is_closed_on_both_sides() {
    let pg = impatient().await;
    let tcp = connect_unread(pg.proxy.addr).await;
    let mut tls = pg.tls_over(tcp).await;
    tls.write_all(UPGRADE.as_bytes()).await.unwrap();
    let started = Instant::now();
    let writer = flood(tls);
    wait_until(
        "proxy and wss closed the connection that does not read",
        || async {
            let proxy = pg.snapshot(&pg.proxy).await.connections;
            let wss = pg.snapshot(&pg.wss).await.connections;
            proxy.accepted_total == 1 && proxy.open == 0 && wss.accepted_total == 1 && wss.open == 0
        },
    )
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    let sent = tokio::time::timeout(common::BOUND, writer)
        .await
        .expect("the client's writes fail once the proxy has closed")
        .unwrap();
    assert!(sent < 1000, "{sent} messages went through");
    eprintln!("proxy: a client that never reads closed on both sides after {took:?} ({sent} messages of 256 KiB sent)");
    still_serving(&pg).await;
}

/// The proxy serves its port from one listener per core (SO_REUSEPORT); a second proxy
/// started on that port is refused with a clear error instead of sharing it.
#[tokio::test]
async fn a_second_proxy_on_a_port_in_use_is_refused() {
    let pg = Playground::start(HeadMode::Drop, HeadMode::Drop, |_| {}).await;
    let mut config = pg.config.clone();
    config.proxy_heapdump_port = 0;
    let shutdown = native::shutdown::Shutdown::new();
    let refused = native::proxy::start(&config, &shutdown).await;
    shutdown.trigger();
    let err = refused
        .err()
        .expect("a second proxy on the same port is refused");
    let port = pg.proxy.addr.port();
    assert!(
        err.to_string()
            .contains(&format!("proxy: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    // The first proxy still serves.
    let mut ws = pg.open().await;
    ws.close(None).await.unwrap();
}
