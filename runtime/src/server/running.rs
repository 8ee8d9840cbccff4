//! What a started server is (where it listens, its state) and the limits its
//! connections are held to: the same for every server, on either stack.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::State;
use crate::config::Config;

/// Limits a connection is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub max_message_size: usize,
    /// Longest a write to a peer may take; the connection is closed after.
    pub write_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            max_header_bytes: config.max_header_bytes,
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            max_message_size: config.max_message_size,
            write_timeout: Duration::from_millis(config.write_timeout_ms),
        }
    }
}

/// A running server: where it listens, and its state.
pub struct Running {
    pub addr: SocketAddr,
    pub snapshot_addr: SocketAddr,
    pub state: Arc<State>,
}

/// A server that cannot start: its certificate could not be made or read, or a port
/// could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A stack that has no proxy (config.json's check says so first).
    #[error("proxy_stack {0}: no such proxy (slab or warp)")]
    NoSuchProxy(snapshot::Stack),
}
