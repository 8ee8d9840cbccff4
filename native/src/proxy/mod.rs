//! The TLS websocket reverse proxy: the seed's `http-proxy` in front of the wss.
//!
//! Decrypted client bytes are read through the `tls` slab pool (the `tcp` pool
//! without TLS), upstream bytes through the `tcp` pool. The request (upgrade or
//! plain HTTP) is forwarded as read, then bytes are piped both ways until either
//! side ends. An upgrading connection keeps what the head mode says; an
//! unreachable upstream gets a 502.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Target};
use crate::head::KeptHead;
use crate::http::{read_request_head, respond, shutdown_within, write_within};
use crate::server::{self, State};
use crate::shutdown::Shutdown;
use crate::slab::SlabPool;
use crate::wss::{Limits, Running};
use crate::Role;

/// Time a client has to close once the upstream has ended its side (after a refusal,
/// or the wss's close frame): a client that never closes holds no descriptor longer.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What every proxy connection needs to know.
struct Proxy {
    state: Arc<State>,
    limits: Limits,
    target: Target,
    upstream_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

/// A proxy that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Binds the proxy and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> Result<Running, StartError> {
    let tls = if config.proxy_tls {
        Some(TlsAcceptor::from(crate::tls::server_config(config)?))
    } else {
        None
    };
    let state = State::new(Role::Proxy, config);
    // Each connection holds two descriptors: the client's and the upstream's.
    server::check_open_files(Role::Proxy, config.max_connections, 2);
    let listener = server::bind((config.bind, config.proxy_port).into(), "proxy").await?;
    let addr = listener.local_addr()?;
    let snapshot_addr = crate::snapshot::endpoint::serve_with(
        (config.snapshot_bind, config.proxy_heapdump_port).into(),
        state.clone(),
        shutdown.clone(),
        crate::snapshot::endpoint::EndpointSettings::from_config(config),
    )
    .await?;
    let proxy = Arc::new(Proxy {
        state: state.clone(),
        limits: Limits::from_config(config),
        target: config.proxy_target.clone(),
        upstream_timeout: Duration::from_millis(config.upstream_timeout_ms),
        tls,
    });
    shutdown.spawn(server::accept_loop(
        listener,
        shutdown.clone(),
        move |stream, peer| handle(proxy.clone(), stream, peer),
    ));
    state.print_stats(shutdown);
    state.watch_guard(shutdown);
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

async fn handle(proxy: Arc<Proxy>, stream: TcpStream, peer: SocketAddr) {
    match &proxy.tls {
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(proxy.limits.header_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls)) => serve(&proxy, tls, peer).await,
                Ok(Err(e)) => {
                    proxy.state.connections.failed_one();
                    tracing::debug!(%peer, "proxy: TLS handshake failed: {e}");
                }
                Err(_) => {
                    proxy.state.connections.failed_one();
                    tracing::debug!(%peer, "proxy: TLS handshake timed out");
                }
            }
        }
        None => serve(&proxy, stream, peer).await,
    }
}

/// Serves one client connection (TLS or plain) from its request to its end.
async fn serve<S>(proxy: &Proxy, mut client: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let state = &proxy.state;
    let pool = state.client_side_pool().clone();
    let limits = &proxy.limits;
    let wt = limits.write_timeout;
    let request = match read_request_head(
        &pool,
        &mut client,
        limits.max_header_bytes,
        limits.header_timeout,
    )
    .await
    {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(%peer, "proxy: {e}");
            if let Some((status, reason)) = e.response() {
                state.connections.failed_one();
                let _ = respond(&mut client, status, reason, &format!("proxy: {e}\n"), wt).await;
            }
            return;
        }
    };
    // Refused before anything reaches the upstream.
    let place = match state.admit() {
        Ok(place) => place,
        Err(refusal) => {
            tracing::debug!(%peer, "proxy: refused: {refusal}");
            let body = format!("proxy: {refusal}\n");
            let _ = respond(&mut client, 503, "Service Unavailable", &body, wt).await;
            return;
        }
    };
    let target = (proxy.target.host.as_str(), proxy.target.port);
    let upstream = match tokio::time::timeout(proxy.upstream_timeout, TcpStream::connect(target))
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
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let mode = state.head_mode().expect("the proxy has a head mode");
    let open = place.open(Some(mode));
    let id = server::next_connection_id();
    let kept = if request.upgrade_websocket {
        KeptHead::keep(mode, id, &request)
    } else {
        KeptHead::Nothing
    };
    let (mut up_rd, mut up_wr) = upstream.into_split();
    for chunk in &request.chunks {
        if let Err(e) = write_within(&mut up_wr, chunk, wt).await {
            tracing::debug!(connection = id, "proxy: upstream side: {e}");
            return;
        }
    }
    let upgrade = request.upgrade_websocket;
    drop(request);
    tracing::debug!(%peer, connection = id, upgrade, %mode, kept = kept.len(), "proxy: forwarding");
    let tcp = state.pool("tcp").expect("the proxy has a tcp pool").clone();
    let (mut cl_rd, mut cl_wr) = tokio::io::split(client);
    let to_upstream = pipe(&pool, &mut cl_rd, &mut up_wr, wt);
    let to_client = pipe(&tcp, &mut up_rd, &mut cl_wr, wt);
    tokio::pin!(to_upstream, to_client);
    let (mut up_done, mut cl_done) = (false, false);
    // Armed when the upstream has ended: the client then has CLOSE_GRACE to close too.
    let grace = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(grace);
    // Ends when both directions ended cleanly, or at once when either fails.
    while !(up_done && cl_done) {
        tokio::select! {
            r = &mut to_upstream, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(e) => { tracing::debug!(connection = id, "proxy: client side: {e}"); break }
            },
            r = &mut to_client, if !cl_done => match r {
                Ok(()) => {
                    cl_done = true;
                    grace.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                Err(e) => { tracing::debug!(connection = id, "proxy: upstream side: {e}"); break }
            },
            _ = &mut grace, if cl_done && !up_done => {
                tracing::debug!(connection = id, "proxy: the client did not close within {CLOSE_GRACE:?} of the upstream");
                break
            }
        }
    }
    drop(kept);
    drop(open);
}

/// Copies from `from` to `to` through `pool` until end of stream, then shuts `to` down.
///
/// Each write must be taken by the peer within `wt`, else the pipe fails (and the
/// connection ends on both sides): a peer that does not read cannot hold the
/// other side's data, or this task, forever.
async fn pipe<R, W>(pool: &SlabPool, from: &mut R, to: &mut W, wt: Duration) -> std::io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    while let Some(view) = pool.read(from).await? {
        write_within(to, &view, wt).await?;
    }
    shutdown_within(to, wt).await;
    Ok(())
}
