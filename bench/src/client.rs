//! The load client, the same for every stack: websockets over TLS to a proxy on
//! 127.0.0.1, trusting the bench's certificate for `localhost`.
//!
//! Each websocket is opened with TCP + TLS + the websocket handshake, then waits for
//! the server's greeting (so a connection counts as open only once the wss behind the
//! proxy has it too). Its socket closes with a reset (`SO_LINGER` 0), so a run leaves
//! no client ports in TIME_WAIT for the next stack.
//!
//! - [`IdlePool`]: pinning connections opened at a rate and held idle (reading, so
//!   pings would be answered); on [`IdlePool::traffic`] each sends a first message
//!   and its own traffic, then goes idle again.
//! - [`DataConnection`]: sends `size` bytes every `delay`, reading what comes back.
//! - [`throughput`]: 64 KiB echo over N connections, a window of messages in flight.
//! - [`latency`]: a small echo from every connection once a second, round trips timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client websocket over TLS.
pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// Time allowed to open one websocket and get its greeting.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Read buffer of idle and latency connections (as our own client's): small, since
/// thousands are held.
pub const SMALL_READ_BUFFER: usize = 4 << 10;

/// Read buffer of throughput and data connections.
pub const LARGE_READ_BUFFER: usize = 128 << 10;

/// Where the client connects: a TLS proxy on 127.0.0.1.
#[derive(Clone)]
pub struct Target {
    pub port: u16,
    pub tls: Arc<ClientConfig>,
}

/// Opens one websocket through the proxy and reads the server's greeting.
pub async fn connect(target: &Target, read_buffer: usize) -> Result<Ws, String> {
    let open = async {
        let tcp = TcpStream::connect(("127.0.0.1", target.port))
            .await
            .map_err(|e| format!("connect to 127.0.0.1:{}: {e}", target.port))?;
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
        let name = ServerName::try_from("localhost").expect("a valid name");
        let tls = TlsConnector::from(target.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(0)
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let url = format!("wss://localhost:{}/", target.port);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tls, Some(config))
            .await
            .map_err(|e| format!("websocket handshake: {e}"))?;
        match ws.next().await {
            Some(Ok(Message::Text(_))) => Ok(ws),
            Some(Ok(other)) => Err(format!("expected a greeting, got {other:?}")),
            Some(Err(e)) => Err(format!("reading the greeting: {e}")),
            None => Err("closed before the greeting".to_string()),
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, open)
        .await
        .unwrap_or_else(|_| Err(format!("no greeting within {OPEN_TIMEOUT:?}")))
}

/// Counters of a pool of idle websockets.
#[derive(Default)]
struct PoolCounters {
    open: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Websockets that sent their traffic and got its pong; those whose traffic failed.
    traffic_done: AtomicU64,
    traffic_failed: AtomicU64,
}

/// What each websocket of a pool sends on [`IdlePool::traffic`]: `first` once, then
/// `bytes` in messages of `message` bytes; each message followed by a ping (payload
/// [`TRAFFIC_PING`] and the message's number) whose pong comes before the next.
/// Paced so, the wss reads each message on its own (a client that talks, as
/// `native/tests/warp_pinning.rs` does), not a burst that lands in one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSpec {
    pub first: usize,
    pub bytes: usize,
    pub message: usize,
}

impl TrafficSpec {
    /// The sizes of the messages, in order: the first message, then the traffic.
    pub fn messages(&self) -> Vec<usize> {
        let mut out = vec![self.first];
        out.extend(native::client::audit::conns::traffic_sizes(
            self.bytes,
            self.message,
        ));
        out
    }
}

/// How the pings of a websocket's traffic start: the wss answers one after it has
/// read everything sent before it.
pub const TRAFFIC_PING: &[u8] = b"traffic ";

/// Time one websocket's traffic may take, first message to pong.
pub const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(120);

/// A traffic order as the pool's tasks get it: payloads shared by all of them.
#[derive(Clone)]
struct TrafficOrder {
    spec: TrafficSpec,
    first: Bytes,
    data: Bytes,
}

/// What [`IdlePool::traffic`] saw.
#[derive(Debug, Clone, Copy)]
pub struct TrafficDone {
    pub connections: u64,
    pub secs: f64,
}

/// Pinning websockets, opened at a rate and held idle until [`IdlePool::close`].
pub struct IdlePool {
    target: Target,
    stop: CancellationToken,
    tracker: TaskTracker,
    counters: Arc<PoolCounters>,
    /// Handshakes in flight at once.
    handshakes: Arc<Semaphore>,
    /// Traffic orders to the open websockets, and how many may send at once.
    orders: watch::Sender<Option<TrafficOrder>>,
    traffic_slots: Arc<Semaphore>,
    started: u64,
}

impl IdlePool {
    pub fn new(target: Target) -> IdlePool {
        IdlePool {
            target,
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            counters: Arc::default(),
            handshakes: Arc::new(Semaphore::new(256)),
            orders: watch::Sender::new(None),
            traffic_slots: Arc::new(Semaphore::new(64)),
            started: 0,
        }
    }

    /// Websockets open now.
    pub fn open(&self) -> u64 {
        self.counters.open.load(Ordering::Relaxed)
    }

    /// Attempts that failed, and closes by the other side, so far.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    pub fn closed(&self) -> u64 {
        self.counters.closed.load(Ordering::Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.counters.first_error.lock().unwrap().clone()
    }

    /// Opens websockets at `rate` per second until `n` are open (retrying failures,
    /// at most `n / 10 + 10` of them), then returns; bounded by `limit`.
    pub async fn grow_to(&mut self, n: u64, rate: f64, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let start = Instant::now();
        let first = self.started;
        let max_failures = self.failed() + n / 10 + 10;
        loop {
            let open = self.open();
            let pending = self
                .started
                .saturating_sub(open + self.failed() + self.closed());
            if open >= n {
                return Ok(());
            }
            if self.failed() > max_failures {
                return Err(format!(
                    "{} of the attempts failed (first: {})",
                    self.failed(),
                    self.first_error().unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {open} of {n} websockets open after {limit:?} ({} failed; first: {})",
                    self.failed(),
                    self.first_error().unwrap_or_default()
                ));
            }
            if open + pending < n {
                // Paced: the k-th websocket of this call starts at k / rate.
                let due = start + Duration::from_secs_f64((self.started - first) as f64 / rate);
                tokio::time::sleep_until(due).await;
                self.spawn_one();
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Every websocket open now sends `spec` (first message, traffic, ping), at most
    /// `concurrency` at a time; returns once each got its pong, bounded by `limit`.
    /// A websocket that fails or closes meanwhile fails the step.
    pub async fn traffic(
        &self,
        spec: TrafficSpec,
        concurrency: usize,
        limit: Duration,
    ) -> Result<TrafficDone, String> {
        let n = self.open();
        let done0 = self.counters.traffic_done.load(Ordering::Relaxed);
        let failed0 = self.counters.traffic_failed.load(Ordering::Relaxed);
        let closed0 = self.closed();
        // The slots: `concurrency` in all (the pool starts with 64).
        let have = self.traffic_slots.available_permits();
        if concurrency > have {
            self.traffic_slots.add_permits(concurrency - have);
        } else {
            self.traffic_slots.forget_permits(have - concurrency.max(1));
        }
        let start = Instant::now();
        self.orders.send_replace(Some(TrafficOrder {
            spec,
            first: Bytes::from(vec![0x01; spec.first]),
            data: Bytes::from(vec![0x02; spec.message.max(1)]),
        }));
        loop {
            let done = self.counters.traffic_done.load(Ordering::Relaxed) - done0;
            let failed = self.counters.traffic_failed.load(Ordering::Relaxed) - failed0;
            let closed = self.closed() - closed0;
            if failed > 0 || closed > 0 {
                return Err(format!(
                    "{failed} websocket(s) failed their traffic and {closed} closed, {done} of {n} done (first error: {})",
                    self.first_error().unwrap_or_default()
                ));
            }
            if done >= n {
                return Ok(TrafficDone {
                    connections: done,
                    secs: start.elapsed().as_secs_f64(),
                });
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "only {done} of {n} websockets done with their traffic after {limit:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn_one(&mut self) {
        self.started += 1;
        let target = self.target.clone();
        let stop = self.stop.clone();
        let counters = self.counters.clone();
        let handshakes = self.handshakes.clone();
        let mut orders = self.orders.subscribe();
        let slots = self.traffic_slots.clone();
        self.tracker.spawn(async move {
            let permit = handshakes.acquire_owned().await;
            let opened = tokio::select! {
                r = connect(&target, SMALL_READ_BUFFER) => r,
                _ = stop.cancelled() => return,
            };
            drop(permit);
            let ws = match opened {
                Ok(ws) => ws,
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    counters.first_error.lock().unwrap().get_or_insert(e);
                    return;
                }
            };
            counters.open.fetch_add(1, Ordering::Relaxed);
            let (mut sink, mut stream) = ws.split();
            let pong = Notify::new();
            // Reads everything (echoes dropped), so pings are answered; tells the
            // writer when a pong of its traffic is back.
            let reader = async {
                while let Some(m) = stream.next().await {
                    match m {
                        Ok(Message::Pong(p)) if p.starts_with(TRAFFIC_PING) => pong.notify_one(),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            };
            // Idle until a traffic order, then sends it; returns only on failure.
            let writer = async {
                loop {
                    if orders.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    let Some(order) = orders.borrow_and_update().clone() else {
                        continue;
                    };
                    let Ok(_slot) = slots.acquire().await else {
                        continue;
                    };
                    let sent = tokio::time::timeout(
                        TRAFFIC_TIMEOUT,
                        send_traffic(&mut sink, &order, &pong),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!("traffic not done within {TRAFFIC_TIMEOUT:?}"))
                    });
                    match sent {
                        Ok(()) => {
                            counters.traffic_done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counters.traffic_failed.fetch_add(1, Ordering::Relaxed);
                            counters.first_error.lock().unwrap().get_or_insert(e);
                            return;
                        }
                    }
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = reader => {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                }
                _ = writer => {}
            }
            counters.open.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Closes every websocket (with a reset) and waits (at most 20 s) for their tasks.
    pub async fn close(self) {
        self.stop.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.tracker.wait()).await;
    }
}

/// One websocket's traffic: the first message, then the traffic, each message
/// followed by a ping whose pong (which the reader signals on `pong`) is awaited
/// before the next.
async fn send_traffic(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    order: &TrafficOrder,
    pong: &Notify,
) -> Result<(), String> {
    for (i, len) in order.spec.messages().into_iter().enumerate() {
        let payload = if i == 0 {
            order.first.clone()
        } else {
            order.data.slice(..len)
        };
        sink.send(Message::Binary(payload))
            .await
            .map_err(|e| format!("sending traffic: {e}"))?;
        let mut tag = TRAFFIC_PING.to_vec();
        tag.extend_from_slice(i.to_string().as_bytes());
        sink.send(Message::Ping(tag.into()))
            .await
            .map_err(|e| format!("sending the traffic's ping: {e}"))?;
        // Only this ping is out: the next goes after its pong.
        pong.notified().await;
    }
    Ok(())
}

/// The data connection: `size` bytes every `delay`, the echoes (if any) read and dropped.
pub struct DataConnection {
    stop: CancellationToken,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl DataConnection {
    pub async fn start(target: &Target, size: usize, delay: Duration) -> Result<Self, String> {
        let ws = connect(target, LARGE_READ_BUFFER).await?;
        let stop = CancellationToken::new();
        let sent = Arc::new(AtomicU64::new(0));
        let payload = Bytes::from(vec![0x5a; size]);
        let (mut sink, mut stream) = ws.split();
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let task = tokio::spawn(async move {
            let reader = async {
                while let Some(m) = stream.next().await {
                    m.map_err(|e| format!("data connection: {e}"))?;
                }
                Err::<(), String>("data connection closed by the other side".into())
            };
            let writer = async {
                let mut tick = tokio::time::interval(delay);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    sink.send(Message::Binary(payload.clone()))
                        .await
                        .map_err(|e| format!("data connection: {e}"))?;
                    sent2.fetch_add(1, Ordering::Relaxed);
                }
            };
            tokio::select! {
                r = reader => r,
                r = writer => r,
                _ = stop2.cancelled() => Ok(()),
            }
        });
        Ok(DataConnection { stop, sent, task })
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether the connection broke (the error), or is still going.
    pub fn broken(&self) -> bool {
        self.task.is_finished()
    }

    pub async fn stop(self) -> Result<(), String> {
        self.stop.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(format!("data connection task: {e}")),
        }
    }
}

/// Opens `n` websockets, at most 64 handshakes at once.
pub async fn open_many(target: &Target, n: usize, read_buffer: usize) -> Result<Vec<Ws>, String> {
    let handshakes = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (target, handshakes) = (target.clone(), handshakes.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = handshakes.acquire_owned().await;
            connect(&target, read_buffer).await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

/// What a throughput run counted in its measured window.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub messages: u64,
    pub bytes: u64,
    pub secs: f64,
}

/// Echo throughput: every websocket keeps `window` messages of `size` bytes in flight;
/// counts the echoes of the right size that came back between `warmup` and `warmup +
/// duration`. `at_window` is called at the start and at the end of that window (to
/// read the servers' CPU time).
pub async fn throughput(
    conns: Vec<Ws>,
    size: usize,
    window: usize,
    warmup: Duration,
    duration: Duration,
    mut at_window: impl FnMut(),
) -> Result<Counted, String> {
    let stop = CancellationToken::new();
    let messages = Arc::new(AtomicU64::new(0));
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let payload = Bytes::from(vec![0xa5; size]);
    let tracker = TaskTracker::new();
    for ws in conns {
        let (mut sink, mut stream) = ws.split();
        let credit = Arc::new(Semaphore::new(window));
        let (stop_w, stop_r) = (stop.clone(), stop.clone());
        let (credit_w, credit_r) = (credit.clone(), credit);
        let (payload, messages, failure_w, failure_r) = (
            payload.clone(),
            messages.clone(),
            failure.clone(),
            failure.clone(),
        );
        tracker.spawn(async move {
            loop {
                let permit = tokio::select! {
                    p = credit_w.acquire() => p,
                    _ = stop_w.cancelled() => return,
                };
                let Ok(permit) = permit else { return };
                permit.forget();
                let sent = tokio::select! {
                    r = sink.send(Message::Binary(payload.clone())) => r,
                    _ = stop_w.cancelled() => return,
                };
                if let Err(e) = sent {
                    failure_w
                        .lock()
                        .unwrap()
                        .get_or_insert(format!("sending: {e}"));
                    stop_w.cancel();
                    return;
                }
            }
        });
        tracker.spawn(async move {
            loop {
                let m = tokio::select! {
                    m = stream.next() => m,
                    _ = stop_r.cancelled() => return,
                };
                match m {
                    Some(Ok(Message::Binary(b))) if b.len() == size => {
                        messages.fetch_add(1, Ordering::Relaxed);
                        credit_r.add_permits(1);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        failure_r
                            .lock()
                            .unwrap()
                            .get_or_insert(format!("reading: {e}"));
                        stop_r.cancel();
                        return;
                    }
                    None => {
                        failure_r
                            .lock()
                            .unwrap()
                            .get_or_insert("closed by the other side".into());
                        stop_r.cancel();
                        return;
                    }
                }
            }
        });
    }
    tracker.close();
    tokio::time::sleep(warmup).await;
    at_window();
    let (m0, t0) = (messages.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(duration).await;
    let (m1, t1) = (messages.load(Ordering::Relaxed), Instant::now());
    at_window();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    if let Some(e) = failure.lock().unwrap().clone() {
        return Err(e);
    }
    let n = m1 - m0;
    Ok(Counted {
        messages: n,
        bytes: n * size as u64,
        secs: (t1 - t0).as_secs_f64(),
    })
}

/// Round trips of a `size`-byte echo: every websocket sends one message each `every`
/// (their starts spread over the first interval) for `rounds` rounds of `round` each.
/// Returns each round's round trips in microseconds, and how many got no answer
/// within 5 s.
pub async fn latency(
    conns: Vec<Ws>,
    size: usize,
    every: Duration,
    round: Duration,
    rounds: usize,
) -> Result<(Vec<Vec<u64>>, u64), String> {
    let rounds = rounds.max(1);
    let samples: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); rounds]));
    let lost = Arc::new(AtomicU64::new(0));
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let n = conns.len().max(1);
    let start = Instant::now();
    let end = start + every + round * rounds as u32;
    // The first interval (where the starts are spread) counts in the first round.
    let round_of = move |sent: Instant| {
        let since = sent.saturating_duration_since(start + every).as_secs_f64();
        ((since / round.as_secs_f64()) as usize).min(rounds - 1)
    };
    let tracker = TaskTracker::new();
    for (i, mut ws) in conns.into_iter().enumerate() {
        let (samples, lost, failure) = (samples.clone(), lost.clone(), failure.clone());
        let payload = Bytes::from(vec![0x11; size]);
        let first = start + every.mul_f64(i as f64 / n as f64);
        tracker.spawn(async move {
            let mut tick = tokio::time::interval_at(first, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    return;
                }
                let sent = Instant::now();
                if let Err(e) = ws.send(Message::Binary(payload.clone())).await {
                    failure
                        .lock()
                        .unwrap()
                        .get_or_insert(format!("sending: {e}"));
                    return;
                }
                let answer = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Binary(b))) if b.len() == size => return Ok(()),
                            Some(Ok(_)) => continue,
                            Some(Err(e)) => return Err(format!("reading: {e}")),
                            None => return Err("closed by the other side".to_string()),
                        }
                    }
                })
                .await;
                match answer {
                    Ok(Ok(())) => samples.lock().unwrap()[round_of(sent)]
                        .push(sent.elapsed().as_micros() as u64),
                    Ok(Err(e)) => {
                        failure.lock().unwrap().get_or_insert(e);
                        return;
                    }
                    Err(_) => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    if let Some(e) = failure.lock().unwrap().clone() {
        return Err(e);
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Ok((samples, lost.load(Ordering::Relaxed)))
}

/// The `q` quantile (0..=1) of sorted values, by nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn traffic_is_the_first_message_then_the_bytes_in_messages() {
        let spec = TrafficSpec {
            first: 100,
            bytes: 400_000,
            message: 16 << 10,
        };
        let m = spec.messages();
        assert_eq!(m[0], 100);
        assert_eq!(m[1..].iter().sum::<usize>(), 400_000);
        assert_eq!(m.len(), 1 + 25);
        assert!(m[1..24].iter().all(|&l| l == 16384));
        assert_eq!(m[25], 400_000 - 24 * 16384);
        let none = TrafficSpec {
            first: 100,
            bytes: 0,
            message: 16384,
        };
        assert_eq!(none.messages(), vec![100]);
    }
}
