//! One websocket of a fleet: it reads whatever the server sends (so its pings are
//! answered and its echoes drained) and follows the fleet's orders until it closes.
//!
//! A send is paced so the server reads each message on its own, as a talking
//! client's would be read: after every message the connection sends a ping and waits
//! for its pong before the next. A server answers a ping only once it has read what
//! came before it, so the pong is the proof the message was read, whether the server
//! echoes or not.
//!
//! On socket.io ([`Speech::SocketIo`]) each message is a `message` event, the
//! server's engine.io pings are answered wherever they come (idle or sending), and
//! the websocket ping still paces the sends (a socket.io server's websocket answers
//! it once it has read the event before it). With [`Order::Send`]'s `echo`, each
//! message's echo is awaited too, before the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::connect::{DialError, Heard, Speech, WsStream};

/// Time allowed to close one websocket cleanly (close frame sent, the answer read).
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// How the pings that pace a send start.
const PING_TAG: &[u8] = b"fleet ";

/// What the connections are told to do.
#[derive(Clone)]
pub(super) enum Order {
    Idle,
    /// Send messages of these sizes, each followed by a ping whose pong is awaited,
    /// at most as many connections at once as `slots` has permits.
    Send {
        round: u64,
        sizes: Arc<Vec<usize>>,
        payload: Bytes,
        slots: Arc<Semaphore>,
        timeout: Duration,
        /// The server echoes every message: await each echo as well as the pong.
        echo: bool,
    },
    /// Close cleanly: a close frame, its answer awaited (bounded).
    Close,
}

/// Why one websocket of a fleet could not open, send, or stay open.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// It could not be opened.
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("sending a message: {0}")]
    SendMessage(#[source] Box<tungstenite::Error>),
    #[error("sending a ping: {0}")]
    SendPing(#[source] Box<tungstenite::Error>),
    #[error("websocket broke while sending: {0}")]
    BrokeWhileSending(#[source] Box<tungstenite::Error>),
    #[error("the server closed the websocket while it sent")]
    ClosedWhileSending,
    /// The pong of a message's ping did not come in time.
    #[error("no pong within {0:?} (does the server answer pings?)")]
    NoPong(Duration),
    /// The pong or the echo of a message did not come in time (echoes awaited).
    #[error("no pong and echo within {0:?} (does the server echo every message event?)")]
    NoEcho(Duration),
    /// It broke while idle.
    #[error("websocket broke: {0}")]
    Broke(#[source] Box<tungstenite::Error>),
    /// The server closed it while idle.
    #[error("the server closed the websocket")]
    Closed,
    /// Answering a socket.io ping failed.
    #[error("answering a socket.io ping: {0}")]
    Pong(#[source] Box<tungstenite::Error>),
    /// The server sent what is no socket.io packet.
    #[error(transparent)]
    Garbage(#[from] socketio_wire::WireError),
}

/// The first error any websocket of a fleet met, shown in the fleet's errors
/// (empty while there is none).
#[derive(Debug, Clone, Default)]
pub struct FirstError(Option<Arc<ConnError>>);

impl FirstError {
    /// The error, if any websocket met one.
    pub fn get(&self) -> Option<&ConnError> {
        self.0.as_deref()
    }
}

impl std::fmt::Display for FirstError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(e) => e.fmt(f),
            None => Ok(()),
        }
    }
}

/// The fleet's counters, shared by its connections.
#[derive(Default)]
pub(super) struct Counters {
    pub open: AtomicU64,
    pub attempts_failed: AtomicU64,
    /// Connections the server closed (or that broke) after they opened.
    pub closed_by_peer: AtomicU64,
    /// Of the current send round: connections done, and failed.
    pub sent: AtomicU64,
    pub send_failed: AtomicU64,
    /// Connections closed by the fleet.
    pub closed: AtomicU64,
    pub received: AtomicU64,
    /// socket.io pings answered.
    pub pings_answered: AtomicU64,
    first_error: Mutex<FirstError>,
}

impl Counters {
    /// Keeps `e` if it is the first error met; call it before counting the failure,
    /// so that a count seen has its error there.
    pub fn error(&self, e: impl Into<ConnError>) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.0.is_none() {
            first.0 = Some(Arc::new(e.into()));
        }
    }

    pub fn first_error(&self) -> FirstError {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub(super) fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// One websocket's life: reads, and follows the orders, until closed, or until
/// `stop` (the socket is then dropped as it is).
pub(super) async fn connection(
    mut ws: WsStream,
    speech: Speech,
    mut orders: watch::Receiver<Order>,
    counters: &Counters,
    stop: &CancellationToken,
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
                slots,
                timeout,
                echo,
            } if round != done_round => {
                done_round = round;
                let Ok(_slot) = slots.acquire().await else {
                    return;
                };
                let sent = tokio::select! {
                    r = tokio::time::timeout(timeout, send_paced(&mut ws, speech, Paced { sizes: &sizes, payload: &payload, echo }, counters)) => r,
                    _ = stop.cancelled() => return,
                };
                let late = if echo {
                    ConnError::NoEcho(timeout)
                } else {
                    ConnError::NoPong(timeout)
                };
                let sent = sent.unwrap_or(Err(late));
                match sent {
                    Ok(()) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.error(e);
                        counters.send_failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                continue;
            }
            _ => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = orders.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            m = ws.next() => match m {
                Some(Ok(m)) => {
                    if let Err(e) = heard(&mut ws, speech, &m, counters).await {
                        counters.error(e);
                        counters.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                Some(Err(e)) => {
                    counters.error(ConnError::Broke(Box::new(e)));
                    counters.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                None => {
                    counters.error(ConnError::Closed);
                    counters.closed_by_peer.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// What one send round sends: messages of `sizes` cut from `payload`, each echo
/// awaited when `echo`.
struct Paced<'a> {
    sizes: &'a [usize],
    payload: &'a Bytes,
    echo: bool,
}

/// Acts on a message read: counts it, answers a socket.io ping; an echo when it is
/// one (a binary message, or a socket.io `message` event).
async fn heard(
    ws: &mut WsStream,
    speech: Speech,
    m: &Message,
    counters: &Counters,
) -> Result<bool, ConnError> {
    match speech.hear(m) {
        Heard::Message { echo, .. } => {
            counters.received.fetch_add(1, Ordering::Relaxed);
            Ok(echo)
        }
        Heard::Answer(answer) => {
            ws.send(answer)
                .await
                .map_err(|e| ConnError::Pong(Box::new(e)))?;
            counters.pings_answered.fetch_add(1, Ordering::Relaxed);
            Ok(false)
        }
        Heard::Nothing => Ok(false),
        Heard::Garbage(e) => Err(e.into()),
    }
}

/// Messages of `sizes`, each followed by a ping whose pong (and, with `echo`, the
/// message's echo) comes before the next.
async fn send_paced(
    ws: &mut WsStream,
    speech: Speech,
    paced: Paced<'_>,
    counters: &Counters,
) -> Result<(), ConnError> {
    let mut echoes = 0usize;
    for (i, len) in paced.sizes.iter().enumerate() {
        ws.send(speech.payload(&paced.payload.slice(..*len)))
            .await
            .map_err(|e| ConnError::SendMessage(Box::new(e)))?;
        let mut tag = PING_TAG.to_vec();
        tag.extend_from_slice(i.to_string().as_bytes());
        ws.send(Message::Ping(tag.clone().into()))
            .await
            .map_err(|e| ConnError::SendPing(Box::new(e)))?;
        let mut ponged = false;
        while !ponged || (paced.echo && echoes <= i) {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p.as_ref() == tag.as_slice() => ponged = true,
                Some(Ok(m)) => {
                    if heard(ws, speech, &m, counters).await? {
                        echoes += 1;
                    }
                }
                Some(Err(e)) => return Err(ConnError::BrokeWhileSending(Box::new(e))),
                None => return Err(ConnError::ClosedWhileSending),
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
