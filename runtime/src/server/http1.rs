//! A server's HTTP/1 connections on hyper, as the warp and socketio wss serve them:
//! the builder from config.json's limits, and one connection served until it ends
//! or is upgraded, ended gracefully at shutdown.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::State;
use crate::config::Config;
use crate::shutdown::Shutdown;

/// hyper's smallest `max_buf_size` (`MINIMUM_MAX_BUFFER_SIZE`, its initial read
/// buffer); a smaller `max_header_bytes` is raised to it.
pub const HYPER_MIN_BUF_SIZE: usize = 8192;

/// How long a connection still in HTTP (reading or answering a request) gets to
/// end after shutdown before it is dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// HTTP/1 connections with `header_timeout_ms` for a request's head and
/// `max_header_bytes` (at least [`HYPER_MIN_BUF_SIZE`]) for its size.
pub fn builder(config: &Config) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_timeout_ms))
        // hyper refuses a max_buf_size below its initial read buffer.
        .max_buf_size(config.max_header_bytes.max(HYPER_MIN_BUF_SIZE));
    http
}

/// Serves one connection's HTTP until it ends or is upgraded (the websocket then
/// lives in its own task); at shutdown, ends it gracefully within [`SHUTDOWN_GRACE`].
/// A request hyper could not parse, too large or too slow counts as failed.
pub async fn serve<S>(
    conn: http1::UpgradeableConnection<TokioIo<tokio::net::TcpStream>, S>,
    peer: SocketAddr,
    state: &State,
    shutdown: &Shutdown,
) where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return tracing::debug!(%peer, "wss: http connection dropped at shutdown"),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "wss: http: {e}");
        if e.is_parse() || e.is_parse_too_large() || e.is_timeout() {
            state.connections.failed_one();
        }
    }
}
