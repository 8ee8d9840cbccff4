//! The lives of the run's connections: each pinning slot and the data connection,
//! held until they close and, when the run reconnects, reopened with backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::attempt::{attempt, explained};
use super::ctx::Ctx;
use super::hold::{hold, End};
use crate::connect::{proxy_addr, WsStream};
use crate::pin_traffic::PinTraffic;

/// A connection that lived this long starts its reconnect pauses afresh.
const HEALTHY: Duration = Duration::from_secs(10);

/// One pinning slot: its connection opened, held until it closes or the run ends,
/// and reopened with backoff when the run reconnects.
pub(super) async fn pinning_connection(ctx: Arc<Ctx>) {
    let c = &ctx.counters;
    let opened = tokio::select! {
        r = attempt(&ctx) => r,
        _ = ctx.stop.cancelled() => {
            c.pinning_connecting.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    let ws = match opened {
        Ok(ws) => ws,
        Err(e) => {
            c.pinning_connecting.fetch_sub(1, Ordering::Relaxed);
            c.pinning_failed.fetch_add(1, Ordering::Relaxed);
            c.slots.fetch_sub(1, Ordering::Relaxed);
            if !explained(&ctx, &e) {
                ctx.pinning_failures.warn(&e);
            }
            ctx.slot_freed.notify_one();
            return;
        }
    };
    lives(&ctx, ws, Kind::Pinning).await;
}

/// Which of the run's connections a life is.
#[derive(Clone, Copy)]
enum Kind<'a> {
    Pinning,
    /// The data connection, with the payload it sends.
    Data(&'a tokio_tungstenite::tungstenite::Message),
}

/// Holds `ws` until it closes or the run stops and, while the run reconnects,
/// reopens it with backoff each time it is lost: the life both kinds of connection
/// share, counted and logged as `kind` says.
async fn lives(ctx: &Ctx, mut ws: WsStream, kind: Kind<'_>) {
    let c = &ctx.counters;
    let addr = proxy_addr(&ctx.config);
    // The pauses of this connection's reconnects, drawn afresh after a healthy life.
    let mut pauses = None;
    let mut first = true;
    loop {
        let since = Instant::now();
        let guard = ctx.state.connections.open_one(None);
        let (payload, mut traffic) = match kind {
            Kind::Pinning => {
                // Counted open before it stops counting as connecting, so that the
                // two never add up to fewer than the slots taken.
                let open = c.pinning_open.fetch_add(1, Ordering::Relaxed) + 1;
                if std::mem::take(&mut first) {
                    c.pinning_connecting.fetch_sub(1, Ordering::Relaxed);
                    c.pinning_opened.fetch_add(1, Ordering::Relaxed);
                }
                if open >= ctx.config.client_max_connections
                    && !ctx.target_reached.swap(true, Ordering::Relaxed)
                {
                    tracing::info!("all {open} pinning connections are open");
                }
                let traffic = ctx
                    .pin_plan
                    .as_ref()
                    .map(|plan| PinTraffic::new(plan, &ctx.pin_payloads, ctx.dial.speech));
                (None, traffic)
            }
            Kind::Data(payload) => {
                tracing::info!(
                    "data connection open: sending {} bytes every {} ms",
                    ctx.config.client_data_size,
                    ctx.config.client_data_delay
                );
                c.data_up.store(true, Ordering::Relaxed);
                (Some(payload), None)
            }
        };
        ctx.opened();
        let end = hold(ctx, ws, payload, traffic.as_mut()).await;
        let data = matches!(kind, Kind::Data(_));
        let lost = matches!(end, End::Closed(_));
        if data && lost {
            c.data_lost.fetch_add(1, Ordering::Relaxed);
        }
        ctx.ended(data, lost);
        drop(guard);
        let End::Closed(why) = end else { return };
        if !data {
            c.pinning_closed.fetch_add(1, Ordering::Relaxed);
            ctx.pinning_closes.warn(&why);
        }
        let Some(backoff) = ctx.reconnect else {
            if data {
                tracing::warn!(
                    "data connection to {addr} lost: {why}; not reopened (--reconnect reopens it)"
                );
            }
            return;
        };
        if data {
            tracing::warn!("data connection to {addr} lost: {why}; reopening with backoff");
        }
        if since.elapsed() >= HEALTHY {
            pauses = None;
        }
        let pauses = pauses.get_or_insert_with(|| backoff.pauses());
        match reconnect(ctx, pauses).await {
            Some(again) => ws = again,
            None => return,
        }
    }
}

/// Reopens a lost connection: the next of `pauses` ([`crate::Backoff::pauses`]) before
/// each attempt, until one succeeds, or the run stops (`None`).
pub(super) async fn reconnect(
    ctx: &Ctx,
    pauses: &mut impl Iterator<Item = Duration>,
) -> Option<WsStream> {
    let c = &ctx.counters;
    c.reconnecting.fetch_add(1, Ordering::Relaxed);
    let reopened = loop {
        let pause = pauses.next().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = ctx.stop.cancelled() => break None,
        }
        let opened = tokio::select! {
            r = attempt(ctx) => r,
            _ = ctx.stop.cancelled() => break None,
        };
        match opened {
            Ok(ws) => break Some(ws),
            Err(e) => {
                c.reconnect_failed.fetch_add(1, Ordering::Relaxed);
                if !explained(ctx, &e) {
                    ctx.reconnect_failures.warn(&e);
                }
            }
        }
    };
    if reopened.is_some() {
        c.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    c.reconnecting.fetch_sub(1, Ordering::Relaxed);
    reopened
}

/// The data connection: opened first (attempts repeated with backoff until it
/// opens), then sends its payload every `client_dataDelay` ms. Once lost, it is
/// reopened with backoff when the run reconnects, and stays closed otherwise.
pub(super) async fn data_connection(ctx: Arc<Ctx>, size: usize, first: oneshot::Sender<()>) {
    let payload = ctx.dial.speech.payload(&Bytes::from(vec![b'x'; size]));
    let mut first = Some(first);
    let mut pauses = ctx.reconnect.unwrap_or_default().pauses();
    let ws = loop {
        let opened = tokio::select! {
            r = attempt(&ctx) => r,
            _ = ctx.stop.cancelled() => return,
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        let pause = pauses.next().unwrap_or_default();
        match opened {
            Ok(ws) => break ws,
            Err(e) => {
                ctx.counters.data_failed.fetch_add(1, Ordering::Relaxed);
                if explained(&ctx, &e) {
                    tracing::debug!("data connection failed: {e}; retrying in {pause:?}");
                } else {
                    tracing::warn!("data connection failed: {e}; retrying in {pause:?}");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = ctx.stop.cancelled() => return,
        }
    };
    lives(&ctx, ws, Kind::Data(&payload)).await;
}
