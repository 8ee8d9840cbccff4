//! A fleet of websockets held open by the hundreds or thousands: opened at a rate up
//! to a level, held idle (reading), told to send paced messages, then closed. The
//! engine of `client audit` and of the benchmark's load (`bench/`).
//!
//! Every websocket lives in its own task (`conn`) and waits for orders on a watch
//! channel: send messages, or close. Opening goes through the client's one dialer
//! ([`dial`], [`crate::connect`]), with the options the fleet's users need (a
//! greeting awaited, a reset on close). A dial speaking socket.io
//! ([`Dial::socketio`]) makes a fleet of socket.io sockets: their traffic goes as
//! `message` events and the server's pings are answered, idle or sending.

mod conn;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::conn::{get, Counters, Order};
pub use self::conn::{ConnError, FirstError};
pub use crate::connect::{dial, Dial, DialError, Speech, TargetUrl, UrlError};

/// Handshakes in flight at once.
const HANDSHAKES: usize = 256;
/// Time allowed for every websocket to close after [`Fleet::close_all`].
const CLOSE_ALL_WAIT: Duration = Duration::from_secs(30);
/// Time allowed for the tasks to end at [`Fleet::shutdown`] and [`Fleet::abort`].
const END_WAIT: Duration = Duration::from_secs(10);

/// What each websocket sends on [`Fleet::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// The sizes of its messages, in order; each is followed by a ping whose pong
    /// comes before the next.
    pub sizes: Vec<usize>,
    /// Websockets that send at once, so the kernel's buffers do not fill with
    /// traffic in flight.
    pub senders: usize,
    /// Time one websocket's messages may take, first to last pong.
    pub timeout: Duration,
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

/// Why a fleet's step failed: what happened to its websockets (with the first error
/// any of them met), or the caller's own check.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// More attempts to open a websocket failed than allowed.
    #[error(
        "{failed} attempts to open a websocket failed, {open} of {level} open (first: {first})"
    )]
    OpenFailed {
        failed: u64,
        open: u64,
        level: u64,
        first: FirstError,
    },
    /// The server closed websockets (or they broke) while the fleet opened or sent.
    #[error("the server closed {closed} websocket(s) {when} (first: {first})")]
    Closed {
        closed: u64,
        when: &'static str,
        first: FirstError,
    },
    /// Websockets could not send their traffic.
    #[error("{failed} of {of} websockets could not send (first: {first})")]
    SendFailed {
        failed: u64,
        of: u64,
        first: FirstError,
    },
    /// Websockets still open after the time allowed for closing them.
    #[error("{open} of {of} websockets still open {after:?} after they were told to close")]
    StillOpen { open: u64, of: u64, after: Duration },
    /// The caller's check failed: its own error.
    #[error(transparent)]
    Check(Box<dyn std::error::Error + Send + Sync>),
}

/// The open websockets of a fleet, and the tasks that hold them.
pub struct Fleet {
    dial: Arc<Dial>,
    counters: Arc<Counters>,
    orders: watch::Sender<Order>,
    handshakes: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
    round: u64,
    /// Await each message's echo as well as its pong ([`Fleet::await_echoes`]).
    echo: bool,
}

impl Fleet {
    pub fn new(dial: Dial) -> Fleet {
        Fleet {
            dial: Arc::new(dial),
            counters: Arc::default(),
            orders: watch::Sender::new(Order::Idle),
            handshakes: Arc::new(Semaphore::new(HANDSHAKES)),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            round: 0,
            echo: false,
        }
    }

    /// The server sends every message back (an echo server): from now on each
    /// message's echo is awaited as well as its pong before the next is sent (a
    /// message the server has processed, not only read). A server that does not
    /// echo then fails the send with a timeout.
    pub fn await_echoes(&mut self, echo: bool) {
        self.echo = echo;
    }

    /// socket.io pings the websockets have answered so far (none on plain websockets).
    pub fn pings_answered(&self) -> u64 {
        get(&self.counters.pings_answered)
    }

    /// Websockets open now.
    pub fn open(&self) -> u64 {
        get(&self.counters.open)
    }

    /// Attempts to open a websocket that failed so far.
    pub fn attempts_failed(&self) -> u64 {
        get(&self.counters.attempts_failed)
    }

    /// Websockets the server closed (or that broke) since they opened.
    pub fn closed_by_peer(&self) -> u64 {
        get(&self.counters.closed_by_peer)
    }

    /// The first error any websocket met.
    pub fn first_error(&self) -> FirstError {
        self.counters.first_error()
    }

    /// Opens websockets at `rate` per second until `level` are open. Fails when more
    /// than `allowed_failures` attempts fail in this call, when the server closes one,
    /// or when `check` (called every 100 ms: the audited processes still there? the
    /// time up?) fails; `tick` gets the count open.
    pub async fn open_to<E>(
        &mut self,
        level: u64,
        rate: f64,
        allowed_failures: u64,
        mut check: impl FnMut() -> Result<(), E>,
        mut tick: impl FnMut(u64),
    ) -> Result<(), FleetError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.orders.send_replace(Order::Idle);
        let allowed = self.attempts_failed() + allowed_failures;
        let lost0 = self.closed_by_peer();
        let start = Instant::now();
        let mut started = 0u64;
        let mut last_check = Instant::now();
        loop {
            let open = self.open();
            tick(open);
            if open >= level {
                return Ok(());
            }
            let failed = self.attempts_failed();
            if failed > allowed {
                return Err(FleetError::OpenFailed {
                    failed,
                    open,
                    level,
                    first: self.first_error(),
                });
            }
            if self.closed_by_peer() > lost0 {
                return Err(self.closed("while opening"));
            }
            if last_check.elapsed() >= Duration::from_millis(100) {
                check().map_err(|e| FleetError::Check(e.into()))?;
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

    fn closed(&self, when: &'static str) -> FleetError {
        FleetError::Closed {
            closed: self.closed_by_peer(),
            when,
            first: self.first_error(),
        }
    }

    /// Every open websocket sends `traffic`; returns once all have (how long it
    /// took). Fails when one cannot send, the server closes one, or `check` (called
    /// every 100 ms) fails; `tick` gets the count done.
    pub async fn send<E>(
        &mut self,
        traffic: Traffic,
        mut check: impl FnMut() -> Result<(), E>,
        mut tick: impl FnMut(u64),
    ) -> Result<Duration, FleetError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let n = self.open();
        let largest = traffic.sizes.iter().copied().max().unwrap_or(0);
        self.round += 1;
        self.counters.sent.store(0, Ordering::Relaxed);
        self.counters.send_failed.store(0, Ordering::Relaxed);
        let lost0 = self.closed_by_peer();
        let start = Instant::now();
        self.orders.send_replace(Order::Send {
            round: self.round,
            sizes: Arc::new(traffic.sizes),
            payload: Bytes::from(vec![0x61; largest]),
            slots: Arc::new(Semaphore::new(traffic.senders.max(1))),
            timeout: traffic.timeout,
            echo: self.echo,
        });
        loop {
            let (sent, failed) = (get(&self.counters.sent), get(&self.counters.send_failed));
            tick(sent);
            if failed > 0 {
                return Err(FleetError::SendFailed {
                    failed,
                    of: n,
                    first: self.first_error(),
                });
            }
            if self.closed_by_peer() > lost0 {
                return Err(self.closed("while they sent"));
            }
            if sent >= n {
                self.orders.send_replace(Order::Idle);
                return Ok(start.elapsed());
            }
            check().map_err(|e| FleetError::Check(e.into()))?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Closes every websocket (a close frame, its answer awaited, bounded) and waits
    /// (at most 30 s) until all are closed; `tick` gets the count closed.
    pub async fn close_all(&mut self, mut tick: impl FnMut(u64)) -> Result<(), FleetError> {
        let n = self.open();
        let closed0 = get(&self.counters.closed);
        self.orders.send_replace(Order::Close);
        let deadline = Instant::now() + CLOSE_ALL_WAIT;
        loop {
            tick(get(&self.counters.closed) - closed0);
            if self.open() == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FleetError::StillOpen {
                    open: self.open(),
                    of: n,
                    after: CLOSE_ALL_WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes every websocket cleanly and ends their tasks (at most 10 s).
    pub async fn shutdown(self) {
        self.orders.send_replace(Order::Close);
        self.end().await;
    }

    /// Drops every websocket at once, without close frames (with [`Dial::reset`],
    /// a reset each), and ends their tasks (at most 10 s).
    pub async fn abort(self) {
        self.stop.cancel();
        self.end().await;
    }

    async fn end(self) {
        self.tracker.close();
        let _ = tokio::time::timeout(END_WAIT, self.tracker.wait()).await;
    }

    /// Starts one attempt; false when no handshake slot is free.
    fn spawn_one(&self) -> bool {
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            return false;
        };
        let dial = self.dial.clone();
        let counters = self.counters.clone();
        let orders = self.orders.subscribe();
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            let opened = tokio::select! {
                r = crate::connect::dial(&dial) => r,
                _ = stop.cancelled() => return,
            };
            drop(permit);
            match opened {
                Ok(ws) => {
                    counters.open.fetch_add(1, Ordering::Relaxed);
                    conn::connection(ws, dial.speech, orders, &counters, &stop).await;
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.error(e);
                    counters.attempts_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        true
    }
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
