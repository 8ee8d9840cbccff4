//! Node core's small-Buffer pool (`Buffer.poolSize`, 8 KiB), the seed's last finding.
//!
//! Node carves every small `Buffer` (`Buffer.from`, `Buffer.concat`, `allocUnsafe`)
//! from one shared chunk: the next 8-byte-aligned region of the current chunk, a new
//! chunk when it cannot fit, the chunk freed only when its last view goes. So the
//! module-level fix of 2013, *copying* the upgrade head, still pinned a whole chunk
//! shared with short-lived buffers. [`BufferPool`] is that pool on a [`SlabPool`] of
//! its own (named `buffer`); [`BufferPool::copy_unpooled`] is Node's advice for what
//! is kept long (`Buffer.allocUnsafeSlow`): an allocation of its own.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use super::{SlabPool, SlabView};

/// The pool's name in snapshots and metrics.
pub const BUFFER_POOL: &str = "buffer";

/// Node's small-Buffer pool: small copies share chunks, larger ones are their own.
pub struct BufferPool {
    /// The chunks small copies are carved from; `None` when the pool is off.
    chunks: Option<Arc<SlabPool>>,
    /// Copies of fewer bytes than this come from the pool.
    threshold: usize,
}

/// A copy made through a [`BufferPool`].
#[derive(Clone)]
pub enum Buffer {
    /// A region of a pool chunk: it keeps the whole chunk alive.
    Pooled(SlabView),
    /// An allocation of its own.
    Unpooled(Bytes),
}

impl BufferPool {
    /// A pool of `chunk_size`-byte chunks carving copies under `threshold` bytes
    /// (Node 0.8 carved up to the pool size: `chunk_size + 1`; today's Node carves
    /// under half of it). A `chunk_size` of 0 turns the pool off: every copy is
    /// then an allocation of its own.
    pub fn new(chunk_size: usize, threshold: usize) -> Arc<BufferPool> {
        let largest = threshold.saturating_sub(1).min(chunk_size);
        let chunks = (chunk_size > 0 && largest > 0)
            .then(|| SlabPool::new(BUFFER_POOL, chunk_size, largest));
        Arc::new(BufferPool { chunks, threshold })
    }

    /// The pool's chunks, as a slab pool (for snapshots and the guard); `None` when off.
    pub fn chunks(&self) -> Option<&Arc<SlabPool>> {
        self.chunks.as_ref()
    }

    /// Copies of fewer bytes than this come from the pool (when it is on).
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Whether a copy of `len` bytes would be carved from the pool.
    pub fn pools(&self, len: usize) -> bool {
        self.chunks.is_some() && len > 0 && len < self.threshold
    }

    /// One buffer holding `parts` one after the other, carved from the pool when it
    /// is under the threshold (Node's `Buffer.concat`), else an allocation of its own.
    pub fn copy(&self, parts: &[&[u8]]) -> Buffer {
        let len = parts.iter().map(|p| p.len()).sum();
        match &self.chunks {
            Some(chunks) if self.pools(len) => Buffer::Pooled(chunks.carve(parts)),
            _ => Buffer::Unpooled(Self::copy_unpooled(parts)),
        }
    }

    /// `parts`, one after the other, in an allocation of their own whatever their
    /// size: Node's advice for a small piece kept long (`Buffer.allocUnsafeSlow`).
    pub fn copy_unpooled(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }
}

impl Buffer {
    /// The bytes (for a pooled buffer, sharing its chunk).
    pub fn bytes(&self) -> &Bytes {
        match self {
            Buffer::Pooled(view) => view.bytes(),
            Buffer::Unpooled(bytes) => bytes,
        }
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Buffer::Pooled(view) => write!(f, "Pooled({view:?})"),
            Buffer::Unpooled(bytes) => write!(f, "Unpooled({} bytes)", bytes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::CARVE_ALIGN;
    use allocator::registry::Index;

    fn pooled(buffer: Buffer) -> SlabView {
        match buffer {
            Buffer::Pooled(view) => view,
            Buffer::Unpooled(b) => panic!("{} bytes not pooled", b.len()),
        }
    }

    fn chunks(pool: &BufferPool) -> snapshot::Pool {
        pool.chunks()
            .expect("pool on")
            .snapshot(Instant::now(), &Index::take())
    }

    #[test]
    fn small_copies_share_a_chunk_at_8_byte_aligned_offsets() {
        let pool = BufferPool::new(8192, 4096);
        let a = pooled(pool.copy(&[b"hello"]));
        let b = pooled(pool.copy(&[b"a", b"bc"]));
        let c = pooled(pool.copy(&[&[7; 20]]));
        assert_eq!((a.slab_id(), b.slab_id(), c.slab_id()), (1, 1, 1));
        assert_eq!(&b[..], b"abc");
        assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, CARVE_ALIGN);
        assert_eq!(c.as_ptr() as usize - b.as_ptr() as usize, CARVE_ALIGN);
        let snap = chunks(&pool);
        assert_eq!(snap.name, BUFFER_POOL);
        assert_eq!(snap.slabs[0].handed_out_bytes, 8 + 8 + 24);
        assert_eq!(snap.slabs[0].referenced_bytes, 5 + 3 + 20);
        assert_eq!((snap.reads_total, snap.bytes_read_total), (3, 28));
    }

    #[test]
    fn only_copies_under_the_threshold_are_pooled() {
        // Today's Node: under half the pool size.
        let today = BufferPool::new(8192, 4096);
        assert!(matches!(today.copy(&[&[1; 4095]]), Buffer::Pooled(_)));
        assert!(matches!(today.copy(&[&[1; 4096]]), Buffer::Unpooled(_)));
        assert!(matches!(today.copy(&[]), Buffer::Unpooled(_)), "empty");
        // Node 0.8: anything up to the pool size, a whole chunk at most.
        let old = BufferPool::new(8192, 8193);
        let whole = pooled(old.copy(&[&[2; 8192]]));
        assert_eq!(whole.len(), 8192);
        assert!(matches!(old.copy(&[&[2; 8193]]), Buffer::Unpooled(_)));
    }

    #[test]
    fn a_copy_the_current_chunk_cannot_fit_takes_a_new_one() {
        let pool = BufferPool::new(8192, 8193);
        let _a = pooled(pool.copy(&[&[1; 4000]]));
        let _b = pooled(pool.copy(&[&[1; 4000]]));
        // 8000 handed out, 192 left: 192 fits exactly, 193 would not.
        let fits = pooled(pool.copy(&[&[1; 192]]));
        assert_eq!(fits.slab_id(), 1);
        let next = pooled(pool.copy(&[&[1; 1]]));
        assert_eq!(next.slab_id(), 2);
        let snap = chunks(&pool);
        assert_eq!(snap.live_slabs, 2);
        assert_eq!(snap.slabs[0].handed_out_bytes, 8192);
    }

    #[test]
    fn a_chunk_is_freed_when_its_last_view_goes() {
        let pool = BufferPool::new(1024, 1025);
        let kept = pooled(pool.copy(&[b"long-lived copy"]));
        let short = pooled(pool.copy(&[&[0; 900]]));
        drop(short);
        let _next = pooled(pool.copy(&[&[0; 200]]));
        // Chunk 1 lives on through the 15 bytes kept.
        let snap = chunks(&pool);
        assert_eq!(snap.live_slabs, 2);
        assert_eq!(
            (snap.slabs[0].views, snap.slabs[0].referenced_bytes),
            (1, 15)
        );
        let retained = kept.retain(17, "upgrade request");
        let snap = chunks(&pool);
        assert_eq!(
            &*snap.slabs[0].retainers[0].label,
            "upgrade request of connection 17"
        );
        drop(retained);
        let snap = chunks(&pool);
        assert_eq!((snap.live_slabs, snap.slabs_freed_total), (1, 1));
        assert_eq!(snap.slabs[0].id, 2);
    }

    #[test]
    fn off_and_unpooled_copies_are_allocations_of_their_own() {
        let off = BufferPool::new(0, 4096);
        assert!(off.chunks().is_none());
        let copy = off.copy(&[b"GET / ", b"HTTP/1.1"]);
        assert!(matches!(copy, Buffer::Unpooled(_)));
        assert_eq!(&copy[..], b"GET / HTTP/1.1");
        let on = BufferPool::new(8192, 4096);
        let _ = on.copy(&[&[1; 4096]]);
        assert_eq!(BufferPool::copy_unpooled(&[b"x", b"y"]), &b"xy"[..]);
        assert!(chunks(&on).slabs.is_empty(), "nothing carved");
    }

    /// Each chunk is an allocation of the chunk's size, as the allocator sees it.
    #[test]
    fn every_live_chunk_is_an_allocation_of_its_size_in_the_registry() {
        let pool = BufferPool::new(8192, 4096);
        let kept: Vec<SlabView> = (0..12).map(|_| pooled(pool.copy(&[&[3; 3000]]))).collect();
        let snap = chunks(&pool);
        assert_eq!(snap.live_slabs, 6, "two 3000-byte copies a chunk");
        for chunk in &snap.slabs {
            assert_eq!(chunk.allocation_bytes, Some(8192), "chunk {}", chunk.id);
        }
        drop(kept);
    }
}
