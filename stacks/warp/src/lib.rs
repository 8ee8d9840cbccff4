//! The warp stack (`wss_stack` / `proxy_stack` = `warp`): the design card's servers
//! as Rust users build them today, on warp, hyper, tungstenite and tokio-rustls.
//!
//! Nothing here reads through a slab pool: the buffers that kept bytes pin are
//! hyper's connection read buffer (header values are `Bytes` slices of it) and
//! tungstenite's websocket read buffer (a single-frame message is a `Bytes` slice
//! of it). What a connection keeps is registered in [`KeptParts`](runtime::kept::KeptParts),
//! so the snapshot finds the allocation each part lies in through the allocation
//! registry ([`allocator::registry`]).
//!
//! - [`wss`]: the websocket server, a `warp::ws()` route served by warp/hyper.
//! - [`idle_release`]: how the wss gives back a quiet websocket's buffers
//!   (`ws_idle_release_ms`).
//! - [`proxy`]: the websocket reverse proxy, warp/hyper over tokio-rustls, forwarding
//!   upgrades with `hyper::upgrade` and `tokio::io::copy_bidirectional`.

pub mod idle_release;
pub mod proxy;
pub mod wss;
