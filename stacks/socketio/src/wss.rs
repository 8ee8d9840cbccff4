//! The socket.io wss: socketioxide mounted on a warp filter, behind the head layer,
//! served by hyper's HTTP/1 connections (with upgrades) from the playground's own
//! accept loop.
//!
//! Users get what the other wss stacks give them: a greeting (the `hello` event),
//! `wss_echo` (every `message` event sent back), the head modes (switchable at run
//! time), the memory guard and the connection cap (503), the stats line, the
//! snapshot ports and a clean shutdown (every socket closed). A request off the
//! engine.io path gets a 404 that says where socket.io is; engine.io's own errors
//! (a bad packet, a body over `max_message_size`, an unknown session) are
//! socketioxide's answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::socket::Sid;
use socketioxide::SocketIo;
use warp::http::StatusCode;
use warp::reply::Reply;
use warp::Filter;

use crate::head::{Admitted, HeadService, ENGINE_IO_PATH};
use runtime::config::Config;
use runtime::kept::{KeptPart, PART_REQUEST};
use runtime::server::{self, http1, OpenConnection, Running, State};
use runtime::shutdown::Shutdown;
use runtime::Role;

/// The event each socket is greeted with, as the other stacks greet with a message.
pub const GREETING: &str = "hello";
/// The event the wss echoes (`wss_echo`), under the same name.
pub const MESSAGE: &str = "message";

/// What the handlers share.
struct Ctx {
    state: Arc<State>,
    echo: bool,
    /// Every connected socket and what it holds, by engine.io session id.
    sockets: Mutex<HashMap<Sid, Connected>>,
}

/// One connected socket: its place, and what engine.io keeps of its request,
/// registered where its bytes lie.
struct Connected {
    /// The registrations; first, so that they go before the place.
    _parts: Vec<KeptPart>,
    _open: OpenConnection,
}

/// Binds the socket.io wss and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> std::io::Result<Running> {
    let state = State::new(Role::Wss, config, server::Pools::default());
    server::check_open_files(Role::Wss, config.max_connections, 1);
    let listener = server::bind((config.bind, config.wss_port).into(), "wss").await?;
    let addr = listener.local_addr()?;
    let snapshot_addr = collector::serve_beside(&state, config, shutdown).await?;
    let (socketio, io) = SocketIo::builder()
        .ws_read_buffer_size(config.ws_read_buffer_size)
        .max_payload(config.max_message_size as u64)
        .build_with_inner_svc(warp::service(elsewhere()));
    let ctx = Arc::new(Ctx {
        state: state.clone(),
        echo: state.echo,
        sockets: Mutex::default(),
    });
    let on_connect = ctx.clone();
    io.ns("/", move |socket: SocketRef| {
        let ctx = on_connect.clone();
        async move { ctx.connected(socket) }
    });
    close_at_shutdown(io, shutdown);
    let http = http1::builder(config);
    let serving = state.clone();
    let spawner = shutdown.clone();
    shutdown.spawn(server::accept_loop(
        listener,
        shutdown.clone(),
        move |stream, peer| {
            let service = TowerToHyperService::new(HeadService {
                inner: socketio.clone(),
                state: serving.clone(),
                peer,
            });
            let conn = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            // Spawned here, not as the accept loop's task: that one is dropped at
            // shutdown, and a connection in HTTP ends gracefully.
            let (state, shutdown) = (serving.clone(), spawner.clone());
            spawner.spawn(async move { http1::serve(conn, peer, &state, &shutdown).await });
            std::future::ready(())
        },
    ));
    tracing::info!(
        "wss (socketio stack: socketioxide on warp and hyper; websocket read buffer {} bytes) \
         listening on ws://{addr}{ENGINE_IO_PATH} (head mode {}, echo {}); snapshot on http://{snapshot_addr}/snapshot",
        config.ws_read_buffer_size,
        state.head_mode().map(|m| m.as_str()).unwrap_or("-"),
        state.echo
    );
    Ok(Running {
        addr,
        snapshot_addr,
        state,
    })
}

/// Closes every socket when `shutdown` comes (engine.io runs them in tasks of its
/// own); shutdown waits for it.
fn close_at_shutdown(io: SocketIo, shutdown: &Shutdown) {
    let tracked = shutdown.track();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        io.close().await;
        drop(tracked);
    });
}

/// What a request off the engine.io path gets: 404, saying where socket.io is.
fn elsewhere() -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
       + Clone
       + Send
       + Sync
       + 'static {
    warp::any().map(|| {
        let body = format!(
            "this is the playground's socket.io server: connect with a socket.io client (path {ENGINE_IO_PATH})\n"
        );
        warp::reply::with_status(body, StatusCode::NOT_FOUND).into_response()
    })
}

impl Ctx {
    /// A socket has connected to the namespace: open its place, register what
    /// engine.io keeps of its request, greet it, and listen.
    fn connected(self: &Arc<Self>, socket: SocketRef) {
        let parts = socket.req_parts();
        let Some(admitted) = parts.extensions.get::<Admitted>().cloned() else {
            // Not through the layer: cannot be, every request goes through it.
            tracing::warn!(sid = %socket.id, "wss: a socket without an admission; disconnecting");
            let _ = socket.disconnect();
            return;
        };
        let Some(place) = admitted.take() else {
            return;
        };
        let (mode, id) = (admitted.mode, server::next_connection_id());
        let mut open = place.open(Some(mode));
        open.describe(id, Some(admitted.peer), std::mem::size_of::<Connected>());
        let registry = &self.state.kept;
        let mut kept: Vec<KeptPart> = parts
            .headers
            .iter()
            .map(|(name, value)| registry.register(id, &format!("header {name}"), value.as_bytes()))
            .collect();
        // The request's target (path and query), as the request's own part.
        if let Some(pq) = parts.uri.path_and_query() {
            kept.push(registry.register(id, PART_REQUEST, pq.as_str().as_bytes()));
        }
        let connected = Connected {
            _parts: kept,
            _open: open,
        };
        tracing::debug!(sid = %socket.id, connection = id, %mode, "wss: socket.io socket open");
        self.sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(socket.id, connected);
        let greeting = format!("hello from wss, connection {id} (head mode {mode})");
        let _ = socket.emit(GREETING, &greeting);
        if self.echo {
            socket.on(
                MESSAGE,
                async |socket: SocketRef, Data::<rmpv::Value>(data)| {
                    let _ = socket.emit(MESSAGE, &data);
                },
            );
        }
        let ctx = self.clone();
        socket.on_disconnect(move |socket: SocketRef| async move {
            ctx.sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&socket.id);
        });
    }
}
