//! The seed's experiment, accelerated: small slabs, pinning connections between
//! bursts of data, every head mode on both servers, read back from the snapshots.

mod common;

use common::{wait_until, Playground};
use snapshot::{HeadMode, Snapshot};

/// Pinning connections per run; each arrives after more than a slab of data.
const PINNING: usize = 10;

fn live(snap: &Snapshot, pool: &str) -> u64 {
    snap.pool(pool).expect("pool").live_slabs
}

/// Opens the data connection, then `PINNING` connections each followed by a burst
/// larger than a TLS slab; returns the pinning connections, still open.
async fn pin(pg: &Playground) -> Vec<client::WsStream> {
    let mut data = pg.open().await;
    let mut pinning = Vec::new();
    for _ in 0..PINNING {
        pinning.push(pg.open().await);
        // The echo proves the wss has read the whole burst.
        common::burst(&mut data).await;
    }
    data.close(None).await.unwrap();
    pinning
}

async fn run_mode(mode: HeadMode) {
    let pg = Playground::start(mode, mode, |_| {}).await;
    let pinning = pin(&pg).await;
    let proxy = pg.snapshot(&pg.proxy).await;
    let wss = pg.snapshot(&pg.wss).await;
    assert_eq!(proxy.settings.head_mode, Some(mode));
    assert!(
        proxy.connections.open >= PINNING as u64,
        "{:?}",
        proxy.connections
    );
    assert!(
        wss.connections.open >= PINNING as u64,
        "{:?}",
        wss.connections
    );
    match mode {
        HeadMode::Retain => {
            assert!(
                live(&proxy, "tls") > PINNING as u64,
                "proxy tls: {:#?}",
                proxy.pool("tls")
            );
            assert!(
                live(&wss, "tcp") > PINNING as u64,
                "wss tcp: {:#?}",
                wss.pool("tcp")
            );
            for snap in [&proxy, &wss] {
                let pool = snap
                    .pool(if snap.role == "proxy" { "tls" } else { "tcp" })
                    .unwrap();
                let pinned = pool
                    .slabs
                    .iter()
                    .filter(|s| !s.retainers.is_empty())
                    .count();
                assert!(pinned >= PINNING, "{} pinned slabs: {pinned}", snap.role);
                assert!(pool
                    .slabs
                    .iter()
                    .flat_map(|s| &s.retainers)
                    .any(|r| &*r.part == "upgrade request"
                        && r.label.starts_with("upgrade request of connection ")));
                assert!(
                    snap.totals.retained_per_referenced.unwrap() > 10.0,
                    "{:?}",
                    snap.totals
                );
            }
            assert!(proxy.totals.retained_bytes >= PINNING as u64 * (128 << 10));
            // The allocation registry finds each pinned slab as one allocation of its
            // size, holding the same retainers: the pools' bookkeeping, cross-checked.
            for snap in [&proxy, &wss] {
                let slabs: Vec<_> = snap.pools.iter().flat_map(|p| &p.slabs).collect();
                assert!(slabs.iter().all(|s| s.allocation_bytes == Some(s.size)));
                let pinned = &snap.pinned_allocations;
                let retaining: Vec<_> = slabs.iter().filter(|s| !s.retainers.is_empty()).collect();
                assert_eq!(pinned.allocations.len(), retaining.len(), "{}", snap.role);
                assert_eq!(
                    pinned.pinned_bytes,
                    retaining.iter().map(|s| s.size).sum::<u64>()
                );
                let mut kept: Vec<_> = pinned.allocations.iter().flat_map(|a| &a.kept).collect();
                let mut held: Vec<_> = retaining.iter().flat_map(|s| &s.retainers).collect();
                kept.sort_by_key(|r| (r.connection, r.part.to_string(), r.bytes));
                held.sort_by_key(|r| (r.connection, r.part.to_string(), r.bytes));
                assert_eq!(kept, held, "{}: the same retainers", snap.role);
                assert_eq!(pinned.unattributed_parts, 0);
            }
        }
        HeadMode::Copy | HeadMode::CopyUnpooled | HeadMode::Drop => {
            for (snap, pool) in [(&proxy, "tls"), (&proxy, "tcp"), (&wss, "tcp")] {
                assert!(
                    live(snap, pool) <= 2,
                    "{} {pool}: {:#?}",
                    snap.role,
                    snap.pool(pool)
                );
                assert!(snap
                    .pool(pool)
                    .unwrap()
                    .slabs
                    .iter()
                    .all(|s| s.retainers.is_empty()));
            }
            assert!(wss.pool("tcp").unwrap().slabs_allocated_total > PINNING as u64);
            for snap in [&proxy, &wss] {
                let buffer = snap.pool("buffer").expect("the buffer pool");
                let mut keeping: Vec<u64> = buffer
                    .slabs
                    .iter()
                    .flat_map(|s| &s.retainers)
                    .map(|r| r.connection)
                    .collect();
                keeping.dedup();
                let pinned = &snap.pinned_allocations.allocations;
                if mode == HeadMode::Copy {
                    // Each small copy is carved from a buffer pool chunk, which it pins.
                    assert!(keeping.len() >= PINNING, "{}: {buffer:#?}", snap.role);
                    assert!(!pinned.is_empty(), "{}", snap.role);
                    assert!(
                        pinned.iter().all(|a| a.size == buffer.slab_size),
                        "{}: only buffer chunks are pinned: {pinned:#?}",
                        snap.role
                    );
                } else {
                    assert!(keeping.is_empty(), "{}: {buffer:#?}", snap.role);
                    assert!(pinned.is_empty(), "{}: {pinned:#?}", snap.role);
                }
            }
        }
    }
    // Closing the pinning connections frees what they held.
    for mut ws in pinning {
        ws.close(None).await.unwrap();
    }
    wait_until("every slab freed but the current ones", || async {
        let proxy = pg.snapshot(&pg.proxy).await;
        let wss = pg.snapshot(&pg.wss).await;
        proxy.connections.open == 0
            && wss.connections.open == 0
            && live(&proxy, "tls") <= 1
            && live(&proxy, "tcp") <= 1
            && live(&wss, "tcp") <= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_pins_a_slab_per_connection_on_both_servers() {
    run_mode(HeadMode::Retain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_keeps_at_most_two_read_slabs_per_pool_and_pins_buffer_chunks() {
    run_mode(HeadMode::Copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_unpooled_keeps_at_most_two_slabs_per_pool_and_pins_nothing() {
    run_mode(HeadMode::CopyUnpooled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_keeps_at_most_two_slabs_per_pool() {
    run_mode(HeadMode::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_head_mode_applies_to_new_connections() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let _old = pg.open().await;
    for server in [&pg.proxy, &pg.wss] {
        let body = serde_json::json!({ "head_mode": "copy_unpooled" });
        let answer = client::fetch::put_json(server.snapshot_addr, "/settings", &body)
            .await
            .unwrap();
        assert_eq!(answer["head_mode"], "copy_unpooled");
        let bad = serde_json::json!({ "head_mode": "keep" });
        let refused = client::fetch::put_json(server.snapshot_addr, "/settings", &bad).await;
        assert!(refused.is_err(), "a bad mode is refused");
    }
    let _new = pg.open().await;
    for server in [&pg.proxy, &pg.wss] {
        let snap = pg.snapshot(server).await;
        assert_eq!(
            snap.settings.head_mode,
            Some(HeadMode::CopyUnpooled),
            "{}",
            snap.role
        );
        assert_eq!(snap.settings.head_mode_applies_to, "new connections");
        let by_mode = &snap.connections.open_by_head_mode;
        assert_eq!(
            (
                by_mode.retain,
                by_mode.copy,
                by_mode.copy_unpooled,
                by_mode.drop
            ),
            (1, 0, 1, 0),
            "{}",
            snap.role
        );
        let retainers: Vec<_> = snap
            .pools
            .iter()
            .flat_map(|p| &p.slabs)
            .flat_map(|s| &s.retainers)
            .collect();
        assert_eq!(
            retainers.len(),
            1,
            "only the old connection retains: {retainers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slab_is_freed_when_its_last_retaining_connection_closes() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let mut pinning = pin(&pg).await;
    let before = pg.snapshot(&pg.wss).await;
    let first = pinning.remove(0);
    let held: Vec<u64> = before
        .pool("tcp")
        .unwrap()
        .slabs
        .iter()
        .filter(|s| s.retainers.len() == 1 && !s.current)
        .map(|s| s.id)
        .collect();
    assert!(
        held.len() >= PINNING - 1,
        "slabs held by one connection: {held:?}"
    );
    drop(first); // vanishes without a close frame
    wait_until("one pinned slab freed on each server", || async {
        let wss = pg.snapshot(&pg.wss).await;
        let proxy = pg.snapshot(&pg.proxy).await;
        wss.pool("tcp").unwrap().slabs_freed_total > before.pool("tcp").unwrap().slabs_freed_total
            && live(&wss, "tcp") < live(&before, "tcp")
            && proxy.connections.open as usize == PINNING - 1
    })
    .await;
    assert_eq!(pinning.len(), PINNING - 1);
}
