//! Slab pools: the shared buffers every socket read is carved from.
//!
//! [`SlabPool`] hands out [`SlabView`]s; a view kept for a connection's life becomes a
//! [`Retained`], which the snapshot lists as a retainer of its slab. [`BufferPool`]
//! is Node core's small-Buffer pool on a slab pool of its own: small copies share its
//! chunks.

mod allocation;
mod buffer;
mod pool;
mod source;
mod view;

pub use allocation::PoolCounters;
pub use buffer::{Buffer, BufferPool, BUFFER_POOL};
pub use pool::{PoolSummary, SlabPool, CARVE_ALIGN};
pub use source::{read_views, ReadViews};
pub use view::{Retained, SlabView};

#[cfg(test)]
mod tests;
