//! The `--report` table: both servers' snapshots side by side, the seed's
//! before/after figures (live slabs, retained memory, memory per pinning connection).
//!
//! A server on the warp stack has no slabs: its row shows what its connections'
//! kept parts pin instead (the snapshot's `pinned_allocations`: the allocations'
//! bytes as retained, the kept parts' bytes as referenced), and says so.
//!
//! A figure the server could not read (RSS, the allocator's resident bytes: `null`
//! in its snapshot) is shown as `unreadable`, with the snapshot's reason on a line
//! below the table.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use snapshot::Snapshot;

use crate::fetch::{get_json, FetchError};
use crate::table::{Align, TextTable};
use runtime::config::Config;

/// Both servers' snapshots as fetched at the end of a run, and the table made of them.
#[derive(Debug, Clone)]
pub struct Report {
    /// The proxy's snapshot, or why it could not be fetched.
    pub proxy: Result<Snapshot, Missing>,
    /// The wss's snapshot, or why it could not be fetched.
    pub wss: Result<Snapshot, Missing>,
    /// Both snapshots as the servers served them (JSON), for `--save-snapshots`.
    pub proxy_json: Option<serde_json::Value>,
    pub wss_json: Option<serde_json::Value>,
    /// Pinning connections the client had open when the snapshots were taken.
    pub pinning: u64,
    /// The rendered table ([`render_report`]).
    pub text: String,
}

/// Why a server's snapshot is missing from the report: the fetch's error, with how
/// to start the server when nothing answered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}{}", if error.is_unreachable() { format!(" (`cargo run -p native --bin {bin}`)") } else { String::new() })]
pub struct Missing {
    pub error: Arc<FetchError>,
    /// The binary that serves it: `proxy` or `wss`.
    pub bin: &'static str,
}

/// The host the servers' snapshot endpoints are reached on: `snapshot_bind`, or
/// 127.0.0.1 when that is an unspecified address (0.0.0.0 or ::).
pub fn snapshot_host(config: &Config) -> IpAddr {
    if config.snapshot_bind.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        config.snapshot_bind
    }
}

/// Addresses of the proxy's and the wss's snapshot endpoints.
pub fn snapshot_addrs(config: &Config) -> (SocketAddr, SocketAddr) {
    let host = snapshot_host(config);
    (
        SocketAddr::new(host, config.proxy_heapdump_port),
        SocketAddr::new(host, config.wss_heapdump_port),
    )
}

/// Fetches both servers' snapshots (at once) and renders the table.
pub async fn fetch_report(config: &Config, pinning: u64) -> Report {
    let (proxy_addr, wss_addr) = snapshot_addrs(config);
    let (proxy, wss) = tokio::join!(fetch_both(proxy_addr), fetch_both(wss_addr));
    let (proxy, proxy_json) = split(proxy, "proxy");
    let (wss, wss_json) = split(wss, "wss");
    let (proxy_why, wss_why) = (why(&proxy), why(&wss));
    let text = render_report(
        proxy.as_ref().map_err(|_| proxy_why.as_str()),
        wss.as_ref().map_err(|_| wss_why.as_str()),
        pinning,
    );
    Report {
        proxy,
        wss,
        proxy_json,
        wss_json,
        pinning,
        text,
    }
}

/// Why a snapshot is missing, as the table says it (empty when it is there).
fn why(fetched: &Result<Snapshot, Missing>) -> String {
    fetched
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// `GET /snapshot` as served (JSON), and parsed.
async fn fetch_both(addr: SocketAddr) -> Result<(Snapshot, serde_json::Value), FetchError> {
    let json = get_json(addr, "/snapshot").await?;
    let snapshot = serde_json::from_value(json.clone()).map_err(|source| FetchError::Json {
        url: format!("http://{addr}/snapshot"),
        what: "not a snapshot",
        source,
    })?;
    Ok((snapshot, json))
}

fn split(
    fetched: Result<(Snapshot, serde_json::Value), FetchError>,
    bin: &'static str,
) -> (Result<Snapshot, Missing>, Option<serde_json::Value>) {
    match fetched {
        Ok((snapshot, json)) => (Ok(snapshot), Some(json)),
        Err(e) => (
            Err(Missing {
                error: Arc::new(e),
                bin,
            }),
            None,
        ),
    }
}

/// The table's columns: the server and its head mode, then its figures.
const COLUMNS: [(&str, Align); 8] = [
    ("server", Align::Left),
    ("head", Align::Left),
    ("live slabs (MB) by pool", Align::Left),
    ("retained MB", Align::Right),
    ("referenced KB", Align::Right),
    ("MB per pinning conn", Align::Right),
    ("RSS MB", Align::Right),
    ("allocator resident MB", Align::Right),
];

/// Renders the report table: one row per server (proxy, wss), or a row saying why
/// its snapshot is missing. `pinning` is the number of pinning connections open.
pub fn render_report(
    proxy: Result<&Snapshot, &str>,
    wss: Result<&Snapshot, &str>,
    pinning: u64,
) -> String {
    let mut table = TextTable::new(&COLUMNS);
    let mut fetched = Vec::new();
    for (name, snapshot) in [("proxy", proxy), ("wss", wss)] {
        match snapshot {
            Ok(s) => {
                table.row(cells(name, s, pinning));
                fetched.push((name, s));
            }
            Err(why) => {
                table.note(name, format!("unavailable: {why}"));
            }
        }
    }
    let mut out = format!(
        "Memory of the servers with {pinning} pinning connection{} open:\n",
        if pinning == 1 { "" } else { "s" }
    );
    out.push_str(&table.render());
    for (name, s) in &fetched {
        out.push_str(&unreadable_lines(name, s));
    }
    if fetched.iter().any(|(_, s)| is_warp(s)) {
        out.push_str(
            "warp stack: no slabs; retained = the allocations its connections' kept parts pin, \
             referenced = the kept parts' bytes (snapshot: pinned_allocations)\n",
        );
    }
    out
}

fn is_warp(s: &Snapshot) -> bool {
    s.settings.stack == Some(snapshot::Stack::Warp)
}

/// One server's row.
fn cells(name: &str, s: &Snapshot, pinning: u64) -> [String; 8] {
    let pinned = &s.pinned_allocations;
    let (retained, referenced, held) = if is_warp(s) {
        (
            pinned.pinned_bytes,
            pinned.kept_bytes,
            format!("warp: {} pinned allocations", pinned.allocations.len()),
        )
    } else {
        (
            s.totals.retained_bytes,
            s.totals.referenced_bytes,
            live_slabs(s),
        )
    };
    let retained_mb = retained as f64 / 1e6;
    let per_conn = if pinning == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", retained_mb / pinning as f64)
    };
    [
        name.to_string(),
        s.settings
            .head_mode
            .map_or("-".to_string(), |m| m.to_string()),
        held,
        format!("{retained_mb:.1}"),
        format!("{:.1}", referenced as f64 / 1e3),
        per_conn,
        megabytes(s.process.rss_bytes),
        megabytes(s.process.allocator.resident_bytes),
    ]
}

/// Megabytes with one decimal, or `unreadable`.
fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or("unreadable".to_string(), |b| {
        format!("{:.1}", b as f64 / 1e6)
    })
}

/// The lines saying why a server's figures in the table are unreadable.
fn unreadable_lines(name: &str, s: &Snapshot) -> String {
    let p = &s.process;
    [
        ("RSS", snapshot::figure::RSS, p.rss_bytes),
        (
            "allocator resident",
            snapshot::figure::RESIDENT,
            p.allocator.resident_bytes,
        ),
    ]
    .into_iter()
    .filter(|(_, _, v)| v.is_none())
    .map(|(what, figure, _)| format!("{name}: {what} unreadable: {}\n", p.why_unreadable(figure)))
    .collect()
}

/// Live slabs per pool and the MB they hold, biggest slabs first:
/// "tls 11 (115.34), tcp 1 (1.05), buffer 97 (0.79)".
fn live_slabs(s: &Snapshot) -> String {
    let mut pools: Vec<_> = s.pools.iter().collect();
    pools.sort_by(|a, b| {
        b.slab_size
            .cmp(&a.slab_size)
            .then_with(|| a.name.cmp(&b.name))
    });
    if pools.is_empty() {
        return "none".into();
    }
    pools
        .iter()
        .map(|p| {
            let mb = p.retained_bytes as f64 / 1e6;
            format!("{} {} ({mb:.2})", p.name, p.live_slabs)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapshot::{
        Allocator, Connections, HeadMode, OpenByHeadMode, Pool, Process, Settings, Totals,
        SCHEMA_VERSION,
    };

    fn pool(name: &str, slab_size: u64, live: u64, referenced: u64) -> Pool {
        Pool {
            name: name.into(),
            slab_size,
            read_size: 65536,
            live_slabs: live,
            slabs_allocated_total: live + 3,
            slabs_freed_total: 3,
            reads_total: 1000,
            bytes_read_total: 50_000_000,
            retained_bytes: slab_size * live,
            referenced_bytes: referenced,
            slabs: vec![],
        }
    }

    fn snap(role: &str, mode: HeadMode, pools: Vec<Pool>, rss: u64, resident: u64) -> Snapshot {
        let retained = pools.iter().map(|p| p.retained_bytes).sum();
        let referenced = pools.iter().map(|p| p.referenced_bytes).sum();
        let live = pools.iter().map(|p| p.live_slabs).sum();
        Snapshot {
            schema_version: SCHEMA_VERSION,
            role: role.into(),
            taken_at_ms: 1_700_000_000_000,
            took_us: 120,
            process: Process {
                pid: 42,
                uptime_ms: 60_000,
                rss_bytes: Some(rss),
                allocator: Allocator {
                    name: "jemalloc".into(),
                    allocated_bytes: Some(resident / 2),
                    active_bytes: Some(resident / 2),
                    resident_bytes: Some(resident),
                    mapped_bytes: Some(resident * 2),
                    retained_bytes: Some(0),
                },
                unreadable: vec![],
            },
            settings: Settings {
                head_mode: Some(mode),
                head_mode_applies_to: "new connections".into(),
                stack: Some(snapshot::Stack::Slab),
                tls: role == "proxy",
                echo: false,
                read_size: 65536,
            },
            connections: Connections {
                unlisted: 0,
                open: 101,
                accepted_total: 101,
                closed_total: 0,
                failed_total: 0,
                open_by_head_mode: OpenByHeadMode {
                    retain: 101,
                    ..OpenByHeadMode::default()
                },
                list: vec![],
            },
            guard: Default::default(),
            pools,
            pinned_allocations: Default::default(),
            client: None,
            audit: None,
            totals: Totals {
                retained_bytes: retained,
                referenced_bytes: referenced,
                retained_per_referenced: None,
                live_slabs: live,
            },
        }
    }

    /// The cells of the row that starts with `server`.
    fn columns<'a>(text: &'a str, server: &str) -> Vec<&'a str> {
        let row = text
            .lines()
            .find(|l| l.starts_with(server))
            .unwrap_or_default();
        row.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn renders_the_figures_of_both_servers() {
        // 11 TLS slabs of 10 MiB, 1 TCP slab of 1 MiB and 3 buffer chunks of 8 KiB:
        // 116.42 MB retained.
        let proxy = snap(
            "proxy",
            HeadMode::Retain,
            vec![
                pool("tcp", 1 << 20, 1, 2_000),
                pool("tls", 10 << 20, 11, 10_345),
                pool("buffer", 8 << 10, 3, 600),
            ],
            150_000_000,
            130_000_000,
        );
        let wss = snap(
            "wss",
            HeadMode::Copy,
            vec![pool("tcp", 1 << 20, 2, 500)],
            20_000_000,
            12_500_000,
        );
        let text = render_report(Ok(&proxy), Ok(&wss), 100);
        assert!(text.contains("100 pinning connections"), "{text}");
        let cols = columns(&text, "proxy");
        assert_eq!(
            cols,
            [
                "proxy",
                "retain",
                "tls 11 (115.34), tcp 1 (1.05), buffer 3 (0.02)",
                "116.4",
                "12.9",
                "1.16",
                "150.0",
                "130.0"
            ],
            "{text}"
        );
        let cols = columns(&text, "wss");
        assert_eq!(
            cols,
            [
                "wss",
                "copy",
                "tcp 2 (2.10)",
                "2.1",
                "0.5",
                "0.02",
                "20.0",
                "12.5"
            ],
            "{text}"
        );
        // Every line of the table has the header's columns lined up.
        let header = text.lines().nth(1).unwrap_or_default();
        assert!(header.starts_with("server  head"), "{text}");
        let proxy_row = text
            .lines()
            .find(|l| l.starts_with("proxy"))
            .unwrap_or_default();
        assert_eq!(
            header.find("retained MB").map(|i| i + "retained MB".len()),
            proxy_row.find("116.4").map(|i| i + "116.4".len()),
            "numbers are right-aligned under their header\n{text}"
        );
    }

    #[test]
    fn an_unreadable_figure_shows_as_unreadable_with_its_reason() {
        let mut proxy = snap(
            "proxy",
            HeadMode::Retain,
            vec![pool("tls", 10 << 20, 1, 0)],
            150_000_000,
            130_000_000,
        );
        proxy.process.rss_bytes = None;
        proxy.process.unreadable = vec![snapshot::Unreadable {
            figure: snapshot::figure::RSS.into(),
            reason: "reading /proc/self/status: Permission denied".into(),
        }];
        let wss = snap("wss", HeadMode::Copy, vec![], 20_000_000, 12_500_000);
        let text = render_report(Ok(&proxy), Ok(&wss), 1);
        let cols = columns(&text, "proxy");
        assert_eq!(cols[6..], ["unreadable", "130.0"], "{text}");
        assert!(
            text.contains("proxy: RSS unreadable: reading /proc/self/status: Permission denied\n"),
            "{text}"
        );
        assert_eq!(columns(&text, "wss")[6..], ["20.0", "12.5"], "{text}");
        assert!(!text.contains("wss: "), "{text}");
    }

    #[test]
    fn a_warp_server_shows_what_its_kept_parts_pin() {
        let mut wss = snap("wss", HeadMode::Retain, vec![], 300_000_000, 280_000_000);
        wss.settings.stack = Some(snapshot::Stack::Warp);
        wss.pinned_allocations.allocations = (0..2)
            .map(|id| snapshot::PinnedAllocation {
                id,
                size: 131_072,
                age_ms: 1,
                kept_bytes: 100,
                kept: vec![],
            })
            .collect();
        wss.pinned_allocations.pinned_bytes = 2 * 131_072;
        wss.pinned_allocations.kept_bytes = 200;
        let proxy = snap(
            "proxy",
            HeadMode::Copy,
            vec![pool("tls", 10 << 20, 1, 0)],
            1,
            1,
        );
        let text = render_report(Ok(&proxy), Ok(&wss), 2);
        assert_eq!(
            columns(&text, "wss"),
            [
                "wss",
                "retain",
                "warp: 2 pinned allocations",
                "0.3",
                "0.2",
                "0.13",
                "300.0",
                "280.0"
            ],
            "{text}"
        );
        assert_eq!(columns(&text, "proxy")[2], "tls 1 (10.49)", "{text}");
        assert!(text.contains("warp stack: no slabs"), "{text}");
        let slab_only = render_report(Ok(&proxy), Ok(&proxy), 2);
        assert!(!slab_only.contains("warp stack"), "{slab_only}");
    }

    #[test]
    fn a_missing_snapshot_gets_a_row_saying_why() {
        let wss = snap(
            "wss",
            HeadMode::Drop,
            vec![pool("tcp", 1 << 20, 1, 0)],
            1,
            1,
        );
        let text = render_report(Err("connection refused"), Ok(&wss), 0);
        assert!(text.contains("0 pinning connections"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("proxy") && l.contains("unavailable: connection refused")),
            "{text}"
        );
        let wss_row = text
            .lines()
            .find(|l| l.starts_with("wss"))
            .unwrap_or_default();
        assert!(
            wss_row.contains(" - "),
            "no per-connection figure without connections: {text}"
        );
    }
}
