//! The snapshot's `pinned_allocations`: each part a connection keeps, looked up by
//! its pointer in the allocation registry, grouped by the allocation it lies in.
//!
//! The slab stack's parts are its slabs' retainers (each slab is one allocation) and,
//! in `copy` mode, its copies; the warp stack's are the
//! [`KeptParts`](runtime::kept::KeptParts) its connections registered: header values
//! and messages that are slices of hyper's and tungstenite's buffers (or copies).

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
    found.attributed.reserve(state.kept.len());
    state.kept.visit(|part| {
        let retainer = Retainer {
            connection: part.connection,
            label: part.label.clone(),
            part: part.part.clone(),
            bytes: part.len as u64,
        };
        found.add(index.find(part.ptr as *const u8), retainer);
    });
    found.into_section(index)
}

/// The parts found so far: those in a tracked allocation (grouped once all are in),
/// and the count and bytes of the others.
#[derive(Default)]
struct Found {
    /// Each attributed part's allocation, and the part.
    attributed: Vec<(Tracked, Retainer)>,
    unattributed_parts: u64,
    unattributed_bytes: u64,
}

impl Found {
    fn add(&mut self, allocation: Option<&Tracked>, retainer: Retainer) {
        match allocation {
            Some(t) => self.attributed.push((*t, retainer)),
            None => {
                self.unattributed_parts += 1;
                self.unattributed_bytes += retainer.bytes;
            }
        }
    }

    fn into_section(self, index: &Index) -> PinnedAllocations {
        let now = registry::now_ms();
        // Ids grow in allocation order: oldest first; the kept parts come in no order:
        // by connection, then part. Sorted as small keys (tens of thousands of parts
        // at 8,000 connections), the parts then moved once.
        let mut order: Vec<(u64, u64, u32)> = self
            .attributed
            .iter()
            .enumerate()
            .map(|(i, (t, r))| (t.id, r.connection, i as u32))
            .collect();
        let parts = &self.attributed;
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| parts[a.2 as usize].1.part.cmp(&parts[b.2 as usize].1.part))
        });
        let mut slots: Vec<Option<(Tracked, Retainer)>> =
            self.attributed.into_iter().map(Some).collect();
        let mut allocations: Vec<PinnedAllocation> = Vec::new();
        for (_, _, i) in order {
            let Some((t, retainer)) = slots[i as usize].take() else {
                continue;
            };
            match allocations.last_mut() {
                Some(a) if a.id == t.id => {
                    a.kept_bytes += retainer.bytes;
                    a.kept.push(retainer);
                }
                _ => allocations.push(PinnedAllocation {
                    id: t.id,
                    size: t.size as u64,
                    age_ms: now.saturating_sub(t.born_ms),
                    kept_bytes: retainer.bytes,
                    kept: vec![retainer],
                }),
            }
        }
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
