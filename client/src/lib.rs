//! The headless load client: the seed's `client.js`, in Rust.
//!
//! It opens websockets through the proxy ([`connect`]), speaking socket.io when the
//! wss runs the socketio stack ([`load::speech`]): one data connection first,
//! which sends `client_dataSize` bytes every `client_dataDelay` ms (the traffic that
//! fills slabs), then pinning connections at `client_connectionspersecond` until
//! `client_maxConnections` are open, each held open for the run ([`load`]), after
//! sending its own traffic when configured ([`pin_traffic`]). It prints
//! its stats every 5 s, shows a progress bar while ramping up ([`progress`]), serves
//! its own snapshot, and with `--report` fetches both servers' snapshots at the end
//! and prints them side by side ([`report`]); with `--save-snapshots DIR` it writes
//! them to files ([`save`]).
//!
//! A connection that the other side ends stays closed, unless the run was asked to
//! reconnect ([`ClientOptions::reconnect`], `--reconnect`): then it is reopened with
//! a bounded, jittered exponential backoff ([`Backoff`]). Without it, losing every
//! open connection at once (the proxy gone, or the wss behind it) ends the run with
//! [`ClientError::Lost`], which says what was lost.
//!
//! `client audit` ([`audit`]) points the client at any websocket server on the
//! machine instead and measures what its connections cost the processes given; its
//! websockets are a [`fleet`], the engine the benchmark (`bench/`) drives too.

pub mod audit;
pub mod connect;
pub mod fetch;
pub mod fleet;
pub mod load;
pub mod pin_traffic;
pub mod progress;
pub mod report;
pub mod save;
pub mod table;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime::config::Config;
use runtime::server::State;
use runtime::shutdown::Shutdown;

use pin_traffic::PinCounters;

pub use connect::{dial, open_websocket, proxy_url, Dial, DialError, ProxyStream, WsStream};
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
    /// Reopen lost connections (pinning and data) with this backoff; `None`: a lost
    /// connection stays closed, and losing all of them ends the run.
    pub reconnect: Option<Backoff>,
    /// At the end, write both servers' snapshots to this folder (made if missing).
    pub save_snapshots: Option<PathBuf>,
    /// Speak socket.io to the wss (`--socketio`); without it, the run speaks
    /// socket.io when the wss's snapshot says it runs the socketio stack.
    pub socketio: bool,
}

/// Pauses between attempts to reopen a lost connection: doubling from `first` up
/// to `max`, each one drawn at random between half and all of that (jitter), so
/// thousands of connections lost at once do not come back at the same instant.
///
/// The pauses are `backon`'s exponential backoff ([`Backoff::pauses`]): from
/// `first / 2`, doubling up to `max / 2`, and its jitter adds between 0 and 100 % of
/// that: 50-100 % of `first * 2^n` capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 250 ms, doubling up to 10 s.
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The pauses before each attempt, from the first on, for as long as attempts
    /// go on: `first * 2^n` capped at `max`, jittered to 50-100 % of that.
    pub fn pauses(&self) -> impl Iterator<Item = Duration> + Send {
        use backon::BackoffBuilder;
        let max = self.max;
        backon::ExponentialBuilder::new()
            .with_min_delay(self.first.min(max) / 2)
            .with_max_delay(max / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            // Never reached (no limit on attempts); the bound, should it be.
            .chain(std::iter::repeat(max))
    }

    /// The pause before attempt `n` (0 for the first), as [`Backoff::pauses`] draws it.
    pub fn pause(&self, n: u32) -> Duration {
        // From 64 doublings on, every pause is `max`'s.
        self.pauses().nth(n.min(64) as usize).unwrap_or(self.max)
    }
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
    /// Messages received on all connections (the server's greetings, echoes; on
    /// socket.io, its events).
    pub messages_received: u64,
    /// Whether the run spoke socket.io (`--socketio`, or the wss's stack).
    pub socketio: bool,
    /// socket.io pings answered on all connections (what keeps idle sockets open).
    pub pings_answered: u64,
    /// Bytes of binary messages the data connection received (the wss's echoes,
    /// with `wss_echo`): equal to `data_bytes_sent` when no byte was lost.
    pub data_bytes_received: u64,
    /// Times the data connection was lost after it had opened.
    pub data_lost: u64,
    /// Lost connections (pinning or data) reopened with `--reconnect`.
    pub reconnects: u64,
    /// Attempts to reopen a lost connection that failed.
    pub reconnect_failed: u64,
    /// Pinning connections that sent all their own traffic (`client_pinMessageSize`,
    /// `client_pinDataBytes`), and the messages and bytes they sent.
    pub pin_traffic_done: u64,
    pub pin_messages_sent: u64,
    pub pin_bytes_sent: u64,
    /// Snapshot files written with `--save-snapshots`.
    pub saved: Vec<PathBuf>,
    /// Where the client's own snapshot was served.
    pub snapshot_addr: SocketAddr,
    /// The report, when asked for.
    pub report: Option<Report>,
}

/// Phase names of [`ClientError::Timeout`].
pub const CONNECTING: &str = "connecting to the proxy";

/// Settings of `config.json` that each make sense, but not together for a run.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "client_dataSize ({data_size}) is above max_message_size ({max_message_size}): the wss \
         would close the data connection at every message; lower client_dataSize or raise \
         max_message_size"
    )]
    DataAboveMaxMessage {
        data_size: u64,
        max_message_size: usize,
    },
}

/// Why opening a websocket, or the whole run, failed; every variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The settings cannot work together (exit code 2, like a config error).
    #[error(transparent)]
    Config(#[from] SettingsError),
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
    Certificate(#[from] runtime::tls::TlsError),
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
    /// Any other failure of the dialer ([`connect::dial`]) to open a websocket.
    #[error(transparent)]
    Open(connect::DialError),
    /// The client's own snapshot endpoint could not listen.
    #[error(
        "{source} (the client's own snapshot at {addr}: set client_heapdump_port to a free port)"
    )]
    Snapshot { addr: SocketAddr, source: io::Error },
    /// Every open connection was lost (without `--reconnect`); the message says
    /// which, how many, and whether the proxy still accepts connections.
    #[error("{message}")]
    Lost {
        message: String,
        /// What the run did up to then (its report, its saved snapshots).
        summary: Box<ClientSummary>,
    },
    /// `--save-snapshots` could not save a snapshot (what and where).
    #[error("{message}")]
    Save {
        message: String,
        /// What the run did (the run itself went to its end).
        summary: Option<Box<ClientSummary>>,
    },
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

    /// What the run did, when it ran before it failed.
    pub fn summary(&self) -> Option<&ClientSummary> {
        match self {
            ClientError::Lost { summary, .. } => Some(summary),
            ClientError::Save { summary, .. } => summary.as_deref(),
            _ => None,
        }
    }
}

/// Runs the client until `shutdown` is triggered or `options.duration` has passed;
/// then prints the report if asked, closes every websocket (bounded), and returns.
///
/// Connection failures are counted and logged, never fatal by themselves; settings
/// that cannot work, a snapshot port that cannot be bound, a `--save-snapshots`
/// folder that cannot be used, and (without `reconnect`) losing every open
/// connection end the run with an error.
/// The caller's `shutdown` is watched, not triggered: everything the run starts
/// has ended (or been abandoned after a bounded wait) when it returns.
pub async fn run(
    config: Config,
    options: ClientOptions,
    shutdown: Shutdown,
) -> Result<ClientSummary, ClientError> {
    load::run(config, options, shutdown).await
}

/// What the client's own snapshot is taken from: the state every process has, and
/// the two sections only the client's snapshot holds.
pub(crate) struct Own {
    pub(crate) state: Arc<State>,
    /// What the pinning connections sent: the snapshot's `client` section.
    pub(crate) pin_traffic: Arc<PinCounters>,
    /// The live figures of a running audit: the snapshot's `audit` section.
    pub(crate) audit: Arc<Mutex<Option<snapshot::Audit>>>,
}

impl Own {
    /// A fresh client state whose snapshots hold the client's sections.
    fn new(config: &Config) -> Own {
        let own = Own {
            state: State::new(runtime::Role::Client, config, Default::default()),
            pin_traffic: Arc::default(),
            audit: Arc::default(),
        };
        let (pins, audit) = (own.pin_traffic.clone(), own.audit.clone());
        own.state.add_sections(move |s| {
            s.client = Some(pins.snapshot());
            s.audit = audit.lock().ok().and_then(|a| a.clone());
        });
        own
    }
}

/// The client's own snapshot endpoint, on `client_heapdump_port`, with a fresh client
/// state ([`Own`]). It runs under a shutdown of its own, triggered by `shutdown` and
/// finished by the caller once its run is over (so the caller's shutdown is only
/// watched). Returns that state, that shutdown and the address bound, or the address
/// that could not be bound and why.
pub(crate) async fn serve_own_snapshot(
    config: &Config,
    shutdown: &Shutdown,
) -> Result<(Own, Shutdown, SocketAddr), (SocketAddr, io::Error)> {
    let inner = Shutdown::new();
    {
        let (outer, inner) = (shutdown.clone(), inner.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = outer.cancelled() => inner.trigger(),
                _ = inner.cancelled() => {}
            }
        });
    }
    let own = Own::new(config);
    let addr = SocketAddr::new(config.snapshot_bind, config.client_heapdump_port);
    match collector::endpoint::serve_with(
        addr,
        own.state.clone(),
        inner.clone(),
        collector::endpoint::EndpointSettings::from_config(config),
    )
    .await
    {
        Ok(bound) => Ok((own, inner, bound)),
        Err(source) => {
            inner.trigger();
            Err((addr, source))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound_with_jitter() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for (n, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            let full = Duration::from_millis(full);
            let pauses: Vec<Duration> = (0..50).map(|_| b.pause(n)).collect();
            for p in &pauses {
                assert!(
                    *p >= full / 2 && *p <= full,
                    "attempt {n}: {p:?} not in {full:?}/2..{full:?}"
                );
            }
            let first = pauses[0];
            assert!(pauses.iter().any(|p| *p != first), "attempt {n}: no jitter");
        }
    }
}
