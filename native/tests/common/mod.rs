//! A whole playground (wss + TLS proxy) on ephemeral loopback ports, for tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::WsStream;
use futures_util::StreamExt;
use runtime::config::Config;
use runtime::server::Running;
use runtime::shutdown::Shutdown;
use snapshot::{HeadMode, Snapshot, Stack};
use testkit::{ChildGuard, Lines};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound of every wait in the tests.
pub const BOUND: Duration = Duration::from_secs(20);

/// Small slabs and fast limits: the seed's scenario, accelerated.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        tcp_slab_size: 64 << 10,
        tls_slab_size: 128 << 10,
        read_size: 4 << 10,
        wss_echo: true,
        header_timeout_ms: 1500,
        upstream_timeout_ms: 2000,
        ..testkit::ephemeral_config(dir)
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
        Self::start_each(wss, proxy, tweak, |_| {}).await
    }

    /// [`Playground::start`] with both servers on `stack`.
    pub async fn start_on(
        stack: Stack,
        wss: HeadMode,
        proxy: HeadMode,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start(wss, proxy, |c| {
            c.wss_stack = stack;
            c.proxy_stack = stack;
            tweak(c);
        })
        .await
    }

    /// The stack the wss runs on.
    pub fn wss_stack(&self) -> Stack {
        self.wss.state.stack.expect("a server has a stack")
    }

    /// The stack the proxy runs on.
    pub fn proxy_stack(&self) -> Stack {
        self.proxy.state.stack.expect("a server has a stack")
    }

    /// [`Playground::start`], with changes `proxy_only` made to the proxy's config alone.
    pub async fn start_each(
        wss: HeadMode,
        proxy: HeadMode,
        tweak: impl FnOnce(&mut Config),
        proxy_only: impl FnOnce(&mut Config),
    ) -> Self {
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
        proxy_only(&mut config);
        let proxy = native::proxy::start(&config, &shutdown).await.unwrap();
        config.proxy_port = proxy.addr.port();
        let tls = config
            .proxy_tls
            .then(|| runtime::tls::client_config(&config).unwrap());
        Playground {
            config,
            wss,
            proxy,
            shutdown,
            tls,
            _dir: dir,
        }
    }

    /// A load client's config for this playground: `pinning` pinning connections
    /// opened at 200/s, the servers' snapshot ports, its own on a free port.
    pub fn client_config(&self, pinning: u64) -> Config {
        let mut config = self.config.clone();
        config.proxy_heapdump_port = self.proxy.snapshot_addr.port();
        config.wss_heapdump_port = self.wss.snapshot_addr.port();
        config.client_heapdump_port = testkit::free_port();
        config.client_max_connections = pinning;
        config.client_connections_per_second = 200.0;
        config
    }

    /// A snapshot read over HTTP from the server's own endpoint, checked against the schema.
    pub async fn snapshot(&self, server: &Running) -> Snapshot {
        let json = client::fetch::get_json(server.snapshot_addr, "/snapshot")
            .await
            .unwrap();
        checked(json)
    }

    /// A websocket through the proxy, once the wss's greeting has come back.
    pub async fn open(&self) -> WsStream {
        let mut ws = client::open_websocket(&self.config, self.tls.as_ref())
            .await
            .unwrap();
        expect_greeting(&mut ws).await;
        ws
    }

    /// A raw TLS (or plain) connection to the proxy, for hand-written bytes.
    pub async fn raw_proxy(&self) -> Box<dyn Io> {
        let tcp = TcpStream::connect(self.proxy.addr).await.unwrap();
        self.tls_over(tcp).await
    }

    /// A websocket straight to the wss, once its greeting has come back.
    pub async fn open_direct(&self) -> DirectWs {
        let tcp = TcpStream::connect(self.wss.addr).await.unwrap();
        let url = format!("ws://{}/", self.wss.addr);
        let (mut ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::client_async(url, tcp))
            .await
            .unwrap()
            .unwrap();
        expect_greeting(&mut ws).await;
        ws
    }

    /// TLS over `tcp` when the proxy speaks it (as [`Playground::raw_proxy`] does).
    pub async fn tls_over(&self, tcp: TcpStream) -> Box<dyn Io> {
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

/// A snapshot's JSON read as a [`Snapshot`], once it is checked against the schema.
pub fn checked(json: serde_json::Value) -> Snapshot {
    if let Err(errors) = snapshot::validate(&json) {
        panic!("snapshot does not match the schema: {errors:#?}\n{json}");
    }
    serde_json::from_value(json).unwrap()
}

/// Bytes of one burst of the seed's data connection: more than a TLS slab of
/// [`test_config`], so that each burst moves both pools on to new slabs.
pub const BURST: usize = 160 << 10;

/// Sends one [`BURST`] on `data` and waits for its echo: the wss (and the proxy on
/// the way) has read all of it once this returns.
pub async fn burst(data: &mut WsStream) {
    use futures_util::SinkExt;
    data.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        0xAB;
        BURST
    ]))
    .await
    .unwrap();
    let echo = tokio::time::timeout(BOUND, data.next())
        .await
        .expect("the burst's echo within the bound")
        .expect("the data connection open")
        .unwrap();
    assert_eq!(echo.len(), BURST);
}

/// Whether a server's snapshot shows it holding nothing for past connections: none
/// open, and nothing kept: no slab beyond the current ones nor any retainer (slab
/// stack), no pinned allocation nor kept byte (warp stack).
pub fn holds_nothing(snap: &Snapshot) -> bool {
    let pinned = &snap.pinned_allocations;
    snap.connections.open == 0
        && snap
            .pools
            .iter()
            .all(|p| p.live_slabs <= 1 && p.slabs.iter().all(|s| s.retainers.is_empty()))
        && pinned.allocations.is_empty()
        && pinned.kept_bytes == 0
        && pinned.unattributed_parts == 0
}

/// The allocations that the kept parts of each open connection pin, as the snapshot
/// attributes them: (part, allocation size) by connection.
pub fn pinned_by_connection(
    snap: &Snapshot,
) -> std::collections::BTreeMap<u64, Vec<(String, u64)>> {
    let mut by = std::collections::BTreeMap::<u64, Vec<(String, u64)>>::new();
    for a in &snap.pinned_allocations.allocations {
        for k in &a.kept {
            by.entry(k.connection)
                .or_default()
                .push((k.part.to_string(), a.size));
        }
    }
    by
}

/// One test per server stack for each named body `async fn name(stack: Stack)`:
/// `slab::name` and `warp::name`, each with the attribute given (`#[tokio::test]`).
#[allow(unused_macros)]
macro_rules! on_both_stacks {
    (#[$attr:meta] $($name:ident),+ $(,)?) => {
        mod slab {
            $( #[$attr] async fn $name() { super::$name(snapshot::Stack::Slab).await } )+
        }
        mod warp {
            $( #[$attr] async fn $name() { super::$name(snapshot::Stack::Warp).await } )+
        }
    };
}

/// A websocket straight to the wss.
pub type DirectWs = tokio_tungstenite::WebSocketStream<TcpStream>;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Reads the wss's greeting, the first message of every websocket it accepts.
pub async fn expect_greeting<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = tokio::time::timeout(BOUND, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        greeting.to_text().unwrap().starts_with("hello from wss"),
        "{greeting:?}"
    );
}

/// Waits until `check` holds, polling every 20 ms, for at most [`BOUND`].
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    testkit::expect(what, BOUND, Duration::from_millis(20), check).await
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

/// A connection whose receive buffer is as small as the kernel allows: a peer that
/// does not read fills it (and the sender's buffers) quickly.
pub async fn connect_unread(addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    socket.connect(addr).await.unwrap()
}

#[allow(unused_imports)]
pub use slab_stack::ws::client_frame;

/// A server's answer: the response head, then its (unmasked) frames as (opcode, payload).
pub fn server_frames(answer: &[u8]) -> (String, Vec<(u8, Vec<u8>)>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut frames = Vec::new();
    let mut rest = &answer[end..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, at) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        if rest.len() < at + len {
            break;
        }
        frames.push((opcode, rest[at..at + len].to_vec()));
        rest = &rest[at + len..];
    }
    (head, frames)
}

/// The code of the close frame among `frames`, if there is one with a code.
pub fn close_code(frames: &[(u8, Vec<u8>)]) -> Option<u16> {
    frames
        .iter()
        .find(|(opcode, _)| *opcode == 0x8)
        .and_then(|(_, p)| (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])))
}

/// Reads everything up to the close (or [`BOUND`]), as bytes.
pub async fn read_all(io: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, io.read_to_end(&mut out))
        .await
        .expect("the server closed the connection");
    out
}

/// A binary of the package run as its own process (`RUST_LOG=info`), its stderr read
/// line by line ([`Lines`]) so that waits on it are bounded and it never blocks on a
/// full pipe. Interrupted (SIGINT) and reaped when dropped, killed if it has not
/// exited within [`BOUND`] of that.
pub struct Program {
    pub child: ChildGuard,
    lines: Lines,
}

impl Program {
    /// Starts `bin` in `dir` with `args`.
    pub fn start(bin: &str, dir: &std::path::Path, args: &[&str]) -> Program {
        let mut child = ChildGuard::spawn(
            std::process::Command::new(bin)
                .current_dir(dir)
                .args(args)
                .env("RUST_LOG", "info")
                .stderr(std::process::Stdio::piped()),
        )
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
        .stop_with(libc::SIGINT, BOUND);
        let lines = Lines::stderr(&mut child);
        Program { child, lines }
    }

    /// The first line (from now) that contains `what`, waiting at most [`BOUND`].
    pub fn line_with(&mut self, what: &str) -> String {
        self.lines.line_with(what, BOUND)
    }

    /// Sends SIGINT, waits for the exit, and returns its code with the lines printed
    /// until then.
    pub fn interrupt(mut self) -> (Option<i32>, Vec<String>) {
        let _ = self.child.interrupt();
        let code = self.child.wait().unwrap().code();
        // Every line up to the end of stderr, which closes with the exited process.
        (code, self.lines.rest(BOUND))
    }
}

/// A server binary running as its own process; stopped with SIGINT when dropped.
pub struct Server {
    pub program: Program,
    pub addr: std::net::SocketAddr,
    pub snapshot: std::net::SocketAddr,
}

impl Server {
    /// The wss binary as its own process, on ports the kernel picks, with
    /// `settings` (config.json keys and their values) on its command line.
    pub fn wss(dir: &std::path::Path, settings: &[(&str, &str)]) -> Server {
        let mut args: Vec<String> = ["--wss_port", "0", "--wss_heapdump_port", "0"]
            .map(String::from)
            .to_vec();
        for (key, value) in settings {
            args.push(format!("--{key}"));
            args.push(value.to_string());
        }
        Server::start(env!("CARGO_BIN_EXE_wss"), dir, &args)
    }

    /// Starts `bin` with `args` in `dir` and reads its addresses from its startup line.
    pub fn start(bin: &str, dir: &std::path::Path, args: &[String]) -> Server {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut program = Program::start(bin, dir, &args);
        let line = program.line_with("listening on");
        let after = |marker: &str| -> std::net::SocketAddr {
            let rest = &line[line
                .find(marker)
                .unwrap_or_else(|| panic!("{marker} in {line}"))
                + marker.len()..];
            let end = rest
                .find(|c: char| c == '/' || c.is_whitespace() || c == ';')
                .unwrap_or(rest.len());
            rest[..end]
                .parse()
                .unwrap_or_else(|e| panic!("{e}: {line}"))
        };
        let addr = after("://");
        let snapshot = after("snapshot on http://");
        Server {
            program,
            addr,
            snapshot,
        }
    }

    pub fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.program.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap();
        kb * 1024
    }

    pub async fn snapshot(&self) -> Snapshot {
        client::fetch::fetch(self.snapshot).await.unwrap()
    }

    /// RSS once it has stopped moving: two reads 300 ms apart within 1 %, at most 15 s.
    pub async fn settled_rss(&self) -> u64 {
        let start = std::time::Instant::now();
        let mut last = self.rss();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.rss();
            if now.abs_diff(last) * 100 <= last || start.elapsed() > Duration::from_secs(15) {
                return now;
            }
            last = now;
        }
    }
}
