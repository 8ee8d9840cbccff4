//! The measurements, run stack after stack with the same client:
//!
//! 1. [`memory_and_load`]: RSS of proxy and wss before the client and at each level of
//!    idle websockets (data connection on), allocator figures from our snapshots,
//!    the kernel's socket memory; the snapshot's cost at the top level; then echo
//!    throughput (64 KiB, 1 and 64 connections) with the servers' CPU time, and
//!    small-message latency with 1,000 websockets open. For the stacks that have it,
//!    after the idle levels: every open websocket sends a first message and its own
//!    traffic, and RSS is read again once it has settled.
//! 2. [`headline`]: the seed's experiment (100 pinning connections beside a data
//!    connection), accelerated, for our three head modes on both our stacks and the
//!    Node peer.
//! 3. [`probe`]: our servers' live allocations per idle connection, by size class.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{self, DataConnection, IdlePool, Target, TrafficSpec};
use crate::probe::ProbeProcess;
use crate::procfs;
use crate::results::{
    AllocFigures, HeadlineRow, Latency, MemorySample, Pinned, Plan, ProbeResult, SnapshotCost,
    StackResult, Throughput, Traffic,
};
use crate::stacks::{self, Env, Ports, ProxyKind, Running, Stack, WssKind};
use anyhow::{anyhow, bail, Context, Result};

impl Plan {
    /// The whole comparison: minutes.
    pub fn full() -> Plan {
        Plan {
            levels: vec![1000, 5000, 8000],
            rate: 500.0,
            data_size: 1_000_000,
            data_delay_ms: 1000,
            settle_ms: 4000,
            throughput_connections: vec![1, 64],
            throughput_message: 64 << 10,
            throughput_window: 4,
            throughput_warmup_ms: 1000,
            throughput_ms: 10_000,
            latency_connections: 1000,
            latency_message: 32,
            latency_every_ms: 1000,
            latency_ms: 10_000,
            latency_rounds: 3,
            snapshot_repeats: 5,
            headline_pinning: 100,
            headline_rate: 10.0,
            headline_data_delay_ms: 100,
            probe_connections: 4000,
            traffic_first_message: 100,
            traffic_bytes: 400_000,
            traffic_message: 16 << 10,
            traffic_concurrency: 64,
            traffic_settle_max_ms: 20_000,
            traffic_settle_step_ms: 500,
            burst_connections: 600,
            burst_bytes: 400_000,
            burst_every_ms: 1000,
            burst_window_ms: 10_000,
        }
    }

    /// The CI version: every peer, every figure, small sizes; timings not asserted.
    pub fn quick() -> Plan {
        Plan {
            levels: vec![50, 100, 200],
            settle_ms: 1000,
            throughput_connections: vec![1, 8],
            throughput_warmup_ms: 300,
            throughput_ms: 1500,
            latency_connections: 50,
            latency_ms: 2000,
            latency_rounds: 1,
            snapshot_repeats: 2,
            headline_pinning: 20,
            headline_rate: 20.0,
            headline_data_delay_ms: 50,
            probe_connections: 200,
            traffic_bytes: 40_000,
            traffic_settle_max_ms: 5000,
            burst_connections: 40,
            burst_bytes: 200_000,
            burst_window_ms: 2000,
            ..Plan::full()
        }
    }
}

/// One stack of a run, and what is measured on it besides memory per idle websocket.
#[derive(Debug, Clone)]
pub struct Planned {
    pub stack: Stack,
    /// Throughput and latency too.
    pub full_load: bool,
    /// The traffic step after the idle levels.
    pub traffic: bool,
}

/// Read buffer of the warp stack's second configuration (axum's fix), bytes.
pub const SMALL_WS_READ_BUFFER: usize = 4096;

/// The warp stack's fixes, as settings: the lean proxy (reads only when readable,
/// into a 64 KiB scratch buffer per worker thread; rustls buffers at most 16 KiB for
/// a client that does not read) and the wss giving back what bursts grew after a
/// quiet second (docs/guide/warp-stack.md).
pub const WARP_FIXES: [(&str, &str); 4] = [
    ("proxy_copy_on_readable", "true"),
    ("proxy_copy_buffer_size", "65536"),
    ("proxy_tls_buffer_limit", "16384"),
    ("ws_idle_release_ms", "1000"),
];

/// The stacks of a run: ours, the Node stack, nginx in front of ours and of Node's
/// wss, our proxy in front of warp::ws, Node's proxy in front of our wss (the same
/// wss for the three proxies), ours again in `retain` mode (memory, traffic and
/// snapshot cost only: the seed's bug with thousands of connections); then our
/// servers on the warp stack, with tungstenite's default read buffer and with 4 KiB,
/// each in `drop` (everything measured) and in `retain` (memory and traffic: the
/// kept first message), and with its fixes on ([`WARP_FIXES`]; also with the 4 KiB
/// buffer: every fix a user can apply today); then Bun's websocket
/// server and our wss each alone, in plain ws (no proxy), Bun's behind our proxy, and
/// HAProxy in front of our wss. Our own stacks have the traffic and burst steps; the
/// peers do not.
pub fn stacks() -> Vec<Planned> {
    use ProxyKind as P;
    use WssKind as W;
    let plan = |stack, full_load, traffic| Planned {
        stack,
        full_load,
        traffic,
    };
    let warp = |head| Stack::new(P::OursWarp, W::OursWarp, head, true);
    vec![
        plan(Stack::new(P::Ours, W::Ours, "drop", true), true, true),
        plan(Stack::new(P::Node, W::Node, "drop", true), true, false),
        plan(Stack::new(P::Nginx, W::Ours, "drop", true), true, false),
        plan(Stack::new(P::Nginx, W::Node, "drop", true), true, false),
        plan(Stack::new(P::Node, W::Ours, "drop", true), true, false),
        plan(Stack::new(P::Ours, W::Warp, "drop", true), true, false),
        plan(Stack::new(P::Ours, W::Ours, "retain", true), false, true),
        plan(warp("drop"), true, true),
        plan(
            warp("drop").with_read_buffer(SMALL_WS_READ_BUFFER),
            true,
            true,
        ),
        plan(warp("retain"), false, true),
        plan(
            warp("retain").with_read_buffer(SMALL_WS_READ_BUFFER),
            false,
            true,
        ),
        plan(
            warp("drop").with_settings("fixes on", &WARP_FIXES),
            true,
            true,
        ),
        plan(
            warp("retain").with_settings("fixes on", &WARP_FIXES),
            false,
            true,
        ),
        plan(
            warp("drop")
                .with_read_buffer(SMALL_WS_READ_BUFFER)
                .with_settings("fixes on", &WARP_FIXES),
            true,
            true,
        ),
        plan(Stack::new(P::None, W::Bun, "drop", true), true, false),
        plan(Stack::new(P::None, W::Ours, "drop", true), true, false),
        plan(Stack::new(P::Ours, W::Bun, "drop", true), true, false),
        plan(Stack::new(P::Haproxy, W::Ours, "drop", true), true, false),
    ]
}

/// The client's TLS configuration: trusts the bench's certificate (made if missing).
pub fn client_tls(env: &Env) -> Result<Arc<ClientConfig>> {
    let config = env.tls_config();
    runtime::tls::ensure_certificate(&config).context("the bench's certificate")?;
    runtime::tls::client_config(&config).context("the client's TLS configuration")
}

/// `GET path`: the body and the wall time, connect to last byte.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let body = ::client::fetch::get(addr, path)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok((body.to_vec(), started.elapsed()))
}

/// `GET /snapshot` as JSON, with the wall time.
pub async fn snapshot(addr: SocketAddr) -> Result<(Value, Duration, usize)> {
    let (body, took) = http_get(addr, "/snapshot").await?;
    let json =
        serde_json::from_slice(&body).with_context(|| format!("{addr}/snapshot: not JSON"))?;
    Ok((json, took, body.len()))
}

/// `pinned_allocations` of a snapshot, in short.
fn pinned_of(snapshot: &Value) -> Option<Pinned> {
    let p = snapshot.get("pinned_allocations")?;
    let allocations = p.get("allocations")?.as_array()?;
    let kept: u64 = allocations
        .iter()
        .map(|a| a.get("kept").and_then(Value::as_array).map_or(0, Vec::len) as u64)
        .sum();
    Some(Pinned {
        pinned_bytes: p.get("pinned_bytes")?.as_u64()?,
        allocations: allocations.len() as u64,
        kept_parts: kept + p.get("unattributed_parts")?.as_u64()?,
    })
}

/// The allocator figures of one of our snapshots; `None` for a snapshot without
/// them; an error with the snapshot's reason when it says they could not be read.
fn alloc_of(snapshot: &Value) -> Result<Option<AllocFigures>> {
    if snapshot.pointer("/process/allocator").is_none() {
        return Ok(None);
    }
    Ok(Some(AllocFigures {
        resident: readable(snapshot, "process.allocator.resident_bytes")?,
        allocated: readable(snapshot, "process.allocator.allocated_bytes")?,
    }))
}

/// A figure of a snapshot by its name (`process.rss_bytes`), or why it is missing:
/// the reason the snapshot's `process.unreadable` gives for a `null` figure.
fn readable(snapshot: &Value, figure: &str) -> Result<u64> {
    let pointer = format!("/{}", figure.replace('.', "/"));
    match snapshot.pointer(&pointer) {
        Some(Value::Null) => {
            let why = snapshot
                .pointer("/process/unreadable")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|u| u.get("figure").and_then(Value::as_str) == Some(figure))
                .and_then(|u| u.get("reason")?.as_str())
                .unwrap_or("no reason recorded");
            Err(anyhow!("the snapshot's {figure} is unreadable: {why}"))
        }
        Some(v) => match v.as_u64() {
            Some(n) => Ok(n),
            None => Err(anyhow!("the snapshot's {figure} is not a byte count: {v}")),
        },
        None => Err(anyhow!("the snapshot has no {figure}")),
    }
}

/// RSS of both servers, then (ours) their allocator figures, then the kernel's.
pub(crate) async fn memory_sample(running: &Running, connections: u64) -> Result<MemorySample> {
    let proxy_rss = running.proxy_rss();
    let wss_rss = running.wss.rss();
    let (mut proxy_alloc, mut proxy_pinned) = (None, None);
    let (mut wss_alloc, mut wss_pinned) = (None, None);
    if running.stack.proxy.is_ours() {
        let (s, _, _) = snapshot(running.proxy_snapshot().expect("ours has one")).await?;
        proxy_alloc = alloc_of(&s).context("the proxy's snapshot")?;
        proxy_pinned = pinned_of(&s);
    }
    if running.stack.wss.is_ours() {
        let (s, _, _) = snapshot(running.wss_snapshot().expect("ours has one")).await?;
        wss_alloc = alloc_of(&s).context("the wss's snapshot")?;
        wss_pinned = pinned_of(&s);
    }
    let kernel = crate::kernel::read().context("the kernel's memory")?;
    Ok(MemorySample {
        connections,
        proxy_rss,
        wss_rss,
        proxy_alloc,
        wss_alloc,
        proxy_pinned,
        wss_pinned,
        sockstat: kernel.sockstat,
        kernel_slab: kernel.slab_bytes,
        sockets_used: kernel.sockets_used,
    })
}

/// Times `repeats` snapshots of each of our servers in `running`.
async fn snapshot_costs(
    running: &Running,
    connections: u64,
    repeats: usize,
) -> Result<Vec<SnapshotCost>> {
    let mut out = Vec::new();
    let servers = [
        (
            "proxy",
            running.stack.proxy.is_ours(),
            running.proxy_snapshot(),
        ),
        ("wss", running.stack.wss.is_ours(), running.wss_snapshot()),
    ];
    for (server, ours, addr) in servers {
        let (true, Some(addr)) = (ours, addr) else {
            continue;
        };
        let mut cost = SnapshotCost {
            stack: running.stack.name.clone(),
            server: server.to_string(),
            connections,
            took_us: Vec::new(),
            get_us: Vec::new(),
            body_bytes: 0,
            scrape_took_us: Vec::new(),
            scrape_get_us: Vec::new(),
            scrape_body_bytes: 0,
        };
        for _ in 0..repeats {
            let (s, took, len) = snapshot(addr).await?;
            let took_us = s
                .get("took_us")
                .and_then(Value::as_u64)
                .ok_or_else(|| anyhow!("{addr}: snapshot without took_us"))?;
            cost.took_us.push(took_us);
            cost.get_us.push(took.as_micros() as u64);
            cost.body_bytes = len as u64;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (body, took) = http_get(addr, "/metrics").await?;
            let text = String::from_utf8_lossy(&body);
            let snapshot_took = text
                .lines()
                .find(|l| l.starts_with("snapshot_duration_seconds"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .ok_or_else(|| anyhow!("{addr}/metrics: no snapshot_duration_seconds"))?;
            cost.scrape_took_us
                .push((snapshot_took * 1e6).round() as u64);
            cost.scrape_get_us.push(took.as_micros() as u64);
            cost.scrape_body_bytes = body.len() as u64;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        out.push(cost);
    }
    Ok(out)
}

/// Everything measured on one stack; failures end the stack's run and are kept in it.
pub async fn memory_and_load(
    env: &Env,
    plan: &Plan,
    planned: &Planned,
    ports: Ports,
    tls: &Arc<ClientConfig>,
    costs: &mut Vec<SnapshotCost>,
) -> StackResult {
    let (stack, full_load) = (&planned.stack, planned.full_load);
    let mut result = StackResult {
        stack: stack.clone(),
        full_load,
        started: false,
        error: None,
        memory: Vec::new(),
        throughput: Vec::new(),
        latency: None,
        with_traffic: planned.traffic,
        traffic: None,
        burst: None,
    };
    eprintln!(
        "bench: == {} ({} -> {})",
        stack.name,
        stack.proxy.label(),
        stack.wss.label()
    );
    let mut running = match stacks::start(env, stack, ports).await {
        Ok(r) => r,
        Err(e) => {
            result.error = Some(format!("{e:#}"));
            return result;
        }
    };
    result.started = true;
    let outcome = measure_stack(plan, &mut running, planned, tls, &mut result, costs).await;
    if let Err(e) = outcome {
        let alive = running
            .check_alive()
            .err()
            .map(|e| format!(" ({e:#})"))
            .unwrap_or_default();
        result.error = Some(format!("{e:#}{alive}"));
    }
    drop(running);
    if planned.traffic && plan.burst_connections > 0 && result.error.is_none() {
        match crate::burst::run(env, plan, stack, ports).await {
            Ok(burst) => result.burst = Some(burst),
            Err(e) => result.error = Some(format!("the burst step: {e:#}")),
        }
    }
    result
}

async fn measure_stack(
    plan: &Plan,
    running: &mut Running,
    planned: &Planned,
    tls: &Arc<ClientConfig>,
    result: &mut StackResult,
    costs: &mut Vec<SnapshotCost>,
) -> Result<()> {
    // Through the proxy in TLS, or to the wss in plain ws when the stack has no proxy.
    let target = Target {
        port: running.client_port(),
        tls: running.stack.proxy.exists().then(|| tls.clone()),
    };
    let settle = Duration::from_millis(plan.settle_ms);
    tokio::time::sleep(settle).await;
    result.memory.push(memory_sample(running, 0).await?);

    let data = DataConnection::start(
        &target,
        plan.data_size,
        Duration::from_millis(plan.data_delay_ms),
    )
    .await
    .context("the data connection")?;
    let mut pool = IdlePool::new(target.clone());
    let top = plan.levels.iter().copied().max().unwrap_or(0);
    for &level in &plan.levels {
        let limit = IdlePool::open_limit(level, plan.rate);
        let t = Instant::now();
        pool.grow_to(level, plan.rate, limit)
            .await
            .with_context(|| format!("opening {level} idle websockets"))?;
        tokio::time::sleep(settle).await;
        running.check_alive()?;
        if data.broken() {
            bail!("the data connection broke");
        }
        let sample = memory_sample(running, pool.open()).await?;
        eprintln!(
            "bench:    {:>5} idle (+data, {:.1}s to open): proxy {:.1} MB, wss {:.1} MB",
            pool.open(),
            t.elapsed().as_secs_f64(),
            sample.proxy_rss as f64 / 1e6,
            sample.wss_rss as f64 / 1e6
        );
        result.memory.push(sample);
        if level == top {
            costs.extend(snapshot_costs(running, pool.open(), plan.snapshot_repeats).await?);
        }
    }
    if planned.traffic {
        result.traffic = Some(traffic(plan, running, &mut pool).await?);
        if data.broken() {
            bail!("the data connection broke");
        }
    }
    data.stop().await.context("the data connection")?;
    pool.close().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if !planned.full_load {
        return Ok(());
    }

    for &n in &plan.throughput_connections {
        running.check_alive()?;
        let conns = client::open_many(&target, n, client::LARGE_READ_BUFFER)
            .await
            .with_context(|| format!("opening {n} throughput websockets"))?;
        let mut cpu = Vec::new();
        let counted = client::throughput(
            conns,
            plan.throughput_message,
            plan.throughput_window,
            Duration::from_millis(plan.throughput_warmup_ms),
            Duration::from_millis(plan.throughput_ms),
            || {
                cpu.push((
                    running.proxy_cpu_ticks(),
                    running.wss.cpu_ticks(),
                    procfs::cpu_sum(&[std::process::id()]),
                ))
            },
        )
        .await
        .with_context(|| format!("throughput over {n} websockets"))?;
        let hz = procfs::ticks_per_second() as f64;
        let (p0, w0, c0) = cpu[0];
        let (p1, w1, c1) = cpu[1];
        let t = Throughput {
            connections: n,
            messages: counted.messages,
            bytes: counted.bytes,
            secs: counted.secs,
            proxy_cpu_secs: (p1 - p0) as f64 / hz,
            wss_cpu_secs: (w1 - w0) as f64 / hz,
            client_cpu_secs: (c1 - c0) as f64 / hz,
        };
        eprintln!(
            "bench:    throughput, {n} websockets: {:.1} MB/s, {:.0} msg/s; CPU proxy {:.1}s wss {:.1}s client {:.1}s",
            t.mb_per_sec(),
            t.messages_per_sec(),
            t.proxy_cpu_secs,
            t.wss_cpu_secs,
            t.client_cpu_secs
        );
        result.throughput.push(t);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    running.check_alive()?;
    let n = plan.latency_connections;
    let conns = client::open_many(&target, n, client::SMALL_READ_BUFFER)
        .await
        .with_context(|| format!("opening {n} latency websockets"))?;
    let rounds = plan.latency_rounds.max(1);
    let (rounds, lost) = client::latency(
        conns,
        plan.latency_message,
        Duration::from_millis(plan.latency_every_ms),
        Duration::from_millis(plan.latency_ms),
        rounds,
    )
    .await
    .with_context(|| format!("latency over {n} websockets"))?;
    let latency = Latency::of_rounds(n, rounds, lost);
    eprintln!(
        "bench:    latency, {n} websockets: p50 {:.2} ms, p99 {:.2} ms (rounds {:?} us), max {:.2} ms ({} samples, {lost} lost)",
        latency.p50_us as f64 / 1e3,
        latency.p99_us as f64 / 1e3,
        latency.p99_rounds_us,
        latency.max_us as f64 / 1e3,
        latency.samples
    );
    if latency.samples == 0 {
        bail!("latency: no round trip measured");
    }
    result.latency = Some(latency);
    running.check_alive()?;
    Ok(())
}

/// The traffic step: every websocket of `pool` sends the plan's first message and
/// traffic (bounded: 60 s plus 20 MB/s of it), then RSS is sampled once settled.
async fn traffic(plan: &Plan, running: &mut Running, pool: &mut IdlePool) -> Result<Traffic> {
    let spec = TrafficSpec {
        first: plan.traffic_first_message,
        bytes: plan.traffic_bytes,
        message: plan.traffic_message,
    };
    let n = pool.open();
    let total = n as f64 * (spec.first + spec.bytes) as f64;
    let limit = Duration::from_secs_f64(60.0 + total / 20e6);
    let done = pool
        .traffic(spec, plan.traffic_concurrency.max(1), limit)
        .await
        .with_context(|| {
            format!(
                "traffic of {n} websockets ({} B, then {} B in {} B messages)",
                spec.first, spec.bytes, spec.message
            )
        })?;
    running.check_alive()?;
    let started = Instant::now();
    let settled = settle(
        running,
        Duration::from_millis(plan.settle_ms),
        Duration::from_millis(plan.traffic_settle_step_ms.max(100)),
        Duration::from_millis(plan.traffic_settle_max_ms.max(plan.settle_ms)),
    )
    .await;
    let settle_secs = started.elapsed().as_secs_f64();
    running.check_alive()?;
    let after = memory_sample(running, pool.open()).await?;
    eprintln!(
        "bench:    after traffic ({} websockets, {:.1}s; settled {settled} after {settle_secs:.1}s): proxy {:.1} MB, wss {:.1} MB",
        done.connections,
        done.secs,
        after.proxy_rss as f64 / 1e6,
        after.wss_rss as f64 / 1e6
    );
    Ok(Traffic {
        connections: done.connections,
        first_message: spec.first,
        bytes: spec.bytes,
        message: spec.message,
        secs: done.secs,
        settle_secs,
        settled,
        after,
    })
}

/// Waits `min`, then until neither server's RSS moved by 1 % or more over one `step`,
/// at most `max` in all; whether it settled.
async fn settle(running: &Running, min: Duration, step: Duration, max: Duration) -> bool {
    let start = Instant::now();
    tokio::time::sleep(min).await;
    let rss = || (running.proxy_rss(), running.wss.rss());
    let mut last = rss();
    loop {
        if start.elapsed() + step > max {
            return false;
        }
        tokio::time::sleep(step).await;
        let now = rss();
        if steady(last.0, now.0) && steady(last.1, now.1) {
            return true;
        }
        last = now;
    }
}

/// Whether `now` is within 1 % of `before`.
fn steady(before: u64, now: u64) -> bool {
    now.abs_diff(before) * 100 < before.max(1)
}

/// The seed's experiment on one stack (ours in `head` mode, or Node's with the seed's
/// `retain`): pinning connections beside the data connection, then both snapshots.
pub async fn headline(
    env: &Env,
    plan: &Plan,
    stack: &Stack,
    ports: Ports,
    tls: &Arc<ClientConfig>,
) -> Result<Vec<HeadlineRow>> {
    eprintln!("bench: == headline: {}", stack.name);
    let mut running = stacks::start(env, stack, ports).await?;
    let target = Target {
        port: ports.proxy,
        tls: Some(tls.clone()),
    };
    let data = DataConnection::start(
        &target,
        plan.data_size,
        Duration::from_millis(plan.headline_data_delay_ms),
    )
    .await
    .context("the data connection")?;
    let mut pool = IdlePool::new(target);
    let n = plan.headline_pinning;
    pool.grow_to(n, plan.headline_rate, Duration::from_secs(120))
        .await
        .with_context(|| format!("opening {n} pinning websockets"))?;
    // One more data interval, as the seed's client keeps sending.
    tokio::time::sleep(Duration::from_millis(
        plan.headline_data_delay_ms * 2 + 1000,
    ))
    .await;
    running.check_alive()?;
    let mut rows = Vec::new();
    for (server, addr) in [
        ("proxy", running.proxy_snapshot()),
        ("wss", running.wss_snapshot()),
    ] {
        let addr = addr.expect("ours and Node's servers have snapshots");
        let (s, _, _) = snapshot(addr).await?;
        let u = |p: &str| s.pointer(p).and_then(Value::as_u64);
        let live_slabs = s
            .get("pools")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .map(|pools| {
                pools
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            p.get("name").and_then(Value::as_str).unwrap_or("?"),
                            p.get("live_slabs").and_then(Value::as_u64).unwrap_or(0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        rows.push(HeadlineRow {
            stack: match stack.proxy {
                ProxyKind::Node => "node",
                ProxyKind::OursWarp => "ours-warp",
                _ => "ours",
            }
            .to_string(),
            server: server.to_string(),
            head: stack.head.clone(),
            pinning: pool.open(),
            live_slabs,
            retained_bytes: u("/totals/retained_bytes"),
            referenced_bytes: u("/totals/referenced_bytes"),
            rss: readable(&s, "process.rss_bytes")
                .with_context(|| format!("the {server}'s snapshot"))?,
            alloc_resident: u("/process/allocator/resident_bytes"),
            node_array_buffers: u("/process/node/array_buffers_bytes"),
            node_heap_used: u("/process/node/heap_used_bytes"),
            pinned: pinned_of(&s),
        });
    }
    data.stop().await.context("the data connection")?;
    pool.close().await;
    Ok(rows)
}

/// An `alloc-probe` process of `role` on `ports`, for the bench's probe step.
fn start_probe(
    env: &Env,
    role: &str,
    ports: Ports,
    log: &std::path::Path,
) -> Result<(ProbeProcess, Value)> {
    let settings: Vec<(String, String)> = [
        ("proxy_port", ports.proxy.to_string()),
        ("proxy_heapdump_port", ports.proxy_snapshot.to_string()),
        ("proxy_target.host", "127.0.0.1".to_string()),
        ("proxy_target.port", ports.wss.to_string()),
        ("wss_port", ports.wss.to_string()),
        ("wss_heapdump_port", ports.wss_snapshot.to_string()),
        ("proxy_head", "drop".to_string()),
        ("wss_head", "drop".to_string()),
        ("wss_echo", "true".to_string()),
        ("cert_dir", env.cert_dir.display().to_string()),
        ("max_connections", "0".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    let bin = env.bin_dir.join("alloc-probe");
    ProbeProcess::start(&bin, &env.root, role, &settings, &[], log)
}

/// Our proxy and wss, each in an `alloc-probe` process: live allocations by size
/// class before and with `probe_connections` idle websockets (no data connection).
pub async fn probe(
    env: &Env,
    plan: &Plan,
    ports: Ports,
    tls: &Arc<ClientConfig>,
) -> Result<Vec<ProbeResult>> {
    eprintln!("bench: == allocation probe of our proxy and wss");
    std::fs::create_dir_all(env.logs()).with_context(|| env.logs().display().to_string())?;
    let (mut wss, wss_ready) = start_probe(env, "wss", ports, &env.logs().join("probe.wss.log"))?;
    let (mut proxy, proxy_ready) =
        start_probe(env, "proxy", ports, &env.logs().join("probe.proxy.log"))?;
    let mut pool = IdlePool::new(Target {
        port: ports.proxy,
        tls: Some(tls.clone()),
    });
    // The first tenth is the baseline: it pays what the first connections allocate
    // once (the current slabs, the runtime's growth), so the rest is per connection.
    let n = plan.probe_connections;
    let first = (n / 10).max(20);
    let limit = IdlePool::open_limit(n, plan.rate);
    pool.grow_to(first, plan.rate, limit)
        .await
        .with_context(|| format!("opening {first} idle websockets through the probe"))?;
    tokio::time::sleep(Duration::from_millis(plan.settle_ms)).await;
    let base_open = pool.open();
    let before = (proxy.dump()?, wss.dump()?);
    pool.grow_to(n, plan.rate, limit)
        .await
        .with_context(|| format!("opening {n} idle websockets through the probe"))?;
    tokio::time::sleep(Duration::from_millis(plan.settle_ms)).await;
    let open = pool.open();
    let after = (proxy.dump()?, wss.dump()?);
    pool.close().await;
    let added = open.saturating_sub(base_open);
    let mut out = Vec::new();
    for (server, b, a, ready) in [
        ("proxy", &before.0, &after.0, &proxy_ready),
        ("wss", &before.1, &after.1, &wss_ready),
    ] {
        let per = |x: u64, y: u64| (y as f64 - x as f64) / added.max(1) as f64;
        out.push(ProbeResult {
            server: server.to_string(),
            baseline_connections: base_open,
            connections: open,
            allocated_per_conn: per(b.allocated, a.allocated),
            resident_per_conn: per(b.resident, a.resident),
            rss_per_conn: per(b.rss, a.rss),
            classes: crate::probe::per_connection(b, a, added),
            type_sizes: serde_json::from_value(ready["type_sizes"].clone()).unwrap_or_default(),
        });
    }
    drop(proxy);
    drop(wss);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_plan_is_small() {
        let q = Plan::quick();
        assert!(q.levels.iter().all(|l| *l <= 200));
        assert_eq!(Plan::full().levels, vec![1000, 5000, 8000]);
        assert!(q.traffic_bytes <= 40_000);
        let f = Plan::full();
        assert_eq!(
            (f.traffic_first_message, f.traffic_bytes, f.traffic_message),
            (100, 400_000, 16384)
        );
    }

    #[test]
    fn the_run_has_both_our_stacks_with_traffic_and_the_peers_without() {
        let all = stacks();
        let names: Vec<&str> = all.iter().map(|p| p.stack.name.as_str()).collect();
        for name in [
            "ours",
            "ours (retain)",
            "ours-warp",
            "ours-warp (4 KiB read buffer)",
            "ours-warp (retain)",
            "ours-warp (retain, 4 KiB read buffer)",
        ] {
            let p = all.iter().find(|p| p.stack.name == name).expect(name);
            assert!(p.traffic, "{name} has the traffic step");
        }
        for p in &all {
            let ours = p.stack.proxy.is_ours() && p.stack.wss.is_ours();
            assert_eq!(p.traffic, ours, "{}", p.stack.name);
            assert_eq!(p.full_load, p.stack.head == "drop", "{}", p.stack.name);
        }
        // Bun's wss and HAProxy, everything measured but the traffic.
        for name in [
            "plain ws -> bun",
            "plain ws -> ours",
            "ours -> bun",
            "haproxy -> ours",
        ] {
            let p = all.iter().find(|p| p.stack.name == name).expect(name);
            assert!(p.full_load && !p.traffic, "{name}");
        }
        // The existing stacks keep their places (their ports).
        assert_eq!(
            &names[..7],
            &[
                "ours",
                "node",
                "nginx -> ours",
                "nginx -> node ws",
                "node http-proxy -> ours",
                "ours -> warp::ws",
                "ours (retain)"
            ]
        );
        let small = all
            .iter()
            .find(|p| p.stack.name == "ours-warp (4 KiB read buffer)")
            .unwrap();
        assert_eq!(small.stack.ws_read_buffer_size, Some(4096));
        assert_eq!(
            (small.stack.proxy, small.stack.wss),
            (ProxyKind::OursWarp, WssKind::OursWarp)
        );
    }

    #[test]
    fn steadiness_is_within_one_per_cent() {
        assert!(steady(1000, 1009));
        assert!(steady(1000, 991));
        assert!(!steady(1000, 1010));
        assert!(!steady(1000, 900));
        assert!(steady(0, 0));
    }

    #[test]
    fn an_unreadable_figure_fails_the_measurement_with_its_reason() {
        let s: Value = serde_json::from_str(
            r#"{"process": {"rss_bytes": null, "allocator": {"resident_bytes": 3000,
                "allocated_bytes": null},
                "unreadable": [{"figure": "process.rss_bytes", "reason": "reading /proc/self/status: EACCES"},
                    {"figure": "process.allocator.allocated_bytes", "reason": "jemalloc stats.allocated: EINVAL"}]}}"#,
        )
        .unwrap();
        let err = readable(&s, "process.rss_bytes").unwrap_err().to_string();
        assert_eq!(
            err,
            "the snapshot's process.rss_bytes is unreadable: reading /proc/self/status: EACCES"
        );
        let err = alloc_of(&s).unwrap_err().to_string();
        assert!(err.contains("jemalloc stats.allocated: EINVAL"), "{err}");
        // An older snapshot's plain numbers read; a snapshot without allocator has none.
        let old: Value =
            serde_json::from_str(r#"{"process": {"rss_bytes": 5, "allocator": {"resident_bytes": 3, "allocated_bytes": 2}}}"#)
                .unwrap();
        assert_eq!(readable(&old, "process.rss_bytes").unwrap(), 5);
        let a = alloc_of(&old).unwrap().unwrap();
        assert_eq!((a.resident, a.allocated), (3, 2));
        assert!(alloc_of(&serde_json::json!({"process": {}}))
            .unwrap()
            .is_none());
    }

    #[test]
    fn pinned_allocations_of_a_snapshot() {
        let s: Value = serde_json::from_str(
            r#"{"pinned_allocations": {"registry": {}, "pinned_bytes": 262144,
                "kept_bytes": 200, "unattributed_parts": 3, "unattributed_bytes": 30,
                "allocations": [{"kept": [{}, {}]}, {"kept": [{}]}]}}"#,
        )
        .unwrap();
        let p = pinned_of(&s).unwrap();
        assert_eq!(
            (p.pinned_bytes, p.allocations, p.kept_parts),
            (262144, 2, 6)
        );
        assert!(pinned_of(&serde_json::json!({"process": {}})).is_none());
    }
}
