//! Slab pools: the shared buffers every socket read is carved from.
//!
//! [`SlabPool`] hands out [`SlabView`]s; a view kept for a connection's life becomes a
//! [`Retained`], which the snapshot lists as a retainer of its slab.

mod allocation;
mod pool;
mod source;
mod view;

pub use allocation::PoolCounters;
pub use pool::{PoolSummary, SlabPool};
pub use source::{read_views, ReadViews};
pub use view::{Retained, SlabView};

#[cfg(test)]
mod tests;
