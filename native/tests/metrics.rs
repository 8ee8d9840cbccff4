//! `GET /metrics` on every snapshot port, read back by real parsers (the
//! `prometheus-parse` crate and Prometheus's own `promtool check metrics`) and
//! compared with the snapshot taken around it, on both stacks and for the client;
//! then scraped by Debian's real `prometheus` during the accelerated seed scenario.
//!
//! `promtool` and `prometheus` come with Debian's `prometheus` package
//! (`scripts/setup --prometheus`). Without them a test says so and passes, except
//! in CI (`CI` set), where their absence fails it.

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use client::ClientOptions;
use common::{exchange, wait_until, Playground, BOUND};
use futures_util::{SinkExt, StreamExt};
use prometheus_parse::{Scrape, Value};
use runtime::shutdown::Shutdown;
use serde_json::Value as Json;
use snapshot::{HeadMode, Snapshot, Stack};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

on_both_stacks! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    the_exposition_is_valid_and_holds_the_snapshots_figures,
}

/// Where a tool of Debian's `prometheus` package is, if installed.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tool, or `None` after saying why the check is skipped; in CI its absence
/// fails the test.
fn tool_or_skip(name: &str, what: &str) -> Option<PathBuf> {
    let found = tool(name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed, and CI must run {what}: run scripts/setup --prometheus \
             (Debian's prometheus package)"
        );
        eprintln!(
            "SKIPPED: {what}: {name} is not installed (scripts/setup --prometheus installs \
             Debian's prometheus package)"
        );
    }
    found
}

/// `GET /metrics` of a snapshot port.
async fn metrics(addr: SocketAddr) -> String {
    client::fetch::get_text(addr, "/metrics")
        .await
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
}

/// The exposition parsed, after checking that every line is a comment or a sample
/// the parser took, that each sample's metric has a HELP and a TYPE (counter or
/// gauge), that no series is there twice, that every series carries `role` (and
/// `stack` when given) and that `promtool check metrics` finds nothing to say.
fn parse_checked(text: &str, role: &str, stack: Option<Stack>) -> Scrape {
    let lines: Vec<&str> = text.lines().collect();
    let sample_lines = lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let scrape = Scrape::parse(lines.iter().map(|l| Ok(l.to_string()))).unwrap();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "every sample line parses:\n{text}"
    );
    assert!(sample_lines > 30, "{text}");
    let mut seen = HashSet::new();
    for s in &scrape.samples {
        assert!(
            scrape
                .docs
                .get(&s.metric)
                .is_some_and(|h| !h.trim().is_empty()),
            "{} has a HELP line",
            s.metric
        );
        match s.value {
            Value::Counter(_) => assert!(s.metric.ends_with("_total"), "{}", s.metric),
            Value::Gauge(_) => assert!(!s.metric.ends_with("_total"), "{}", s.metric),
            ref other => panic!("{}: a counter or a gauge, not {other:?}", s.metric),
        }
        assert!(
            s.metric
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            s.metric
        );
        assert_eq!(s.labels.get("role"), Some(role), "{}", s.metric);
        assert_eq!(
            s.labels.get("stack"),
            stack.map(Stack::as_str),
            "{}",
            s.metric
        );
        let key = (s.metric.clone(), s.labels.to_string());
        assert!(seen.insert(key), "{} {} twice", s.metric, s.labels);
    }
    if let Some(promtool) = tool_or_skip("promtool", "promtool check metrics") {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics: {said}\n{text}"
        );
    }
    scrape
}

/// The value of the series `name` with exactly these labels besides `role`/`stack`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && s.labels.len() == labels.len() + 1 + usize::from(s.labels.contains_key("stack"))
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// Series by (metric name, labels besides `role`/`stack`), with their values.
type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

/// The series a snapshot's figures give, which the exposition must hold with these
/// values when they do not move between two snapshots (nothing connects or sends).
fn expected(s: &Snapshot) -> Series {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, labels: &[(&str, &str)], v: u64| {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.insert((name.to_string(), labels), v as f64);
    };
    for p in &s.pools {
        let l = [("pool", p.name.as_str())];
        put("slab_size_bytes", &l, p.slab_size);
        put("slab_live_slabs", &l, p.live_slabs);
        put("slab_retained_bytes", &l, p.retained_bytes);
        put("slab_referenced_bytes", &l, p.referenced_bytes);
        put("slab_allocated_total", &l, p.slabs_allocated_total);
        put("slab_freed_total", &l, p.slabs_freed_total);
        put("slab_reads_total", &l, p.reads_total);
        put("slab_read_bytes_total", &l, p.bytes_read_total);
    }
    let c = &s.connections;
    put("websocket_connections_open", &[], c.open);
    put(
        "websocket_connections_accepted_total",
        &[],
        c.accepted_total,
    );
    put("websocket_connections_closed_total", &[], c.closed_total);
    put("websocket_connections_failed_total", &[], c.failed_total);
    let m = &c.open_by_head_mode;
    for (mode, n) in [("retain", m.retain), ("copy", m.copy), ("drop", m.drop)] {
        put(
            "websocket_connections_open_by_head_mode",
            &[("head_mode", mode)],
            n,
        );
    }
    if let Some(mode) = s.settings.head_mode {
        for m in HeadMode::ALL {
            put(
                "websocket_head_mode",
                &[("head_mode", m.as_str())],
                u64::from(m == mode),
            );
        }
    }
    let g = &s.guard;
    put("guard_memory_limit_bytes", &[], g.memory_limit_bytes);
    put("guard_memory_tripped", &[], u64::from(g.memory_tripped));
    put("guard_memory_trips_total", &[], g.memory_trips_total);
    put("guard_max_connections", &[], g.max_connections);
    put(
        "guard_connection_cap_reached",
        &[],
        u64::from(g.at_connection_cap),
    );
    put("guard_refused_total", &[], g.refused_total);
    let p = &s.pinned_allocations;
    put("pinned_allocations", &[], p.allocations.len() as u64);
    put("pinned_bytes", &[], p.pinned_bytes);
    put("pinned_kept_bytes", &[], p.kept_bytes);
    put(
        "pinned_kept_parts",
        &[],
        p.allocations.iter().map(|a| a.kept.len() as u64).sum(),
    );
    put("pinned_unattributed_parts", &[], p.unattributed_parts);
    put("pinned_unattributed_bytes", &[], p.unattributed_bytes);
    put("alloc_registry_enabled", &[], u64::from(p.registry.enabled));
    put(
        "alloc_registry_threshold_bytes",
        &[],
        p.registry.threshold_bytes,
    );
    put("alloc_registry_capacity", &[], p.registry.capacity);
    put(
        "alloc_registry_overflowed_total",
        &[],
        p.registry.overflowed_total,
    );
    if let Some(t) = &s.client {
        put("client_pin_traffic_done_total", &[], t.pin_traffic_done);
        put("client_pin_messages_sent_total", &[], t.pin_messages_sent);
        put("client_pin_sent_bytes_total", &[], t.pin_bytes_sent);
    }
    out
}

/// The series of `scrape` that [`expected`] names, with their values.
fn found(scrape: &Scrape, like: &Series) -> Series {
    like.keys()
        .filter_map(|key| {
            let labels: Vec<(&str, &str)> = key
                .1
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            value(scrape, &key.0, &labels).map(|v| (key.clone(), v))
        })
        .collect()
}

/// Snapshot, scrape, snapshot, until the two snapshots agree on every figure of
/// [`expected`]; then the scrape must hold them. Returns the scrape and the snapshot.
async fn scrape_between_snapshots(
    addr: SocketAddr,
    role: &str,
    stack: Option<Stack>,
) -> (Scrape, Snapshot) {
    let snapshot_at = |addr| async move {
        let json = client::fetch::get_json(addr, "/snapshot").await.unwrap();
        serde_json::from_value::<Snapshot>(json).unwrap()
    };
    let last = std::sync::Mutex::new(None);
    wait_until("two snapshots around a scrape agree", || async {
        let before = snapshot_at(addr).await;
        let text = metrics(addr).await;
        let after = snapshot_at(addr).await;
        let stable = expected(&before) == expected(&after);
        *last.lock().unwrap() = Some((text, before));
        stable
    })
    .await;
    let (text, snap) = last.into_inner().unwrap().unwrap();
    let scrape = parse_checked(&text, role, stack);
    let want = expected(&snap);
    assert_eq!(
        found(&scrape, &want),
        want,
        "{role}: the snapshot's figures"
    );
    (scrape, snap)
}

/// `process_open_fds` against what this process sees in `/proc/self/fd` (the servers
/// run in the test's own process). The other tests of this file open and close
/// websockets in the same process, so the two are compared at a moment when the
/// count held still around the scrape (within [`common::BOUND`]).
async fn check_open_fds(addr: SocketAddr) {
    let count = || std::fs::read_dir("/proc/self/fd").unwrap().count() as f64;
    let last = std::sync::Mutex::new((0.0, 0.0));
    let quiet = runtime::wait::until(BOUND, Duration::from_millis(20), || async {
        let before = count();
        let text = metrics(addr).await;
        let after = count();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let open = value(&scrape, "process_open_fds", &[]).expect("process_open_fds");
        *last.lock().unwrap() = (open, after);
        before == after && (open - after).abs() <= 8.0
    })
    .await;
    let (open, fds) = *last.lock().unwrap();
    assert!(quiet, "open fds {open}, this process sees {fds}");
}

/// The process figures against what this process (the servers run in the test's
/// own process) reads of itself, and the figures that move against their bounds.
fn check_process(scrape: &Scrape, snap: &Snapshot) {
    let get = |name: &str| value(scrape, name, &[]).unwrap_or_else(|| panic!("{name}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = get("process_start_time_seconds");
    let state_started = (snap.taken_at_ms as f64 - snap.process.uptime_ms as f64) / 1e3;
    assert!(
        start <= state_started + 1.0 && start > now - 3600.0,
        "process start {start}, state started {state_started}, now {now}"
    );
    assert!(get("process_cpu_seconds_total") > 0.0);
    let (soft, _) = runtime::server::open_file_limit().unwrap();
    assert_eq!(get("process_max_fds"), soft as f64);
    assert!(get("process_resident_memory_bytes") > 1e6);
    assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
    let allocated = get("jemalloc_allocated_bytes");
    let active = get("jemalloc_active_bytes");
    assert!(
        allocated > 0.0 && allocated <= active,
        "{allocated} {active}"
    );
    assert!(active <= get("jemalloc_mapped_bytes"));
    assert!(get("jemalloc_resident_bytes") > 0.0);
    // Every figure was read, and the scrape says so, figure by figure.
    assert_eq!(snap.process.unreadable, vec![], "readable on Linux");
    for (figure, _) in snap.process.figures() {
        assert_eq!(
            value(scrape, "snapshot_figure_unreadable", &[("figure", figure)]),
            Some(0.0),
            "{figure}"
        );
    }
    let took = get("snapshot_duration_seconds");
    assert!(took > 0.0 && took < 5.0, "{took}");
}

/// The metric names docs/reference/metrics.md documents.
fn documented() -> HashSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference/metrics.md");
    let section = std::fs::read_to_string(path).expect("docs/reference/metrics.md is readable");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('|').nth(1).unwrap().split('`').skip(1).step_by(2))
        .map(String::from)
        .collect()
}

fn assert_documented(scrape: &Scrape) {
    let documented = documented();
    for s in &scrape.samples {
        assert!(
            documented.contains(&s.metric),
            "{} is not in docs/reference/metrics.md",
            s.metric
        );
    }
}

/// Opens `n` websockets through the proxy, each sending one small first message
/// (what the warp stack keeps in `retain`) echoed back before the next opens.
async fn open_with_a_message(pg: &Playground, n: usize) -> Vec<client::WsStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut ws = pg.open().await;
        ws.send(Message::binary(vec![7u8; 100])).await.unwrap();
        let echo = tokio::time::timeout(BOUND, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.len(), 100);
        out.push(ws);
    }
    out
}

async fn the_exposition_is_valid_and_holds_the_snapshots_figures(stack: Stack) {
    let pg = Playground::start_on(stack, HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    // Traffic on a connection that then closes: slabs allocated and freed, so that
    // each pool's counters differ from one another.
    let mut data = pg.open().await;
    for _ in 0..3 {
        common::burst(&mut data).await;
    }
    data.close(None).await.unwrap();
    let open = open_with_a_message(&pg, 4).await;
    for server in [&pg.proxy, &pg.wss] {
        let role = server.state.role.as_str();
        let (scrape, snap) =
            scrape_between_snapshots(server.snapshot_addr, role, Some(stack)).await;
        assert!(snap.connections.open >= 4, "{role}: {:?}", snap.connections);
        assert!(
            snap.pinned_allocations.pinned_bytes > 0,
            "{role}: retain pins something on the {stack} stack"
        );
        match stack {
            Stack::Slab => {
                let tcp = snap.pool("tcp").unwrap();
                assert!(
                    tcp.slabs_freed_total > 0 && tcp.live_slabs > 0,
                    "{role}: slabs freed and kept: {tcp:?}"
                );
            }
            Stack::Warp | Stack::Socketio => assert!(
                !scrape.samples.iter().any(|s| s.metric.starts_with("slab_")),
                "the {stack} stack has no slab pools"
            ),
        }
        check_process(&scrape, &snap);
        check_open_fds(server.snapshot_addr).await;
        assert_documented(&scrape);
    }
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_exposition_holds_its_own_traffic() {
    let pg = Playground::start(HeadMode::Drop, HeadMode::Drop, |_| {}).await;
    let mut config = pg.config.clone();
    config.proxy_heapdump_port = pg.proxy.snapshot_addr.port();
    config.wss_heapdump_port = pg.wss.snapshot_addr.port();
    config.client_heapdump_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.client_max_connections = 3;
    config.client_connections_per_second = 200.0;
    config.client_data_size = 0;
    config.client_pin_message_size = 200;
    let addr = SocketAddr::from(([127, 0, 0, 1], config.client_heapdump_port));
    let shutdown = Shutdown::new();
    let run = tokio::spawn(client::run(
        config,
        ClientOptions::default(),
        shutdown.clone(),
    ));
    wait_until(
        "the client's pinning connections sent their traffic",
        || async {
            client::fetch::fetch(addr)
                .await
                .ok()
                .and_then(|s| s.client)
                .is_some_and(|c| c.pin_traffic_done == 3)
        },
    )
    .await;
    let (scrape, snap) = scrape_between_snapshots(addr, "client", None).await;
    assert_eq!(value(&scrape, "websocket_connections_open", &[]), Some(3.0));
    assert_eq!(
        value(&scrape, "client_pin_sent_bytes_total", &[]),
        Some(600.0)
    );
    assert!(value(&scrape, "websocket_head_mode", &[("head_mode", "drop")]).is_none());
    check_process(&scrape, &snap);
    check_open_fds(addr).await;
    assert_documented(&scrape);
    shutdown.trigger();
    tokio::time::timeout(BOUND, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn metrics_follows_the_snapshot_ports_host_and_cors_rules() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let ask = |request: String| {
        let addr = pg.wss.snapshot_addr;
        async move {
            let mut io = TcpStream::connect(addr).await.unwrap();
            exchange(&mut io, request.as_bytes()).await
        }
    };
    let get = |host: &str, origin: &str| {
        format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: close\r\n\r\n")
    };
    let answer = ask(get("localhost", "Origin: http://localhost:8080\r\n")).await;
    let lower = answer.to_lowercase();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        lower.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{answer}"
    );
    assert!(
        lower.contains("access-control-allow-origin: http://localhost:8080"),
        "{answer}"
    );
    assert!(answer.contains("\nwebsocket_connections_open{role=\"wss\",stack=\"slab\"} "));
    let other = ask(get("127.0.0.1", "Origin: http://evil.example\r\n")).await;
    assert!(other.starts_with("HTTP/1.1 200 OK"), "{other}");
    assert!(
        !other.to_lowercase().contains("access-control-allow-origin"),
        "{other}"
    );
    // A page that rebinds its own name to 127.0.0.1 is refused, as for /snapshot.
    let rebound = ask(get("evil.example:8801", "")).await;
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(!rebound.contains("websocket_connections_open"), "{rebound}");
    let index = client::fetch::get_json(pg.wss.snapshot_addr, "/")
        .await
        .unwrap();
    assert!(index["endpoints"]["GET /metrics"].is_string(), "{index}");
}

// --- Debian's prometheus scraping the seed scenario ---------------------------

/// A `prometheus` server of our own: its config, a storage folder in a temp dir,
/// a free loopback port; killed when dropped.
struct Prometheus {
    child: testkit::ChildGuard,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping each `(job, snapshot port)` every `interval`.
    fn start(binary: &Path, jobs: &[(&str, SocketAddr)], interval: Duration) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let ms = interval.as_millis();
        let mut config = format!(
            "global:\n  scrape_interval: {ms}ms\n  scrape_timeout: {}ms\nscrape_configs:\n",
            ms * 4 / 5
        );
        for (job, addr) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = testkit::ChildGuard::spawn(
            std::process::Command::new(binary)
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/...` with these query parameters; the `data` of a success.
    async fn api(&self, endpoint: &str, params: &[(&str, &str)]) -> Json {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoded(v)))
            .collect();
        let path = format!("/api/v1/{endpoint}?{}", query.join("&"));
        let answer = client::fetch::get_json(self.addr, &path)
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}\n{}", self.log()));
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"].clone()
    }

    /// The one value an instant query gives now, if it gives one.
    async fn instant(&self, promql: &str) -> Option<f64> {
        let data = self.api("query", &[("query", promql)]).await;
        let result = data["result"].as_array()?;
        assert!(result.len() <= 1, "{promql}: {data}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

/// `text` percent-encoded for a query string.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Pinning connections in the Prometheus run; each arrives before a burst larger
/// than a TLS slab, as in slab_scenario.rs.
const PINNING: usize = 6;

/// Until Prometheus's latest `slab_retained_bytes` of both jobs equals what the
/// servers' own snapshots say now; returns (proxy, wss) retained bytes.
async fn prometheus_agrees(prom: &Prometheus, pg: &Playground, what: &str) -> (u64, u64) {
    let seen = std::sync::Mutex::new((0, 0));
    wait_until(what, || async {
        let mut now = [0u64; 2];
        for (i, (job, server)) in [("proxy", &pg.proxy), ("wss", &pg.wss)]
            .into_iter()
            .enumerate()
        {
            let snap = pg.snapshot(server).await;
            let query = format!("sum(slab_retained_bytes{{job=\"{job}\"}})");
            match prom.instant(&query).await {
                Some(v) if v == snap.totals.retained_bytes as f64 => now[i] = v as u64,
                _ => return false,
            }
        }
        *seen.lock().unwrap() = (now[0], now[1]);
        true
    })
    .await;
    seen.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_retained_bytes_rise_as_pinning_connections_arrive() {
    let Some(binary) = tool_or_skip("prometheus", "the scrape by a real prometheus") else {
        return;
    };
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let jobs: [(&str, SocketAddr); 2] = [
        ("proxy", pg.proxy.snapshot_addr),
        ("wss", pg.wss.snapshot_addr),
    ];
    let mut prom = Prometheus::start(&binary, &jobs, Duration::from_millis(250));
    let addr = prom.addr;
    wait_until("prometheus is ready", || {
        if let Ok(Some(status)) = prom.child.try_wait() {
            panic!("prometheus exited ({status}): {}", prom.log());
        }
        async move { client::fetch::get_text(addr, "/-/ready").await.is_ok() }
    })
    .await;
    wait_until("prometheus scrapes both servers", || async {
        prom.instant("sum(up)").await == Some(2.0)
    })
    .await;
    let started = seconds_now();

    // The accelerated seed scenario: the data connection, then pinning connections,
    // each followed by a burst larger than a TLS slab.
    let mut data = pg.open().await;
    let mut steps = vec![prometheus_agrees(&prom, &pg, "prometheus agrees before pinning").await];
    let mut pinning = Vec::new();
    for i in 0..PINNING {
        pinning.push(pg.open().await);
        common::burst(&mut data).await;
        let what = format!("prometheus agrees with both snapshots after pinning connection {i}");
        steps.push(prometheus_agrees(&prom, &pg, &what).await);
    }
    for pair in steps.windows(2) {
        assert!(
            pair[1].0 > pair[0].0 && pair[1].1 > pair[0].1,
            "retained bytes rise with each pinning connection (proxy, wss): {steps:?}"
        );
    }
    let (proxy_last, wss_last) = *steps.last().unwrap();
    assert!(proxy_last >= PINNING as u64 * (128 << 10), "{steps:?}");
    assert!(wss_last >= PINNING as u64 * (64 << 10), "{steps:?}");

    // The stored series holds every step's value, in order.
    for (k, job) in ["proxy", "wss"].into_iter().enumerate() {
        let query = format!("sum(slab_retained_bytes{{job=\"{job}\"}})");
        // Up to a step past the last scrape: the grid's last point comes after it.
        let (start, end) = (
            format!("{:.3}", started - 1.0),
            format!("{:.3}", seconds_now() + 0.5),
        );
        let data = prom
            .api(
                "query_range",
                &[
                    ("query", &query),
                    ("start", &start),
                    ("end", &end),
                    ("step", "0.1"),
                ],
            )
            .await;
        let values: Vec<u64> = data["result"][0]["values"]
            .as_array()
            .unwrap_or_else(|| panic!("{job}: {data}"))
            .iter()
            .map(|v| v[1].as_str().unwrap().parse::<f64>().unwrap() as u64)
            .collect();
        let mut at = 0;
        for step in &steps {
            let want = if k == 0 { step.0 } else { step.1 };
            match values[at..].iter().position(|v| *v == want) {
                Some(p) => at += p,
                None => {
                    panic!("{job}: {want} not in the stored series after index {at}: {values:?}")
                }
            }
        }
    }
    drop(pinning);
    data.close(None).await.unwrap();
}
