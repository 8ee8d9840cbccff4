//! The headless Chromium of the end-to-end tests: where its programs are, the flags
//! every test starts it with, and [`DevTools`], a page driven over the DevTools
//! protocol on its debugging port (what `tests/heapsnapshot.rs` loads the servers'
//! heap snapshots into). Only the e2e tests drive a browser, so this lives here and
//! not in the workspace's testkit.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use testkit::ChildGuard;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The flags every test starts chromium with (headless, no sandbox, nothing that
/// reaches out to the network by itself); each test adds its window size and profile.
pub const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Finds a program on PATH or in ~/.cargo/bin, with a hint when it is missing.
pub fn program(name: &str) -> PathBuf {
    let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: run scripts/setup --browser"))
}

/// A headless chromium, and a page of it driven over the DevTools protocol on its
/// debugging port. The page is on the debugging port's own origin, so it can import
/// the DevTools front end's modules that chromium serves there. Chromium is killed
/// when this drops.
pub struct DevTools {
    _child: ChildGuard,
    _profile: tempfile::TempDir,
    cdp: tokio_tungstenite::WebSocketStream<TcpStream>,
    next: u64,
    /// The bound of every wait on chromium.
    bound: Duration,
}

impl DevTools {
    /// Starts chromium headless with a debugging port and opens the page on it;
    /// every wait on chromium (here and in each call) is bounded by `bound`.
    pub async fn start(bound: Duration) -> DevTools {
        let profile = tempfile::tempdir().unwrap();
        let child = ChildGuard::spawn(
            Command::new(program("chromium"))
                .args(FLAGS)
                .args(["--window-size=1400,1000", "--remote-debugging-port=0"])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg("about:blank")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromium starts (scripts/setup --browser installs it)");
        // Chromium writes the port it took into the profile.
        let active = profile.path().join("DevToolsActivePort");
        let mut port = 0;
        testkit::expect(
            "chromium's DevToolsActivePort",
            bound,
            testkit::POLL,
            || {
                let text = std::fs::read_to_string(&active).unwrap_or_default();
                port = text
                    .lines()
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                std::future::ready(port != 0)
            },
        )
        .await;
        let pages = http_get(port, "/json/list", bound).await;
        let pages: Value = serde_json::from_str(&pages).unwrap();
        let url = pages
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == "page")
            .and_then(|p| p["webSocketDebuggerUrl"].as_str())
            .expect("a page to drive")
            .to_string();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (cdp, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
        let mut c = DevTools {
            _child: child,
            _profile: profile,
            cdp,
            next: 0,
            bound,
        };
        // A page on the debugging port's own origin can import DevTools' modules.
        let page = format!("http://127.0.0.1:{port}/json/version");
        c.call("Page.navigate", json!({ "url": page })).await;
        let start = Instant::now();
        loop {
            let at = c.eval("location.href + ' ' + document.readyState").await;
            if at.as_str() == Some(&format!("{page} complete")) {
                break;
            }
            assert!(start.elapsed() < bound, "the page did not load: {at}");
            tokio::time::sleep(testkit::POLL).await;
        }
        c
    }

    /// One DevTools protocol call; its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.cdp.send(Message::text(message)).await.unwrap();
        let bound = self.bound;
        loop {
            let answer = tokio::time::timeout(bound, self.cdp.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within {bound:?}"))
                .expect("chromium's protocol socket open")
                .unwrap();
            let Message::Text(text) = answer else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page, awaiting a promise; its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("the page threw: {e}");
        }
        r["result"]["value"].clone()
    }
}

/// A plain HTTP GET on loopback; the body (chromium's debugging port answers with a
/// Content-Length and keeps the connection open).
async fn http_get(port: u16, path: &str, bound: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "chromium closed the connection early");
            all.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&all).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("a Content-Length");
                if body.len() >= length {
                    return body[..length].to_string();
                }
            }
        }
    };
    tokio::time::timeout(bound, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} on chromium's debugging port: no answer"))
}
