//! Opening one websocket through the proxy: TCP, then TLS when the proxy speaks it,
//! then the websocket handshake, all within one deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{ClientError, CONNECTING};
use runtime::config::Config;

/// Time allowed for connecting, the TLS handshake and the websocket handshake together.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer of each client websocket: small, since the client may hold thousands.
pub const READ_BUFFER: usize = 4 << 10;

/// A websocket to the proxy, over plain TCP or TLS.
pub type WsStream = tokio_tungstenite::WebSocketStream<ProxyStream>;

/// The byte stream under a client websocket: plain TCP, or TLS over TCP.
pub enum ProxyStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for ProxyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyStream::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            ProxyStream::Tls(s) => f.debug_tuple("Tls").field(s.get_ref().0).finish(),
        }
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ProxyStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ProxyStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ProxyStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ProxyStream::Plain(s) => s.is_write_vectored(),
            ProxyStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ProxyStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ProxyStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `host:port` of the proxy as the client reaches it.
pub fn proxy_addr(config: &Config) -> String {
    format!(
        "{}:{}",
        url_host(&config.client_proxy_host),
        config.proxy_port
    )
}

/// The websocket URL of the proxy: `wss://host:port/` (or `ws://` without TLS).
pub fn proxy_url(config: &Config) -> String {
    let scheme = if config.proxy_tls { "wss" } else { "ws" };
    format!("{scheme}://{}/", proxy_addr(config))
}

/// The host as written in a URL: IPv6 addresses in brackets.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The host as given to DNS and TLS: without brackets.
pub(crate) fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Websocket settings of a client websocket: `read_buffer`, writes sent at once,
/// messages and frames up to `max_message`.
pub fn ws_config(read_buffer: usize, max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Opens one websocket to the proxy of `config`.
///
/// With `proxy_tls`, the TLS configuration is `tls` when given, else the one that
/// trusts the proxy's certificate ([`runtime::tls::client_config`]), read now.
pub async fn open_websocket(
    config: &Config,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<WsStream, ClientError> {
    open_with(config, || match tls {
        Some(tls) => Ok(tls.clone()),
        None => Ok(runtime::tls::client_config(config)?),
    })
    .await
}

/// [`open_websocket`], taking the TLS configuration from `tls` once TCP is connected
/// (so an unreachable proxy is reported as such, before any certificate trouble).
pub(crate) async fn open_with<F>(config: &Config, tls: F) -> Result<WsStream, ClientError>
where
    F: FnOnce() -> Result<Arc<ClientConfig>, ClientError>,
{
    let deadline = Instant::now() + OPEN_TIMEOUT;
    let addr = proxy_addr(config);
    let host = bare_host(&config.client_proxy_host);
    let timeout = |what: &'static str| ClientError::Timeout {
        what,
        addr: addr.clone(),
        after: OPEN_TIMEOUT,
    };

    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect((host, config.proxy_port)))
        .await
        .map_err(|_| timeout(CONNECTING))?
        .map_err(|source| ClientError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);

    let stream = if config.proxy_tls {
        let tls = tls()?;
        let name =
            ServerName::try_from(host.to_string()).map_err(|source| ClientError::ServerName {
                host: host.to_string(),
                source,
            })?;
        let tls = tokio::time::timeout_at(deadline, TlsConnector::from(tls).connect(name, tcp))
            .await
            .map_err(|_| timeout("TLS handshake with the proxy"))?
            .map_err(|source| ClientError::Tls {
                addr: addr.clone(),
                source,
            })?;
        ProxyStream::Tls(Box::new(tls))
    } else {
        ProxyStream::Plain(tcp)
    };

    let url = proxy_url(config);
    let handshake = tokio_tungstenite::client_async_with_config(
        url.as_str(),
        stream,
        Some(ws_config(READ_BUFFER, config.max_message_size)),
    );
    let (ws, _response) = tokio::time::timeout_at(deadline, handshake)
        .await
        .map_err(|_| timeout("websocket handshake with the proxy"))?
        .map_err(|source| ClientError::handshake(url, source))?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6_hosts() {
        let mut config = Config::default();
        assert_eq!(proxy_url(&config), "wss://localhost:8600/");
        config.proxy_tls = false;
        config.client_proxy_host = "::1".into();
        assert_eq!(proxy_url(&config), "ws://[::1]:8600/");
        assert_eq!(bare_host("[::1]"), "::1");
        assert_eq!(bare_host("localhost"), "localhost");
    }
}
