//! The websocket server (`wss`): the seed's `ws` server on the slab stack.
//!
//! Every socket read goes through the `tcp` slab pool. The upgrade request is read
//! as slab views, the connection keeps what the head mode says, greets the client
//! as the seed did, then discards (or echoes) what it receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::config::Config;
use crate::head::KeptHead;
use crate::http::{read_request_head, respond, RequestHead};
use crate::server::{self, State};
use crate::shutdown::Shutdown;
use crate::ws::{self, Event, FrameReader};
use crate::Role;

/// Limits a connection is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub max_message_size: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            max_header_bytes: config.max_header_bytes,
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            max_message_size: config.max_message_size,
        }
    }
}

/// A running server: where it listens, and its state.
pub struct Running {
    pub addr: SocketAddr,
    pub snapshot_addr: SocketAddr,
    pub state: Arc<State>,
}

/// Binds the wss and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> std::io::Result<Running> {
    let state = State::new(Role::Wss, config);
    let listener = server::bind((config.bind, config.wss_port).into(), "wss").await?;
    let addr = listener.local_addr()?;
    let snapshot_addr = crate::snapshot::endpoint::serve(
        (config.snapshot_bind, config.wss_heapdump_port).into(),
        state.clone(),
        shutdown.clone(),
    )
    .await?;
    let limits = Arc::new(Limits::from_config(config));
    let serving = state.clone();
    shutdown.spawn(server::accept_loop(
        listener,
        shutdown.clone(),
        move |stream, peer| handle(serving.clone(), limits.clone(), stream, peer),
    ));
    state.print_stats(shutdown);
    tracing::info!(
        "wss listening on ws://{addr} (head mode {}, echo {}); snapshot on http://{snapshot_addr}/snapshot",
        state.head_mode().map(|m| m.as_str()).unwrap_or("-"),
        state.echo
    );
    Ok(Running {
        addr,
        snapshot_addr,
        state,
    })
}

/// Serves one connection from its upgrade request to its close.
async fn handle(state: Arc<State>, limits: Arc<Limits>, stream: TcpStream, peer: SocketAddr) {
    let pool = state.pool("tcp").expect("the wss has a tcp pool").clone();
    let (mut rd, mut wr) = stream.into_split();
    let request = match read_request_head(
        &pool,
        &mut rd,
        limits.max_header_bytes,
        limits.header_timeout,
    )
    .await
    {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(%peer, "wss: {e}");
            if let Some((status, reason)) = e.response() {
                state.connections.failed_one();
                let _ = respond(&mut wr, status, reason, &format!("{e}\n")).await;
            }
            return;
        }
    };
    if let Err((status, reason, why)) = check_upgrade(&request) {
        tracing::debug!(%peer, "wss: refused: {why}");
        state.connections.failed_one();
        let _ = respond(&mut wr, status, reason, &format!("{why}\n")).await;
        return;
    }
    let mode = state.head_mode().expect("the wss has a head mode");
    let open = state.connections.open_one(Some(mode));
    let id = server::next_connection_id();
    let kept = KeptHead::keep(mode, id, &request);
    let key = request.websocket_key.as_deref().unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {accept}\r\n\r\n"
    );
    let mut reader = FrameReader::new(limits.max_message_size, state.echo);
    let mut events = Vec::new();
    // The head: frame bytes that came with the request.
    let mut outcome = Ok(());
    let mut offset = 0;
    for chunk in &request.chunks {
        let skip = request.header_len.saturating_sub(offset).min(chunk.len());
        offset += chunk.len();
        if outcome.is_ok() {
            outcome = reader.feed(&chunk[skip..], &mut events);
        }
    }
    drop(request);
    let greeting = ws::message_frame(
        format!("hello from wss, connection {id} (head mode {mode})").into_bytes(),
        true,
    );
    let written = async {
        wr.write_all(response.as_bytes()).await?;
        wr.write_all(&greeting).await
    }
    .await;
    if written.is_err() {
        return;
    }
    tracing::debug!(%peer, connection = id, %mode, kept = kept.len(), "wss: websocket open");
    let result: Result<(), ws::WsError> = async {
        outcome?;
        loop {
            if answer(&mut wr, &mut events).await? {
                return Ok(());
            }
            match pool.read(&mut rd).await {
                Ok(Some(view)) => reader.feed(&view, &mut events)?,
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(%peer, connection = id, "wss: closing: {e}");
        let _ = wr
            .write_all(&ws::close_frame(e.close_code(), &e.to_string()))
            .await;
    }
    let _ = wr.shutdown().await;
    drop(kept);
    drop(open);
}

/// Answers the events read so far; true once the connection is to end.
async fn answer(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    events: &mut Vec<Event>,
) -> Result<bool, ws::WsError> {
    for event in events.drain(..) {
        let out = match event {
            Event::Message {
                text,
                payload: Some(payload),
                ..
            } => ws::message_frame(payload, text),
            Event::Message { .. } | Event::Pong => continue,
            Event::Ping(payload) => ws::pong_frame(payload),
            Event::Close(code) => {
                let code = code.map(CloseCode::from).unwrap_or(CloseCode::Normal);
                let _ = wr.write_all(&ws::close_frame(code, "")).await;
                return Ok(true);
            }
        };
        if wr.write_all(&out).await.is_err() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a request is a websocket upgrade the server accepts; else the answer due.
fn check_upgrade(r: &RequestHead) -> Result<(), (u16, &'static str, String)> {
    if !r.upgrade_websocket {
        return Err(match &r.upgrade_other {
            Some(other) => (
                400,
                "Bad Request",
                format!("cannot upgrade to {other:?}: only websocket"),
            ),
            None => (
                426,
                "Upgrade Required",
                "this is the playground's websocket server: connect with a websocket".into(),
            ),
        });
    }
    if r.method != "GET" {
        return Err((
            400,
            "Bad Request",
            format!("websocket upgrade with method {}", r.method),
        ));
    }
    if !r.connection_upgrade {
        return Err((
            400,
            "Bad Request",
            "Connection header does not say upgrade".into(),
        ));
    }
    if r.websocket_version.as_deref() != Some("13") {
        return Err((
            426,
            "Upgrade Required",
            "Sec-WebSocket-Version must be 13".into(),
        ));
    }
    match r.websocket_key.as_deref() {
        Some(key) if key.len() == 24 && key.ends_with("==") => Ok(()),
        _ => Err((
            400,
            "Bad Request",
            "missing or malformed Sec-WebSocket-Key".into(),
        )),
    }
}
