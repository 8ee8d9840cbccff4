//! The global allocator: jemalloc (so the snapshot can read the allocator's own
//! statistics), wrapped so that it keeps the [`registry`] of large live allocations.
//!
//! An allocation below [`registry::THRESHOLD`] costs one comparison more than plain
//! jemalloc; a larger one records or forgets one table entry (docs/results/benchmarks.md has the
//! measured cost). With `alloc_registry: false` the extra work is one flag test.

pub mod registry;

use std::alloc::{GlobalAlloc, Layout};

use tikv_jemallocator::Jemalloc;

/// jemalloc, keeping [`registry`] up to date.
pub struct Tracking;

// SAFETY: every call is forwarded to jemalloc with the same arguments; the registry
// is updated around it and never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = Jemalloc.alloc(layout);
        note_new(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = Jemalloc.alloc_zeroed(layout);
        note_new(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Forgotten before it is freed: once freed, another thread may get the address.
        note_gone(ptr, layout.size());
        Jemalloc.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_gone(ptr, layout.size());
        let new = Jemalloc.realloc(ptr, layout, new_size);
        if new.is_null() {
            // Failed: the old allocation is still there.
            note_new(ptr, layout.size());
        } else {
            note_new(new, new_size);
        }
        new
    }
}

#[inline]
fn note_new(ptr: *mut u8, size: usize) {
    if size >= registry::THRESHOLD && !ptr.is_null() && registry::enabled() {
        registry::record(ptr as usize, size);
    }
}

#[inline]
fn note_gone(ptr: *mut u8, size: usize) {
    if size >= registry::THRESHOLD && registry::enabled() {
        registry::forget(ptr as usize);
    }
}
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// jemalloc's options, read before `main` (`_RJEM_MALLOC_CONF` adds to them):
/// - `background_thread`, `dirty_decay_ms:1000`, `muzzy_decay_ms:0`: freed pages go
///   back to the system within about a second, even when the process then sits idle,
///   so that a server whose connections have closed shrinks again (by default jemalloc
///   keeps them 10 s, and purges only as a side effect of later allocations). A
///   second is still far longer than a freed slab waits to be reused under load.
/// - `oversize_threshold:0`: no separate arena for allocations over 8 MiB, which
///   jemalloc otherwise returns to the system at once when freed: the TLS pool's
///   10 MiB slabs would then page-fault all their pages in anew, slab after slab
///   (a fifth of the proxy's CPU under load). Freed slabs now decay like the rest.
#[cfg(not(fuzzing))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &u8 =
    &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,oversize_threshold:0\0"[0];
