//! The audit's websockets: opened at a rate up to a level, told to send, then closed.
//!
//! Every websocket lives in its own task that reads whatever the server sends (so
//! its pings are answered and its echoes drained) and waits for orders on a watch
//! channel: send messages, or close. A send is paced so the server reads each
//! message on its own, as a talking client's would be read: after every message the
//! connection sends a ping and waits for its pong before the next. A server answers
//! a ping only once it has read what came before it, so the pong is the proof the
//! message was read, whether the server echoes or not. At most [`SENDERS`]
//! connections send at once, so the kernel's buffers do not fill with traffic in
//! flight while the figures are read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

use super::target::{self, TargetUrl};
use crate::client::connect::WsStream;

/// Connections that send at once.
pub const SENDERS: usize = 64;
/// Handshakes in flight at once.
const HANDSHAKES: usize = 256;
/// Time one connection's messages of one step may take, first to last pong.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed to close one websocket cleanly (close frame sent, the answer read).
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// How the pings that pace a send start.
pub const PING_TAG: &[u8] = b"audit ";

/// What the connections are told to do.
#[derive(Clone)]
enum Order {
    Idle,
    /// Send messages of these sizes, each followed by a ping whose pong is awaited.
    Send {
        round: u64,
        sizes: Arc<Vec<usize>>,
        payload: Bytes,
    },
    Close,
}

#[derive(Default)]
struct Counters {
    open: AtomicU64,
    attempts_failed: AtomicU64,
    /// Connections the server closed (or that broke) after they opened.
    closed_by_peer: AtomicU64,
    /// Of the current send round: connections done, and failed.
    sent: AtomicU64,
    send_failed: AtomicU64,
    /// Connections closed by the audit.
    closed: AtomicU64,
    received: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, e: String) {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }

    fn first_error(&self) -> String {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The sizes of the messages that carry `bytes` in messages of at most `message`.
pub fn traffic_sizes(bytes: usize, message: usize) -> Vec<usize> {
    let step = message.max(1);
    let mut out = Vec::with_capacity(bytes / step + 1);
    let mut left = bytes;
    while left > 0 {
        out.push(left.min(step));
        left -= left.min(step);
    }
    out
}

/// The open websockets of an audit.
pub struct Conns {
    target: TargetUrl,
    tls: Option<Arc<ClientConfig>>,
    max_message: usize,
    counters: Arc<Counters>,
    orders: watch::Sender<Order>,
    senders: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    tracker: TaskTracker,
    round: u64,
}

impl Conns {
    pub fn new(target: TargetUrl, tls: Option<Arc<ClientConfig>>, max_message: usize) -> Conns {
        Conns {
            target,
            tls,
            max_message,
            counters: Arc::default(),
            orders: watch::Sender::new(Order::Idle),
            senders: Arc::new(Semaphore::new(SENDERS)),
            handshakes: Arc::new(Semaphore::new(HANDSHAKES)),
            tracker: TaskTracker::new(),
            round: 0,
        }
    }

    /// Websockets open now.
    pub fn open(&self) -> u64 {
        get(&self.counters.open)
    }

    /// Websockets the server closed (or that broke) since they opened.
    pub fn closed_by_peer(&self) -> u64 {
        get(&self.counters.closed_by_peer)
    }

    /// The first error any connection met.
    pub fn first_error(&self) -> String {
        self.counters.first_error()
    }

    /// Opens websockets at `rate` per second until `level` are open. Fails when
    /// more than `level / 100 + 2` attempts fail, or when `check` (called every
    /// 100 ms: the audited processes still there?) fails; `tick` gets the count open.
    pub async fn open_to(
        &mut self,
        level: u64,
        rate: f64,
        mut check: impl FnMut() -> Result<(), String>,
        mut tick: impl FnMut(u64),
    ) -> Result<(), String> {
        self.orders.send_replace(Order::Idle);
        let allowed = get(&self.counters.attempts_failed) + level / 100 + 2;
        let start = Instant::now();
        let mut started = 0u64;
        let mut last_check = Instant::now();
        loop {
            let open = self.open();
            tick(open);
            if open >= level {
                return Ok(());
            }
            let failed = get(&self.counters.attempts_failed);
            if failed > allowed {
                return Err(format!(
                    "{failed} attempts to open a websocket failed, {open} of {level} open (first: {})",
                    self.first_error()
                ));
            }
            if self.closed_by_peer() > 0 {
                return Err(self.lost_message("while opening"));
            }
            if last_check.elapsed() >= Duration::from_millis(100) {
                check()?;
                last_check = Instant::now();
            }
            let in_flight = HANDSHAKES - self.handshakes.available_permits();
            if open + (in_flight as u64) < level {
                let due = start + Duration::from_secs_f64(started as f64 / rate);
                if Instant::now() >= due && self.spawn_one() {
                    started += 1;
                    continue;
                }
                let wait = due.saturating_duration_since(Instant::now());
                tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn lost_message(&self, when: &str) -> String {
        format!(
            "the server closed {} websocket(s) {when} (first: {})",
            self.closed_by_peer(),
            self.first_error()
        )
    }

    /// Every open websocket sends messages of `sizes` (each followed by a ping whose
    /// pong it awaits); returns once all have, bounded by [`SEND_TIMEOUT`] each.
    /// `tick` gets the count done; `check` is called every 100 ms.
    pub async fn send(
        &mut self,
        sizes: Vec<usize>,
        mut check: impl FnMut() -> Result<(), String>,
        mut tick: impl FnMut(u64),
    ) -> Result<(), String> {
        let n = self.open();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        self.round += 1;
        self.counters.sent.store(0, Ordering::Relaxed);
        self.counters.send_failed.store(0, Ordering::Relaxed);
        let lost0 = self.closed_by_peer();
        self.orders.send_replace(Order::Send {
            round: self.round,
            sizes: Arc::new(sizes),
            payload: Bytes::from(vec![0x61; largest]),
        });
        loop {
            let (sent, failed) = (get(&self.counters.sent), get(&self.counters.send_failed));
            tick(sent);
            if failed > 0 {
                return Err(format!(
                    "{failed} of {n} websockets could not send (first: {})",
                    self.first_error()
                ));
            }
            if self.closed_by_peer() > lost0 {
                return Err(self.lost_message("while they sent"));
            }
            if sent >= n {
                self.orders.send_replace(Order::Idle);
                return Ok(());
            }
            check()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Closes every websocket (a close frame, its answer awaited, bounded) and waits
    /// (at most 30 s) until all are closed; `tick` gets the count closed.
    pub async fn close_all(&mut self, mut tick: impl FnMut(u64)) -> Result<(), String> {
        let n = self.open();
        let closed0 = get(&self.counters.closed);
        self.orders.send_replace(Order::Close);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            tick(get(&self.counters.closed) - closed0);
            if self.open() == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} of {n} websockets still open 30 s after they were told to close",
                    self.open()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends every connection task (at most 10 s).
    pub async fn shutdown(self) {
        self.orders.send_replace(Order::Close);
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }

    /// Starts one attempt; false when no handshake slot is free.
    fn spawn_one(&self) -> bool {
        let target = self.target.clone();
        let tls = self.tls.clone();
        let counters = self.counters.clone();
        let orders = self.orders.subscribe();
        let senders = self.senders.clone();
        let handshakes = self.handshakes.clone();
        let max_message = self.max_message;
        let Ok(permit) = handshakes.try_acquire_owned() else {
            return false;
        };
        self.tracker.spawn(async move {
            let opened = target::open(&target, tls.as_ref(), max_message).await;
            drop(permit);
            match opened {
                Ok(ws) => {
                    counters.open.fetch_add(1, Ordering::Relaxed);
                    connection(ws, orders, &counters, &senders).await;
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.attempts_failed.fetch_add(1, Ordering::Relaxed);
                    counters.error(e);
                }
            }
        });
        true
    }
}

/// One websocket's life: reads, and follows the orders, until closed.
async fn connection(
    mut ws: WsStream,
    mut orders: watch::Receiver<Order>,
    counters: &Counters,
    senders: &Semaphore,
) {
    let mut done_round = 0;
    loop {
        let order = orders.borrow_and_update().clone();
        match order {
            Order::Close => {
                close(&mut ws).await;
                counters.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Order::Send {
                round,
                sizes,
                payload,
            } if round != done_round => {
                done_round = round;
                let Ok(_slot) = senders.acquire().await else {
                    return;
                };
                let sent = tokio::time::timeout(
                    SEND_TIMEOUT,
                    send_paced(&mut ws, &sizes, &payload, counters),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no pong within {SEND_TIMEOUT:?} (does the server answer pings?)"
                    ))
                });
                match sent {
                    Ok(()) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.send_failed.fetch_add(1, Ordering::Relaxed);
                        counters.error(e);
                        return;
                    }
                }
                continue;
            }
            _ => {}
        }
        tokio::select! {
            changed = orders.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            m = ws.next() => match m {
                Some(Ok(_)) => {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    counters.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                    counters.error(format!("websocket broke: {e}"));
                    return;
                }
                None => {
                    counters.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                    counters.error("the server closed the websocket".into());
                    return;
                }
            }
        }
    }
}

/// Messages of `sizes`, each followed by a ping whose pong comes before the next.
async fn send_paced(
    ws: &mut WsStream,
    sizes: &[usize],
    payload: &Bytes,
    counters: &Counters,
) -> Result<(), String> {
    for (i, len) in sizes.iter().enumerate() {
        ws.send(Message::Binary(payload.slice(..*len)))
            .await
            .map_err(|e| format!("sending a message: {e}"))?;
        let mut tag = PING_TAG.to_vec();
        tag.extend_from_slice(i.to_string().as_bytes());
        ws.send(Message::Ping(tag.clone().into()))
            .await
            .map_err(|e| format!("sending a ping: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p.as_ref() == tag.as_slice() => break,
                Some(Ok(_)) => {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(e)) => return Err(format!("websocket broke while sending: {e}")),
                None => return Err("the server closed the websocket while it sent".into()),
            }
        }
    }
    Ok(())
}

/// A clean close: the close frame, then what comes until the server closes (bounded).
async fn close(ws: &mut WsStream) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_cut_in_messages() {
        let s = traffic_sizes(256 << 10, 16 << 10);
        assert_eq!(s.len(), 16);
        assert!(s.iter().all(|&l| l == 16 << 10));
        let s = traffic_sizes(100_000, 16384);
        assert_eq!(s.iter().sum::<usize>(), 100_000);
        assert_eq!(*s.last().unwrap(), 100_000 - 6 * 16384);
        assert!(traffic_sizes(0, 16384).is_empty());
    }
}
