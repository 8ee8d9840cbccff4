//! The pinning ramp: slots filled at the configured rate, each one's connection
//! given its life ([`pinning_connection`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::ctx::{get, Ctx};
use super::lifecycle::pinning_connection;

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
