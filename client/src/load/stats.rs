//! What a run says while it runs: the stats line every 5 s, the progress bar while
//! ramping up, and the summary line at the end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::ctx::{get, Ctx};
use crate::ClientSummary;
use runtime::server::STATS_EVERY;

/// How often the progress bar is updated.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The reconnect part of the stats and summary lines, empty without `--reconnect`.
pub(super) fn reconnect_part(ctx: &Ctx, reconnects: u64, failed: u64) -> String {
    if ctx.reconnect.is_none() {
        return String::new();
    }
    format!(
        "; {reconnects} reconnects ({failed} failed attempts, {} waiting)",
        get(&ctx.counters.reconnecting)
    )
}

/// The client's stats line.
pub(super) fn stats_line(ctx: &Ctx) -> String {
    let c = &ctx.counters;
    let data = if ctx.config.client_data_size == 0 {
        "no data connection".to_string()
    } else {
        format!(
            "data: {} messages, {:.1} MB sent, connection {}{}{}",
            get(&c.data_messages),
            get(&c.data_bytes) as f64 / 1e6,
            if c.data_up.load(Ordering::Relaxed) {
                "up"
            } else {
                "down"
            },
            match get(&c.data_failed) {
                0 => String::new(),
                n => format!(" ({n} failed attempts)"),
            },
            match get(&c.data_lost) {
                0 => String::new(),
                n => format!(" (lost {n} times)"),
            }
        )
    };
    format!(
        "client: pinning {}/{} open, {} connecting, {} failed, {} closed{}; {data}{}; {} messages received",
        get(&c.pinning_open),
        ctx.config.client_max_connections,
        get(&c.pinning_connecting),
        get(&c.pinning_failed),
        get(&c.pinning_closed),
        pin_part(ctx),
        reconnect_part(ctx, get(&c.reconnects), get(&c.reconnect_failed)),
        get(&c.received),
    )
}

/// The pin-traffic part of the stats line, empty when pinning connections send nothing.
pub(super) fn pin_part(ctx: &Ctx) -> String {
    if ctx.pin_plan.is_none() {
        return String::new();
    }
    let p = &ctx.pin_traffic;
    format!(
        "; pin traffic done on {} connections ({} messages, {:.1} MB sent)",
        get(&p.done),
        get(&p.messages),
        get(&p.bytes) as f64 / 1e6
    )
}

/// The last line of a run: what it did in all.
pub(super) fn summary_line(s: &ClientSummary, ctx: &Ctx) -> String {
    format!(
        "summary: pinning {} opened, {} failed attempts, {} closed by the other side, {} open at the end{}; \
         data: {} messages ({} bytes) sent, {} bytes received back, {} failed attempts, lost {} times{}; \
         {} messages received{}",
        s.pinning_opened,
        s.pinning_failed,
        s.pinning_closed,
        s.pinning_open,
        match ctx.pin_plan {
            None => String::new(),
            Some(_) => format!(
                ", pin traffic done on {} ({} messages, {} bytes sent)",
                s.pin_traffic_done, s.pin_messages_sent, s.pin_bytes_sent
            ),
        },
        s.data_messages_sent,
        s.data_bytes_sent,
        s.data_bytes_received,
        s.data_failed,
        s.data_lost,
        reconnect_part(ctx, s.reconnects, s.reconnect_failed),
        s.messages_received,
        if s.socketio {
            format!(" (socket.io events), {} pings answered", s.pings_answered)
        } else {
            String::new()
        },
    )
}

/// Prints the stats line every [`STATS_EVERY`] until the run stops.
pub(super) async fn stats(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(STATS_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => tracing::info!("{}", stats_line(&ctx)),
            _ = ctx.stop.cancelled() => return,
        }
    }
}

/// Keeps the progress bar at the number of open pinning connections until all are
/// open (or the run stops), then clears it.
pub(super) async fn show_progress(ctx: Arc<Ctx>, bar: indicatif::ProgressBar) {
    let max = ctx.config.client_max_connections;
    let c = &ctx.counters;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.stop.cancelled() => {
                bar.finish_and_clear();
                return;
            }
        }
        let open = get(&c.pinning_open);
        bar.set_position(open.min(max));
        bar.set_message(format!(
            "{} connecting, {} failed",
            get(&c.pinning_connecting),
            get(&c.pinning_failed)
        ));
        if open >= max {
            // Cleared rather than left behind: the log says all are open, and
            // later log lines must not land on the bar's line.
            bar.finish_and_clear();
            return;
        }
    }
}
