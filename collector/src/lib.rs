//! The collector: takes a running process's memory snapshot and serves it.
//!
//! The types live in the `snapshot` crate (one definition for servers, client and
//! web app); [`take`] fills them from the running process: the slab pools, the kept
//! parts found in the allocation registry ([`pinned`]), the allocator's statistics
//! and the kernel's RSS. [`endpoint`] serves `/snapshot` (JSON, or a Chrome heap
//! snapshot written by [`heapsnapshot`], or a pprof profile of retaining paths by
//! `snapshot::pprof`), `/metrics` ([`metrics`], Prometheus's text
//! format) and `PUT /settings`; [`serve_beside`] starts it beside a server.
//! Fetching a snapshot from another process is the client's job (`client::fetch`).

pub mod endpoint;
pub mod heapsnapshot;
pub mod metrics;
pub mod pinned;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use snapshot::{Connections, Process, Settings, Snapshot, Totals, SCHEMA_VERSION};

use std::net::SocketAddr;
use std::sync::Arc;

use runtime::config::Config;
use runtime::server::State;
use runtime::shutdown::Shutdown;

/// Starts what every server runs beside its connections until shutdown: its
/// snapshot endpoint (on the role's port; returns the address bound), the stats
/// line every [`STATS_EVERY`](runtime::server::STATS_EVERY) and the memory guard's
/// watch.
pub async fn serve_beside(
    state: &Arc<State>,
    config: &Config,
    shutdown: &Shutdown,
) -> std::io::Result<SocketAddr> {
    let addr = endpoint::serve_for(config, state.clone(), shutdown.clone()).await?;
    state.print_stats(shutdown);
    state.watch_guard(shutdown);
    Ok(addr)
}

/// How much of each connection a snapshot lists; its totals always cover all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detail {
    /// List at most this many open connections (the oldest: lowest ids) and only
    /// their retainers and kept parts; `None` lists every one.
    pub connections: Option<usize>,
}

impl Detail {
    /// Every connection and retainer listed.
    pub const ALL: Detail = Detail { connections: None };
    /// No connection listed: the counts and totals alone, the cheap snapshot that
    /// the page's polls and `/metrics` take.
    pub const TOTALS: Detail = Detail {
        connections: Some(0),
    };
}

/// Which connections' retainers a snapshot lists: those with ids up to a bound.
#[derive(Debug, Clone, Copy)]
pub struct Listed {
    through: Option<u64>,
}

impl Listed {
    /// Whether the retainers of `connection` are listed.
    pub fn includes(self, connection: u64) -> bool {
        self.through.is_some_and(|last| connection <= last)
    }
}

/// Takes a snapshot of this process, listing every connection.
pub fn take(state: &State) -> Snapshot {
    take_with(state, Detail::ALL)
}

/// Takes a snapshot of this process, listing what `detail` asks for.
pub fn take_with(state: &State, detail: Detail) -> Snapshot {
    let started = Instant::now();
    let c = &state.connections;
    let (list, described) = c.list(detail.connections.unwrap_or(usize::MAX));
    let unlisted = (described - list.len()) as u64;
    let listing = started.elapsed();
    // The list is by id: the listed connections are those up to the last one's id.
    let listed = Listed {
        through: match (detail.connections, list.last()) {
            (None, _) => Some(u64::MAX),
            (Some(_), last) => last.map(|c| c.id),
        },
    };
    let index = allocator::registry::Index::take();
    let indexing = started.elapsed();
    let with_addresses: Vec<_> = state
        .pools
        .iter()
        .map(|p| p.snapshot_with_addresses(started, &index))
        .collect();
    let pinned_allocations = pinned::pinned(state, &with_addresses, &index, listed);
    let attributing = started.elapsed();
    drop(index);
    let pools: Vec<snapshot::Pool> = with_addresses
        .into_iter()
        .map(|(mut pool, _)| {
            for slab in &mut pool.slabs {
                let all = slab.retainers.len();
                slab.retainers.retain(|r| listed.includes(r.connection));
                slab.unlisted_retainers = (all - slab.retainers.len()) as u64;
            }
            pool
        })
        .collect();
    let retained_bytes: u64 = pools.iter().map(|p| p.retained_bytes).sum();
    let referenced_bytes: u64 = pools.iter().map(|p| p.referenced_bytes).sum();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let (rss_bytes, allocator, unreadable) = runtime::memory::read();
    let mut snap = Snapshot {
        schema_version: SCHEMA_VERSION,
        role: state.role.as_str().to_string(),
        taken_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        took_us: 0,
        process: Process {
            pid: std::process::id(),
            uptime_ms: state.started.elapsed().as_millis() as u64,
            rss_bytes,
            allocator,
            unreadable,
        },
        settings: Settings {
            head_mode: state.head_mode(),
            head_mode_applies_to: "new connections".to_string(),
            stack: state.stack,
            tls: state.tls,
            echo: state.echo,
            read_size: state.read_size as u64,
        },
        connections: Connections {
            open: c.open(),
            accepted_total: load(&c.accepted),
            closed_total: load(&c.closed),
            failed_total: load(&c.failed),
            open_by_head_mode: c.open_by_head_mode(),
            list,
            unlisted,
        },
        totals: Totals {
            retained_bytes,
            referenced_bytes,
            retained_per_referenced: (referenced_bytes > 0)
                .then(|| retained_bytes as f64 / referenced_bytes as f64),
            live_slabs: pools.iter().map(|p| p.live_slabs).sum(),
        },
        guard: state.guard_snapshot(),
        pools,
        pinned_allocations,
        client: None,
        audit: None,
    };
    state.fill_sections(&mut snap);
    let took = started.elapsed();
    snap.took_us = took.as_micros() as u64;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    tracing::debug!(
        took_ms = ms(took),
        list_ms = ms(listing),
        registry_ms = ms(indexing - listing),
        pools_and_parts_ms = ms(attributing - indexing),
        rest_ms = ms(took - attributing),
        listed = snap.connections.list.len(),
        unlisted,
        "snapshot taken"
    );
    snap
}
