//! The headless load client: the seed's `client.js`, in Rust.
//!
//! It opens websockets through the proxy ([`connect`]): one data connection first,
//! which sends `client_dataSize` bytes every `client_dataDelay` ms (the traffic that
//! fills slabs), then pinning connections at `client_connectionspersecond` until
//! `client_maxConnections` are open, each held open for the run ([`load`]). It prints
//! its stats every 5 s, shows a progress bar while ramping up ([`progress`]), serves
//! its own snapshot, and with `--report` fetches both servers' snapshots at the end
//! and prints them side by side ([`report`]).

pub mod connect;
pub mod load;
pub mod progress;
pub mod report;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::shutdown::Shutdown;

pub use connect::{open_websocket, proxy_url, ProxyStream, WsStream};
pub use report::{render_report, Report};

/// How a run goes, beyond `config.json`.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Stop by itself after this long; `None` runs until shutdown.
    pub duration: Option<Duration>,
    /// At the end, fetch both servers' snapshots and print the report table.
    pub report: bool,
    /// Show the ramp-up progress bar (drawn only when stderr is a terminal).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct ClientSummary {
    /// Pinning connections opened.
    pub pinning_opened: u64,
    /// Pinning connection attempts that failed.
    pub pinning_failed: u64,
    /// Pinning connections open when the run ended (before they were closed).
    pub pinning_open: u64,
    /// Pinning connections that closed during the run (the other side ended them).
    pub pinning_closed: u64,
    /// Messages the data connection sent, and their bytes.
    pub data_messages_sent: u64,
    pub data_bytes_sent: u64,
    /// Data connection attempts that failed.
    pub data_failed: u64,
    /// Messages received on all connections (the server's greetings, echoes).
    pub messages_received: u64,
    /// Where the client's own snapshot was served.
    pub snapshot_addr: SocketAddr,
    /// The report, when asked for.
    pub report: Option<Report>,
}

/// Phase names of [`ClientError::Timeout`].
pub const CONNECTING: &str = "connecting to the proxy";

/// Why opening a websocket, or the whole run, failed; every variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The settings cannot work together (exit code 2, like a config error).
    #[error("{0}")]
    Config(String),
    /// No TCP connection to the proxy.
    #[error("cannot connect to the proxy at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// A phase of opening a websocket took too long.
    #[error("{what} at {addr}: no progress within {after:?}")]
    Timeout {
        what: &'static str,
        addr: String,
        after: Duration,
    },
    /// The proxy's certificate could not be read.
    #[error(
        "cannot trust the proxy: {0} (the client trusts the certificate the proxy uses, \
         from cert_dir or tls_cert: run it from the proxy's folder, with the same config)"
    )]
    Certificate(#[from] crate::tls::TlsError),
    /// `client_proxy_host` is not a name TLS can check.
    #[error("client_proxy_host {host:?} is not a valid TLS server name: {source}")]
    ServerName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The TLS handshake with the proxy failed.
    #[error("TLS handshake with the proxy at {addr} failed: {source}")]
    Tls { addr: String, source: io::Error },
    /// The websocket handshake failed (the proxy refused, or the wss behind it is down).
    #[error("websocket handshake with {url} failed: {source}{hint}")]
    Handshake {
        url: String,
        source: Box<tungstenite::Error>,
        hint: &'static str,
    },
    /// The client's own snapshot endpoint could not listen.
    #[error(
        "{source} (the client's own snapshot at {addr}: set client_heapdump_port to a free port)"
    )]
    Snapshot { addr: SocketAddr, source: io::Error },
}

impl ClientError {
    /// A failed websocket handshake, with a hint when the proxy says its upstream is down.
    pub(crate) fn handshake(url: String, source: tungstenite::Error) -> Self {
        let hint = match &source {
            tungstenite::Error::Http(r) if matches!(r.status().as_u16(), 502..=504) => {
                " (is the wss behind the proxy running? `cargo run -p native --bin wss`)"
            }
            _ => "",
        };
        ClientError::Handshake {
            url,
            source: Box::new(source),
            hint,
        }
    }

    /// Whether the proxy could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Timeout { what, .. } => *what == CONNECTING,
            _ => false,
        }
    }

    /// Whether the run cannot start with these settings (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, ClientError::Config(_))
    }
}

/// Runs the client until `shutdown` is triggered or `options.duration` has passed;
/// then prints the report if asked, closes every websocket (bounded), and returns.
///
/// Connection failures are counted and logged, never fatal; only settings that
/// cannot work and a snapshot port that cannot be bound end the run with an error.
/// The caller's `shutdown` is watched, not triggered: everything the run starts
/// has ended (or been abandoned after a bounded wait) when it returns.
pub async fn run(
    config: Config,
    options: ClientOptions,
    shutdown: Shutdown,
) -> Result<ClientSummary, ClientError> {
    load::run(config, options, shutdown).await
}
