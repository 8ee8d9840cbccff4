//! How the snapshot tree puts the retaining paths on top: pools by retained bytes,
//! slabs pinned by retainers first, and one-line summaries of each, the way a heap
//! profiler's retainers view reads ("upgrade head of connection 17").

use snapshot::{PinnedAllocation, PinnedAllocations, Pool, Slab, Snapshot};

use super::format::{bytes, duration_ms, figure_bytes, ratio};

/// Retainers listed under one slab before "and N more".
pub const RETAINERS_SHOWN: usize = 20;

/// The pools, most retained bytes first.
pub fn pools_by_retained(s: &Snapshot) -> Vec<&Pool> {
    let mut pools: Vec<&Pool> = s.pools.iter().collect();
    pools.sort_by(|a, b| {
        b.retained_bytes
            .cmp(&a.retained_bytes)
            .then_with(|| a.name.cmp(&b.name))
    });
    pools
}

/// A pool's slabs: those kept alive by retainers first (most retainers first), then
/// the rest, oldest first within each group.
pub fn slabs_by_retention(pool: &Pool) -> Vec<&Slab> {
    let mut slabs: Vec<&Slab> = pool.slabs.iter().collect();
    slabs.sort_by(|a, b| {
        b.retainers
            .len()
            .cmp(&a.retainers.len())
            .then_with(|| a.id.cmp(&b.id))
    });
    slabs
}

/// `tls pool: 3 live slabs of 10.0 MiB, 30.0 MiB retained for 1.17 KiB referenced (26214×)`.
pub fn pool_summary(pool: &Pool) -> String {
    let r = (pool.referenced_bytes > 0)
        .then(|| pool.retained_bytes as f64 / pool.referenced_bytes as f64);
    format!(
        "{} pool: {} live slab{} of {}, {} retained for {} referenced ({})",
        pool.name,
        pool.live_slabs,
        if pool.live_slabs == 1 { "" } else { "s" },
        bytes(pool.slab_size),
        bytes(pool.retained_bytes),
        bytes(pool.referenced_bytes),
        ratio(r),
    )
}

/// `slab #4: 10.0 MiB, 64.0 KiB handed out, 600 B referenced by 3 views, 3 retainers (current)`.
pub fn slab_summary(slab: &Slab) -> String {
    let mut text = format!(
        "slab #{}: {}, {} handed out, {} referenced by {} view{}, {} retainer{}",
        slab.id,
        bytes(slab.size),
        bytes(slab.handed_out_bytes),
        bytes(slab.referenced_bytes),
        slab.views,
        if slab.views == 1 { "" } else { "s" },
        slab.retainers.len(),
        if slab.retainers.len() == 1 { "" } else { "s" },
    );
    if slab.current {
        text.push_str(" (current: reads are carved from it)");
    }
    text
}

/// What a whole snapshot holds, in one line.
pub fn totals_summary(s: &Snapshot) -> String {
    format!(
        "{} live slabs hold {} for {} referenced ({}); {} open connections; RSS {}, allocator resident {}",
        s.totals.live_slabs,
        bytes(s.totals.retained_bytes),
        bytes(s.totals.referenced_bytes),
        ratio(s.totals.retained_per_referenced),
        s.connections.open,
        figure_bytes(&s.process, snapshot::figure::RSS),
        figure_bytes(&s.process, snapshot::figure::RESIDENT),
    )
}

/// `pinned allocations: 2 of 128 KiB and more, 256 KiB pinned for 1.2 KiB kept (213×)`,
/// then what was found in no tracked allocation, and whether the registry is off.
pub fn pinned_summary(p: &PinnedAllocations) -> String {
    let r = (p.kept_bytes > 0).then(|| p.pinned_bytes as f64 / p.kept_bytes as f64);
    let mut text = format!(
        "pinned allocations: {} allocation{}, {} pinned for {} kept ({})",
        p.allocations.len(),
        if p.allocations.len() == 1 { "" } else { "s" },
        bytes(p.pinned_bytes),
        bytes(p.kept_bytes),
        ratio(r),
    );
    if p.unattributed_parts > 0 {
        text.push_str(&format!(
            "; {} kept part{} ({}) in no tracked allocation",
            p.unattributed_parts,
            if p.unattributed_parts == 1 { "" } else { "s" },
            bytes(p.unattributed_bytes)
        ));
    }
    if !p.registry.enabled {
        text.push_str(" (the allocation registry is off: alloc_registry)");
    }
    text
}

/// `allocation #901: 10.0 MiB, age 1 min, 600 B kept by 2 parts`.
pub fn allocation_summary(a: &PinnedAllocation) -> String {
    format!(
        "allocation #{}: {}, age {}, {} kept by {} part{}",
        a.id,
        bytes(a.size),
        duration_ms(a.age_ms),
        bytes(a.kept_bytes),
        a.kept.len(),
        if a.kept.len() == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fixtures::{self, MIB};

    #[test]
    fn pinned_slabs_come_first() {
        let pool = fixtures::pool("tcp", MIB, &[(1, &[]), (2, &[5]), (3, &[6, 7]), (4, &[8])]);
        let ids: Vec<u64> = slabs_by_retention(&pool).iter().map(|s| s.id).collect();
        assert_eq!(ids, [3, 2, 4, 1]);
    }

    #[test]
    fn pools_with_more_retained_bytes_come_first() {
        let s = fixtures::with_pools(
            "proxy",
            vec![
                fixtures::pool("tcp", MIB, &[(1, &[])]),
                fixtures::pool("tls", 10 * MIB, &[(1, &[1])]),
            ],
            1,
        );
        let names: Vec<&str> = pools_by_retained(&s)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["tls", "tcp"]);
    }

    #[test]
    fn summaries_read_like_a_retainers_view() {
        let pool = fixtures::pool("tls", 10 * MIB, &[(1, &[1, 2, 3]), (2, &[])]);
        assert_eq!(
            pool_summary(&pool),
            "tls pool: 2 live slabs of 10.0 MiB, 20.0 MiB retained for 600 B referenced (34953×)"
        );
        let mut slab = fixtures::slab(4, 10 * MIB, &[17]);
        slab.current = true;
        assert_eq!(
            slab_summary(&slab),
            "slab #4: 10.0 MiB, 64.0 KiB handed out, 200 B referenced by 1 view, 1 retainer (current: reads are carved from it)"
        );
        assert_eq!(&*slab.retainers[0].label, "upgrade head of connection 17");
        let s = fixtures::snapshot(&[(1, &[17])], 1);
        assert!(totals_summary(&s).starts_with("1 live slabs hold 1.00 MiB for 200 B referenced"));
    }

    #[test]
    fn pinned_allocations_read_like_the_slabs() {
        let kept = |c: u64, part: &str, bytes: u64| snapshot::Retainer::new(c, part, bytes);
        let a = PinnedAllocation {
            id: 901,
            size: 128 << 10,
            age_ms: 60_000,
            kept_bytes: 600,
            kept: vec![
                kept(17, "first message", 500),
                kept(17, "header user-agent", 100),
            ],
        };
        assert_eq!(
            allocation_summary(&a),
            "allocation #901: 128.0 KiB, age 1 min, 600 B kept by 2 parts"
        );
        let mut p = PinnedAllocations {
            allocations: vec![a],
            pinned_bytes: 128 << 10,
            kept_bytes: 600,
            ..PinnedAllocations::default()
        };
        p.registry.enabled = true;
        assert_eq!(
            pinned_summary(&p),
            "pinned allocations: 1 allocation, 128.0 KiB pinned for 600 B kept (218×)"
        );
        p.unattributed_parts = 2;
        p.unattributed_bytes = 40;
        p.registry.enabled = false;
        assert!(pinned_summary(&p).ends_with(
            "; 2 kept parts (40 B) in no tracked allocation (the allocation registry is off: alloc_registry)"
        ));
    }
}
