//! The load run's side of the dialer: where the playground's proxy is
//! (`client_proxy_host`, `proxy_port`, `proxy_tls`), and a [`DialError`] said as the
//! load run says it ([`ClientError`]: "the proxy at HOST:PORT", the typed variants
//! its outage detection reads).

use std::sync::Arc;

use rustls::ClientConfig;

use super::Dial;
use super::{dial_with, DialError, Phase, TargetUrl, WsStream, OPEN_TIMEOUT, READ_BUFFER};
use crate::{ClientError, CONNECTING};
use runtime::config::Config;

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

impl Dial {
    /// Opening the load run's websockets: to the proxy of `config` (its host
    /// resolved, TLS when `proxy_tls`), a 4 KiB read buffer, messages up to
    /// `max_message_size`, no greeting awaited, a clean close, [`OPEN_TIMEOUT`].
    /// Its TLS configuration is given when dialing ([`open_websocket`]).
    pub fn to_proxy(config: &Config) -> Dial {
        Dial {
            target: TargetUrl {
                url: proxy_url(config),
                tls: config.proxy_tls,
                host: bare_host(&config.client_proxy_host).to_string(),
                port: config.proxy_port,
            },
            tls: None,
            connect_to: None,
            max_message: config.max_message_size,
            read_buffer: READ_BUFFER,
            greeting: false,
            reset: false,
            timeout: OPEN_TIMEOUT,
            headers: Vec::new(),
            speech: super::Speech::Websocket,
        }
    }
}

/// Opens one websocket to the proxy of `config`.
///
/// With `proxy_tls`, the TLS configuration is `tls` when given, else the one that
/// trusts the proxy's certificate ([`runtime::tls::client_config`]), read now.
pub async fn open_websocket(
    config: &Config,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<WsStream, ClientError> {
    open_with(&Dial::to_proxy(config), || match tls {
        Some(tls) => Ok(tls.clone()),
        None => runtime::tls::client_config(config),
    })
    .await
}

/// Opens one websocket as `dial` (a [`Dial::to_proxy`]) says, taking the TLS
/// configuration from `tls` once TCP is connected (so an unreachable proxy is
/// reported as such, before any certificate trouble).
pub(crate) async fn open_with<F>(dial: &Dial, tls: F) -> Result<WsStream, ClientError>
where
    F: FnOnce() -> Result<Arc<ClientConfig>, runtime::tls::TlsError>,
{
    dial_with(dial, || tls().map_err(DialError::Trust))
        .await
        .map_err(ClientError::from)
}

impl Phase {
    /// The step as the load run names it ([`ClientError::Timeout`]'s `what`).
    fn with_the_proxy(self) -> &'static str {
        match self {
            Phase::Connect => CONNECTING,
            Phase::Tls => "TLS handshake with the proxy",
            Phase::Handshake => "websocket handshake with the proxy",
            Phase::Greeting => "the proxy's greeting",
            Phase::SocketIo => "the socket.io handshake through the proxy",
        }
    }
}

impl From<DialError> for ClientError {
    /// A failure to open a websocket to the proxy, as the load run says it.
    fn from(e: DialError) -> Self {
        match e {
            DialError::Connect { addr, source } => ClientError::Connect { addr, source },
            DialError::Timeout {
                addr, phase, after, ..
            } => ClientError::Timeout {
                what: phase.with_the_proxy(),
                addr,
                after,
            },
            DialError::Trust(e) => ClientError::Certificate(e),
            DialError::ServerName { host, source } => ClientError::ServerName { host, source },
            DialError::Tls { addr, source } => ClientError::Tls { addr, source },
            DialError::Handshake { url, source } => ClientError::handshake(url, *source),
            other => ClientError::Open(other),
        }
    }
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

    #[test]
    fn the_proxy_dial_names_it_as_the_load_run_does() {
        let config = Config {
            client_proxy_host: "::1".into(),
            ..Config::default()
        };
        let dial = Dial::to_proxy(&config);
        assert_eq!(dial.target.addr(), proxy_addr(&config));
        assert_eq!(dial.target.host, "::1");
        let e = ClientError::from(DialError::Timeout {
            url: dial.target.url.clone(),
            addr: dial.target.addr(),
            phase: Phase::Connect,
            after: OPEN_TIMEOUT,
            greeting: false,
        });
        assert!(e.is_unreachable(), "{e}");
        assert_eq!(
            e.to_string(),
            "connecting to the proxy at [::1]:8600: no progress within 10s"
        );
    }
}
