//! The snapshot's memory as retaining paths: who keeps which bytes alive, root first.
//!
//! Built from one [`Snapshot`] and nothing else, and read by both the pprof writer
//! ([`crate::pprof`], behind the `pprof` feature) and the page's flame graph, so the
//! two always agree. Each [`RetainingPath`] is a stack of [`Frame`]s with the bytes
//! and objects at its end:
//!
//! - a slab a connection keeps: `process wss` → `pool tcp` → `connection 17` →
//!   `upgrade head` → `tcp slab` (#3);
//! - a slab nobody keeps for a connection's life: `process wss` → `pool tcp` →
//!   `(current slab)` or `(views in flight)` → `tcp slab`;
//! - a pinned allocation that is not a slab (warp stack's read buffers):
//!   `process wss` → `stack warp` → `connection 17` → `header sec-websocket-key` →
//!   `pinned allocation` (#42);
//! - each open connection's own state: `process wss` → `stack warp` →
//!   `connection 17` → `(connection state)`;
//! - what the allocator holds beyond all that: `process wss` → `(unattributed)`.
//!
//! A slab or allocation kept by several parts is shared between their paths: its
//! bytes are split evenly (the first path takes the remainder) and its one object
//! counts on the first path, so every byte is counted once. The paths' total is
//! then the allocator's `allocated_bytes`, as in the `.heapsnapshot`, unless what
//! the paths attribute exceeds it, or it is unreadable (`null`): then the total is
//! what they attribute and there is no `(unattributed)` path.
//!
//! Leaves are named by kind (`tcp slab`, `pinned allocation`) and carry their id in
//! [`Frame::id`], so tools that group by name (pprof's `-top`) add up all the
//! slabs of a pool, while a flame graph can still tell them apart.

use std::collections::{HashMap, HashSet};

use crate::{HeadMode, Retainer, Snapshot};

/// What a frame stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameKind {
    /// The process (`process wss`): every path's root.
    Process,
    /// A slab pool (`pool tcp`).
    Pool,
    /// The server stack, over what is not in a pool (`stack warp`).
    Stack,
    /// An open connection (`connection 17`).
    Connection,
    /// What a connection keeps (`upgrade head`, `header host`, `first message`).
    Part,
    /// Why a slab no connection keeps is alive (`(current slab)`, `(views in flight)`).
    Reason,
    /// A slab (`tcp slab`, its id in [`Frame::id`]).
    Slab,
    /// A tracked allocation that is not a slab (`pinned allocation`, its registry id).
    Allocation,
    /// A connection's own state (`(connection state)`).
    ConnectionState,
    /// What the allocator holds that no frame above names (`(unattributed)`).
    Unattributed,
}

/// One frame of a retaining path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub kind: FrameKind,
    /// The name tools show and group by: `connection 17`, `tcp slab`.
    pub name: String,
    /// The slab's, allocation's or connection's own id, where the frame has one.
    pub id: Option<u64>,
}

impl Frame {
    fn new(kind: FrameKind, name: impl Into<String>, id: Option<u64>) -> Frame {
        Frame {
            kind,
            name: name.into(),
            id,
        }
    }

    /// The name with the id of a slab or allocation (`tcp slab #3`); the name alone
    /// for the other kinds, whose names already say which.
    pub fn label(&self) -> String {
        match (self.kind, self.id) {
            (FrameKind::Slab | FrameKind::Allocation, Some(id)) => format!("{} #{id}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Bytes and objects kept alive along one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainingPath {
    /// Root (the process) first, the slab or allocation last.
    pub frames: Vec<Frame>,
    /// Bytes this path accounts for (its share of the leaf).
    pub bytes: u64,
    /// Objects this path accounts for: 1 on the first path to a slab or
    /// allocation, 0 on the others that share it.
    pub objects: u64,
    /// Head mode of the connection on the path, if there is one and it is known.
    pub head_mode: Option<HeadMode>,
    /// The pool the bytes lie in, for slabs.
    pub pool: Option<String>,
}

/// All the retaining paths of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub paths: Vec<RetainingPath>,
    /// Sum of the paths' bytes.
    pub total_bytes: u64,
    /// Bytes of the `(unattributed)` path; `None` when the allocator's allocated
    /// bytes are unreadable and there is no such path.
    pub unattributed: Option<u64>,
}

/// Name of the root frame of `snap`: `process wss`.
pub fn process_name(snap: &Snapshot) -> String {
    format!("process {}", snap.role)
}

/// The retaining paths of `snap` (see the module's documentation), in a stable order:
/// pools and their slabs as listed, then pinned allocations, connections' own state,
/// and `(unattributed)`.
pub fn of(snap: &Snapshot) -> Paths {
    let root = Frame::new(FrameKind::Process, process_name(snap), None);
    let modes: HashMap<u64, Option<HeadMode>> = snap
        .connections
        .list
        .iter()
        .map(|c| (c.id, c.head_mode))
        .collect();
    let stack_frame = Frame::new(
        FrameKind::Stack,
        match snap.settings.stack {
            Some(stack) => format!("stack {stack}"),
            None => "connections".to_string(),
        },
        None,
    );
    let mut paths = Vec::new();

    // Slabs, by pool.
    let mut slab_allocations = HashSet::new();
    let mut slab_parts = HashSet::new();
    let mut slab_ids_known = true;
    for pool in &snap.pools {
        let pool_frame = Frame::new(FrameKind::Pool, format!("pool {}", pool.name), None);
        for slab in &pool.slabs {
            let leaf = Frame::new(
                FrameKind::Slab,
                format!("{} slab", pool.name),
                Some(slab.id),
            );
            match slab.allocation_id {
                Some(a) => {
                    slab_allocations.insert(a);
                }
                None => slab_ids_known = false,
            }
            for r in &slab.retainers {
                slab_parts.insert((r.connection, &*r.part));
            }
            if slab.retainers.is_empty() {
                let reason = if slab.current {
                    "(current slab)"
                } else {
                    "(views in flight)"
                };
                paths.push(RetainingPath {
                    frames: vec![
                        root.clone(),
                        pool_frame.clone(),
                        Frame::new(FrameKind::Reason, reason, None),
                        leaf,
                    ],
                    bytes: slab.size,
                    objects: 1,
                    head_mode: None,
                    pool: Some(pool.name.clone()),
                });
            } else {
                shared(
                    &mut paths,
                    &slab.retainers,
                    slab.size,
                    |r| connection_path(&root, &pool_frame, r, &leaf),
                    |r| modes.get(&r.connection).copied().flatten(),
                    Some(&pool.name),
                );
            }
        }
    }

    // Pinned allocations that are not slabs (the same test as the .heapsnapshot's).
    for a in &snap.pinned_allocations.allocations {
        let is_slab = slab_allocations.contains(&a.id)
            || (!slab_ids_known
                && a.kept
                    .iter()
                    .all(|k| slab_parts.contains(&(k.connection, &*k.part))));
        if is_slab || a.kept.is_empty() {
            continue;
        }
        let leaf = Frame::new(FrameKind::Allocation, "pinned allocation", Some(a.id));
        shared(
            &mut paths,
            &a.kept,
            a.size,
            |r| connection_path(&root, &stack_frame, r, &leaf),
            |r| modes.get(&r.connection).copied().flatten(),
            None,
        );
    }

    // Each open connection's own state.
    for c in &snap.connections.list {
        if c.own_bytes == 0 {
            continue;
        }
        paths.push(RetainingPath {
            frames: vec![
                root.clone(),
                stack_frame.clone(),
                connection_frame(c.id),
                Frame::new(FrameKind::ConnectionState, "(connection state)", None),
            ],
            bytes: c.own_bytes,
            objects: 1,
            head_mode: c.head_mode,
            pool: None,
        });
    }

    // The rest of what the allocator holds.
    let attributed: u64 = paths.iter().map(|p| p.bytes).sum();
    let unattributed = snap
        .process
        .allocator
        .allocated_bytes
        .map(|allocated| allocated.saturating_sub(attributed));
    if let Some(rest) = unattributed.filter(|rest| *rest > 0) {
        paths.push(RetainingPath {
            frames: vec![
                root,
                Frame::new(FrameKind::Unattributed, "(unattributed)", None),
            ],
            bytes: rest,
            objects: 0,
            head_mode: None,
            pool: None,
        });
    }
    Paths {
        total_bytes: attributed + unattributed.unwrap_or(0),
        paths,
        unattributed,
    }
}

fn connection_frame(id: u64) -> Frame {
    Frame::new(FrameKind::Connection, format!("connection {id}"), Some(id))
}

/// `root` → `parent` → the retainer's connection → its part → `leaf`.
fn connection_path(root: &Frame, parent: &Frame, r: &Retainer, leaf: &Frame) -> Vec<Frame> {
    vec![
        root.clone(),
        parent.clone(),
        connection_frame(r.connection),
        Frame::new(FrameKind::Part, &*r.part, None),
        leaf.clone(),
    ]
}

/// One path per retainer of an object of `size` bytes, sharing its bytes evenly
/// (the first takes the remainder) and its one object (the first takes it).
fn shared(
    paths: &mut Vec<RetainingPath>,
    retainers: &[Retainer],
    size: u64,
    frames: impl Fn(&Retainer) -> Vec<Frame>,
    mode: impl Fn(&Retainer) -> Option<HeadMode>,
    pool: Option<&str>,
) {
    let n = retainers.len() as u64;
    let (share, remainder) = (size / n, size % n);
    for (i, r) in retainers.iter().enumerate() {
        paths.push(RetainingPath {
            frames: frames(r),
            bytes: share + if i == 0 { remainder } else { 0 },
            objects: u64::from(i == 0),
            head_mode: mode(r),
            pool: pool.map(str::to_string),
        });
    }
}

#[cfg(test)]
mod tests;
