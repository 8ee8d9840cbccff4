//! The browser playground end to end: the real wss and TLS proxy, the app built by
//! trunk, and a real headless Chromium driven through chromedriver.
//!
//! Screenshots of each step are saved under `target/e2e/` as test artifacts.

use e2e::chromium::{program, FLAGS};
use e2e::{repo_root, target_dir};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use runtime::config::Config;
use runtime::server::Running;
use runtime::shutdown::Shutdown;
use serde_json::{json, Value};
use snapshot::{HeadMode, Stack};
use std::panic::AssertUnwindSafe;
use testkit::ChildGuard;
use tokio::process::Command;
use warp::Filter;

/// Upper bound of every wait on the page.
const BOUND: Duration = Duration::from_secs(60);
/// Pinning websockets the page opens.
const CONNECTIONS: u64 = 60;

fn artifacts() -> PathBuf {
    let dir = target_dir().join("e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The app built once for all tests of this file.
static APP: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// Builds the app with trunk (offline, as Trunk.toml says), once; returns its folder.
async fn built_app() -> PathBuf {
    APP.get_or_init(|| async {
        let dist = artifacts().join("dist");
        build_app(&dist).await;
        dist
    })
    .await
    .clone()
}

async fn build_app(dist: &Path) {
    let started = Instant::now();
    let out = Command::new(program("trunk"))
        .current_dir(repo_root())
        .args(["build", "--dist"])
        .arg(dist)
        .env("PATH", path_with_cargo_bin())
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(1200), out)
        .await
        .expect("trunk build within 20 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "trunk build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("e2e: app built in {:?}", started.elapsed());
}

fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    std::env::join_paths(dirs).unwrap()
}

/// Serves the built app, with a config.json that names the servers' real ports.
async fn serve_app(dist: PathBuf, config: Value, shutdown: &Shutdown) -> SocketAddr {
    let config_json = warp::path!("config.json").map(move || warp::reply::json(&config));
    let routes = config_json.or(warp::fs::dir(dist));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move { stop.cancelled().await })
            .run(),
    );
    addr
}

/// Starts chromedriver on a free port and waits until it listens; killed when the
/// guard drops.
async fn start_chromedriver() -> (ChildGuard, u16) {
    let port = testkit::free_port();
    let child = ChildGuard::spawn(
        std::process::Command::new(program("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("chromedriver starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for("chromedriver listening", || testkit::accepts(addr)).await;
    (child, port)
}

/// A headless Chromium session; `trust_self_signed` accepts the proxy's certificate.
async fn browser(port: u16, downloads: &Path, profile: &Path, trust_self_signed: bool) -> Client {
    let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
    args.push("--window-size=1400,1800".into());
    args.push(format!("--user-data-dir={}", profile.display()));
    if trust_self_signed {
        args.push("--ignore-certificate-errors".into());
    }
    let caps = json!({
        "acceptInsecureCerts": trust_self_signed,
        "goog:chromeOptions": {
            "binary": program("chromium"),
            "args": args,
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session")
}

/// Waits until `check` holds, polling every 100 ms, for at most [`BOUND`].
async fn wait_for<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    testkit::expect(what, BOUND, Duration::from_millis(100), check).await
}

/// Text of the element with this id, or "" while it is not there.
async fn text(page: &Client, id: &str) -> String {
    match page.find(Locator::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// An attribute of the element with this id, if both exist.
async fn attr(page: &Client, id: &str, name: &str) -> Option<String> {
    page.find(Locator::Id(id))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()?
}

/// The first integer in an element's text.
async fn number(page: &Client, id: &str) -> Option<u64> {
    let t = text(page, id).await;
    let digits: String = t
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Sets a form field as a user would, firing `input` and `change`.
async fn set(page: &Client, id: &str, value: &str) {
    page.execute(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];\
         e.dispatchEvent(new Event('input', {bubbles: true}));\
         e.dispatchEvent(new Event('change', {bubbles: true}));",
        vec![json!(id), json!(value)],
    )
    .await
    .unwrap_or_else(|e| panic!("cannot set #{id}: {e}"));
}

async fn click(page: &Client, id: &str) {
    page.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn screenshot(page: &Client, name: &str) {
    let png = page.screenshot().await.unwrap();
    let path = artifacts().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("e2e: screenshot {}", path.display());
}

/// Takes a last screenshot (also on failure), ends the session and the servers, then
/// passes the outcome on.
async fn finish<T, E: std::fmt::Debug>(
    page: Client,
    shutdown: &Shutdown,
    name: &str,
    result: std::thread::Result<Result<T, E>>,
) {
    screenshot(&page, name).await;
    if let Ok(source) = page.source().await {
        let _ = std::fs::write(artifacts().join(format!("{name}.html")), source);
    }
    let _ = page.close().await;
    shutdown.trigger();
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("not within the scenario's time limit: {e:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn server_json(server: &Running, path: &str) -> Value {
    client::fetch::get_json(server.snapshot_addr, path)
        .await
        .unwrap()
}

struct Servers {
    config: Config,
    wss: Running,
    proxy: Running,
}

async fn start_servers(
    dir: &Path,
    shutdown: &Shutdown,
    tweak: impl FnOnce(&mut Config),
) -> Servers {
    let mut config = Config {
        tcp_slab_size: 64 << 10,
        tls_slab_size: 256 << 10,
        read_size: 16 << 10,
        ..testkit::ephemeral_config(dir)
    };
    tweak(&mut config);
    let wss = native::wss::start(&config, shutdown).await.unwrap();
    config.proxy_target.port = wss.addr.port();
    let proxy = native::proxy::start(&config, shutdown).await.unwrap();
    config.proxy_port = proxy.addr.port();
    config.wss_port = wss.addr.port();
    config.wss_heapdump_port = wss.snapshot_addr.port();
    if config.client_heapdump_port == 0 {
        config.client_heapdump_port = 8802; // not served here; the page only needs a valid port
    }
    config.proxy_heapdump_port = proxy.snapshot_addr.port();
    Servers { config, wss, proxy }
}

/// Everything one browser test runs against.
struct Scene {
    _dir: tempfile::TempDir,
    _driver: ChildGuard,
    shutdown: Shutdown,
    servers: Servers,
    _app: SocketAddr,
    downloads: PathBuf,
    page: Client,
}

/// What a test's steps did: finished, panicked, or ran out of time.
type Outcome = std::thread::Result<Result<(), tokio::time::error::Elapsed>>;

/// Runs a test's steps with a time limit, catching a failure so the scene can end cleanly.
async fn attempt(steps: impl Future<Output = ()>) -> Outcome {
    let steps = tokio::time::timeout(Duration::from_secs(600), steps);
    AssertUnwindSafe(steps).catch_unwind().await
}

impl Scene {
    /// Servers (changed by `tweak`), the app, chromedriver and a browser session;
    /// `trust_self_signed` accepts the proxy's certificate.
    async fn start(trust_self_signed: bool, tweak: impl FnOnce(&mut Config)) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = Shutdown::new();
        let servers = start_servers(dir.path(), &shutdown, tweak).await;
        let config = serde_json::to_value(&servers.config).unwrap();
        let app = serve_app(built_app().await, config, &shutdown).await;
        let (driver, driver_port) = start_chromedriver().await;
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let profile = dir.path().join("profile");
        let page = browser(driver_port, &downloads, &profile, trust_self_signed).await;
        page.goto(&format!("http://{app}/")).await.unwrap();
        Scene {
            _dir: dir,
            _driver: driver,
            shutdown,
            servers,
            _app: app,
            downloads,
            page,
        }
    }

    /// Ends the scene with a screenshot named `name`, passing on what `steps` did.
    async fn end(self, name: &str, outcome: Outcome) {
        finish(self.page, &self.shutdown, name, outcome).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_the_experiment_against_the_real_servers() {
    let s = Scene::start(true, |_| {}).await;
    let outcome = attempt(experiment(&s.page, &s.servers, &s.downloads, Stack::Slab)).await;
    s.end("99-last", outcome).await;
}

/// The same experiment with both servers on the warp stack, each pinning websocket
/// sending its first message and its own traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_the_experiment_against_the_warp_stack() {
    let s = Scene::start(true, |c| {
        c.wss_stack = Stack::Warp;
        c.proxy_stack = Stack::Warp;
    })
    .await;
    let outcome = attempt(experiment(&s.page, &s.servers, &s.downloads, Stack::Warp)).await;
    s.end("warp-99-last", outcome).await;
}

/// The page against the socket.io wss (behind the slab proxy): it finds the stack in
/// the wss's snapshot and speaks socket.io over every websocket (engine.io open,
/// namespace connect, the `hello` greeting, pings answered, data and pin traffic as
/// `message` events); the wss counts the sockets and, in retain, what engine.io
/// keeps of each one's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_speaks_socket_io_to_the_socketio_stack() {
    let s = Scene::start(true, |c| c.wss_stack = Stack::Socketio).await;
    let outcome = attempt(socketio_experiment(&s.page, &s.servers)).await;
    s.end("socketio-99-last", outcome).await;
}

async fn socketio_experiment(page: &Client, servers: &Servers) {
    const SOCKETS: u64 = 20;
    wait_for("the wss shown on the socketio stack", || async {
        attr(page, "status-wss", "data-stack").await.as_deref() == Some("socketio")
    })
    .await;
    set(page, "rate", "50").await;
    set(page, "max", &SOCKETS.to_string()).await;
    set(page, "data-size", "2000").await;
    set(page, "data-delay", "200").await;
    set(page, "pin-message", "100").await;
    set(page, "pin-data", "3000").await;
    set(page, "pin-data-message", "1000").await;
    click(page, "start").await;
    wait_for(
        "the wss counts every socket connected to its namespace",
        || async {
            let snap = server_json(&servers.wss, "/snapshot").await;
            snap["connections"]["open"].as_u64().unwrap_or(0) > SOCKETS
        },
    )
    .await;
    wait_for("every pinning socket has sent its traffic", || async {
        number(page, "pin-done").await.is_some_and(|n| n >= SOCKETS)
    })
    .await;
    wait_for("data flowing", || async {
        number(page, "bytes-sent").await.is_some_and(|n| n > 0)
    })
    .await;
    assert_eq!(
        number(page, "count-failed").await,
        Some(0),
        "no socket failed"
    );
    // engine.io keeps each socket's request: in retain its header values pin the
    // read buffer hyper parsed them in, one allocation per socket.
    let snap: snapshot::Snapshot =
        serde_json::from_value(server_json(&servers.wss, "/snapshot").await).unwrap();
    let keeping: std::collections::BTreeSet<u64> = snap
        .pinned_allocations
        .allocations
        .iter()
        .flat_map(|a| &a.kept)
        .filter(|k| k.part.starts_with("header "))
        .map(|k| k.connection)
        .collect();
    assert!(
        keeping.len() as u64 > SOCKETS,
        "{:#?}",
        snap.pinned_allocations
    );
    screenshot(page, "socketio-01-running").await;
    click(page, "stop").await;
    wait_for("the wss sees every socket closed and lets go", || async {
        let snap = server_json(&servers.wss, "/snapshot").await;
        snap["connections"]["open"] == 0 && snap["pinned_allocations"]["kept_bytes"] == 0
    })
    .await;
}

async fn experiment(page: &Client, servers: &Servers, downloads: &Path, stack: Stack) {
    let shot = |name: &str| match stack {
        Stack::Slab => name.to_string(),
        other => format!("{other}-{name}"),
    };
    // Both servers show as reachable, with their stack and head mode.
    wait_for("both servers shown reachable", || async {
        attr(page, "status-proxy", "data-head-mode")
            .await
            .as_deref()
            == Some("retain")
            && attr(page, "status-wss", "data-head-mode").await.as_deref() == Some("retain")
    })
    .await;
    for server in ["status-proxy", "status-wss"] {
        assert_eq!(
            attr(page, server, "data-stack").await.as_deref(),
            Some(stack.as_str()),
            "{server} shows its stack"
        );
    }
    screenshot(page, &shot("01-loaded")).await;

    // An experiment of CONNECTIONS pinning websockets plus the data connection;
    // on the warp stack each pinning websocket also sends its own traffic.
    set(page, "rate", "50").await;
    set(page, "max", &CONNECTIONS.to_string()).await;
    set(page, "data-size", "100000").await;
    set(page, "data-delay", "200").await;
    if stack == Stack::Warp {
        set(page, "pin-message", "100").await;
        set(page, "pin-data", "40000").await;
        set(page, "pin-data-message", "16384").await;
    }
    click(page, "start").await;
    wait_for("the page shows every pinning websocket open", || async {
        number(page, "count-open")
            .await
            .is_some_and(|n| n >= CONNECTIONS)
    })
    .await;
    wait_for("the proxy's own snapshot counts them", || async {
        let snap = server_json(&servers.proxy, "/snapshot").await;
        snap["connections"]["open"].as_u64().unwrap_or(0) > CONNECTIONS
    })
    .await;
    wait_for("the wss behind it counts them too", || async {
        let snap = server_json(&servers.wss, "/snapshot").await;
        snap["connections"]["open"].as_u64().unwrap_or(0) > CONNECTIONS
    })
    .await;
    wait_for("data flowing", || async {
        number(page, "bytes-sent").await.is_some_and(|n| n > 0)
    })
    .await;
    assert_eq!(
        number(page, "count-failed").await,
        Some(0),
        "no websocket failed"
    );
    if stack == Stack::Warp {
        wait_for("every pinning websocket sent its traffic", || async {
            number(page, "pin-done")
                .await
                .is_some_and(|n| n >= CONNECTIONS)
        })
        .await;
        // The wss in retain keeps each first message: its snapshot attributes them,
        // and the page's tree shows the same allocations.
        wait_for(
            "the wss's pinned allocations hold every first message",
            || async {
                let snap = server_json(&servers.wss, "/snapshot").await;
                let firsts = snap["pinned_allocations"]["allocations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|a| a["kept"].as_array().cloned().unwrap_or_default())
                    .filter(|k| k["part"] == "first message")
                    .count();
                firsts as u64 >= CONNECTIONS
            },
        )
        .await;
        click(page, "take-snapshot-wss").await;
        wait_for("the tree's pinned allocations", || async {
            attr(page, "pinned-allocations", "data-allocations")
                .await
                .is_some()
        })
        .await;
        let shown: u64 = attr(page, "pinned-allocations", "data-allocations")
            .await
            .and_then(|n| n.parse().ok())
            .unwrap();
        let served = server_json(&servers.wss, "/snapshot").await["pinned_allocations"]
            ["allocations"]
            .as_array()
            .map_or(0, |a| a.len() as u64);
        assert!(
            shown >= CONNECTIONS,
            "the page shows {shown} pinned allocations"
        );
        assert_eq!(shown, served, "the page shows the wss's own figure");
        assert!(text(page, "snapshot-tree")
            .await
            .contains("first message of connection"));
    }
    // Let the charts gather a few points before the picture.
    wait_for("the proxy chart drawn", || async {
        page.find(Locator::Css("#chart-proxy svg")).await.is_ok()
    })
    .await;
    // The slab stack's wss charts Node's small-Buffer pool too; the warp stack has none.
    let buffer_line = Locator::Css("#chart-wss polyline.l-buffer");
    if stack == Stack::Slab {
        wait_for("the wss chart's buffer pool line", || async {
            page.find(buffer_line).await.is_ok()
        })
        .await;
        assert!(text(page, "chart-wss").await.contains("buffer pool chunks"));
    } else {
        assert!(page.find(buffer_line).await.is_err());
    }
    screenshot(page, &shot("02-running")).await;

    // Switching a head mode on the page switches it on the server (to the newest
    // mode, Node's unpooled copy).
    set(page, "head-mode-proxy", "copy_unpooled").await;
    wait_for("the proxy's head mode is copy_unpooled", || async {
        server_json(&servers.proxy, "/settings").await["head_mode"] == "copy_unpooled"
    })
    .await;
    wait_for("the page shows it", || async {
        attr(page, "status-proxy", "data-head-mode")
            .await
            .as_deref()
            == Some("copy_unpooled")
    })
    .await;

    // Download a snapshot: the file parses and validates against the schema.
    click(page, "download-snapshot-proxy").await;
    let mut file = None;
    wait_for("a downloaded snapshot file", || {
        let found = std::fs::read_dir(downloads)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"));
        file = found.clone();
        async move { found.is_some() }
    })
    .await;
    let file = file.unwrap();
    let json: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    snapshot::validate(&json).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
    let snap: snapshot::Snapshot = serde_json::from_value(json).unwrap();
    assert_eq!(snap.role, "proxy");
    assert_eq!(snap.settings.head_mode, Some(HeadMode::CopyUnpooled));

    // "Download for Chrome DevTools" saves the server's .heapsnapshot of the same proxy.
    click(page, "download-heapsnapshot-proxy").await;
    let mut heap = None;
    wait_for("a downloaded .heapsnapshot file", || {
        let found = std::fs::read_dir(downloads)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "heapsnapshot"));
        heap = found.clone();
        async move { found.is_some() }
    })
    .await;
    let heap = heap.unwrap();
    let name = heap.file_name().unwrap().to_string_lossy().into_owned();
    let ms = name
        .strip_prefix("proxy-")
        .and_then(|n| n.strip_suffix(".heapsnapshot"))
        .unwrap_or_else(|| panic!("{name} is not proxy-<ms>.heapsnapshot"));
    assert!(ms.parse::<u64>().is_ok(), "{name}");
    let file: Value = serde_json::from_slice(&std::fs::read(&heap).unwrap()).unwrap();
    assert!(file["strings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "Connection"));

    // "Download pprof" saves the server's pprof profile of the same proxy's paths.
    click(page, "download-pprof-proxy").await;
    let mut profile = None;
    wait_for("a downloaded .pb.gz file", || {
        let found = std::fs::read_dir(downloads)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".pb.gz"));
        profile = found.clone();
        async move { found.is_some() }
    })
    .await;
    let profile = profile.unwrap();
    let name = profile.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.strip_prefix("proxy-")
            .and_then(|n| n.strip_suffix(".pb.gz"))
            .is_some_and(|ms| ms.parse::<u64>().is_ok()),
        "{name} is not proxy-<ms>.pb.gz"
    );
    let read = snapshot::pprof::read(&std::fs::read(&profile).unwrap()).unwrap();
    assert!(read.string_table.iter().any(|s| s == "process proxy"));
    assert!(read
        .string_table
        .iter()
        .any(|s| s.starts_with("connection ")));

    // A snapshot in the page: what it holds for connections is what the proxy's own
    // snapshot holds (the pinning connections are all open, so their slabs and
    // allocations stay put between the two reads).
    click(page, "take-snapshot-proxy").await;
    wait_for("the snapshot tree", || async {
        !text(page, "snapshot-tree").await.is_empty()
    })
    .await;
    let first_at = attr(page, "snapshot-tree", "data-taken-at").await;
    let served: snapshot::Snapshot =
        serde_json::from_value(server_json(&servers.proxy, "/snapshot").await).unwrap();
    let shown_slabs = shown(page, "#snapshot-tree details.slab", "slab").await;
    let shown_allocations = shown(page, "#snapshot-tree details.allocation", "allocation").await;
    let mut holding_slabs: Vec<Shown> = served
        .pools
        .iter()
        .flat_map(|p| p.slabs.iter().map(move |s| (p, s)))
        .filter(|(_, s)| !s.retainers.is_empty())
        .map(|(p, s)| (p.name.clone(), s.id, s.size, s.retainers.len() as u64))
        .collect();
    holding_slabs.sort_unstable();
    let mut holding_allocations: Vec<Shown> = served
        .pinned_allocations
        .allocations
        .iter()
        .map(|a| (String::new(), a.id, a.size, a.kept.len() as u64))
        .collect();
    holding_allocations.sort_unstable();
    let retaining =
        |rows: &[Shown]| -> Vec<Shown> { rows.iter().filter(|r| r.3 > 0).cloned().collect() };
    assert_eq!(
        retaining(&shown_slabs),
        holding_slabs,
        "the page's retaining slabs (id, size, retainers) are the proxy's"
    );
    assert_eq!(
        shown_allocations, holding_allocations,
        "the page's pinned allocations (id, size, kept parts) are the proxy's"
    );
    match stack {
        Stack::Slab => {
            assert!(!holding_slabs.is_empty(), "retain pins slabs");
            assert!(text(page, "snapshot-tree")
                .await
                .contains("upgrade request of connection"));
        }
        Stack::Warp | Stack::Socketio => assert!(
            text(page, "snapshot-tree").await.contains("pinned"),
            "the tree shows the pinned allocations"
        ),
    }
    let open_before = served.connections.open as i64;
    let container = flame_graph_zooms(page, &served, stack).await;
    page.execute(
        "document.getElementById('flame-graph').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    screenshot(page, &shot("03a-flame-graph")).await;

    click(page, "stop").await;
    wait_for("the proxy sees the page's websockets closed", || async {
        let snap: snapshot::Snapshot =
            serde_json::from_value(server_json(&servers.proxy, "/snapshot").await).unwrap();
        snap.connections.open == 0 && common_holds_nothing(&snap)
    })
    .await;

    // A second snapshot: the difference shows the connections gone and what they held
    // freed, slab by slab.
    click(page, "take-snapshot-proxy").await;
    wait_for("the difference of two snapshots", || async {
        attr(page, "snapshot-diff", "data-retained-delta")
            .await
            .is_some()
            && attr(page, "snapshot-tree", "data-taken-at").await != first_at
    })
    .await;
    let open_delta: i64 = attr(page, "snapshot-diff", "data-open-delta")
        .await
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(open_delta, -open_before, "every open connection gone");
    let freed: Vec<(String, u64)> = page
        .execute(
            "return [...document.querySelectorAll('#snapshot-diff li[data-pool]')]\
             .flatMap(e => e.dataset.freed.split(',').filter(x => x).map(x => [e.dataset.pool, Number(x)]));",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    for (pool, id, _, _) in &holding_slabs {
        assert!(
            freed.contains(&(pool.clone(), *id)),
            "{pool} slab {id} shown freed: {freed:?}"
        );
    }
    let retained_delta: i64 = attr(page, "snapshot-diff", "data-retained-delta")
        .await
        .and_then(|v| v.parse().ok())
        .unwrap();
    let pinned: i64 = holding_slabs.iter().map(|s| s.2 as i64).sum();
    let one_slab = served
        .pools
        .iter()
        .map(|p| p.slab_size as i64)
        .max()
        .unwrap_or(0);
    assert!(
        retained_delta <= -pinned + one_slab,
        "retained bytes fell by at least the pinned slabs ({pinned}) less a new current slab: {retained_delta}"
    );
    // The flame graph of what shrank: the connections gone, with what they held.
    click(page, "flame-diff-shrank").await;
    wait_for("the flame graph of what shrank", || async {
        page.execute(
            "return document.querySelector('.flame-diff').dataset.change",
            vec![],
        )
        .await
        .ok()
            == Some(json!("shrank"))
            && !flame_frames(page, "flame-diff-graph").await.is_empty()
    })
    .await;
    let shrank: u64 = attr(page, "flame-diff-graph", "data-total")
        .await
        .and_then(|v| v.parse().ok())
        .unwrap();
    let held: u64 = match stack {
        Stack::Slab => pinned as u64,
        // The other stacks' pinned buffers.
        _ => served.pinned_allocations.pinned_bytes,
    };
    assert!(
        shrank >= held,
        "what shrank ({shrank}) holds at least what the closed connections held ({held})"
    );
    // Zoomed into the pool or stack: the connections that held it.
    click_frame(page, "flame-diff-graph", &container).await;
    wait_for("what shrank, zoomed into the pool or stack", || async {
        attr(page, "flame-diff-graph", "data-focus")
            .await
            .as_deref()
            == Some(container.as_str())
    })
    .await;
    let gone = flame_frames(page, "flame-diff-graph").await;
    assert!(
        gone.iter().any(|f| f.kind == "connection" && f.depth == 2),
        "{gone:?}"
    );
    screenshot(page, &shot("03-snapshots")).await;
}

/// A frame of a flame graph as drawn.
#[derive(Debug, Clone, serde::Deserialize)]
struct Frame {
    label: String,
    kind: String,
    bytes: u64,
    depth: usize,
    width: f64,
    class: String,
}

/// The frames of the flame graph `#id`, in the page's order.
async fn flame_frames(page: &Client, id: &str) -> Vec<Frame> {
    let frames = page
        .execute(
            "return [...document.querySelectorAll('#' + arguments[0] + ' .frame')].map(e => ({\
               label: e.dataset.label, kind: e.dataset.kind, bytes: Number(e.dataset.bytes),\
               depth: Number(e.dataset.depth), width: Number(e.dataset.width), class: e.className}));",
            vec![json!(id)],
        )
        .await
        .unwrap_or_else(|e| panic!("reading #{id}'s frames: {e}"));
    serde_json::from_value(frames).unwrap()
}

/// Clicks the frame labelled `label` of the flame graph `#id`.
async fn click_frame(page: &Client, id: &str, label: &str) {
    page.execute(
        "[...document.querySelectorAll('#' + arguments[0] + ' .frame')]\
           .find(e => e.dataset.label === arguments[1]).click();",
        vec![json!(id), json!(label)],
    )
    .await
    .unwrap_or_else(|e| panic!("clicking {label} in #{id}: {e}"));
}

/// The snapshot's flame graph beside the tree: the process on top, full width; the
/// pool (slab stack) or stack (warp) that holds the pinned slabs or buffers at least
/// as many bytes as the proxy's own snapshot says they hold; a click zooms into it (full width, the
/// process above it an ancestor, each connection that keeps something shown); a
/// click on one connection shows what it keeps down to the slab or buffer it pins
/// (on the warp proxy an 8 KiB header buffer shared by a dozen header values: too
/// narrow to draw before); a click on the frame zoomed into zooms out one level.
/// Returns the label of the pool or stack.
async fn flame_graph_zooms(page: &Client, served: &snapshot::Snapshot, stack: Stack) -> String {
    wait_for("the flame graph", || async {
        !flame_frames(page, "flame-graph").await.is_empty()
    })
    .await;
    let frames = flame_frames(page, "flame-graph").await;
    assert_eq!(frames[0].label, "process proxy", "{frames:?}");
    assert_eq!((frames[0].depth, frames[0].width), (0, 1.0));
    let total = frames[0].bytes;
    let (container, mut holding): (String, Vec<u64>) = match stack {
        Stack::Slab => {
            let pool = served
                .pools
                .iter()
                .filter(|p| p.slabs.iter().any(|s| !s.retainers.is_empty()))
                .max_by_key(|p| p.retained_bytes)
                .expect("a pool with pinned slabs");
            let frame = frames
                .iter()
                .find(|f| f.label == format!("pool {}", pool.name))
                .unwrap_or_else(|| panic!("no pool {} in {frames:?}", pool.name));
            // The pinning connections' slabs stay put; the current one moves on
            // with the data connection's traffic between the page's read and ours.
            let pinned: u64 = pool
                .slabs
                .iter()
                .filter(|s| !s.retainers.is_empty())
                .map(|s| s.size)
                .sum();
            assert!(frame.bytes >= pinned, "{frame:?}: {pinned}");
            let holding = pool
                .slabs
                .iter()
                .flat_map(|s| &s.retainers)
                .map(|r| r.connection)
                .collect();
            (frame.label.clone(), holding)
        }
        // The other stacks: the pinned buffers under the stack's frame.
        _ => {
            let frame = frames
                .iter()
                .find(|f| f.label == format!("stack {stack}"))
                .unwrap_or_else(|| panic!("no stack {stack} in {frames:?}"));
            assert!(
                frame.bytes >= served.pinned_allocations.pinned_bytes,
                "{frame:?}: {}",
                served.pinned_allocations.pinned_bytes
            );
            let holding = served
                .pinned_allocations
                .allocations
                .iter()
                .flat_map(|a| &a.kept)
                .map(|k| k.connection)
                .collect();
            (frame.label.clone(), holding)
        }
    };
    holding.sort_unstable();
    holding.dedup();
    assert!(!holding.is_empty(), "the proxy keeps something in retain");

    click_frame(page, "flame-graph", &container).await;
    wait_for("the flame graph zoomed into the pool or stack", || async {
        attr(page, "flame-graph", "data-focus").await.as_deref() == Some(container.as_str())
    })
    .await;
    let zoomed = flame_frames(page, "flame-graph").await;
    let focus = zoomed.iter().find(|f| f.label == container).unwrap();
    assert_eq!((focus.depth, focus.width), (1, 1.0), "{focus:?}");
    assert!(zoomed[0].class.contains("ancestor"), "{:?}", zoomed[0]);
    assert_eq!(zoomed[0].bytes, total);
    assert!(
        zoomed.iter().all(|f| f.kind != "unattributed"),
        "only what is under the pool or stack: {zoomed:?}"
    );
    for c in &holding {
        let label = format!("connection {c}");
        assert!(
            zoomed.iter().any(|f| f.label == label && f.depth == 2),
            "{label} under {container}: {zoomed:?}"
        );
    }

    // One connection: what it keeps, down to the slab or buffer it pins.
    let connection = format!("connection {}", holding[0]);
    click_frame(page, "flame-graph", &connection).await;
    wait_for("the flame graph zoomed into one connection", || async {
        attr(page, "flame-graph", "data-focus").await.as_deref() == Some(connection.as_str())
    })
    .await;
    let one = flame_frames(page, "flame-graph").await;
    assert!(
        one.iter()
            .any(|f| (f.kind == "slab" || f.kind == "allocation") && f.depth == 4),
        "the pinned slab or buffer of {connection} is drawn: {one:?}"
    );
    assert!(
        one.iter().any(|f| f.kind == "part" && f.depth == 3),
        "{one:?}"
    );
    // Its frame again: out to the pool or stack; that frame again: out to the process.
    click_frame(page, "flame-graph", &connection).await;
    wait_for(
        "the flame graph zoomed out to the pool or stack",
        || async {
            attr(page, "flame-graph", "data-focus").await.as_deref() == Some(container.as_str())
        },
    )
    .await;
    click_frame(page, "flame-graph", &container).await;
    wait_for("the flame graph zoomed back out", || async {
        attr(page, "flame-graph", "data-focus").await.as_deref() == Some("process proxy")
    })
    .await;
    let frames = flame_frames(page, "flame-graph").await;
    assert!(!frames[0].class.contains("ancestor"));
    container
}

/// What a server still holds for connections that closed: nothing, once they are gone.
fn common_holds_nothing(snap: &snapshot::Snapshot) -> bool {
    snap.pools
        .iter()
        .flat_map(|p| &p.slabs)
        .all(|s| s.retainers.is_empty())
        && snap.pinned_allocations.allocations.is_empty()
}

/// A slab or allocation as shown: (pool, or "" for an allocation; id; size; retainers).
type Shown = (String, u64, u64, u64);

/// What the page shows of the elements `css` finds, from their `data-{id}`,
/// `data-size` and `data-retainers`, and their pool's `data-pool`.
async fn shown(page: &Client, css: &str, id: &str) -> Vec<Shown> {
    let rows = page
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(e => [\
               e.closest('[data-pool]')?.dataset.pool ?? '', Number(e.dataset[arguments[1]]),\
               Number(e.dataset.size), Number(e.dataset.retainers)]);",
            vec![json!(css), json!(id)],
        )
        .await
        .unwrap_or_else(|e| panic!("reading {css}: {e}"));
    let mut rows: Vec<Shown> = serde_json::from_value(rows).unwrap();
    rows.sort_unstable();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_explained_with_one_link() {
    let s = Scene::start(false, |_| {}).await;
    let outcome = attempt(async {
        let link = format!("https://localhost:{}/", s.servers.config.proxy_port);
        wait_for("the certificate notice", || async {
            !text(&s.page, "cert-notice").await.is_empty()
        })
        .await;
        let notice = s.page.find(Locator::Id("cert-notice")).await.unwrap();
        let href = notice
            .find(Locator::Css("a"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap();
        assert_eq!(href.as_deref(), Some(link.as_str()));
    })
    .await;
    s.end("04-certificate-notice", outcome).await;
}

/// While `client audit` runs (here in-process, measuring this test's own process,
/// where the wss runs), the page charts the audited process's RSS from the client's
/// snapshot port, beside our servers' charts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_charts_a_running_client_audit() {
    let port = testkit::free_port();
    let s = Scene::start(true, |c| c.client_heapdump_port = port).await;
    let outcome = attempt(async {
        wait_for("the audit chart, empty", || async {
            attr(&s.page, "chart-audit", "data-processes")
                .await
                .as_deref()
                == Some("0")
        })
        .await;
        let pid = std::process::id();
        let options = client::audit::AuditOptions {
            target: format!("ws://{}/", s.servers.wss.addr),
            pids: vec![pid],
            levels: vec![20],
            rate: 200.0,
            traffic_bytes: 16 << 10,
            progress: false,
            settle: Duration::from_secs(4),
            ..Default::default()
        };
        let audit = tokio::spawn(client::audit::run(
            s.servers.config.clone(),
            options,
            Shutdown::new(),
        ));
        wait_for("the audited process charted", || async {
            attr(&s.page, "chart-audit", "data-processes")
                .await
                .as_deref()
                == Some("1")
                && text(&s.page, "chart-audit")
                    .await
                    .contains(&format!("{pid} ("))
        })
        .await;
        let drawn = s
            .page
            .find_all(Locator::Css("#chart-audit g[data-pid] polyline"))
            .await
            .unwrap();
        assert!(!drawn.is_empty(), "no line drawn for the audited process");
        screenshot(&s.page, "05-client-audit").await;
        let report = tokio::time::timeout(BOUND, audit)
            .await
            .expect("the audit ends")
            .unwrap()
            .expect("the audit goes to its end");
        assert_eq!(report.levels[0].connections, 20);
        assert!(report.levels[0].processes[0]
            .after_close_rss_bytes
            .is_some());
        wait_for("the page says the audit ended", || async {
            text(&s.page, "chart-audit")
                .await
                .contains("the audit has ended")
        })
        .await;
    })
    .await;
    s.end("05-client-audit-end", outcome).await;
}
