//! The websocket server (`wss`): the seed's `ws` server on the slab stack.
//!
//! Every socket read goes through the `tcp` slab pool. The upgrade request is read
//! as slab views, the connection keeps what the head mode says, greets the client
//! as the seed did, then discards (or echoes) what it receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::head::KeptHead;
use crate::http::{
    read_request_head, respond, shutdown_within, write_parts_within, write_within, RequestHead,
};
use crate::ws::{self, Event, FrameReader};
use pools::{BufferPool, SlabPool};
use runtime::config::Config;
use runtime::server::{self, Limits, OpenConnection, Pools, Running, State};
use runtime::shutdown::Shutdown;
use runtime::Role;

/// Binds the wss and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> std::io::Result<Running> {
    let state = State::new(Role::Wss, config, Pools::slab_stack(config, false));
    server::check_open_files(Role::Wss, config.max_connections, 1);
    let listener = server::bind((config.bind, config.wss_port).into(), "wss").await?;
    let addr = listener.local_addr()?;
    let snapshot_addr = collector::serve_beside(&state, config, shutdown).await?;
    let limits = Arc::new(Limits::from_config(config));
    let serving = state.clone();
    shutdown.spawn(server::accept_loop(
        listener,
        shutdown.clone(),
        move |stream, peer| handle(serving.clone(), limits.clone(), stream, peer),
    ));
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

/// Longest time spent draining a peer's bytes after closing on a protocol error.
pub const LINGER: Duration = Duration::from_secs(1);
/// Most bytes drained then.
pub const LINGER_BYTES: usize = 1 << 20;

/// Serves one connection from its upgrade request to its close.
///
/// The upgrade runs in a boxed future, freed before the websocket's life starts: a
/// task is as large as the largest state its future reaches, and the open websocket,
/// idle most of its life, needs little.
async fn handle(state: Arc<State>, limits: Arc<Limits>, stream: TcpStream, peer: SocketAddr) {
    let Some(mut open) = Box::pin(upgrade(&state, &limits, stream, peer)).await else {
        return;
    };
    open.serve(state.pools.buffers(), state.echo, limits.write_timeout)
        .await;
    // The kept head goes before the connection's place.
    drop(open.kept);
    drop(open.open);
}

/// An upgraded connection: what an open websocket holds.
struct OpenWebsocket {
    stream: TcpStream,
    pool: Arc<SlabPool>,
    reader: FrameReader,
    /// Read and not answered yet.
    events: Vec<Event>,
    /// How reading the frames that came with the request went.
    head_outcome: Result<(), ws::WsError>,
    kept: KeptHead,
    open: OpenConnection,
    id: u64,
    peer: SocketAddr,
}

/// Reads the upgrade request and answers it; `None` when the connection ends there.
async fn upgrade(
    state: &Arc<State>,
    limits: &Limits,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> Option<OpenWebsocket> {
    let pool = state.pools.tcp().clone();
    let wt = limits.write_timeout;
    let request = match read_request_head(
        &pool,
        &mut stream,
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
                let _ = respond(&mut stream, status, reason, &format!("{e}\n"), wt).await;
            }
            return None;
        }
    };
    if let Err((status, reason, why)) = check_upgrade(&request) {
        tracing::debug!(%peer, "wss: refused: {why}");
        state.connections.failed_one();
        let _ = respond(&mut stream, status, reason, &format!("{why}\n"), wt).await;
        return None;
    }
    let mode = state.head_mode().expect("the wss has a head mode");
    let open = match state.admit() {
        Ok(place) => place.open(Some(mode)),
        Err(refusal) => {
            tracing::debug!(%peer, "wss: refused: {refusal}");
            let body = format!("wss: {refusal}\n");
            let _ = respond(&mut stream, 503, "Service Unavailable", &body, wt).await;
            return None;
        }
    };
    let id = server::next_connection_id();
    let kept = KeptHead::keep(mode, id, &request, state.pools.buffers(), &state.kept);
    let key = request.websocket_key.as_deref().unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut hello = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {accept}\r\n\r\n"
    )
    .into_bytes();
    let buffers = state.pools.buffers();
    let small = if buffers.chunks().is_some() {
        buffers.threshold()
    } else {
        0
    };
    let mut reader = FrameReader::new(limits.max_message_size, state.echo).keeping_under(small);
    let mut events = Vec::new();
    // The head: frame bytes that came with the request.
    let mut head_outcome = Ok(());
    let mut offset = 0;
    for chunk in &request.chunks {
        let skip = request.header_len.saturating_sub(offset).min(chunk.len());
        offset += chunk.len();
        if head_outcome.is_ok() {
            head_outcome = reader.feed(&chunk[skip..], &mut events);
        }
    }
    drop(request);
    hello.extend(ws::message_frame(
        format!("hello from wss, connection {id} (head mode {mode})").into_bytes(),
        true,
    ));
    if let Err(e) = write_within(&mut stream, &hello, wt).await {
        tracing::debug!(%peer, connection = id, "wss: {e}");
        return None;
    }
    tracing::debug!(%peer, connection = id, %mode, kept = kept.len(), "wss: websocket open");
    let mut ws = OpenWebsocket {
        stream,
        pool,
        reader,
        events,
        head_outcome,
        kept,
        open,
        id,
        peer,
    };
    // Its own size: the state the connection's task holds for it while open.
    let own = std::mem::size_of_val(&ws);
    ws.open.describe(id, Some(peer), own);
    Some(ws)
}

impl OpenWebsocket {
    /// Answers (echoing when `echo`) and reads frames until the websocket closes.
    ///
    /// While idle, the task holds this websocket and one pending read, nothing
    /// more: answering and closing, which wait on writes with timeouts, run in boxed
    /// futures made when there is something to answer or the end has come (a task
    /// is as large as the largest state its future can reach: inline, they tripled
    /// the idle connection's task).
    async fn serve(&mut self, buffers: &BufferPool, echo: bool, wt: Duration) {
        let result = self.read_and_answer(buffers, echo, wt).await;
        Box::pin(self.close(result, wt)).await;
    }

    async fn read_and_answer(
        &mut self,
        buffers: &BufferPool,
        echo: bool,
        wt: Duration,
    ) -> Result<(), ws::WsError> {
        std::mem::replace(&mut self.head_outcome, Ok(()))?;
        loop {
            if !self.events.is_empty() {
                let answering = answer(&mut self.stream, &mut self.events, buffers, echo, wt);
                if Box::pin(answering).await? {
                    return Ok(());
                }
            }
            match self.pool.read(&mut self.stream).await {
                Ok(Some(view)) => self.reader.feed(&view, &mut self.events)?,
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }

    /// Ends the connection after `result`: a clean shutdown, or a close frame with
    /// the error's code (then a bounded linger), or nothing after an I/O error.
    async fn close(&mut self, result: Result<(), ws::WsError>, wt: Duration) {
        let (peer, id) = (self.peer, self.id);
        let stream = &mut self.stream;
        match result {
            Ok(()) => shutdown_within(stream, wt).await,
            Err(ws::WsError::Io(e)) => {
                tracing::debug!(%peer, connection = id, "wss: closing: {e}");
            }
            Err(e) => {
                tracing::debug!(%peer, connection = id, "wss: closing: {e}");
                let close = ws::close_frame(e.close_code(), &e.to_string());
                if write_within(stream, &close, wt).await.is_ok() {
                    shutdown_within(stream, wt).await;
                    linger(&self.pool, stream).await;
                }
            }
        }
    }
}

/// Reads and drops what the peer still sends after a close on error, for a bounded
/// time and size, so that closing does not reset the connection (which could lose
/// the close frame on its way to the peer).
async fn linger(pool: &SlabPool, rd: &mut TcpStream) {
    let drain = async {
        let mut drained = 0;
        while let Ok(Some(view)) = pool.read(rd).await {
            drained += view.len();
            if drained >= LINGER_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Answers the events read so far (echoing messages when `echo`); true once the
/// connection is to end.
///
/// A small message becomes a buffer of the small-Buffer pool first, as each did in
/// Node's `ws` (the message concatenated into a new `Buffer`), echoed or not: the
/// short-lived buffers that share chunks with the kept copies.
async fn answer(
    wr: &mut TcpStream,
    events: &mut Vec<Event>,
    buffers: &BufferPool,
    echo: bool,
    wt: Duration,
) -> Result<bool, ws::WsError> {
    for event in events.drain(..) {
        let out = match event {
            Event::Message {
                text,
                payload: Some(payload),
                ..
            } => {
                let message = buffers
                    .pools(payload.len())
                    .then(|| buffers.copy(&[&payload]));
                if echo {
                    // The echo goes out from the payload as read: no copy into a frame.
                    let body = message.as_deref().unwrap_or(&payload);
                    let header = ws::message_header(body.len(), text);
                    write_parts_within(wr, &[&header, body], wt).await?;
                }
                continue;
            }
            Event::Message { .. } | Event::Pong => continue,
            Event::Ping(payload) => ws::pong_frame(payload),
            Event::Close(code) => {
                let code = code.map(CloseCode::from).unwrap_or(CloseCode::Normal);
                write_within(wr, &ws::close_frame(code, ""), wt).await?;
                return Ok(true);
            }
        };
        write_within(wr, &out, wt).await?;
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
    if r.has_body() {
        return Err((
            400,
            "Bad Request",
            "a websocket upgrade cannot carry a body (Content-Length or Transfer-Encoding)".into(),
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
