//! What a connection keeps of its upgrade request for its whole life.
//!
//! The upgrade request and the `head` (bytes that arrived after its headers) are
//! slab views. `retain` keeps those views (the seed's bug: each pins its slab),
//! `copy` keeps a copy made as Node made it (the module-level fix: a small copy is
//! carved from the small-Buffer pool and pins a pool chunk in turn),
//! `copy_unpooled` keeps a copy in an allocation of its own (Node's
//! `allocUnsafeSlow` advice), `drop` keeps nothing (the core-level fix). Kept views
//! (a pooled copy is one) are listed by their slabs; an unpooled copy is registered
//! with the process's [`KeptParts`], so the snapshot shows its bytes too (and, at
//! 4 KiB or more, the allocation that holds them).

use std::sync::Arc;

use bytes::Bytes;
use snapshot::HeadMode;

use crate::http::RequestHead;
use pools::{Buffer, BufferPool, Retained, SlabView};
use runtime::kept::{KeptPart, KeptParts};

pub use runtime::kept::{PART_HEAD, PART_REQUEST};

/// What one connection keeps.
pub enum KeptHead {
    /// Slab views: the read pools' (`retain`) or a pool chunk's (a pooled `copy`).
    Retained(Vec<Retained>),
    /// A copy in an allocation of its own, registered as kept parts.
    Copied(Bytes, Vec<KeptPart>),
    /// Nothing.
    Nothing,
}

impl KeptHead {
    /// Keeps `request` for `connection` as `mode` says: a copy through `buffers`
    /// (`copy`) or of its own (`copy_unpooled`); one of its own is registered in `parts`.
    pub fn keep(
        mode: HeadMode,
        connection: u64,
        request: &RequestHead,
        buffers: &BufferPool,
        parts: &Arc<KeptParts>,
    ) -> KeptHead {
        let chunks: Vec<&[u8]> = request.chunks.iter().map(|c| &c[..]).collect();
        match mode {
            HeadMode::Retain => Self::views(&request.chunks, request.header_len, connection),
            HeadMode::Copy => match buffers.copy(&chunks) {
                Buffer::Pooled(copy) => Self::views(&[copy], request.header_len, connection),
                Buffer::Unpooled(copy) => Self::registered(copy, request, connection, parts),
            },
            HeadMode::CopyUnpooled => {
                let copy = BufferPool::copy_unpooled(&chunks);
                Self::registered(copy, request, connection, parts)
            }
            HeadMode::Drop => KeptHead::Nothing,
        }
    }

    /// `views` kept, split where the request's headers end (`header_len` bytes in).
    fn views(views: &[SlabView], header_len: usize, connection: u64) -> KeptHead {
        let mut kept = Vec::with_capacity(views.len() + 1);
        let mut start = 0;
        for view in views {
            let end = start + view.len();
            let split = header_len.clamp(start, end) - start;
            if split > 0 {
                kept.push(view.slice(..split).retain(connection, PART_REQUEST));
            }
            if split < view.len() {
                kept.push(view.slice(split..).retain(connection, PART_HEAD));
            }
            start = end;
        }
        KeptHead::Retained(kept)
    }

    /// A copy of its own kept, its request and head registered in `parts`.
    fn registered(
        copy: Bytes,
        request: &RequestHead,
        connection: u64,
        parts: &Arc<KeptParts>,
    ) -> KeptHead {
        let (header, head) = copy.split_at(request.header_len.min(copy.len()));
        let registered = [(PART_REQUEST, header), (PART_HEAD, head)]
            .into_iter()
            .filter(|(_, bytes)| !bytes.is_empty())
            .map(|(part, bytes)| parts.register(connection, part, bytes))
            .collect();
        KeptHead::Copied(copy, registered)
    }

    /// Bytes kept (views or copy).
    pub fn len(&self) -> usize {
        match self {
            KeptHead::Retained(views) => views.iter().map(|r| r.view().len()).sum(),
            KeptHead::Copied(b, _) => b.len(),
            KeptHead::Nothing => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pools::SlabPool;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
    const FRAME: &[u8] = b"\x89\x84\x01\x02\x03\x04ping";

    /// The request then a frame, read through `pool` as the views `cuts` split them into.
    async fn arrived(pool: &SlabPool, cuts: &[usize]) -> RequestHead {
        let bytes = [REQUEST, FRAME].concat();
        let mut chunks = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([bytes.len()]) {
            let mut reader = &bytes[start..end];
            chunks.push(pool.read(&mut reader).await.unwrap().unwrap());
            start = end;
        }
        let head = crate::http::parse(&bytes, 1 << 10).unwrap().unwrap();
        RequestHead { chunks, ..head }
    }

    #[tokio::test]
    async fn retain_splits_the_views_at_the_end_of_the_headers_wherever_the_reads_cut() {
        let parts_kept = Arc::new(KeptParts::default());
        let end = REQUEST.len();
        // In one read; cut inside the headers; exactly at their end; in the frame.
        for cuts in [
            vec![],
            vec![10],
            vec![end],
            vec![end + 3],
            vec![5, end - 1, end + 1],
        ] {
            let pool = SlabPool::new("tcp", 64 << 10, 4 << 10);
            let request = arrived(&pool, &cuts).await;
            let buffers = BufferPool::new(8192, 4096);
            let kept = KeptHead::keep(HeadMode::Retain, 7, &request, &buffers, &parts_kept);
            drop(request);
            let KeptHead::Retained(views) = &kept else {
                panic!("views expected")
            };
            let bytes: Vec<u8> = views.iter().flat_map(|r| r.view().to_vec()).collect();
            assert_eq!(bytes, [REQUEST, FRAME].concat(), "cuts {cuts:?}");
            assert!(views.iter().all(|r| !r.view().is_empty()), "cuts {cuts:?}");
            let snap = pool.snapshot(
                std::time::Instant::now(),
                &allocator::registry::Index::take(),
            );
            let retainers: Vec<_> = snap.slabs.iter().flat_map(|s| &s.retainers).collect();
            let sum = |part: &str| -> u64 {
                retainers
                    .iter()
                    .filter(|r| &*r.part == part && r.connection == 7)
                    .map(|r| r.bytes)
                    .sum()
            };
            assert_eq!(sum(PART_REQUEST), REQUEST.len() as u64, "cuts {cuts:?}");
            assert_eq!(sum(PART_HEAD), FRAME.len() as u64, "cuts {cuts:?}");
            assert_eq!(retainers.len(), views.len());
            assert_eq!(kept.len(), REQUEST.len() + FRAME.len());
            assert!(parts_kept.is_empty(), "views are listed by their slabs");
        }
    }

    #[tokio::test]
    async fn a_pooled_copy_is_kept_as_views_of_a_buffer_pool_chunk() {
        let parts_kept = Arc::new(KeptParts::default());
        let pool = SlabPool::new("tcp", 64 << 10, 4 << 10);
        let request = arrived(&pool, &[9]).await;
        let buffers = BufferPool::new(8192, 4096);
        let kept = KeptHead::keep(HeadMode::Copy, 7, &request, &buffers, &parts_kept);
        drop(request);
        let KeptHead::Retained(views) = &kept else {
            panic!("views of the pool chunk expected")
        };
        let bytes: Vec<u8> = views.iter().flat_map(|r| r.view().to_vec()).collect();
        assert_eq!(bytes, [REQUEST, FRAME].concat());
        assert!(parts_kept.is_empty(), "listed by the chunk, not registered");
        let now = std::time::Instant::now();
        let index = allocator::registry::Index::take();
        let reads = pool.snapshot(now, &index);
        assert_eq!(reads.slabs[0].views, 0, "the read pool's slab is let go");
        let chunk = buffers.chunks().unwrap().snapshot(now, &index);
        let labels: Vec<&str> = chunk.slabs[0].retainers.iter().map(|r| &*r.label).collect();
        assert_eq!(
            labels,
            [
                "upgrade request of connection 7",
                "upgrade head of connection 7"
            ]
        );
        // The same request over the threshold is a copy of its own.
        let small = BufferPool::new(8192, 16);
        let request = arrived(&pool, &[]).await;
        let own = KeptHead::keep(HeadMode::Copy, 8, &request, &small, &parts_kept);
        assert!(matches!(own, KeptHead::Copied(..)) && !parts_kept.is_empty());
    }

    #[tokio::test]
    async fn copy_unpooled_registers_the_request_and_head_it_keeps_and_drop_keeps_nothing() {
        let parts_kept = Arc::new(KeptParts::default());
        let pool = SlabPool::new("tcp", 64 << 10, 4 << 10);
        let request = arrived(&pool, &[9]).await;
        let buffers = BufferPool::new(8192, 4096);
        let kept = KeptHead::keep(HeadMode::CopyUnpooled, 7, &request, &buffers, &parts_kept);
        assert!(
            buffers.chunks().unwrap().summary().live_slabs == 0,
            "never pooled"
        );
        let KeptHead::Copied(copy, _) = &kept else {
            panic!("a copy expected")
        };
        assert_eq!(&copy[..], [REQUEST, FRAME].concat());
        let entries = parts_kept.entries();
        let named: Vec<_> = entries
            .iter()
            .map(|e| (e.connection(), e.part(), e.bytes()))
            .collect();
        assert_eq!(
            named,
            [
                (7, PART_HEAD, FRAME.len()),
                (7, PART_REQUEST, REQUEST.len())
            ]
        );
        // The parts point into the copy, not into the slab views.
        assert_eq!(entries[1].ptr, copy.as_ptr() as usize);
        drop(kept);
        assert!(parts_kept.is_empty(), "unregistered with the copy");
        let dropped = KeptHead::keep(HeadMode::Drop, 8, &request, &buffers, &parts_kept);
        assert!(dropped.is_empty() && parts_kept.is_empty());
    }
}
