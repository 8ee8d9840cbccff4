//! The slab stack's read pools of one server, by what each is for.

use std::sync::Arc;

use crate::config::Config;
use pools::{BufferPool, SlabPool};

/// A server's pools: `tcp` for every socket read (the wss's, and the proxy's upstream
/// side), `tls` for a TLS proxy's plaintext, `buffer` for small copies (Node's
/// small-Buffer pool); none on the warp stack and in the client.
#[derive(Default)]
pub struct Pools {
    pub tcp: Option<Arc<SlabPool>>,
    pub tls: Option<Arc<SlabPool>>,
    pub buffer: Option<Arc<BufferPool>>,
}

impl Pools {
    /// The slab stack's pools: `tcp`, and `tls` behind TLS.
    pub fn slab_stack(config: &Config, tls: bool) -> Pools {
        Pools {
            tcp: Some(SlabPool::new("tcp", config.tcp_slab_size, config.read_size)),
            tls: tls.then(|| SlabPool::new("tls", config.tls_slab_size, config.read_size)),
            buffer: Some(BufferPool::new(
                config.buffer_pool_size,
                config.buffer_pool_threshold,
            )),
        }
    }

    /// Every pool there is, `tcp` first, then `tls` and `buffer` (when it is on).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SlabPool>> {
        let buffer = self.buffer.as_ref().and_then(|b| b.chunks());
        self.tcp.iter().chain(self.tls.iter()).chain(buffer)
    }

    /// Whether there is none (the warp stack, the client).
    pub fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.tls.is_none()
    }

    /// Node's small-Buffer pool of a slab-stack server (off: every copy its own).
    pub fn buffers(&self) -> &Arc<BufferPool> {
        self.buffer
            .as_ref()
            .expect("a slab-stack server has a buffer pool")
    }

    /// Bytes held by the live slabs of every pool now (from the pools' counters:
    /// constant time, no lock).
    pub fn live_bytes(&self) -> u64 {
        self.iter().map(|p| p.live_bytes()).sum()
    }

    /// The `tcp` pool, on a server of the slab stack.
    pub fn tcp(&self) -> &Arc<SlabPool> {
        self.tcp
            .as_ref()
            .expect("a slab-stack server has a tcp pool")
    }

    /// The pool client-side reads go through: `tls` behind TLS, `tcp` otherwise.
    pub fn client_side(&self) -> &Arc<SlabPool> {
        self.tls.as_ref().unwrap_or_else(|| self.tcp())
    }
}
