//! `GET /metrics`: the snapshot in Prometheus's text format (version 0.0.4).
//!
//! Every figure comes from one [`Snapshot`] taken by [`super::take`], the same
//! reading `GET /snapshot` serves, plus the standard `process_*` figures a snapshot
//! lacks (CPU seconds, start time, descriptors, virtual memory), read from
//! `/proc/self` at the same moment ([`ProcessFigures`]). Nothing is counted twice
//! or kept between scrapes: each scrape builds a fresh registry of the official
//! client (`prometheus-client`) holding one collector over that snapshot.
//!
//! Names follow Prometheus's conventions: base units in the name (`_bytes`,
//! `_seconds`), counters end in `_total`, one label per dimension (`pool`,
//! `head_mode`). Every series carries the process's own `role` (`wss`, `proxy`,
//! `client`) and, on the servers, its `stack` (`slab`, `warp`), so a scrape job may
//! have any name and one job may scrape many processes. docs/reference/metrics.md
//! lists every metric.
//!
//! While `client audit` runs, the client's snapshot holds its `audit` section, and
//! `SnapshotCollector` writes it as `audit_*` series (a `pid` label per audited
//! process), so they too come from the snapshot's one reading.

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use snapshot::{HeadMode, Snapshot};

use runtime::server::State;

/// The `Content-Type` of the answer: Prometheus's text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Takes a snapshot of this process (its totals: no connection listed) and returns
/// its exposition.
pub fn render(state: &State) -> String {
    let snapshot = super::take_with(state, super::Detail::TOTALS);
    let process = ProcessFigures::read();
    encode(snapshot, process)
}

/// The exposition of `snapshot` and `process` (one scrape's figures).
pub fn encode(snapshot: Snapshot, process: ProcessFigures) -> String {
    let mut labels: Vec<(Cow<'static, str>, Cow<'static, str>)> =
        vec![("role".into(), snapshot.role.clone().into())];
    if let Some(stack) = snapshot.settings.stack {
        labels.push(("stack".into(), stack.as_str().into()));
    }
    let mut registry = Registry::with_labels(labels.into_iter());
    registry.register_collector(Box::new(SnapshotCollector { snapshot, process }));
    let mut out = String::with_capacity(8 << 10);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String does not fail");
    out
}

/// The standard `process_*` figures that a snapshot does not hold, read from
/// `/proc/self` (and the open-file limit); a figure that cannot be read is left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, seconds (`/proc/self/stat` utime + stime).
    pub cpu_seconds: Option<f64>,
    /// When the process started, seconds since the Unix epoch (its start time in
    /// `/proc/self/stat` after the boot time in `/proc/stat`).
    pub start_time_seconds: Option<f64>,
    /// Virtual memory size, bytes (`/proc/self/stat` vsize).
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors (`/proc/self/fd`).
    pub open_fds: Option<u64>,
    /// The open-file soft limit.
    pub max_fds: Option<u64>,
}

impl ProcessFigures {
    /// Reads them now.
    pub fn read() -> ProcessFigures {
        let own = runtime::procfs::SelfFigures::read();
        ProcessFigures {
            cpu_seconds: own.cpu_seconds,
            start_time_seconds: own.start_time_seconds,
            virtual_memory_bytes: own.virtual_memory_bytes,
            open_fds: own.open_fds,
            max_fds: runtime::server::open_file_limit()
                .ok()
                .map(|(soft, _)| soft),
        }
    }
}

/// One scrape's figures, written on each encode.
#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Snapshot,
    process: ProcessFigures,
}

/// Writes the metric families of one collector.
struct Out<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl Out<'_> {
    fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: impl EncodeGaugeValue,
    ) -> std::fmt::Result {
        let gauge = ConstGauge::new(value);
        let m = self
            .encoder
            .encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
        gauge.encode(m)
    }

    fn counter(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: impl EncodeCounterValue,
    ) -> std::fmt::Result {
        let counter = ConstCounter::new(value);
        let m = self
            .encoder
            .encode_descriptor(name, help, unit.as_ref(), counter.metric_type())?;
        counter.encode(m)
    }

    /// A gauge with one series per `(label value, figure)`; nothing without rows.
    fn gauges<V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        label: &str,
        rows: impl IntoIterator<Item = (String, V)>,
    ) -> std::fmt::Result {
        let rows = rows
            .into_iter()
            .map(|(v, figure)| (v, ConstGauge::new(figure)));
        self.family(name, help, unit, label, rows)
    }

    /// A counter with one series per `(label value, figure)`; nothing without rows.
    fn counters(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        label: &str,
        rows: impl IntoIterator<Item = (String, u64)>,
    ) -> std::fmt::Result {
        let rows = rows
            .into_iter()
            .map(|(v, figure)| (v, ConstCounter::new(figure)));
        self.family(name, help, unit, label, rows)
    }

    /// One metric family, a series per `(label value, metric)`; nothing without rows.
    fn family<M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        label: &str,
        rows: impl IntoIterator<Item = (String, M)>,
    ) -> std::fmt::Result {
        let mut rows = rows.into_iter().peekable();
        let Some((_, first)) = rows.peek() else {
            return Ok(());
        };
        let metric_type = first.metric_type();
        let mut m = self
            .encoder
            .encode_descriptor(name, help, unit.as_ref(), metric_type)?;
        for (value, metric) in rows {
            let labels = [(label, value.as_str())];
            metric.encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn flag(on: bool) -> u64 {
    u64::from(on)
}

impl Collector for SnapshotCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.snapshot;
        let p = &self.process;
        let mut out = Out { encoder };
        let bytes = || Some(Unit::Bytes);
        let seconds = || Some(Unit::Seconds);

        // The standard process metrics (as Prometheus's own clients name them).
        if let Some(rss) = s.process.rss_bytes {
            out.gauge(
                "process_resident_memory",
                "Resident memory size in bytes (VmRSS, the snapshot's process.rss_bytes)",
                bytes(),
                rss,
            )?;
        }
        if let Some(v) = p.virtual_memory_bytes {
            out.gauge(
                "process_virtual_memory",
                "Virtual memory size in bytes",
                bytes(),
                v,
            )?;
        }
        if let Some(v) = p.cpu_seconds {
            out.counter(
                "process_cpu",
                "Total user and system CPU time spent in seconds",
                seconds(),
                v,
            )?;
        }
        if let Some(v) = p.start_time_seconds {
            out.gauge(
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                seconds(),
                v,
            )?;
        }
        if let Some(v) = p.open_fds {
            out.gauge(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                v,
            )?;
        }
        if let Some(v) = p.max_fds {
            out.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit)",
                None,
                v,
            )?;
        }

        // The allocator's own statistics.
        let a = &s.process.allocator;
        for (name, help, v) in [
            (
                "jemalloc_allocated",
                "Bytes the application holds in live allocations (jemalloc stats.allocated)",
                a.allocated_bytes,
            ),
            (
                "jemalloc_active",
                "Bytes in pages the allocator has in use for live allocations (stats.active)",
                a.active_bytes,
            ),
            (
                "jemalloc_resident",
                "Bytes of physically resident data pages mapped by the allocator (stats.resident)",
                a.resident_bytes,
            ),
            (
                "jemalloc_mapped",
                "Bytes in extents mapped by the allocator (stats.mapped)",
                a.mapped_bytes,
            ),
            (
                "jemalloc_retained",
                "Bytes the allocator retains as virtual memory, unmapped from use (stats.retained)",
                a.retained_bytes,
            ),
        ] {
            if let Some(v) = v {
                out.gauge(name, help, bytes(), v)?;
            }
        }
        // Which of those could not be read (their series above are left out): one
        // series per figure, 1 if unreadable, so an alert need not tell a missing
        // series from a scrape that failed. The reason is in the snapshot.
        out.gauges(
            "snapshot_figure_unreadable",
            "1 if the snapshot figure could not be read (its series is left out; the reason is in /snapshot's process.unreadable), else 0",
            None,
            "figure",
            s.process
                .figures()
                .map(|(name, v)| (name.to_string(), flag(v.is_none()))),
        )?;

        // The slab pools, one series per pool.
        let per_pool = |f: fn(&snapshot::Pool) -> u64| {
            s.pools.iter().map(move |pool| (pool.name.clone(), f(pool)))
        };
        out.gauges(
            "slab_size",
            "Size of one slab of the pool",
            bytes(),
            "pool",
            per_pool(|p| p.slab_size),
        )?;
        out.gauges(
            "slab_live_slabs",
            "Slabs of the pool alive now, the current one included",
            None,
            "pool",
            per_pool(|p| p.live_slabs),
        )?;
        out.gauges(
            "slab_retained",
            "Bytes held by the pool's live slabs (sum of their sizes)",
            bytes(),
            "pool",
            per_pool(|p| p.retained_bytes),
        )?;
        out.gauges(
            "slab_referenced",
            "Bytes of the live slabs still referenced by views",
            bytes(),
            "pool",
            per_pool(|p| p.referenced_bytes),
        )?;
        out.counters(
            "slab_allocated",
            "Slabs the pool allocated since start",
            None,
            "pool",
            per_pool(|p| p.slabs_allocated_total),
        )?;
        out.counters(
            "slab_freed",
            "Slabs the pool freed since start (their last view dropped)",
            None,
            "pool",
            per_pool(|p| p.slabs_freed_total),
        )?;
        out.counters(
            "slab_reads",
            "Socket reads served by the pool since start",
            None,
            "pool",
            per_pool(|p| p.reads_total),
        )?;
        out.counters(
            "slab_read",
            "Bytes the pool's reads returned since start",
            bytes(),
            "pool",
            per_pool(|p| p.bytes_read_total),
        )?;

        // Connections.
        let c = &s.connections;
        out.gauge(
            "websocket_connections_open",
            "Connections open now (places taken; for the client its open websockets)",
            None,
            c.open,
        )?;
        let by_mode = &c.open_by_head_mode;
        out.gauges(
            "websocket_connections_open_by_head_mode",
            "Open connections by the head mode they were accepted with",
            None,
            "head_mode",
            HeadMode::ALL.map(|m| (m.as_str().to_string(), by_mode.get(m))),
        )?;
        out.counter(
            "websocket_connections_accepted",
            "Connections accepted (for the client: opened) since start",
            None,
            c.accepted_total,
        )?;
        out.counter(
            "websocket_connections_closed",
            "Connections closed since start, whatever the reason",
            None,
            c.closed_total,
        )?;
        out.counter("websocket_connections_failed", "Requests refused or failed since start (bad request, upstream down, timeout, TLS failure)", None, c.failed_total)?;
        if let Some(mode) = s.settings.head_mode {
            out.gauges(
                "websocket_head_mode",
                "Head mode given to new connections: 1 for the one in force",
                None,
                "head_mode",
                HeadMode::ALL.map(|m| (m.as_str().to_string(), flag(m == mode))),
            )?;
        }

        // The guard.
        let g = &s.guard;
        out.gauge(
            "guard_memory_limit",
            "Live slab bytes at which new connections are refused; 0: no limit",
            bytes(),
            g.memory_limit_bytes,
        )?;
        out.gauge(
            "guard_memory_tripped",
            "1 while the memory guard refuses new connections",
            None,
            flag(g.memory_tripped),
        )?;
        out.counter(
            "guard_memory_trips",
            "Times the memory guard tripped since start",
            None,
            g.memory_trips_total,
        )?;
        out.gauge(
            "guard_max_connections",
            "Most connections served at once; 0: no cap",
            None,
            g.max_connections,
        )?;
        out.gauge(
            "guard_connection_cap_reached",
            "1 while the connection cap is reached",
            None,
            flag(g.at_connection_cap),
        )?;
        out.counter(
            "guard_refused",
            "Connections refused by the memory guard or the connection cap since start",
            None,
            g.refused_total,
        )?;

        // What connections keep, attributed to the allocations it lies in.
        let pinned = &s.pinned_allocations;
        let kept_parts = pinned
            .allocations
            .iter()
            .map(|a| a.kept.len() as u64)
            .sum::<u64>()
            + pinned.unlisted_parts;
        out.gauge(
            "pinned_allocations",
            "Tracked allocations that at least one kept part lies in",
            None,
            pinned.allocations.len() as u64 + pinned.unlisted_allocations,
        )?;
        out.gauge(
            "pinned",
            "Bytes of those allocations (sum of their sizes)",
            bytes(),
            pinned.pinned_bytes,
        )?;
        out.gauge(
            "pinned_kept",
            "Bytes of the kept parts that lie in them",
            bytes(),
            pinned.kept_bytes,
        )?;
        out.gauge(
            "pinned_kept_parts",
            "Kept parts that lie in tracked allocations",
            None,
            kept_parts,
        )?;
        out.gauge(
            "pinned_unattributed_parts",
            "Kept parts found in no tracked allocation",
            None,
            pinned.unattributed_parts,
        )?;
        out.gauge(
            "pinned_unattributed",
            "Bytes of the kept parts found in no tracked allocation",
            bytes(),
            pinned.unattributed_bytes,
        )?;
        let r = &pinned.registry;
        out.gauge(
            "alloc_registry_enabled",
            "1 while the allocation registry records allocations",
            None,
            flag(r.enabled),
        )?;
        out.gauge(
            "alloc_registry_threshold",
            "Smallest allocation the registry records",
            bytes(),
            r.threshold_bytes,
        )?;
        out.gauge(
            "alloc_registry_tracked_allocations",
            "Live allocations the registry records now",
            None,
            r.tracked,
        )?;
        out.gauge(
            "alloc_registry_tracked",
            "Bytes of the live allocations the registry records now",
            bytes(),
            r.tracked_bytes,
        )?;
        out.gauge(
            "alloc_registry_capacity",
            "Entries the registry can hold",
            None,
            r.capacity,
        )?;
        out.counter(
            "alloc_registry_overflowed",
            "Allocations that found no free registry entry since start",
            None,
            r.overflowed_total,
        )?;

        // The load client's own traffic.
        if let Some(t) = &s.client {
            out.counter(
                "client_pin_traffic_done",
                "Pinning connections that have sent all their own traffic",
                None,
                t.pin_traffic_done,
            )?;
            out.counter(
                "client_pin_messages_sent",
                "Messages the pinning connections sent",
                None,
                t.pin_messages_sent,
            )?;
            out.counter(
                "client_pin_sent",
                "Bytes the pinning connections sent",
                bytes(),
                t.pin_bytes_sent,
            )?;
        }

        // A running `client audit`: the processes it measures, by pid.
        if let Some(a) = &s.audit {
            out.gauge(
                "audit_connections_open",
                "Websockets the running audit holds open now",
                None,
                a.connections_open,
            )?;
            out.gauge(
                "audit_level_connections",
                "Connections of the audit level being measured",
                None,
                a.level,
            )?;
            let pid = |p: &snapshot::AuditProcess| p.pid.to_string();
            out.gauges(
                "audit_process_resident_memory",
                "RSS of an audited process and its children, as the audit last read it",
                bytes(),
                "pid",
                a.processes.iter().map(|p| (pid(p), p.rss_bytes)),
            )?;
            out.gauges(
                "audit_process_proportional_memory",
                "PSS of an audited process and its children, as the audit last read it",
                bytes(),
                "pid",
                a.processes
                    .iter()
                    .filter_map(|p| p.pss_bytes.map(|v| (pid(p), v))),
            )?;
            if let Some(tcp) = a.tcp_mem_bytes {
                out.gauge(
                    "audit_machine_tcp_memory",
                    "The machine's TCP socket buffers, as the audit last read them",
                    bytes(),
                    tcp,
                )?;
            }
        }

        // The snapshot behind this scrape.
        out.gauge(
            "snapshot_duration",
            "How long taking the snapshot behind this scrape took",
            seconds(),
            s.took_us as f64 / 1e6,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of a process whose RSS and allocated bytes could not be read.
    fn unreadable_snapshot() -> Snapshot {
        let json = serde_json::json!({
            "schema_version": snapshot::SCHEMA_VERSION, "role": "wss", "taken_at_ms": 1,
            "took_us": 10,
            "process": {"pid": 7, "uptime_ms": 1, "rss_bytes": null,
                "allocator": {"name": "jemalloc", "allocated_bytes": null,
                    "active_bytes": 2000, "resident_bytes": 3000, "mapped_bytes": 4000,
                    "retained_bytes": 0},
                "unreadable": [
                    {"figure": "process.rss_bytes", "reason": "reading /proc/self/status: EACCES"},
                    {"figure": "process.allocator.allocated_bytes", "reason": "jemalloc stats.allocated: EINVAL"}]},
            "settings": {"head_mode": "retain", "head_mode_applies_to": "new connections",
                "stack": "slab", "tls": false, "echo": true, "read_size": 65536},
            "connections": {"open": 0, "accepted_total": 0, "closed_total": 0,
                "failed_total": 0, "open_by_head_mode": {"retain": 0, "copy": 0, "drop": 0}},
            "guard": {"memory_limit_bytes": 0, "memory_tripped": false,
                "memory_trips_total": 0, "max_connections": 0,
                "at_connection_cap": false, "refused_total": 0},
            "pools": [],
            "totals": {"retained_bytes": 0, "referenced_bytes": 0,
                "retained_per_referenced": null, "live_slabs": 0},
            "pinned_allocations": {"registry": {"enabled": false, "threshold_bytes": 4096,
                    "tracked": 0, "tracked_bytes": 0, "capacity": 0, "overflowed_total": 0},
                "allocations": [], "pinned_bytes": 0, "kept_bytes": 0,
                "unattributed_parts": 0, "unattributed_bytes": 0},
            "client": null, "audit": null
        });
        serde_json::from_value(json).unwrap()
    }

    /// The lines of an exposition that are samples (not `#` comments) of `metric`.
    fn samples<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(metric))
            .collect()
    }

    #[test]
    fn an_unreadable_figure_has_no_sample_and_an_unreadable_gauge() {
        let text = encode(unreadable_snapshot(), ProcessFigures::default());
        assert_eq!(samples(&text, "process_resident_memory_bytes"), [""; 0]);
        assert_eq!(samples(&text, "jemalloc_allocated_bytes"), [""; 0]);
        assert_eq!(
            samples(&text, "jemalloc_active_bytes"),
            ["jemalloc_active_bytes{role=\"wss\",stack=\"slab\"} 2000"]
        );
        let unreadable = samples(&text, "snapshot_figure_unreadable");
        let series = |figure: &str, v: u8| {
            format!(
                "snapshot_figure_unreadable{{role=\"wss\",stack=\"slab\",figure=\"{figure}\"}} {v}"
            )
        };
        assert_eq!(
            unreadable,
            [
                series("process.rss_bytes", 1),
                series("process.allocator.allocated_bytes", 1),
                series("process.allocator.active_bytes", 0),
                series("process.allocator.resident_bytes", 0),
                series("process.allocator.mapped_bytes", 0),
                series("process.allocator.retained_bytes", 0),
            ]
        );
        // No zero stands in for a missing figure anywhere.
        assert!(
            !text.contains("memory_bytes{role=\"wss\",stack=\"slab\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn this_process_has_its_figures() {
        let p = ProcessFigures::read();
        assert!(p.cpu_seconds.is_some_and(|s| s >= 0.0), "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86400.0 * 365.0,
            "{start} vs {now}"
        );
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap());
        assert!(p.virtual_memory_bytes.unwrap() > 0);
    }
}
