//! Views into slabs: the bytes a read returned, and the long-lived holders of them.

use std::ops::{Bound, Deref, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::allocation::{RetainerEntry, Slab};

/// The bytes of one read (or a part of them), sharing the slab's allocation.
///
/// While any view of a region lives, the whole slab stays allocated.
#[derive(Clone)]
pub struct SlabView {
    bytes: Bytes,
    slab: Arc<Slab>,
}

/// The owner of a region, behind the [`Bytes`] of every view of it.
struct Region {
    slab: Arc<Slab>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the region was handed out by the pool and is never written again.
        unsafe { self.slab.region(self.offset, self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.slab.view_dropped(self.len);
    }
}

impl SlabView {
    pub(super) fn new(slab: Arc<Slab>, offset: usize, len: usize) -> SlabView {
        slab.view_made(len);
        let bytes = Bytes::from_owner(Region {
            slab: slab.clone(),
            offset,
            len,
        });
        SlabView { bytes, slab }
    }

    /// The bytes, as a [`Bytes`] that shares the slab (cloning it pins the slab too).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// A view of part of these bytes, sharing the same slab.
    ///
    /// Even an empty view keeps its region referenced, as any view does (a plain
    /// `Bytes::slice` would let go of it while this view still holds the slab).
    pub fn slice(&self, range: impl RangeBounds<usize>) -> SlabView {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes.len(),
        };
        let bytes = if start == end && start <= self.bytes.len() {
            // Advancing to the end keeps the owner; truncate(0) and slice would drop it.
            let mut empty = self.bytes.clone();
            empty.advance(empty.len());
            empty
        } else {
            self.bytes.slice(start..end)
        };
        SlabView {
            bytes,
            slab: self.slab.clone(),
        }
    }

    /// Id of the slab the bytes live in.
    pub fn slab_id(&self) -> u64 {
        self.slab.id()
    }

    /// Keeps this view for a connection's life, listed as a retainer of its slab.
    pub fn retain(self, connection: u64, part: &'static str) -> Retained {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        self.slab
            .retainers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RetainerEntry {
                key,
                retainer: snapshot::Retainer::new(connection, part, self.bytes.len() as u64),
            });
        Retained { view: self, key }
    }
}

impl Deref for SlabView {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for SlabView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SlabView(slab {}, {} bytes)",
            self.slab.id(),
            self.bytes.len()
        )
    }
}

/// A view kept for a connection's life; the snapshot lists it among its slab's retainers.
pub struct Retained {
    view: SlabView,
    key: u64,
}

impl Retained {
    /// The view held.
    pub fn view(&self) -> &SlabView {
        &self.view
    }
}

impl Drop for Retained {
    fn drop(&mut self) {
        let mut retainers = self
            .view
            .slab
            .retainers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = retainers.iter().position(|r| r.key == self.key) {
            retainers.swap_remove(i);
        }
    }
}
