//! The pinning connections' own traffic: once a pinning connection is open and the
//! wss has greeted it, one first message of `client_pinMessageSize` bytes (the one
//! the warp wss keeps in retain mode), then `client_pinDataBytes` bytes in messages
//! of `client_pinDataMessageSize` (the last one shorter). Nothing is paced: each
//! message is written as the socket takes it, while the connection goes on reading
//! (so echoes and pings never stall it). On socket.io each message is a `message`
//! event carrying the same bytes as text.
//!
//! The counters live in the client's [`State`](runtime::server::State), so its
//! snapshot (the `client` section) says how many connections are done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::connect::{Speech, WsStream};
use runtime::config::Config;

/// What each pinning connection sends: the sizes of its messages, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PinPlan {
    first: u64,
    data: u64,
    chunk: u64,
}

impl PinPlan {
    /// The plan of `config`; `None` when it sends nothing (the seed's scenario).
    pub fn from_config(config: &Config) -> Option<PinPlan> {
        let plan = PinPlan {
            first: config.client_pin_message_size,
            data: config.client_pin_data_bytes,
            chunk: config.client_pin_data_message_size.max(1),
        };
        (plan.first > 0 || plan.data > 0).then_some(plan)
    }

    /// Bytes one connection sends in all.
    pub fn bytes(&self) -> u64 {
        self.first + self.data
    }

    /// Messages one connection sends in all.
    pub fn messages(&self) -> u64 {
        u64::from(self.first > 0) + self.data.div_ceil(self.chunk)
    }

    /// The size of message `n` (0 for the first one sent), `None` past the last.
    fn size(&self, n: u64) -> Option<u64> {
        let n = match (self.first > 0, n) {
            (true, 0) => return Some(self.first),
            (true, n) => n - 1,
            (false, n) => n,
        };
        let sent = n.checked_mul(self.chunk)?;
        (sent < self.data).then(|| self.chunk.min(self.data - sent))
    }
}

/// What the client's pinning connections sent, shown by its snapshot.
#[derive(Debug, Default)]
pub struct PinCounters {
    /// Connections that have sent all their traffic.
    pub done: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
}

impl PinCounters {
    /// The snapshot's `client` section.
    pub fn snapshot(&self) -> snapshot::ClientTraffic {
        snapshot::ClientTraffic {
            pin_traffic_done: self.done.load(Ordering::Relaxed),
            pin_messages_sent: self.messages.load(Ordering::Relaxed),
            pin_bytes_sent: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// One connection's progress through its [`PinPlan`].
pub(super) struct PinTraffic {
    plan: PinPlan,
    /// The payloads, made once: the first message, and one full data message
    /// (sliced for the last one).
    first: Bytes,
    chunk: Bytes,
    /// Set once the wss has greeted the connection: sending may start.
    started: bool,
    /// Messages handed to the websocket so far.
    next: u64,
    /// Size of the message handed to the websocket and not yet flushed.
    in_flight: Option<u64>,
    /// How each message goes: a binary message, or a socket.io `message` event.
    speech: Speech,
}

/// What happened on a connection.
pub(super) enum Step {
    /// A message (or the end) was read.
    Received(Option<Result<Message, WsError>>),
    /// One message of pin traffic has gone out, of this many bytes; `last` when it
    /// was the connection's last.
    Sent { bytes: u64, last: bool },
    /// Sending failed.
    Failed(WsError),
}

impl PinTraffic {
    /// A connection's traffic, not started.
    pub(super) fn new(plan: &PinPlan, shared: &(Bytes, Bytes), speech: Speech) -> PinTraffic {
        PinTraffic {
            plan: plan.clone(),
            first: shared.0.clone(),
            chunk: shared.1.clone(),
            started: false,
            next: 0,
            in_flight: None,
            speech,
        }
    }

    /// The payloads every connection of `plan` shares.
    pub(super) fn payloads(plan: &PinPlan) -> (Bytes, Bytes) {
        let chunk = if plan.data > 0 {
            plan.chunk.min(plan.data)
        } else {
            0
        };
        (
            Bytes::from(vec![b'p'; plan.first as usize]),
            Bytes::from(vec![b'd'; chunk as usize]),
        )
    }

    /// Starts sending (the connection was greeted); a no-op once started.
    pub(super) fn start(&mut self) {
        self.started = true;
    }

    fn payload(&self, n: u64, size: u64) -> Bytes {
        if n == 0 && self.plan.first > 0 {
            self.first.clone()
        } else {
            self.chunk.slice(..size as usize)
        }
    }

    /// Makes progress on `ws`: reads first, then, once started, hands the next
    /// message to the websocket and flushes it.
    fn poll_send(&mut self, ws: &mut WsStream, cx: &mut Context<'_>) -> Poll<Step> {
        let mut ws = std::pin::Pin::new(ws);
        if !self.started {
            return Poll::Pending;
        }
        loop {
            if let Some(bytes) = self.in_flight {
                return match ws.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.in_flight = None;
                        Poll::Ready(Step::Sent {
                            bytes,
                            last: self.plan.size(self.next).is_none(),
                        })
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Step::Failed(e)),
                    Poll::Pending => Poll::Pending,
                };
            }
            let Some(size) = self.plan.size(self.next) else {
                return Poll::Pending;
            };
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Step::Failed(e)),
                Poll::Pending => return Poll::Pending,
            }
            let payload = self.payload(self.next, size);
            if let Err(e) = ws.as_mut().start_send(self.speech.payload(&payload)) {
                return Poll::Ready(Step::Failed(e));
            }
            self.next += 1;
            self.in_flight = Some(size);
        }
    }
}

/// The next thing that happens on `ws`: a message read, or (with `traffic`) one of
/// its messages sent.
pub(super) async fn next_step(ws: &mut WsStream, traffic: Option<&mut PinTraffic>) -> Step {
    let mut traffic = traffic;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(m) = std::pin::Pin::new(&mut *ws).poll_next(cx) {
            return Poll::Ready(Step::Received(m));
        }
        match traffic.as_deref_mut() {
            Some(t) => t.poll_send(ws, cx),
            None => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(first: u64, data: u64, chunk: u64) -> Option<PinPlan> {
        PinPlan::from_config(&Config {
            client_pin_message_size: first,
            client_pin_data_bytes: data,
            client_pin_data_message_size: chunk,
            ..Config::default()
        })
    }

    fn sizes(p: &PinPlan) -> Vec<u64> {
        (0..).map_while(|n| p.size(n)).collect()
    }

    #[test]
    fn nothing_configured_sends_nothing() {
        assert_eq!(plan(0, 0, 16384), None);
    }

    #[test]
    fn first_message_then_data_with_a_shorter_last_one() {
        let p = plan(100, 40_000, 16384).unwrap();
        assert_eq!(sizes(&p), [100, 16384, 16384, 7232]);
        assert_eq!(p.messages(), 4);
        assert_eq!(p.bytes(), 40_100);
        let p = plan(0, 32768, 16384).unwrap();
        assert_eq!(sizes(&p), [16384, 16384]);
        assert_eq!(p.messages(), 2);
        let p = plan(7, 0, 16384).unwrap();
        assert_eq!(sizes(&p), [7]);
        assert_eq!(p.messages(), 1);
    }

    #[test]
    fn payloads_cover_the_largest_message() {
        let p = plan(100, 5, 16384).unwrap();
        let (first, chunk) = PinTraffic::payloads(&p);
        assert_eq!((first.len(), chunk.len()), (100, 5));
        assert_eq!(sizes(&p), [100, 5]);
    }
}
