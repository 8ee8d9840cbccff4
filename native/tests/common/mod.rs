//! A whole playground (wss + TLS proxy) on ephemeral loopback ports, for tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use native::client::WsStream;
use native::config::Config;
use native::shutdown::Shutdown;
use native::wss::Running;
use snapshot::{HeadMode, Snapshot};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound of every wait in the tests.
pub const BOUND: Duration = Duration::from_secs(20);

/// Small slabs and fast limits: the seed's scenario, accelerated.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        proxy_port: 0,
        proxy_heapdump_port: 0,
        wss_port: 0,
        wss_heapdump_port: 0,
        client_heapdump_port: 0,
        tcp_slab_size: 64 << 10,
        tls_slab_size: 128 << 10,
        read_size: 4 << 10,
        wss_echo: true,
        header_timeout_ms: 1500,
        upstream_timeout_ms: 2000,
        cert_dir: dir.join("certs"),
        ..Config::default()
    }
}

pub struct Playground {
    pub config: Config,
    pub wss: Running,
    pub proxy: Running,
    pub shutdown: Shutdown,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    _dir: tempfile::TempDir,
}

impl Playground {
    /// Starts wss then proxy with these head modes and any other changes.
    pub async fn start(wss: HeadMode, proxy: HeadMode, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.wss_head = wss;
        config.proxy_head = proxy;
        tweak(&mut config);
        let shutdown = Shutdown::new();
        let wss = native::wss::start(&config, &shutdown).await.unwrap();
        if config.proxy_target.port == 0 || config.proxy_target.port == 8800 {
            config.proxy_target.port = wss.addr.port();
        }
        let proxy = native::proxy::start(&config, &shutdown).await.unwrap();
        config.proxy_port = proxy.addr.port();
        let tls = config
            .proxy_tls
            .then(|| native::tls::client_config(&config).unwrap());
        Playground {
            config,
            wss,
            proxy,
            shutdown,
            tls,
            _dir: dir,
        }
    }

    /// A snapshot read over HTTP from the server's own endpoint, checked against the schema.
    pub async fn snapshot(&self, server: &Running) -> Snapshot {
        let json = native::snapshot::fetch::get_json(server.snapshot_addr, "/snapshot")
            .await
            .unwrap();
        if let Err(errors) = snapshot::validate(&json) {
            panic!("snapshot does not match the schema: {errors:#?}\n{json}");
        }
        serde_json::from_value(json).unwrap()
    }

    /// A websocket through the proxy, once the wss's greeting has come back.
    pub async fn open(&self) -> WsStream {
        let mut ws = native::client::open_websocket(&self.config, self.tls.as_ref())
            .await
            .unwrap();
        let greeting = tokio::time::timeout(BOUND, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            greeting.to_text().unwrap().starts_with("hello from wss"),
            "{greeting:?}"
        );
        ws
    }

    /// A raw TLS (or plain) connection to the proxy, for hand-written bytes.
    pub async fn raw_proxy(&self) -> Box<dyn Io> {
        let tcp = TcpStream::connect(self.proxy.addr).await.unwrap();
        match &self.tls {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                Box::new(connector.connect(name, tcp).await.unwrap())
            }
            None => Box::new(tcp),
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Waits until `check` holds, polling every 20 ms, for at most [`BOUND`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the peer closes (or [`BOUND`]), returning all it sent.
pub async fn read_to_close(io: &mut (impl AsyncRead + Unpin)) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, io.read_to_end(&mut out))
        .await
        .expect("the server closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `bytes` and returns the whole answer up to the close.
pub async fn exchange(io: &mut (impl AsyncRead + AsyncWrite + Unpin), bytes: &[u8]) -> String {
    io.write_all(bytes).await.unwrap();
    read_to_close(io).await
}

/// A valid websocket upgrade request.
pub const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
