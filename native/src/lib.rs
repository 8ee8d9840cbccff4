//! The native half of the slab-memory playground.
//!
//! - [`alloc`]: the global allocator and its registry of large live allocations.
//! - [`slab`]: the slab pools every socket read is carved from, and the views they hand out.
//! - [`head`]: what a connection keeps of its upgrade request (`retain`, `copy`, `drop`).
//! - [`http`]: reading a request's header block through a pool, and short answers.
//! - [`wss`]: the websocket server; [`ws`] its frame reader over slab views.
//! - [`proxy`]: the TLS websocket reverse proxy.
//! - [`warp_stack`]: the same two servers built on warp, hyper, tungstenite and tokio-rustls.
//! - [`kept`]: what the warp stack's connections keep, by pointer.
//! - [`client`]: the headless load client and its report, and `client audit`.
//! - [`procfs`]: what the kernel says about any process (RSS, PSS, CPU) and the
//!   machine's sockets, from `/proc` (the bench and the audit read it).
//! - [`snapshot`]: taking a memory snapshot and serving it over HTTP.
//! - [`config`], [`tls`], [`server`] (what both servers share), [`shutdown`], [`logging`],
//!   [`wait`] (bounded waits).

pub mod alloc;
pub mod client;
pub mod config;
pub mod exit;
pub mod head;
pub mod http;
pub mod kept;
pub mod logging;
pub mod procfs;
pub mod proxy;
pub mod server;
pub mod shutdown;
pub mod slab;
pub mod snapshot;
pub mod tls;
pub mod wait;
pub mod warp_stack;
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

/// jemalloc, so that the snapshot can read the allocator's own statistics, keeping
/// the registry of large live allocations ([`alloc`]).
/// (Not under `cargo fuzz`, so that AddressSanitizer sees every allocation.)
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

/// jemalloc's options, read before `main` (`_RJEM_MALLOC_CONF` adds to them):
/// - `background_thread`, `dirty_decay_ms:1000`, `muzzy_decay_ms:0`: freed pages go
///   back to the system within about a second, even when the process then sits idle,
///   so that a server whose connections have closed shrinks again (by default jemalloc
///   keeps them 10 s, and purges only as a side effect of later allocations). A
///   second is still far longer than a freed slab waits to be reused under load.
/// - `oversize_threshold:0`: no separate arena for allocations over 8 MiB, which
///   jemalloc otherwise returns to the system at once when freed: the TLS pool's
///   10 MiB slabs would then page-fault all their pages in anew, slab after slab
///   (a fifth of the proxy's CPU under load). Freed slabs now decay like the rest.
#[cfg(not(fuzzing))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &u8 =
    &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,oversize_threshold:0\0"[0];
