//! The load client, the same for every stack: websockets over TLS to a proxy on
//! 127.0.0.1, trusting the bench's certificate for `localhost`, opened and held by the
//! client's own engine ([`client::fleet`], which `client audit` drives too).
//!
//! Each websocket is opened with TCP + TLS + the websocket handshake, then waits for
//! the server's greeting (so a connection counts as open only once the wss behind the
//! proxy has it too). Its socket closes with a reset (`SO_LINGER` 0), so a run leaves
//! no client ports in TIME_WAIT for the next stack.
//!
//! - [`IdlePool`]: pinning connections opened at a rate and held idle (a [`Fleet`]);
//!   on [`IdlePool::traffic`] each sends a first message and its own traffic, then
//!   goes idle again.
//! - [`DataConnection`]: sends `size` bytes every `delay`, reading what comes back.
//! - [`throughput`]: 64 KiB echo over N connections, a window of messages in flight.
//! - [`latency`]: a small echo from every connection once a second, round trips timed.
//!
//! The last three are the bench's own measurements; they open their websockets with
//! the same [`dial`].

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use client::fleet::{dial, traffic_sizes, Dial, Fleet, TargetUrl, Traffic};
use client::WsStream;
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client websocket over TLS.
pub type Ws = WsStream;

/// Time allowed to open one websocket and get its greeting.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Read buffer of idle and latency connections (as our own client's): small, since
/// thousands are held.
pub const SMALL_READ_BUFFER: usize = 4 << 10;

/// Read buffer of throughput and data connections.
pub const LARGE_READ_BUFFER: usize = 128 << 10;

/// Largest message accepted from the servers.
const MAX_MESSAGE: usize = 64 << 20;

/// Where the client connects: a TLS proxy on 127.0.0.1, or (`tls` `None`) a wss
/// straight, in plain ws.
#[derive(Clone)]
pub struct Target {
    pub port: u16,
    pub tls: Option<Arc<ClientConfig>>,
}

impl Target {
    /// The URL each websocket opens: `wss://localhost:PORT/`, or `ws://` without TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://localhost:{}/", self.port)
    }

    /// How each websocket to the proxy (or the wss) is opened: [`Target::url`]
    /// connected on 127.0.0.1, greeting awaited, reset on close.
    pub fn dial(&self, read_buffer: usize) -> Dial {
        let target = TargetUrl::parse(&self.url()).expect("a valid URL");
        Dial {
            connect_to: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            read_buffer,
            greeting: true,
            reset: true,
            timeout: OPEN_TIMEOUT,
            ..Dial::new(target, self.tls.clone(), MAX_MESSAGE)
        }
    }
}

/// Opens one websocket through the proxy and reads the server's greeting.
pub async fn connect(target: &Target, read_buffer: usize) -> Result<Ws> {
    dial(&target.dial(read_buffer))
        .await
        .map_err(|e| anyhow!(e))
}

/// What each websocket of a pool sends on [`IdlePool::traffic`]: `first` once, then
/// `bytes` in messages of `message` bytes; each message followed by a ping whose pong
/// comes before the next. Paced so, the wss reads each message on its own (a client
/// that talks, as `native/tests/warp_pinning.rs` does), not a burst that lands in one
/// read.
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
        out.extend(traffic_sizes(self.bytes, self.message));
        out
    }
}

/// Time one websocket's traffic may take, first message to pong.
pub const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(120);

/// What [`IdlePool::traffic`] saw.
#[derive(Debug, Clone, Copy)]
pub struct TrafficDone {
    pub connections: u64,
    pub secs: f64,
}

/// Pinning websockets, opened at a rate and held idle until [`IdlePool::close`]: a
/// [`Fleet`] with the bench's bounds.
pub struct IdlePool {
    fleet: Fleet,
}

impl IdlePool {
    pub fn new(target: Target) -> IdlePool {
        IdlePool {
            fleet: Fleet::new(target.dial(SMALL_READ_BUFFER)),
        }
    }

    /// Websockets open now.
    pub fn open(&self) -> u64 {
        self.fleet.open()
    }

    /// The time [`IdlePool::grow_to`] is given to open `n` websockets at `rate` per
    /// second: the time the rate takes, and a minute more.
    pub fn open_limit(n: u64, rate: f64) -> Duration {
        Duration::from_secs_f64(n as f64 / rate + 60.0)
    }

    /// Opens websockets at `rate` per second until `n` are open (at most `n / 10 +
    /// 10` attempts may fail), then returns; bounded by `limit`.
    pub async fn grow_to(&mut self, n: u64, rate: f64, limit: Duration) -> Result<()> {
        let open = Cell::new(self.fleet.open());
        let in_time = testkit::within(limit, || {
            format!("only {} of {n} websockets open after {limit:?}", open.get())
        });
        self.fleet
            .open_to(n, rate, n / 10 + 10, in_time, |now| open.set(now))
            .await
            .map_err(|e| anyhow!(e))
    }

    /// Every websocket open now sends `spec` (first message, traffic, pings), at most
    /// `concurrency` at a time; returns once each got its last pong, bounded by
    /// `limit`. A websocket that fails or closes meanwhile fails the step.
    pub async fn traffic(
        &mut self,
        spec: TrafficSpec,
        concurrency: usize,
        limit: Duration,
    ) -> Result<TrafficDone> {
        let n = self.fleet.open();
        let done = Cell::new(0);
        let in_time = testkit::within(limit, || {
            format!(
                "only {} of {n} websockets done with their traffic after {limit:?}",
                done.get()
            )
        });
        let traffic = Traffic {
            sizes: spec.messages(),
            senders: concurrency,
            timeout: TRAFFIC_TIMEOUT,
        };
        let took = self
            .fleet
            .send(traffic, in_time, |now| done.set(now))
            .await
            .map_err(|e| anyhow!(e))?;
        Ok(TrafficDone {
            connections: n,
            secs: took.as_secs_f64(),
        })
    }

    /// Closes every websocket (with a reset) and waits (bounded) for their tasks.
    pub async fn close(self) {
        self.fleet.abort().await;
    }
}

/// The data connection: `size` bytes every `delay`, the echoes (if any) read and dropped.
pub struct DataConnection {
    stop: CancellationToken,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl DataConnection {
    pub async fn start(target: &Target, size: usize, delay: Duration) -> Result<Self> {
        let ws = connect(target, LARGE_READ_BUFFER).await?;
        let stop = CancellationToken::new();
        let sent = Arc::new(AtomicU64::new(0));
        let payload = Bytes::from(vec![0x5a; size]);
        let (mut sink, mut stream) = ws.split();
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let task = tokio::spawn(async move {
            let reader = async {
                while let Some(m) = stream.next().await {
                    m.map_err(|e| anyhow!("data connection: {e}"))?;
                }
                Err::<(), _>(anyhow!("data connection closed by the other side"))
            };
            let writer = async {
                let mut tick = tokio::time::interval(delay);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    sink.send(Message::Binary(payload.clone()))
                        .await
                        .map_err(|e| anyhow!("data connection: {e}"))?;
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

    pub async fn stop(self) -> Result<()> {
        self.stop.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(anyhow!("data connection task: {e}")),
        }
    }
}

/// Opens `n` websockets, at most 64 handshakes at once.
pub async fn open_many(target: &Target, n: usize, read_buffer: usize) -> Result<Vec<Ws>> {
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
        out.push(t.await.map_err(|e| anyhow!("{e}"))??);
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
) -> Result<Counted> {
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
        return Err(anyhow!(e));
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
) -> Result<(Vec<Vec<u64>>, u64)> {
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
        return Err(anyhow!(e));
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
