//! The pool's semantics, read back through its own snapshot.

use std::time::Instant;

use super::*;
use allocator::registry::Index;

/// Reads `data` through the pool in one read.
async fn read(pool: &SlabPool, data: &[u8]) -> SlabView {
    let mut reader = data;
    pool.read(&mut reader).await.unwrap().expect("bytes")
}

#[tokio::test]
async fn reads_share_the_current_slab_until_it_cannot_fit_a_read() {
    let pool = SlabPool::new("tcp", 4096, 1024);
    let a = read(&pool, &[1; 1000]).await;
    let b = read(&pool, &[2; 1000]).await;
    let c = read(&pool, &[3; 1000]).await;
    assert_eq!((a.slab_id(), b.slab_id(), c.slab_id()), (1, 1, 1));
    assert_eq!(&b[..3], &[2, 2, 2]);
    // 3000 handed out: 1096 left fits one more 1024-byte read.
    let d = read(&pool, &[4; 10]).await;
    assert_eq!(d.slab_id(), 1);
    // 3010 handed out: 1086 left still fits.
    let e = read(&pool, &[5; 1024]).await;
    assert_eq!(e.slab_id(), 1);
    // 62 left: the next read takes a new slab.
    let f = read(&pool, &[6; 1]).await;
    assert_eq!(f.slab_id(), 2);
    let snap = pool.snapshot(Instant::now(), &Index::take());
    assert_eq!(snap.live_slabs, 2);
    assert_eq!(snap.slabs[0].handed_out_bytes, 4034);
    assert_eq!(snap.slabs[0].referenced_bytes, 4034);
    assert_eq!(snap.slabs[0].views, 5);
    assert!(!snap.slabs[0].current && snap.slabs[1].current);
    assert_eq!(snap.retained_bytes, 8192);
    assert_eq!(snap.reads_total, 6);
    assert_eq!(snap.bytes_read_total, 4035);
    assert_eq!(&a[..], &[1; 1000][..]);
    assert_eq!(&e[1020..], &[5; 4][..]);
}

#[tokio::test]
async fn a_slab_is_freed_when_its_last_view_drops() {
    let pool = SlabPool::new("tcp", 2048, 1024);
    let small = read(&pool, b"GET / HTTP/1.1\r\n\r\n").await;
    let kept = small.slice(4..5);
    drop(small);
    let _filler = read(&pool, &[0; 1024]).await;
    drop(_filler);
    let next = read(&pool, b"x").await;
    assert_eq!(next.slab_id(), 2);
    // Slab 1 lives on through a one-byte slice of its first read.
    assert_eq!(pool.summary().live_slabs, 2);
    let snap = pool.snapshot(Instant::now(), &Index::take());
    assert_eq!(
        snap.slabs[0].referenced_bytes, 18,
        "the whole region stays referenced"
    );
    assert_eq!(pool.live_bytes(), pool.summary().retained_bytes);
    drop(kept);
    assert_eq!(pool.summary().live_slabs, 1);
    assert_eq!(pool.live_bytes(), 2048);
    let snap = pool.snapshot(Instant::now(), &Index::take());
    assert_eq!((snap.slabs_allocated_total, snap.slabs_freed_total), (2, 1));
    assert_eq!(snap.slabs[0].id, 2);
}

#[tokio::test]
async fn retained_views_are_listed_as_retainers_until_dropped() {
    let pool = SlabPool::new("tls", 4096, 1024);
    let view = read(&pool, b"GET / HTTP/1.1\r\n\r\nhead").await;
    let request = view.slice(..18).retain(17, "upgrade request");
    let head = view.slice(18..).retain(17, "upgrade head");
    drop(view);
    let snap = pool.snapshot(Instant::now(), &Index::take());
    let retainers = &snap.slabs[0].retainers;
    assert_eq!(retainers.len(), 2);
    let labels: Vec<&str> = retainers.iter().map(|r| &*r.label).collect();
    assert!(
        labels.contains(&"upgrade head of connection 17"),
        "{labels:?}"
    );
    assert!(retainers
        .iter()
        .any(|r| &*r.part == "upgrade request" && r.bytes == 18));
    drop(request);
    let snap = pool.snapshot(Instant::now(), &Index::take());
    assert_eq!(snap.slabs[0].retainers.len(), 1);
    assert_eq!(&head.view()[..], b"head");
    drop(head);
    assert!(pool.snapshot(Instant::now(), &Index::take()).slabs[0]
        .retainers
        .is_empty());
}

#[tokio::test]
async fn end_of_stream_reads_none_and_takes_nothing() {
    let pool = SlabPool::new("tcp", 2048, 1024);
    let mut empty: &[u8] = &[];
    assert!(pool.read(&mut empty).await.unwrap().is_none());
    assert_eq!(
        pool.snapshot(Instant::now(), &Index::take()).slabs[0].handed_out_bytes,
        0
    );
}

#[tokio::test]
async fn an_empty_slice_still_counts_as_a_view_of_its_region() {
    let pool = SlabPool::new("tcp", 2048, 1024);
    let view = read(&pool, b"x").await;
    let empty = view.slice(1..1);
    assert!(empty.is_empty());
    drop(view);
    drop(read(&pool, &[0; 1024]).await);
    let _third = read(&pool, b"y").await;
    let snap = pool.snapshot(Instant::now(), &Index::take());
    assert_eq!(
        snap.slabs[0].id, 1,
        "slab 1 lives on through the empty view"
    );
    assert_eq!(
        (snap.slabs[0].views, snap.slabs[0].referenced_bytes),
        (1, 1)
    );
    drop(empty);
    assert_eq!(pool.snapshot(Instant::now(), &Index::take()).slabs[0].id, 2);
}

/// The pool's bookkeeping checked against the allocator's: every live slab is one
/// allocation of the slab's size in the allocation registry, and a freed slab leaves it.
#[tokio::test]
async fn every_live_slab_is_an_allocation_of_its_size_in_the_registry() {
    let pool = SlabPool::new("tcp", 64 << 10, 16 << 10);
    let mut kept = Vec::new();
    for _ in 0..10 {
        kept.push(read(&pool, &[1u8; 16 << 10]).await);
    }
    let (snap, addresses) = pool.snapshot_with_addresses(Instant::now(), &Index::take());
    assert!(snap.live_slabs >= 3, "{} live slabs", snap.live_slabs);
    for slab in &snap.slabs {
        assert_eq!(slab.allocation_bytes, Some(slab.size), "slab {}", slab.id);
    }
    let first = addresses[0];
    let id = Index::take().at(first as *const u8).map(|t| t.id);
    kept.clear();
    // Only the current slab lives on; the others' allocations are gone.
    let snap = pool.snapshot(Instant::now(), &Index::take());
    assert_eq!(snap.live_slabs, 1);
    assert_ne!(Index::take().at(first as *const u8).map(|t| t.id), id);
}
