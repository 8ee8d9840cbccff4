//! The TLS websocket reverse proxy: the seed's `http-proxy` in front of the wss.
//!
//! Decrypted client bytes are read through the `tls` slab pool (the `tcp` pool
//! without TLS), upstream bytes through the `tcp` pool. The request (upgrade or
//! plain HTTP) is forwarded as read, then bytes are piped both ways until either
//! side ends. An upgrading connection keeps what the head mode says; an
//! unreachable upstream gets a 502.
//!
//! An idle connection holds no buffer: [`TlsSession`] keeps none between reads, and
//! [`pipe`] drives both directions from one small future; the request phase runs in
//! a boxed future freed before piping starts. Connections are served from one thread
//! per core, each with its own listener and event loop
//! ([`runtime::server::accept_per_thread`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::head::KeptHead;
use crate::http::{read_request_head, respond, shutdown_within, write_within};
use pools::ReadViews;
use runtime::config::{Config, Target};
use runtime::server::{self, OpenConnection, State};
use runtime::server::{Limits, Running, StartError};
use runtime::shutdown::Shutdown;
use runtime::Role;

mod pipe;
mod tls_session;

pub use pipe::{pipe, PipeEnd, Pools, CLOSE_GRACE};
pub use tls_session::TlsSession;

/// What every proxy connection needs to know.
struct Proxy {
    state: Arc<State>,
    limits: Limits,
    target: Target,
    upstream_timeout: Duration,
    /// With TLS on.
    tls: Option<Arc<ServerConfig>>,
}

/// Binds the proxy and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> Result<Running, StartError> {
    let tls = if config.proxy_tls {
        Some(runtime::tls::server_config(config)?)
    } else {
        None
    };
    let state = State::new(
        Role::Proxy,
        config,
        server::Pools::slab_stack(config, tls.is_some()),
    );
    // Each connection holds two descriptors: the client's and the upstream's.
    server::check_open_files(Role::Proxy, config.max_connections, 2);
    let proxy = Arc::new(Proxy {
        state: state.clone(),
        limits: Limits::from_config(config),
        target: config.proxy_target.clone(),
        upstream_timeout: Duration::from_millis(config.upstream_timeout_ms),
        tls,
    });
    // One thread per core, each with its own listener and event loop (nginx's model).
    let (at, threads) = (
        (config.bind, config.proxy_port).into(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let addr = if config.proxy_tls {
        accept::<TlsSession>(proxy, at, threads, shutdown)?
    } else {
        accept::<TcpStream>(proxy, at, threads, shutdown)?
    };
    let snapshot_addr = collector::serve_beside(&state, config, shutdown).await?;
    let scheme = if config.proxy_tls { "wss" } else { "ws" };
    tracing::info!(
        "proxy listening on {scheme}://{addr} -> {}:{} (head mode {}); snapshot on http://{snapshot_addr}/snapshot",
        config.proxy_target.host,
        config.proxy_target.port,
        state.head_mode().map(|m| m.as_str()).unwrap_or("-"),
    );
    Ok(Running {
        addr,
        snapshot_addr,
        state,
    })
}

/// Serves `at` from `threads` threads, the clients' side being a `C`.
fn accept<C: Client>(
    proxy: Arc<Proxy>,
    at: SocketAddr,
    threads: usize,
    shutdown: &Shutdown,
) -> std::io::Result<SocketAddr> {
    server::accept_per_thread(at, threads, "proxy", shutdown, move |stream, peer| {
        serve::<C>(proxy.clone(), stream, peer)
    })
}

/// Why the client's side of a connection could not start.
#[derive(Debug, thiserror::Error)]
enum ClientSideError {
    #[error("TLS is off")]
    TlsOff,
    #[error("cannot start a TLS session: {0}")]
    Tls(#[from] rustls::Error),
}

/// The client's side of a proxied connection: a TLS session, or a plain socket.
trait Client: ReadViews + AsyncWrite + Unpin + Send + Sized + 'static {
    /// The client's side over its socket.
    fn start(stream: TcpStream, proxy: &Proxy) -> Result<Self, ClientSideError>;
    /// Whether an HTTP answer can be written (a TLS session has to be established).
    fn can_answer(&self) -> bool;
}

impl Client for TlsSession {
    fn start(stream: TcpStream, proxy: &Proxy) -> Result<Self, ClientSideError> {
        let config = proxy.tls.clone().ok_or(ClientSideError::TlsOff)?;
        Ok(TlsSession::new(stream, config)?)
    }

    fn can_answer(&self) -> bool {
        self.is_established()
    }
}

impl Client for TcpStream {
    fn start(stream: TcpStream, _: &Proxy) -> Result<Self, ClientSideError> {
        Ok(stream)
    }

    fn can_answer(&self) -> bool {
        true
    }
}

/// A connection past its request: what the long piping phase holds.
struct Forwarding<C> {
    client: C,
    upstream: TcpStream,
    kept: KeptHead,
    open: OpenConnection,
    id: u64,
}

/// Serves one client connection (TLS or plain) from its request to its end.
///
/// The handshake, the request and the upstream's connect run in a boxed future that
/// is freed before piping starts: a task is as large as the largest state its future
/// reaches, and the piping phase, which idle connections spend their life in, is small.
/// (Only the socket is passed in: an `async fn` keeps its arguments for its whole life.)
async fn serve<C: Client>(proxy: Arc<Proxy>, stream: TcpStream, peer: SocketAddr) {
    let Some(mut conn) = Box::pin(forward_request::<C>(&proxy, stream, peer)).await else {
        return;
    };
    let pools = Pools {
        client: proxy.state.pools.client_side(),
        upstream: proxy.state.pools.tcp(),
        small: Some(proxy.state.pools.buffers()),
    };
    let id = conn.id;
    let end = pipe(
        &mut conn.client,
        &mut conn.upstream,
        pools,
        proxy.limits.write_timeout,
    )
    .await;
    match end {
        PipeEnd::Closed => {}
        PipeEnd::ClientToUpstream(e) => {
            tracing::debug!(connection = id, "proxy: client to upstream: {e}")
        }
        PipeEnd::UpstreamToClient(e) => {
            tracing::debug!(connection = id, "proxy: upstream to client: {e}")
        }
        PipeEnd::WriteTimedOut(side) => tracing::debug!(
            connection = id,
            "proxy: the {side} did not take a write within {:?}",
            proxy.limits.write_timeout
        ),
        PipeEnd::ClientLingered => tracing::debug!(
            connection = id,
            "proxy: the client did not close within {CLOSE_GRACE:?} of the upstream"
        ),
    }
    drop(conn.kept);
    drop(conn.open);
}

/// Reads the client's request, connects to the upstream and forwards the request;
/// `None` when the connection ends there (answered, refused or failed).
async fn forward_request<C: Client>(
    proxy: &Proxy,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<Forwarding<C>> {
    let state = &proxy.state;
    let mut client = match C::start(stream, proxy) {
        Ok(client) => client,
        Err(e) => {
            state.connections.failed_one();
            tracing::warn!(%peer, "proxy: {e}");
            return None;
        }
    };
    let pool = state.pools.client_side();
    let limits = &proxy.limits;
    let wt = limits.write_timeout;
    let request = match read_request_head(
        pool,
        &mut client,
        limits.max_header_bytes,
        limits.header_timeout,
    )
    .await
    {
        Ok(request) => request,
        Err(e) if !client.can_answer() => {
            state.connections.failed_one();
            tracing::debug!(%peer, "proxy: TLS handshake not completed: {e}");
            // Sends rustls's alert, if it has one.
            shutdown_within(&mut client, wt).await;
            return None;
        }
        Err(e) => {
            tracing::debug!(%peer, "proxy: {e}");
            if let Some((status, reason)) = e.response() {
                state.connections.failed_one();
                let _ = respond(&mut client, status, reason, &format!("proxy: {e}\n"), wt).await;
            }
            return None;
        }
    };
    // Refused before anything reaches the upstream.
    let place = match state.admit() {
        Ok(place) => place,
        Err(refusal) => {
            tracing::debug!(%peer, "proxy: refused: {refusal}");
            let body = format!("proxy: {refusal}\n");
            let _ = respond(&mut client, 503, "Service Unavailable", &body, wt).await;
            return None;
        }
    };
    let target = (proxy.target.host.as_str(), proxy.target.port);
    let mut upstream = match tokio::time::timeout(
        proxy.upstream_timeout,
        TcpStream::connect(target),
    )
    .await
    {
        Ok(Ok(upstream)) => upstream,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {:?}", proxy.upstream_timeout),
            };
            tracing::warn!(%peer, "proxy: upstream {}:{} unreachable: {why}", target.0, target.1);
            state.connections.failed_one();
            let body = format!(
                "proxy: upstream {}:{} unreachable: {why}\n",
                target.0, target.1
            );
            let _ = respond(&mut client, 502, "Bad Gateway", &body, wt).await;
            return None;
        }
    };
    let _ = upstream.set_nodelay(true);
    let mode = state.head_mode().expect("the proxy has a head mode");
    let open = place.open(Some(mode));
    let id = server::next_connection_id();
    let buffers = state.pools.buffers();
    let kept = if request.upgrade_websocket {
        KeptHead::keep(mode, id, &request, buffers, &state.kept)
    } else {
        KeptHead::Nothing
    };
    // The request goes upstream from a new buffer, as http-proxy wrote it from a new
    // string: a short-lived small buffer from the pool, between the kept copies.
    let chunks: Vec<&[u8]> = request.chunks.iter().map(|c| &c[..]).collect();
    let forwarded = buffers.pools(request.len()).then(|| buffers.copy(&chunks));
    let to_write = match &forwarded {
        Some(copy) => vec![&copy[..]],
        None => chunks,
    };
    for chunk in to_write {
        if let Err(e) = write_within(&mut upstream, chunk, wt).await {
            tracing::debug!(connection = id, "proxy: upstream side: {e}");
            return None;
        }
    }
    drop(forwarded);
    let upgrade = request.upgrade_websocket;
    tracing::debug!(%peer, connection = id, upgrade, %mode, kept = kept.len(), "proxy: forwarding");
    let mut forwarding = Forwarding {
        client,
        upstream,
        kept,
        open,
        id,
    };
    // Its own size: the state the connection's task holds for it while open.
    let own = std::mem::size_of_val(&forwarding);
    forwarding.open.describe(id, Some(peer), own);
    Some(forwarding)
}
