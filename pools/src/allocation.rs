//! One slab: a large allocation that reads are carved from, freed when its last view drops.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counters a pool keeps and its slabs update.
#[derive(Default)]
pub struct PoolCounters {
    pub allocated: AtomicU64,
    pub freed: AtomicU64,
    pub reads: AtomicU64,
    pub bytes_read: AtomicU64,
}

/// A long-lived holder of a view, and the retainer the snapshot lists for it (made
/// when the view is kept, so that a snapshot formats nothing).
#[derive(Debug, Clone)]
pub(super) struct RetainerEntry {
    pub key: u64,
    pub retainer: snapshot::Retainer,
}

/// A slab's memory and what is known about who uses it.
pub struct Slab {
    id: u64,
    size: usize,
    created: Instant,
    memory: NonNull<u8>,
    /// Bytes handed out to reads; the next read starts here. Written under the pool lock.
    handed_out: AtomicUsize,
    /// Bytes covered by live views.
    referenced: AtomicUsize,
    /// Live views.
    views: AtomicUsize,
    pub(super) retainers: Mutex<Vec<RetainerEntry>>,
    counters: Arc<PoolCounters>,
}

// SAFETY: the memory is written only in regions no view covers, under the pool lock,
// and read only through views of regions already written; see `region_mut`.
unsafe impl Send for Slab {}
unsafe impl Sync for Slab {}

const ALIGN: usize = 64;

impl Slab {
    /// Allocates a slab from the global allocator (so the allocator counts it).
    ///
    /// Its bytes are not zeroed, as Node's pool slabs are not (`allocUnsafe`): only
    /// regions a read has written are ever handed out, and zeroing would cost a pass
    /// over every slab (or, for fresh pages, fault them all in at once).
    pub(super) fn allocate(id: u64, size: usize, counters: Arc<PoolCounters>) -> Slab {
        let layout = Layout::from_size_align(size, ALIGN).expect("slab size fits a layout");
        // SAFETY: size is at least 1024 (checked by the config).
        let memory =
            NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout));
        PoolCounters::count(&counters.allocated);
        Slab {
            id,
            size,
            created: Instant::now(),
            memory,
            handed_out: AtomicUsize::new(0),
            referenced: AtomicUsize::new(0),
            views: AtomicUsize::new(0),
            retainers: Mutex::new(Vec::new()),
            counters,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Where its memory starts (the allocation's address).
    pub fn address(&self) -> usize {
        self.memory.as_ptr() as usize
    }

    pub(super) fn handed_out(&self) -> usize {
        self.handed_out.load(Ordering::Acquire)
    }

    /// Moves the offset past `n` bytes just read.
    pub(super) fn hand_out(&self, n: usize) {
        self.handed_out.fetch_add(n, Ordering::Release);
    }

    pub(super) fn referenced_bytes(&self) -> u64 {
        self.referenced.load(Ordering::Relaxed) as u64
    }

    /// The writable region `[offset, offset + len)`, maybe never written yet.
    ///
    /// # Safety
    /// The caller holds the pool lock and the region lies at or past `handed_out`,
    /// so no view covers it and nobody else writes it.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn region_mut(&self, offset: usize, len: usize) -> &mut [MaybeUninit<u8>] {
        assert!(offset + len <= self.size);
        std::slice::from_raw_parts_mut(self.memory.as_ptr().add(offset).cast(), len)
    }

    /// The handed-out region `[offset, offset + len)`.
    ///
    /// # Safety
    /// The region was handed out, so it is written once and never again.
    pub(super) unsafe fn region(&self, offset: usize, len: usize) -> &[u8] {
        debug_assert!(offset + len <= self.handed_out());
        std::slice::from_raw_parts(self.memory.as_ptr().add(offset), len)
    }

    pub(super) fn view_made(&self, len: usize) {
        self.referenced.fetch_add(len, Ordering::Relaxed);
        self.views.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn view_dropped(&self, len: usize) {
        self.referenced.fetch_sub(len, Ordering::Relaxed);
        self.views.fetch_sub(1, Ordering::Relaxed);
    }

    /// The slab as the snapshot shows it; `index` says what the allocator knows of it.
    pub(super) fn snapshot(
        &self,
        now: Instant,
        current: bool,
        index: &allocator::registry::Index,
    ) -> snapshot::Slab {
        let retainers = self
            .retainers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| r.retainer.clone())
            .collect();
        let allocation = index.at(self.memory.as_ptr());
        snapshot::Slab {
            unlisted_retainers: 0,
            id: self.id,
            size: self.size as u64,
            age_ms: now.saturating_duration_since(self.created).as_millis() as u64,
            current,
            handed_out_bytes: self.handed_out() as u64,
            referenced_bytes: self.referenced_bytes(),
            views: self.views.load(Ordering::Relaxed) as u64,
            retainers,
            allocation_bytes: allocation.map(|t| t.size as u64),
            allocation_id: allocation.map(|t| t.id),
        }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.size, ALIGN).expect("slab layout");
        // SAFETY: allocated in `allocate` with this very layout; no view is left.
        unsafe { dealloc(self.memory.as_ptr(), layout) };
        PoolCounters::count(&self.counters.freed);
    }
}
