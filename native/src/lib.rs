//! The playground's programs: `wss`, `proxy` and `client` (in `src/bin/`), and the one
//! place a server's stack is chosen.
//!
//! Each stack is a crate of its own ([`slab_stack`], [`warp_stack`],
//! [`socketio_stack`], a wss only) that knows nothing of the others; [`wss::start`] and [`proxy::start`] pick one from
//! `config.json` with one match arm per stack. ARCHITECTURE.md draws the layers.

pub mod exit;

/// The websocket server, on the stack `wss_stack` names.
pub mod wss {
    use runtime::config::Config;
    use runtime::server::Running;
    use runtime::shutdown::Shutdown;
    use snapshot::Stack;

    /// Binds the wss and its snapshot endpoint on the configured stack and starts
    /// serving until `shutdown`.
    pub async fn start(config: &Config, shutdown: &Shutdown) -> std::io::Result<Running> {
        match config.wss_stack {
            Stack::Slab => slab_stack::wss::start(config, shutdown).await,
            Stack::Warp => warp_stack::wss::start(config, shutdown).await,
            Stack::Socketio => socketio_stack::wss::start(config, shutdown).await,
        }
    }
}

/// The TLS websocket proxy, on the stack `proxy_stack` names.
pub mod proxy {
    use runtime::config::Config;
    use runtime::server::{Running, StartError};
    use runtime::shutdown::Shutdown;
    use snapshot::Stack;

    /// Binds the proxy and its snapshot endpoint on the configured stack and starts
    /// serving until `shutdown`.
    pub async fn start(config: &Config, shutdown: &Shutdown) -> Result<Running, StartError> {
        match config.proxy_stack {
            Stack::Slab => slab_stack::proxy::start(config, shutdown).await,
            Stack::Warp => warp_stack::proxy::start(config, shutdown).await,
            // config.json's check refuses it before any server starts.
            Stack::Socketio => Err(StartError::NoSuchProxy(Stack::Socketio)),
        }
    }
}
