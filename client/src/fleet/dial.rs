//! Where a fleet's websockets go and how each one is opened: TCP, TLS for `wss://`,
//! the websocket handshake and (when the server greets) its first message, all
//! within one deadline.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{ws_config, ProxyStream, WsStream, READ_BUFFER};

/// A websocket URL (`ws://` or `wss://`), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// The URL as given.
    pub url: String,
    pub tls: bool,
    /// The host, without brackets.
    pub host: String,
    pub port: u16,
}

impl TargetUrl {
    /// Parses a `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<TargetUrl, String> {
        let uri: tungstenite::http::Uri = url
            .parse()
            .map_err(|e| format!("--target {url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            other => {
                return Err(format!(
                    "--target {url:?}: the scheme must be ws:// or wss://, not {}",
                    other.map(|s| format!("{s}://")).unwrap_or("none".into())
                ))
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("--target {url:?} has no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(TargetUrl {
            url: url.to_string(),
            tls,
            host,
            port,
        })
    }
}

/// How a fleet opens each of its websockets.
#[derive(Clone)]
pub struct Dial {
    pub target: TargetUrl,
    /// The TLS configuration of a `wss://` target.
    pub tls: Option<Arc<ClientConfig>>,
    /// Connect here instead of resolving the target's host (which stays the TLS
    /// server name and the `Host` header): `127.0.0.1` for a `wss://localhost` proxy.
    pub connect_to: Option<std::net::IpAddr>,
    /// Largest message or frame accepted from the server.
    pub max_message: usize,
    /// Websocket read buffer: small, since a fleet holds thousands.
    pub read_buffer: usize,
    /// Wait for the server's first message before the websocket counts as open (our
    /// wss greets each connection: once it has, the proxy in front of it has it too).
    pub greeting: bool,
    /// Close the socket with a reset (`SO_LINGER` 0), so a run leaves no client ports
    /// in TIME_WAIT for the next one.
    pub reset: bool,
    /// Time allowed for all of it.
    pub timeout: Duration,
}

impl Dial {
    /// Opening websockets to `target`: a 4 KiB read buffer, messages up to
    /// `max_message` (at least 1 MiB), no greeting awaited, a clean close, 10 s.
    pub fn new(target: TargetUrl, tls: Option<Arc<ClientConfig>>, max_message: usize) -> Dial {
        Dial {
            target,
            tls,
            connect_to: None,
            max_message: max_message.max(1 << 20),
            read_buffer: READ_BUFFER,
            greeting: false,
            reset: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a websocket could not be opened: what failed, where, and why.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No TCP connection.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    /// The host is not a name TLS can check.
    #[error("{host:?} is not a TLS server name: {source}")]
    ServerName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The TLS handshake failed; `hint` says what to do about a certificate.
    #[error("TLS handshake with {host}:{port} failed: {source}{hint}")]
    Tls {
        host: String,
        port: u16,
        source: std::io::Error,
        hint: &'static str,
    },
    /// The websocket handshake failed.
    #[error("websocket handshake with {url} failed: {source}")]
    Handshake {
        url: String,
        source: Box<tungstenite::Error>,
    },
    /// The server's first message was not a greeting, or did not come.
    #[error("{0}")]
    Greeting(String),
    /// All of it took longer than the dial's timeout.
    #[error("opening a websocket to {url} took more than {after:?}{}", if *.greeting { " (with its greeting)" } else { "" })]
    Timeout {
        url: String,
        after: Duration,
        greeting: bool,
    },
}

/// Opens one websocket as `dial` says.
pub async fn dial(dial: &Dial) -> Result<WsStream, DialError> {
    let target = &dial.target;
    let open = async {
        let tcp = match dial.connect_to {
            Some(ip) => TcpStream::connect((ip, target.port)).await,
            None => TcpStream::connect((target.host.as_str(), target.port)).await,
        }
        .map_err(|source| DialError::Connect {
            host: target.host.clone(),
            port: target.port,
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        if dial.reset {
            let _ = tcp.set_zero_linger();
        }
        let stream = match (target.tls, &dial.tls) {
            (true, Some(tls)) => {
                let name = ServerName::try_from(target.host.clone()).map_err(|source| {
                    DialError::ServerName {
                        host: target.host.clone(),
                        source,
                    }
                })?;
                let tls = TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|source| DialError::Tls {
                        host: target.host.clone(),
                        port: target.port,
                        hint: if source.to_string().contains("certificate") {
                            " (a self-signed certificate: --insecure, or --ca FILE)"
                        } else {
                            ""
                        },
                        source,
                    })?;
                ProxyStream::Tls(Box::new(tls))
            }
            _ => ProxyStream::Plain(tcp),
        };
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            target.url.as_str(),
            stream,
            Some(ws_config(dial.read_buffer, dial.max_message)),
        )
        .await
        .map_err(|source| DialError::Handshake {
            url: target.url.clone(),
            source: Box::new(source),
        })?;
        if dial.greeting {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {}
                Some(Ok(other)) => {
                    return Err(DialError::Greeting(format!(
                        "expected a greeting, got {other:?}"
                    )))
                }
                Some(Err(e)) => {
                    return Err(DialError::Greeting(format!("reading the greeting: {e}")))
                }
                None => return Err(DialError::Greeting("closed before the greeting".into())),
            }
        }
        Ok(ws)
    };
    tokio::time::timeout(dial.timeout, open)
        .await
        .unwrap_or_else(|_| {
            Err(DialError::Timeout {
                url: target.url.clone(),
                after: dial.timeout,
                greeting: dial.greeting,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = TargetUrl::parse("ws://127.0.0.1:8800/").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 8800));
        let t = TargetUrl::parse("wss://localhost/chat").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "localhost", 443));
        let t = TargetUrl::parse("ws://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert!(TargetUrl::parse("http://localhost:80/")
            .unwrap_err()
            .contains("ws:// or wss://"));
        assert!(TargetUrl::parse("localhost:80").is_err());
        assert!(TargetUrl::parse("not a url").is_err());
    }
}
