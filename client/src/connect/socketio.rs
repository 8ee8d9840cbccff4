//! socket.io over the dialer's websockets: the handshake that opens a socket.io
//! socket (`handshake`: engine.io's `open`, the default namespace's connect, and
//! the greeting when awaited), and what a socket says once open ([`Speech`]): its
//! payloads as `message` events, the server's pings answered, events told apart
//! from engine.io's own packets.
//!
//! The packets are `socketio_wire`'s, the ones the page speaks too.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use socketio_wire::{Packet, WireError};
use tokio_tungstenite::tungstenite::Message;

use super::{DialError, WsStream};

/// The event every payload is sent as, and the one an echoing server sends back.
pub const MESSAGE_EVENT: &str = "message";

/// What a websocket speaks once open: plain websocket messages, or socket.io.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Speech {
    /// Each payload one binary message; every text or binary message counts.
    #[default]
    Websocket,
    /// engine.io v4 / socket.io v5: each payload a `message` event (its bytes as
    /// text), the server's pings answered, only events count.
    SocketIo,
}

/// What a message from the server is, to the socket that read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// A message that counts (for socket.io, an event): its data's length, and
    /// whether it is an echo (a binary message, or a `message` event).
    Message { len: u64, echo: bool },
    /// A packet to answer with this message (socket.io's ping: its pong).
    Answer(Message),
    /// Nothing the socket acts on (websocket control frames, engine.io's own packets).
    Nothing,
    /// A text message that is no socket.io packet.
    Garbage(WireError),
}

impl Speech {
    /// socket.io when `yes`.
    pub fn socketio(yes: bool) -> Speech {
        if yes {
            Speech::SocketIo
        } else {
            Speech::Websocket
        }
    }

    /// `payload` as this speech sends it: a binary message, or a `message` event
    /// carrying its bytes as text (lossy for bytes that are not UTF-8; the
    /// client's payloads are ASCII).
    pub fn payload(self, payload: &Bytes) -> Message {
        match self {
            Speech::Websocket => Message::Binary(payload.clone()),
            Speech::SocketIo => {
                let text = String::from_utf8_lossy(payload);
                Message::text(socketio_wire::text_event(MESSAGE_EVENT, &text))
            }
        }
    }

    /// What `message` is.
    pub fn hear(self, message: &Message) -> Heard {
        match (self, message) {
            (Speech::Websocket, Message::Binary(b)) => Heard::Message {
                len: b.len() as u64,
                echo: true,
            },
            (Speech::Websocket, Message::Text(t)) => Heard::Message {
                len: t.len() as u64,
                echo: false,
            },
            (Speech::SocketIo, Message::Text(t)) => match socketio_wire::parse(t) {
                Ok(Packet::Event { name, data }) => Heard::Message {
                    len: match &data {
                        serde_json::Value::String(s) => s.len() as u64,
                        other => other.to_string().len() as u64,
                    },
                    echo: name == MESSAGE_EVENT,
                },
                Ok(Packet::Ping) => Heard::Answer(Message::text(socketio_wire::PONG)),
                Ok(_) => Heard::Nothing,
                Err(e) => Heard::Garbage(e),
            },
            _ => Heard::Nothing,
        }
    }
}

/// Opens a socket.io socket on a websocket just upgraded: reads engine.io's `open`,
/// connects the default namespace, reads its answer and, with `greeting`, the
/// server's first event. The server's pings are answered on the way. The caller
/// bounds the time it takes.
pub(super) async fn handshake(ws: &mut WsStream, greeting: bool) -> Result<(), DialError> {
    let mut opened = false;
    let mut connected = false;
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(b))) => {
                return Err(DialError::NotSocketIo {
                    got: format!("a binary message of {} bytes", b.len()),
                })
            }
            Some(Ok(Message::Close(_))) | None => return Err(DialError::ClosedBeforeGreeting),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(DialError::GreetingBroke(Box::new(e))),
        };
        let packet =
            socketio_wire::parse(&text).map_err(|e| DialError::NotSocketIo { got: e.0.clone() })?;
        let answer = match packet {
            Packet::Open { .. } if !opened => {
                opened = true;
                socketio_wire::CONNECT
            }
            _ if !opened => {
                return Err(DialError::NotSocketIo {
                    got: text.chars().take(80).collect(),
                })
            }
            Packet::Ping => socketio_wire::PONG,
            Packet::Connected { .. } => {
                if !greeting {
                    return Ok(());
                }
                connected = true;
                continue;
            }
            Packet::ConnectError(why) => return Err(DialError::Refused(why)),
            Packet::Event { .. } if connected => return Ok(()),
            Packet::Close => return Err(DialError::ClosedBeforeGreeting),
            _ => continue,
        };
        ws.send(Message::text(answer))
            .await
            .map_err(|e| DialError::GreetingBroke(Box::new(e)))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::{dial, Dial, TargetUrl};

    /// A websocket server on a free port that says `script` to the first client:
    /// its first message at once, the rest once the client has said something.
    async fn server_saying(script: Vec<Message>) -> TargetUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            for (i, m) in script.into_iter().enumerate() {
                if i == 1 && !matches!(ws.next().await, Some(Ok(_))) {
                    return;
                }
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
        TargetUrl::parse(&format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).unwrap()
    }

    async fn dial_to(script: Vec<Message>, greeting: bool) -> Result<(), DialError> {
        let mut d = Dial::new(server_saying(script).await, None, 0);
        d.greeting = greeting;
        d.timeout = std::time::Duration::from_secs(5);
        assert_eq!(d.speech, Speech::SocketIo);
        dial(&d).await.map(|_| ())
    }

    const OPEN: &str = r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;

    #[tokio::test]
    async fn a_socketio_dial_opens_the_namespace_and_waits_for_the_greeting_event() {
        let script = vec![Message::text(OPEN), Message::text(r#"40{"sid":"n"}"#)];
        dial_to(script, false).await.unwrap();
        // A ping before the namespace's answer is answered; the greeting awaited.
        let script = vec![
            Message::text(OPEN),
            Message::text("2"),
            Message::text(r#"40{"sid":"n"}"#),
            Message::text(r#"42["hello","hi"]"#),
        ];
        dial_to(script, true).await.unwrap();
    }

    #[tokio::test]
    async fn a_server_that_is_not_socketio_or_refuses_is_a_clear_error() {
        let e = dial_to(vec![Message::text("hello from a plain wss")], false)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, DialError::NotSocketIo { got } if got == "hello from a plain wss"),
            "{e:?}"
        );
        assert!(e.to_string().contains("does not speak socket.io"), "{e}");
        let e = dial_to(vec![Message::binary(vec![0u8; 3])], false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("a binary message of 3 bytes"), "{e}");
        let refused = vec![
            Message::text(OPEN),
            Message::text(r#"44{"message":"Not authorized"}"#),
        ];
        let e = dial_to(refused, false).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "the socket.io server refused the namespace \"/\": Not authorized"
        );
        // Garbage after the open packet: what came is named.
        let garbage = vec![Message::text(OPEN), Message::text("9zz")];
        let e = dial_to(garbage, false).await.unwrap_err();
        assert!(
            matches!(&e, DialError::NotSocketIo { got } if got == "9zz"),
            "{e:?}"
        );
        // The server closes before the namespace's answer.
        let e = dial_to(vec![Message::text(OPEN), Message::Close(None)], false)
            .await
            .unwrap_err();
        assert!(matches!(e, DialError::ClosedBeforeGreeting), "{e:?}");
    }

    #[test]
    fn payloads_are_message_events_or_binary_messages() {
        let payload = Bytes::from_static(b"xx\"x");
        assert_eq!(
            Speech::Websocket.payload(&payload),
            Message::Binary(payload.clone())
        );
        let sent = Speech::SocketIo.payload(&payload);
        assert_eq!(sent, Message::text(r#"42["message","xx\"x"]"#));
        // What an echoing server sends back counts its data's bytes.
        assert_eq!(
            Speech::SocketIo.hear(&sent),
            Heard::Message { len: 4, echo: true }
        );
    }

    #[test]
    fn pings_are_answered_and_engine_io_packets_do_not_count() {
        let s = Speech::SocketIo;
        assert_eq!(
            s.hear(&Message::text("2")),
            Heard::Answer(Message::text("3"))
        );
        assert_eq!(s.hear(&Message::text(r#"40{"sid":"a"}"#)), Heard::Nothing);
        assert_eq!(
            s.hear(&Message::text(r#"42["hello","hi"]"#)),
            Heard::Message {
                len: 2,
                echo: false
            }
        );
        assert!(matches!(
            s.hear(&Message::text("garbage")),
            Heard::Garbage(_)
        ));
        assert_eq!(s.hear(&Message::binary(vec![1, 2])), Heard::Nothing);
        // A plain websocket counts every message, a binary one as an echo.
        assert_eq!(
            Speech::Websocket.hear(&Message::text("2")),
            Heard::Message {
                len: 1,
                echo: false
            }
        );
        assert_eq!(
            Speech::Websocket.hear(&Message::Ping(Bytes::new())),
            Heard::Nothing
        );
    }
}
