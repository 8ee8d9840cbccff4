//! The registry as the global allocator keeps it, in this very test process.
//!
//! Tests run in parallel in one process, so an address freed here may be handed to
//! another test at once: "gone" means no entry with the id it had.

use super::*;

fn tracked_id(ptr: *const u8) -> Option<(u64, usize)> {
    Index::take().find(ptr).map(|t| (t.id, t.size))
}

#[test]
fn a_large_allocation_is_found_from_any_byte_in_it_until_freed() {
    let buf: Vec<u8> = Vec::with_capacity(100_000);
    let base = buf.as_ptr();
    let index = Index::take();
    let at = *index.at(base).expect("the allocation starts there");
    assert_eq!(at.size, 100_000);
    let inside = index
        .find(base.wrapping_add(99_999))
        .expect("its last byte");
    assert_eq!(inside.id, at.id);
    assert!(index.find(base.wrapping_add(100_000)).map(|t| t.id) != Some(at.id));
    drop(index);
    drop(buf);
    assert_ne!(
        tracked_id(base).map(|t| t.0),
        Some(at.id),
        "freed: forgotten"
    );
}

#[test]
fn small_allocations_are_not_recorded() {
    let small = vec![7u8; THRESHOLD - 1];
    let index = Index::take();
    assert!(
        index
            .find(small.as_ptr())
            .is_none_or(|t| t.size >= THRESHOLD),
        "a {} B allocation recorded",
        small.len()
    );
    let large = vec![7u8; THRESHOLD];
    assert_eq!(
        Index::take().at(large.as_ptr()).map(|t| t.size),
        Some(THRESHOLD)
    );
}

#[test]
fn a_reallocation_moves_the_entry_to_the_new_size() {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let (first, size) = tracked_id(buf.as_ptr()).expect("8 KiB recorded");
    assert_eq!(size, 8192);
    buf.reserve_exact(1 << 20);
    let index = Index::take();
    let now = index.at(buf.as_ptr()).expect("the grown buffer recorded");
    assert_eq!(now.size, buf.capacity());
    assert_ne!(now.id, first, "a new entry for the new allocation");
    assert!(
        index.entries().iter().all(|t| t.id != first),
        "old entry gone"
    );
    // Shrinking below the threshold forgets it.
    buf.shrink_to(16);
    let ptr = buf.as_ptr();
    let index = Index::take();
    assert!(index
        .find(ptr)
        .is_none_or(|t| t.size >= THRESHOLD && t.addr != ptr as usize));
}

#[test]
fn threads_allocating_at_once_each_find_their_own_and_forget_them() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let bufs: Vec<Vec<u8>> = (0..500)
                    .map(|i| Vec::with_capacity(4096 + 64 * (i + t)))
                    .collect();
                let index = Index::take();
                let mut ids = Vec::new();
                for b in &bufs {
                    let found = index.at(b.as_ptr()).expect("each one recorded");
                    assert_eq!(found.size, b.capacity());
                    ids.push((b.as_ptr() as usize, found.id));
                }
                drop(bufs);
                ids
            })
        })
        .collect();
    let ids: Vec<(usize, u64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let index = Index::take();
    for (addr, id) in ids {
        assert_ne!(index.find(addr as *const u8).map(|t| t.id), Some(id));
    }
}

#[test]
fn the_summary_counts_what_the_index_holds() {
    let _keep: Vec<Vec<u8>> = (0..10).map(|_| Vec::with_capacity(1 << 16)).collect();
    let index = Index::take();
    let summary = index.summary();
    assert!(summary.enabled);
    assert_eq!(summary.threshold_bytes, THRESHOLD as u64);
    assert_eq!(summary.capacity, CAPACITY as u64);
    assert_eq!(summary.tracked, index.entries().len() as u64);
    assert!(summary.tracked >= 10);
    assert!(summary.tracked_bytes >= 10 << 16);
    assert!(
        index.entries().windows(2).all(|w| w[0].addr < w[1].addr),
        "sorted"
    );
}
