//! The load itself: the data connection, the pinning ramp, the connections' tasks,
//! the stats line, and the orderly end of a run.
//!
//! Every websocket lives in its own task that reads until the socket closes (so pings
//! are answered and greetings counted). The tasks watch a `stop` token of the run, not
//! the process's shutdown: on Ctrl-C the report is fetched while the connections are
//! still open, and only then are they closed.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::sync::{oneshot, Notify};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connect::{open_with, proxy_addr, proxy_url, WsStream};
use super::{progress, report, ClientError, ClientOptions, ClientSummary};
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
/// Pauses before the data connection is reopened: doubling from the first to the last.
const DATA_RETRY: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));
/// A data connection that lived this long starts its retry pauses afresh.
const DATA_HEALTHY: Duration = Duration::from_secs(30);
/// How often the progress bar is updated.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Counters of one run.
#[derive(Default)]
struct Counters {
    pinning_open: AtomicU64,
    pinning_connecting: AtomicU64,
    pinning_opened: AtomicU64,
    pinning_failed: AtomicU64,
    pinning_closed: AtomicU64,
    data_up: AtomicBool,
    data_messages: AtomicU64,
    data_bytes: AtomicU64,
    data_failed: AtomicU64,
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

/// What every task of a run shares.
struct Ctx {
    config: Config,
    state: Arc<State>,
    counters: Counters,
    /// Closes every websocket; triggered after the report.
    stop: CancellationToken,
    /// The connection tasks, waited for (bounded) at the end.
    tracker: TaskTracker,
    tls: TlsCache,
    /// Set while the proxy is known to be unreachable (reported once per outage).
    proxy_down: AtomicBool,
    /// Set once a certificate problem has been explained.
    cert_reported: AtomicBool,
    /// Set once every pinning connection was open.
    target_reached: AtomicBool,
    /// A pinning slot became free (a connection closed or an attempt failed).
    slot_freed: Notify,
    pinning_failures: Throttled,
    pinning_closes: Throttled,
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
    let snapshot_addr =
        match crate::snapshot::endpoint::serve(addr, state.clone(), inner.clone()).await {
            Ok(bound) => bound,
            Err(source) => {
                inner.trigger();
                return Err(ClientError::Snapshot { addr, source });
            }
        };

    let max = config.client_max_connections;
    tracing::info!(
        "client: {max} pinning connections through {} at {}/s, plus a data connection sending {} bytes every {} ms; snapshot at http://{snapshot_addr}/snapshot",
        proxy_url(&config),
        config.client_connections_per_second,
        config.client_data_size,
        config.client_data_delay,
    );

    let ctx = Arc::new(Ctx {
        config,
        state,
        counters: Counters::default(),
        stop: CancellationToken::new(),
        tracker: TaskTracker::new(),
        tls: TlsCache::default(),
        proxy_down: AtomicBool::new(false),
        cert_reported: AtomicBool::new(false),
        target_reached: AtomicBool::new(max == 0),
        slot_freed: Notify::new(),
        pinning_failures: Throttled::new("pinning connection failed"),
        pinning_closes: Throttled::new("pinning connection closed"),
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

    let why = match options.duration {
        Some(d) => tokio::select! {
            _ = shutdown.cancelled() => None,
            _ = tokio::time::sleep(d) => Some(d),
        },
        None => {
            shutdown.cancelled().await;
            None
        }
    };
    if let Some(d) = why {
        tracing::info!("ran for {d:?}: stopping");
    }

    let pinning_open = get(&ctx.counters.pinning_open);
    let report = if options.report {
        let report = report::fetch_report(&ctx.config, pinning_open).await;
        progress::println(&report.text);
        Some(report)
    } else {
        None
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
    } else {
        tracing::info!("closed every websocket");
    }
    inner.finish(Duration::from_secs(2)).await;

    let c = &ctx.counters;
    Ok(ClientSummary {
        pinning_opened: get(&c.pinning_opened),
        pinning_failed: get(&c.pinning_failed),
        pinning_open,
        pinning_closed: get(&c.pinning_closed),
        data_messages_sent: get(&c.data_messages),
        data_bytes_sent: get(&c.data_bytes),
        data_failed: get(&c.data_failed),
        messages_received: get(&c.received),
        snapshot_addr,
        report,
    })
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
                tracing::error!(
                    "the proxy at {} is not reachable ({e}); start it with `cargo run -p native --bin proxy` \
                     (and the wss behind it with `cargo run -p native --bin wss`); retrying at the configured rate",
                    proxy_addr(&ctx.config)
                );
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

/// Whether a failure was already explained by a one-time error line.
fn explained(ctx: &Ctx, e: &ClientError) -> bool {
    (e.is_unreachable() && ctx.proxy_down.load(Ordering::Relaxed))
        || matches!(e, ClientError::Certificate(_))
}

/// Opens pinning connections at the configured rate while fewer than the maximum
/// are open or opening.
async fn ramp(ctx: Arc<Ctx>) {
    let max = ctx.config.client_max_connections;
    if max == 0 {
        return;
    }
    let mut tick = tokio::time::interval(period(ctx.config.client_connections_per_second));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let c = &ctx.counters;
    loop {
        if get(&c.pinning_open) + get(&c.pinning_connecting) >= max {
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

/// One pinning connection: opened, then held until it closes or the run ends.
async fn pinning_connection(ctx: Arc<Ctx>) {
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
            if !explained(&ctx, &e) {
                ctx.pinning_failures.warn(&e);
            }
            ctx.slot_freed.notify_one();
            return;
        }
    };
    // Counted open before it stops counting as connecting, so the ramp never
    // sees a free slot that is not there.
    let guard = ctx.state.connections.open_one(None);
    let open = c.pinning_open.fetch_add(1, Ordering::Relaxed) + 1;
    c.pinning_connecting.fetch_sub(1, Ordering::Relaxed);
    c.pinning_opened.fetch_add(1, Ordering::Relaxed);
    if open >= ctx.config.client_max_connections
        && !ctx.target_reached.swap(true, Ordering::Relaxed)
    {
        tracing::info!("all {open} pinning connections are open");
    }

    let end = hold(&ctx, ws, None).await;
    c.pinning_open.fetch_sub(1, Ordering::Relaxed);
    drop(guard);
    if let End::Closed(why) = end {
        c.pinning_closed.fetch_add(1, Ordering::Relaxed);
        ctx.pinning_closes.warn(&why);
        ctx.slot_freed.notify_one();
    }
}

/// The data connection: opened first, sends its payload every `client_dataDelay` ms,
/// and is reopened after a pause (doubling, bounded) whenever it drops.
async fn data_connection(ctx: Arc<Ctx>, size: usize, first: oneshot::Sender<()>) {
    let payload = Message::Binary(Bytes::from(vec![b'x'; size]));
    let mut first = Some(first);
    let mut pause = DATA_RETRY.0;
    let addr = proxy_addr(&ctx.config);
    loop {
        let opened = tokio::select! {
            r = attempt(&ctx) => r,
            _ = ctx.stop.cancelled() => return,
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        match opened {
            Ok(ws) => {
                tracing::info!(
                    "data connection open: sending {size} bytes every {} ms",
                    ctx.config.client_data_delay
                );
                let since = Instant::now();
                let guard = ctx.state.connections.open_one(None);
                ctx.counters.data_up.store(true, Ordering::Relaxed);
                let end = hold(&ctx, ws, Some(&payload)).await;
                ctx.counters.data_up.store(false, Ordering::Relaxed);
                drop(guard);
                match end {
                    End::Stopped => return,
                    End::Closed(why) => {
                        if since.elapsed() >= DATA_HEALTHY {
                            pause = DATA_RETRY.0;
                        }
                        tracing::warn!(
                            "data connection to {addr} dropped: {why}; reopening in {pause:?}"
                        );
                    }
                }
            }
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
        pause = (pause * 2).min(DATA_RETRY.1);
    }
}

/// Reads a websocket until it closes or the run stops; with a payload, also sends
/// it every `client_dataDelay` ms.
async fn hold(ctx: &Ctx, mut ws: WsStream, payload: Option<&Message>) -> End {
    let c = &ctx.counters;
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
            message = ws.next() => match message {
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite answers the close; reading on ends the connection.
                    close_frame = Some(match frame {
                        Some(f) => format!("closed by the server with {} {}", u16::from(f.code), f.reason),
                        None => "closed by the server".into(),
                    });
                }
                Some(Ok(_)) => {
                    c.received.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(WsError::ConnectionClosed)) | None => {
                    return End::Closed(close_frame.unwrap_or_else(|| "closed by the server".into()));
                }
                Some(Err(e)) => {
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

/// The client's stats line.
fn stats_line(ctx: &Ctx) -> String {
    let c = &ctx.counters;
    let data = if ctx.config.client_data_size == 0 {
        "no data connection".to_string()
    } else {
        format!(
            "data: {} messages, {:.1} MB sent, connection {}{}",
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
            }
        )
    };
    format!(
        "client: pinning {}/{} open, {} connecting, {} failed, {} closed; {data}; {} messages received",
        get(&c.pinning_open),
        ctx.config.client_max_connections,
        get(&c.pinning_connecting),
        get(&c.pinning_failed),
        get(&c.pinning_closed),
        get(&c.received),
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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(AtomicU64::new(0));
        let count = received.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let _ = ws.send(Message::text("hello")).await;
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_binary() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        (port, received)
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
            report: false,
            progress: false,
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
