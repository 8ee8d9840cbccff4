//! Tests of the flame graph's tree, layout, zoom and differences.

use super::*;
use crate::logic::fixtures::{pool, snapshot, with_pools, MIB};

/// Slabs 1 (connections 7, 8) and 2 (connection 9) pinned, 3 kept by nobody.
fn wss() -> Snapshot {
    snapshot(&[(1, &[7, 8]), (2, &[9]), (3, &[])], 3)
}

fn node(f: &Flame, path: &[&str]) -> usize {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    f.find(&path)
        .unwrap_or_else(|| panic!("no {path:?} in {f:#?}"))
}

#[test]
fn the_tree_adds_up_the_paths_largest_first() {
    let snap = wss();
    let f = Flame::of(&snap);
    assert_eq!(f.nodes[0].label, "process wss");
    assert_eq!(
        Some(f.total()),
        snap.process.allocator.allocated_bytes,
        "the root holds what the allocator holds"
    );
    let pool = node(&f, &["process wss", "pool tcp"]);
    assert_eq!(f.nodes[pool].bytes, 3 * MIB);
    // Largest first: the allocator's other 10 MiB, then the pool's 3 MiB.
    let children: Vec<&str> = f.nodes[0]
        .children
        .iter()
        .map(|c| f.nodes[*c].label.as_str())
        .collect();
    assert_eq!(children, ["(unattributed)", "pool tcp"]);
    let c9 = node(&f, &["process wss", "pool tcp", "connection 9"]);
    assert_eq!(f.nodes[c9].bytes, MIB);
    // Slab 1 is shared by connections 7 and 8: half each.
    let c7 = node(
        &f,
        &[
            "process wss",
            "pool tcp",
            "connection 7",
            "upgrade head",
            "tcp slab #1",
        ],
    );
    assert_eq!(f.nodes[c7].bytes, MIB / 2);
    assert_eq!(f.nodes[c7].kind, FrameKind::Slab);
    let nobody = node(
        &f,
        &[
            "process wss",
            "pool tcp",
            "(views in flight)",
            "tcp slab #3",
        ],
    );
    assert_eq!(f.nodes[nobody].bytes, MIB);
    // Each node's bytes are its children's, where it has children.
    for n in &f.nodes {
        if !n.children.is_empty() {
            assert_eq!(
                n.bytes,
                n.children.iter().map(|c| f.nodes[*c].bytes).sum::<u64>(),
                "{}",
                n.label
            );
        }
    }
    assert_eq!(f.path(c9), ["process wss", "pool tcp", "connection 9"]);
}

#[test]
fn the_layout_tiles_each_row_by_bytes() {
    let f = Flame::of(&wss());
    let rects = f.layout(0, 0.0);
    assert_eq!(rects.len(), f.nodes.len(), "every frame drawn");
    assert_eq!(
        rects[0],
        Rect {
            node: 0,
            depth: 0,
            x: 0.0,
            width: 1.0,
            ancestor: false
        }
    );
    let total = f.total() as f64;
    for r in &rects {
        assert!((r.width - f.nodes[r.node].bytes as f64 / total).abs() < 1e-12);
        assert!(r.x >= 0.0 && r.x + r.width <= 1.0 + 1e-12, "{r:?}");
        // Within its parent.
        if let Some(p) = f.nodes[r.node].parent {
            let parent = rects.iter().find(|q| q.node == p).unwrap();
            assert_eq!(r.depth, parent.depth + 1);
            assert!(r.x >= parent.x - 1e-12 && r.x + r.width <= parent.x + parent.width + 1e-12);
        }
    }
    // Siblings side by side, no overlap, largest left.
    let pool = node(&f, &["process wss", "pool tcp"]);
    let kids: Vec<&Rect> = rects
        .iter()
        .filter(|r| f.nodes[r.node].parent == Some(pool))
        .collect();
    for w in kids.windows(2) {
        assert!((w[0].x + w[0].width - w[1].x).abs() < 1e-12);
        assert!(w[0].width >= w[1].width);
    }
    assert_eq!(Flame::rows(&rects), 5);
}

#[test]
fn zooming_in_makes_the_frame_full_width_and_a_click_on_it_zooms_out() {
    let f = Flame::of(&wss());
    let pool = node(&f, &["process wss", "pool tcp"]);
    let c7 = node(&f, &["process wss", "pool tcp", "connection 7"]);
    assert_eq!(f.zoom(0, pool), pool);
    let rects = f.layout(pool, 0.0);
    let root = rects.iter().find(|r| r.node == 0).unwrap();
    assert!(root.ancestor && root.width == 1.0);
    let focus = rects.iter().find(|r| r.node == pool).unwrap();
    assert!(!focus.ancestor && focus.width == 1.0 && focus.depth == 1);
    // (unattributed) is not under the pool: not drawn.
    assert!(rects
        .iter()
        .all(|r| f.nodes[r.node].kind != FrameKind::Unattributed));
    let c7_rect = rects.iter().find(|r| r.node == c7).unwrap();
    assert!((c7_rect.width - 0.5 / 3.0).abs() < 1e-12, "{c7_rect:?}");
    // A click on the frame zoomed into goes out to its parent; on an ancestor, to it.
    assert_eq!(f.zoom(pool, pool), 0);
    assert_eq!(f.zoom(c7, 0), 0);
    assert_eq!(f.zoom(0, 0), 0);
}

#[test]
fn narrow_frames_and_all_below_them_are_left_out() {
    let f = Flame::of(&wss());
    // Each connection's frame is under a seventh of the whole.
    let rects = f.layout(0, 0.15);
    assert!(rects
        .iter()
        .all(|r| f.nodes[r.node].kind != FrameKind::Connection
            && f.nodes[r.node].kind != FrameKind::Slab));
    assert!(rects.iter().any(|r| f.nodes[r.node].label == "pool tcp"));
}

#[test]
fn a_zoom_is_found_again_in_a_new_snapshot_by_its_path() {
    let f = Flame::of(&wss());
    let c9 = node(&f, &["process wss", "pool tcp", "connection 9"]);
    let later = Flame::of(&snapshot(&[(2, &[9]), (4, &[10])], 2));
    assert!(later.find(&f.path(c9)).is_some());
    let c7 = node(&f, &["process wss", "pool tcp", "connection 7"]);
    assert_eq!(later.find(&f.path(c7)), None);
    assert_eq!(later.find(&["process proxy".to_string()]), None);
}

#[test]
fn the_difference_draws_what_grew_or_what_shrank() {
    let before = wss();
    // Connection 7 and 8 closed (slab 1 freed); connection 10 pins slab 4.
    let after = snapshot(&[(2, &[9]), (3, &[]), (4, &[10])], 2);
    let grew = Flame::change(&before, &after, Change::Grew);
    let slab4 = node(
        &grew,
        &[
            "process wss",
            "pool tcp",
            "connection 10",
            "upgrade head",
            "tcp slab #4",
        ],
    );
    assert_eq!(grew.nodes[slab4].bytes, MIB);
    assert!(
        grew.find(&[
            "process wss".into(),
            "pool tcp".into(),
            "connection 9".into()
        ])
        .is_none(),
        "what stayed did not grow"
    );
    let shrank = Flame::change(&before, &after, Change::Shrank);
    let c7 = node(&shrank, &["process wss", "pool tcp", "connection 7"]);
    let c8 = node(&shrank, &["process wss", "pool tcp", "connection 8"]);
    assert_eq!(shrank.nodes[c7].bytes + shrank.nodes[c8].bytes, MIB);
    // The allocator's other bytes did not move: (unattributed) moved by the slabs'
    // difference only (the fixture's allocated bytes are 10 MiB + the slabs).
    assert_eq!(grew.total(), MIB);
    assert_eq!(shrank.total(), MIB);
    // Nothing changed: an empty graph, the root only.
    let same = Flame::change(&before, &before, Change::Grew);
    assert_eq!(same.total(), 0);
    assert_eq!(same.layout(0, 0.0).len(), 1);
}

#[test]
fn any_pool_shows_under_its_name() {
    let snap = with_pools(
        "wss",
        vec![
            pool("tcp", MIB, &[(1, &[7])]),
            pool("buffer", 8 << 10, &[(1, &[7])]),
        ],
        1,
    );
    let f = Flame::of(&snap);
    let buffer = node(
        &f,
        &[
            "process wss",
            "pool buffer",
            "connection 7",
            "upgrade head",
            "buffer slab #1",
        ],
    );
    assert_eq!(f.nodes[buffer].bytes, 8 << 10);
    assert_eq!(kind_name(f.nodes[buffer].kind), "slab");
}
