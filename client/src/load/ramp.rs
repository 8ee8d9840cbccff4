//! The pinning ramp: slots filled at the configured rate, and one attempt to open a
//! websocket, counted and explained when it fails.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::ctx::{get, Ctx};
use super::lifecycle::pinning_connection;
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

/// Opens pinning connections at the configured rate while fewer than the maximum
/// slots are taken.
pub(super) async fn ramp(ctx: Arc<Ctx>) {
    let max = ctx.config.client_max_connections;
    if max == 0 {
        return;
    }
    let mut tick = tokio::time::interval(period(ctx.config.client_connections_per_second));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let c = &ctx.counters;
    loop {
        if get(&c.slots) >= max {
            tokio::select! {
                _ = ctx.slot_freed.notified() => {}
                _ = ctx.stop.cancelled() => return,
            }
            tick.reset();
            continue;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.stop.cancelled() => return,
        }
        c.slots.fetch_add(1, Ordering::Relaxed);
        c.pinning_connecting.fetch_add(1, Ordering::Relaxed);
        ctx.tracker.spawn(pinning_connection(ctx.clone()));
    }
}

/// Time between two pinning connections at `per_second`, kept within 1 µs .. 1 year.
pub(super) fn period(per_second: f64) -> Duration {
    const MIN: Duration = Duration::from_micros(1);
    const MAX: Duration = Duration::from_secs(365 * 24 * 3600);
    Duration::try_from_secs_f64(1.0 / per_second)
        .unwrap_or(MAX)
        .clamp(MIN, MAX)
}
