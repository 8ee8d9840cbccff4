//! The warp stack's pinning, measured as a user would: the `wss` and `proxy`
//! binaries, both on warp, as their own processes; websockets through the TLS
//! proxy, each sending one small first message (the one `retain` keeps) and then
//! its own traffic. The wss's RSS comes from /proc, the pinned allocations from its
//! snapshot, once for `retain` and once for `copy`, and the two are compared.
//!
//! Each connection's messages are paced (one at a time, each read before the next
//! is sent). Short form here (`WARP_PINNING_CONNECTIONS`, default 200); `scripts/warp-pinning`
//! runs it with 2,000 connections in release and prints the table.

use common::Server;
use futures_util::{SinkExt, StreamExt};
use runtime::config::Config;
use snapshot::{HeadMode, Stack};
use tokio_tungstenite::tungstenite::Message;

mod common;

const FIRST_MESSAGE: usize = 100;
const TRAFFIC: usize = 400_000;
const MESSAGE: usize = 16 << 10;

fn connections() -> usize {
    std::env::var("WARP_PINNING_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// What one run measured.
#[derive(Debug)]
struct Figures {
    idle_rss: u64,
    loaded_rss: u64,
    pinned_bytes: u64,
    pinned_allocations: usize,
    /// Bytes of every live allocation of 4 KiB or more (the registry's total).
    idle_tracked: u64,
    loaded_tracked: u64,
    first_messages_attributed: usize,
}

async fn run(mode: HeadMode, n: usize) -> Figures {
    let _ = runtime::server::raise_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let common = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--wss_port",
            "0",
            "--wss_heapdump_port",
            "0",
            "--proxy_port",
            "0",
            "--proxy_heapdump_port",
            "0",
            "--wss_stack",
            "warp",
            "--proxy_stack",
            "warp",
            "--wss_head",
            mode.as_str(),
            "--proxy_head",
            "copy",
            "--max_connections",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let wss = Server::start(env!("CARGO_BIN_EXE_wss"), dir.path(), &common(&[]));
    let port = wss.addr.port().to_string();
    let proxy = Server::start(
        env!("CARGO_BIN_EXE_proxy"),
        dir.path(),
        &common(&["--proxy_target.port", &port]),
    );
    let before = wss.snapshot().await;
    assert_eq!(before.settings.stack, Some(Stack::Warp));
    let idle_rss = wss.settled_rss().await;
    let idle_tracked = wss
        .snapshot()
        .await
        .pinned_allocations
        .registry
        .tracked_bytes;

    let config = Config {
        proxy_port: proxy.addr.port(),
        cert_dir: dir.path().join(".certs"),
        ..Config::default()
    };
    let tls = runtime::tls::client_config(&config).unwrap();
    let mut sockets = Vec::with_capacity(n);
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (config, tls) = (config.clone(), tls.clone());
        opening.spawn(async move {
            let mut ws = client::open_websocket(&config, Some(&tls)).await.unwrap();
            let greeting = ws.next().await.unwrap().unwrap();
            assert!(greeting.to_text().unwrap().starts_with("hello from wss"));
            // Each message is read by the wss before the next goes (its pong comes
            // back after it): a client that talks, not a burst that lands in one
            // read (docs/guide/warp-stack.md says what a burst does instead).
            let mut payloads = vec![FIRST_MESSAGE];
            payloads
                .extend((0..TRAFFIC.div_ceil(MESSAGE)).map(|i| MESSAGE.min(TRAFFIC - i * MESSAGE)));
            for (i, len) in payloads.into_iter().enumerate() {
                ws.send(Message::binary(vec![1u8; len])).await.unwrap();
                let tag = i.to_string().into_bytes();
                ws.send(Message::Ping(tag.clone().into())).await.unwrap();
                loop {
                    match ws.next().await.unwrap().unwrap() {
                        Message::Pong(p) if p.as_ref() == tag.as_slice() => break,
                        _ => {}
                    }
                }
            }
            ws
        });
        // Open at a bounded pace: at most 64 handshakes at once.
        if opening.len() >= 64 {
            sockets.push(opening.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(ws) = opening.join_next().await {
        sockets.push(ws.unwrap());
    }
    let loaded_rss = wss.settled_rss().await;
    let snap = wss.snapshot().await;
    assert_eq!(snap.connections.open, n as u64, "{:?}", snap.connections);
    let pinned = &snap.pinned_allocations;
    let first_messages_attributed = pinned
        .allocations
        .iter()
        .flat_map(|a| &a.kept)
        .filter(|k| &*k.part == "first message")
        .count();
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    drop(proxy);
    Figures {
        idle_rss,
        loaded_rss,
        pinned_bytes: pinned.pinned_bytes,
        pinned_allocations: pinned.allocations.len(),
        idle_tracked,
        loaded_tracked: pinned.registry.tracked_bytes,
        first_messages_attributed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_pins_a_read_buffer_per_connection_that_copy_does_not_and_the_snapshot_finds_it() {
    let n = connections();
    let retain = run(HeadMode::Retain, n).await;
    let copy = run(HeadMode::Copy, n).await;
    let per = |bytes: u64| bytes as f64 / n as f64 / 1000.0;
    let cost = |f: &Figures| per(f.loaded_rss.saturating_sub(f.idle_rss));
    let tracked = |f: &Figures| per(f.loaded_tracked.saturating_sub(f.idle_tracked));
    let extra_rss = cost(&retain) - cost(&copy);
    let extra_tracked = tracked(&retain) - tracked(&copy);
    println!(
        "warp wss, {n} websockets through the warp TLS proxy, each {FIRST_MESSAGE} B then {TRAFFIC} B in {MESSAGE} B messages:\n\
         mode    KB RSS per conn  KB in 4 KiB+ allocations per conn  KB pinned per conn  pinned allocations\n\
         retain  {:>15.1}  {:>33.1}  {:>18.1}  {:>18}\n\
         copy    {:>15.1}  {:>33.1}  {:>18.1}  {:>18}\n\
         retain - copy: {extra_rss:.1} KB RSS, {extra_tracked:.1} KB of large allocations per connection \
         ({:.0} % of the RSS difference)",
        cost(&retain),
        tracked(&retain),
        per(retain.pinned_bytes),
        retain.pinned_allocations,
        cost(&copy),
        tracked(&copy),
        per(copy.pinned_bytes),
        copy.pinned_allocations,
        extra_tracked / extra_rss * 100.0,
    );
    assert!(
        retain.first_messages_attributed >= n,
        "every kept first message found in an allocation: {retain:?}"
    );
    assert_eq!(copy.first_messages_attributed, 0, "{copy:?}");
    assert!(
        extra_rss >= 48.0,
        "retain costs {extra_rss:.1} KB more per connection than copy"
    );
    // What the kept parts pin is at least one read buffer (128 KiB) and hyper's
    // header buffer (8 KiB) per connection; the process holds less than that much
    // more, because the buffer that replaces a pinned one is smaller (bytes sizes it
    // from the old one's capacity hint: 64 KiB): the allocations the registry sees
    // account for the difference in RSS.
    assert!(
        per(retain.pinned_bytes) >= 131.0 + 8.0,
        "pinned per connection: {:.1} KB",
        per(retain.pinned_bytes)
    );
    assert!(
        (extra_tracked - extra_rss).abs() <= 0.15 * extra_rss,
        "large allocations ({extra_tracked:.1} KB) account for the RSS difference ({extra_rss:.1} KB) within 15 %"
    );
}
