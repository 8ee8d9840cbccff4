//! The snapshot port as a browser on another localhost port sees it.

#[macro_use]
mod common;

use common::{exchange, Playground};
use snapshot::HeadMode;
use tokio::net::TcpStream;

async fn get(pg: &Playground, request: &str) -> String {
    let mut io = TcpStream::connect(pg.proxy.snapshot_addr).await.unwrap();
    exchange(&mut io, request.as_bytes()).await
}

#[tokio::test]
async fn a_page_on_another_port_may_read_snapshots_and_switch_settings() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let answer = get(&pg, "GET /snapshot HTTP/1.1\r\nHost: localhost\r\nOrigin: http://127.0.0.1:8080\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer
            .to_lowercase()
            .contains("access-control-allow-origin: http://127.0.0.1:8080"),
        "{answer}"
    );
    let preflight = get(
        &pg,
        "OPTIONS /settings HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:8080\r\n\
         Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(preflight.starts_with("HTTP/1.1 200 OK"), "{preflight}");
    assert!(
        preflight
            .to_lowercase()
            .contains("access-control-allow-methods"),
        "{preflight}"
    );
}

#[tokio::test]
async fn download_names_a_timestamped_file_and_errors_are_json() {
    let pg = Playground::start(HeadMode::Copy, HeadMode::Copy, |_| {}).await;
    let answer = get(
        &pg,
        "GET /snapshot?download=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let lower = answer.to_lowercase();
    let line = lower
        .lines()
        .find(|l| l.starts_with("content-disposition:"))
        .expect(&answer);
    assert!(
        line.contains("attachment; filename=\"proxy-snapshot-"),
        "{line}"
    );
    assert!(line.trim_end().ends_with(".json\""), "{line}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    snapshot::validate(&json).unwrap();

    let missing = get(
        &pg,
        "GET /nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("\"error\""), "{missing}");
    let bad = get(&pg, "PUT /settings HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("head_mode"), "{bad}");
    let settings = client::fetch::get_json(pg.proxy.snapshot_addr, "/settings")
        .await
        .unwrap();
    assert_eq!(
        settings["head_mode"], "copy",
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn the_heapsnapshot_format_downloads_for_devtools_and_unknown_formats_are_refused() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let _ws = pg.open().await;
    let answer = get(
        &pg,
        "GET /snapshot?format=heapsnapshot&download=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:.300}");
    let lower = answer.to_lowercase();
    let line = lower
        .lines()
        .find(|l| l.starts_with("content-disposition:"))
        .expect(&answer);
    assert!(
        line.contains("attachment; filename=\"proxy-")
            && !line.contains("proxy-snapshot-")
            && line.trim_end().ends_with(".heapsnapshot\""),
        "{line}"
    );
    // The body, streamed, is a heap snapshot of the proxy's open connection.
    let body = client::fetch::get(pg.proxy.snapshot_addr, "/snapshot?format=heapsnapshot")
        .await
        .unwrap();
    let file: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let fields = file["snapshot"]["meta"]["node_fields"]
        .as_array()
        .unwrap()
        .len();
    let nodes = file["nodes"].as_array().unwrap();
    assert_eq!(
        file["snapshot"]["node_count"].as_u64(),
        Some((nodes.len() / fields) as u64)
    );
    let strings = file["strings"].as_array().unwrap();
    for class in [
        "Process",
        "SlabPool",
        "Slab",
        "Connection",
        "UpgradeRequest",
    ] {
        assert!(
            strings.iter().any(|s| s == class),
            "no {class} in {strings:?}"
        );
    }
    // The same answer without download: no file name; json is the default.
    let plain = get(
        &pg,
        "GET /snapshot?format=json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 200 OK"), "{plain:.300}");
    assert!(!plain.to_lowercase().contains("content-disposition"));

    let unknown = get(
        &pg,
        "GET /snapshot?format=hprof HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(unknown.starts_with("HTTP/1.1 400"), "{unknown}");
    assert!(
        unknown.contains("unknown format \\\"hprof\\\"; known formats: json, heapsnapshot, pprof"),
        "{unknown}"
    );
}

#[tokio::test]
async fn the_pprof_format_downloads_a_gzipped_profile_of_retaining_paths() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let _ws = pg.open().await;
    let answer = get(
        &pg,
        "GET /snapshot?format=pprof&download=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:.300}");
    let lower = answer.to_lowercase();
    let header = |name: &str| {
        lower
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {answer:.300}"))
            .trim_end()
            .to_string()
    };
    let line = header("content-disposition:");
    assert!(
        line.contains("attachment; filename=\"proxy-")
            && !line.contains("proxy-snapshot-")
            && line.ends_with(".pb.gz\""),
        "{line}"
    );
    assert_eq!(
        header("content-type:"),
        "content-type: application/octet-stream"
    );
    // The body: the proxy's retaining paths, its open connection's among them.
    let body = client::fetch::get(pg.proxy.snapshot_addr, "/snapshot?format=pprof")
        .await
        .unwrap();
    let profile = snapshot::pprof::read(&body).unwrap();
    let strings = &profile.string_table;
    let types: Vec<&str> = profile
        .sample_type
        .iter()
        .map(|t| strings[t.r#type as usize].as_str())
        .collect();
    assert_eq!(types, ["inuse_objects", "inuse_space"]);
    for name in ["process proxy", "pool tls", "upgrade request", "tls slab"] {
        assert!(
            strings.iter().any(|s| s == name),
            "no {name} in {strings:?}"
        );
    }
    assert!(
        strings.iter().any(|s| s.starts_with("connection ")),
        "{strings:?}"
    );
}

// ---- ?connections=N: the oldest N listed, every total kept ----

on_both_stacks! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    connections_n_lists_the_oldest_n_and_keeps_every_total,
}

/// Every retainer a snapshot lists, slabs' and pinned allocations', by connection.
fn listed_retainers(snap: &snapshot::Snapshot) -> Vec<u64> {
    let slabs = snap.pools.iter().flat_map(|p| &p.slabs);
    let kept = snap
        .pinned_allocations
        .allocations
        .iter()
        .flat_map(|a| &a.kept);
    slabs
        .flat_map(|s| &s.retainers)
        .chain(kept)
        .map(|r| r.connection)
        .collect()
}

async fn connections_n_lists_the_oldest_n_and_keeps_every_total(stack: snapshot::Stack) {
    let pg = Playground::start_on(stack, HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let _open = [pg.open().await, pg.open().await, pg.open().await];
    for server in [&pg.proxy, &pg.wss] {
        let full = pg.snapshot(server).await;
        let open = full.connections.open;
        assert_eq!(open, 3, "{stack:?} {}", full.role);
        assert_eq!(full.connections.unlisted, 0);
        let all_retainers = listed_retainers(&full);
        assert!(
            !all_retainers.is_empty(),
            "{stack:?} {}: retain keeps parts",
            full.role
        );
        for n in [0usize, 1, 2, 3, 10] {
            let path = format!("/snapshot?connections={n}");
            let json = client::fetch::get_json(server.snapshot_addr, &path)
                .await
                .unwrap();
            let capped = common::checked(json);
            let what = format!("{stack:?} {} {path}", full.role);
            // The oldest n connections, by id, and the count of the others.
            let ids: Vec<u64> = capped.connections.list.iter().map(|c| c.id).collect();
            let oldest: Vec<u64> = full.connections.list.iter().take(n).map(|c| c.id).collect();
            assert_eq!(ids, oldest, "{what}");
            assert_eq!(
                capped.connections.unlisted,
                open - ids.len() as u64,
                "{what}"
            );
            // Only their retainers, and what was left out counted.
            let listed = listed_retainers(&capped);
            assert!(listed.iter().all(|c| ids.contains(c)), "{what}: {listed:?}");
            let of_listed = all_retainers.iter().filter(|c| ids.contains(c)).count();
            assert_eq!(listed.len(), of_listed, "{what}");
            let unlisted_slab_retainers: u64 = capped
                .pools
                .iter()
                .flat_map(|p| &p.slabs)
                .map(|s| s.unlisted_retainers)
                .sum();
            let pinned = &capped.pinned_allocations;
            assert_eq!(
                listed.len() as u64 + unlisted_slab_retainers + pinned.unlisted_parts,
                all_retainers.len() as u64,
                "{what}"
            );
            assert_eq!(
                pinned.allocations.len() as u64 + pinned.unlisted_allocations,
                full.pinned_allocations.allocations.len() as u64,
                "{what}"
            );
            // Every total as in the whole snapshot (nothing moves while idle).
            assert_eq!(capped.totals, full.totals, "{what}");
            assert_eq!(
                pinned.pinned_bytes, full.pinned_allocations.pinned_bytes,
                "{what}"
            );
            assert_eq!(
                pinned.kept_bytes, full.pinned_allocations.kept_bytes,
                "{what}"
            );
            assert_eq!(
                capped.connections.open_by_head_mode, full.connections.open_by_head_mode,
                "{what}"
            );
        }
    }
    // A count, and for the JSON only: anything else is refused with the reason.
    let bad = get(
        &pg,
        "GET /snapshot?connections=all HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad:.300}");
    assert!(bad.contains("connections= takes a count"), "{bad}");
    let pprof = get(
        &pg,
        "GET /snapshot?connections=1&format=pprof HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(pprof.starts_with("HTTP/1.1 400"), "{pprof:.300}");
    assert!(pprof.contains("applies to the JSON snapshot"), "{pprof}");
}

// ---- CORS and the settings token, on an endpoint of its own ----

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use collector::endpoint::{is_loopback, serve_with, EndpointSettings};
use runtime::config::Config;
use runtime::server::State;
use runtime::shutdown::Shutdown;
use runtime::Role;

/// A wss's snapshot endpoint alone, bound to `bind` (reached through 127.0.0.1 for 0.0.0.0).
struct Endpoint {
    addr: SocketAddr,
    shutdown: Shutdown,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn endpoint(bind: [u8; 4], token: Option<&str>, origins: Option<&[&str]>) -> Endpoint {
    let mut settings = EndpointSettings {
        token: token.map(String::from),
        ..EndpointSettings::default()
    };
    if let Some(origins) = origins {
        settings.cors_origins = origins.iter().map(|o| o.to_string()).collect();
    }
    let state = State::new(
        Role::Wss,
        &Config::default(),
        runtime::server::Pools::slab_stack(&Config::default(), false),
    );
    let shutdown = Shutdown::new();
    let bound = serve_with((bind, 0).into(), state, shutdown.clone(), settings)
        .await
        .unwrap();
    // 0.0.0.0 is not loopback, but a connection to 127.0.0.1 reaches it.
    let ip = if bound.ip().is_unspecified() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        bound.ip()
    };
    Endpoint {
        addr: SocketAddr::new(ip, bound.port()),
        shutdown,
    }
}

impl Endpoint {
    async fn ask(&self, request: &str) -> String {
        let mut io = TcpStream::connect(self.addr).await.unwrap();
        exchange(&mut io, request.as_bytes()).await
    }

    async fn get_from(&self, origin: &str) -> String {
        self.ask(&format!(
            "GET /snapshot HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        ))
        .await
    }

    async fn preflight(&self, origin: &str, headers: &str) -> String {
        self.ask(&format!(
            "OPTIONS /settings HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: {headers}\r\n\
             Connection: close\r\n\r\n"
        ))
        .await
    }

    /// `PUT /settings` switching to `mode`, with these extra header lines.
    async fn put(&self, mode: &str, extra: &str) -> String {
        let body = format!("{{\"head_mode\":\"{mode}\"}}");
        self.ask(&format!(
            "PUT /settings HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
    }

    async fn head_mode(&self) -> String {
        let settings = client::fetch::get_json(self.addr, "/settings")
            .await
            .unwrap();
        settings["head_mode"].as_str().unwrap().to_string()
    }
}

/// The value of header `name` in a raw answer, lower-cased.
fn header_of(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next().unwrap().to_lowercase();
    head.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

#[tokio::test]
async fn only_the_configured_origins_get_cors_headers() {
    let ep = endpoint([127, 0, 0, 1], None, None).await;
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://localhost",
    ] {
        let answer = ep.get_from(origin).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert_eq!(
            header_of(&answer, "access-control-allow-origin").as_deref(),
            Some(origin),
            "{origin}: {answer}"
        );
        assert_eq!(header_of(&answer, "vary").as_deref(), Some("origin"));
    }
    for origin in [
        "http://evil.example",
        "https://localhost:8080",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example:8080",
        "null",
    ] {
        let answer = ep.get_from(origin).await;
        // The answer is sent (a browser will not hand it to the page), with no CORS header.
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(
            !answer.to_lowercase().contains("access-control-allow"),
            "{origin} got CORS headers: {answer}"
        );
    }

    let ep = endpoint([127, 0, 0, 1], None, Some(&["https://dash.example:8443"])).await;
    let allowed = ep.get_from("https://dash.example:8443").await;
    assert!(
        header_of(&allowed, "access-control-allow-origin").is_some(),
        "{allowed}"
    );
    let other_port = ep.get_from("https://dash.example:9443").await;
    assert!(
        header_of(&other_port, "access-control-allow-origin").is_none(),
        "{other_port}"
    );
    let loopback = ep.get_from("http://localhost:8080").await;
    assert!(
        header_of(&loopback, "access-control-allow-origin").is_none(),
        "{loopback}"
    );

    let ep = endpoint([127, 0, 0, 1], None, Some(&["*"])).await;
    let any = ep.get_from("https://anything.example").await;
    assert_eq!(
        header_of(&any, "access-control-allow-origin").as_deref(),
        Some("https://anything.example"),
        "{any}"
    );
}

#[test]
fn origin_rules() {
    let rules = |origins: &[&str]| EndpointSettings {
        token: None,
        cors_origins: origins.iter().map(|o| o.to_string()).collect(),
    };
    let default = EndpointSettings::default();
    assert!(default.origin_allowed("http://localhost:8080"));
    assert!(default.origin_allowed("HTTP://LOCALHOST:8080"));
    assert!(default.origin_allowed("http://[::1]:1"));
    assert!(!default.origin_allowed("http://[::2]:1"));
    assert!(!default.origin_allowed("http://localhost:notaport"));
    assert!(!default.origin_allowed("http://user@localhost"));
    assert!(!default.origin_allowed(""));
    let port = rules(&["http://example.com:80", "https://example.com:8443/"]);
    assert!(port.origin_allowed("http://example.com"), "default port 80");
    assert!(port.origin_allowed("http://example.com:80"));
    assert!(!port.origin_allowed("http://example.com:8080"));
    assert!(port.origin_allowed("https://example.com:8443"));
    assert!(!port.origin_allowed("https://example.com"));
    assert!(rules(&["*"]).origin_allowed("null"));
    assert!(!rules(&[]).origin_allowed("http://localhost"));
}

#[tokio::test]
async fn a_preflight_is_answered_for_allowed_origins_only() {
    let ep = endpoint([127, 0, 0, 1], None, None).await;
    let ok = ep
        .preflight("http://localhost:8080", "content-type, authorization")
        .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert_eq!(
        header_of(&ok, "access-control-allow-origin").as_deref(),
        Some("http://localhost:8080")
    );
    assert!(header_of(&ok, "access-control-allow-methods")
        .unwrap()
        .contains("put"));
    assert!(header_of(&ok, "access-control-allow-headers")
        .unwrap()
        .contains("authorization"));

    let refused = ep.preflight("http://evil.example", "content-type").await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        !refused.to_lowercase().contains("access-control-allow"),
        "{refused}"
    );
    assert!(refused.contains("cors_origins"), "{refused}");

    let odd_header = ep.preflight("http://localhost:8080", "x-evil").await;
    assert!(odd_header.starts_with("HTTP/1.1 403"), "{odd_header}");
    assert!(
        !odd_header.to_lowercase().contains("access-control-allow"),
        "{odd_header}"
    );

    // A plain OPTIONS (no preflight) is no route: 405, as before.
    let plain = ep
        .ask("OPTIONS /settings HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert!(plain.starts_with("HTTP/1.1 405"), "{plain}");
}

#[tokio::test]
async fn put_settings_elsewhere_than_loopback_is_refused_without_a_configured_token() {
    let ep = endpoint([0, 0, 0, 0], None, None).await;
    let refused = ep.put("copy", "").await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains("settings_token"), "{refused}");
    let refused = ep.put("copy", "Authorization: Bearer anything\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert_eq!(
        ep.head_mode().await,
        "retain",
        "a refused change changes nothing"
    );
    // Reading stays open.
    let read = ep.get_from("http://localhost:8080").await;
    assert!(read.starts_with("HTTP/1.1 200 OK"), "{read}");
}

#[tokio::test]
async fn put_settings_elsewhere_than_loopback_needs_the_right_token() {
    let ep = endpoint([0, 0, 0, 0], Some("s3cret-token"), None).await;
    for extra in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cret-toke\r\n",
        "Authorization: Basic czNjcmV0LXRva2Vu\r\n",
        "Authorization: s3cret-token\r\n",
    ] {
        let refused = ep.put("copy", extra).await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{extra:?}: {refused}");
        assert!(
            header_of(&refused, "www-authenticate").is_some_and(|v| v.starts_with("bearer")),
            "{refused}"
        );
        assert!(refused.contains("\"error\""), "{refused}");
    }
    assert_eq!(ep.head_mode().await, "retain");
    let ok = ep
        .put("copy", "Authorization: Bearer s3cret-token\r\n")
        .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert_eq!(ep.head_mode().await, "copy");
    let ok = ep
        .put("drop", "authorization: bearer s3cret-token\r\n")
        .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert_eq!(ep.head_mode().await, "drop");
    let index = ep
        .ask("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert!(index.contains("Bearer"), "{index}");
}

#[tokio::test]
async fn on_loopback_a_token_is_needed_only_when_one_is_configured() {
    let open = endpoint([127, 0, 0, 1], None, None).await;
    let ok = open.put("copy", "").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    // 127.0.0.0/8 is loopback, all of it.
    let open = endpoint([127, 0, 0, 2], None, None).await;
    let ok = open
        .ask("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert!(ok.contains("loopback"), "{ok}");

    let guarded = endpoint([127, 0, 0, 1], Some("t0ken"), None).await;
    let refused = guarded.put("copy", "").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let ok = guarded.put("copy", "Authorization: Bearer t0ken\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
}

#[test]
fn settings_come_from_the_config() {
    let config = Config {
        settings_token: Some("  ".into()),
        cors_origins: vec!["https://a.example".into()],
        ..Config::default()
    };
    let settings = EndpointSettings::from_config(&config);
    assert_eq!(settings.token, None, "a blank token is no token");
    assert_eq!(settings.cors_origins, ["https://a.example"]);
    let config = Config {
        settings_token: Some("abc".into()),
        ..Config::default()
    };
    assert_eq!(
        EndpointSettings::from_config(&config).token.as_deref(),
        Some("abc")
    );
    assert_eq!(
        EndpointSettings::default().cors_origins,
        Config::default().cors_origins
    );

    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(is_loopback(ip("127.0.0.1")));
    assert!(is_loopback(ip("127.0.0.2")));
    assert!(is_loopback(ip("::1")));
    assert!(is_loopback(ip("::ffff:127.0.0.1")));
    assert!(!is_loopback(ip("0.0.0.0")));
    assert!(!is_loopback(ip("::")));
    assert!(!is_loopback(ip("192.168.1.10")));
}

#[tokio::test]
async fn a_page_that_rebinds_its_name_to_loopback_is_refused() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    for host in [
        "evil.example",
        "evil.example:8601",
        "127.0.0.1.evil.example",
    ] {
        let answer = get(
            &pg,
            &format!("GET /snapshot HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{host}: {answer}");
        assert!(answer.contains("is not this machine"), "{answer}");
    }
    for host in [
        "localhost",
        "localhost:8601",
        "127.0.0.1:8601",
        "[::1]:8601",
        "app.localhost",
    ] {
        let answer = get(
            &pg,
            &format!("GET /settings HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    assert!(collector::endpoint::is_loopback_host("127.0.0.2"));
    assert!(!collector::endpoint::is_loopback_host("10.0.0.1:80"));
}
