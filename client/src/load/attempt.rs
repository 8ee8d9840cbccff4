//! One attempt to open a websocket through the proxy: counted, and explained once
//! when it fails (the proxy unreachable, its certificate refused), for the ramp's
//! first opens and the lifecycle's reopens alike.

use std::sync::atomic::Ordering;

use super::ctx::Ctx;
use crate::connect::{open_with, proxy_addr, WsStream};
use crate::ClientError;

/// One attempt to open a websocket, counted and explained when it fails.
pub(super) async fn attempt(ctx: &Ctx) -> Result<WsStream, ClientError> {
    let opened = open_with(&ctx.dial, || ctx.tls.get(&ctx.config)).await;
    match &opened {
        Ok(_) => {
            if ctx.proxy_down.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    "the proxy at {} is reachable again",
                    proxy_addr(&ctx.config)
                );
            }
        }
        Err(e) => {
            ctx.state.connections.failed_one();
            if e.is_unreachable() && !ctx.proxy_down.swap(true, Ordering::Relaxed) {
                let addr = proxy_addr(&ctx.config);
                if !ctx.ever_open.load(Ordering::Relaxed) {
                    tracing::error!(
                        "the proxy at {addr} is not reachable ({e}); start it with `cargo run -p native --bin proxy` \
                         (and the wss behind it with `cargo run -p native --bin wss`); retrying at the configured rate"
                    );
                } else if ctx.reconnect.is_some() {
                    tracing::warn!(
                        "the proxy at {addr} is not reachable ({e}); retrying with backoff"
                    );
                } else {
                    // The loss of the connections is reported on its own line.
                    tracing::debug!("the proxy at {addr} is not reachable ({e})");
                }
            }
            match e {
                ClientError::Certificate(_) if !ctx.cert_reported.swap(true, Ordering::Relaxed) => {
                    tracing::error!("{e}");
                }
                ClientError::Tls { .. } => ctx.tls.forget(),
                _ => {}
            }
        }
    }
    opened
}

/// Whether a failure was already explained by a one-time line.
pub(super) fn explained(ctx: &Ctx, e: &ClientError) -> bool {
    (e.is_unreachable() && ctx.proxy_down.load(Ordering::Relaxed))
        || matches!(e, ClientError::Certificate(_))
}
