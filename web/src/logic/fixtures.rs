//! Snapshots for the unit tests, built from the `snapshot` crate's own types, and
//! chart samples.

use snapshot::{
    Allocator, Connections, HeadMode, OpenByHeadMode, Pool, Process, Retainer, Settings, Slab,
    Snapshot, Totals, SCHEMA_VERSION,
};

use super::series::Sample;

pub const MIB: u64 = 1 << 20;

/// A live slab of `size` bytes whose retainers are the upgrade heads of `connections`.
pub fn slab(id: u64, size: u64, connections: &[u64]) -> Slab {
    let retainers: Vec<Retainer> = connections
        .iter()
        .map(|&c| Retainer::new(c, "upgrade head", 200))
        .collect();
    let referenced = 200 * connections.len() as u64;
    Slab {
        unlisted_retainers: 0,
        id,
        size,
        age_ms: 1000,
        current: false,
        handed_out_bytes: 64 << 10,
        referenced_bytes: referenced,
        views: connections.len() as u64,
        retainers,
        allocation_bytes: Some(size),
        allocation_id: None,
    }
}

/// A pool with its figures summed from its slabs.
pub fn pool(name: &str, slab_size: u64, slabs: &[(u64, &[u64])]) -> Pool {
    let slabs: Vec<Slab> = slabs
        .iter()
        .map(|(id, conns)| slab(*id, slab_size, conns))
        .collect();
    Pool {
        name: name.into(),
        slab_size,
        read_size: 64 << 10,
        live_slabs: slabs.len() as u64,
        slabs_allocated_total: slabs.iter().map(|s| s.id).max().unwrap_or(0),
        slabs_freed_total: 0,
        reads_total: 10,
        bytes_read_total: 10_000,
        retained_bytes: slabs.iter().map(|s| s.size).sum(),
        referenced_bytes: slabs.iter().map(|s| s.referenced_bytes).sum(),
        slabs,
    }
}

/// A wss snapshot with one `tcp` pool of 1 MiB slabs and `open` open connections.
pub fn snapshot(slabs: &[(u64, &[u64])], open: u64) -> Snapshot {
    with_pools("wss", vec![pool("tcp", MIB, slabs)], open)
}

/// A snapshot of `role` with these pools, its totals summed from them.
pub fn with_pools(role: &str, pools: Vec<Pool>, open: u64) -> Snapshot {
    let retained: u64 = pools.iter().map(|p| p.retained_bytes).sum();
    let referenced: u64 = pools.iter().map(|p| p.referenced_bytes).sum();
    Snapshot {
        schema_version: SCHEMA_VERSION,
        role: role.into(),
        taken_at_ms: 1_700_000_000_000,
        took_us: 150,
        process: Process {
            pid: 4242,
            uptime_ms: 60_000,
            rss_bytes: Some(50 * MIB + retained),
            allocator: Allocator {
                name: "jemalloc".into(),
                allocated_bytes: Some(10 * MIB + retained),
                active_bytes: Some(11 * MIB + retained),
                resident_bytes: Some(12 * MIB + retained),
                mapped_bytes: Some(20 * MIB + retained),
                retained_bytes: Some(0),
            },
            unreadable: vec![],
        },
        settings: Settings {
            head_mode: Some(HeadMode::Retain),
            head_mode_applies_to: "new connections".into(),
            stack: Some(snapshot::Stack::Slab),
            tls: false,
            echo: false,
            read_size: 64 << 10,
        },
        connections: Connections {
            unlisted: 0,
            open,
            accepted_total: open,
            closed_total: 0,
            failed_total: 0,
            open_by_head_mode: OpenByHeadMode {
                retain: open,
                ..OpenByHeadMode::default()
            },
            list: vec![],
        },
        totals: Totals {
            retained_bytes: retained,
            referenced_bytes: referenced,
            retained_per_referenced: (referenced > 0).then(|| retained as f64 / referenced as f64),
            live_slabs: pools.iter().map(|p| p.live_slabs).sum(),
        },
        guard: Default::default(),
        pools,
        pinned_allocations: Default::default(),
        client: None,
        audit: None,
    }
}

/// A chart sample at `t_ms` with these retained bytes and every other figure 0.
pub fn sample(t_ms: f64, retained_bytes: u64) -> Sample {
    Sample {
        t_ms,
        retained_bytes,
        referenced_bytes: 0,
        live_slabs: 0,
        resident_bytes: Some(0),
        rss_bytes: Some(0),
        buffer_pool_bytes: None,
        open_connections: 0,
        pinned_bytes: 0,
        warp: false,
    }
}
