//! `BufferPool::copy`, Node's small-Buffer pool, under arbitrary copies and drops.
//!
//! Checked after every step against a model of the copies the test keeps:
//! - a copy holds its parts, in order, and a kept copy never changes;
//! - it is pooled exactly when the pool is on and it is under the threshold; a pooled
//!   copy starts 8-byte aligned, in the current chunk while it fits, else in a new one;
//! - the snapshot's accounting: per live chunk its handed-out bytes (aligned), its
//!   referenced bytes, views and retainers; live chunks = allocated - freed;
//! - once every copy is dropped, at most the current chunk is left, unreferenced.
#![no_main]

use std::collections::BTreeMap;
use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pools::{Buffer, BufferPool, Retained, CARVE_ALIGN};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Chunk size: 0 (off) when this is 0, else 64 + this % 4096 bytes.
    chunk_size: u16,
    /// Threshold: 1 + this % (chunk size + 1).
    threshold: u16,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    /// A copy of parts of these lengths, filled with `fill`, the next byte each.
    Copy { parts: Vec<u16>, fill: u8, keep: Keep },
    DropOldest,
    DropNewest,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Keep {
    Nothing,
    Buffer,
    /// Kept as a connection's retainer (pooled copies only).
    Retained { connection: u8 },
}

enum Holder {
    Buffer(Buffer),
    Retained(Retained),
}

struct Kept {
    /// The chunk it lies in (pooled) and its length.
    chunk: Option<u64>,
    expected: Vec<u8>,
    holder: Holder,
}

impl Kept {
    fn bytes(&self) -> &[u8] {
        match &self.holder {
            Holder::Buffer(b) => b,
            Holder::Retained(r) => r.view(),
        }
    }
}

fuzz_target!(|input: Input| {
    let chunk_size = match input.chunk_size {
        0 => 0,
        n => 64 + n as usize % 4096,
    };
    let threshold = 1 + input.threshold as usize % (chunk_size + 1);
    let pool = BufferPool::new(chunk_size, threshold);
    let mut kept: Vec<Kept> = Vec::new();
    // Bytes handed out per chunk, and the current chunk, by the copies seen.
    let mut handed_out: BTreeMap<u64, usize> = BTreeMap::new();
    let mut current: Option<u64> = None;
    let mut carved = 0u64;
    for step in input.steps.iter().take(512) {
        match step {
            Step::Copy { parts, fill, keep } => {
                let parts: Vec<Vec<u8>> = parts
                    .iter()
                    .take(8)
                    .enumerate()
                    .map(|(i, len)| {
                        let start = fill.wrapping_add(i as u8 * 31);
                        (0..*len as usize % 3000).map(|j| start.wrapping_add(j as u8)).collect()
                    })
                    .collect();
                let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
                let expected = parts.concat();
                let len = expected.len();
                let copy = pool.copy(&refs);
                assert_eq!(&copy[..], &expected[..], "a copy holds its parts");
                let pooled = chunk_size > 0 && len > 0 && len < threshold;
                assert_eq!(pool.pools(len), pooled);
                let chunk = match &copy {
                    Buffer::Pooled(view) => {
                        assert!(pooled, "{len} bytes pooled with threshold {threshold}");
                        assert_eq!(view.as_ptr() as usize % CARVE_ALIGN, 0, "aligned");
                        let id = view.slab_id();
                        let fits = current.is_some_and(|c| handed_out[&c] + len <= chunk_size);
                        if fits {
                            assert_eq!(Some(id), current, "the current chunk fits {len} bytes");
                        } else {
                            assert_ne!(Some(id), current, "a new chunk only when needed");
                            current = Some(id);
                            handed_out.insert(id, 0);
                        }
                        let at = handed_out.get_mut(&id).unwrap();
                        *at = (*at + len.next_multiple_of(CARVE_ALIGN)).min(chunk_size);
                        carved += 1;
                        Some(id)
                    }
                    Buffer::Unpooled(_) => {
                        assert!(!pooled, "{len} bytes not pooled with threshold {threshold}");
                        None
                    }
                };
                let holder = match (keep, copy) {
                    (Keep::Nothing, _) => continue,
                    (Keep::Retained { connection }, Buffer::Pooled(view)) => {
                        Holder::Retained(view.retain(*connection as u64, "upgrade request"))
                    }
                    (_, copy) => Holder::Buffer(copy),
                };
                kept.push(Kept { chunk, expected, holder });
            }
            Step::DropOldest => {
                if !kept.is_empty() {
                    kept.remove(0);
                }
            }
            Step::DropNewest => {
                kept.pop();
            }
        }
        check(&pool, &kept, &handed_out, carved);
    }
    kept.clear();
    if let Some(chunks) = pool.chunks() {
        let snap = chunks.snapshot(Instant::now(), &allocator::registry::Index::take());
        assert!(snap.live_slabs <= 1, "{} chunks left", snap.live_slabs);
        for chunk in &snap.slabs {
            assert!(chunk.current, "chunk {} outlived its copies", chunk.id);
            assert_eq!((chunk.views, chunk.referenced_bytes), (0, 0));
            assert!(chunk.retainers.is_empty());
        }
        assert_eq!(snap.slabs_allocated_total - snap.slabs_freed_total, snap.live_slabs);
    }
});

/// The pool's snapshot against the model.
fn check(pool: &BufferPool, kept: &[Kept], handed_out: &BTreeMap<u64, usize>, carved: u64) {
    for k in kept {
        assert_eq!(k.bytes(), &k.expected[..], "a kept copy never changes");
    }
    let Some(chunks) = pool.chunks() else {
        return;
    };
    let snap = chunks.snapshot(Instant::now(), &allocator::registry::Index::take());
    assert_eq!(snap.reads_total, carved);
    assert_eq!(snap.slabs_allocated_total - snap.slabs_freed_total, snap.live_slabs);
    for chunk in &snap.slabs {
        let mine = kept.iter().filter(|k| k.chunk == Some(chunk.id));
        let (views, bytes) = mine.fold((0, 0), |(n, b), k| (n + 1, b + k.expected.len() as u64));
        assert_eq!(chunk.handed_out_bytes, handed_out[&chunk.id] as u64, "chunk {}", chunk.id);
        assert_eq!((chunk.views, chunk.referenced_bytes), (views, bytes), "chunk {}", chunk.id);
        let retainers = kept
            .iter()
            .filter(|k| k.chunk == Some(chunk.id) && matches!(k.holder, Holder::Retained(_)))
            .count();
        assert_eq!(chunk.retainers.len(), retainers, "chunk {}", chunk.id);
        if !chunk.current {
            assert!(views > 0, "chunk {} lives on with no copy in it", chunk.id);
        }
    }
}
