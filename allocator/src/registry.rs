//! The allocation registry: every live allocation of at least [`THRESHOLD`] bytes,
//! by address and size, recorded from inside the global allocator.
//!
//! It answers "which allocation does this pointer lie in, and how big is it" for
//! bytes that hyper, tungstenite or the slab pools handed out, so the snapshot can
//! say what a kept `Bytes` keeps alive instead of assuming it.
//!
//! The table is a fixed array of atomics in the process's zeroed data (no
//! allocation, so the allocator can write to it; pages are touched only as entries
//! land), open-addressed by a hash of the address. Recording is lock-free: a slot is
//! claimed by a compare-and-swap of its address, then its size, id and birth time
//! are stored. Readers take a [`Index`]: one pass over the table, sorted by address.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Smallest allocation recorded, in bytes.
pub const THRESHOLD: usize = 4096;
/// Entries the table holds (4 MiB of address space, resident only where used).
pub const CAPACITY: usize = 1 << 17;
/// Slots tried before an allocation is counted as overflowed.
const MAX_PROBES: usize = 256;

const EMPTY: usize = 0;
const REMOVED: usize = 1;

struct Slot {
    addr: AtomicUsize,
    /// 0 while the slot is being written or emptied.
    size: AtomicUsize,
    id: AtomicU64,
    born_ms: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // the array initializer
const SLOT: Slot = Slot {
    addr: AtomicUsize::new(EMPTY),
    size: AtomicUsize::new(0),
    id: AtomicU64::new(0),
    born_ms: AtomicU64::new(0),
};

static TABLE: [Slot; CAPACITY] = [SLOT; CAPACITY];
static ENABLED: AtomicBool = AtomicBool::new(true);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);

/// Whether allocations are being recorded: on from the start, switched off for
/// good by [`disable`], never on under `cargo fuzz` (no jemalloc there).
pub fn enabled() -> bool {
    cfg!(not(fuzzing)) && ENABLED.load(Ordering::Relaxed)
}

/// Stops recording (config key `alloc_registry: false`). Entries recorded so far
/// are no longer read; the allocator's extra work drops to one flag test.
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

fn home(addr: usize) -> usize {
    ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CAPACITY.trailing_zeros()))
        as usize
}

/// Milliseconds of a monotonic clock (coarse: a few ms of resolution, a few ns to read).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Records a new allocation at `addr` of `size` bytes (at least [`THRESHOLD`]).
///
/// Called by the global allocator: allocates nothing, takes no lock.
pub fn record(addr: usize, size: usize) {
    let start = home(addr);
    for i in 0..MAX_PROBES {
        let slot = &TABLE[(start + i) % CAPACITY];
        let current = slot.addr.load(Ordering::Relaxed);
        if (current == EMPTY || current == REMOVED)
            && slot
                .addr
                .compare_exchange(current, addr, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            slot.id
                .store(NEXT_ID.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
            slot.born_ms.store(now_ms(), Ordering::Relaxed);
            slot.size.store(size, Ordering::Release);
            return;
        }
    }
    OVERFLOWED.fetch_add(1, Ordering::Relaxed);
}

/// Forgets the allocation at `addr`, before it is freed.
///
/// An address is live once at a time, so only its own entry can hold it; a slot
/// once used is never emptied again (only marked removed), so the probe for it
/// stops at the first never-used slot.
pub fn forget(addr: usize) {
    let start = home(addr);
    for i in 0..MAX_PROBES {
        let slot = &TABLE[(start + i) % CAPACITY];
        match slot.addr.load(Ordering::Relaxed) {
            a if a == addr => {
                slot.size.store(0, Ordering::Release);
                slot.addr.store(REMOVED, Ordering::Release);
                return;
            }
            EMPTY => return,
            _ => {}
        }
    }
}

/// One live allocation the registry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// Unique in the process, never reused, in allocation order.
    pub id: u64,
    pub addr: usize,
    pub size: usize,
    /// When it was made, on [`now_ms`]'s clock.
    pub born_ms: u64,
}

impl Tracked {
    /// Whether `ptr` lies in this allocation.
    pub fn contains(&self, ptr: usize) -> bool {
        ptr >= self.addr && ptr < self.addr + self.size
    }
}

/// The live allocations at one moment, sorted by address, to look pointers up in.
pub struct Index {
    entries: Vec<Tracked>,
    enabled: bool,
}

impl Index {
    /// Reads the whole table once (empty when the registry is off).
    pub fn take() -> Index {
        let enabled = enabled();
        let mut entries = Vec::new();
        if enabled {
            for slot in TABLE.iter() {
                let addr = slot.addr.load(Ordering::Acquire);
                if addr == EMPTY || addr == REMOVED {
                    continue;
                }
                let size = slot.size.load(Ordering::Acquire);
                let (id, born_ms) = (
                    slot.id.load(Ordering::Relaxed),
                    slot.born_ms.load(Ordering::Relaxed),
                );
                // Being written or emptied, or taken by another allocation meanwhile.
                if size == 0 || slot.addr.load(Ordering::Acquire) != addr {
                    continue;
                }
                entries.push(Tracked {
                    id,
                    addr,
                    size,
                    born_ms,
                });
            }
            entries.sort_unstable_by_key(|t| t.addr);
        }
        Index { entries, enabled }
    }

    /// The allocation `ptr` lies in, if the registry knows one.
    pub fn find(&self, ptr: *const u8) -> Option<&Tracked> {
        let ptr = ptr as usize;
        let after = self.entries.partition_point(|t| t.addr <= ptr);
        self.entries[..after].last().filter(|t| t.contains(ptr))
    }

    /// The allocation that starts at `ptr`, if the registry knows one.
    pub fn at(&self, ptr: *const u8) -> Option<&Tracked> {
        self.find(ptr).filter(|t| t.addr == ptr as usize)
    }

    /// Every allocation known, by address.
    pub fn entries(&self) -> &[Tracked] {
        &self.entries
    }

    /// The registry's state as the snapshot shows it.
    pub fn summary(&self) -> snapshot::AllocationRegistry {
        snapshot::AllocationRegistry {
            enabled: self.enabled,
            threshold_bytes: THRESHOLD as u64,
            tracked: self.entries.len() as u64,
            tracked_bytes: self.entries.iter().map(|t| t.size as u64).sum(),
            capacity: CAPACITY as u64,
            overflowed_total: OVERFLOWED.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
