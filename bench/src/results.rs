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
    /// The stacks the run was limited to (`bench run --only`); empty: every stack.
    #[serde(default)]
    pub only: Vec<String>,
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
    /// Length of one latency round, ms.
    pub latency_ms: u64,
    /// Latency rounds in a row over the same websockets; the p99 is their median.
    #[serde(default = "one")]
    pub latency_rounds: usize,
    pub snapshot_repeats: usize,
    /// The seed's headline, accelerated: pinning connections, rate, data every.
    pub headline_pinning: u64,
    pub headline_rate: f64,
    pub headline_data_delay_ms: u64,
    /// Websockets held while the allocation probe counts.
    pub probe_connections: u64,
    /// The traffic step (stacks that have it), after the idle levels: every open
    /// websocket sends a first message of this many bytes, then `traffic_bytes` in
    /// messages of `traffic_message` bytes, then a ping whose pong proves the wss
    /// read it all; at most `traffic_concurrency` websockets at a time.
    #[serde(default)]
    pub traffic_first_message: usize,
    #[serde(default)]
    pub traffic_bytes: usize,
    #[serde(default)]
    pub traffic_message: usize,
    #[serde(default)]
    pub traffic_concurrency: usize,
    /// After the traffic, RSS is read once both servers' RSS moved by less than 1 %
    /// in `traffic_settle_step_ms`, after `settle_ms` and at most this long, ms.
    #[serde(default)]
    pub traffic_settle_max_ms: u64,
    #[serde(default)]
    pub traffic_settle_step_ms: u64,
    /// The burst step (stacks with the traffic step), on the stack started anew:
    /// Node's `ws` client opens this many websockets, each sends the traffic step's
    /// first message and then `burst_bytes` in `traffic_message` messages all at once,
    /// and memory is read every `burst_every_ms` for `burst_window_ms` after the last
    /// echo; 0: no burst step.
    #[serde(default)]
    pub burst_connections: u64,
    #[serde(default)]
    pub burst_bytes: usize,
    #[serde(default)]
    pub burst_every_ms: u64,
    #[serde(default)]
    pub burst_window_ms: u64,
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
    /// Whether the traffic step was planned for this stack, and what it measured.
    #[serde(default)]
    pub with_traffic: bool,
    #[serde(default)]
    pub traffic: Option<Traffic>,
    /// The burst step, on the stack started anew (stacks with the traffic step).
    #[serde(default)]
    pub burst: Option<Burst>,
}

/// The traffic step: every idle websocket sent a first message and its own traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traffic {
    /// Websockets that sent it all and got their pong (every one open).
    pub connections: u64,
    pub first_message: usize,
    /// Bytes each sent after the first message, in messages of `message` bytes.
    pub bytes: usize,
    pub message: usize,
    /// Clock seconds from the first message to the last pong.
    pub secs: f64,
    /// Seconds waited after it before the sample, and whether RSS had settled by then.
    pub settle_secs: f64,
    pub settled: bool,
    /// The sample after it (the idle one at the same count is the stack's last
    /// memory sample).
    pub after: MemorySample,
}

/// The burst step: a fresh stack, Node's `ws` client's websockets idle, then all of
/// them sending at once, then quiet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Burst {
    /// Websockets that sent it all and got every echo back.
    pub connections: u64,
    pub first_message: usize,
    pub bytes: usize,
    pub message: usize,
    /// Clock seconds from the start of the burst to the last echo.
    pub secs: f64,
    /// Before the client (no websocket open).
    pub base: MemorySample,
    /// Every websocket open and greeted, before the burst.
    pub idle: MemorySample,
    /// After the last echo: at 0 ms, then every `burst_every_ms`.
    pub after: Vec<BurstSample>,
}

/// One reading after a burst.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BurstSample {
    /// Milliseconds after the last echo.
    pub at_ms: u64,
    pub memory: MemorySample,
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
    /// Our servers' snapshots: bytes of the large allocations that kept parts lie in
    /// (`pinned_allocations.pinned_bytes`), and how many kept parts there are.
    #[serde(default)]
    pub proxy_pinned: Option<Pinned>,
    #[serde(default)]
    pub wss_pinned: Option<Pinned>,
    /// Machine-wide (the client's sockets and the rest of the machine included, see
    /// [`crate::kernel`]): TCP socket buffers (`/proc/net/sockstat`) and kernel slab
    /// memory (`Slab:` of `/proc/meminfo`), bytes.
    pub sockstat: Sockstat,
    pub kernel_slab: u64,
    /// Machine-wide: sockets of every kind in use (`sockets: used`); 0 in results
    /// from before it was read.
    #[serde(default)]
    pub sockets_used: u64,
}

/// `pinned_allocations` of one of our snapshots, in short.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pinned {
    /// Sum of the sizes of the tracked allocations that kept parts lie in.
    pub pinned_bytes: u64,
    /// Tracked allocations that at least one kept part lies in.
    pub allocations: u64,
    /// Kept parts, found in an allocation or not.
    pub kept_parts: u64,
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
    /// The client's (the bench process's own) CPU seconds in the window; 0 in
    /// results from before it was read.
    #[serde(default)]
    pub client_cpu_secs: f64,
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
    /// Over all rounds.
    pub p50_us: u64,
    /// The median of the rounds' p99s: one disturbed round does not decide it.
    pub p99_us: u64,
    /// Each round's p99.
    #[serde(default)]
    pub p99_rounds_us: Vec<u64>,
    pub max_us: u64,
}

fn one() -> usize {
    1
}

impl Latency {
    /// The figures of rounds of round trips (microseconds, in any order).
    pub fn of_rounds(connections: usize, mut rounds: Vec<Vec<u64>>, lost: u64) -> Latency {
        let mut p99_rounds_us = Vec::new();
        for round in &mut rounds {
            round.sort_unstable();
            if let Some(p99) = crate::client::quantile(round, 0.99) {
                p99_rounds_us.push(p99);
            }
        }
        let mut all: Vec<u64> = rounds.concat();
        all.sort_unstable();
        let mut p99s = p99_rounds_us.clone();
        p99s.sort_unstable();
        Latency {
            connections,
            samples: all.len(),
            lost,
            p50_us: crate::client::quantile(&all, 0.5).unwrap_or(0),
            p99_us: p99s
                .get(p99s.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0),
            p99_rounds_us,
            max_us: all.last().copied().unwrap_or(0),
        }
    }
}

/// One server of the seed's headline experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadlineRow {
    /// `ours`, `ours-warp` or `node`.
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
    /// Our snapshot's pinned allocations (what kept parts keep alive, either stack).
    #[serde(default)]
    pub pinned: Option<Pinned>,
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
    /// The same for `GET /metrics` (a Prometheus scrape), each right after a
    /// `GET /snapshot`: the server's time for the snapshot behind it
    /// (`snapshot_duration_seconds`), the client's wall time, the body's size.
    #[serde(default)]
    pub scrape_took_us: Vec<u64>,
    #[serde(default)]
    pub scrape_get_us: Vec<u64>,
    #[serde(default)]
    pub scrape_body_bytes: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_p99_is_the_median_of_the_rounds_p99s() {
        // Round 2 is disturbed: its tail does not decide the p99.
        let round = |tail: u64| {
            let mut r: Vec<u64> = (0..99).map(|i| 100 + i).collect();
            r.push(tail);
            r
        };
        let l = Latency::of_rounds(10, vec![round(300), round(9000), round(400)], 2);
        assert_eq!(l.p99_rounds_us, vec![198, 198, 198]);
        let l = Latency::of_rounds(10, vec![vec![100, 500], vec![100, 9000], vec![100, 700]], 2);
        assert_eq!(l.p99_rounds_us, vec![500, 9000, 700]);
        assert_eq!(l.p99_us, 700);
        assert_eq!(l.p50_us, 100);
        assert_eq!(l.max_us, 9000);
        assert_eq!((l.samples, l.lost, l.connections), (6, 2, 10));
    }

    #[test]
    fn latency_of_no_round_trip_is_zero() {
        let l = Latency::of_rounds(5, vec![vec![], vec![]], 7);
        assert_eq!((l.samples, l.p50_us, l.p99_us, l.max_us), (0, 0, 0, 0));
        assert!(l.p99_rounds_us.is_empty());
    }
}
