//! What every playground process shares, whichever stack serves its connections.
//!
//! - [`server`]: the process's [`State`](server::State) (identity, head mode, the slab
//!   stack's pools, kept parts, counters), admission and the memory guard, connection
//!   places, the accept loops, the open-file limit, and what a started server is.
//! - [`kept`]: what connections keep, by pointer, so a snapshot can find the
//!   allocation each kept part lies in.
//! - [`memory`]: the process's memory figures (RSS, the allocator's statistics), or
//!   why one could not be read; [`procfs`]: what the kernel says about any process.
//! - [`config`]: `config.json` and the flags that override it; [`tls`]: the
//!   certificate and the rustls configurations; [`shutdown`]: Ctrl-C and the tasks
//!   that must end; [`logging`]; [`wait`]: bounded waits.

pub mod config;
pub mod kept;
pub mod logging;
pub mod memory;
pub mod procfs;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod wait;

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
