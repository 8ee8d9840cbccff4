//! The socket.io stack (`wss_stack: socketio`): socketioxide on warp, spoken to as a
//! socket.io client does (engine.io v4 over a websocket, `socketio_wire`), straight
//! and through the TLS proxy; what engine.io keeps of each socket's request, found
//! by the allocation registry, in each head mode; admission, echo and bad input.

mod common;

use std::net::SocketAddr;

use common::{Playground, BOUND};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot, Stack};
use socketio_wire::Packet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A socket.io socket, connected to the default namespace.
struct Sio<S> {
    ws: WebSocketStream<S>,
    greeting: String,
}

/// The next packet the server sends (pings answered on the way), within the bound.
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Packet {
    loop {
        let message = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a packet within the bound")
            .expect("the socket open")
            .expect("a message");
        let Message::Text(text) = message else {
            continue;
        };
        match socketio_wire::parse(&text).expect("a socket.io packet") {
            Packet::Ping => ws.send(Message::text(socketio_wire::PONG)).await.unwrap(),
            packet => return packet,
        }
    }
}

/// Opens a socket.io socket over `io` (a socket.io client's handshake), with one
/// extra `cookie` header of `cookie` bytes when it is not 0; returns it greeted.
async fn sio_over<S: AsyncRead + AsyncWrite + Unpin>(io: S, host: &str, cookie: usize) -> Sio<S> {
    let url = format!("ws://{host}{}", socketio_wire::WEBSOCKET_PATH);
    let mut request = url.into_client_request().unwrap();
    if cookie > 0 {
        let value = format!("c={}", "k".repeat(cookie - 2));
        request
            .headers_mut()
            .insert("cookie", value.parse().unwrap());
    }
    let (mut ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::client_async(request, io))
        .await
        .expect("the upgrade within the bound")
        .expect("a websocket");
    assert!(matches!(next(&mut ws).await, Packet::Open { .. }));
    ws.send(Message::text(socketio_wire::CONNECT))
        .await
        .unwrap();
    let mut greeting = None;
    while greeting.is_none() {
        match next(&mut ws).await {
            Packet::Connected { .. } | Packet::Other => {}
            Packet::Event { name, data } if name == "hello" => {
                greeting = Some(data.as_str().unwrap().to_string())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    Sio {
        ws,
        greeting: greeting.unwrap(),
    }
}

async fn sio(addr: SocketAddr, cookie: usize) -> Sio<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    sio_over(tcp, &addr.to_string(), cookie).await
}

async fn socketio(mode: HeadMode) -> Playground {
    Playground::start(mode, HeadMode::Drop, |c| c.wss_stack = Stack::Socketio).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_at_what_each_mode_keeps() {
    for mode in [HeadMode::Retain, HeadMode::Copy, HeadMode::Drop] {
        let pg = socketio(mode).await;
        let mut socks = Vec::new();
        for _ in 0..4 {
            socks.push(sio(pg.wss.addr, 2000).await);
        }
        println!("{}", socks[0].greeting);
        let snap: Snapshot = pg.snapshot(&pg.wss).await;
        println!("{mode}: {:#?}", snap.pinned_allocations);
    }
}
