//! The native half of the slab-memory playground.
//!
//! - [`slab`]: the slab pools every socket read is carved from, and the views they hand out.
//! - [`head`]: what a connection keeps of its upgrade request (`retain`, `copy`, `drop`).
//! - [`http`]: reading a request's header block through a pool, and short answers.
//! - [`wss`]: the websocket server; [`ws`] its frame reader over slab views.
//! - [`proxy`]: the TLS websocket reverse proxy.
//! - [`client`]: the headless load client and its report.
//! - [`snapshot`]: taking a memory snapshot and serving it over HTTP.
//! - [`config`], [`tls`], [`server`] (what both servers share), [`shutdown`], [`logging`].

pub mod client;
pub mod config;
pub mod exit;
pub mod head;
pub mod http;
pub mod logging;
pub mod proxy;
pub mod server;
pub mod shutdown;
pub mod slab;
pub mod snapshot;
pub mod tls;
pub mod ws;
pub mod wss;

/// Which program a process is; names its snapshot and its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Wss,
    Proxy,
    Client,
}

impl Role {
    /// The program's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Wss => "wss",
            Role::Proxy => "proxy",
            Role::Client => "client",
        }
    }
}

/// jemalloc, so that the snapshot can read the allocator's own statistics.
/// (Not under `cargo fuzz`, so that AddressSanitizer sees every allocation.)
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread returns freed pages
/// to the system after the usual decay (10 s), so that a process whose connections
/// have closed shrinks again even when it then sits idle (without it, purging only
/// happens as a side effect of later allocations). `_RJEM_MALLOC_CONF` adds to it.
#[cfg(not(fuzzing))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &u8 = &b"background_thread:true\0"[0];
