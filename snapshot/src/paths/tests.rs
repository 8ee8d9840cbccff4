//! Tests of the retaining paths: every byte counted once, the totals the
//! snapshot's, shared slabs split, the warp stack's allocations under the stack.

use super::*;
use crate::heapsnapshot::synthetic_proxy;
use crate::*;

fn names(p: &RetainingPath) -> Vec<String> {
    p.frames.iter().map(Frame::label).collect()
}

#[test]
fn each_pinned_slab_is_reached_through_its_connection_and_part() {
    let snap = synthetic_proxy(3);
    let paths = of(&snap);
    let slab_paths: Vec<&RetainingPath> = paths
        .paths
        .iter()
        .filter(|p| p.frames.last().unwrap().kind == FrameKind::Slab)
        .collect();
    // Two parts (request and head) per slab.
    assert_eq!(slab_paths.len(), 6);
    assert_eq!(
        names(slab_paths[0]),
        [
            "process proxy",
            "pool tls",
            "connection 1",
            "upgrade request",
            "tls slab #1"
        ]
    );
    assert_eq!(
        names(slab_paths[1]),
        [
            "process proxy",
            "pool tls",
            "connection 1",
            "upgrade head",
            "tls slab #1"
        ]
    );
    // Each slab's bytes once, its object once.
    assert_eq!(
        slab_paths.iter().map(|p| p.bytes).sum::<u64>(),
        snap.totals.retained_bytes
    );
    assert_eq!(
        slab_paths.iter().map(|p| p.objects).sum::<u64>(),
        snap.totals.live_slabs
    );
    assert_eq!(slab_paths[0].bytes, slab_paths[1].bytes);
    assert!(slab_paths
        .iter()
        .all(|p| p.head_mode == Some(HeadMode::Retain) && p.pool.as_deref() == Some("tls")));
    // The slabs' own allocations are not counted again.
    assert!(!paths
        .paths
        .iter()
        .any(|p| p.frames.last().unwrap().kind == FrameKind::Allocation));
}

#[test]
fn the_total_is_the_allocators_allocated_bytes() {
    let snap = synthetic_proxy(4);
    let paths = of(&snap);
    assert_eq!(
        Some(paths.total_bytes),
        snap.process.allocator.allocated_bytes
    );
    assert_eq!(
        paths.paths.iter().map(|p| p.bytes).sum::<u64>(),
        paths.total_bytes
    );
    let last = paths.paths.last().unwrap();
    assert_eq!(names(last), ["process proxy", "(unattributed)"]);
    assert_eq!(Some(last.bytes), paths.unattributed);
    let own: u64 = snap.connections.list.iter().map(|c| c.own_bytes).sum();
    let states: u64 = paths
        .paths
        .iter()
        .filter(|p| p.frames.last().unwrap().kind == FrameKind::ConnectionState)
        .map(|p| p.bytes)
        .sum();
    assert_eq!(states, own);
    assert_eq!(
        last.bytes,
        snap.process.allocator.allocated_bytes.unwrap() - snap.totals.retained_bytes - own
    );
}

#[test]
fn unreadable_allocated_bytes_leave_out_unattributed() {
    let mut snap = synthetic_proxy(2);
    snap.process.allocator.allocated_bytes = None;
    let paths = of(&snap);
    assert_eq!(paths.unattributed, None);
    assert!(paths
        .paths
        .iter()
        .all(|p| p.frames.last().unwrap().kind != FrameKind::Unattributed));
    let own: u64 = snap.connections.list.iter().map(|c| c.own_bytes).sum();
    assert_eq!(paths.total_bytes, snap.totals.retained_bytes + own);
}

#[test]
fn slabs_nobody_keeps_say_why_they_live() {
    let mut snap = synthetic_proxy(3);
    for slab in &mut snap.pools[0].slabs {
        if slab.id != 2 {
            slab.retainers.clear();
        }
    }
    let paths = of(&snap);
    let reasons: Vec<Vec<String>> = paths
        .paths
        .iter()
        .filter(|p| p.frames.iter().any(|f| f.kind == FrameKind::Reason))
        .map(names)
        .collect();
    assert_eq!(
        reasons,
        [
            [
                "process proxy",
                "pool tls",
                "(views in flight)",
                "tls slab #1"
            ],
            ["process proxy", "pool tls", "(current slab)", "tls slab #3"],
        ]
    );
}

#[test]
fn a_slab_kept_by_three_parts_is_split_with_the_remainder_on_the_first() {
    let mut snap = synthetic_proxy(1);
    let slab = &mut snap.pools[0].slabs[0];
    slab.size = 1000;
    slab.retainers.push(Retainer::new(1, "header host", 9));
    let paths = of(&snap);
    let shares: Vec<(u64, u64)> = paths
        .paths
        .iter()
        .filter(|p| p.frames.last().unwrap().kind == FrameKind::Slab)
        .map(|p| (p.bytes, p.objects))
        .collect();
    assert_eq!(shares, [(334, 1), (333, 0), (333, 0)]);
}

/// The warp stack: kept header values and first messages lie in hyper's and
/// tungstenite's buffers, reached through the stack.
#[test]
fn pinned_allocations_hang_under_the_stack() {
    let mut snap = synthetic_proxy(0);
    snap.role = "wss".into();
    snap.pools.clear();
    snap.settings.stack = Some(Stack::Warp);
    let kept = |c: u64, part: &str, bytes: u64| Retainer::new(c, part, bytes);
    snap.pinned_allocations.allocations = vec![
        PinnedAllocation {
            id: 77,
            size: 8192,
            age_ms: 3000,
            kept_bytes: 30,
            kept: vec![kept(9, "header host", 14), kept(9, "header user-agent", 16)],
        },
        PinnedAllocation {
            id: 78,
            size: 131072,
            age_ms: 2900,
            kept_bytes: 100,
            kept: vec![kept(9, "first message", 100)],
        },
    ];
    snap.connections.list = vec![OpenConnection {
        id: 9,
        peer: None,
        head_mode: Some(HeadMode::Copy),
        age_ms: 3000,
        own_bytes: 900,
    }];
    snap.process.allocator.allocated_bytes = Some(500_000);
    let paths = of(&snap);
    let all: Vec<(Vec<String>, u64)> = paths.paths.iter().map(|p| (names(p), p.bytes)).collect();
    let path = |v: &[&str], bytes: u64| (v.iter().map(|s| s.to_string()).collect(), bytes);
    assert_eq!(
        all,
        [
            path(
                &[
                    "process wss",
                    "stack warp",
                    "connection 9",
                    "header host",
                    "pinned allocation #77"
                ],
                4096
            ),
            path(
                &[
                    "process wss",
                    "stack warp",
                    "connection 9",
                    "header user-agent",
                    "pinned allocation #77"
                ],
                4096
            ),
            path(
                &[
                    "process wss",
                    "stack warp",
                    "connection 9",
                    "first message",
                    "pinned allocation #78"
                ],
                131072
            ),
            path(
                &[
                    "process wss",
                    "stack warp",
                    "connection 9",
                    "(connection state)"
                ],
                900
            ),
            path(
                &["process wss", "(unattributed)"],
                500_000 - 8192 - 131072 - 900
            ),
        ]
    );
    assert!(paths.paths[..4]
        .iter()
        .all(|p| p.head_mode == Some(HeadMode::Copy) && p.pool.is_none()));
}

/// Any number of pools, any names: each shows up under its own frame.
#[test]
fn every_pool_shows_whatever_its_name() {
    let mut snap = synthetic_proxy(2);
    let mut buffer = snap.pools[0].clone();
    buffer.name = "buffer".into();
    for s in &mut buffer.slabs {
        s.size = 8192;
        s.allocation_id = s.allocation_id.map(|a| a + 100);
    }
    snap.pools.push(buffer);
    let paths = of(&snap);
    let leaves: HashSet<String> = paths
        .paths
        .iter()
        .map(|p| p.frames.last().unwrap().name.clone())
        .collect();
    assert!(leaves.contains("buffer slab"), "{leaves:?}");
    assert!(paths
        .paths
        .iter()
        .any(|p| p.frames[1].name == "pool buffer" && p.pool.as_deref() == Some("buffer")));
}
