//! The global allocator: jemalloc (so the snapshot can read the allocator's own
//! statistics), wrapped so that it keeps the [`registry`] of large live allocations.
//!
//! An allocation below [`registry::THRESHOLD`] costs one comparison more than plain
//! jemalloc; a larger one records or forgets one table entry (BENCHMARKS.md has the
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
