//! `header-trickle`: the CPU a wss spends on clients that send their request headers
//! a byte at a time, for each wss binary given (to compare two builds in one run).
//!
//! Each binary is started as its own process on free ports; `--clients` connections
//! then send a `--header-bytes` upgrade request one byte per write (TCP_NODELAY, every
//! client one byte per round, so most reads take one byte), and wait for the `101`.
//! Printed per binary: the wss's reads (from its snapshot), bytes per read, and its CPU
//! seconds (`utime + stime` of `/proc/PID/stat`) over the trickle, per read too (the
//! reads differ between runs: a slower server takes more bytes a read); the last column
//! is each binary's CPU divided by the first one's.
//!
//! Usage: header-trickle [--clients 100] [--header-bytes 8192] WSS_BINARY...

use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bench::procfs;
use clap::Parser;
use testkit::{free_port, ChildGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// CPU a wss spends on byte-by-byte request headers.
#[derive(Parser, Debug)]
#[command(name = "header-trickle", version)]
struct Cli {
    /// Clients trickling their headers at once.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Length of each request's header block (padded with one long header).
    #[arg(long, default_value_t = 8192)]
    header_bytes: usize,
    /// The wss binaries to measure, in order (the first is the reference).
    #[arg(required = true)]
    binaries: Vec<String>,
}

struct Figures {
    reads: u64,
    bytes: u64,
    cpu_s: f64,
    wall_s: f64,
}

fn request(len: usize) -> Vec<u8> {
    let mut text = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nX-Pad: "
        .to_vec();
    text.resize(len.saturating_sub(4).max(text.len()), b'a');
    text.extend_from_slice(b"\r\n\r\n");
    text
}

async fn wait_listening(addr: SocketAddr) -> Result<()> {
    if !testkit::listening(addr, Duration::from_secs(20)).await {
        bail!("nothing listens on {addr} after 20 s");
    }
    Ok(())
}

async fn tcp_reads(snapshot: SocketAddr) -> Result<(u64, u64)> {
    let snap = ::client::fetch::fetch(snapshot)
        .await
        .map_err(|e| anyhow!("snapshot of {snapshot}: {e}"))?;
    let pool = snap
        .pools
        .iter()
        .find(|p| p.name == "tcp")
        .context("the wss has no tcp pool")?;
    Ok((pool.reads_total, pool.bytes_read_total))
}

async fn measure(binary: &str, cli: &Cli) -> Result<Figures> {
    let (port, snap_port) = (free_port(), free_port());
    let dir = tempdir()?;
    // Killed and reaped when this returns.
    let wss = ChildGuard::spawn(
        Command::new(binary)
            .current_dir(&dir)
            .args(["--wss_port", &port.to_string()])
            .args(["--wss_heapdump_port", &snap_port.to_string()])
            .args(["--header_timeout_ms", "600000"])
            .args(["--max_header_bytes", &(cli.header_bytes + 1024).to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null()),
    )
    .with_context(|| binary.to_string())?;
    let pid = wss.id();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let snapshot = SocketAddr::from(([127, 0, 0, 1], snap_port));
    wait_listening(addr).await?;
    wait_listening(snapshot).await?;

    let mut clients = Vec::with_capacity(cli.clients);
    for _ in 0..cli.clients {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        clients.push(tcp);
    }
    let (reads0, bytes0) = tcp_reads(snapshot).await?;
    let cpu0 = procfs::cpu_ticks(pid)?;
    let started = Instant::now();
    let request = request(cli.header_bytes);
    for byte in request.chunks(1) {
        for tcp in &mut clients {
            tcp.write_all(byte).await?;
        }
        // Let the wss take this round's bytes before the next round is sent.
        tokio::task::yield_now().await;
    }
    for tcp in &mut clients {
        let mut answer = [0u8; 12];
        tcp.read_exact(&mut answer)
            .await
            .context("reading the answer")?;
        if !answer.starts_with(b"HTTP/1.1 101") {
            bail!("answer {:?}", String::from_utf8_lossy(&answer));
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let cpu1 = procfs::cpu_ticks(pid)?;
    let (reads1, bytes1) = tcp_reads(snapshot).await?;
    Ok(Figures {
        reads: reads1 - reads0,
        bytes: bytes1 - bytes0,
        cpu_s: (cpu1 - cpu0) as f64 / procfs::ticks_per_second() as f64,
        wall_s,
    })
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("header-trickle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    println!(
        "{} clients, each sending a {}-byte request header a byte per write",
        cli.clients, cli.header_bytes
    );
    println!();
    println!(
        "| wss binary | reads | bytes per read | wss CPU s | CPU µs per read | wall s | CPU ÷ first |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut first = None;
    for binary in &cli.binaries {
        match measure(binary, &cli).await {
            Ok(f) => {
                let reference = *first.get_or_insert(f.cpu_s);
                println!(
                    "| {binary} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2}x |",
                    f.reads,
                    f.bytes as f64 / f.reads.max(1) as f64,
                    f.cpu_s,
                    f.cpu_s * 1e6 / f.reads.max(1) as f64,
                    f.wall_s,
                    f.cpu_s / reference.max(0.01)
                );
            }
            Err(e) => {
                eprintln!("header-trickle: {binary}: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
