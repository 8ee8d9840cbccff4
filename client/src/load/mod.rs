//! The load itself: the data connection, the pinning ramp, the connections' tasks,
//! reconnecting, the stats line, and the orderly end of a run.
//!
//! Every websocket lives in its own task that reads until the socket closes (so pings
//! are answered and greetings counted). The tasks watch a `stop` token of the run, not
//! the process's shutdown: on Ctrl-C the report is fetched while the connections are
//! still open, and only then are they closed.
//!
//! The ramp fills pinning *slots* at the configured rate. A slot whose first attempt
//! fails is given back (the ramp tries again at its rate). A slot whose connection
//! opened and was then lost is reopened by its own task with backoff when the run
//! reconnects, and stays empty otherwise. Losing every open connection without
//! `reconnect` ends the run with [`ClientError::Lost`].
//!
//! With `client_pinMessageSize` / `client_pinDataBytes`, each pinning connection
//! (and each reopened one) sends its own traffic once greeted ([`pin_traffic`](crate::pin_traffic)),
//! then stays idle.

mod attempt;
mod ctx;
mod hold;
mod lifecycle;
mod ramp;
pub mod speech;
mod stats;
mod throttled;
mod tls_cache;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::ctx::{get, lost_message, Counters, Ctx};
use self::lifecycle::data_connection;
use self::ramp::ramp;
use self::stats::{show_progress, stats, stats_line, summary_line};
use self::throttled::Throttled;
use self::tls_cache::TlsCache;
use super::connect::Dial;
use super::pin_traffic::{PinPlan, PinTraffic};
use super::{progress, report, save, ClientError, ClientOptions, ClientSummary, SettingsError};
use runtime::config::Config;
use runtime::shutdown::Shutdown;

/// Time allowed for all connection tasks to end at the end of a run.
const CLOSE_ALL_WAIT: Duration = Duration::from_secs(5);

pub(super) async fn run(
    config: Config,
    options: ClientOptions,
    shutdown: Shutdown,
) -> Result<ClientSummary, ClientError> {
    if config.client_data_size > config.max_message_size as u64 {
        return Err(SettingsError::DataAboveMaxMessage {
            data_size: config.client_data_size,
            max_message_size: config.max_message_size,
        }
        .into());
    }
    if let Some(dir) = &options.save_snapshots {
        save::prepare(dir).map_err(|e| ClientError::Save {
            message: e.to_string(),
            summary: None,
        })?;
    }
    let data_size = config.client_data_size as usize;

    // The run's own snapshot endpoint, under a shutdown the caller's triggers.
    let (own, inner, snapshot_addr) = super::serve_own_snapshot(&config, &shutdown)
        .await
        .map_err(|(addr, source)| ClientError::Snapshot { addr, source })?;

    let socketio = options.socketio || speech::wss_speaks_socketio(&config).await;
    let dial = if socketio {
        tracing::info!(
            "the wss speaks socket.io: every connection opens a socket.io socket at {}",
            socketio_wire::WEBSOCKET_PATH
        );
        Dial::to_proxy(&config).socketio()
    } else {
        Dial::to_proxy(&config)
    };
    let max = config.client_max_connections;
    let pin_plan = PinPlan::from_config(&config);
    if let Some(plan) = &pin_plan {
        tracing::info!(
            "each pinning connection sends {} bytes in {} messages once greeted \
             (first message {} bytes, then {} bytes in messages of {} bytes)",
            plan.bytes(),
            plan.messages(),
            config.client_pin_message_size,
            config.client_pin_data_bytes,
            config.client_pin_data_message_size
        );
    }
    tracing::info!(
        "client: {max} pinning connections through {} at {}/s, plus a data connection sending {} bytes every {} ms; {}; snapshot at http://{snapshot_addr}/snapshot",
        dial.target.url,
        config.client_connections_per_second,
        config.client_data_size,
        config.client_data_delay,
        match &options.reconnect {
            Some(b) => format!("lost connections are reopened (backoff {:?} to {:?})", b.first, b.max),
            None => "lost connections stay closed (--reconnect to reopen them)".to_string(),
        },
    );

    let ctx = Arc::new(Ctx {
        dial,
        config,
        state: own.state,
        pin_traffic: own.pin_traffic,
        counters: Counters::default(),
        reconnect: options.reconnect,
        stop: CancellationToken::new(),
        lost_all: CancellationToken::new(),
        tracker: TaskTracker::new(),
        tls: TlsCache::default(),
        ever_open: AtomicBool::new(false),
        proxy_down: AtomicBool::new(false),
        cert_reported: AtomicBool::new(false),
        target_reached: AtomicBool::new(max == 0),
        slot_freed: Notify::new(),
        losses: Mutex::default(),
        pinning_failures: Throttled::new("pinning connection failed"),
        pinning_closes: Throttled::new("pinning connection closed"),
        reconnect_failures: Throttled::new("reconnecting failed"),
        pin_payloads: pin_plan
            .as_ref()
            .map(PinTraffic::payloads)
            .unwrap_or_default(),
        pin_plan,
    });

    // The data connection first; the ramp starts once its first attempt is over.
    let (first_done, first) = oneshot::channel();
    if data_size > 0 {
        ctx.tracker
            .spawn(data_connection(ctx.clone(), data_size, first_done));
    } else {
        drop(first_done);
    }
    {
        let ctx = ctx.clone();
        let tracker = ctx.tracker.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = first => ramp(ctx).await,
                _ = ctx.stop.cancelled() => {}
            }
        });
    }
    ctx.tracker.spawn(stats(ctx.clone()));
    if options.progress && max > 0 {
        ctx.tracker
            .spawn(show_progress(ctx.clone(), progress::ramp_bar(max)));
    }

    let sleep = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let lost = tokio::select! {
        _ = shutdown.cancelled() => None,
        _ = sleep => {
            if let Some(d) = options.duration {
                tracing::info!("ran for {d:?}: stopping");
            }
            None
        }
        _ = ctx.lost_all.cancelled() => Some(lost_message(&ctx).await),
    };

    let pinning_open = get(&ctx.counters.pinning_open);
    let report = if options.report || options.save_snapshots.is_some() {
        let report = report::fetch_report(&ctx.config, pinning_open).await;
        if options.report {
            progress::println(&report.text);
        }
        Some(report)
    } else {
        None
    };
    let (saved, save_problem) = match (&options.save_snapshots, &report) {
        (Some(dir), Some(report)) => save::save(dir, report),
        _ => (Vec::new(), None),
    };

    // Close every websocket (close frames, bounded wait), then the endpoint.
    tracing::info!("{}", stats_line(&ctx));
    ctx.stop.cancel();
    ctx.tracker.close();
    if tokio::time::timeout(CLOSE_ALL_WAIT, ctx.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = ctx.tracker.len(),
            "some websockets did not close within {CLOSE_ALL_WAIT:?}; leaving them"
        );
    } else if lost.is_none() {
        tracing::info!("closed every websocket");
    }
    inner.finish(Duration::from_secs(2)).await;

    let c = &ctx.counters;
    let summary = ClientSummary {
        pinning_opened: get(&c.pinning_opened),
        pinning_failed: get(&c.pinning_failed),
        pinning_open,
        pinning_closed: get(&c.pinning_closed),
        data_messages_sent: get(&c.data_messages),
        data_bytes_sent: get(&c.data_bytes),
        data_failed: get(&c.data_failed),
        messages_received: get(&c.received),
        socketio,
        pings_answered: get(&c.pings_answered),
        data_lost: get(&c.data_lost),
        data_bytes_received: get(&c.data_received),
        reconnects: get(&c.reconnects),
        reconnect_failed: get(&c.reconnect_failed),
        pin_traffic_done: get(&ctx.pin_traffic.done),
        pin_messages_sent: get(&ctx.pin_traffic.messages),
        pin_bytes_sent: get(&ctx.pin_traffic.bytes),
        saved,
        snapshot_addr,
        report: report.filter(|_| options.report),
    };
    tracing::info!("{}", summary_line(&summary, &ctx));
    match (lost, save_problem) {
        (Some(mut message), problem) => {
            if let Some(problem) = problem {
                message.push_str(&format!("; {problem}"));
            }
            Err(ClientError::Lost {
                message,
                summary: Box::new(summary),
            })
        }
        (None, Some(message)) => Err(ClientError::Save {
            message,
            summary: Some(Box::new(summary)),
        }),
        (None, None) => Ok(summary),
    }
}

#[cfg(test)]
mod tests;
