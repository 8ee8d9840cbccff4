//! The slab stack (`wss_stack` / `proxy_stack` = `slab`): the seed's servers written
//! by hand on tokio, every socket read carved from a slab pool ([`pools`]) with
//! Node's semantics.
//!
//! - [`http`]: reading a request's header block through a pool, and short answers.
//! - [`head`]: what a connection keeps of its upgrade request (`retain`, `copy`,
//!   `drop`).
//! - [`ws`]: the websocket frame reader over slab views; [`wss`]: the websocket
//!   server.
//! - [`proxy`]: the TLS websocket reverse proxy, its plaintext read through the TLS
//!   pool.

pub mod head;
pub mod http;
pub mod proxy;
pub mod ws;
pub mod wss;
