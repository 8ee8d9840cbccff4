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
//! (and each reopened one) sends its own traffic once greeted ([`pin_traffic`]),
//! then stays idle.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connect::{open_with, proxy_addr, proxy_url, WsStream};
use super::pin_traffic::{self, PinPlan, PinTraffic, Step};
use super::{progress, report, save, Backoff, ClientError, ClientOptions, ClientSummary};
use crate::config::Config;
use crate::server::{State, STATS_EVERY};
use crate::shutdown::Shutdown;
use crate::Role;

/// Time allowed to close one websocket cleanly (close frame sent, answer read).
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Time allowed for all connection tasks to end at the end of a run.
const CLOSE_ALL_WAIT: Duration = Duration::from_secs(5);
/// At most one warning per this interval for repeated failures of one kind.
const WARN_EVERY: Duration = Duration::from_secs(5);
/// A connection that lived this long starts its reconnect pauses afresh.
const HEALTHY: Duration = Duration::from_secs(10);
/// How often the progress bar is updated.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Time allowed to check whether the proxy still accepts connections.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Counters of one run.
#[derive(Default)]
struct Counters {
    /// Pinning slots taken: connecting, open, reconnecting, or lost for good.
    slots: AtomicU64,
    pinning_open: AtomicU64,
    pinning_connecting: AtomicU64,
    pinning_opened: AtomicU64,
    pinning_failed: AtomicU64,
    pinning_closed: AtomicU64,
    data_up: AtomicBool,
    data_messages: AtomicU64,
    data_bytes: AtomicU64,
    data_failed: AtomicU64,
    data_lost: AtomicU64,
    /// Bytes of binary messages received on the data connection (the wss's echoes).
    data_received: AtomicU64,
    /// Lost connections waiting to be reopened.
    reconnecting: AtomicU64,
    reconnects: AtomicU64,
    reconnect_failed: AtomicU64,
    received: AtomicU64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Logs a kind of event at most once per [`WARN_EVERY`], counting the ones left out.
struct Throttled {
    what: &'static str,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    fn new(what: &'static str) -> Self {
        Throttled {
            what,
            state: Mutex::new((None, 0)),
        }
    }

    fn warn(&self, reason: &dyn Display) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, skipped) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            *skipped += 1;
            return;
        }
        if *skipped > 0 {
            tracing::warn!(
                "{}: {reason} (and {skipped} more since the last such line)",
                self.what
            );
        } else {
            tracing::warn!("{}: {reason}", self.what);
        }
        *last = Some(Instant::now());
        *skipped = 0;
    }
}

/// The TLS configuration, read once the proxy is reachable, and read again after a
/// TLS failure (the proxy may have made a new certificate).
#[derive(Default)]
struct TlsCache(Mutex<Option<Arc<ClientConfig>>>);

impl TlsCache {
    fn get(&self, config: &Config) -> Result<Arc<ClientConfig>, ClientError> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tls) = slot.as_ref() {
            return Ok(tls.clone());
        }
        let tls = crate::tls::client_config(config)?;
        *slot = Some(tls.clone());
        Ok(tls)
    }

    fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Connections lost since one last opened: an outage in the making.
#[derive(Default)]
struct Losses {
    pinning: u64,
    data: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Every open connection was lost (reported once per outage).
    all: bool,
}

/// What every task of a run shares.
struct Ctx {
    config: Config,
    state: Arc<State>,
    counters: Counters,
    reconnect: Option<Backoff>,
    /// Closes every websocket; triggered after the report.
    stop: CancellationToken,
    /// Triggered when every open connection was lost and the run does not reconnect.
    lost_all: CancellationToken,
    /// The connection tasks, waited for (bounded) at the end.
    tracker: TaskTracker,
    tls: TlsCache,
    /// Set once any connection has opened.
    ever_open: AtomicBool,
    /// Set while the proxy is known to be unreachable (reported once per outage).
    proxy_down: AtomicBool,
    /// Set once a certificate problem has been explained.
    cert_reported: AtomicBool,
    /// Set once every pinning connection was open.
    target_reached: AtomicBool,
    /// A pinning slot became free (an attempt failed).
    slot_freed: Notify,
    losses: Mutex<Losses>,
    pinning_failures: Throttled,
    pinning_closes: Throttled,
    reconnect_failures: Throttled,
    /// What each pinning connection sends once greeted; `None`: nothing.
    pin_plan: Option<PinPlan>,
    /// The payloads of that traffic, shared by every connection.
    pin_payloads: (Bytes, Bytes),
}

impl Ctx {
    /// Connections open now: pinning and data.
    fn open_now(&self) -> u64 {
        get(&self.counters.pinning_open) + u64::from(self.counters.data_up.load(Ordering::Relaxed))
    }

    /// A connection that was open has ended: no longer counted open, and counted
    /// lost when `lost` (the other side closed it or it broke). Both under the
    /// losses' lock, so that the last connection to go sees every earlier loss (a
    /// data connection counted down but not yet counted lost made the outage line
    /// leave it out).
    fn ended(&self, data: bool, lost: bool) {
        let mut l = self.losses.lock().unwrap_or_else(|e| e.into_inner());
        if data {
            self.counters.data_up.store(false, Ordering::Relaxed);
        } else {
            self.counters.pinning_open.fetch_sub(1, Ordering::Relaxed);
        }
        if !lost {
            return;
        }
        let now = Instant::now();
        l.first.get_or_insert(now);
        l.last = Some(now);
        if data {
            l.data += 1;
        } else {
            l.pinning += 1;
        }
        if self.open_now() > 0 || l.all || self.stop.is_cancelled() {
            return;
        }
        l.all = true;
        let what = lost_what(l.pinning, l.data);
        match self.reconnect {
            None => self.lost_all.cancel(),
            Some(_) => tracing::warn!(
                "lost every connection to the proxy at {} ({what}); reconnecting with backoff",
                proxy_addr(&self.config)
            ),
        }
    }

    /// A connection has opened (first time or reopened).
    fn opened(&self) {
        self.ever_open.store(true, Ordering::Relaxed);
        let mut l = self.losses.lock().unwrap_or_else(|e| e.into_inner());
        if l.all && self.reconnect.is_some() && get(&self.counters.reconnecting) == 0 {
            let after = l.first.map(|t| t.elapsed()).unwrap_or_default();
            tracing::info!(
                "reconnected: {} connections open again, {:.1} s after the loss",
                self.open_now(),
                after.as_secs_f64()
            );
        } else if l.all {
            return;
        }
        *l = Losses::default();
    }
}

/// "200 pinning connections and the data connection".
fn lost_what(pinning: u64, data: u64) -> String {
    let pinning = match pinning {
        0 => None,
        1 => Some("1 pinning connection".to_string()),
        n => Some(format!("{n} pinning connections")),
    };
    let data = match data {
        0 => None,
        1 => Some("the data connection".to_string()),
        n => Some(format!("the data connection ({n} times)")),
    };
    match (pinning, data) {
        (Some(p), Some(d)) => format!("{p} and {d}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => "no connection".to_string(),
    }
}

/// How a connection's task ended.
enum End {
    /// The run is over; the socket was closed by us.
    Stopped,
    /// The other side closed it, or it broke.
    Closed(String),
}

pub(super) async fn run(
    config: Config,
    options: ClientOptions,
    shutdown: Shutdown,
) -> Result<ClientSummary, ClientError> {
    if config.client_data_size > config.max_message_size as u64 {
        return Err(ClientError::Config(format!(
            "client_dataSize ({}) is above max_message_size ({}): the wss would close the data \
             connection at every message; lower client_dataSize or raise max_message_size",
            config.client_data_size, config.max_message_size
        )));
    }
    if let Some(dir) = &options.save_snapshots {
        save::prepare(dir).map_err(|message| ClientError::Save {
            message,
            summary: None,
        })?;
    }
    let data_size = config.client_data_size as usize;

    // The run's own shutdown, for its snapshot endpoint: triggered by the caller's,
    // finished by the run, so the caller's is only watched.
    let inner = Shutdown::new();
    {
        let (outer, inner) = (shutdown.clone(), inner.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = outer.cancelled() => inner.trigger(),
                _ = inner.cancelled() => {}
            }
        });
    }

    let state = State::new(Role::Client, &config);
    let addr = SocketAddr::new(config.snapshot_bind, config.client_heapdump_port);
    let snapshot_addr = match crate::snapshot::endpoint::serve_with(
        addr,
        state.clone(),
        inner.clone(),
        crate::snapshot::endpoint::EndpointSettings::from_config(&config),
    )
    .await
    {
        Ok(bound) => bound,
        Err(source) => {
            inner.trigger();
            return Err(ClientError::Snapshot { addr, source });
        }
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
        proxy_url(&config),
        config.client_connections_per_second,
        config.client_data_size,
        config.client_data_delay,
        match &options.reconnect {
            Some(b) => format!("lost connections are reopened (backoff {:?} to {:?})", b.first, b.max),
            None => "lost connections stay closed (--reconnect to reopen them)".to_string(),
        },
    );

    let ctx = Arc::new(Ctx {
        config,
        state,
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
        data_lost: get(&c.data_lost),
        data_bytes_received: get(&c.data_received),
        reconnects: get(&c.reconnects),
        reconnect_failed: get(&c.reconnect_failed),
        pin_traffic_done: get(&ctx.state.pin_traffic.done),
        pin_messages_sent: get(&ctx.state.pin_traffic.messages),
        pin_bytes_sent: get(&ctx.state.pin_traffic.bytes),
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

/// The one line that says every connection was lost: how many, how fast, and
/// whether the proxy still accepts connections (a TCP probe).
async fn lost_message(ctx: &Ctx) -> String {
    let (what, within) = {
        let l = ctx.losses.lock().unwrap_or_else(|e| e.into_inner());
        let within = match (l.first, l.last) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        };
        (lost_what(l.pinning, l.data), within)
    };
    let addr = proxy_addr(&ctx.config);
    let probe = tokio::time::timeout(
        PROBE_WAIT,
        TcpStream::connect((
            super::connect::bare_host(&ctx.config.client_proxy_host),
            ctx.config.proxy_port,
        )),
    )
    .await;
    let proxy = match probe {
        Ok(Ok(_)) => {
            "the proxy still accepts connections: is the wss behind it running?".to_string()
        }
        Ok(Err(e)) => format!("the proxy no longer accepts connections ({e})"),
        Err(_) => format!("the proxy does not answer within {PROBE_WAIT:?}"),
    };
    format!(
        "lost the proxy at {addr}: all open connections ({what}) ended within {:.2} s, and {proxy}; \
         run with --reconnect to reopen them with backoff",
        within.as_secs_f64()
    )
}

/// One attempt to open a websocket, counted and explained when it fails.
async fn attempt(ctx: &Ctx) -> Result<WsStream, ClientError> {
    let opened = open_with(&ctx.config, || ctx.tls.get(&ctx.config)).await;
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
fn explained(ctx: &Ctx, e: &ClientError) -> bool {
    (e.is_unreachable() && ctx.proxy_down.load(Ordering::Relaxed))
        || matches!(e, ClientError::Certificate(_))
}

/// Opens pinning connections at the configured rate while fewer than the maximum
/// slots are taken.
async fn ramp(ctx: Arc<Ctx>) {
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
fn period(per_second: f64) -> Duration {
    const MIN: Duration = Duration::from_micros(1);
    const MAX: Duration = Duration::from_secs(365 * 24 * 3600);
    Duration::try_from_secs_f64(1.0 / per_second)
        .unwrap_or(MAX)
        .clamp(MIN, MAX)
}

/// One pinning slot: its connection opened, held until it closes or the run ends,
/// and reopened with backoff when the run reconnects.
async fn pinning_connection(ctx: Arc<Ctx>) {
    let c = &ctx.counters;
    let opened = tokio::select! {
        r = attempt(&ctx) => r,
        _ = ctx.stop.cancelled() => {
            c.pinning_connecting.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    let mut ws = match opened {
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
    let mut first = true;
    let mut failures = 0;
    loop {
        // Counted open before it stops counting as connecting, so the ramp never
        // sees a free slot that is not there.
        let guard = ctx.state.connections.open_one(None);
        let open = c.pinning_open.fetch_add(1, Ordering::Relaxed) + 1;
        if first {
            c.pinning_connecting.fetch_sub(1, Ordering::Relaxed);
            c.pinning_opened.fetch_add(1, Ordering::Relaxed);
            first = false;
        }
        ctx.opened();
        if open >= ctx.config.client_max_connections
            && !ctx.target_reached.swap(true, Ordering::Relaxed)
        {
            tracing::info!("all {open} pinning connections are open");
        }

        let since = Instant::now();
        let mut traffic = ctx
            .pin_plan
            .as_ref()
            .map(|plan| PinTraffic::new(plan, &ctx.pin_payloads));
        let end = hold(&ctx, ws, None, traffic.as_mut()).await;
        ctx.ended(false, matches!(end, End::Closed(_)));
        drop(guard);
        let End::Closed(why) = end else { return };
        c.pinning_closed.fetch_add(1, Ordering::Relaxed);
        ctx.pinning_closes.warn(&why);
        let Some(backoff) = ctx.reconnect else { return };
        if since.elapsed() >= HEALTHY {
            failures = 0;
        }
        match reconnect(&ctx, backoff, &mut failures).await {
            Some(again) => ws = again,
            None => return,
        }
    }
}

/// Reopens a lost connection: pauses ([`Backoff`]) between attempts until one
/// succeeds, or the run stops (`None`). `n` counts the pauses so far.
async fn reconnect(ctx: &Ctx, backoff: Backoff, n: &mut u32) -> Option<WsStream> {
    let c = &ctx.counters;
    c.reconnecting.fetch_add(1, Ordering::Relaxed);
    let reopened = loop {
        let pause = backoff.pause(*n);
        *n = n.saturating_add(1);
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
async fn data_connection(ctx: Arc<Ctx>, size: usize, first: oneshot::Sender<()>) {
    let payload = Message::Binary(Bytes::from(vec![b'x'; size]));
    let mut first = Some(first);
    let backoff = ctx.reconnect.unwrap_or_default();
    let mut failures = 0;
    let addr = proxy_addr(&ctx.config);
    let mut ws = loop {
        let opened = tokio::select! {
            r = attempt(&ctx) => r,
            _ = ctx.stop.cancelled() => return,
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        let pause = backoff.pause(failures);
        failures += 1;
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
    failures = 0;
    loop {
        tracing::info!(
            "data connection open: sending {size} bytes every {} ms",
            ctx.config.client_data_delay
        );
        let since = Instant::now();
        let guard = ctx.state.connections.open_one(None);
        ctx.counters.data_up.store(true, Ordering::Relaxed);
        ctx.opened();
        let end = hold(&ctx, ws, Some(&payload), None).await;
        if matches!(end, End::Closed(_)) {
            ctx.counters.data_lost.fetch_add(1, Ordering::Relaxed);
        }
        ctx.ended(true, matches!(end, End::Closed(_)));
        drop(guard);
        let End::Closed(why) = end else { return };
        let Some(backoff) = ctx.reconnect else {
            tracing::warn!(
                "data connection to {addr} lost: {why}; not reopened (--reconnect reopens it)"
            );
            return;
        };
        tracing::warn!("data connection to {addr} lost: {why}; reopening with backoff");
        if since.elapsed() >= HEALTHY {
            failures = 0;
        }
        match reconnect(&ctx, backoff, &mut failures).await {
            Some(again) => ws = again,
            None => return,
        }
    }
}

/// Reads a websocket until it closes or the run stops; with a payload, also sends
/// it every `client_dataDelay` ms; with `traffic`, sends it once the first message
/// (the wss's greeting) has arrived.
async fn hold(
    ctx: &Ctx,
    mut ws: WsStream,
    payload: Option<&Message>,
    mut traffic: Option<&mut PinTraffic>,
) -> End {
    let c = &ctx.counters;
    let pins = &ctx.state.pin_traffic;
    let mut tick = payload.map(|_| {
        let every = Duration::from_millis(ctx.config.client_data_delay.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick
    });
    let mut close_frame: Option<String> = None;
    loop {
        tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => {
                close(&mut ws).await;
                return End::Stopped;
            }
            step = pin_traffic::next_step(&mut ws, traffic.as_deref_mut()) => match step {
                Step::Sent { bytes, last } => {
                    pins.messages.fetch_add(1, Ordering::Relaxed);
                    pins.bytes.fetch_add(bytes, Ordering::Relaxed);
                    if last {
                        pins.done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Step::Failed(e) => return End::Closed(format!("sending failed: {e}")),
                Step::Received(Some(Ok(Message::Close(frame)))) => {
                    // tungstenite answers the close; reading on ends the connection.
                    close_frame = Some(match frame {
                        Some(f) => format!("closed by the server with {} {}", u16::from(f.code), f.reason),
                        None => "closed by the server".into(),
                    });
                }
                Step::Received(Some(Ok(m))) => {
                    c.received.fetch_add(1, Ordering::Relaxed);
                    if m.is_text() || m.is_binary() {
                        // The greeting: the connection's own traffic may start.
                        if let Some(t) = traffic.as_deref_mut() {
                            t.start();
                        }
                    }
                    if payload.is_some() && m.is_binary() {
                        c.data_received.fetch_add(m.len() as u64, Ordering::Relaxed);
                    }
                }
                Step::Received(Some(Err(WsError::ConnectionClosed)) | None) => {
                    return End::Closed(close_frame.unwrap_or_else(|| "closed by the server".into()));
                }
                Step::Received(Some(Err(e))) => {
                    let why = match close_frame {
                        Some(f) => format!("{f}; then {e}"),
                        None => e.to_string(),
                    };
                    return End::Closed(why);
                }
            },
            _ = next_tick(&mut tick) => {
                let Some(payload) = payload else { continue };
                let sent = tokio::select! {
                    r = ws.send(payload.clone()) => r,
                    _ = ctx.stop.cancelled() => {
                        close(&mut ws).await;
                        return End::Stopped;
                    }
                };
                match sent {
                    Ok(()) => {
                        c.data_messages.fetch_add(1, Ordering::Relaxed);
                        c.data_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => return End::Closed(format!("sending failed: {e}")),
                }
            }
        }
    }
}

/// The next tick of an interval, or never without one.
async fn next_tick(tick: &mut Option<Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Closes a websocket: a close frame, then reading until the server's answer, bounded.
async fn close(ws: &mut WsStream) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "client stopping".into(),
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        if ws.close(Some(frame)).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// The reconnect part of the stats and summary lines, empty without `--reconnect`.
fn reconnect_part(ctx: &Ctx, reconnects: u64, failed: u64) -> String {
    if ctx.reconnect.is_none() {
        return String::new();
    }
    format!(
        "; {reconnects} reconnects ({failed} failed attempts, {} waiting)",
        get(&ctx.counters.reconnecting)
    )
}

/// The client's stats line.
fn stats_line(ctx: &Ctx) -> String {
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
fn pin_part(ctx: &Ctx) -> String {
    if ctx.pin_plan.is_none() {
        return String::new();
    }
    let p = &ctx.state.pin_traffic;
    format!(
        "; pin traffic done on {} connections ({} messages, {:.1} MB sent)",
        get(&p.done),
        get(&p.messages),
        get(&p.bytes) as f64 / 1e6
    )
}

/// The last line of a run: what it did in all.
fn summary_line(s: &ClientSummary, ctx: &Ctx) -> String {
    format!(
        "summary: pinning {} opened, {} failed attempts, {} closed by the other side, {} open at the end{}; \
         data: {} messages ({} bytes) sent, {} bytes received back, {} failed attempts, lost {} times{}; \
         {} messages received",
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
    )
}

/// Prints the stats line every [`STATS_EVERY`] until the run stops.
async fn stats(ctx: Arc<Ctx>) {
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
async fn show_progress(ctx: Arc<Ctx>, bar: indicatif::ProgressBar) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A plain websocket server that greets, then counts the messages it receives.
    async fn tiny_server() -> (u16, Arc<AtomicU64>) {
        let server = TinyServer::start(0).await;
        let port = server.port;
        let received = server.received.clone();
        std::mem::forget(server.task);
        (port, received)
    }

    /// [`tiny_server`] that can be killed (listener and every connection dropped
    /// at once, as when a process dies) and started again on its port.
    struct TinyServer {
        port: u16,
        received: Arc<AtomicU64>,
        /// Websockets accepted.
        accepted: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TinyServer {
        async fn start(port: u16) -> TinyServer {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let received = Arc::new(AtomicU64::new(0));
            let accepted = Arc::new(AtomicU64::new(0));
            let (count, opened) = (received.clone(), accepted.clone());
            let task = tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    let (count, opened) = (count.clone(), opened.clone());
                    connections.spawn(async move {
                        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                            return;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        let _ = ws.send(Message::text("hello")).await;
                        while let Some(Ok(m)) = ws.next().await {
                            if m.is_binary() {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            });
            TinyServer {
                port,
                received,
                accepted,
                task,
            }
        }

        /// Drops the listener and every connection.
        async fn kill(self) {
            self.task.abort();
            let _ = self.task.await;
        }
    }

    async fn wait_for(what: &str, check: impl Fn() -> bool) {
        let (bound, poll) = (Duration::from_secs(10), Duration::from_millis(10));
        crate::wait::expect(what, bound, poll, || std::future::ready(check())).await
    }

    fn plain(port: u16, max: u64) -> Config {
        Config {
            proxy_port: port,
            proxy_tls: false,
            client_proxy_host: "127.0.0.1".into(),
            client_heapdump_port: 0,
            client_connections_per_second: 500.0,
            client_max_connections: max,
            client_data_size: 1000,
            client_data_delay: 20,
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn losing_every_connection_without_reconnect_ends_the_run_saying_what() {
        let server = TinyServer::start(0).await;
        let accepted = server.accepted.clone();
        let run = tokio::spawn(super::super::run(
            plain(server.port, 5),
            ClientOptions::default(),
            Shutdown::new(),
        ));
        wait_for("6 websockets open", || {
            accepted.load(Ordering::Relaxed) == 6
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.kill().await;
        let ended = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the run ends by itself")
            .expect("no panic");
        let err = ended.expect_err("losing everything is an error");
        let message = err.to_string();
        assert!(
            message.contains("5 pinning connections and the data connection"),
            "{message}"
        );
        assert!(
            message.contains("the proxy no longer accepts connections"),
            "{message}"
        );
        assert!(message.contains("--reconnect"), "{message}");
        let summary = err.summary().expect("the summary comes with it");
        assert_eq!(summary.pinning_opened, 5);
        assert_eq!(summary.pinning_closed, 5);
        assert_eq!(summary.data_lost, 1);
        assert_eq!(summary.reconnects, 0);
    }

    #[tokio::test]
    async fn with_reconnect_lost_connections_come_back_with_backoff() {
        let server = TinyServer::start(0).await;
        let (port, accepted) = (server.port, server.accepted.clone());
        let shutdown = Shutdown::new();
        let options = ClientOptions {
            reconnect: Some(Backoff {
                first: Duration::from_millis(20),
                max: Duration::from_millis(200),
            }),
            ..ClientOptions::default()
        };
        let run = tokio::spawn(super::super::run(plain(port, 5), options, shutdown.clone()));
        wait_for("6 websockets open", || {
            accepted.load(Ordering::Relaxed) == 6
        })
        .await;
        server.kill().await;
        // Down for a while: attempts fail and back off.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server = TinyServer::start(port).await;
        let again = server.accepted.clone();
        wait_for("6 websockets open again", || {
            again.load(Ordering::Relaxed) == 6
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.trigger();
        let summary = run.await.expect("no panic").expect("run");
        assert_eq!(summary.reconnects, 6, "{summary:?}");
        assert!(summary.reconnect_failed > 0, "{summary:?}");
        assert_eq!(summary.pinning_opened, 5, "slots reopened, not new ones");
        assert_eq!(summary.pinning_closed, 5);
        assert_eq!(summary.pinning_open, 5);
        assert_eq!(summary.data_lost, 1);
        assert_eq!(again.load(Ordering::Relaxed), 6, "no extra connection");
        server.kill().await;
    }

    #[tokio::test]
    async fn without_reconnect_one_lost_connection_is_not_replaced() {
        // A server that closes its third websocket right after greeting it.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicU64::new(0));
        let opened = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let _ = ws.send(Message::text("hello")).await;
                    if n == 3 {
                        let _ = ws.close(None).await;
                    }
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        });
        let mut config = plain(port, 4);
        config.client_data_size = 0;
        let options = ClientOptions {
            duration: Some(Duration::from_millis(500)),
            ..ClientOptions::default()
        };
        let summary = super::super::run(config, options, Shutdown::new())
            .await
            .expect("one lost connection is not fatal");
        assert_eq!(summary.pinning_opened, 4);
        assert_eq!(summary.pinning_closed, 1);
        assert_eq!(summary.pinning_open, 3);
        assert_eq!(accepted.load(Ordering::Relaxed), 4, "not refilled");
    }

    #[tokio::test]
    async fn run_opens_pins_sends_and_closes() {
        let (port, received) = tiny_server().await;
        let config = Config {
            proxy_port: port,
            proxy_tls: false,
            client_proxy_host: "127.0.0.1".into(),
            client_heapdump_port: 0,
            client_connections_per_second: 200.0,
            client_max_connections: 5,
            client_data_size: 1000,
            client_data_delay: 20,
            ..Config::default()
        };
        let options = ClientOptions {
            duration: Some(Duration::from_millis(600)),
            ..ClientOptions::default()
        };
        let summary = super::super::run(config, options, Shutdown::new())
            .await
            .expect("run");
        assert_eq!(summary.pinning_opened, 5);
        assert_eq!(summary.pinning_open, 5);
        assert_eq!(summary.pinning_failed, 0);
        assert!(summary.data_messages_sent >= 5, "{summary:?}");
        assert_eq!(summary.data_bytes_sent, summary.data_messages_sent * 1000);
        assert_eq!(summary.messages_received, 6, "one greeting per connection");
        assert!(received.load(Ordering::Relaxed) >= 5);
        assert_ne!(summary.snapshot_addr.port(), 0);
    }

    #[tokio::test]
    async fn an_absent_proxy_is_counted_not_fatal() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr").port()
        };
        let config = Config {
            proxy_port: port,
            proxy_tls: false,
            client_proxy_host: "127.0.0.1".into(),
            client_heapdump_port: 0,
            client_connections_per_second: 100.0,
            client_max_connections: 3,
            client_data_size: 0,
            ..Config::default()
        };
        let options = ClientOptions {
            duration: Some(Duration::from_millis(300)),
            ..ClientOptions::default()
        };
        let summary = super::super::run(config, options, Shutdown::new())
            .await
            .expect("run");
        assert_eq!(summary.pinning_opened, 0);
        assert!(summary.pinning_failed >= 3, "{summary:?}");
    }

    #[test]
    fn period_follows_the_rate_within_bounds() {
        assert_eq!(period(1.0), Duration::from_secs(1));
        assert_eq!(period(0.25), Duration::from_secs(4));
        assert_eq!(period(1e12), Duration::from_micros(1));
        assert_eq!(period(1e-300), Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            period(f64::MIN_POSITIVE),
            Duration::from_secs(365 * 24 * 3600)
        );
    }
}
