//! The figures of one benchmark run, as written to `results.json` and read by the
//! chart script and the report. Raw figures only (bytes, microseconds, clock
//! seconds); ratios and per-connection values are computed where they are shown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::procfs::Sockstat;
use crate::stacks::Stack;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub meta: Meta,
    pub stacks: Vec<StackResult>,
    pub headline: Vec<HeadlineRow>,
    pub snapshot_cost: Vec<SnapshotCost>,
    pub probe: Vec<ProbeResult>,
    /// Everything that failed, one sentence each.
    pub errors: Vec<String>,
}

/// When, where, with what, and how the run was made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    pub quick: bool,
    /// The command that reproduces the run.
    pub command: String,
    pub machine: BTreeMap<String, String>,
    pub versions: BTreeMap<String, String>,
    pub plan: Plan,
    pub seconds: f64,
}

/// The sizes of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    /// Idle websockets at which memory is sampled.
    pub levels: Vec<u64>,
    /// Websockets opened per second.
    pub rate: f64,
    /// The data connection: bytes per message, ms between messages.
    pub data_size: usize,
    pub data_delay_ms: u64,
    /// Time waited at each level before sampling, ms.
    pub settle_ms: u64,
    pub throughput_connections: Vec<usize>,
    pub throughput_message: usize,
    /// Messages in flight per connection.
    pub throughput_window: usize,
    pub throughput_warmup_ms: u64,
    pub throughput_ms: u64,
    pub latency_connections: usize,
    pub latency_message: usize,
    pub latency_every_ms: u64,
    pub latency_ms: u64,
    pub snapshot_repeats: usize,
    /// The seed's headline, accelerated: pinning connections, rate, data every.
    pub headline_pinning: u64,
    pub headline_rate: f64,
    pub headline_data_delay_ms: u64,
    /// Websockets held while the allocation probe counts.
    pub probe_connections: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackResult {
    pub stack: Stack,
    /// Whether throughput and latency were measured too (not only memory).
    pub full_load: bool,
    pub started: bool,
    /// Why a part of this stack's run failed, if one did.
    pub error: Option<String>,
    pub memory: Vec<MemorySample>,
    pub throughput: Vec<Throughput>,
    pub latency: Option<Latency>,
}

/// Memory of both servers with `connections` idle websockets (plus the data connection).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemorySample {
    pub connections: u64,
    pub proxy_rss: u64,
    pub wss_rss: u64,
    /// jemalloc's resident and allocated bytes, from our servers' snapshots.
    pub proxy_alloc: Option<AllocFigures>,
    pub wss_alloc: Option<AllocFigures>,
    /// Machine-wide: TCP socket buffers and kernel slab memory.
    pub sockstat: Sockstat,
    pub kernel_slab: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AllocFigures {
    pub resident: u64,
    pub allocated: u64,
}

/// Echo throughput over `connections` websockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub connections: usize,
    pub messages: u64,
    /// Payload bytes echoed back to the client (each crossed the proxy twice).
    pub bytes: u64,
    pub secs: f64,
    pub proxy_cpu_secs: f64,
    pub wss_cpu_secs: f64,
}

impl Throughput {
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }

    pub fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }
}

/// Round trips of a small echo with `connections` websockets open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub connections: usize,
    pub samples: usize,
    pub lost: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// One server of the seed's headline experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadlineRow {
    /// `ours` or `node`.
    pub stack: String,
    /// `proxy` or `wss`.
    pub server: String,
    pub head: String,
    pub pinning: u64,
    /// Live slabs per pool, `tls 11, tcp 1` (ours).
    pub live_slabs: Option<String>,
    pub retained_bytes: Option<u64>,
    pub referenced_bytes: Option<u64>,
    pub rss: u64,
    pub alloc_resident: Option<u64>,
    /// V8's figures (Node): Buffers outside the heap, and the heap in use.
    pub node_array_buffers: Option<u64>,
    pub node_heap_used: Option<u64>,
}

/// Time to take (and to fetch) one server's snapshot with `connections` open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotCost {
    pub stack: String,
    pub server: String,
    pub connections: u64,
    /// `took_us` of each snapshot, as the server reports it.
    pub took_us: Vec<u64>,
    /// Wall time of each `GET /snapshot`, connect to last byte, as the client sees it.
    pub get_us: Vec<u64>,
    pub body_bytes: u64,
}

/// Live allocations per connection by jemalloc size class, in one of our servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub server: String,
    /// Websockets open at the first count, and at the second; figures are per
    /// websocket added in between.
    pub baseline_connections: u64,
    pub connections: u64,
    /// Per connection: allocator bytes allocated and resident, and RSS.
    pub allocated_per_conn: f64,
    pub resident_per_conn: f64,
    pub rss_per_conn: f64,
    /// Size classes whose live count grew, largest bytes per connection first.
    pub classes: Vec<ProbeClass>,
    /// `size_of` of the types that make up a connection.
    pub type_sizes: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeClass {
    pub size: u64,
    pub per_conn: f64,
    pub bytes_per_conn: f64,
}
