//! Bad input and bad luck, on both server stacks: each gets a clear answer (the one
//! that stack really gives) and leaves both servers serving, holding nothing for it
//! (no slab retainer on the slab stack, no pinned allocation on the warp stack).
//!
//! Every test body takes the [`Stack`] both servers run on, and runs once per stack
//! (`slab::name`, `warp::name`). Where the stacks answer differently, each expectation
//! follows the stack of the server that answers: the slab servers answer with their
//! own statuses and reasons; on the warp stack hyper answers what it cannot parse
//! (400, 431, or a close without an answer for slow headers) with no body, and the
//! warp proxy passes back whatever the wss answered to what it forwarded.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{
    client_frame, connect_unread, exchange, holds_nothing, read_to_close, wait_until, Playground,
    UPGRADE,
};
use snapshot::{HeadMode, Stack};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_stacks! {
    #[tokio::test]
    a_malformed_request_gets_400_from_both_servers,
    a_bad_upgrade_is_refused_with_a_reason,
    an_oversized_header_block_gets_431,
    headers_sent_byte_by_byte_then_stalled_are_closed_after_the_timeout,
    a_client_that_vanishes_mid_frame_is_cleaned_up,
    the_upstream_down_gets_502_and_the_proxy_keeps_serving,
    garbage_instead_of_a_tls_handshake_is_dropped,
    protocol_violations_close_the_websocket_with_a_code,
    request_smuggling_shapes_never_smuggle_a_request,
    an_upgrade_that_carries_a_body_is_refused_or_its_body_dropped,
    a_websocket_client_that_never_reads_is_closed_after_the_write_timeout,
    through_the_proxy_a_client_that_never_reads_is_closed_on_both_sides,
    a_second_proxy_on_a_port_in_use_is_refused,
}

/// Both servers still take websockets, and hold nothing for past connections (see
/// [`holds_nothing`]).
async fn still_serving(pg: &Playground) {
    let ws = pg.open().await;
    drop(ws);
    wait_until(
        "no connection left open and nothing held for past ones",
        || async {
            let mut ok = true;
            for server in [&pg.proxy, &pg.wss] {
                ok &= holds_nothing(&pg.snapshot(server).await);
            }
            ok
        },
    )
    .await;
}

async fn playground(stack: Stack) -> Playground {
    Playground::start_on(stack, HeadMode::Retain, HeadMode::Retain, |_| {}).await
}

/// The answer's status line (without its line end) and its body.
fn status_and_body(answer: &str) -> (&str, &str) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    (head.lines().next().unwrap_or(""), body)
}

/// hyper's own answer to a request it cannot parse: `status`, an empty body, then
/// the close.
fn assert_hyper_answer(answer: &str, status: &str) {
    let (line, body) = status_and_body(answer);
    assert_eq!(line, format!("HTTP/1.1 {status}"), "{answer}");
    assert!(answer.contains("content-length: 0\r\n"), "{answer}");
    assert_eq!(body, "", "{answer}");
}

/// Whether two answers say the same: the status line, and the body too unless it is
/// a 101 (whose "body" is the first websocket frames, numbered per connection).
fn assert_same_answer(answer: &str, expected: &str, what: &str) {
    let (line, body) = status_and_body(answer);
    let (expected_line, expected_body) = status_and_body(expected);
    assert_eq!(line, expected_line, "{what}: {answer}");
    if !line.starts_with("HTTP/1.1 101 ") {
        assert_eq!(body, expected_body, "{what}: {answer}");
    }
}

/// Sends `bytes` and reads one answer: its head and the body its Content-Length
/// announces, or a 101's head (and what came with it), or all up to the close. (A
/// warp rejection keeps the connection open for the next request: reading to the
/// close would wait for hyper's header timeout.)
async fn ask(io: &mut (impl AsyncRead + AsyncWrite + Unpin), bytes: &[u8]) -> String {
    io.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            if head.starts_with("http/1.1 101 ") {
                break;
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            if len.is_some_and(|len| out.len() >= end + 4 + len) {
                break;
            }
        }
        let read = tokio::time::timeout(common::BOUND, io.read(&mut buf))
            .await
            .expect("an answer");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn a_malformed_request_gets_400_from_both_servers(stack: Stack) {
    let pg = playground(stack).await;
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    let answer = exchange(&mut wss, b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n").await;
    match pg.wss_stack() {
        Stack::Slab => {
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
            assert!(answer.contains("malformed request"), "{answer}");
        }
        // hyper answers what it cannot parse (here an invalid header name).
        Stack::Warp | Stack::Socketio => assert_hyper_answer(&answer, "400 Bad Request"),
    }
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, b"\x00\x01garbage\r\n\r\n").await;
    match pg.proxy_stack() {
        Stack::Slab => {
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
            assert!(answer.contains("proxy: malformed request"), "{answer}");
        }
        Stack::Warp | Stack::Socketio => assert_hyper_answer(&answer, "400 Bad Request"),
    }
    still_serving(&pg).await;
}

async fn a_bad_upgrade_is_refused_with_a_reason(stack: Stack) {
    let pg = playground(stack).await;
    let no_key = UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let old_version = UPGRADE.replace("Version: 13", "Version: 8");
    let h2c = UPGRADE.replace("Upgrade: websocket", "Upgrade: h2c");
    let plain = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let refusals = match pg.wss_stack() {
        Stack::Slab => [
            (no_key.as_str(), "400", "Sec-WebSocket-Key"),
            (old_version.as_str(), "426", "Version must be 13"),
            (h2c.as_str(), "400", "only websocket"),
            (plain, "426", "connect with a websocket"),
        ],
        // warp::ws()'s rejections name the header it found missing or wrong (and
        // keep the connection open for another request); the 426 is the wss's own.
        Stack::Warp => [
            (
                no_key.as_str(),
                "400",
                "Invalid request header \"sec-websocket-key\"",
            ),
            (
                old_version.as_str(),
                "400",
                "Invalid request header \"sec-websocket-version\"",
            ),
            (h2c.as_str(), "400", "Invalid request header \"upgrade\""),
            (plain, "426", "connect with a websocket"),
        ],
        Stack::Socketio => {
            unreachable!("the socket.io wss has its own hostile tests (socketio.rs)")
        }
    };
    for (request, status, reason) in refusals {
        let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
        let answer = ask(&mut wss, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains(reason), "{answer}");
        // Through the proxy: both stacks' proxies forward the request and pass the
        // wss's answer back.
        let mut proxy = pg.raw_proxy().await;
        let via = ask(&mut proxy, request.as_bytes()).await;
        assert_same_answer(&via, &answer, "via proxy");
    }
    // The wss counted every refusal, straight and through the proxy.
    let wss = pg.snapshot(&pg.wss).await;
    assert_eq!(wss.connections.failed_total, 2 * refusals.len() as u64);
    still_serving(&pg).await;
}

async fn an_oversized_header_block_gets_431(stack: Stack) {
    let pg = playground(stack).await;
    // Over max_header_bytes (16 KiB): the slab servers' limit, and the warp servers'
    // (hyper's max_buf_size).
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    // Over the slab servers' 64 headers and hyper's 100 (httparse's TooManyHeaders).
    let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    for request in [&big, &many] {
        let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
        let answer = exchange(&mut wss, request.as_bytes()).await;
        match pg.wss_stack() {
            Stack::Slab => assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}"),
            // hyper's answer, as at the warp proxy.
            Stack::Warp | Stack::Socketio => {
                assert_hyper_answer(&answer, "431 Request Header Fields Too Large")
            }
        }
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, request.as_bytes()).await;
        match pg.proxy_stack() {
            Stack::Slab => assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}"),
            // hyper's answer to a header block over its limits.
            Stack::Warp | Stack::Socketio => {
                assert_hyper_answer(&answer, "431 Request Header Fields Too Large")
            }
        }
    }
    still_serving(&pg).await;
}

async fn headers_sent_byte_by_byte_then_stalled_are_closed_after_the_timeout(stack: Stack) {
    let pg = playground(stack).await;
    let start = Instant::now();
    let mut wss: Box<dyn common::Io> = Box::new(TcpStream::connect(pg.wss.addr).await.unwrap());
    let mut proxy = pg.raw_proxy().await;
    for byte in UPGRADE.as_bytes()[..20].iter() {
        wss.write_all(&[*byte]).await.unwrap();
        proxy.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Then nothing: each closes once header_timeout_ms (1.5 s) is up.
    let timeout = Duration::from_millis(pg.config.header_timeout_ms);
    for (server, io, stack) in [
        ("wss", &mut wss, pg.wss_stack()),
        ("proxy", &mut proxy, pg.proxy_stack()),
    ] {
        let answer = read_to_close(io).await;
        let took = start.elapsed();
        assert!(took >= timeout, "{server} closed after {took:?}");
        match stack {
            // The slab servers answer 408 before they close.
            Stack::Slab => assert!(answer.starts_with("HTTP/1.1 408 "), "{server}: {answer}"),
            // hyper's header read timeout closes without an answer.
            Stack::Warp | Stack::Socketio => assert_eq!(answer, "", "{server}"),
        }
    }
    still_serving(&pg).await;
}

async fn a_client_that_vanishes_mid_frame_is_cleaned_up(stack: Stack) {
    let pg = playground(stack).await;
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

async fn the_upstream_down_gets_502_and_the_proxy_keeps_serving(stack: Stack) {
    // A port that was free a moment ago: nothing listens there.
    let closed = testkit::free_port();
    let pg = Playground::start_on(stack, HeadMode::Retain, HeadMode::Retain, |c| {
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
    assert!(holds_nothing(&snap), "{snap:#?}");
}

async fn garbage_instead_of_a_tls_handshake_is_dropped(stack: Stack) {
    let pg = playground(stack).await;
    let mut raw = TcpStream::connect(pg.proxy.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut raw).await;
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
    wait_until("the failed handshake is counted", || async {
        pg.snapshot(&pg.proxy).await.connections.failed_total >= 1
    })
    .await;
    still_serving(&pg).await;
}

async fn protocol_violations_close_the_websocket_with_a_code(stack: Stack) {
    let pg = playground(stack).await;
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    wss.write_all(UPGRADE.as_bytes()).await.unwrap();
    // An unmasked client frame: the server answers close 1002 and hangs up.
    wss.write_all(&[0x82, 0x02, 0xAA, 0xBB]).await.unwrap();
    let all = common::read_all(&mut wss).await;
    let (head, frames) = common::server_frames(&all);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    // On the warp stack, tungstenite's protocol error, answered with 1002 by the wss.
    assert_eq!(common::close_code(&frames), Some(1002), "{frames:?}");
    still_serving(&pg).await;
}

/// Socket reads the slab wss has made so far (the warp wss has no pools to count
/// reads in: there the proof that nothing was forwarded is the proxy's count of
/// upstream connections).
async fn wss_reads(pg: &Playground) -> Option<u64> {
    let snap = pg.snapshot(&pg.wss).await;
    snap.pool("tcp").map(|p| p.reads_total)
}

/// What hyper (in a warp server) does with a request-smuggling shape.
#[derive(Clone, Copy, PartialEq)]
enum Hyper {
    /// Refuses it with its own 400.
    Refuses,
    /// Takes it framed by its Transfer-Encoding alone: the Content-Length removed,
    /// and the connection closed after the answer (hyper-1.12.0 `role.rs`, after
    /// RFC 9112 6.3), so the bytes after the chunked body are never read as a request.
    DropsContentLength,
    /// Takes it as it is: the framing is sound (`chunked` twice ends with
    /// `chunked`), or the check is the application's (Host, the websocket headers).
    Takes,
}

async fn request_smuggling_shapes_never_smuggle_a_request(stack: Stack) {
    let pg = playground(stack).await;
    let post = |headers: &str, body: &str| {
        format!("POST /submit HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n{body}")
    };
    let smuggled = "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // What the warp wss answers to a shape hyper takes: its 426 for a request that is
    // no upgrade, warp::ws()'s rejection, or a websocket (neither hyper nor warp
    // requires Host, and warp reads the first Sec-WebSocket-Version).
    let no_upgrade = ("426", "connect with a websocket");
    let websocket = ("101", "");
    let hyper_400 = ("400", "");
    // Each shape: the request, the slab servers' reason for their 400, what hyper
    // does with it, and what the warp wss answers.
    let shapes = [
        (
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                smuggled,
            ),
            "Content-Length together with Transfer-Encoding",
            Hyper::DropsContentLength,
            no_upgrade,
        ),
        (
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
                smuggled,
            ),
            "Content-Length together with Transfer-Encoding",
            Hyper::DropsContentLength,
            no_upgrade,
        ),
        (
            post("Content-Length: 6\r\nContent-Length: 40\r\n", smuggled),
            "two different Content-Length values",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Content-Length: 6, 40\r\n", smuggled),
            "two different Content-Length values",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Content-Length: 6x\r\n", "abcdef"),
            "Content-Length is not a number",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Content-Length: -1\r\n", ""),
            "Content-Length is not a number",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Content-Length:\r\n", ""),
            "Content-Length is not a number",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Transfer-Encoding: chunked, identity\r\n", smuggled),
            "Transfer-Encoding must end with a single chunked",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Transfer-Encoding: identity\r\n", smuggled),
            "Transfer-Encoding must end with a single chunked",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                smuggled,
            ),
            "Transfer-Encoding must end with a single chunked",
            Hyper::Takes,
            no_upgrade,
        ),
        (
            post("Transfer-Encoding:\r\n", smuggled),
            "Transfer-Encoding must end with a single chunked",
            Hyper::Refuses,
            hyper_400,
        ),
        (
            post("Host: elsewhere\r\n", ""),
            "more than one Host header",
            Hyper::Takes,
            no_upgrade,
        ),
        (
            "GET / HTTP/1.1\r\nHost:\r\n\r\n".to_string(),
            "empty Host header",
            Hyper::Takes,
            no_upgrade,
        ),
        (
            "GET / HTTP/1.1\r\nUpgrade: \r\nConnection: Upgrade\r\nHost: x\r\n\r\n".to_string(),
            "empty Upgrade header",
            Hyper::Takes,
            ("400", "Invalid request header \"upgrade\""),
        ),
        (
            UPGRADE.replace("Host: localhost\r\n", ""),
            "HTTP/1.1 request without a Host header",
            Hyper::Takes,
            websocket,
        ),
        (
            UPGRADE.replace(
                "Sec-WebSocket-Version: 13\r\n",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
            ),
            "more than one Sec-WebSocket-Version header",
            Hyper::Takes,
            websocket,
        ),
    ];
    let mut refused = 0;
    for (request, why, hyper, (warp_status, warp_reason)) in &shapes {
        let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
        let direct = ask(&mut wss, request.as_bytes()).await;
        match pg.wss_stack() {
            Stack::Slab => {
                assert!(direct.starts_with("HTTP/1.1 400 "), "{request:?}: {direct}");
                assert!(direct.contains(why), "{request:?}: {direct}");
            }
            Stack::Warp if warp_reason.is_empty() && *warp_status == "400" => {
                assert_hyper_answer(&direct, "400 Bad Request")
            }
            Stack::Warp => {
                let status = format!("HTTP/1.1 {warp_status} ");
                assert!(direct.starts_with(&status), "{request:?}: {direct}");
                assert!(direct.contains(warp_reason), "{request:?}: {direct}");
            }
            Stack::Socketio => unreachable!("the socket.io wss has its own hostile tests"),
        }
        if request.contains(smuggled) {
            // One answer, then the close: the request behind the body is not answered.
            assert_eq!(read_to_close(&mut wss).await, "", "{request:?}");
        }
        drop(wss);

        let reads = wss_reads(&pg).await;
        let accepted = pg.snapshot(&pg.proxy).await.connections.accepted_total;
        let mut proxy = pg.raw_proxy().await;
        let answer = ask(&mut proxy, request.as_bytes()).await;
        let forwarded = match (pg.proxy_stack(), hyper) {
            // The slab proxy checks the framing and the headers itself.
            (Stack::Slab, _) => {
                assert!(
                    answer.starts_with("HTTP/1.1 400 "),
                    "via proxy {request:?}: {answer}"
                );
                assert!(
                    answer.contains(&format!("proxy: malformed request: {why}")),
                    "{answer}"
                );
                false
            }
            (Stack::Warp, Hyper::Refuses) => {
                assert_hyper_answer(&answer, "400 Bad Request");
                false
            }
            // The warp proxy forwards what hyper takes, and passes back what the wss
            // answers to that.
            (Stack::Socketio, _) => unreachable!("no socket.io proxy"),
            (Stack::Warp, _) => {
                let forwarded = if *hyper == Hyper::DropsContentLength {
                    request.replace("Content-Length: 6\r\n", "")
                } else {
                    request.clone()
                };
                let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
                let expected = ask(&mut wss, forwarded.as_bytes()).await;
                assert_same_answer(&answer, &expected, &format!("via proxy {request:?}"));
                true
            }
        };
        if request.contains(smuggled) {
            assert_eq!(read_to_close(&mut proxy).await, "", "via proxy {request:?}");
        }
        drop(proxy);
        // Forwarded as one request (one upstream connection), or not at all.
        let proxy_accepted = pg.snapshot(&pg.proxy).await.connections.accepted_total;
        assert_eq!(
            proxy_accepted,
            accepted + u64::from(forwarded),
            "{request:?}"
        );
        if !forwarded {
            refused += 1;
            assert_eq!(
                wss_reads(&pg).await,
                reads,
                "forwarded to the wss: {request:?}"
            );
        }
    }
    // hyper's refusals are counted once their connection has ended.
    wait_until("every refusal counted failed", || async {
        pg.snapshot(&pg.proxy).await.connections.failed_total == refused
    })
    .await;
    if pg.proxy_stack() == Stack::Slab {
        assert_eq!(refused, shapes.len() as u64);
    }
    still_serving(&pg).await;
}

/// Reads websocket frames from `io` into `buf` until there are `n` after the head.
async fn frames_until(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    n: usize,
) -> Vec<(u8, Vec<u8>)> {
    loop {
        let (head, frames) = common::server_frames(buf);
        if head.ends_with("\r\n\r\n") && frames.len() >= n {
            return frames;
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(common::BOUND, io.read(&mut chunk))
            .await
            .expect("more frames");
        match read.unwrap() {
            0 => panic!("closed after {frames:?}"),
            k => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

async fn an_upgrade_that_carries_a_body_is_refused_or_its_body_dropped(stack: Stack) {
    let pg = playground(stack).await;
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
        match pg.wss_stack() {
            Stack::Slab => {
                let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
                let answer = exchange(&mut wss, request.as_bytes()).await;
                assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
                assert!(answer.contains("cannot carry a body"), "{answer}");
                // Both proxies forward it, body and all, and pass the wss's answer back.
                let mut proxy = pg.raw_proxy().await;
                let via = exchange(&mut proxy, request.as_bytes()).await;
                assert_same_answer(&via, &answer, "via proxy");
            }
            // warp::ws() does not look at the body; hyper drains the body nobody read
            // (its dispatcher's `poll_drain_or_close_read`) before it hands the
            // connection over, so the websocket starts clean: greeted, then echoing.
            // Through the warp proxy alike: the body goes upstream with the request.
            Stack::Warp => {
                let wss: Box<dyn common::Io> =
                    Box::new(TcpStream::connect(pg.wss.addr).await.unwrap());
                for mut io in [wss, pg.raw_proxy().await] {
                    io.write_all(request.as_bytes()).await.unwrap();
                    let mut buf = Vec::new();
                    let frames = frames_until(&mut io, &mut buf, 1).await;
                    assert!(buf.starts_with(b"HTTP/1.1 101 "), "{frames:?}");
                    assert!(frames[0].1.starts_with(b"hello from wss"), "{frames:?}");
                    io.write_all(&client_frame(0x1, true, b"framed"))
                        .await
                        .unwrap();
                    let frames = frames_until(&mut io, &mut buf, 2).await;
                    assert_eq!(frames[1], (0x1, b"framed".to_vec()));
                }
            }
            Stack::Socketio => unreachable!("the socket.io wss has its own hostile tests"),
        }
    }
    // Content-Length: 0 announces no body: a websocket as usual.
    let mut wss = TcpStream::connect(pg.wss.addr).await.unwrap();
    wss.write_all(with("Content-Length: 0", "").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 12];
    wss.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 101");
    drop(wss);
    still_serving(&pg).await;
}

/// A playground whose writes time out after 500 ms.
async fn impatient(stack: Stack) -> Playground {
    Playground::start_on(stack, HeadMode::Retain, HeadMode::Retain, |c| {
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

async fn a_websocket_client_that_never_reads_is_closed_after_the_write_timeout(stack: Stack) {
    let pg = impatient(stack).await;
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
        "wss ({stack}): a client that never reads closed after {took:?} ({sent} messages of 256 KiB sent)"
    );
    still_serving(&pg).await;
}

async fn through_the_proxy_a_client_that_never_reads_is_closed_on_both_sides(stack: Stack) {
    let pg = impatient(stack).await;
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
    eprintln!("proxy ({stack}): a client that never reads closed on both sides after {took:?} ({sent} messages of 256 KiB sent)");
    still_serving(&pg).await;
}

/// A second proxy started on a port in use is refused with a clear error instead of
/// sharing it. (The slab proxy serves its port from one listener per core with
/// SO_REUSEPORT, so it probes the port alone first; the warp proxy binds one plain
/// listener.)
async fn a_second_proxy_on_a_port_in_use_is_refused(stack: Stack) {
    let pg = Playground::start_on(stack, HeadMode::Drop, HeadMode::Drop, |_| {}).await;
    let mut config = pg.config.clone();
    config.proxy_heapdump_port = 0;
    let shutdown = runtime::shutdown::Shutdown::new();
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
