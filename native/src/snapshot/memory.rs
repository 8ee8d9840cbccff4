//! Memory figures read from the allocator (jemalloc) and the kernel.

use snapshot::Allocator;
use tikv_jemalloc_ctl::{epoch, stats};

/// jemalloc's statistics, after advancing its epoch (they are cached until then).
pub fn allocator() -> Allocator {
    let _ = epoch::advance();
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.map(|v| v as u64).unwrap_or(0);
    Allocator {
        name: "jemalloc".to_string(),
        allocated_bytes: read(stats::allocated::read()),
        active_bytes: read(stats::active::read()),
        resident_bytes: read(stats::resident::read()),
        mapped_bytes: read(stats::mapped::read()),
        retained_bytes: read(stats::retained::read()),
    }
}

/// jemalloc's allocated bytes now (after advancing its epoch), or why not.
pub fn allocated_bytes() -> Option<u64> {
    epoch::advance().ok()?;
    stats::allocated::read().ok().map(|v| v as u64)
}

/// The process's resident set size, from `/proc/self/status` (VmRSS).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
