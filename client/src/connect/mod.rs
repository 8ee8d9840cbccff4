//! The one websocket dialer of the client: TCP, TLS for `wss://`, the websocket
//! handshake and (when the server greets) its first message, all within one
//! deadline ([`dial`]). With [`Speech::SocketIo`] the websocket goes to socket.io's
//! path and the dialer opens a socket.io socket on it ([`socketio`]): engine.io's
//! open, the default namespace's connect, and the greeting event.
//!
//! Everything that opens a websocket goes through it: the load run's pinning and
//! data connections (through the proxy, [`Dial::to_proxy`], whose failures become
//! the typed [`ClientError`](crate::ClientError)s its outage detection reads), the
//! fleet of `client audit` ([`crate::fleet`]), and the benchmark. A [`Dial`] says
//! where and how; a [`DialError`] says which step failed, where, and why.

mod proxy;
pub mod socketio;
mod stream;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::pki_types::{InvalidDnsNameError, ServerName};
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub(crate) use self::proxy::{bare_host, open_with};
pub use self::proxy::{open_websocket, proxy_addr, proxy_url};
pub use self::socketio::{Heard, Speech};
pub use self::stream::{ProxyStream, WsStream};

/// Time allowed for connecting, the TLS handshake and the websocket handshake together.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer of each client websocket: small, since the client may hold thousands.
pub const READ_BUFFER: usize = 4 << 10;

/// Websocket settings of a client websocket: `read_buffer`, writes sent at once,
/// messages and frames up to `max_message`.
pub fn ws_config(read_buffer: usize, max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

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

/// Why a `--target` is not a websocket URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("--target {url:?} is not a URL: {source}")]
    NotAUrl {
        url: String,
        source: tungstenite::http::uri::InvalidUri,
    },
    #[error(
        "--target {url:?}: the scheme must be ws:// or wss://, not {}",
        scheme.as_deref().map(|s| format!("{s}://")).unwrap_or("none".into())
    )]
    Scheme { url: String, scheme: Option<String> },
    #[error("--target {url:?} has no host")]
    NoHost { url: String },
}

impl TargetUrl {
    /// Parses a `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<TargetUrl, UrlError> {
        let uri: tungstenite::http::Uri = url.parse().map_err(|source| UrlError::NotAUrl {
            url: url.to_string(),
            source,
        })?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            other => {
                return Err(UrlError::Scheme {
                    url: url.to_string(),
                    scheme: other.map(str::to_string),
                })
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| UrlError::NoHost {
                url: url.to_string(),
            })?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(TargetUrl {
            url: url.to_string(),
            tls,
            host: bare_host(host).to_string(),
            port,
        })
    }

    /// Whether the URL's path is socket.io's (`/socket.io/...`): its server speaks
    /// socket.io.
    pub fn is_socketio(&self) -> bool {
        self.url
            .parse::<tungstenite::http::Uri>()
            .is_ok_and(|u| u.path().starts_with("/socket.io/"))
    }

    /// The same server at socket.io's path and query
    /// ([`socketio_wire::WEBSOCKET_PATH`]), unless the URL names a path of its own.
    pub fn to_socketio(&self) -> TargetUrl {
        let Ok(uri) = self.url.parse::<tungstenite::http::Uri>() else {
            return self.clone();
        };
        if !matches!(uri.path_and_query().map(|p| p.as_str()), None | Some("/")) {
            return self.clone();
        }
        let scheme = if self.tls { "wss" } else { "ws" };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        TargetUrl {
            url: format!("{scheme}://{authority}{}", socketio_wire::WEBSOCKET_PATH),
            ..self.clone()
        }
    }

    /// `host:port`, an IPv6 host in brackets.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How to open websockets: where, with which TLS configuration, and the options
/// each user needs (a greeting awaited, a reset on close, a read buffer).
#[derive(Clone)]
pub struct Dial {
    pub target: TargetUrl,
    /// The TLS configuration of a `wss://` target.
    pub tls: Option<Arc<ClientConfig>>,
    /// Connect here instead of resolving the target's host (which stays the TLS
    /// server name and the `Host` header): `127.0.0.1` for a `wss://localhost` proxy.
    pub connect_to: Option<IpAddr>,
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
    /// Headers added to the upgrade request, after the handshake's own (the large
    /// `Cookie` of `client audit --head-probe`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What the websocket speaks: with [`Speech::SocketIo`] the dialer opens a
    /// socket.io socket on it (the greeting is the server's first event).
    pub speech: Speech,
}

impl Dial {
    /// Opening websockets to `target`: a 4 KiB read buffer, messages up to
    /// `max_message` (at least 1 MiB), no greeting awaited, a clean close, 10 s;
    /// speaking socket.io when the target's path is socket.io's
    /// ([`TargetUrl::is_socketio`]).
    pub fn new(target: TargetUrl, tls: Option<Arc<ClientConfig>>, max_message: usize) -> Dial {
        Dial {
            tls,
            connect_to: None,
            max_message: max_message.max(1 << 20),
            read_buffer: READ_BUFFER,
            greeting: false,
            reset: false,
            timeout: OPEN_TIMEOUT,
            headers: Vec::new(),
            speech: Speech::socketio(target.is_socketio()),
            target,
        }
    }

    /// The same dial speaking socket.io: to socket.io's path on the target (unless
    /// its URL names a path) and opening a socket.io socket there.
    pub fn socketio(self) -> Dial {
        Dial {
            target: self.target.to_socketio(),
            speech: Speech::SocketIo,
            ..self
        }
    }
}

/// The steps of opening a websocket, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The TCP connection.
    Connect,
    /// The TLS handshake (`wss://`).
    Tls,
    /// The websocket handshake.
    Handshake,
    /// The server's first message ([`Dial::greeting`]).
    Greeting,
    /// The socket.io handshake: engine.io's open, the namespace's connect, the
    /// greeting event when awaited ([`Speech::SocketIo`]).
    SocketIo,
}

/// Why a websocket could not be opened: which step failed, where, and why.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No TCP connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// The whole opening took longer than [`Dial::timeout`]; `phase` is the step
    /// it was in.
    #[error(
        "opening a websocket to {url} took more than {after:?}{}",
        if *greeting { " (with its greeting)" } else { "" }
    )]
    Timeout {
        url: String,
        addr: String,
        phase: Phase,
        after: Duration,
        greeting: bool,
    },
    /// A `wss://` target without a TLS configuration to reach it with.
    #[error("{url}: a wss:// target needs a TLS configuration, and none was given")]
    NoTls { url: String },
    /// The certificates to trust could not be read (a configuration read once the
    /// server is reachable: the load run's).
    #[error("cannot read the certificates to trust: {0}")]
    Trust(#[source] runtime::tls::TlsError),
    /// The host is not a name TLS can check.
    #[error("{host:?} is not a TLS server name: {source}")]
    ServerName {
        host: String,
        source: InvalidDnsNameError,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {source}{}", untrusted_hint(source))]
    Tls { addr: String, source: io::Error },
    /// The websocket handshake failed.
    #[error("websocket handshake with {url} failed: {source}")]
    Handshake {
        url: String,
        source: Box<tungstenite::Error>,
    },
    /// The server's first message was not a message.
    #[error("expected a greeting, got {got}")]
    NotAGreeting { got: String },
    /// The websocket broke before the server greeted.
    #[error("reading the greeting: {0}")]
    GreetingBroke(#[source] Box<tungstenite::Error>),
    /// The server closed the websocket before greeting.
    #[error("closed before the greeting")]
    ClosedBeforeGreeting,
    /// A socket.io dial met a server that does not speak socket.io (engine.io v4).
    #[error(
        "the server does not speak socket.io (engine.io v4): expected engine.io's open \
         packet and the namespace's answer, got {got:?}"
    )]
    NotSocketIo { got: String },
    /// The socket.io server refused to connect the default namespace.
    #[error("the socket.io server refused the namespace \"/\": {0}")]
    Refused(String),
}

/// What to do about a certificate the handshake did not trust.
fn untrusted_hint(e: &io::Error) -> &'static str {
    if e.to_string().contains("certificate") {
        " (a self-signed certificate: --insecure, or --ca FILE)"
    } else {
        ""
    }
}

/// Opens one websocket as `dial` says.
pub async fn dial(dial: &Dial) -> Result<WsStream, DialError> {
    dial_with(dial, || {
        dial.tls.clone().ok_or_else(|| DialError::NoTls {
            url: dial.target.url.clone(),
        })
    })
    .await
}

/// [`dial`], taking the TLS configuration of a `wss://` target from `tls` once TCP
/// is connected (so an unreachable server is reported as such, before any trouble
/// reading certificates).
pub(crate) async fn dial_with<F>(dial: &Dial, tls: F) -> Result<WsStream, DialError>
where
    F: FnOnce() -> Result<Arc<ClientConfig>, DialError>,
{
    let target = &dial.target;
    let deadline = Instant::now() + dial.timeout;
    let timeout = |phase| DialError::Timeout {
        url: target.url.clone(),
        addr: target.addr(),
        phase,
        after: dial.timeout,
        greeting: dial.greeting,
    };

    let connect = async {
        match dial.connect_to {
            Some(ip) => TcpStream::connect((ip, target.port)).await,
            None => TcpStream::connect((target.host.as_str(), target.port)).await,
        }
    };
    let tcp = tokio::time::timeout_at(deadline, connect)
        .await
        .map_err(|_| timeout(Phase::Connect))?
        .map_err(|source| DialError::Connect {
            addr: target.addr(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    if dial.reset {
        let _ = tcp.set_zero_linger();
    }

    let stream = if target.tls {
        let tls = tls()?;
        let name =
            ServerName::try_from(target.host.clone()).map_err(|source| DialError::ServerName {
                host: target.host.clone(),
                source,
            })?;
        let tls = tokio::time::timeout_at(deadline, TlsConnector::from(tls).connect(name, tcp))
            .await
            .map_err(|_| timeout(Phase::Tls))?
            .map_err(|source| DialError::Tls {
                addr: target.addr(),
                source,
            })?;
        ProxyStream::Tls(Box::new(tls))
    } else {
        ProxyStream::Plain(tcp)
    };

    let handshake_error = |source| DialError::Handshake {
        url: target.url.clone(),
        source: Box::new(source),
    };
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(handshake_error)?;
    for (name, value) in &dial.headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    let handshake = tokio_tungstenite::client_async_with_config(
        request,
        stream,
        Some(ws_config(dial.read_buffer, dial.max_message)),
    );
    let (mut ws, _response) = tokio::time::timeout_at(deadline, handshake)
        .await
        .map_err(|_| timeout(Phase::Handshake))?
        .map_err(handshake_error)?;

    if dial.speech == Speech::SocketIo {
        tokio::time::timeout_at(deadline, socketio::handshake(&mut ws, dial.greeting))
            .await
            .map_err(|_| timeout(Phase::SocketIo))??;
    } else if dial.greeting {
        let first = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| timeout(Phase::Greeting))?;
        match first {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {}
            Some(Ok(other)) => {
                return Err(DialError::NotAGreeting {
                    got: format!("{other:?}"),
                })
            }
            Some(Err(e)) => return Err(DialError::GreetingBroke(Box::new(e))),
            None => return Err(DialError::ClosedBeforeGreeting),
        }
    }
    Ok(ws)
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
            .to_string()
            .contains("ws:// or wss://"));
        assert!(TargetUrl::parse("localhost:80").is_err());
        assert!(TargetUrl::parse("not a url").is_err());
    }

    #[test]
    fn socketio_urls_go_to_its_path_unless_one_is_named() {
        let t = TargetUrl::parse("wss://localhost:8600/").unwrap();
        assert!(!t.is_socketio());
        let s = t.to_socketio();
        assert_eq!(
            s.url,
            "wss://localhost:8600/socket.io/?EIO=4&transport=websocket"
        );
        assert!(s.is_socketio());
        assert_eq!((s.host.as_str(), s.port, s.tls), ("localhost", 8600, true));
        let t = TargetUrl::parse("ws://[::1]:9000").unwrap().to_socketio();
        assert_eq!(
            t.url,
            "ws://[::1]:9000/socket.io/?EIO=4&transport=websocket"
        );
        let own = TargetUrl::parse("ws://127.0.0.1:9000/chat/?EIO=4&transport=websocket").unwrap();
        assert_eq!(own.to_socketio(), own);
    }
}
