//! The benchmark of the playground's servers against what their users would otherwise
//! run: Node's `ws` + `http-proxy`, Bun's websocket server, nginx, HAProxy, and
//! warp's own websocket filter.
//!
//! - [`stacks`]: the stacks (a TLS proxy in front of a wss), starting and stopping them.
//! - [`client`]: the load client every stack gets: idle pinning websockets, the data
//!   connection, 64 KiB echo throughput, small-message latency.
//! - [`scenario`]: the measurements themselves, run stack after stack.
//! - [`burst`]: the burst step: Node's `ws` client sends as fast as it can, then the
//!   servers are watched going back to idle.
//! - [`procfs`]: what the kernel says about a process (RSS, CPU) and its sockets
//!   (`runtime::procfs`, shared with the client's `audit`).
//! - [`kernel`]: the machine's kernel memory (sockets, TCP buffers, slab) beside RSS.
//! - [`probe`]: jemalloc's live allocations by size class, for the breakdown of our
//!   per-connection memory.
//! - [`results`]: the figures, as JSON; [`report`]: the same as Markdown tables.
//!
//! Errors are `anyhow`'s, each with the context of what failed and where; the
//! binaries print the whole chain (`{:#}`) on one line.

pub mod burst;
pub mod client;
pub mod kernel;
pub mod probe;
pub mod report;
pub mod results;
pub mod scenario;
pub mod stacks;

pub use runtime::procfs;
