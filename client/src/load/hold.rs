//! One websocket held open: read until it closes or the run stops, the data
//! connection's payload sent on its interval, a pinning connection's own traffic
//! sent once greeted, and a bounded clean close.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::ctx::Ctx;
use crate::connect::{Heard, WsStream};
use crate::pin_traffic::{self, PinTraffic, Step};

/// Time allowed to close one websocket cleanly (close frame sent, answer read).
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// How a connection's task ended.
pub(super) enum End {
    /// The run is over; the socket was closed by us.
    Stopped,
    /// The other side closed it, or it broke.
    Closed(String),
}

/// Reads a websocket until it closes or the run stops; with a payload (of
/// `client_dataSize` bytes), also sends it every `client_dataDelay` ms; with
/// `traffic`, sends it once the first message (the wss's greeting) has arrived.
/// On socket.io, only events count as messages and the server's pings are answered.
pub(super) async fn hold(
    ctx: &Ctx,
    mut ws: WsStream,
    payload: Option<&Message>,
    mut traffic: Option<&mut PinTraffic>,
) -> End {
    let c = &ctx.counters;
    let pins = &ctx.pin_traffic;
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
                Step::Received(Some(Ok(m))) => match ctx.dial.speech.hear(&m) {
                    Heard::Message { len, echo } => {
                        c.received.fetch_add(1, Ordering::Relaxed);
                        // The greeting: the connection's own traffic may start.
                        if let Some(t) = traffic.as_deref_mut() {
                            t.start();
                        }
                        if payload.is_some() && echo {
                            c.data_received.fetch_add(len, Ordering::Relaxed);
                        }
                    }
                    Heard::Answer(answer) => {
                        // socket.io's ping: its pong keeps an idle socket open.
                        if let Err(e) = ws.send(answer).await {
                            return End::Closed(format!("answering a ping failed: {e}"));
                        }
                        c.pings_answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Heard::Nothing => {}
                    Heard::Garbage(e) => return End::Closed(e.to_string()),
                },
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
                        c.data_bytes.fetch_add(ctx.config.client_data_size, Ordering::Relaxed);
                    }
                    Err(e) => return End::Closed(format!("sending failed: {e}")),
                }
            }
        }
    }
}

/// The next tick of an interval, or never without one.
pub(super) async fn next_tick(tick: &mut Option<Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Closes a websocket: a close frame, then reading until the server's answer, bounded.
pub(super) async fn close(ws: &mut WsStream) {
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
