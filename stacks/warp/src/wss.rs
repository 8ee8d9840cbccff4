//! The wss on the warp stack: a `warp::ws()` route, served by hyper's HTTP/1
//! connections from the playground's own accept loop.
//!
//! Users get what the slab wss gives them: the greeting, `wss_echo`, the head
//! modes (switchable at run time), the memory guard and the connection cap (503),
//! a clear 426 for requests that are not websockets, the stats line, the snapshot
//! ports and a clean shutdown.
//!
//! # What a connection keeps, and which buffer that pins
//!
//! - **Header values** (`header <name>`): hyper reads a connection into one
//!   `BytesMut` (`Buffered::read_buf`, hyper-1.12.0 `src/proto/h1/io.rs`,
//!   `poll_read_from_io` reserves `INIT_BUFFER_SIZE`, 8192 bytes, at the first
//!   read); `Server::parse` (`src/proto/h1/role.rs`) splits the request head off it
//!   (`buf.split_to(len).freeze()`) and makes every header value a slice of it
//!   (`HeaderValue::from_maybe_shared_unchecked(slice.slice(..))`). Cloning the
//!   request's `HeaderMap` (`warp::header::headers_cloned()`) clones those `Bytes`:
//!   keeping one keeps hyper's whole read buffer after the upgrade.
//! - **The first message** (`first message`): tungstenite reads frames into one
//!   `BytesMut` of `read_buffer_size` (128 KiB by default; `FrameCodec::new`,
//!   tungstenite-0.29.0 `src/protocol/frame/mod.rs`); `FrameCodec::read_frame` hands
//!   each frame's payload out as `self.in_buffer.split_to(len)` ... `payload.freeze()`,
//!   and `WebSocketContext::read_message_frame` (`src/protocol/mod.rs`) makes a
//!   single-frame message of it without copying (`Message::Binary(payload)`,
//!   `Message::Text(payload.try_into()?)`). (The `ReadBuffer` of `src/buffer.rs`
//!   serves only the client handshake.) When the buffer runs out of room,
//!   `BytesMut::reserve` (bytes-1.12.2 `reserve_inner`) reuses it in place only if
//!   no other handle shares it; a kept message does, so a new buffer is allocated
//!   (of at least 64 KiB: bytes caps the "original capacity" it remembers there)
//!   and the kept message keeps the old one.
//!
//! `retain` keeps those views (the header map as warp hands it, the message's
//! payload as received), `copy` owned copies of the same bytes, `drop` nothing.
//! Every kept part is registered in [`runtime::kept::KeptParts`], so the
//! snapshot names the allocation it lies in.
//!
//! # The read buffer
//!
//! warp 0.4's `Ws` has no setter for tungstenite's `read_buffer_size`. With the
//! default (`ws_read_buffer_size` 131072) the route finishes with `Ws::on_upgrade`
//! as users write it; with any other size, or with `ws_idle_release_ms` set, it
//! takes the upgrade below `warp::ws()` (see `upgrade_below_warp`), where a quiet
//! websocket can give back the buffers bursts grew ([`crate::idle_release`]).
//!
//! # Bad input
//!
//! Plain requests get 426; malformed upgrades get warp's own rejections (400 for a
//! missing or wrong `connection`, `upgrade`, `sec-websocket-version` or
//! `sec-websocket-key` header, 405 for a method other than GET); unparsable bytes
//! get hyper's 400, a head over `max_header_bytes` hyper's 431; a head not read
//! within `header_timeout_ms` is closed by hyper; a message over
//! `max_message_size` is closed with 1009.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use snapshot::HeadMode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite_warp::tungstenite;
use tokio_tungstenite_warp::WebSocketStream;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use crate::idle_release::{self, FrameBoundary, Releasable, Released};
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use runtime::config::Config;
use runtime::kept::{KeptPart, KeptParts};
use runtime::server::http1::{self, HYPER_MIN_BUF_SIZE};
use runtime::server::Running;
use runtime::server::{self, OpenConnection, State};
use runtime::shutdown::Shutdown;
use runtime::Role;

/// tungstenite's default read buffer, the one `warp::ws()` gives every websocket.
pub const TUNGSTENITE_READ_BUFFER: usize = 128 << 10;

/// Longest wait for the peer's close reply once the wss has sent its close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What the route and every websocket share.
struct Ctx {
    state: Arc<State>,
    shutdown: Shutdown,
    read_buffer_size: usize,
    max_message_size: usize,
    write_timeout: Duration,
    /// `ws_idle_release_ms`, when set: how long a websocket stays quiet before it
    /// gives back its buffers.
    idle_release: Option<Duration>,
}

impl Ctx {
    /// tungstenite's settings for a websocket taken below `warp::ws()`.
    fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }

    /// Whether websockets are taken below `warp::ws()`: warp's own cannot be given
    /// another read buffer, nor made anew.
    fn below_warp(&self) -> bool {
        self.read_buffer_size != TUNGSTENITE_READ_BUFFER || self.idle_release.is_some()
    }
}

/// Binds the warp wss and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> std::io::Result<Running> {
    let state = State::new(Role::Wss, config, server::Pools::default());
    server::check_open_files(Role::Wss, config.max_connections, 1);
    let listener = server::bind((config.bind, config.wss_port).into(), "wss").await?;
    let addr = listener.local_addr()?;
    let snapshot_addr = collector::serve_beside(&state, config, shutdown).await?;
    let ctx = Arc::new(Ctx {
        state: state.clone(),
        shutdown: shutdown.clone(),
        read_buffer_size: config.ws_read_buffer_size,
        max_message_size: config.max_message_size,
        write_timeout: Duration::from_millis(config.write_timeout_ms),
        idle_release: (config.ws_idle_release_ms > 0)
            .then(|| Duration::from_millis(config.ws_idle_release_ms)),
    });
    if config.max_header_bytes < HYPER_MIN_BUF_SIZE {
        tracing::info!(
            "max_header_bytes {} is below hyper's smallest read buffer: the warp wss reads heads of up to {HYPER_MIN_BUF_SIZE} bytes",
            config.max_header_bytes
        );
    }
    let http = http1::builder(config);
    let service = TowerToHyperService::new(warp::service(routes(ctx.clone())));
    let serving = ctx.clone();
    shutdown.spawn(server::accept_loop(
        listener,
        shutdown.clone(),
        move |stream, peer| {
            // Spawned here, not as the accept loop's task: that one is dropped at
            // shutdown, and a connection in HTTP ends gracefully (hyper's
            // graceful_shutdown), within SHUTDOWN_GRACE.
            let conn = http
                .serve_connection(TokioIo::new(stream), service.clone())
                .with_upgrades();
            let ctx = serving.clone();
            serving
                .shutdown
                .spawn(async move { http1::serve(conn, peer, &ctx.state, &ctx.shutdown).await });
            std::future::ready(())
        },
    ));
    tracing::info!(
        "wss (warp stack: warp::ws on hyper; websocket read buffer {} bytes{}{}) listening on ws://{addr} \
         (head mode {}, echo {}); snapshot on http://{snapshot_addr}/snapshot",
        config.ws_read_buffer_size,
        match ctx.idle_release {
            Some(after) => format!(", buffers given back after {after:?} quiet"),
            None => String::new(),
        },
        if ctx.below_warp() {
            ", upgrade taken below warp::ws()"
        } else {
            ""
        },
        state.head_mode().map(|m| m.as_str()).unwrap_or("-"),
        state.echo
    );
    Ok(Running {
        addr,
        snapshot_addr,
        state,
    })
}

/// The route: the websocket, else 426 for requests that are no upgrade at all.
fn routes(
    ctx: Arc<Ctx>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let with_ctx = warp::any().map(move || ctx.clone());
    // The OnUpgrade is taken (cloned) before warp::ws() removes it from the request,
    // for the upgrade below warp::ws().
    let websocket = warp::ext::optional::<OnUpgrade>()
        .and(warp::ws())
        .and(warp::header::headers_cloned())
        .and(with_ctx.clone())
        .map(accept);
    let plain = warp::header::headers_cloned().and(with_ctx).and_then(
        |headers: HeaderMap, ctx: Arc<Ctx>| async move {
            ctx.state.connections.failed_one();
            if headers.contains_key(header::UPGRADE) {
                // An upgrade warp::ws() refused: its rejection answers (counted
                // failed here, as the slab wss counts the upgrades it refuses).
                return Err(warp::reject::not_found());
            }
            Ok(text(
                StatusCode::UPGRADE_REQUIRED,
                "this is the playground's websocket server: connect with a websocket\n".into(),
            ))
        },
    );
    websocket.or(plain).unify()
}

/// A text answer that closes the connection.
fn text(status: StatusCode, body: String) -> Response {
    let reply = warp::reply::with_status(body, status);
    warp::reply::with_header(reply, header::CONNECTION, "close").into_response()
}

/// Admits a websocket upgrade and answers it (101), or refuses it (503).
fn accept(
    on_upgrade: Option<OnUpgrade>,
    ws: warp::ws::Ws,
    headers: HeaderMap,
    ctx: Arc<Ctx>,
) -> Response {
    let state = &ctx.state;
    let Some(on_upgrade) = on_upgrade else {
        state.connections.failed_one();
        return text(
            StatusCode::BAD_REQUEST,
            "this request cannot be upgraded (HTTP/1.1 GET with Connection: upgrade)\n".into(),
        );
    };
    let mode = state.head_mode().expect("the wss has a head mode");
    let open = match state.admit() {
        Ok(place) => place.open(Some(mode)),
        Err(refusal) => {
            tracing::debug!("wss: refused: {refusal}");
            return text(StatusCode::SERVICE_UNAVAILABLE, format!("wss: {refusal}\n"));
        }
    };
    let id = server::next_connection_id();
    let accept_key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| tungstenite::handshake::derive_accept_key(key.as_bytes()));
    let mut conn = Connection {
        kept: Kept::headers(mode, id, &state.kept, headers),
        id,
        mode,
        open,
        _tracked: ctx.shutdown.track(),
    };
    // Its own size: the connection's state as its websocket task holds it (the
    // websocket itself, hyper's and tungstenite's, is not in it).
    let own = std::mem::size_of_val(&conn);
    conn.open.describe(id, None, own);
    let max = ctx.max_message_size;
    if !ctx.below_warp() {
        // As users write it: warp finishes the upgrade and spawns the websocket.
        drop(on_upgrade);
        let ws = ws.max_message_size(max).max_frame_size(max);
        return ws
            .on_upgrade(move |socket| serve(socket, conn, ctx))
            .into_response();
    }
    drop(ws);
    upgrade_below_warp(on_upgrade, accept_key, conn, ctx)
}

/// Finishes an upgrade below `warp::ws()`, with a websocket read buffer of
/// `ws_read_buffer_size`: hyper's `OnUpgrade` gives the connection, tungstenite's
/// `WebSocketConfig::read_buffer_size` the buffer, the same `WebSocketStream` that
/// warp's `WebSocket` wraps the rest. This is the fix axum shipped (axum#3178,
/// `WebSocketUpgrade::read_buffer_size`: 10,000 connections from 1.3 GB to 40 MB).
///
/// The answer is warp's own (`WsReply::into_response`): 101 with `connection`,
/// `upgrade` and `sec-websocket-accept`.
fn upgrade_below_warp(
    on_upgrade: OnUpgrade,
    accept_key: Option<String>,
    conn: Connection,
    ctx: Arc<Ctx>,
) -> Response {
    let Some(accept_key) = accept_key else {
        // warp::ws() has checked the key is there.
        return text(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key\n".into(),
        );
    };
    let config = ctx.websocket_config();
    let spawner = ctx.shutdown.clone();
    spawner.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(connection = conn.id, "wss: upgrade failed: {e}"),
        };
        // The transport tracks frame boundaries, for `ws_idle_release_ms`.
        let transport = FrameBoundary::new(TokioIo::new(upgraded));
        let socket =
            WebSocketStream::from_raw_socket(transport, WsRole::Server, Some(config)).await;
        serve(socket, conn, ctx).await;
    });
    let reply = warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS);
    let reply = warp::reply::with_header(reply, header::CONNECTION, "upgrade");
    let reply = warp::reply::with_header(reply, header::UPGRADE, "websocket");
    warp::reply::with_header(reply, header::SEC_WEBSOCKET_ACCEPT, accept_key).into_response()
}

/// One open websocket: what it holds for its life.
struct Connection {
    kept: Kept,
    id: u64,
    mode: HeadMode,
    open: OpenConnection,
    /// Shutdown waits for the websocket (warp spawns it outside the tracker).
    _tracked: TaskTrackerToken,
}

/// What a connection keeps for its life, as its head mode says, each part
/// registered where its bytes lie.
#[derive(Default)]
struct Kept {
    /// The registrations; first, so that they go before the bytes they name.
    parts: Vec<KeptPart>,
    /// `retain`: the request's header map as warp handed it; `copy`: copies.
    #[allow(dead_code)] // held, never read: keeping it is the point
    headers: Option<HeaderMap>,
    /// The first message's payload: as received (`retain`) or a copy (`copy`).
    first_message: Option<Bytes>,
    /// Whether the first message has come (`drop` keeps nothing of it).
    first_seen: bool,
}

impl Kept {
    /// Keeps the upgrade request's headers as `mode` says.
    fn headers(mode: HeadMode, id: u64, registry: &Arc<KeptParts>, headers: HeaderMap) -> Kept {
        let headers = match mode {
            HeadMode::Drop => return Kept::default(),
            HeadMode::Retain => headers,
            HeadMode::Copy | HeadMode::CopyUnpooled => headers
                .iter()
                .map(|(name, value)| {
                    let copy =
                        HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
                            .expect("a header value's bytes make a header value");
                    (name.clone(), copy)
                })
                .collect(),
        };
        let parts = headers
            .iter()
            .map(|(name, value)| {
                registry.register(id, &format!("header {}", name.as_str()), value.as_bytes())
            })
            .collect();
        Kept {
            headers: Some(headers),
            parts,
            ..Kept::default()
        }
    }

    /// Keeps the first message's payload as `mode` says; later ones are not kept.
    fn message(&mut self, mode: HeadMode, id: u64, registry: &Arc<KeptParts>, payload: Bytes) {
        if std::mem::replace(&mut self.first_seen, true) {
            return;
        }
        let kept = match mode {
            HeadMode::Drop => return,
            HeadMode::Retain => payload,
            HeadMode::Copy | HeadMode::CopyUnpooled => Bytes::copy_from_slice(&payload),
        };
        self.parts
            .push(registry.register(id, "first message", &kept));
        self.first_message = Some(kept);
    }

    /// Parts kept now.
    fn len(&self) -> usize {
        self.parts.len()
    }
}

/// A websocket message, whichever stream handed it out: warp's `WebSocket`
/// (`warp::ws::Message`) or tungstenite's `WebSocketStream` below warp.
trait WsMessage: Clone + Send + 'static {
    /// Whether it is a text or binary message (not ping, pong or close).
    fn is_data(&self) -> bool;
    /// The payload as received (no copy).
    fn into_payload(self) -> Bytes;
    fn text(text: String) -> Self;
    fn close(code: u16, reason: &'static str) -> Self;
}

impl WsMessage for warp::ws::Message {
    fn is_data(&self) -> bool {
        self.is_text() || self.is_binary()
    }
    fn into_payload(self) -> Bytes {
        self.into_bytes()
    }
    fn text(text: String) -> Self {
        warp::ws::Message::text(text)
    }
    fn close(code: u16, reason: &'static str) -> Self {
        warp::ws::Message::close_with(code, reason)
    }
}

impl WsMessage for tungstenite::Message {
    fn is_data(&self) -> bool {
        self.is_text() || self.is_binary()
    }
    fn into_payload(self) -> Bytes {
        self.into_data()
    }
    fn text(text: String) -> Self {
        tungstenite::Message::text(text)
    }
    fn close(code: u16, reason: &'static str) -> Self {
        tungstenite::Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }
}

/// How a websocket's life ended.
enum End {
    /// The peer closed, or vanished.
    Closed,
    /// Shutdown: the wss closes with 1001.
    Shutdown,
    /// A read error that the wss answers with a close code.
    Refused(u16, &'static str),
}

/// The close code due for a read error, if any (none when the connection is gone).
fn close_for(e: &(dyn StdError + 'static)) -> Option<(u16, &'static str)> {
    use tungstenite::error::{CapacityError, Error};
    let tungstenite = e
        .downcast_ref::<Error>()
        .or_else(|| e.source().and_then(|s| s.downcast_ref::<Error>()))?;
    match tungstenite {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => Some((1009, "message too big")),
        Error::Capacity(_) => Some((1009, "too big")),
        Error::Protocol(_) => Some((1002, "protocol error")),
        Error::Utf8(_) => Some((1007, "invalid UTF-8")),
        _ => None,
    }
}

/// A websocket that may give back its buffers when it has been quiet.
trait GiveBack: Sized + Send {
    /// The websocket, with its buffers given back if it could (and what it did);
    /// what it still owes the peer is flushed within `wt` first.
    fn give_back(
        self,
        config: WebSocketConfig,
        wt: Duration,
    ) -> impl Future<Output = (Self, Released)> + Send;
}

/// warp's own `WebSocket` cannot: its stream is private.
impl GiveBack for warp::ws::WebSocket {
    async fn give_back(self, _: WebSocketConfig, _: Duration) -> (Self, Released) {
        (self, Released::NotGrown)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> GiveBack for Releasable<T> {
    fn give_back(
        self,
        config: WebSocketConfig,
        wt: Duration,
    ) -> impl Future<Output = (Self, Released)> + Send {
        idle_release::release(self, config, wt)
    }
}

/// A websocket's life, on either stream: the greeting, then echo or discard what
/// comes (tungstenite answers pings and the peer's close) until the peer closes, it
/// vanishes, a read fails or shutdown comes; with `ws_idle_release_ms`, its buffers
/// given back each time it has been quiet that long after traffic. Everything the
/// connection holds goes with it.
async fn serve<S, M, E>(mut socket: S, mut conn: Connection, ctx: Arc<Ctx>)
where
    S: Stream<Item = Result<M, E>> + Sink<M> + GiveBack + Unpin + Send,
    <S as Sink<M>>::Error: std::fmt::Display,
    M: WsMessage,
    E: StdError + 'static,
{
    let (id, mode, wt) = (conn.id, conn.mode, ctx.write_timeout);
    let state = &ctx.state;
    let greeting = format!("hello from wss, connection {id} (head mode {mode})");
    if let Err(why) = send(&mut socket, M::text(greeting), wt).await {
        return tracing::debug!(connection = id, "wss: {why}");
    }
    tracing::debug!(connection = id, %mode, kept = conn.kept.len(), "wss: websocket open");
    // Whether something came since the buffers were last given back (or the start).
    let mut used = true;
    let end = loop {
        let quiet = ctx.idle_release.filter(|_| used);
        let next = tokio::select! {
            next = socket.next() => next,
            _ = ctx.shutdown.cancelled() => break End::Shutdown,
            _ = tokio::time::sleep(quiet.unwrap_or_default()), if quiet.is_some() => {
                let released;
                (socket, released) = socket.give_back(ctx.websocket_config(), wt).await;
                // In the middle of a frame: tried again after the next quiet spell.
                used = released == Released::NotNow;
                tracing::debug!(connection = id, ?released, "wss: quiet websocket");
                continue;
            }
        };
        used = true;
        let message = match next {
            None => break End::Closed,
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::debug!(connection = id, "wss: closing: {e}");
                match close_for(&e) {
                    Some((code, reason)) => break End::Refused(code, reason),
                    None => break End::Closed,
                }
            }
        };
        if !message.is_data() {
            // Pings are answered and closes acknowledged by tungstenite, on the next read.
            continue;
        }
        if !conn.kept.first_seen {
            let payload = message.clone().into_payload();
            conn.kept.message(mode, id, &state.kept, payload);
        }
        if state.echo {
            if let Err(why) = send(&mut socket, message, wt).await {
                tracing::debug!(connection = id, "wss: {why}");
                break End::Closed;
            }
        }
    };
    match end {
        End::Closed => {}
        End::Shutdown => {
            if send(&mut socket, M::close(1001, "server shutting down"), wt)
                .await
                .is_ok()
            {
                // The peer's close reply, or what is left, for a bounded time.
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await;
            }
        }
        End::Refused(code, reason) => {
            // Not read further: after a refused frame tungstenite's reader is
            // in the middle of that frame.
            if let Err(why) = send(&mut socket, M::close(code, reason), wt).await {
                tracing::debug!(connection = id, "wss: {why}");
            }
        }
    }
    tracing::debug!(connection = id, "wss: websocket closed");
    // The kept parts go before the connection's place.
    drop(conn.kept);
    drop(conn.open);
}

/// Why a message could not be sent to a peer.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("send failed: {0}")]
    Failed(String),
    #[error("send took longer than {0:?}")]
    Timeout(Duration),
}

/// Sends (and flushes) one message within the write timeout.
async fn send<S, M>(socket: &mut S, message: M, wt: Duration) -> Result<(), SendError>
where
    S: Sink<M> + Unpin,
    S::Error: std::fmt::Display,
{
    match tokio::time::timeout(wt, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendError::Failed(e.to_string())),
        Err(_) => Err(SendError::Timeout(wt)),
    }
}
