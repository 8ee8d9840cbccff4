//! A slab pool with Node's semantics.
//!
//! One current slab is shared by every connection of the process. Each socket read
//! takes the next free region of it (at most `read_size` bytes) and the bytes it got
//! are handed out as a [`SlabView`]; the slab's offset moves past them. When the
//! current slab cannot fit a read, a new one is allocated and becomes current. A slab
//! is freed only when its last view is dropped: the pool itself tracks slabs weakly.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, ReadBuf};

use super::allocation::{PoolCounters, Slab};
use super::view::SlabView;

/// Where [`SlabPool::carve`] moves the offset after a region: Node aligns its
/// small-Buffer pool to 8 bytes.
pub const CARVE_ALIGN: usize = 8;

/// A pool of slabs that socket reads are carved from.
pub struct SlabPool {
    name: &'static str,
    slab_size: usize,
    read_size: usize,
    state: Mutex<PoolState>,
    counters: Arc<PoolCounters>,
}

struct PoolState {
    /// The slab reads are carved from; the pool's only strong reference.
    current: Option<Arc<Slab>>,
    /// Every slab not yet freed, oldest first; weak, so tracking keeps nothing alive.
    live: Vec<Weak<Slab>>,
    next_id: u64,
}

/// Figures of a pool at one instant, without the per-slab detail.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolSummary {
    pub live_slabs: u64,
    pub retained_bytes: u64,
    pub referenced_bytes: u64,
}

impl SlabPool {
    /// A pool of `slab_size` slabs whose reads take at most `read_size` bytes.
    pub fn new(name: &'static str, slab_size: usize, read_size: usize) -> Arc<SlabPool> {
        assert!(
            read_size > 0 && read_size <= slab_size,
            "read_size must fit a slab"
        );
        Arc::new(SlabPool {
            name,
            slab_size,
            read_size,
            state: Mutex::new(PoolState {
                current: None,
                live: Vec::new(),
                next_id: 1,
            }),
            counters: Arc::default(),
        })
    }

    /// `tcp`, `tls` or `buffer`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn read_size(&self) -> usize {
        self.read_size
    }

    /// Reads once from `io` into the pool; `None` at end of stream.
    pub async fn read<R: AsyncRead + Unpin + ?Sized>(
        &self,
        io: &mut R,
    ) -> io::Result<Option<SlabView>> {
        std::future::poll_fn(|cx| self.poll_read(Pin::new(&mut *io), cx)).await
    }

    /// Polls one read from `io` into the next free region of the current slab.
    ///
    /// The pool's lock is held across the read, as Node's reads are synchronous:
    /// the region written is never one a view covers.
    pub fn poll_read<R: AsyncRead + ?Sized>(
        &self,
        io: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<SlabView>>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slab = self.current_slab(&mut state);
        let offset = slab.handed_out();
        // SAFETY: the region [offset, offset + read_size) lies past every byte handed
        // out so far, so no view covers it, and only this pool (under its lock) writes.
        let region = unsafe { slab.region_mut(offset, self.read_size) };
        let mut buf = ReadBuf::uninit(region);
        match io.poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(None));
                }
                slab.hand_out(n);
                self.counters.reads.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Ok(Some(SlabView::new(slab, offset, n))))
            }
        }
    }

    /// Copies `parts`, one after the other, into the next free region of the current
    /// slab (a new one when the current cannot fit them) and hands it out as one view:
    /// Node's small-Buffer allocation (`Buffer.concat`, `Buffer.from`). The offset then
    /// moves on to the next multiple of [`CARVE_ALIGN`], as Node's `alignPool` does.
    ///
    /// # Panics
    /// When the parts are empty or longer than a slab: the caller decides what is pooled.
    pub fn carve(&self, parts: &[&[u8]]) -> SlabView {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(
            len > 0 && len <= self.slab_size,
            "a carved region is 1 to slab_size bytes"
        );
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slab = self.slab_fitting(&mut state, len);
        let offset = slab.handed_out();
        // SAFETY: as in `poll_read`: the region lies past every byte handed out, under
        // the pool lock.
        let region = unsafe { slab.region_mut(offset, len) };
        let mut at = 0;
        for part in parts {
            // SAFETY: `region` has room for every part (their lengths sum to its own).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    region[at..].as_mut_ptr().cast::<u8>(),
                    part.len(),
                )
            };
            at += part.len();
        }
        let aligned = len.next_multiple_of(CARVE_ALIGN);
        slab.hand_out(aligned.min(slab.size() - offset));
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_read
            .fetch_add(len as u64, Ordering::Relaxed);
        SlabView::new(slab, offset, len)
    }

    /// The current slab, or a new one when it cannot fit a read.
    fn current_slab(&self, state: &mut PoolState) -> Arc<Slab> {
        self.slab_fitting(state, self.read_size)
    }

    /// The current slab, or a new one when it has fewer than `need` bytes free.
    fn slab_fitting(&self, state: &mut PoolState, need: usize) -> Arc<Slab> {
        if let Some(slab) = &state.current {
            if slab.size() - slab.handed_out() >= need {
                return slab.clone();
            }
        }
        let slab = Arc::new(Slab::allocate(
            state.next_id,
            self.slab_size,
            self.counters.clone(),
        ));
        state.next_id += 1;
        state.live.retain(|w| w.strong_count() > 0);
        state.live.push(Arc::downgrade(&slab));
        state.current = Some(slab.clone());
        slab
    }

    /// The slabs alive now, oldest first, with whether each is the current one.
    fn live_slabs(&self) -> (Vec<Arc<Slab>>, Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.live.retain(|w| w.strong_count() > 0);
        let live = state.live.iter().filter_map(Weak::upgrade).collect();
        (live, state.current.as_ref().map(|s| s.id()))
    }

    /// Live slabs and the bytes they hold and that are referenced.
    pub fn summary(&self) -> PoolSummary {
        let (live, _) = self.live_slabs();
        PoolSummary {
            live_slabs: live.len() as u64,
            retained_bytes: live.iter().map(|s| s.size() as u64).sum(),
            referenced_bytes: live.iter().map(|s| s.referenced_bytes()).sum(),
        }
    }

    /// The pool as the snapshot shows it, every live slab with its retainers and
    /// the size the allocation registry (`index`) knows at its address.
    pub fn snapshot(&self, now: Instant, index: &allocator::registry::Index) -> snapshot::Pool {
        self.snapshot_with_addresses(now, index).0
    }

    /// [`SlabPool::snapshot`], with the address of each slab listed, in the same order.
    pub fn snapshot_with_addresses(
        &self,
        now: Instant,
        index: &allocator::registry::Index,
    ) -> (snapshot::Pool, Vec<usize>) {
        let (live, current) = self.live_slabs();
        let addresses = live.iter().map(|s| s.address()).collect();
        let slabs: Vec<snapshot::Slab> = live
            .iter()
            .map(|s| s.snapshot(now, current == Some(s.id()), index))
            .collect();
        let c = &self.counters;
        let pool = snapshot::Pool {
            name: self.name.to_string(),
            slab_size: self.slab_size as u64,
            read_size: self.read_size as u64,
            live_slabs: slabs.len() as u64,
            slabs_allocated_total: c.allocated.load(Ordering::Relaxed),
            slabs_freed_total: c.freed.load(Ordering::Relaxed),
            reads_total: c.reads.load(Ordering::Relaxed),
            bytes_read_total: c.bytes_read.load(Ordering::Relaxed),
            retained_bytes: slabs.iter().map(|s| s.size).sum(),
            referenced_bytes: slabs.iter().map(|s| s.referenced_bytes).sum(),
            slabs,
        };
        (pool, addresses)
    }

    /// Bytes of the slabs alive now, from the pool's counters: constant time, no lock.
    pub fn live_bytes(&self) -> u64 {
        let c = &self.counters;
        let freed = c.freed.load(Ordering::Acquire);
        let live = c.allocated.load(Ordering::Acquire).saturating_sub(freed);
        live * self.slab_size as u64
    }
}

impl PoolCounters {
    pub(super) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
