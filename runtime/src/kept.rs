//! What connections keep for their lives, registered by pointer so that the
//! snapshot can find, in the allocation registry, which allocation each part keeps
//! alive (`header user-agent of connection 17` → hyper's read buffer).
//!
//! The slab stack's kept views are tracked by their slabs; the warp stack, and the
//! slab stack's `copy` mode, register what they keep here: a [`KeptPart`] lives
//! beside the bytes it names and unregisters when dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Part names of an upgrade, as the snapshot's retainers show them, on every stack.
pub const PART_REQUEST: &str = "upgrade request";
/// The bytes that arrived after the upgrade request's headers.
pub const PART_HEAD: &str = "upgrade head";

/// One registered part: where its bytes are.
#[derive(Debug, Clone)]
pub struct PartEntry {
    /// Registration order: parts registered earlier have smaller keys.
    pub key: u64,
    /// The part as the snapshot lists it, made once at registration, so that a
    /// snapshot of thousands of parts formats none.
    pub retainer: snapshot::Retainer,
    pub ptr: usize,
}

impl PartEntry {
    /// The connection that keeps it.
    pub fn connection(&self) -> u64 {
        self.retainer.connection
    }

    /// Its name (`header cookie`).
    pub fn part(&self) -> &str {
        &self.retainer.part
    }

    /// Its length in bytes.
    pub fn bytes(&self) -> usize {
        self.retainer.bytes as usize
    }
}

/// Every part kept by the process's open connections.
///
/// By registration order: a connection registers its parts one after another, so
/// they come out side by side, and a snapshot finds most parts in the allocation
/// it found the one before in.
#[derive(Default)]
pub struct KeptParts {
    parts: Mutex<BTreeMap<u64, PartEntry>>,
    next: AtomicU64,
}

impl KeptParts {
    /// Registers `bytes`, kept by `connection` as `part`, until the result drops.
    ///
    /// `bytes` must stay where they are while the result lives: pass the slice of a
    /// `Bytes` or `HeaderValue` that lives as long.
    pub fn register(self: &Arc<Self>, connection: u64, part: &str, bytes: &[u8]) -> KeptPart {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = PartEntry {
            key,
            retainer: snapshot::Retainer::new(connection, part, bytes.len() as u64),
            ptr: bytes.as_ptr() as usize,
        };
        self.lock().insert(key, entry);
        KeptPart {
            parts: self.clone(),
            key,
        }
    }

    /// Calls `f` with every part registered now, in registration order, under the
    /// registry's lock: no copy of the entries is made, and new registrations wait
    /// meanwhile.
    pub fn visit(&self, f: impl FnMut(&PartEntry)) {
        self.lock().values().for_each(f);
    }

    /// The parts registered now, by connection.
    pub fn entries(&self) -> Vec<PartEntry> {
        let mut all: Vec<_> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| (a.connection(), a.part()).cmp(&(b.connection(), b.part())));
        all
    }

    /// Parts registered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, PartEntry>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registration; unregisters when dropped.
pub struct KeptPart {
    parts: Arc<KeptParts>,
    key: u64,
}

impl Drop for KeptPart {
    fn drop(&mut self) {
        self.parts.lock().remove(&self.key);
    }
}

impl std::fmt::Debug for KeptPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptPart").field("key", &self.key).finish()
    }
}
