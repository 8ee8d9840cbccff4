//! The memory snapshot that each playground process reports on `GET /snapshot`.
//!
//! One definition, used by the servers that produce it, the load client that
//! prints a report from it, and the web app that charts it. The JSON shape is
//! pinned by `snapshot.schema.json` beside this crate; every field is a figure
//! read from the running process (its slab pools, its allocator, the kernel),
//! never one computed from what "should" be there.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Version of the snapshot format; bumped when a field changes meaning or type, or
/// goes away. 3: `process.rss_bytes` and `process.allocator.*_bytes` may be `null`
/// (unreadable), with the reason in `process.unreadable`.
pub const SCHEMA_VERSION: u32 = 3;

/// The JSON Schema that every snapshot validates against.
pub const SCHEMA_JSON: &str = include_str!("../snapshot.schema.json");

/// A whole snapshot of one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SCHEMA_VERSION`] of the producer.
    pub schema_version: u32,
    /// Which program took it: `wss`, `proxy` or `client`.
    pub role: String,
    /// Wall-clock time it was taken, milliseconds since the Unix epoch.
    pub taken_at_ms: u64,
    /// How long producing it took, in microseconds (the snapshot's own cost).
    pub took_us: u64,
    pub process: Process,
    pub settings: Settings,
    pub connections: Connections,
    pub guard: Guard,
    /// The process's slab pools (`tcp`, `tls`, and `buffer`: Node's small-Buffer pool
    /// when `buffer_pool_size` is not 0); empty for the client and the warp stack.
    pub pools: Vec<Pool>,
    pub totals: Totals,
    /// The large allocations that what connections keep lies in, found in the
    /// allocation registry kept by the global allocator.
    pub pinned_allocations: PinnedAllocations,
    /// The load client's own traffic; `null` for the servers (absent in older
    /// snapshots, read as `null`).
    #[serde(default)]
    pub client: Option<ClientTraffic>,
    /// What `client audit` measures while it runs: the audited processes' figures
    /// (the client's snapshot during an audit only; `null` otherwise, and read as
    /// `null` from older snapshots that lack it).
    #[serde(default)]
    pub audit: Option<Audit>,
}

/// The live figures of a running `client audit`: the processes it measures (any
/// websocket server on the machine, by pid) as last read from `/proc`. Only the
/// audit's own client snapshot has it; the audit's full results are its `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// The websocket URL audited.
    pub target: String,
    /// The step in progress: `settling`, `idle`, `one message`, `traffic`,
    /// `closed`, then `done` or `failed`.
    pub step: String,
    /// Connections of the level being measured.
    pub level: u64,
    /// The audit's websockets open now.
    pub connections_open: u64,
    /// The audited processes, each with its children, as last read.
    pub processes: Vec<AuditProcess>,
    /// The machine's TCP socket buffers (`/proc/net/sockstat` pages times the page
    /// size); `null` if unreadable.
    pub tcp_mem_bytes: Option<u64>,
    /// When these figures were read, ms since the Unix epoch.
    pub read_at_ms: u64,
}

/// One audited process as last read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditProcess {
    pub pid: u32,
    /// Its command name.
    pub name: String,
    /// RSS of the process and its children (`VmRSS`), bytes.
    pub rss_bytes: u64,
    /// PSS of the process and its children (`smaps_rollup`), bytes; `null` if unreadable.
    pub pss_bytes: Option<u64>,
}

/// What the load client's pinning connections sent of their own traffic
/// (`client_pinMessageSize`, `client_pinDataBytes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientTraffic {
    /// Pinning connections that have sent all their traffic (every connection
    /// opened counts, reopened ones included).
    pub pin_traffic_done: u64,
    /// Messages and bytes the pinning connections sent.
    pub pin_messages_sent: u64,
    pub pin_bytes_sent: u64,
}

/// Figures about the whole process.
///
/// A memory figure that could not be read is `None` (JSON `null`), never 0, and
/// [`Process::unreadable`] says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub uptime_ms: u64,
    /// Resident set size as the kernel reports it (`/proc/self/status` VmRSS), in
    /// bytes; `null` if it could not be read.
    pub rss_bytes: Option<u64>,
    pub allocator: Allocator,
    /// The figures of this process that could not be read, each with the reason;
    /// empty when every figure was read (and in older snapshots, which lack it).
    #[serde(default)]
    pub unreadable: Vec<Unreadable>,
}

/// A figure of the snapshot that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The figure's path in the snapshot: one of the [`figure`] names, such as
    /// `process.rss_bytes` or `process.allocator.allocated_bytes`.
    pub figure: String,
    /// What was read and the error: "reading /proc/self/status: Permission denied".
    pub reason: String,
}

/// The names [`Unreadable::figure`] gives the figures that may be unreadable: their
/// paths in the snapshot's JSON.
pub mod figure {
    pub const RSS: &str = "process.rss_bytes";
    pub const ALLOCATED: &str = "process.allocator.allocated_bytes";
    pub const ACTIVE: &str = "process.allocator.active_bytes";
    pub const RESIDENT: &str = "process.allocator.resident_bytes";
    pub const MAPPED: &str = "process.allocator.mapped_bytes";
    pub const RETAINED: &str = "process.allocator.retained_bytes";
}

impl Process {
    /// Every figure that may be unreadable, by its [`figure`] name, with its value.
    pub fn figures(&self) -> [(&'static str, Option<u64>); 6] {
        let a = &self.allocator;
        [
            (figure::RSS, self.rss_bytes),
            (figure::ALLOCATED, a.allocated_bytes),
            (figure::ACTIVE, a.active_bytes),
            (figure::RESIDENT, a.resident_bytes),
            (figure::MAPPED, a.mapped_bytes),
            (figure::RETAINED, a.retained_bytes),
        ]
    }

    /// The value of `figure` (a [`figure`] name): `None` when it was unreadable or the
    /// name is not one of them.
    pub fn figure(&self, figure: &str) -> Option<u64> {
        self.figures()
            .into_iter()
            .find(|(name, _)| *name == figure)
            .and_then(|(_, v)| v)
    }

    /// Why `figure` (a [`figure`] name) could not be read, as the snapshot records it;
    /// "no reason recorded" when the list does not name it (a hand-made file).
    pub fn why_unreadable(&self, figure: &str) -> &str {
        self.unreadable
            .iter()
            .find(|u| u.figure == figure)
            .map_or("no reason recorded", |u| u.reason.as_str())
    }
}

/// The allocator's own statistics (jemalloc), read after advancing its epoch.
///
/// These are different things and are reported separately, never as one number.
/// Each is `null` if it could not be read (the reason in [`Process::unreadable`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocator {
    /// Name of the allocator the figures come from.
    pub name: String,
    /// Bytes the application holds in live allocations.
    pub allocated_bytes: Option<u64>,
    /// Bytes in pages the allocator has in use for those allocations.
    pub active_bytes: Option<u64>,
    /// Bytes of physically resident data pages mapped by the allocator.
    pub resident_bytes: Option<u64>,
    /// Bytes in extents mapped by the allocator.
    pub mapped_bytes: Option<u64>,
    /// Bytes retained by the allocator: unmapped from use but kept as virtual memory.
    pub retained_bytes: Option<u64>,
}

/// What a connection keeps of its upgrade request for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadMode {
    /// The slab views themselves: the seed's bug, pins the slabs.
    Retain,
    /// An owned copy: the module-level fix. On the slab stack a small copy is carved
    /// from Node's small-Buffer pool (`buffer_pool_size`) and pins a pool chunk.
    Copy,
    /// An owned copy in an allocation of its own, never pooled (Node's
    /// `Buffer.allocUnsafeSlow` advice); the same as `copy` where there is no pool.
    #[serde(rename = "copy_unpooled")]
    CopyUnpooled,
    /// Nothing: the core-level fix.
    Drop,
}

impl HeadMode {
    /// All modes, in the order they are shown.
    pub const ALL: [HeadMode; 4] = [
        HeadMode::Retain,
        HeadMode::Copy,
        HeadMode::CopyUnpooled,
        HeadMode::Drop,
    ];

    /// The name used in config.json, on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HeadMode::Retain => "retain",
            HeadMode::Copy => "copy",
            HeadMode::CopyUnpooled => "copy_unpooled",
            HeadMode::Drop => "drop",
        }
    }
}

impl std::fmt::Display for HeadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HeadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HeadMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HeadMode::ALL.iter().map(|m| m.as_str()).collect();
                format!("expected one of {}; got {s:?}", names.join(", "))
            })
    }
}

/// Which server stack a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// Hand-written on tokio, every socket read carved from Node-style slab pools.
    Slab,
    /// warp, hyper, tungstenite and tokio-rustls: the buffers Rust users meet today.
    Warp,
    /// socketioxide (socket.io) mounted on warp, served by hyper: engine.io keeps each
    /// socket's request parts. A wss stack only.
    Socketio,
}

impl Stack {
    /// All stacks, in the order they are shown.
    pub const ALL: [Stack; 3] = [Stack::Slab, Stack::Warp, Stack::Socketio];

    /// The name used in config.json, on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stack::Slab => "slab",
            Stack::Warp => "warp",
            Stack::Socketio => "socketio",
        }
    }
}

impl std::fmt::Display for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stack::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Stack::ALL.iter().map(|m| m.as_str()).collect();
                format!("expected one of {}; got {s:?}", names.join(", "))
            })
    }
}

/// The settings in force when the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Head mode given to connections accepted from now on; `null` for the client.
    pub head_mode: Option<HeadMode>,
    /// A switch of `head_mode` applies to new connections only; open ones keep theirs.
    pub head_mode_applies_to: String,
    /// Which server stack accepts connections; `null` for the client.
    pub stack: Option<Stack>,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    /// Whether the wss echoes what it receives (false for the proxy and client).
    pub echo: bool,
    /// Largest region one socket read may take from a slab, in bytes.
    pub read_size: u64,
}

/// Connection counters of the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// Connections open now (for the client: its open websockets).
    pub open: u64,
    /// Connections accepted (or opened, for the client) since start.
    pub accepted_total: u64,
    /// Connections closed since start, whatever the reason.
    pub closed_total: u64,
    /// Requests refused or failed (bad request, upstream down, timeout, TLS failure).
    pub failed_total: u64,
    /// Open connections by the head mode they were accepted with.
    pub open_by_head_mode: OpenByHeadMode,
    /// Every open connection a server serves (its request accepted), by id; empty
    /// for the client (absent in older snapshots, read as empty).
    #[serde(default)]
    pub list: Vec<OpenConnection>,
    /// Open connections left out of `list` because the snapshot was asked for at
    /// most N (`GET /snapshot?connections=N`); their retainers are left out of the
    /// slabs and pinned allocations too, and every total still counts them.
    #[serde(default)]
    pub unlisted: u64,
}

/// One open connection: who it is and what it costs by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenConnection {
    /// Id, unique in the process and never reused: the one [`Retainer::connection`] names.
    pub id: u64,
    /// Address of the other end (`ip:port`); `null` where the server does not see it.
    pub peer: Option<String>,
    /// Head mode it was accepted with.
    pub head_mode: Option<HeadMode>,
    /// Milliseconds since it was opened.
    pub age_ms: u64,
    /// Bytes of the connection's own state as its task holds it while open
    /// (`size_of_val` of that value, in the running process); what that state points
    /// to on the heap (TLS keys, socket registrations) is not in it.
    pub own_bytes: u64,
}

/// Open connections per head mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenByHeadMode {
    pub retain: u64,
    pub copy: u64,
    /// Absent in older snapshots (read as 0).
    #[serde(default)]
    pub copy_unpooled: u64,
    pub drop: u64,
}

impl OpenByHeadMode {
    /// The count of one mode.
    pub fn get(&self, mode: HeadMode) -> u64 {
        match mode {
            HeadMode::Retain => self.retain,
            HeadMode::Copy => self.copy,
            HeadMode::CopyUnpooled => self.copy_unpooled,
            HeadMode::Drop => self.drop,
        }
    }
}

/// The limits that keep the playground from taking the machine down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// Live slab bytes at or above which new connections are refused (503); 0: no limit.
    pub memory_limit_bytes: u64,
    /// Whether the memory guard is refusing new connections now.
    pub memory_tripped: bool,
    /// Times the memory guard has tripped since start.
    pub memory_trips_total: u64,
    /// Most connections served at once; 0: no cap.
    pub max_connections: u64,
    /// Whether the connection cap is reached now.
    pub at_connection_cap: bool,
    /// Connections refused by the memory guard or the connection cap since start.
    pub refused_total: u64,
}

/// One slab pool and its live slabs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// `tcp` (plain socket reads), `tls` (decrypted TLS plaintext) or `buffer`
    /// (Node's small-Buffer pool: small copies carved at 8-byte-aligned offsets).
    pub name: String,
    pub slab_size: u64,
    pub read_size: u64,
    /// Slabs alive now, the current one included.
    pub live_slabs: u64,
    /// Slabs allocated since start.
    pub slabs_allocated_total: u64,
    /// Slabs freed since start (their last view dropped).
    pub slabs_freed_total: u64,
    /// Socket reads served by this pool since start (for `buffer`: copies carved).
    pub reads_total: u64,
    /// Bytes those reads returned (for `buffer`: bytes copied).
    pub bytes_read_total: u64,
    /// Bytes held by live slabs (sum of their sizes).
    pub retained_bytes: u64,
    /// Bytes of those slabs still referenced by views.
    pub referenced_bytes: u64,
    /// Live slabs, oldest first.
    pub slabs: Vec<Slab>,
}

/// One live slab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slab {
    /// Id, unique in the pool, in allocation order.
    pub id: u64,
    pub size: u64,
    pub age_ms: u64,
    /// Whether it is the pool's current slab (the one reads are carved from).
    pub current: bool,
    /// Bytes handed out to reads so far.
    pub handed_out_bytes: u64,
    /// Bytes of those still referenced by live views.
    pub referenced_bytes: u64,
    /// Live views into it.
    pub views: u64,
    /// Who keeps views into it for a connection's life.
    pub retainers: Vec<Retainer>,
    /// Size of the allocation the allocation registry holds at the slab's address:
    /// a cross-check of the pool's bookkeeping against the allocator; `null` when the
    /// registry is off or knows no allocation there.
    pub allocation_bytes: Option<u64>,
    /// Id of that allocation in the registry (the id `pinned_allocations` gives it),
    /// so a reader can tell a slab's own allocation from the other pinned ones;
    /// `null` when the registry is off or knows no allocation there (and in older
    /// snapshots).
    #[serde(default)]
    pub allocation_id: Option<u64>,
    /// Retainers of connections the snapshot does not list (see
    /// [`Connections::unlisted`]), left out of `retainers`.
    #[serde(default)]
    pub unlisted_retainers: u64,
}

/// A long-lived reference into a slab or allocation, the retaining path a heap profiler shows.
///
/// The servers make each retainer once, when the part is kept, and a snapshot clones
/// it: its strings are shared (`Arc<str>`), so a snapshot of 80,000 kept parts copies
/// counters, not text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retainer {
    pub connection: u64,
    /// Which part it holds: `upgrade request`, `upgrade head` (slab stack),
    /// `header <name>`, `upgrade request`, `first message` (warp stack).
    pub part: Arc<str>,
    /// Bytes of the view it holds.
    pub bytes: u64,
    /// Readable form: "upgrade head of connection 17".
    pub label: Arc<str>,
}

impl Retainer {
    /// `part` kept by `connection`, `bytes` long, labelled "`part` of connection
    /// `connection`"; the part's name is shared with every other retainer of that
    /// name ([`part_name`]).
    pub fn new(connection: u64, part: &str, bytes: u64) -> Retainer {
        Retainer {
            connection,
            label: format!("{part} of connection {connection}").into(),
            part: part_name(part),
            bytes,
        }
    }
}

/// The one shared copy of a part's name (`upgrade head`, `header cookie`) in this
/// process: a few dozen names, kept for the process's life.
pub fn part_name(name: &str) -> Arc<str> {
    static NAMES: Mutex<BTreeSet<Arc<str>>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(shared) = names.get(name) {
        return shared.clone();
    }
    let shared: Arc<str> = name.into();
    names.insert(shared.clone());
    shared
}

/// What connections keep, attributed to the large allocations it lies in.
///
/// The allocation registry records every live allocation of at least
/// `registry.threshold_bytes`, by address and size, from inside the global
/// allocator; each kept part is looked up there by its pointer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PinnedAllocations {
    pub registry: AllocationRegistry,
    /// Tracked allocations that at least one kept part lies in, oldest first.
    pub allocations: Vec<PinnedAllocation>,
    /// Sum of those allocations' sizes.
    pub pinned_bytes: u64,
    /// Bytes of the kept parts that lie in them.
    pub kept_bytes: u64,
    /// Kept parts found in no tracked allocation (they lie in smaller ones, or the
    /// registry is off): their count and bytes.
    pub unattributed_parts: u64,
    pub unattributed_bytes: u64,
    /// Allocations left out of `allocations` because every part kept in them is
    /// of a connection the snapshot does not list (see [`Connections::unlisted`]);
    /// `pinned_bytes` and `kept_bytes` still count them.
    #[serde(default)]
    pub unlisted_allocations: u64,
    /// Kept parts of connections the snapshot does not list, in any allocation,
    /// left out of the allocations' `kept` lists (their allocations' `kept_bytes`
    /// still count them).
    #[serde(default)]
    pub unlisted_parts: u64,
}

/// The allocation registry's own state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocationRegistry {
    /// Whether allocations are being recorded (config key `alloc_registry`).
    pub enabled: bool,
    /// Smallest allocation recorded, in bytes.
    pub threshold_bytes: u64,
    /// Live allocations recorded now, and their bytes.
    pub tracked: u64,
    pub tracked_bytes: u64,
    /// Entries the registry can hold.
    pub capacity: u64,
    /// Allocations that found no free entry and went unrecorded, since start.
    pub overflowed_total: u64,
}

/// One tracked allocation that something a connection keeps lies in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedAllocation {
    /// Id, unique in the process and never reused, in allocation order.
    pub id: u64,
    /// Size of the allocation, in bytes.
    pub size: u64,
    pub age_ms: u64,
    /// Bytes of the kept parts in it.
    pub kept_bytes: u64,
    /// The kept parts that lie in it: "first message of connection 17".
    pub kept: Vec<Retainer>,
}

/// Totals over all pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Bytes held by live slabs.
    pub retained_bytes: u64,
    /// Bytes of them still referenced by views.
    pub referenced_bytes: u64,
    /// `retained_bytes / referenced_bytes`: how much memory each referenced byte
    /// keeps alive; `null` when nothing is referenced.
    pub retained_per_referenced: Option<f64>,
    pub live_slabs: u64,
}

impl Snapshot {
    /// The pool of that name, if the process has one.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// Checks a snapshot's JSON against [`SCHEMA_JSON`]; the errors name the path of each bad field.
///
/// Each error reads `PATH: MESSAGE`, where `PATH` is the JSON pointer of the value at
/// fault (`/` for the whole snapshot); a missing or unexpected field is named in the
/// message of its parent object.
#[cfg(feature = "validate")]
pub fn validate(json: &serde_json::Value) -> Result<(), Vec<String>> {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(SCHEMA_JSON).expect("snapshot.schema.json is valid JSON");
        jsonschema::validator_for(&schema).expect("snapshot.schema.json is a valid JSON Schema")
    });
    let errors: Vec<String> = validator
        .iter_errors(json)
        .map(|e| {
            let path = e.instance_path().as_str();
            let path = if path.is_empty() { "/" } else { path };
            format!("{path}: {e}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub mod heapsnapshot;
pub mod paths;
#[cfg(feature = "pprof")]
pub mod pprof;

#[cfg(test)]
mod tests;
