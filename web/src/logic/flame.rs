//! The flame graph of retained bytes by retaining path: the tree of frames, the
//! rectangles an icicle graph draws (root on top, each frame as wide as its bytes),
//! zooming into a frame and back out, and the tree of what grew (or shrank) between
//! two snapshots.
//!
//! The paths are `snapshot::paths`', the very ones the servers' pprof profiles
//! hold, so the page and `go tool pprof` show the same stacks and bytes.

use std::collections::BTreeMap;

use snapshot::paths::{self, FrameKind};
use snapshot::Snapshot;

/// One frame of the tree: its bytes are those of every path through it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// As shown: `connection 17`, `tcp slab #3`.
    pub label: String,
    pub kind: FrameKind,
    pub bytes: u64,
    pub parent: Option<usize>,
    /// Largest first (then by label).
    pub children: Vec<usize>,
}

/// The tree of frames; node 0 is the root (the process).
#[derive(Debug, Clone, PartialEq)]
pub struct Flame {
    pub nodes: Vec<Node>,
}

/// Which way a difference of two snapshots is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Bytes a path holds more in the second snapshot.
    Grew,
    /// Bytes a path holds less (freed) in the second snapshot.
    Shrank,
}

/// One rectangle to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Rect {
    /// The node it draws.
    pub node: usize,
    /// Row, 0 at the top (the root).
    pub depth: usize,
    /// Left edge and width, fractions of the graph's width.
    pub x: f64,
    pub width: f64,
    /// An ancestor of the frame zoomed into (drawn full width; a click zooms out to it).
    pub ancestor: bool,
}

/// A path as (label, kind) frames, root first, with its bytes.
type Weighted = (Vec<(String, FrameKind)>, u64);

fn weighted(snap: &Snapshot) -> Vec<Weighted> {
    paths::of(snap)
        .paths
        .into_iter()
        .map(|p| {
            let frames = p.frames.iter().map(|f| (f.label(), f.kind)).collect();
            (frames, p.bytes)
        })
        .collect()
}

/// CSS class and `data-kind` of a frame kind.
pub fn kind_name(kind: FrameKind) -> &'static str {
    match kind {
        FrameKind::Process => "process",
        FrameKind::Pool => "pool",
        FrameKind::Stack => "stack",
        FrameKind::Connection => "connection",
        FrameKind::Part => "part",
        FrameKind::Reason => "reason",
        FrameKind::Slab => "slab",
        FrameKind::Allocation => "allocation",
        FrameKind::ConnectionState => "state",
        FrameKind::Unattributed => "unattributed",
    }
}

impl Flame {
    /// A graph of nothing: the root alone, of 0 bytes.
    pub fn empty() -> Flame {
        Flame::from_paths("process", Vec::new())
    }

    /// The tree of `snap`'s retaining paths.
    pub fn of(snap: &Snapshot) -> Flame {
        Flame::from_paths(&paths::process_name(snap), weighted(snap))
    }

    /// The tree of what each path holds more (or less) in `after` than in `before`:
    /// paths matched by their frames, each drawn with the size of its change.
    pub fn change(before: &Snapshot, after: &Snapshot, change: Change) -> Flame {
        let mut delta: BTreeMap<Vec<(String, FrameKind)>, i128> = BTreeMap::new();
        for (frames, bytes) in weighted(after) {
            *delta.entry(frames).or_default() += bytes as i128;
        }
        for (frames, bytes) in weighted(before) {
            *delta.entry(frames).or_default() -= bytes as i128;
        }
        let paths = delta
            .into_iter()
            .filter_map(|(frames, d)| {
                let d = match change {
                    Change::Grew => d,
                    Change::Shrank => -d,
                };
                (d > 0).then_some((frames, d as u64))
            })
            .collect();
        Flame::from_paths(&paths::process_name(after), paths)
    }

    /// The tree of weighted paths under a root named `root` (every path's first frame
    /// is the root's; a path that starts elsewhere hangs under it whole).
    fn from_paths(root: &str, paths: Vec<Weighted>) -> Flame {
        let mut nodes = vec![Node {
            label: root.to_string(),
            kind: FrameKind::Process,
            bytes: 0,
            parent: None,
            children: Vec::new(),
        }];
        let mut index: BTreeMap<(usize, String), usize> = BTreeMap::new();
        for (frames, bytes) in paths {
            if bytes == 0 {
                continue;
            }
            nodes[0].bytes += bytes;
            let below_root = match frames.first() {
                Some((label, FrameKind::Process)) if label == root => &frames[1..],
                _ => &frames[..],
            };
            let mut at = 0;
            for (label, kind) in below_root {
                let next = match index.get(&(at, label.clone())) {
                    Some(n) => *n,
                    None => {
                        nodes.push(Node {
                            label: label.clone(),
                            kind: *kind,
                            bytes: 0,
                            parent: Some(at),
                            children: Vec::new(),
                        });
                        let n = nodes.len() - 1;
                        nodes[at].children.push(n);
                        index.insert((at, label.clone()), n);
                        n
                    }
                };
                nodes[next].bytes += bytes;
                at = next;
            }
        }
        let order: Vec<(u64, String)> = nodes.iter().map(|n| (n.bytes, n.label.clone())).collect();
        for node in &mut nodes {
            node.children.sort_by(|a, b| {
                order[*b]
                    .0
                    .cmp(&order[*a].0)
                    .then_with(|| order[*a].1.cmp(&order[*b].1))
            });
        }
        Flame { nodes }
    }

    /// Bytes of the whole graph.
    pub fn total(&self) -> u64 {
        self.nodes[0].bytes
    }

    /// Labels from the root to `node`, the root's included.
    pub fn path(&self, node: usize) -> Vec<String> {
        let mut path = Vec::new();
        let mut at = Some(node);
        while let Some(n) = at {
            path.push(self.nodes[n].label.clone());
            at = self.nodes[n].parent;
        }
        path.reverse();
        path
    }

    /// The node at `path` (labels from the root), if the tree has it: how a zoom
    /// is kept across a new snapshot.
    pub fn find(&self, path: &[String]) -> Option<usize> {
        let (first, rest) = path.split_first()?;
        if *first != self.nodes[0].label {
            return None;
        }
        rest.iter().try_fold(0, |at, label| {
            self.nodes[at]
                .children
                .iter()
                .copied()
                .find(|c| self.nodes[*c].label == *label)
        })
    }

    /// Where a click on `clicked` zooms to when the graph is zoomed into `focus`:
    /// into it, or, on the frame zoomed into, out to its parent.
    pub fn zoom(&self, focus: usize, clicked: usize) -> usize {
        if clicked == focus {
            self.nodes[focus].parent.unwrap_or(0)
        } else {
            clicked
        }
    }

    /// The rectangles to draw when zoomed into `focus`: its ancestors and itself full
    /// width, each descendant as wide as its share of `focus`'s bytes; frames
    /// narrower than `min_width` (and all below them) are left out.
    pub fn layout(&self, focus: usize, min_width: f64) -> Vec<Rect> {
        let mut rects = Vec::new();
        let ancestors = self.path_nodes(focus);
        for (depth, node) in ancestors.iter().enumerate() {
            rects.push(Rect {
                node: *node,
                depth,
                x: 0.0,
                width: 1.0,
                ancestor: *node != focus,
            });
        }
        let whole = self.nodes[focus].bytes;
        if whole == 0 {
            return rects;
        }
        let mut stack = vec![(focus, ancestors.len() - 1, 0.0)];
        while let Some((node, depth, x)) = stack.pop() {
            let mut left = x;
            for child in &self.nodes[node].children {
                let width = self.nodes[*child].bytes as f64 / whole as f64;
                if width >= min_width {
                    rects.push(Rect {
                        node: *child,
                        depth: depth + 1,
                        x: left,
                        width,
                        ancestor: false,
                    });
                    stack.push((*child, depth + 1, left));
                }
                left += width;
            }
        }
        rects
    }

    /// Nodes from the root to `node`.
    fn path_nodes(&self, node: usize) -> Vec<usize> {
        let mut path = vec![node];
        while let Some(parent) = self.nodes[*path.last().unwrap()].parent {
            path.push(parent);
        }
        path.reverse();
        path
    }

    /// Rows the layout of `focus` takes: the depth of its deepest frame, plus one.
    pub fn rows(rects: &[Rect]) -> usize {
        rects.iter().map(|r| r.depth + 1).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
