//! The proxy on the warp stack: warp/hyper over tokio-rustls, upgrades forwarded
//! with `hyper::upgrade` and `tokio::io::copy_bidirectional`, as hyper-based proxies do.
//!
//! warp 0.4 has no TLS of its own, so the proxy runs its own accept loop
//! ([`server::accept_loop`]): each connection gets a `tokio_rustls` handshake (bounded
//! by `header_timeout_ms`), then hyper's HTTP/1 server serves `warp::service(routes)`
//! over it, with upgrades. The routes (`forward.rs`) take the whole request with warp's
//! own filters: `method()`, `path::full()`, `query::raw()`, `header::headers_cloned()`,
//! `ext::optional::<OnUpgrade>()` and `body::stream()`, rather than taking the
//! `Request` from hyper in a `service_fn` of our own around `warp::service` (the one
//! around it only notes that a request was read). Warp's filters lose nothing the
//! proxy needs: hyper puts the request's
//! `OnUpgrade` in its extensions (it is `Clone`, so warp's `ext` filter hands out a
//! copy), and the cloned `HeaderMap`'s values are the very `Bytes` slices of hyper's
//! connection read buffer (a `HeaderValue` clone shares its bytes), so what `retain`
//! keeps pins what keeping the `Request` itself would. What each head mode keeps is in
//! `kept.rs`.
//!
//! Bad input:
//! - Not TLS, or no handshake within `header_timeout_ms`: dropped, with a debug log
//!   (counted failed).
//! - A malformed request: hyper's own answer, 400; a header block over
//!   `max(max_header_bytes, 8192)` (hyper's minimum buffer): 431; a URI too long: 414.
//! - Headers not complete within `header_timeout_ms`: hyper closes the connection
//!   without an answer (its header read timeout sends none).
//! - Refused by the memory guard or the connection cap: 503 with the reason; the
//!   upstream unreachable: 502 naming it.
//! - No write timeouts beyond what hyper and `copy_bidirectional` give: a peer that
//!   stops reading stalls its own tunnel (TCP backpressure) and nothing else. A tunnel
//!   ends when both directions have: after one side closes, the other is shut for
//!   writing and its tunnel lives until it closes too (the slab proxy gives such a
//!   peer `CLOSE_GRACE`; plain `copy_bidirectional` does not).
//!
//! What an idle tunnel holds, and the settings that cut it (docs/guide/warp-stack.md,
//! "What an idle websocket costs the warp proxy"; all off or at the libraries' defaults
//! unless set, so the proxy is what a Rust user writes first):
//! - `proxy_copy_buffer_size`: the size of `copy_bidirectional`'s two buffers
//!   (`copy_bidirectional_with_sizes`; tokio's default, 8 KiB, is 16 of the 26 KB an
//!   idle websocket holds).
//! - `proxy_copy_on_readable`: no copy buffer while idle: the tunnel is a
//!   `Pipe` (`pipe.rs`) reading into the worker thread's scratch buffer.
//! - `proxy_release_upgrade`: each side's IO taken back from hyper's `Upgraded`
//!   (`downcast`) and the leftover bytes forwarded by us (hyper frees them at the first
//!   read anyway: it saves nothing while idle).
//! - `proxy_tls_tickets`, `proxy_tls_buffer_limit`: rustls's `send_tls13_tickets` and
//!   `set_buffer_limit` (no state per idle connection either way).
//!
//! With either of the first two on, the tunnel runs in a task of its own kind
//! (`forward.rs`, `lean_tunnel`) whose copy is boxed, sized for the path taken.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use runtime::config::{Config, Target};
use runtime::server::Running;
use runtime::server::StartError;
use runtime::server::{self, State};
use runtime::shutdown::Shutdown;
use runtime::Role;

mod forward;
mod kept;
mod pipe;

/// How a tunnel carries its bytes once upgraded (`proxy_copy_*`, `proxy_release_upgrade`).
#[derive(Debug, Clone, Copy)]
struct TunnelSettings {
    /// Bytes of each copy buffer, or of the thread's scratch buffer.
    copy_buffer: usize,
    /// Read only into the thread's scratch buffer ([`pipe::copy_on_readable`]).
    on_readable: bool,
    /// Take the IO back from hyper's `Upgraded` and forward its leftover bytes.
    release_upgrade: bool,
}

/// What every connection of the warp proxy needs to know.
struct Proxy {
    state: Arc<State>,
    target: Target,
    upstream_timeout: Duration,
    header_timeout: Duration,
    /// hyper's read buffer limit: `max_header_bytes`, at least hyper's minimum.
    max_buf_size: usize,
    /// With TLS on.
    tls: Option<TlsAcceptor>,
    /// rustls's buffer limit for each client connection (`proxy_tls_buffer_limit`).
    tls_buffer_limit: usize,
    tunnel: TunnelSettings,
    shutdown: Shutdown,
}

/// hyper's smallest allowed `max_buf_size` (its initial read buffer size).
const HYPER_MIN_BUF: usize = 8192;

/// Binds the warp proxy and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(config: &Config, shutdown: &Shutdown) -> Result<Running, StartError> {
    let tls = if config.proxy_tls {
        let mut server = (*runtime::tls::server_config(config)?).clone();
        server.send_tls13_tickets = config.proxy_tls_tickets;
        Some(TlsAcceptor::from(Arc::new(server)))
    } else {
        None
    };
    let state = State::new(Role::Proxy, config, server::Pools::default());
    // Each connection holds two descriptors: the client's and the upstream's.
    server::check_open_files(Role::Proxy, config.max_connections, 2);
    let listener = server::bind((config.bind, config.proxy_port).into(), "proxy").await?;
    let addr = listener.local_addr()?;
    let proxy = Arc::new(Proxy {
        state: state.clone(),
        target: config.proxy_target.clone(),
        upstream_timeout: Duration::from_millis(config.upstream_timeout_ms),
        header_timeout: Duration::from_millis(config.header_timeout_ms),
        max_buf_size: config.max_header_bytes.max(HYPER_MIN_BUF),
        tls,
        tls_buffer_limit: config.proxy_tls_buffer_limit,
        tunnel: TunnelSettings {
            copy_buffer: config.proxy_copy_buffer_size,
            on_readable: config.proxy_copy_on_readable,
            release_upgrade: config.proxy_release_upgrade,
        },
        shutdown: shutdown.clone(),
    });
    let routes = forward::routes(proxy.clone());
    shutdown.spawn(server::accept_loop(
        listener,
        shutdown.clone(),
        move |stream, peer| serve(proxy.clone(), routes.clone(), stream, peer),
    ));
    let snapshot_addr = collector::serve_beside(&state, config, shutdown).await?;
    let scheme = if config.proxy_tls { "wss" } else { "ws" };
    tracing::info!(
        "proxy (warp stack: warp/hyper over tokio-rustls) listening on {scheme}://{addr} -> {}:{} (head mode {}); snapshot on http://{snapshot_addr}/snapshot",
        config.proxy_target.host,
        config.proxy_target.port,
        state.head_mode().map(|m| m.as_str()).unwrap_or("-"),
    );
    tracing::info!(
        "proxy (warp stack): copy buffer {} bytes{}, release upgrade {}, TLS 1.3 tickets {}, TLS buffer limit {} bytes",
        config.proxy_copy_buffer_size,
        if config.proxy_copy_on_readable { " per thread (copy on readable)" } else { " x2 per tunnel" },
        config.proxy_release_upgrade,
        config.proxy_tls_tickets,
        config.proxy_tls_buffer_limit,
    );
    Ok(Running {
        addr,
        snapshot_addr,
        state,
    })
}

/// Serves one client connection: the TLS handshake (if on), then HTTP/1 with upgrades.
async fn serve(
    proxy: Arc<Proxy>,
    routes: BoxedFilter<(Response,)>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let Some(acceptor) = &proxy.tls else {
        return http(&proxy, routes, stream, peer).await;
    };
    let limit = proxy.tls_buffer_limit;
    let accept = acceptor.accept_with(stream, |tls| tls.set_buffer_limit(Some(limit)));
    match tokio::time::timeout(proxy.header_timeout, accept).await {
        Ok(Ok(tls)) => http(&proxy, routes, tls, peer).await,
        Ok(Err(e)) => {
            proxy.state.connections.failed_one();
            tracing::debug!(%peer, "proxy: TLS handshake failed: {e}");
        }
        Err(_) => {
            proxy.state.connections.failed_one();
            tracing::debug!(%peer, "proxy: no TLS handshake within {:?}", proxy.header_timeout);
        }
    }
}

/// hyper's HTTP/1 server over `io`, serving the warp routes, until the connection
/// ends or is upgraded (the tunnel then lives in a task of its own).
async fn http<I>(proxy: &Proxy, routes: BoxedFilter<(Response,)>, io: I, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let warp = TowerToHyperService::new(warp::service(routes));
    // Whether a request was read: a header timeout after one is an idle keep-alive
    // connection closing, not a failure.
    let requests = Arc::new(AtomicBool::new(false));
    let read = requests.clone();
    let service = hyper::service::service_fn(move |request| {
        read.store(true, Ordering::Relaxed);
        warp.call(request)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.header_timeout)
        .max_buf_size(proxy.max_buf_size)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        // Parse errors were answered by hyper (400, 414, 431); a header timeout closes.
        let idle = e.is_timeout() && requests.load(Ordering::Relaxed);
        if (e.is_parse() || e.is_timeout()) && !idle {
            proxy.state.connections.failed_one();
        }
        tracing::debug!(%peer, "proxy: connection: {e}");
    }
}
