//! `GET /snapshot?format=pprof` read by the real `go tool pprof`: the `wss` and
//! `proxy` binaries as their own processes, on each stack, in `retain`, after the
//! seed's scenario (pinning websockets through the TLS proxy, each followed by a
//! burst of data; small slabs, so every burst moves the pools on). Each server's
//! profile, as served and as written from the JSON snapshot, is read with `-top`
//! (the top entry is the pinned slabs or buffers, as many bytes as the JSON says),
//! `-traces` (each connection and what it keeps, down to the slab or buffer) and
//! its total (the JSON's `allocated_bytes`).
//!
//! A second reader from another ecosystem reads the same files: pprof-format, the
//! npm package Datadog's profilers encode with (`tests/pprof-format/read.js`): the
//! same sample types, total, pinned bytes and paths, with the labels.
//!
//! `go` comes with Debian's `golang-go` package (`scripts/setup --pprof`), node and
//! npm with `--browser`, and pprof-format installs under the target folder
//! (`scripts/pprof-format-install`). Without them the test says so and passes,
//! except in CI (`CI` set), where their absence fails it. Go runs offline, its
//! caches in a temporary folder.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{wait_until, Server, BOUND};
use futures_util::{SinkExt, StreamExt};
use runtime::config::Config;
use serde_json::json;
use snapshot::{HeadMode, Snapshot, Stack};
use tokio_tungstenite::tungstenite::Message;

on_both_stacks! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    go_tool_pprof_names_who_pins_what,
}

/// The slab stack's wss in `copy`: its copies lie in Node's small-Buffer pool (the
/// `buffer` pool), whose chunks the profile names under each connection and copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_in_the_buffer_pool_show_as_their_chunks() {
    let Some(go) = go_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("go-home");
    std::fs::create_dir_all(&home).unwrap();
    let (wss, _proxy, _pinning) = seed_scenario(Stack::Slab, HeadMode::Copy, dir.path()).await;
    let json = wss.snapshot().await;
    let file = dir.path().join("wss.pb.gz");
    std::fs::write(&file, snapshot::pprof::to_vec(&json)).unwrap();
    let in_chunks: Vec<_> = kept(&json)
        .into_iter()
        .filter(|(leaf, _, _)| leaf == "buffer slab")
        .collect();
    assert!(
        in_chunks.len() >= PINNING,
        "a copy per pinning connection in the buffer pool: {:#?}",
        json.pool("buffer")
    );
    let said = pprof(&go, &home, &["-traces"], &file);
    let stacks = traces(&said);
    for (leaf, part, connection) in &in_chunks {
        let expected = [
            leaf.clone(),
            part.clone(),
            format!("connection {connection}"),
            "pool buffer".to_string(),
            "process wss".to_string(),
        ];
        assert!(
            stacks.iter().any(|s| s[..] == expected[..]),
            "no trace {expected:?}\n{said}"
        );
    }
    let (total, _) = top(&pprof(&go, &home, &["-top", "-unit=B"], &file));
    assert_eq!(Some(total), json.process.allocator.allocated_bytes);
}

/// Pinning websockets of the scenario.
const PINNING: usize = 24;

/// The program `name` on PATH, or `None` after saying why `what` is skipped; in CI
/// its absence fails the test.
fn tool_or_skip(name: &str, what: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed, and CI must run {what}: {install}"
        );
        eprintln!("SKIPPED: {what}: {name} is not installed ({install})");
    }
    found
}

/// `go`, or `None` after saying why the test is skipped.
fn go_or_skip() -> Option<PathBuf> {
    tool_or_skip(
        "go",
        "go tool pprof",
        "scripts/setup --pprof installs Debian's golang-go package",
    )
}

/// `node` with pprof-format installed (`scripts/pprof-format-install`), or `None`
/// after saying why the second reader is skipped.
fn node_or_skip() -> Option<PathBuf> {
    let install = "scripts/setup --browser installs Debian's nodejs and npm";
    let node = tool_or_skip("node", "the pprof-format reader", install)?;
    tool_or_skip("npm", "the pprof-format reader", install)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new(root.join("scripts/pprof-format-install"))
        .status()
        .expect("scripts/pprof-format-install runs");
    assert!(status.success(), "scripts/pprof-format-install failed");
    Some(node)
}

/// `file` read by pprof-format under node (`tests/pprof-format/read.js`): its
/// `sample_types`, `default_sample_type`, `totals` and `samples` (each with its
/// `frames`, root first, `values` and `labels`).
fn pprof_format(node: &Path, file: &Path) -> serde_json::Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.parent().unwrap().join("target"));
    let out = Command::new(node)
        .arg(manifest.join("tests/pprof-format/read.js"))
        .arg(file)
        .env("NODE_PATH", target.join("pprof-format/node_modules"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "pprof-format on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("read.js prints JSON")
}

/// `go tool pprof ARGS FILE`'s output, offline, with its caches under `home`.
fn pprof(go: &Path, home: &Path, args: &[&str], file: &Path) -> String {
    let out = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", home)
        .env("GOPATH", home.join("go"))
        .env("GOCACHE", home.join("cache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env_remove("PPROF_TMPDIR")
        .output()
        .expect("go tool pprof runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `-top -unit=B`: the total and the rows (flat bytes, name), largest flat first.
fn top(output: &str) -> (u64, Vec<(u64, String)>) {
    let bytes = |s: &str| -> u64 {
        s.trim_end_matches('B')
            .parse()
            .unwrap_or_else(|e| panic!("{s:?}: {e}\n{output}"))
    };
    let total = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .and_then(|l| l.split("Total samples = ").nth(1))
        .map(|t| bytes(t.trim()))
        .unwrap_or_else(|| panic!("no total in\n{output}"));
    let rows = output
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (bytes(cols[0]), cols[5..].join(" "))
        })
        .collect();
    (total, rows)
}

/// `-traces`: each sample's stack, leaf first (the value stripped off the leaf).
fn traces(output: &str) -> Vec<Vec<String>> {
    output
        .split("-----------+-------------------------------------------------------")
        .skip(1)
        .map(|block| {
            // Label lines hold a colon before the bar; stack lines start with the
            // value (the leaf) or with spaces only.
            let mut frames = Vec::new();
            for line in block.lines().filter(|l| !l.trim().is_empty()) {
                let t = line.trim();
                if frames.is_empty() {
                    if let Some((value, leaf)) = t.split_once(char::is_whitespace) {
                        if value.chars().next().is_some_and(|c| c.is_ascii_digit())
                            && !value.ends_with(':')
                        {
                            frames.push(leaf.trim().to_string());
                        }
                    }
                } else {
                    frames.push(t.to_string());
                }
            }
            frames
        })
        .filter(|f: &Vec<String>| !f.is_empty())
        .collect()
}

/// Whom each slab and pinned allocation is kept by, as (leaf name, part, connection).
fn kept(snap: &Snapshot) -> BTreeSet<(String, String, u64)> {
    let mut kept = BTreeSet::new();
    for pool in &snap.pools {
        for slab in &pool.slabs {
            for r in &slab.retainers {
                kept.insert((
                    format!("{} slab", pool.name),
                    r.part.to_string(),
                    r.connection,
                ));
            }
        }
    }
    if snap.pools.is_empty() {
        for a in &snap.pinned_allocations.allocations {
            for k in &a.kept {
                kept.insert(("pinned allocation".into(), k.part.to_string(), k.connection));
            }
        }
    }
    kept
}

/// Bytes the top entry must hold: the pool's live slabs (slab stack) or the pinned
/// allocations (warp stack).
fn pinned_bytes(snap: &Snapshot, leaf: &str) -> u64 {
    match leaf.strip_suffix(" slab") {
        Some(pool) => {
            snap.pool(pool)
                .expect("the top entry's pool")
                .retained_bytes
        }
        None => snap.pinned_allocations.pinned_bytes,
    }
}

/// The seed's scenario on `stack`, the wss in `wss_head` and the proxy in `retain`: a
/// data connection and [`PINNING`] websockets through the proxy, each sending a small
/// first message, followed by a burst on the data connection; the data connection
/// closes. Returns the servers and the pinning websockets, open.
async fn seed_scenario(
    stack: Stack,
    wss_head: HeadMode,
    dir: &Path,
) -> (Server, Server, Vec<client::WsStream>) {
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--wss_port",
            "0",
            "--wss_heapdump_port",
            "0",
            "--proxy_port",
            "0",
            "--proxy_heapdump_port",
            "0",
            "--wss_stack",
            stack.as_str(),
            "--proxy_stack",
            stack.as_str(),
            "--wss_head",
            wss_head.as_str(),
            "--proxy_head",
            "retain",
            "--tcp_slab_size",
            "262144",
            "--tls_slab_size",
            "524288",
            "--read_size",
            "4096",
            "--wss_echo",
            "true",
            "--max_connections",
            "0",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let wss = Server::start(env!("CARGO_BIN_EXE_wss"), dir, &args(&[]));
    let port = wss.addr.port().to_string();
    let proxy = Server::start(
        env!("CARGO_BIN_EXE_proxy"),
        dir,
        &args(&["--proxy_target.port", &port]),
    );
    let config = Config {
        proxy_port: proxy.addr.port(),
        cert_dir: dir.join(".certs"),
        ..Config::default()
    };
    let tls = runtime::tls::client_config(&config).unwrap();
    let open = || async {
        let mut ws = client::open_websocket(&config, Some(&tls)).await.unwrap();
        let greeting = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
        assert!(greeting
            .unwrap()
            .unwrap()
            .to_text()
            .unwrap()
            .starts_with("hello from wss"));
        ws
    };
    let mut data = open().await;
    let mut pinning = Vec::new();
    for i in 0..PINNING {
        let mut ws = open().await;
        ws.send(Message::text(format!(
            "first message of pinning connection {i}"
        )))
        .await
        .unwrap();
        let echo = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
        assert!(echo.unwrap().unwrap().is_text());
        pinning.push(ws);
        burst(&mut data).await;
    }
    data.close(None).await.unwrap();
    drop(data);
    for server in [&wss, &proxy] {
        wait_until("the data connection closed", || async {
            server.snapshot().await.connections.open == PINNING as u64
        })
        .await;
    }
    (wss, proxy, pinning)
}

/// Bytes of one burst: more than a TLS slab of the scenario.
const BURST: usize = 600 << 10;

/// Sends one [`BURST`] on `data` and waits for its echo.
async fn burst(data: &mut client::WsStream) {
    data.send(Message::binary(vec![0xAB; BURST])).await.unwrap();
    let echo = tokio::time::timeout(BOUND, data.next())
        .await
        .expect("the burst's echo within the bound")
        .expect("the data connection open")
        .unwrap();
    assert_eq!(echo.len(), BURST);
}

async fn go_tool_pprof_names_who_pins_what(stack: Stack) {
    let Some(go) = go_or_skip() else { return };
    let node = node_or_skip();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("go-home");
    std::fs::create_dir_all(&home).unwrap();
    // The pinning websockets stay open while the servers are read.
    let (wss, proxy, _pinning) = seed_scenario(stack, HeadMode::Retain, dir.path()).await;
    for server in [&wss, &proxy] {
        let json = server.snapshot().await;
        let role = json.role.clone();
        assert_eq!(json.settings.stack, Some(stack));
        assert_eq!(json.settings.head_mode, Some(HeadMode::Retain));
        let served = client::fetch::get(server.snapshot, "/snapshot?format=pprof")
            .await
            .unwrap();
        let served_file = dir.path().join(format!("{role}-served.pb.gz"));
        std::fs::write(&served_file, &served).unwrap();
        let from_json = dir.path().join(format!("{role}-json.pb.gz"));
        std::fs::write(&from_json, snapshot::pprof::to_vec(&json)).unwrap();
        let kept = kept(&json);
        assert!(
            kept.iter().map(|k| k.2).collect::<BTreeSet<_>>().len() >= PINNING,
            "{role}: every pinning connection keeps something: {kept:?}"
        );

        for file in [&served_file, &from_json] {
            let said = pprof(&go, &home, &["-top", "-unit=B", "-nodefraction=0"], file);
            let (total, rows) = top(&said);
            // The top entry: the pinned slabs or buffers, all of them. On the warp
            // proxy, whose kept header values pin an 8 KiB buffer per connection,
            // the rest of the process (TLS sessions above all) is larger: there
            // they are the top entry after `(unattributed)`.
            let first = if stack == Stack::Warp && role == "proxy" {
                rows.iter()
                    .find(|(_, name)| name != "(unattributed)")
                    .unwrap()
            } else {
                &rows[0]
            };
            let (flat, leaf) = first;
            let expected_leaf = match stack {
                Stack::Slab => leaf.ends_with(" slab"),
                // The other stacks keep parts in buffers of their own.
                _ => leaf == "pinned allocation",
            };
            assert!(expected_leaf, "{role} on {stack}: top entry {leaf}\n{said}");
            assert_eq!(
                *flat,
                pinned_bytes(&json, leaf),
                "{role} on {stack}: {leaf} holds what the JSON says\n{said}"
            );
            assert!(
                rows.iter().any(|(_, name)| name == "(unattributed)"),
                "{said}"
            );
            if file == &from_json {
                // The total: the JSON snapshot's allocator figure, every byte once.
                assert_eq!(
                    Some(total),
                    json.process.allocator.allocated_bytes,
                    "{role} on {stack}\n{said}"
                );
            }

            // The second reader: the same sample types, total, pinned bytes and paths.
            if let Some(node) = &node {
                let read = pprof_format(node, file);
                assert_eq!(
                    read["sample_types"],
                    json!(["inuse_objects/count", "inuse_space/bytes"])
                );
                assert_eq!(read["default_sample_type"], "inuse_space");
                assert_eq!(
                    read["totals"][1], total,
                    "pprof-format and go agree on the total"
                );
                let samples = read["samples"].as_array().unwrap();
                let in_leaf: u64 = samples
                    .iter()
                    .filter(|s| s["frames"].as_array().unwrap().last() == Some(&json!(leaf)))
                    .map(|s| s["values"][1].as_u64().unwrap())
                    .sum();
                assert_eq!(in_leaf, *flat, "{role} on {stack}: {leaf}");
                for (leaf, part, connection) in &kept {
                    let frames = json!([
                        format!("process {role}"),
                        samples
                            .iter()
                            .find(|s| s["labels"]["connection"] == *connection)
                            .map_or(json!(null), |s| s["frames"][1].clone()),
                        format!("connection {connection}"),
                        part,
                        leaf
                    ]);
                    assert!(
                        samples.iter().any(|s| s["frames"] == frames
                            && s["labels"]["connection"] == *connection
                            && s["labels"]["head_mode"] == "retain"),
                        "pprof-format, {role} on {stack}: no sample {frames}"
                    );
                }
            }

            // The traces: each connection and what it keeps, down to what it pins.
            let said = pprof(&go, &home, &["-traces"], file);
            let stacks = traces(&said);
            let process = format!("process {role}");
            assert!(
                stacks.iter().all(|s| s.last() == Some(&process)),
                "every path starts at the process\n{said}"
            );
            for (leaf, part, connection) in &kept {
                let connection = format!("connection {connection}");
                assert!(
                    stacks.iter().any(|s| s.len() == 5
                        && &s[0] == leaf
                        && &s[1] == part
                        && s[2] == connection),
                    "{role} on {stack}: no trace {leaf} <- {part} <- {connection}\n{said}"
                );
            }
        }
    }
}
