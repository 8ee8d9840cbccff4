//! The proxy on the warp stack (warp/hyper over tokio-rustls), in front of the slab
//! wss, over real TLS on loopback: forwarding, the head modes' pinned allocations,
//! bad input, the guard and shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{exchange, read_to_close, wait_until, Playground, BOUND, UPGRADE};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot, Stack};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A playground whose proxy is on the warp stack, with this proxy head mode.
async fn playground(mode: HeadMode) -> Playground {
    Playground::start_each(
        HeadMode::Copy,
        mode,
        |_| {},
        |c| c.proxy_stack = Stack::Warp,
    )
    .await
}

/// hyper's initial read buffer: what a retained header value pins.
const HYPER_READ_BUFFER: u64 = 8192;

/// The connections whose header values pin a read buffer of hyper's: allocations of
/// at least 8 KiB holding only `header ...` parts of one connection.
fn pinned_by_headers(snap: &Snapshot) -> Vec<u64> {
    let mut connections: Vec<u64> = snap
        .pinned_allocations
        .allocations
        .iter()
        .filter(|a| a.size >= HYPER_READ_BUFFER && !a.kept.is_empty())
        .filter(|a| a.kept.iter().all(|k| k.part.starts_with("header ")))
        .filter(|a| a.kept.iter().all(|k| k.connection == a.kept[0].connection))
        .map(|a| a.kept[0].connection)
        .collect();
    connections.sort();
    connections.dedup();
    connections
}

/// The proxy takes websockets again and holds nothing once they close.
async fn still_serving(pg: &Playground) {
    let mut ws = pg.open().await;
    echo(&mut ws, "still serving").await;
    drop(ws);
    wait_until("no connection left open on the proxy", || async {
        let snap = pg.snapshot(&pg.proxy).await;
        snap.connections.open == 0 && snap.pinned_allocations.allocations.is_empty()
    })
    .await;
}

async fn echo<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(BOUND, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back.to_text().unwrap(), text);
}

#[tokio::test]
async fn a_websocket_through_the_warp_proxy_is_greeted_and_echoed() {
    let pg = playground(HeadMode::Retain).await;
    let mut ws = pg.open().await;
    echo(&mut ws, "hello through warp").await;
    let snap = pg.snapshot(&pg.proxy).await;
    assert_eq!(snap.settings.stack, Some(Stack::Warp));
    assert!(snap.settings.tls);
    assert!(snap.pools.is_empty(), "the warp stack has no slab pools");
    assert_eq!(snap.connections.open, 1);
    let line = pg.proxy.state.stats_line();
    assert!(line.contains("warp stack"), "{line}");
}

#[tokio::test]
async fn retain_pins_one_hyper_read_buffer_per_connection_until_it_closes() {
    const N: usize = 5;
    let pg = playground(HeadMode::Retain).await;
    let mut open = Vec::new();
    for _ in 0..N {
        open.push(pg.open().await);
    }
    let snap = pg.snapshot(&pg.proxy).await;
    let pinned = &snap.pinned_allocations;
    assert!(pinned.registry.enabled);
    let connections = pinned_by_headers(&snap);
    assert!(
        connections.len() >= N,
        "{} connections pin a read buffer, not {N}: {pinned:#?}",
        connections.len()
    );
    for a in &pinned.allocations {
        assert!(
            a.kept
                .iter()
                .any(|k| &*k.part == "header sec-websocket-key"),
            "{a:#?}"
        );
        assert!(a.kept_bytes < 1024 && a.size >= HYPER_READ_BUFFER, "{a:#?}");
    }
    assert!(pinned.pinned_bytes >= N as u64 * HYPER_READ_BUFFER);
    assert_eq!(snap.connections.open_by_head_mode.retain, N as u64);
    // The tunnels still work, and closing them frees the buffers.
    for ws in &mut open {
        echo(ws, "pinned but served").await;
    }
    for mut ws in open {
        ws.close(None).await.unwrap();
    }
    wait_until("the pinned read buffers are freed", || async {
        let snap = pg.snapshot(&pg.proxy).await;
        snap.pinned_allocations.allocations.is_empty()
            && snap.pinned_allocations.unattributed_parts == 0
            && snap.connections.open == 0
    })
    .await;
}

#[tokio::test]
async fn copy_and_drop_pin_no_allocation() {
    const N: usize = 4;
    for (mode, parts) in [(HeadMode::Copy, N as u64), (HeadMode::Drop, 0)] {
        let pg = playground(mode).await;
        let mut open = Vec::new();
        for _ in 0..N {
            open.push(pg.open().await);
        }
        let snap = pg.snapshot(&pg.proxy).await;
        let pinned = &snap.pinned_allocations;
        assert!(pinned.allocations.is_empty(), "{mode}: {pinned:#?}");
        // A copy is a few hundred bytes: an allocation too small to be tracked.
        assert_eq!(pinned.unattributed_parts, parts, "{mode}");
        for ws in &mut open {
            echo(ws, "served").await;
        }
    }
}

#[tokio::test]
async fn switching_the_head_mode_applies_to_new_connections() {
    let pg = playground(HeadMode::Retain).await;
    let _old = pg.open().await;
    let body = serde_json::json!({ "head_mode": "copy" });
    let answer = client::fetch::put_json(pg.proxy.snapshot_addr, "/settings", &body)
        .await
        .unwrap();
    assert_eq!(answer["head_mode"], "copy");
    let _new = pg.open().await;
    let snap = pg.snapshot(&pg.proxy).await;
    assert_eq!(snap.settings.head_mode, Some(HeadMode::Copy));
    let by_mode = &snap.connections.open_by_head_mode;
    assert_eq!((by_mode.retain, by_mode.copy, by_mode.drop), (1, 1, 0));
    // The old connection pins its buffer; the new one keeps a small copy.
    assert_eq!(
        pinned_by_headers(&snap).len(),
        1,
        "{:#?}",
        snap.pinned_allocations
    );
    assert_eq!(snap.pinned_allocations.unattributed_parts, 1);
}

#[tokio::test]
async fn the_upstream_down_gets_502_naming_it() {
    let closed = testkit::free_port();
    let pg = Playground::start_each(
        HeadMode::Copy,
        HeadMode::Retain,
        |_| {},
        |c| {
            c.proxy_stack = Stack::Warp;
            c.proxy_target.port = closed;
        },
    )
    .await;
    for request in [
        UPGRADE,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ] {
        let mut proxy = pg.raw_proxy().await;
        let answer = exchange(&mut proxy, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway"), "{answer}");
        let named = format!(
            "proxy: upstream {}:{closed} unreachable",
            pg.config.proxy_target.host
        );
        assert!(answer.contains(&named), "{answer}");
    }
    let snap = pg.snapshot(&pg.proxy).await;
    assert_eq!(snap.connections.failed_total, 2);
    assert_eq!(snap.connections.open, 0);
    assert!(pg.proxy.state.kept.is_empty());
}

#[tokio::test]
async fn at_the_connection_cap_the_next_upgrade_gets_503() {
    let pg = Playground::start_each(
        HeadMode::Copy,
        HeadMode::Retain,
        |_| {},
        |c| {
            c.proxy_stack = Stack::Warp;
            c.max_connections = 1;
        },
    )
    .await;
    let mut first = pg.open().await;
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, UPGRADE.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(
        answer.contains("proxy: at the connection cap (1)"),
        "{answer}"
    );
    echo(&mut first, "the open one is served on").await;
    let snap = pg.snapshot(&pg.proxy).await;
    assert_eq!(snap.guard.refused_total, 1);
    assert!(snap.guard.at_connection_cap);
    // Closed and gone (a client that stays after the close handshake keeps its tunnel
    // half open: copy_bidirectional waits for both sides).
    first.close(None).await.unwrap();
    drop(first);
    wait_until("the place frees up", || async {
        !pg.snapshot(&pg.proxy).await.guard.at_connection_cap
    })
    .await;
    still_serving(&pg).await;
}

#[tokio::test]
async fn the_memory_guard_weighs_allocated_bytes_and_refuses_with_503() {
    // Any process has allocated more than 1 byte: every upgrade is refused.
    let pg = Playground::start_each(
        HeadMode::Copy,
        HeadMode::Retain,
        |_| {},
        |c| {
            c.proxy_stack = Stack::Warp;
            c.memory_limit = 1;
        },
    )
    .await;
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, UPGRADE.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(
        answer.contains("proxy: memory guard:") && answer.contains("of allocated memory"),
        "{answer}"
    );
    let snap = pg.snapshot(&pg.proxy).await;
    assert!(snap.guard.memory_tripped);
    assert_eq!(snap.connections.open, 0);
}

#[tokio::test]
async fn garbage_after_the_tls_handshake_gets_400_from_hyper() {
    let pg = playground(HeadMode::Retain).await;
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(&mut proxy, b"\x00\x01garbage\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    let mut proxy = pg.raw_proxy().await;
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(pg.config.max_header_bytes.max(8192) + 1)
    );
    let answer = exchange(&mut proxy, huge.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{answer}"
    );
    wait_until("both are counted failed", || async {
        pg.snapshot(&pg.proxy).await.connections.failed_total == 2
    })
    .await;
    still_serving(&pg).await;
}

#[tokio::test]
async fn bytes_that_are_not_tls_are_dropped_and_the_proxy_serves_on() {
    let pg = playground(HeadMode::Retain).await;
    let mut raw = TcpStream::connect(pg.proxy.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut raw).await;
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
    wait_until("the failed handshake is counted", || async {
        pg.snapshot(&pg.proxy).await.connections.failed_total == 1
    })
    .await;
    still_serving(&pg).await;
}

#[tokio::test]
async fn headers_that_never_complete_are_closed_after_the_header_timeout() {
    let pg = playground(HeadMode::Retain).await;
    let mut proxy = pg.raw_proxy().await;
    let start = Instant::now();
    proxy.write_all(&UPGRADE.as_bytes()[..20]).await.unwrap();
    // hyper's header read timeout closes without an answer.
    let answer = read_to_close(&mut proxy).await;
    let timeout = Duration::from_millis(pg.config.header_timeout_ms);
    assert!(
        start.elapsed() >= timeout,
        "closed after {:?}",
        start.elapsed()
    );
    assert_eq!(answer, "");
    still_serving(&pg).await;
}

#[tokio::test]
async fn a_plain_request_is_forwarded_and_answered_by_the_wss() {
    let pg = playground(HeadMode::Retain).await;
    let mut proxy = pg.raw_proxy().await;
    let answer = exchange(
        &mut proxy,
        b"GET /some/page?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required"),
        "{answer}"
    );
    assert!(answer.contains("connect with a websocket"), "{answer}");
    // An upgrade the wss refuses: its answer is passed back as it is.
    let mut proxy = pg.raw_proxy().await;
    let old = UPGRADE.replace("Version: 13", "Version: 8");
    let answer = exchange(&mut proxy, old.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required"),
        "{answer}"
    );
    assert!(
        answer.contains("Sec-WebSocket-Version must be 13"),
        "{answer}"
    );
    // Counted as a connection while it ran, and kept nothing.
    wait_until("the request is counted closed", || async {
        let snap = pg.snapshot(&pg.proxy).await;
        snap.connections.accepted_total == 2 && snap.connections.open == 0
    })
    .await;
    assert!(pg.proxy.state.kept.is_empty());
}

#[tokio::test]
async fn shutdown_closes_the_tunnels_and_finishes() {
    let pg = playground(HeadMode::Retain).await;
    let mut open = vec![pg.open().await, pg.open().await];
    assert!(pg.shutdown.finish(BOUND).await, "every task ended");
    for ws in &mut open {
        let end = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
        assert!(
            !matches!(end, Some(Ok(Message::Text(_)))),
            "no more messages after shutdown: {end:?}"
        );
    }
    assert!(
        pg.proxy.state.kept.is_empty(),
        "the tunnels dropped what they kept"
    );
    assert_eq!(pg.proxy.state.connections.open(), 0);
}

/// The warp proxy's lean settings (`proxy_copy_*`, `proxy_release_upgrade`,
/// `proxy_tls_*`), one set at a time and all together: each keeps the proxy correct.
mod lean {
    use super::*;
    use common::{client_frame, close_code, connect_unread, read_all, server_frames};
    use runtime::config::Config;

    /// Applies one set of settings to the proxy's config.
    type Lean = fn(&mut Config);

    /// Each set of settings the tests run with, named.
    fn settings() -> Vec<(&'static str, Lean)> {
        vec![
            ("copy buffer of 64 bytes", |c| c.proxy_copy_buffer_size = 64),
            ("copy on readable", |c| c.proxy_copy_on_readable = true),
            ("copy on readable, 64-byte scratch buffer", |c| {
                c.proxy_copy_on_readable = true;
                c.proxy_copy_buffer_size = 64;
            }),
            ("release upgrade", |c| c.proxy_release_upgrade = true),
            ("no TLS tickets, TLS buffer limit 1 KiB", |c| {
                c.proxy_tls_tickets = 0;
                c.proxy_tls_buffer_limit = 1024;
            }),
            ("all", |c| {
                c.proxy_copy_on_readable = true;
                c.proxy_release_upgrade = true;
                c.proxy_tls_tickets = 0;
                c.proxy_tls_buffer_limit = 1024;
            }),
        ]
    }

    /// A playground whose proxy is on the warp stack with `lean` applied (and `tweak`
    /// on both servers).
    async fn lean_playground(lean: Lean, tweak: impl FnOnce(&mut Config)) -> Playground {
        Playground::start_each(HeadMode::Copy, HeadMode::Drop, tweak, |c| {
            c.proxy_stack = Stack::Warp;
            lean(c);
        })
        .await
    }

    /// Messages both ways (the greeting down, echoes of small and 1 MiB messages),
    /// then a close from the client: the proxy holds nothing after.
    #[tokio::test]
    async fn messages_both_ways_large_ones_and_close() {
        for (name, lean) in settings() {
            let pg = lean_playground(lean, |_| {}).await;
            let mut ws = pg.open().await;
            echo(&mut ws, name).await;
            let large: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
            ws.send(Message::binary(large.clone())).await.unwrap();
            let back = tokio::time::timeout(BOUND, ws.next())
                .await
                .unwrap_or_else(|_| panic!("{name}: the 1 MiB echo in time"))
                .unwrap()
                .unwrap();
            assert!(back.into_data() == large, "{name}: the 1 MiB echo intact");
            echo(&mut ws, "after the large one").await;
            ws.close(None).await.unwrap();
            let end = tokio::time::timeout(BOUND, async {
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or_else(|_| panic!("{name}: the close answered in time"));
            assert!(end, "{name}: the wss answered the close through the proxy");
            drop(ws);
            wait_until(&format!("{name}: the tunnel closed"), || async {
                pg.snapshot(&pg.proxy).await.connections.open == 0
            })
            .await;
            still_serving(&pg).await;
        }
    }

    /// A frame sent in the same write as the upgrade request reaches hyper in the same
    /// read: it is the upgrade's leftover (`read_buf`), and it must be forwarded.
    #[tokio::test]
    async fn a_frame_right_behind_the_upgrade_request_is_delivered() {
        for (name, lean) in settings() {
            let pg = lean_playground(lean, |_| {}).await;
            let mut tls = pg.raw_proxy().await;
            let mut bytes = UPGRADE.as_bytes().to_vec();
            bytes.extend(client_frame(0x1, true, b"right behind the upgrade"));
            bytes.extend(client_frame(0x8, true, &1000u16.to_be_bytes()));
            tls.write_all(&bytes).await.unwrap();
            let answer = read_all(&mut tls).await;
            let (head, frames) = server_frames(&answer);
            assert!(head.starts_with("HTTP/1.1 101"), "{name}: {head}");
            let texts: Vec<String> = frames
                .iter()
                .filter(|(op, _)| *op == 0x1)
                .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
                .collect();
            assert_eq!(
                texts.len(),
                2,
                "{name}: the greeting and the echo: {texts:?}"
            );
            assert!(texts[0].starts_with("hello from wss"), "{name}: {texts:?}");
            assert_eq!(texts[1], "right behind the upgrade", "{name}");
            assert_eq!(
                close_code(&frames),
                Some(1000),
                "{name}: the close answered"
            );
            // The tunnel ends when both directions have: the client's too.
            drop(tls);
            still_serving(&pg).await;
        }
    }

    /// A client that floods and never reads: the wss's write timeout closes its side,
    /// and the proxy closes the tunnel on both sides.
    #[tokio::test]
    async fn a_client_that_never_reads_is_closed_on_both_sides() {
        for (name, lean) in settings() {
            let pg = lean_playground(lean, |c| {
                c.write_timeout_ms = 500;
                c.max_message_size = 1 << 20;
            })
            .await;
            let tcp = connect_unread(pg.proxy.addr).await;
            let mut tls = pg.tls_over(tcp).await;
            tls.write_all(UPGRADE.as_bytes()).await.unwrap();
            let writer = tokio::spawn(async move {
                let message = client_frame(0x2, true, &vec![0x5a; 256 << 10]);
                let mut sent = 0;
                while sent < 1000 && tls.write_all(&message).await.is_ok() {
                    sent += 1;
                }
                sent
            });
            wait_until(
                &format!("{name}: proxy and wss closed the connection that does not read"),
                || async {
                    let proxy = pg.snapshot(&pg.proxy).await.connections;
                    let wss = pg.snapshot(&pg.wss).await.connections;
                    proxy.accepted_total == 1
                        && proxy.open == 0
                        && wss.accepted_total == 1
                        && wss.open == 0
                },
            )
            .await;
            let sent = tokio::time::timeout(BOUND, writer)
                .await
                .unwrap_or_else(|_| panic!("{name}: the client's writes fail once closed"))
                .unwrap();
            assert!(sent < 1000, "{name}: {sent} messages went through");
            still_serving(&pg).await;
        }
    }

    /// The upstream down: 502 naming it, whatever the settings.
    #[tokio::test]
    async fn the_upstream_down_gets_502() {
        for (name, lean) in settings() {
            let closed = testkit::free_port();
            let pg = Playground::start_each(
                HeadMode::Copy,
                HeadMode::Drop,
                |_| {},
                |c| {
                    c.proxy_stack = Stack::Warp;
                    c.proxy_target.port = closed;
                    lean(c);
                },
            )
            .await;
            let mut proxy = pg.raw_proxy().await;
            let answer = exchange(&mut proxy, UPGRADE.as_bytes()).await;
            assert!(
                answer.starts_with("HTTP/1.1 502 Bad Gateway"),
                "{name}: {answer}"
            );
            assert!(
                answer.contains(&format!(":{closed} unreachable")),
                "{name}: {answer}"
            );
        }
    }

    /// The upstream ending the websocket (the wss closes with 1009 on a message over
    /// `max_message_size`, then closes its socket) ends the tunnel and the client's
    /// connection.
    #[tokio::test]
    async fn the_upstream_closing_closes_the_client() {
        for (name, lean) in settings() {
            let pg = lean_playground(lean, |c| c.max_message_size = 64 << 10).await;
            let mut ws = pg.open().await;
            echo(&mut ws, name).await;
            let _ = ws.send(Message::binary(vec![7; 128 << 10])).await;
            let code = tokio::time::timeout(BOUND, async {
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                        Some(Ok(_)) => continue,
                        _ => return None,
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{name}: the close came in time"));
            assert_eq!(code, Some(1009), "{name}: the wss's close came through");
            // The tunnel ends when both directions have: the client's too.
            drop(ws);
            wait_until(&format!("{name}: the tunnel closed"), || async {
                pg.snapshot(&pg.proxy).await.connections.open == 0
            })
            .await;
            still_serving(&pg).await;
        }
    }
}
