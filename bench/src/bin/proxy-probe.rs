//! `proxy-probe`: what one idle TLS websocket holds in our proxy, by allocation, at
//! several levels, for one configuration of the proxy.
//!
//! Starts our slab wss (the cheapest upstream) and our proxy, each in an `alloc-probe`
//! process (jemalloc's thread caches off), opens idle websockets through the proxy up
//! to each level in turn (held by the bench's [`IdlePool`]: the greeting awaited, no
//! data connection), and after each level prints, per websocket added since the level
//! before: the proxy's allocated, allocator-resident and RSS bytes, its live
//! allocations by size class, and the size of one connection's task state as the
//! proxy's snapshot reports it (`own_bytes`). Extra `--KEY VALUE` pairs after `--` go
//! to the proxy (`-- --proxy_stack warp --proxy_copy_on_readable true`).
//!
//! Usage: proxy-probe [--levels 400,4000] [--rate 500] [--settle-ms 3000] -- [--KEY VALUE ...]
//! (from the repository root, with `alloc-probe` built beside it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bench::client::{IdlePool, Target};
use bench::probe::{per_connection, Histogram, ProbeProcess};
use clap::Parser;
use serde_json::Value;

/// Our proxy's allocations per idle websocket, level after level.
#[derive(Parser, Debug)]
#[command(name = "proxy-probe", version)]
struct Cli {
    /// Idle websockets to hold at each measurement, in order.
    #[arg(long, value_delimiter = ',', default_value = "400,4000")]
    levels: Vec<u64>,
    /// Websockets opened per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Wait after each level before measuring, ms.
    #[arg(long, default_value_t = 3000)]
    settle_ms: u64,
    /// Where the certificate is kept and the probes' logs go.
    #[arg(long, default_value = "target/proxy-probe")]
    work: PathBuf,
    /// First port of the four used (proxy, its snapshot, wss, its snapshot).
    #[arg(long, default_value_t = 19500)]
    port: u16,
    /// After the levels: 64 KiB echo through 1 and 64 websockets for this long each
    /// (ms; 0: none), with the proxy's CPU time.
    #[arg(long, default_value_t = 0)]
    throughput_ms: u64,
    /// `--KEY VALUE` pairs for the proxy.
    #[arg(last = true)]
    proxy_args: Vec<String>,
}

/// An `alloc-probe` process of `role` with `settings` and `extra` flags, run from
/// the current folder with the binary beside this one.
fn start_probe(
    role: &str,
    settings: &[(String, String)],
    extra: &[String],
    log: PathBuf,
) -> Result<(ProbeProcess, Value)> {
    let bin = std::env::current_exe()?
        .parent()
        .map(|d| d.join("alloc-probe"))
        .ok_or_else(|| anyhow!("no folder of proxy-probe"))?;
    ProbeProcess::start(&bin, Path::new("."), role, settings, extra, &log)
}

/// `own_bytes` of the oldest open connection in the proxy's snapshot.
async fn own_bytes(snapshot: SocketAddr) -> Result<u64> {
    let json = client::fetch::get_json(snapshot, "/snapshot?connections=1")
        .await
        .map_err(|e| anyhow!("{e}"))?;
    json["connections"]["list"][0]["own_bytes"]
        .as_u64()
        .ok_or_else(|| anyhow!("no connection in the proxy's snapshot"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.work)?;
    let cert_dir = cli.work.join("certs");
    let p = cli.port;
    let (proxy_port, proxy_snap, wss_port, wss_snap) = (p, p + 1, p + 2, p + 3);
    let common: Vec<(String, String)> = [
        ("proxy_port", proxy_port.to_string()),
        ("proxy_heapdump_port", proxy_snap.to_string()),
        ("proxy_target.host", "127.0.0.1".to_string()),
        ("proxy_target.port", wss_port.to_string()),
        ("wss_port", wss_port.to_string()),
        ("wss_heapdump_port", wss_snap.to_string()),
        ("proxy_head", "drop".to_string()),
        ("wss_head", "drop".to_string()),
        ("wss_echo", "true".to_string()),
        ("wss_stack", "slab".to_string()),
        ("cert_dir", cert_dir.display().to_string()),
        ("max_connections", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = runtime::config::Config {
        cert_dir: cert_dir.clone(),
        ..Default::default()
    };
    runtime::tls::ensure_certificate(&config)?;
    let tls = runtime::tls::client_config(&config)?;
    let (_wss, _) = start_probe("wss", &common, &[], cli.work.join("wss.log"))?;
    let (mut proxy, ready) = start_probe(
        "proxy",
        &common,
        &cli.proxy_args,
        cli.work.join("proxy.log"),
    )?;
    println!("proxy args: {}", cli.proxy_args.join(" "));
    println!("type sizes: {}", ready["type_sizes"]);
    let mut pool = IdlePool::new(Target {
        port: proxy_port,
        tls: Some(tls),
    });
    let snapshot: SocketAddr = ([127, 0, 0, 1], proxy_snap).into();
    let mut last: Option<(u64, Histogram)> = None;
    for &level in &cli.levels {
        let limit = IdlePool::open_limit(level, cli.rate);
        pool.grow_to(level, cli.rate, limit)
            .await
            .with_context(|| format!("opening {level} idle websockets"))?;
        tokio::time::sleep(Duration::from_millis(cli.settle_ms)).await;
        let open = pool.open();
        let now = proxy.dump()?;
        let own = own_bytes(snapshot).await.unwrap_or(0);
        println!(
            "\n{open} idle websockets: RSS {:.1} MB ({:.2} KB per websocket), allocated {:.1} MB, task state (own_bytes) {own} B",
            now.rss as f64 / 1e6,
            now.rss as f64 / 1e3 / open.max(1) as f64,
            now.allocated as f64 / 1e6,
        );
        if let Some((was, before)) = &last {
            let added = open.saturating_sub(*was).max(1);
            let per = |a: u64, b: u64| (b as f64 - a as f64) / added as f64 / 1e3;
            println!(
                "from {was} to {open}, per websocket added: {:.2} KB allocated, {:.2} KB allocator-resident, {:.2} KB RSS",
                per(before.allocated, now.allocated),
                per(before.resident, now.resident),
                per(before.rss, now.rss),
            );
            println!("| size class (bytes) | live allocations per websocket | KB per websocket |");
            println!("| ---: | ---: | ---: |");
            for c in per_connection(before, &now, added) {
                println!(
                    "| {} | {:.2} | {:.2} |",
                    c.size,
                    c.per_conn,
                    c.bytes_per_conn / 1e3
                );
            }
        }
        last = Some((open, now));
    }
    pool.close().await;
    if cli.throughput_ms > 0 {
        let target = Target {
            port: proxy_port,
            tls: Some(runtime::tls::client_config(&config)?),
        };
        let pid = proxy.pid();
        for n in [1, 64] {
            let conns = bench::client::open_many(&target, n, bench::client::LARGE_READ_BUFFER)
                .await
                .context("opening the echo websockets")?;
            let mut ticks = Vec::new();
            let counted = bench::client::throughput(
                conns,
                64 << 10,
                4,
                Duration::from_millis(1000),
                Duration::from_millis(cli.throughput_ms),
                || ticks.push(runtime::procfs::cpu_ticks(pid).unwrap_or(0)),
            )
            .await?;
            let cpu = ticks
                .last()
                .unwrap_or(&0)
                .saturating_sub(*ticks.first().unwrap_or(&0)) as f64
                / runtime::procfs::ticks_per_second() as f64;
            println!(
                "64 KiB echo over {n} websocket(s): {:.0} MB/s, proxy CPU {:.2} s in {:.1} s ({:.0} MB per proxy CPU second)",
                counted.bytes as f64 / counted.secs / 1e6,
                cpu,
                counted.secs,
                counted.bytes as f64 / cpu.max(0.001) / 1e6,
            );
        }
    }
    Ok(())
}
