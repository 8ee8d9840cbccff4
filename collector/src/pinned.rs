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

use crate::Listed;

/// The section, from the pools' snapshots with their slabs' addresses (as
/// [`SlabPool::snapshot_with_addresses`](pools::SlabPool::snapshot_with_addresses)
/// gives them, before [`Listed`] trims their retainers) and the parts kept now.
/// Only the parts of `listed` connections are listed; the totals count all.
pub fn pinned(
    state: &State,
    pools: &[(Pool, Vec<usize>)],
    index: &Index,
    listed: Listed,
) -> PinnedAllocations {
    let mut found = Found::new(listed);
    // A slab's retainers lie in the slab's own allocation.
    for (pool, addresses) in pools {
        for (slab, addr) in pool.slabs.iter().zip(addresses) {
            let allocation = index.at(*addr as *const u8);
            for (order, retainer) in slab.retainers.iter().enumerate() {
                found.add(allocation, order as u64, retainer);
            }
        }
    }
    found.attributed.reserve(state.kept.len());
    // A connection's parts come side by side, most in one allocation (hyper's read
    // buffer): the last one found is tried before a search.
    let mut last: Option<&Tracked> = None;
    state.kept.visit(|part| {
        let allocation = last
            .filter(|t| t.contains(part.ptr))
            .or_else(|| index.find(part.ptr as *const u8));
        if allocation.is_some() {
            last = allocation;
        }
        found.add(allocation, part.key, &part.retainer);
    });
    found.into_section(index)
}

/// One attributed part: its allocation and the order it is listed in there.
struct Part {
    allocation: Tracked,
    /// Sort key within the allocation: the connection, then the part's registration
    /// order (or its place among its slab's retainers).
    connection: u64,
    order: u64,
    /// `None` for a part of a connection the snapshot does not list.
    retainer: Option<Retainer>,
    bytes: u64,
}

/// The parts found so far: those in a tracked allocation (grouped once all are in),
/// and the count and bytes of the others.
struct Found {
    listed: Listed,
    attributed: Vec<Part>,
    unattributed_parts: u64,
    unattributed_bytes: u64,
}

impl Found {
    fn new(listed: Listed) -> Found {
        Found {
            listed,
            attributed: Vec::new(),
            unattributed_parts: 0,
            unattributed_bytes: 0,
        }
    }

    fn add(&mut self, allocation: Option<&Tracked>, order: u64, retainer: &Retainer) {
        match allocation {
            Some(t) => self.attributed.push(Part {
                allocation: *t,
                connection: retainer.connection,
                order,
                // Cloning shares the strings: two counters, no text copied.
                retainer: self
                    .listed
                    .includes(retainer.connection)
                    .then(|| retainer.clone()),
                bytes: retainer.bytes,
            }),
            None => {
                self.unattributed_parts += 1;
                self.unattributed_bytes += retainer.bytes;
            }
        }
    }

    fn into_section(mut self, index: &Index) -> PinnedAllocations {
        let now = registry::now_ms();
        // Ids grow in allocation order: oldest first; within one, by connection,
        // then in the order the parts were kept. Sorted as small keys (tens of
        // thousands of parts at 8,000 connections), the parts then taken once.
        let mut order: Vec<(u64, u64, u64, u32)> = self
            .attributed
            .iter()
            .enumerate()
            .map(|(i, p)| (p.allocation.id, p.connection, p.order, i as u32))
            .collect();
        order.sort_unstable();
        let mut section = PinnedAllocations {
            registry: index.summary(),
            unattributed_parts: self.unattributed_parts,
            unattributed_bytes: self.unattributed_bytes,
            ..PinnedAllocations::default()
        };
        let mut current: Option<PinnedAllocation> = None;
        for (_, _, _, i) in order {
            let part = &mut self.attributed[i as usize];
            let t = part.allocation;
            if current.as_ref().is_some_and(|a| a.id != t.id) {
                finish(&mut section, current.take());
            }
            let a = current.get_or_insert_with(|| PinnedAllocation {
                id: t.id,
                size: t.size as u64,
                age_ms: now.saturating_sub(t.born_ms),
                kept_bytes: 0,
                kept: Vec::new(),
            });
            a.kept_bytes += part.bytes;
            match part.retainer.take() {
                Some(r) => a.kept.push(r),
                None => section.unlisted_parts += 1,
            }
        }
        finish(&mut section, current);
        section
    }
}

/// Adds one allocation's figures to `section`: listed when a listed connection keeps
/// a part in it, counted in any case.
fn finish(section: &mut PinnedAllocations, allocation: Option<PinnedAllocation>) {
    let Some(a) = allocation else { return };
    section.pinned_bytes += a.size;
    section.kept_bytes += a.kept_bytes;
    if a.kept.is_empty() {
        section.unlisted_allocations += 1;
    } else {
        section.allocations.push(a);
    }
}
