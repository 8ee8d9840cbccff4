//! The snapshot's `pinned_allocations`: each part a connection keeps, looked up by
//! its pointer in the allocation registry, grouped by the allocation it lies in.
//!
//! The slab stack's parts are its slabs' retainers (each slab is one allocation) and,
//! in `copy` mode, its copies; the warp stack's are the
//! [`KeptParts`](runtime::kept::KeptParts) its connections registered: header values
//! and messages that are slices of hyper's and tungstenite's buffers (or copies).

use std::collections::BTreeMap;

use snapshot::{PinnedAllocation, PinnedAllocations, Pool, Retainer};

use allocator::registry::{self, Index, Tracked};
use runtime::server::State;

/// The section, from the pools' snapshots with their slabs' addresses (as
/// [`SlabPool::snapshot_with_addresses`](pools::SlabPool::snapshot_with_addresses)
/// gives them) and the parts kept now.
pub fn pinned(state: &State, pools: &[(Pool, Vec<usize>)], index: &Index) -> PinnedAllocations {
    let mut found = Found::default();
    // A slab's retainers lie in the slab's own allocation.
    for (pool, addresses) in pools {
        for (slab, addr) in pool.slabs.iter().zip(addresses) {
            for retainer in &slab.retainers {
                found.add(index.at(*addr as *const u8), retainer.clone());
            }
        }
    }
    state.kept.visit(|part| {
        let retainer = Retainer {
            connection: part.connection,
            label: format!("{} of connection {}", part.part, part.connection),
            part: part.part.clone(),
            bytes: part.len as u64,
        };
        found.add(index.find(part.ptr as *const u8), retainer);
    });
    found.into_section(index)
}

#[derive(Default)]
struct Found {
    by_allocation: BTreeMap<u64, (Tracked, Vec<Retainer>)>,
    unattributed_parts: u64,
    unattributed_bytes: u64,
}

impl Found {
    fn add(&mut self, allocation: Option<&Tracked>, retainer: Retainer) {
        match allocation {
            Some(t) => self
                .by_allocation
                .entry(t.id)
                .or_insert_with(|| (*t, Vec::new()))
                .1
                .push(retainer),
            None => {
                self.unattributed_parts += 1;
                self.unattributed_bytes += retainer.bytes;
            }
        }
    }

    fn into_section(self, index: &Index) -> PinnedAllocations {
        let now = registry::now_ms();
        // Ids grow in allocation order: oldest first.
        let allocations: Vec<PinnedAllocation> = self
            .by_allocation
            .into_values()
            .map(|(t, mut kept)| {
                // The kept parts come in no order: by connection, then part.
                kept.sort_unstable_by(|a, b| (a.connection, &a.part).cmp(&(b.connection, &b.part)));
                (t, kept)
            })
            .map(|(t, kept)| PinnedAllocation {
                id: t.id,
                size: t.size as u64,
                age_ms: now.saturating_sub(t.born_ms),
                kept_bytes: kept.iter().map(|r| r.bytes).sum(),
                kept,
            })
            .collect();
        PinnedAllocations {
            registry: index.summary(),
            pinned_bytes: allocations.iter().map(|a| a.size).sum(),
            kept_bytes: allocations.iter().map(|a| a.kept_bytes).sum(),
            allocations,
            unattributed_parts: self.unattributed_parts,
            unattributed_bytes: self.unattributed_bytes,
        }
    }
}
