//! The snapshot as a Chrome heap snapshot (`.heapsnapshot`), the file Chrome
//! DevTools' Memory panel loads (and memlab reads), so the retaining tree the seed's
//! users read in Chrome's heap profiler shows our slabs and allocations.
//!
//! The graph is built from one [`Snapshot`] and nothing else:
//! - the root (synthetic) → `Process` → one `SlabPool` per pool, pointing at its
//!   slabs with **weak** edges (the pool tracks them weakly), at the current slab
//!   strongly (`current`), and at a slab no connection keeps with an `internal`
//!   edge (`views in flight`: only reads under way hold it);
//! - `Slab` (native; self size = the slab's size; `pool` and `age` properties, the
//!   pool's edge names its id) and `Allocation` (native; a pinned allocation that is
//!   not a slab; self size = its size);
//! - `Connection` per open connection (`connections.list`; self size = its
//!   `own_bytes`; `peer`, `head_mode`, `age` properties), reached from `Process`
//!   by an element edge whose index is the connection's id, and pointing at what it
//!   keeps: `UpgradeRequest`, `UpgradeHead`, `HeaderValue`, `Message` (self size =
//!   the kept bytes), each pointing at the `Slab` or `Allocation` its bytes lie in
//!   by an edge named with the retainer's label ("upgrade head of connection 17");
//! - `(unattributed)`: what the allocator holds beyond the self sizes above, so
//!   the file's total equals `process.allocator.allocated_bytes`. The kept bytes lie
//!   inside their slab or allocation and are counted in both (a few hundred bytes
//!   each); `(unattributed)` is smaller by as much. When `allocated_bytes` could not
//!   be read (`null`) there is no `(unattributed)` node: the file's total is what
//!   the graph attributes, and `Process` has an `allocated_bytes` property saying
//!   "unreadable: " and the snapshot's reason.
//!
//! Property values are `string` nodes of self size 0: they are no memory of the
//! process, and DevTools' Summary leaves them out.
//!
//! # Node ids
//!
//! DevTools' Comparison view matches two snapshots' objects by node id, so an id
//! must name one object for its whole life and never be reused. Every id here is
//! derived from an id the process itself never reuses: `id = 2 * (key << 3 | tag)
//! + 1` (odd, as V8's are), where `tag` is the kind of object and `key` its own id:
//!
//! | tag | objects | key |
//! | --- | --- | --- |
//! | 0 | root 0, `Process` 1, pools 2–9, shared strings 10–99, `(unattributed)` 100+ | fixed |
//! | 1 | `Slab` | slab id × 8 + pool slot (`tcp` 0, `tls` 1, others 2–7) |
//! | 2 | `Allocation` | the allocation registry's id |
//! | 3 | `Connection` | connection id |
//! | 4 | kept parts | connection id × 128 + the part's slot (request 0–3, head 4–7, first message 8, others 9–15, headers 16–127 in name order) |
//! | 5 | a connection's strings | connection id × 4 + property |
//! | 6 | a slab's strings | slab key × 4 + property |
//! | 7 | an allocation's strings | allocation id × 4 + property |
//!
//! Ids are 32-bit in the format: keys wrap after 2^28 objects of a kind (2^21
//! connections for the kept parts), past which Comparison may pair unrelated
//! objects. A string node keeps its id when its value changes (a connection's age).
//!
//! # Streaming
//!
//! [`write`](fn@write) builds the graph's nodes, edges and strings (about 30 bytes a node),
//! then writes the text in 64 KiB pieces to any [`Write`]: the file is never held
//! in memory whole.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Write};

use crate::{HeadMode, Snapshot};

/// File name extension DevTools' Load dialog looks for.
pub const EXTENSION: &str = "heapsnapshot";

/// Node fields, in V8's order.
const NODE_FIELDS: usize = 7;

// Node types (indexes into `node_types[0]`).
const STRING: u8 = 2;
const OBJECT: u8 = 3;
const NATIVE: u8 = 8;
const SYNTHETIC: u8 = 9;
// Edge types (indexes into `edge_types[0]`).
const ELEMENT: u8 = 1;
const PROPERTY: u8 = 2;
const INTERNAL: u8 = 3;
const WEAK: u8 = 6;

const META: &str = r#"{"node_fields":["type","name","id","self_size","edge_count","trace_node_id","detachedness"],"node_types":[["hidden","array","string","object","code","closure","regexp","number","native","synthetic","concatenated string","sliced string","symbol","bigint","object shape"],"string","number","number","number","number","number"],"edge_fields":["type","name_or_index","to_node"],"edge_types":[["context","element","property","internal","hidden","shortcut","weak"],"string_or_number","node"],"trace_function_info_fields":["function_id","name","script_name","script_id","line","column"],"trace_node_fields":["id","function_info_index","count","size","children"],"sample_fields":["timestamp_us","last_assigned_id"],"location_fields":["object_index","script_id","line","column"]}"#;

/// Kinds of object, the `tag` of their ids (see the module's documentation).
pub mod tag {
    pub const FIXED: u64 = 0;
    pub const SLAB: u64 = 1;
    pub const ALLOCATION: u64 = 2;
    pub const CONNECTION: u64 = 3;
    pub const PART: u64 = 4;
    pub const CONNECTION_STRING: u64 = 5;
    pub const SLAB_STRING: u64 = 6;
    pub const ALLOCATION_STRING: u64 = 7;
}

/// The node id of the object of kind `tag` whose own id is `key`.
pub fn node_id(tag: u64, key: u64) -> u32 {
    let n = ((key << 3) | tag) & ((1 << 31) - 1);
    (2 * n + 1) as u32
}

/// The pool's slot in slab ids: `tcp` 0, `tls` 1, any other its index + 2 (at most 7).
pub fn pool_slot(name: &str, index: usize) -> u64 {
    match name {
        "tcp" => 0,
        "tls" => 1,
        _ => (index as u64 + 2).min(7),
    }
}

/// The id of slab `slab_id` of the pool in `slot`.
pub fn slab_node_id(slot: u64, slab_id: u64) -> u32 {
    node_id(tag::SLAB, slab_id * 8 + slot)
}

/// The node id of connection `id`.
pub fn connection_node_id(id: u64) -> u32 {
    node_id(tag::CONNECTION, id)
}

/// The node id of pinned allocation `id` (the registry's id).
pub fn allocation_node_id(id: u64) -> u32 {
    node_id(tag::ALLOCATION, id)
}

/// The class (node name) of a kept part: `UpgradeRequest`, `UpgradeHead`,
/// `HeaderValue`, `Message`, or `KeptPart` for any other.
pub fn part_class(part: &str) -> &'static str {
    match part {
        "upgrade request" => "UpgradeRequest",
        "upgrade head" => "UpgradeHead",
        "first message" => "Message",
        p if p.starts_with("header ") => "HeaderValue",
        _ => "KeptPart",
    }
}

/// The name a download of `snap` gets: `<role>-<taken_at_ms>.heapsnapshot`
/// (`proxy-1750000000000.heapsnapshot`).
pub fn file_name(snap: &Snapshot) -> String {
    format!("{}-{}.{EXTENSION}", snap.role, snap.taken_at_ms)
}

/// What [`write`](fn@write) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub nodes: u64,
    pub edges: u64,
    pub strings: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Sum of the nodes' self sizes: the allocator's allocated bytes, unless what the
    /// graph attributes exceeds them (or they are unreadable: then what it attributes).
    pub total_size: u64,
    /// Self size of the `(unattributed)` node(s); `None` when the allocator's
    /// allocated bytes are unreadable and the file has no such node.
    pub unattributed: Option<u64>,
}

/// Writes `snap` as a `.heapsnapshot` to `out`, in pieces of 64 KiB.
pub fn write<W: Write>(snap: &Snapshot, out: W) -> io::Result<Written> {
    let graph = Graph::of(snap);
    graph.write(out)
}

/// The whole file in memory (for the page, tests and small snapshots).
pub fn to_vec(snap: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    write(snap, &mut out).expect("writing to a Vec does not fail");
    out
}

struct Node {
    ty: u8,
    name: u32,
    id: u32,
    size: u32,
}

struct Edge {
    from: u32,
    ty: u8,
    /// A string index, or the element's index.
    name: u32,
    to: u32,
}

/// A fast hash for the string table (FxHash's mixing; the keys are ours, not an
/// attacker's).
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        for b in chunks.remainder() {
            self.add(*b as u64);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// The graph of one snapshot: nodes, edges (in any order), interned strings.
struct Graph<'a> {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    strings: Vec<Cow<'a, str>>,
    index: FxMap<Cow<'a, str>, u32>,
    unattributed: Option<u64>,
}

/// A part a connection keeps, and the node its bytes lie in.
struct Part<'a> {
    connection: u64,
    part: &'a str,
    bytes: u64,
    label: &'a str,
    target: u32,
    target_id: u32,
}

impl<'a> Graph<'a> {
    fn new(nodes: usize, edges: usize) -> Graph<'a> {
        let mut g = Graph {
            nodes: Vec::with_capacity(nodes),
            edges: Vec::with_capacity(edges),
            strings: Vec::with_capacity(nodes / 2),
            index: FxMap::with_capacity_and_hasher(nodes / 2, Default::default()),
            unattributed: None,
        };
        g.string("");
        g
    }

    /// The index of `s` in the string table, added if new.
    fn string(&mut self, s: impl Into<Cow<'a, str>>) -> u32 {
        let s = s.into();
        if let Some(i) = self.index.get(&s) {
            return *i;
        }
        let i = self.strings.len() as u32;
        let copy = match &s {
            Cow::Borrowed(b) => Cow::Borrowed(*b),
            Cow::Owned(o) => Cow::Owned(o.clone()),
        };
        self.strings.push(copy);
        self.index.insert(s, i);
        i
    }

    /// Adds `s` to the string table without looking for it (a string met once).
    fn unique(&mut self, s: &'a str) -> u32 {
        self.strings.push(Cow::Borrowed(s));
        self.strings.len() as u32 - 1
    }

    fn node(&mut self, ty: u8, name: impl Into<Cow<'a, str>>, id: u32, size: u64) -> u32 {
        let name = self.string(name);
        self.node_named(ty, name, id, size)
    }

    fn node_named(&mut self, ty: u8, name: u32, id: u32, size: u64) -> u32 {
        self.nodes.push(Node {
            ty,
            name,
            id,
            size: size.min(u32::MAX as u64) as u32,
        });
        self.nodes.len() as u32 - 1
    }

    fn edge(&mut self, from: u32, ty: u8, name: impl Into<Cow<'a, str>>, to: u32) {
        let name = self.string(name);
        self.edge_named(from, ty, name, to);
    }

    fn edge_named(&mut self, from: u32, ty: u8, name: u32, to: u32) {
        self.edges.push(Edge { from, ty, name, to });
    }

    fn element(&mut self, from: u32, index: u64, to: u32) {
        self.edges.push(Edge {
            from,
            ty: ELEMENT,
            name: (index & u32::MAX as u64) as u32,
            to,
        });
    }

    /// A property of `from` whose value is a new string node.
    fn property(&mut self, from: u32, name: u32, value: u32, id: u32) {
        let to = self.node_named(STRING, value, id, 0);
        self.edge_named(from, PROPERTY, name, to);
    }

    fn of(snap: &'a Snapshot) -> Graph<'a> {
        let slabs: usize = snap.pools.iter().map(|p| p.slabs.len()).sum();
        let parts: usize = snap
            .pools
            .iter()
            .flat_map(|p| &p.slabs)
            .map(|s| s.retainers.len())
            .sum::<usize>()
            + snap
                .pinned_allocations
                .allocations
                .iter()
                .map(|a| a.kept.len())
                .sum::<usize>();
        let conns = snap.connections.list.len();
        let mut g = Graph::new(
            16 + 3 * slabs + 2 * parts + 3 * conns,
            16 + 4 * slabs + 2 * parts + 4 * conns,
        );
        let [s_age, s_pool, s_peer, s_mode, s_slab, s_connection, s_allocation] = [
            "age",
            "pool",
            "peer",
            "head_mode",
            "Slab",
            "Connection",
            "Allocation",
        ]
        .map(|s| g.string(s));
        let root = g.node(SYNTHETIC, "", node_id(tag::FIXED, 0), 0);
        let process = g.node(OBJECT, "Process", node_id(tag::FIXED, 1), 0);
        g.element(root, 1, process);
        let (role, value) = (g.string("role"), g.string(snap.role.as_str()));
        g.property(process, role, value, node_id(tag::FIXED, 10));
        let (pid, value) = (g.string("pid"), g.string(snap.process.pid.to_string()));
        g.property(process, pid, value, node_id(tag::FIXED, 11));
        let modes: Vec<u32> = HeadMode::ALL
            .iter()
            .enumerate()
            .map(|(i, m)| g.node(STRING, m.as_str(), node_id(tag::FIXED, 30 + i as u64), 0))
            .collect();

        // Pools and their slabs; the parts kept in slabs.
        let mut parts: Vec<Part> = Vec::new();
        let mut slab_allocations: HashSet<u64, BuildHasherDefault<Fx>> = HashSet::default();
        let mut slab_parts: HashSet<(u64, &str), BuildHasherDefault<Fx>> = HashSet::default();
        let mut slab_ids_known = true;
        for (i, pool) in snap.pools.iter().enumerate() {
            let slot = pool_slot(&pool.name, i);
            let pool_node = g.node(OBJECT, "SlabPool", node_id(tag::FIXED, 2 + slot), 0);
            g.edge(process, PROPERTY, pool.name.as_str(), pool_node);
            let pool_name = g.node(
                STRING,
                pool.name.as_str(),
                node_id(tag::FIXED, 20 + slot),
                0,
            );
            g.edge(pool_node, PROPERTY, "name", pool_name);
            for slab in &pool.slabs {
                let key = slab.id * 8 + slot;
                let id = node_id(tag::SLAB, key);
                let slab_node = g.node_named(NATIVE, s_slab, id, slab.size);
                g.edge_named(slab_node, PROPERTY, s_pool, pool_name);
                let value = g.string(age(slab.age_ms));
                g.property(slab_node, s_age, value, node_id(tag::SLAB_STRING, key * 4));
                if slab.current {
                    g.edge(pool_node, PROPERTY, "current", slab_node);
                } else if slab.retainers.is_empty() {
                    g.edge(pool_node, INTERNAL, "views in flight", slab_node);
                } else {
                    g.edge(pool_node, WEAK, format!("slab {}", slab.id), slab_node);
                }
                match slab.allocation_id {
                    Some(a) => {
                        slab_allocations.insert(a);
                    }
                    None => slab_ids_known = false,
                }
                for r in &slab.retainers {
                    slab_parts.insert((r.connection, &*r.part));
                    parts.push(Part {
                        connection: r.connection,
                        part: &r.part,
                        bytes: r.bytes,
                        label: &r.label,
                        target: slab_node,
                        target_id: id,
                    });
                }
            }
        }

        // Pinned allocations that are not slabs; the parts kept in them.
        for a in &snap.pinned_allocations.allocations {
            let is_slab = slab_allocations.contains(&a.id)
                || (!slab_ids_known
                    && a.kept
                        .iter()
                        .all(|k| slab_parts.contains(&(k.connection, &*k.part))));
            if is_slab {
                continue;
            }
            let id = allocation_node_id(a.id);
            let node = g.node_named(NATIVE, s_allocation, id, a.size);
            let value = g.string(age(a.age_ms));
            g.property(
                node,
                s_age,
                value,
                node_id(tag::ALLOCATION_STRING, a.id * 4),
            );
            for k in &a.kept {
                parts.push(Part {
                    connection: k.connection,
                    part: &k.part,
                    bytes: k.bytes,
                    label: &k.label,
                    target: node,
                    target_id: id,
                });
            }
        }

        // Connections.
        let mut connections: FxMap<u64, u32> = FxMap::default();
        for c in &snap.connections.list {
            let node = g.node_named(OBJECT, s_connection, connection_node_id(c.id), c.own_bytes);
            connections.insert(c.id, node);
            g.element(process, c.id, node);
            let strings = |p: u64| node_id(tag::CONNECTION_STRING, c.id * 4 + p);
            if let Some(peer) = &c.peer {
                let value = g.unique(peer);
                g.property(node, s_peer, value, strings(0));
            }
            if let Some(mode) = c.head_mode {
                let i = HeadMode::ALL.iter().position(|m| *m == mode).unwrap_or(0);
                g.edge_named(node, PROPERTY, s_mode, modes[i]);
            }
            let value = g.string(age(c.age_ms));
            g.property(node, s_age, value, strings(1));
        }

        // What each connection keeps, in a stable order per connection.
        parts.sort_by(|a, b| {
            (a.connection, rank(a.part), a.part, a.bytes, a.target_id).cmp(&(
                b.connection,
                rank(b.part),
                b.part,
                b.bytes,
                b.target_id,
            ))
        });
        let mut last = (u64::MAX, 0u32, 0u64); // connection, rank, slots used
        for p in &parts {
            let r = rank(p.part);
            let slot = if last.0 == p.connection && last.1 == r {
                last.2 += 1;
                last.2
            } else {
                last = (p.connection, r, 0);
                0
            };
            let slot = match r {
                0 => slot.min(3),
                1 => 4 + slot.min(3),
                2 => 8,
                3 => 9 + slot.min(6),
                _ => 16 + slot.min(111),
            };
            let owner = match connections.get(&p.connection) {
                Some(n) => *n,
                None => {
                    // Kept by a connection the list does not have (it opened or
                    // closed while the snapshot was taken): shown all the same.
                    let n = g.node_named(OBJECT, s_connection, connection_node_id(p.connection), 0);
                    g.element(process, p.connection, n);
                    connections.insert(p.connection, n);
                    n
                }
            };
            let node = g.node(
                OBJECT,
                part_class(p.part),
                node_id(tag::PART, p.connection * 128 + slot),
                p.bytes,
            );
            g.edge(owner, PROPERTY, p.part, node);
            let label = g.unique(p.label);
            g.edge_named(node, PROPERTY, label, p.target);
        }

        // The rest of what the allocator holds; nothing when that is unknown (a
        // node of 0 bytes would claim the graph attributes everything).
        let attributed: u64 = g.nodes.iter().map(|n| n.size as u64).sum();
        let Some(allocated) = snap.process.allocator.allocated_bytes else {
            let name = g.string("allocated_bytes");
            let why = snap.process.why_unreadable(crate::figure::ALLOCATED);
            let value = g.string(format!("unreadable: {why}"));
            g.property(process, name, value, node_id(tag::FIXED, 12));
            return g;
        };
        let mut rest = allocated.saturating_sub(attributed);
        g.unattributed = Some(rest);
        let mut i = 0;
        while rest > 0 {
            let piece = rest.min(1 << 31);
            let n = g.node(
                NATIVE,
                "(unattributed)",
                node_id(tag::FIXED, 100 + i),
                piece,
            );
            g.edge(process, INTERNAL, "unattributed", n);
            rest -= piece;
            i += 1;
        }
        g
    }

    fn write<W: Write>(mut self, out: W) -> io::Result<Written> {
        // Each node owns the next edge_count edges, in node order.
        self.edges.sort_by_key(|e| e.from);
        let mut edge_counts = vec![0u32; self.nodes.len()];
        for e in &self.edges {
            edge_counts[e.from as usize] += 1;
        }
        let mut w = Chunked::new(out);
        w.raw(b"{\"snapshot\":{\"meta\":")?;
        w.raw(META.as_bytes())?;
        w.raw(b",\"node_count\":")?;
        w.num(self.nodes.len() as u64)?;
        w.raw(b",\"edge_count\":")?;
        w.num(self.edges.len() as u64)?;
        w.raw(b",\"trace_function_count\":0},\n\"nodes\":[")?;
        for (i, n) in self.nodes.iter().enumerate() {
            if i > 0 {
                w.byte(b',');
                w.byte(b'\n');
            }
            w.num(n.ty as u64)?;
            w.byte(b',');
            w.num(n.name as u64)?;
            w.byte(b',');
            w.num(n.id as u64)?;
            w.byte(b',');
            w.num(n.size as u64)?;
            w.byte(b',');
            w.num(edge_counts[i] as u64)?;
            w.raw(b",0,0")?;
        }
        w.raw(b"],\n\"edges\":[")?;
        for (i, e) in self.edges.iter().enumerate() {
            if i > 0 {
                w.byte(b',');
                w.byte(b'\n');
            }
            w.num(e.ty as u64)?;
            w.byte(b',');
            w.num(e.name as u64)?;
            w.byte(b',');
            w.num(e.to as u64 * NODE_FIELDS as u64)?;
        }
        w.raw(b"],\n\"trace_function_infos\":[],\n\"trace_tree\":[],\n\"samples\":[],\n\"locations\":[],\n\"strings\":[")?;
        for (i, s) in self.strings.iter().enumerate() {
            if i > 0 {
                w.byte(b',');
                w.byte(b'\n');
            }
            w.string(s)?;
        }
        w.raw(b"]}\n")?;
        let bytes = w.finish()?;
        Ok(Written {
            nodes: self.nodes.len() as u64,
            edges: self.edges.len() as u64,
            strings: self.strings.len() as u64,
            bytes,
            total_size: self.nodes.iter().map(|n| n.size as u64).sum(),
            unattributed: self.unattributed,
        })
    }
}

/// Order of part kinds in a connection (and the base of their id slots).
fn rank(part: &str) -> u32 {
    match part {
        "upgrade request" => 0,
        "upgrade head" => 1,
        "first message" => 2,
        p if p.starts_with("header ") => 4,
        _ => 3,
    }
}

/// An age as people read it: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{}.{} s", ms / 1000, ms % 1000 / 100),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// Writes through a 64 KiB buffer and counts the bytes.
struct Chunked<W: Write> {
    out: W,
    buf: Vec<u8>,
    written: u64,
}

const CHUNK: usize = 64 << 10;

impl<W: Write> Chunked<W> {
    fn new(out: W) -> Self {
        Chunked {
            out,
            buf: Vec::with_capacity(CHUNK + 1024),
            written: 0,
        }
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.out.write_all(&self.buf)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.flush_if_full()
    }

    /// One byte (a separator); the buffer has room (see [`Chunked::flush_if_full`]).
    fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    fn num(&mut self, mut v: u64) -> io::Result<()> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for d in &digits[i..] {
            self.buf.push(*d);
        }
        self.flush_if_full()
    }

    /// A JSON string literal.
    fn string(&mut self, s: &str) -> io::Result<()> {
        self.buf.push(b'"');
        if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
            return self.flush_if_full();
        }
        for c in s.chars() {
            match c {
                '"' => self.buf.extend_from_slice(b"\\\""),
                '\\' => self.buf.extend_from_slice(b"\\\\"),
                '\n' => self.buf.extend_from_slice(b"\\n"),
                '\r' => self.buf.extend_from_slice(b"\\r"),
                '\t' => self.buf.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    self.buf
                        .extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    self.buf
                        .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        self.buf.push(b'"');
        self.flush_if_full()
    }

    fn finish(mut self) -> io::Result<u64> {
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.written + self.buf.len() as u64)
    }
}

#[cfg(test)]
mod tests;

/// A realistic snapshot of a TLS proxy in `retain` holding `connections` pinning
/// websockets, each pinning a 10 MiB slab of its own with its upgrade request and
/// head (the worst case for the file's size), for benchmarks and tests.
#[doc(hidden)]
pub fn synthetic_proxy(connections: u64) -> Snapshot {
    use crate::*;
    let slab_size = 10u64 << 20;
    let retainer = |c: u64, part: &str, bytes: u64| Retainer::new(c, part, bytes);
    let slabs: Vec<Slab> = (1..=connections)
        .map(|c| Slab {
            unlisted_retainers: 0,
            id: c,
            size: slab_size,
            age_ms: (connections - c) * 250 + 40,
            current: c == connections,
            handed_out_bytes: slab_size,
            referenced_bytes: 600,
            views: 2,
            retainers: vec![
                retainer(c, "upgrade request", 580),
                retainer(c, "upgrade head", 20),
            ],
            allocation_bytes: Some(slab_size),
            allocation_id: Some(1000 + c),
        })
        .collect();
    let allocations: Vec<PinnedAllocation> = slabs
        .iter()
        .map(|s| PinnedAllocation {
            id: s.allocation_id.unwrap(),
            size: s.size,
            age_ms: s.age_ms,
            kept_bytes: 600,
            kept: s.retainers.clone(),
        })
        .collect();
    let retained = slab_size * connections;
    let list = (1..=connections)
        .map(|c| OpenConnection {
            id: c,
            peer: Some(format!("127.0.0.1:{}", 30000 + c % 30000)),
            head_mode: Some(HeadMode::Retain),
            age_ms: (connections - c) * 250 + 40,
            own_bytes: 1112,
        })
        .collect();
    Snapshot {
        schema_version: SCHEMA_VERSION,
        role: "proxy".into(),
        taken_at_ms: 1_750_000_000_000,
        took_us: 900,
        process: Process {
            pid: 4242,
            uptime_ms: connections * 250 + 1000,
            rss_bytes: Some(retained + (60 << 20)),
            allocator: Allocator {
                name: "jemalloc".into(),
                allocated_bytes: Some(retained + connections * 5000 + (2 << 20)),
                active_bytes: Some(retained + connections * 5200 + (3 << 20)),
                resident_bytes: Some(retained + (50 << 20)),
                mapped_bytes: Some(retained + (80 << 20)),
                retained_bytes: Some(0),
            },
            unreadable: vec![],
        },
        settings: Settings {
            head_mode: Some(HeadMode::Retain),
            head_mode_applies_to: "new connections".into(),
            stack: Some(Stack::Slab),
            tls: true,
            echo: false,
            read_size: 64 << 10,
        },
        connections: Connections {
            unlisted: 0,
            open: connections,
            accepted_total: connections,
            closed_total: 0,
            failed_total: 0,
            open_by_head_mode: OpenByHeadMode {
                retain: connections,
                ..OpenByHeadMode::default()
            },
            list,
        },
        guard: Guard::default(),
        pools: vec![Pool {
            name: "tls".into(),
            slab_size,
            read_size: 64 << 10,
            live_slabs: connections,
            slabs_allocated_total: connections,
            slabs_freed_total: 0,
            reads_total: connections * 200,
            bytes_read_total: retained,
            retained_bytes: retained,
            referenced_bytes: 600 * connections,
            slabs,
        }],
        totals: Totals {
            retained_bytes: retained,
            referenced_bytes: 600 * connections,
            retained_per_referenced: Some(retained as f64 / (600 * connections) as f64),
            live_slabs: connections,
        },
        pinned_allocations: PinnedAllocations {
            unlisted_allocations: 0,
            unlisted_parts: 0,
            registry: AllocationRegistry {
                enabled: true,
                threshold_bytes: 4096,
                tracked: connections + 50,
                tracked_bytes: retained + (1 << 20),
                capacity: 1 << 17,
                overflowed_total: 0,
            },
            pinned_bytes: retained,
            kept_bytes: 600 * connections,
            allocations,
            unattributed_parts: 0,
            unattributed_bytes: 0,
        },
        client: None,
        audit: None,
    }
}
