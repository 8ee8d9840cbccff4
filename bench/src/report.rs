//! The results as Markdown tables (the ones docs/results/benchmarks.md shows), the goals of
//! issues 4 and 20 against what was measured, and the check `--quick` makes: every
//! peer started and every figure was produced (the traffic and burst steps' too, for
//! the stacks that have them).
//!
//! Units: KB = 1,000 bytes, MB = 1,000,000 bytes. Memory per connection is
//! (value with N connections - value before the client) / N.

use std::fmt::Write;

use client::table::{Align, MarkdownTable};

use crate::results::{Burst, MemorySample, Results, StackResult, Throughput};

const L: Align = Align::Left;
const R: Align = Align::Right;

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1e3)
}

/// KB per connection of `get` between the first sample and `s`.
fn per_conn(first: &MemorySample, s: &MemorySample, get: impl Fn(&MemorySample) -> u64) -> f64 {
    (get(s) as f64 - get(first) as f64) / s.connections.max(1) as f64 / 1e3
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

fn stack<'a>(r: &'a Results, name: &str) -> Option<&'a StackResult> {
    r.stacks.iter().find(|s| s.stack.name == name && s.started)
}

/// Top-level memory per connection of a stack's proxy (or wss), KB.
fn top_per_conn(s: &StackResult, proxy: bool) -> Option<f64> {
    let first = s.memory.first()?;
    let last = s.memory.last().filter(|l| l.connections > 0)?;
    Some(if proxy {
        per_conn(first, last, |m| m.proxy_rss)
    } else {
        per_conn(first, last, |m| m.wss_rss)
    })
}

fn throughput_at(s: &StackResult, conns: usize) -> Option<f64> {
    s.throughput
        .iter()
        .find(|t| t.connections == conns)
        .map(|t| t.mb_per_sec())
}

fn ratio(x: Option<f64>, y: Option<f64>) -> String {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
        _ => "-".into(),
    }
}

/// The machine's cores, as the run recorded them (2 if it did not).
fn cores(r: &Results) -> f64 {
    r.meta
        .machine
        .get("cores")
        .and_then(|c| c.parse().ok())
        .unwrap_or(2.0)
}

/// Whether `target` MB/s fits in `cores` on the stack measured in `t`: at that rate
/// the client and the wss need their CPU per MB (measured in `t`) times the rate;
/// what is left of the cores is the proxy's, and it would have to pass the target in
/// it. The sentence says what the proxy would need against what it does.
fn cpu_budget(t: &Throughput, target: f64, cores: f64) -> Option<(bool, String)> {
    let mb = t.bytes as f64 / 1e6;
    if mb <= 0.0 || t.client_cpu_secs <= 0.0 || t.proxy_cpu_secs <= 0.0 {
        return None;
    }
    let others = (t.client_cpu_secs + t.wss_cpu_secs) / mb * target;
    let left = cores - others;
    let does = mb / t.proxy_cpu_secs;
    if left <= 0.0 {
        return Some((
            false,
            format!(
                "at {target:.0} MB/s the client and the wss alone need {others:.2} of {cores:.0} cores"
            ),
        ));
    }
    let needs = target / left;
    Some((
        needs <= does,
        format!(
            "at {target:.0} MB/s the client and the wss need {others:.2} of {cores:.0} cores; \
             in the {left:.2} left the proxy would pass {needs:.0} MB per CPU second (it passes {does:.0})"
        ),
    ))
}

/// The header every table shows: how to reproduce it, when and where it was measured.
pub fn preamble(r: &Results) -> String {
    let m = &r.meta;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Measured {} UTC by `{}` ({:.0} s for the whole run{}).",
        m.date,
        m.command,
        m.seconds,
        if m.quick {
            ", quick sizes: not a measurement"
        } else {
            ""
        }
    );
    let machine: Vec<String> = m.machine.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(out, "Machine: {}.", machine.join("; "));
    let versions: Vec<String> = m.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "Versions: {}.", versions.join(", "));
    let p = &m.plan;
    let _ = writeln!(
        out,
        "Client (the same for every stack, in the `bench` process): TLS 1.3 websockets to \
         the proxy on 127.0.0.1 (plain ws straight to the wss for the stacks without a \
         proxy, `plain ws -> ...`), opened at {}/s; the data connection sends {} bytes every \
         {} ms; each level is sampled {} ms after it is reached. Our servers run with \
         head mode `drop` (unless the stack says otherwise) and `wss_echo` on; the Node \
         and Bun peers keep nothing either; every wss echoes.",
        p.rate, p.data_size, p.data_delay_ms, p.settle_ms
    );
    out
}

/// Memory per idle websocket: one table for the proxies, one for the wss.
pub fn memory_tables(r: &Results) -> String {
    let mut out = String::new();
    let levels = &r.meta.plan.levels;
    let ours = stack(r, "ours");
    for proxy in [true, false] {
        let who = if proxy { "proxy" } else { "wss" };
        let _ = writeln!(
            out,
            "\n**{who}**: RSS in MB before the client and with N idle websockets (plus the \
             data connection); KB per websocket = (RSS at N - RSS before) / N{}.\n",
            if proxy {
                "; nginx is its master plus workers"
            } else {
                ""
            }
        );
        let mut table = MarkdownTable::new(&[("stack", L), (who, L), ("before MB", R)]);
        for l in levels {
            table.column(format!("{l} MB"), R);
        }
        for l in levels {
            table.column(format!("KB/ws at {l}"), R);
        }
        let (lo, hi) = (
            levels.first().copied().unwrap_or(0),
            levels.last().copied().unwrap_or(0),
        );
        table.column(format!("marginal KB/ws {lo}→{hi}"), R);
        table.column("allocator resident KB/ws (ours)", R);
        table.column("× ours", R);
        let ours_top = ours.and_then(|s| top_per_conn(s, proxy));
        // A stack without a proxy has no row in the proxy's table.
        for s in r
            .stacks
            .iter()
            .filter(|s| s.started && !s.memory.is_empty() && (!proxy || s.stack.proxy.exists()))
        {
            let first = &s.memory[0];
            let label = if proxy {
                s.stack.proxy.label()
            } else {
                s.stack.wss.label()
            };
            let mut row = vec![
                s.stack.name.to_string(),
                label.to_string(),
                mb(if proxy {
                    first.proxy_rss
                } else {
                    first.wss_rss
                }),
            ];
            let samples = &s.memory[1..];
            for l in levels {
                row.push(
                    match samples.iter().find(|m| m.connections >= *l * 99 / 100) {
                        Some(m) => mb(if proxy { m.proxy_rss } else { m.wss_rss }),
                        None => "-".into(),
                    },
                );
            }
            for l in levels {
                row.push(
                    match samples.iter().find(|m| m.connections >= *l * 99 / 100) {
                        Some(m) => {
                            let kb =
                                per_conn(first, m, |x| if proxy { x.proxy_rss } else { x.wss_rss });
                            format!("{kb:.1}")
                        }
                        None => "-".into(),
                    },
                );
            }
            let marginal = match (samples.first(), samples.last()) {
                (Some(a), Some(b)) if b.connections > a.connections => {
                    let get = |x: &MemorySample| if proxy { x.proxy_rss } else { x.wss_rss };
                    format!(
                        "{:.1}",
                        (get(b) as f64 - get(a) as f64)
                            / (b.connections - a.connections) as f64
                            / 1e3
                    )
                }
                _ => "-".into(),
            };
            row.push(marginal);
            let alloc = samples.last().and_then(|m| {
                let a = if proxy { m.proxy_alloc } else { m.wss_alloc }?;
                let a0 = if proxy {
                    first.proxy_alloc
                } else {
                    first.wss_alloc
                }?;
                Some((a.resident as f64 - a0.resident as f64) / m.connections.max(1) as f64 / 1e3)
            });
            row.push(
                alloc
                    .map(|a| format!("{a:.1}"))
                    .unwrap_or_else(|| "-".into()),
            );
            row.push(ratio(top_per_conn(s, proxy), ours_top));
            table.row(row);
        }
        out.push_str(&table.render());
    }
    out
}

/// What [`kernel_table`] says its figures are.
pub const KERNEL_EXPLANATION: &str = "\n**Both servers and the kernel**: KB per websocket at N = \
    (value at N - value before the client) / N, as above. *RSS* is the proxy's and the \
    wss's together. *Kernel* is the machine's socket memory, TCP buffers (the `mem` pages \
    of the TCP line of `/proc/net/sockstat`) plus slab (`Slab:` of `/proc/meminfo`: socket \
    structures, their inodes and epoll entries), none of which is in any RSS. These are \
    machine-wide readings: the client runs on the same machine and its own sockets are in \
    them, so the servers' share is shown, the difference scaled by the servers' part of \
    one websocket's TCP sockets: 3 of 4 through a proxy (the client's, the proxy's two, \
    the wss's), 1 of 2 without one (idle sockets cost the kernel the same structures at \
    either end). The last columns are the machine-wide differences at the top level, \
    unscaled: sockets in use added per websocket (`sockets: used`; about 4 through a \
    proxy, 2 without: more means something else on the machine opened sockets \
    meanwhile, as anything else running moves all of these readings), TCP buffers and \
    slab.\n";

/// Each stack's memory per idle websocket: its servers' RSS together, next to the
/// kernel's (the servers' share, see [`crate::kernel`]), at every level.
pub fn kernel_table(r: &Results) -> String {
    let levels = &r.meta.plan.levels;
    let page = crate::procfs::page_size();
    let mut table = MarkdownTable::new(&[("stack", L)]);
    for l in levels {
        table.column(format!("RSS KB/ws at {l}"), R);
        table.column(format!("kernel KB/ws at {l}"), R);
    }
    let top = levels.last().copied().unwrap_or(0);
    table.column(format!("RSS + kernel KB/ws at {top}"), R);
    table.column(format!("at {top}, machine-wide: sockets/ws"), R);
    table.column("TCP buffers KB/ws", R);
    table.column("slab KB/ws", R);
    for s in r.stacks.iter().filter(|s| s.started && s.memory.len() > 1) {
        let first = &s.memory[0];
        let samples = &s.memory[1..];
        let at = |l: u64| samples.iter().find(|m| m.connections >= l * 99 / 100);
        let rss = |m: &MemorySample| per_conn(first, m, |x| x.proxy_rss + x.wss_rss);
        let kernel = |m: &MemorySample| crate::kernel::per_websocket(first, m, s.stack.proxy, page);
        let mut row = vec![s.stack.name.to_string()];
        for &l in levels {
            match at(l) {
                Some(m) => {
                    row.push(format!("{:.1}", rss(m)));
                    row.push(
                        kernel(m)
                            .map(|k| format!("{:.1}", k.servers_kb()))
                            .unwrap_or_else(|| "-".into()),
                    );
                }
                None => row.extend(["-".to_string(), "-".to_string()]),
            }
        }
        let last = samples.last().filter(|m| m.connections > 0);
        match last.and_then(|m| Some((rss(m), kernel(m)?))) {
            Some((rss, k)) => {
                row.push(format!("{:.1}", rss + k.servers_kb()));
                row.push(
                    k.sockets
                        .map(|n| format!("{n:.2}"))
                        .unwrap_or_else(|| "-".into()),
                );
                row.push(format!("{:.1}", k.tcp_kb));
                row.push(format!("{:.1}", k.slab_kb));
            }
            None => row.extend(std::iter::repeat_n("-".to_string(), 4)),
        }
        table.row(row);
    }
    format!("{KERNEL_EXPLANATION}\n{table}")
}

pub fn throughput_table(r: &Results) -> String {
    let p = &r.meta.plan;
    let mut out = format!(
        "\n{} KiB binary messages echoed through the TLS proxy, {} in flight per websocket, \
         {:.1} s measured after {:.1} s of warm-up. MB/s counts the echoed payload the client \
         got back (each byte crossed the proxy twice); CPU is user + system seconds of \
         each server and of the client (the bench process) in the measured window; {} \
         cores in all.\n\n",
        p.throughput_message >> 10,
        p.throughput_window,
        p.throughput_ms as f64 / 1e3,
        p.throughput_warmup_ms as f64 / 1e3,
        cores(r),
    );
    let mut table = MarkdownTable::new(&[
        ("stack", L),
        ("websockets", R),
        ("MB/s", R),
        ("messages/s", R),
        ("proxy CPU s", R),
        ("wss CPU s", R),
        ("client CPU s", R),
        ("MB per proxy CPU s", R),
        ("ours ÷ this", R),
    ]);
    let ours = stack(r, "ours");
    for s in r.stacks.iter().filter(|s| !s.throughput.is_empty()) {
        for t in &s.throughput {
            let mine = Some(t.mb_per_sec());
            let base = ours.and_then(|o| throughput_at(o, t.connections));
            let per_cpu = if t.proxy_cpu_secs > 0.0 {
                format!("{:.0}", t.bytes as f64 / 1e6 / t.proxy_cpu_secs)
            } else {
                "-".into()
            };
            table.row([
                s.stack.name.to_string(),
                t.connections.to_string(),
                format!("{:.1}", t.mb_per_sec()),
                format!("{:.0}", t.messages_per_sec()),
                format!("{:.1}", t.proxy_cpu_secs),
                format!("{:.1}", t.wss_cpu_secs),
                format!("{:.1}", t.client_cpu_secs),
                per_cpu,
                ratio(base, mine),
            ]);
        }
    }
    out.push_str(&table.render());
    out
}

pub fn latency_table(r: &Results) -> String {
    let p = &r.meta.plan;
    let mut out = format!(
        "\nEvery one of {} websockets sends a {}-byte binary message every {} ms (starts spread \
         over the first interval) and times its echo, for {} round(s) of {:.0} s in a row; \
         p99 is the median of the rounds' p99s (each round's in the next column), p50 and \
         max are over all rounds.\n\n",
        p.latency_connections,
        p.latency_message,
        p.latency_every_ms,
        p.latency_rounds.max(1),
        p.latency_ms as f64 / 1e3
    );
    let mut table = MarkdownTable::new(&[
        ("stack", L),
        ("websockets", R),
        ("round trips", R),
        ("lost", R),
        ("p50 ms", R),
        ("p99 ms", R),
        ("p99 of each round, ms", R),
        ("max ms", R),
        ("p99 ÷ ours", R),
    ]);
    let ours = stack(r, "ours").and_then(|s| s.latency.as_ref());
    for s in &r.stacks {
        let Some(l) = &s.latency else { continue };
        table.row([
            s.stack.name.to_string(),
            l.connections.to_string(),
            l.samples.to_string(),
            l.lost.to_string(),
            ms(l.p50_us),
            ms(l.p99_us),
            l.p99_rounds_us
                .iter()
                .map(|&u| ms(u))
                .collect::<Vec<_>>()
                .join(", "),
            ms(l.max_us),
            ratio(Some(l.p99_us as f64), ours.map(|o| o.p99_us as f64)),
        ]);
    }
    out.push_str(&table.render());
    out
}

pub fn headline_table(r: &Results) -> String {
    let p = &r.meta.plan;
    let mut out = format!(
        "\nThe seed's experiment, accelerated {:.0}x: {} pinning websockets at {}/s beside a \
         data connection sending {} bytes every {} ms (the same bytes of data per pinning \
         connection as the seed's 1/s and 1,000 ms), slab sizes of config.json (TLS 10 MiB, \
         TCP 1 MiB), no echo. Read from each server's snapshot {} ms after the last one opened.\n\n\
         Pinned is our snapshot's `pinned_allocations`: the large allocations (slabs, or on \
         the warp stack hyper's and tungstenite's buffers) that what connections keep lies \
         in, found in the allocator's registry, and how many kept parts there are.\n\n",
        p.headline_rate,
        p.headline_pinning,
        p.headline_rate,
        p.data_size,
        p.headline_data_delay_ms,
        p.headline_data_delay_ms * 2 + 1000,
    );
    let mut table = MarkdownTable::new(&[
        ("stack", L),
        ("server", L),
        ("head", L),
        ("pinning", R),
        ("live slabs", L),
        ("retained MB", R),
        ("referenced KB", R),
        ("MB per pinning ws", R),
        ("pinned MB (kept parts)", R),
        ("RSS MB", R),
        ("allocator resident MB", R),
        ("Node array buffers MB", R),
        ("Node heap used MB", R),
    ]);
    let opt_mb = |v: Option<u64>| v.map(mb).unwrap_or_else(|| "-".into());
    for h in &r.headline {
        // Retained and referenced bytes are the slab pools' figures: none without pools.
        let pools = h.live_slabs.is_some();
        let retained = h.retained_bytes.filter(|_| pools);
        let per = retained
            .map(|b| format!("{:.2}", b as f64 / 1e6 / h.pinning.max(1) as f64))
            .unwrap_or_else(|| "-".into());
        table.row([
            h.stack.to_string(),
            h.server.to_string(),
            h.head.to_string(),
            h.pinning.to_string(),
            h.live_slabs.clone().unwrap_or_else(|| "-".into()),
            opt_mb(retained),
            h.referenced_bytes
                .filter(|_| pools)
                .map(|b| format!("{:.1}", b as f64 / 1e3))
                .unwrap_or_else(|| "-".into()),
            per,
            h.pinned
                .map(|p| format!("{} ({})", mb(p.pinned_bytes), p.kept_parts))
                .unwrap_or_else(|| "-".into()),
            mb(h.rss),
            opt_mb(h.alloc_resident),
            opt_mb(h.node_array_buffers),
            opt_mb(h.node_heap_used),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// Memory after every idle websocket sent a first message and its own traffic, next
/// to the idle figures at the same count.
pub fn traffic_table(r: &Results) -> String {
    let p = &r.meta.plan;
    let mut out = format!(
        "\nAfter the idle levels, with every websocket of the top level still open (and the \
         data connection), each sends one {}-byte binary message (the first message: what \
         `retain` keeps on the warp stack), then {} bytes in {}-byte messages, each message \
         followed by a ping whose pong (which proves the wss has read it) comes before the \
         next, so the wss reads each message on its own ({} websockets at a time, every \
         message echoed). RSS is read {} ms after the last pong, once neither server's RSS moved by \
         1 % over {} ms (at most {} ms; *settled* says whether it did). KB per websocket = \
         (RSS - RSS before the client) / N, as above; *traffic adds* = (RSS after - RSS \
         idle) / N. Pinned: our snapshot's `pinned_allocations`, the large allocations that \
         what connections keep lies in, per websocket.\n\n",
        p.traffic_first_message,
        p.traffic_bytes,
        p.traffic_message,
        p.traffic_concurrency,
        p.settle_ms,
        p.traffic_settle_step_ms,
        p.traffic_settle_max_ms,
    );
    let mut table = MarkdownTable::new(&[
        ("stack", L),
        ("server", L),
        ("websockets", R),
        ("idle MB", R),
        ("after traffic MB", R),
        ("KB/ws idle", R),
        ("KB/ws after traffic", R),
        ("traffic adds KB/ws", R),
        ("allocator resident KB/ws after", R),
        ("pinned KB/ws idle → after (kept parts)", R),
        ("traffic s", R),
        ("settled", L),
    ]);
    for s in r.stacks.iter().filter(|s| s.started) {
        let (Some(t), Some(first), Some(idle)) = (&s.traffic, s.memory.first(), s.memory.last())
        else {
            continue;
        };
        let a = &t.after;
        let n = a.connections.max(1) as f64;
        for proxy in [true, false] {
            let rss = |m: &MemorySample| if proxy { m.proxy_rss } else { m.wss_rss };
            let label = if proxy {
                s.stack.proxy.label()
            } else {
                s.stack.wss.label()
            };
            let kb = |x: u64, y: u64| format!("{:.1}", (y as f64 - x as f64) / n / 1e3);
            let alloc = |m: &MemorySample| if proxy { m.proxy_alloc } else { m.wss_alloc };
            let resident = match (alloc(first), alloc(a)) {
                (Some(x), Some(y)) => kb(x.resident, y.resident),
                _ => "-".into(),
            };
            let pinned = |m: &MemorySample| if proxy { m.proxy_pinned } else { m.wss_pinned };
            let pinned = match (pinned(idle), pinned(a)) {
                (Some(x), Some(y)) => format!(
                    "{} → {} ({})",
                    kb(0, x.pinned_bytes),
                    kb(0, y.pinned_bytes),
                    y.kept_parts
                ),
                _ => "-".into(),
            };
            table.row([
                s.stack.name.to_string(),
                format!("{} ({label})", if proxy { "proxy" } else { "wss" }),
                a.connections.to_string(),
                mb(rss(idle)),
                mb(rss(a)),
                kb(rss(first), rss(idle)),
                kb(rss(first), rss(a)),
                kb(rss(idle), rss(a)),
                resident,
                pinned,
                format!("{:.1}", t.secs),
                if t.settled {
                    format!("yes, {:.1} s", t.settle_secs)
                } else {
                    format!("**no** ({:.1} s)", t.settle_secs)
                },
            ]);
        }
    }
    out.push_str(&table.render());
    out
}

/// KB per websocket of a server's RSS in `m` above the burst step's `base`.
fn burst_kb(b: &Burst, m: &MemorySample, proxy: bool) -> f64 {
    let rss = |m: &MemorySample| if proxy { m.proxy_rss } else { m.wss_rss };
    (rss(m) as f64 - rss(&b.base) as f64) / b.connections.max(1) as f64 / 1e3
}

/// Whether a server of the burst step was back within 2x of its idle cost per
/// websocket by the window's end (RSS).
fn burst_back(b: &Burst, proxy: bool) -> Option<bool> {
    let last = &b.after.last()?.memory;
    Some(burst_kb(b, last, proxy) <= 2.0 * burst_kb(b, &b.idle, proxy))
}

pub fn burst_table(r: &Results) -> String {
    let p = &r.meta.plan;
    let mut out = format!(
        "\nOn each stack of section 2, started anew: Node's `ws` client \
         (`bench/peers/node/burst.js`) opens {} websockets through the proxy, each waits \
         for its greeting, then all of them send their {}-byte first message and {} bytes \
         in {}-byte messages at once, as fast as the client sends them, and read the \
         echoes. KB per websocket = (RSS - RSS before the client) / N, idle (before the \
         burst), right after the last echo, and then each second; *back* says whether the \
         server was within 2x of its idle cost {} s after the burst. Allocated: jemalloc's \
         allocated bytes from our snapshot, the same way. Pinned: `pinned_allocations` per \
         websocket.\n\n",
        p.burst_connections,
        p.traffic_first_message,
        p.burst_bytes,
        p.traffic_message,
        p.burst_window_ms as f64 / 1e3,
    );
    let mut table = MarkdownTable::new(&[
        ("stack", L),
        ("server", L),
        ("KB/ws idle", R),
        ("right after", R),
        ("after 1 s", R),
        ("at the end", R),
        ("end ÷ idle", R),
        ("back", L),
        ("allocated KB/ws idle → after → end", R),
        ("pinned KB/ws idle → end", R),
        ("burst s", R),
    ]);
    for s in r.stacks.iter().filter(|s| s.started) {
        let Some(b) = &s.burst else { continue };
        let (Some(first), Some(last)) = (b.after.first(), b.after.last()) else {
            continue;
        };
        let one = b.after.iter().find(|a| a.at_ms >= 1000).unwrap_or(last);
        let n = b.connections.max(1) as f64;
        for proxy in [true, false] {
            let label = if proxy {
                s.stack.proxy.label()
            } else {
                s.stack.wss.label()
            };
            let kb = |m: &MemorySample| burst_kb(b, m, proxy);
            let alloc = |m: &MemorySample| if proxy { m.proxy_alloc } else { m.wss_alloc };
            let allocated = match (
                alloc(&b.base),
                alloc(&b.idle),
                alloc(&first.memory),
                alloc(&last.memory),
            ) {
                (Some(base), Some(i), Some(f), Some(l)) => {
                    let k = |x: u64| (x as f64 - base.allocated as f64) / n / 1e3;
                    format!(
                        "{:.1} → {:.1} → {:.1}",
                        k(i.allocated),
                        k(f.allocated),
                        k(l.allocated)
                    )
                }
                _ => "-".into(),
            };
            let pinned = |m: &MemorySample| if proxy { m.proxy_pinned } else { m.wss_pinned };
            let pinned = match (pinned(&b.idle), pinned(&last.memory)) {
                (Some(x), Some(y)) => format!(
                    "{:.1} → {:.1}",
                    x.pinned_bytes as f64 / n / 1e3,
                    y.pinned_bytes as f64 / n / 1e3
                ),
                _ => "-".into(),
            };
            let idle = kb(&b.idle);
            let end = kb(&last.memory);
            table.row([
                s.stack.name.to_string(),
                format!("{} ({label})", if proxy { "proxy" } else { "wss" }),
                format!("{idle:.1}"),
                format!("{:.1}", kb(&first.memory)),
                format!("{:.1}", kb(&one.memory)),
                format!("{end:.1} ({:.1} s)", last.at_ms as f64 / 1e3),
                if idle > 0.0 {
                    format!("{:.2}", end / idle)
                } else {
                    "-".into()
                },
                match burst_back(b, proxy) {
                    Some(true) => "yes".into(),
                    _ => "**no**".into(),
                },
                allocated,
                pinned,
                format!("{:.1}", b.secs),
            ]);
        }
    }
    out.push_str(&table.render());
    out
}

pub fn snapshot_table(r: &Results) -> String {
    let mut out = String::from(
        "\n`took_us` is the server's own time to take the snapshot; GET is the client's wall \
         time for `GET /snapshot` (connect, serialize, transfer). A scrape is a `GET /metrics` \
         right after each snapshot: the server's time for the snapshot behind it \
         (`snapshot_duration_seconds`) and the client's wall time for the whole GET. Median and \
         max of the repeats.\n\n",
    );
    let mut table = MarkdownTable::new(&[
        ("stack", L),
        ("server", L),
        ("websockets", R),
        ("took ms (median / max)", R),
        ("GET ms (median / max)", R),
        ("JSON KB", R),
        ("scrape: took ms (median / max)", R),
        ("scrape: GET ms (median / max)", R),
        ("text KB", R),
    ]);
    let median_max = |v: &[u64]| {
        format!(
            "{} / {}",
            ms(median(v)),
            ms(v.iter().copied().max().unwrap_or(0))
        )
    };
    for c in &r.snapshot_cost {
        table.row([
            c.stack.to_string(),
            c.server.to_string(),
            c.connections.to_string(),
            median_max(&c.took_us),
            median_max(&c.get_us),
            format!("{:.0}", c.body_bytes as f64 / 1e3),
            median_max(&c.scrape_took_us),
            median_max(&c.scrape_get_us),
            format!("{:.1}", c.scrape_body_bytes as f64 / 1e3),
        ]);
    }
    out.push_str(&table.render());
    out
}

pub fn probe_table(r: &Results) -> String {
    let mut out = String::new();
    for p in &r.probe {
        let _ = writeln!(
            out,
            "\n**our {}**, from {} to {} idle websockets (no data connection), jemalloc without \
             thread caches: per websocket added, {:.1} KB allocated, {:.1} KB allocator-resident, \
             {:.1} KB RSS.\n",
            p.server,
            p.baseline_connections,
            p.connections,
            p.allocated_per_conn / 1e3,
            p.resident_per_conn / 1e3,
            p.rss_per_conn / 1e3
        );
        let mut table = MarkdownTable::new(&[
            ("size class (bytes)", R),
            ("live allocations per websocket", R),
            ("KB per websocket", R),
        ]);
        for c in p.classes.iter().take(12) {
            table.row([
                c.size.to_string(),
                format!("{:.2}", c.per_conn),
                format!("{:.2}", c.bytes_per_conn / 1e3),
            ]);
        }
        out.push_str(&table.render());
    }
    if let Some(p) = r.probe.first() {
        let sizes: Vec<String> = p
            .type_sizes
            .iter()
            .map(|(k, v)| format!("`{k}` {v} B"))
            .collect();
        let _ = writeln!(out, "\nSizes of the types involved: {}.", sizes.join(", "));
    }
    out
}

/// The goals of issue 4 against this run.
pub fn goals_table(r: &Results) -> String {
    let mut table =
        MarkdownTable::new(&[("goal", L), ("target", L), ("measured here", L), ("met", L)]);
    let ours = stack(r, "ours");
    let nginx = stack(r, "nginx -> ours");
    let node_proxy = stack(r, "node http-proxy -> ours");
    let top = r.meta.plan.levels.iter().max().copied().unwrap_or(0);
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    if let Some(kb) = ours.and_then(|s| top_per_conn(s, true)) {
        table.row([
            format!("proxy memory per idle TLS websocket at {top}"),
            "≤ 8 KB".into(),
            format!("{kb:.1} KB"),
            yes(kb <= 8.0).into(),
        ]);
    }
    if let Some(kb) = ours.and_then(|s| top_per_conn(s, false)) {
        table.row([
            format!("wss memory per idle websocket at {top}"),
            "≤ 3 KB".into(),
            format!("{kb:.1} KB"),
            yes(kb <= 3.0).into(),
        ]);
    }
    for &n in &r.meta.plan.throughput_connections {
        let mine = ours.and_then(|s| throughput_at(s, n));
        let goal = format!("throughput, {n} websockets, same wss (ours)");
        if let (Some(m), Some(x)) = (mine, nginx.and_then(|s| throughput_at(s, n))) {
            table.row([
                goal.clone(),
                format!("≥ nginx ({x:.0} MB/s)"),
                format!("{m:.0} MB/s ({:.2}x)", m / x),
                yes(m >= x).into(),
            ]);
        }
        if let (Some(m), Some(x)) = (mine, node_proxy.and_then(|s| throughput_at(s, n))) {
            table.row([
                goal,
                format!("≥ 2x Node http-proxy ({x:.0} MB/s)"),
                format!("{m:.0} MB/s ({:.2}x)", m / x),
                yes(m >= 2.0 * x).into(),
            ]);
            let ours_t = ours.and_then(|s| s.throughput.iter().find(|t| t.connections == n));
            if let Some((fits, why)) = ours_t.and_then(|t| cpu_budget(t, 2.0 * x, cores(r))) {
                if m < 2.0 * x {
                    table.row([
                        format!("the CPU that 2x Node http-proxy takes, {n} websockets"),
                        format!("fits in {:.0} cores", cores(r)),
                        why,
                        yes(fits).into(),
                    ]);
                }
            }
        }
    }
    // Issue 20: leaner than uWebSockets and HAProxy, back to idle after a burst.
    let top_kb = |name: &str, proxy: bool| stack(r, name).and_then(|s| top_per_conn(s, proxy));
    if let (Some(m), Some(x)) = (
        top_kb("plain ws -> ours", false),
        top_kb("plain ws -> bun", false),
    ) {
        table.row([
            format!("wss memory per idle websocket at {top}, straight"),
            format!("≤ 0.8x Bun ({x:.2} KB)"),
            format!("{m:.2} KB ({:.2}x)", m / x),
            yes(m <= 0.8 * x).into(),
        ]);
    }
    if let (Some(m), Some(x)) = (
        top_kb("ours-warp (fixes on)", true),
        top_kb("haproxy -> ours", true),
    ) {
        table.row([
            format!("warp proxy memory per idle TLS websocket at {top}, fixes on"),
            format!("< HAProxy ({x:.1} KB)"),
            format!("{m:.1} KB ({:.2}x)", m / x),
            yes(m < x).into(),
        ]);
    }
    let burst = |name: &str| stack(r, name).and_then(|s| s.burst.as_ref());
    let window = r.meta.plan.burst_window_ms as f64 / 1e3;
    for name in ["ours-warp (fixes on)", "ours-warp (retain, fixes on)"] {
        let Some(b) = burst(name) else { continue };
        let last = b.after.last().map(|a| &a.memory);
        let (Some(last), Some(back)) = (last, burst_back(b, false)) else {
            continue;
        };
        table.row([
            format!("{name}: wss back to idle after a burst"),
            format!("≤ 2x idle within {window:.0} s"),
            format!(
                "{:.1} KB/ws idle, {:.1} at the end",
                burst_kb(b, &b.idle, false),
                burst_kb(b, last, false)
            ),
            yes(back).into(),
        ]);
    }
    if let (Some(copy), Some(retain)) = (
        burst("ours-warp (fixes on)"),
        burst("ours-warp (retain, fixes on)"),
    ) {
        let end = |b: &Burst| b.after.last().map(|a| burst_kb(b, &a.memory, false));
        if let (Some(c), Some(k)) = (end(copy), end(retain)) {
            table.row([
                "after the burst, the pin shows: retain above drop (wss, fixes on)".into(),
                "clearly (≥ 64 KB/ws)".into(),
                format!("{k:.1} vs {c:.1} KB/ws"),
                yes(k - c >= 64.0).into(),
            ]);
        }
    }
    let p99 = |s: Option<&StackResult>| s.and_then(|s| s.latency.as_ref()).map(|l| l.p99_us);
    if let (Some(m), Some(x)) = (p99(ours), p99(nginx)) {
        let n = r.meta.plan.latency_connections;
        table.row([
            format!("p99 echo latency at {n} websockets"),
            format!("≤ nginx ({} ms)", ms(x)),
            format!("{} ms", ms(m)),
            yes(m <= x).into(),
        ]);
    }
    for c in &r.snapshot_cost {
        let worst_took = c.took_us.iter().copied().max().unwrap_or(0);
        let worst_get = c.get_us.iter().copied().max().unwrap_or(0);
        table.row([
            format!(
                "snapshot with {} websockets: {} {}",
                c.connections, c.stack, c.server
            ),
            "< 20 ms".into(),
            format!("took {} ms, GET {} ms (max)", ms(worst_took), ms(worst_get)),
            yes(worst_took < 20_000 && worst_get < 20_000).into(),
        ]);
    }
    format!("\n{table}")
}

/// Every table, in the order docs/results/benchmarks.md shows them.
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", preamble(r));
    let _ = writeln!(out, "### Goals against this run\n{}", goals_table(r));
    let _ = writeln!(
        out,
        "### 1. Memory per idle websocket through the TLS proxy (or straight to the wss)\n{}",
        memory_tables(r)
    );
    let _ = writeln!(out, "{}", kernel_table(r));
    let _ = writeln!(
        out,
        "### 2. Memory after a first message and own traffic\n{}",
        traffic_table(r)
    );
    let _ = writeln!(
        out,
        "### 2b. Back to idle after a burst\n{}",
        burst_table(r)
    );
    let _ = writeln!(out, "### 3. Throughput\n{}", throughput_table(r));
    let _ = writeln!(out, "### 4. Latency\n{}", latency_table(r));
    let _ = writeln!(
        out,
        "### 5. The seed's headline: retained memory\n{}",
        headline_table(r)
    );
    let _ = writeln!(out, "### 6. Snapshot cost\n{}", snapshot_table(r));
    let _ = writeln!(
        out,
        "### What one idle websocket holds in our servers\n{}",
        probe_table(r)
    );
    if !r.errors.is_empty() {
        let _ = writeln!(out, "\n### Errors\n");
        for e in &r.errors {
            let _ = writeln!(out, "- {}", e.replace('\n', " "));
        }
    }
    out
}

/// What is missing from a run: peers that did not start, figures not produced.
pub fn missing(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    let p = &r.meta.plan;
    for s in &r.stacks {
        let name = &s.stack.name;
        if !s.started {
            out.push(format!(
                "{name}: did not start: {}",
                s.error.clone().unwrap_or_default()
            ));
            continue;
        }
        if let Some(e) = &s.error {
            out.push(format!("{name}: {e}"));
        }
        if s.memory.len() != p.levels.len() + 1 {
            out.push(format!(
                "{name}: {} of {} memory samples",
                s.memory.len(),
                p.levels.len() + 1
            ));
        }
        for m in &s.memory {
            if (s.stack.proxy.exists() && m.proxy_rss == 0) || m.wss_rss == 0 {
                out.push(format!("{name}: no RSS at {} websockets", m.connections));
            }
            if m.kernel_slab == 0 || m.sockets_used == 0 {
                out.push(format!(
                    "{name}: no kernel figures (slab, sockets used) at {} websockets",
                    m.connections
                ));
            }
            if s.stack.proxy.is_ours() && m.proxy_alloc.is_none()
                || s.stack.wss.is_ours() && m.wss_alloc.is_none()
            {
                out.push(format!(
                    "{name}: no allocator figures at {} websockets",
                    m.connections
                ));
            }
        }
        if s.with_traffic {
            match &s.traffic {
                None => out.push(format!("{name}: no figures after traffic")),
                Some(t) => {
                    let a = &t.after;
                    let top = p.levels.iter().max().copied().unwrap_or(0);
                    if t.connections < top * 99 / 100 || a.connections < t.connections {
                        out.push(format!(
                            "{name}: traffic from {} websockets ({} open after it), not {top}",
                            t.connections, a.connections
                        ));
                    }
                    if (s.stack.proxy.exists() && a.proxy_rss == 0) || a.wss_rss == 0 {
                        out.push(format!("{name}: no RSS after traffic"));
                    }
                    if s.stack.proxy.is_ours()
                        && (a.proxy_alloc.is_none() || a.proxy_pinned.is_none())
                        || s.stack.wss.is_ours()
                            && (a.wss_alloc.is_none() || a.wss_pinned.is_none())
                    {
                        out.push(format!(
                            "{name}: no allocator or pinned figures after traffic"
                        ));
                    }
                }
            }
        }
        if s.with_traffic && p.burst_connections > 0 {
            match &s.burst {
                None => out.push(format!("{name}: no figures of the burst step")),
                Some(b) => {
                    let end = b.after.last().map_or(0, |a| a.at_ms);
                    if b.connections != p.burst_connections || end < p.burst_window_ms {
                        out.push(format!(
                            "{name}: burst of {} websockets watched {end} ms, not {} for {} ms",
                            b.connections, p.burst_connections, p.burst_window_ms
                        ));
                    }
                    let samples = [&b.base, &b.idle]
                        .into_iter()
                        .chain(b.after.iter().map(|a| &a.memory));
                    if samples
                        .into_iter()
                        .any(|m| m.wss_rss == 0 || m.proxy_rss == 0)
                    {
                        out.push(format!("{name}: no RSS in the burst step"));
                    }
                }
            }
        }
        if s.full_load {
            for &n in &p.throughput_connections {
                if !s
                    .throughput
                    .iter()
                    .any(|t| t.connections == n && t.messages > 0)
                {
                    out.push(format!("{name}: no throughput over {n} websockets"));
                }
            }
            if s.latency.as_ref().is_none_or(|l| l.samples == 0) {
                out.push(format!("{name}: no latency figures"));
            }
        }
        let ours_servers = [
            ("proxy", s.stack.proxy.is_ours()),
            ("wss", s.stack.wss.is_ours()),
        ];
        for (server, ours) in ours_servers {
            if ours
                && !r
                    .snapshot_cost
                    .iter()
                    .any(|c| &c.stack == name && c.server == server && !c.took_us.is_empty())
            {
                out.push(format!("{name}: no snapshot cost of the {server}"));
            }
            if ours
                && !r
                    .snapshot_cost
                    .iter()
                    .any(|c| &c.stack == name && c.server == server && !c.scrape_get_us.is_empty())
            {
                out.push(format!(
                    "{name}: no scrape cost (GET /metrics) of the {server}"
                ));
            }
        }
    }
    // A run of every stack has every stack: the peers' too.
    if r.meta.only.is_empty() {
        for planned in crate::scenario::stacks() {
            let name = &planned.stack.name;
            if !r.stacks.iter().any(|s| &s.stack.name == name) {
                out.push(format!("{name}: not in the run"));
            }
        }
    }
    for stack in ["ours", "ours-warp"] {
        for who in ["retain", "copy", "drop"] {
            if r.headline
                .iter()
                .filter(|h| h.stack == stack && h.head == who)
                .count()
                != 2
            {
                out.push(format!(
                    "headline: no figures for our servers ({stack}) in {who} mode"
                ));
            }
        }
    }
    for who in ["retain", "drop"] {
        if r.headline
            .iter()
            .filter(|h| h.stack == "node" && h.head == who)
            .count()
            != 2
        {
            out.push(format!(
                "headline: no figures for the Node peer in {who} mode"
            ));
        }
    }
    for server in ["proxy", "wss"] {
        if !r
            .probe
            .iter()
            .any(|p| p.server == server && !p.classes.is_empty())
        {
            out.push(format!("allocation probe: no figures for our {server}"));
        }
    }
    // Errors of a stack are listed with it above.
    out.extend(
        r.errors
            .iter()
            .filter(|e| {
                !r.stacks
                    .iter()
                    .any(|s| e.starts_with(&format!("{}: ", s.stack.name)))
            })
            .cloned(),
    );
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::Sockstat;
    use crate::results::{AllocFigures, Burst, BurstSample, Pinned, Plan, Traffic};
    use crate::stacks::{ProxyKind, Stack, WssKind};

    fn sample(connections: u64, proxy_mb: u64, wss_mb: u64, pinned: Option<u64>) -> MemorySample {
        MemorySample {
            connections,
            proxy_rss: proxy_mb * 1_000_000,
            wss_rss: wss_mb * 1_000_000,
            proxy_alloc: Some(AllocFigures {
                resident: proxy_mb * 1_000_000,
                allocated: proxy_mb * 900_000,
            }),
            wss_alloc: Some(AllocFigures {
                resident: wss_mb * 1_000_000,
                allocated: wss_mb * 900_000,
            }),
            proxy_pinned: Some(Pinned {
                pinned_bytes: 0,
                allocations: 0,
                kept_parts: 0,
            }),
            wss_pinned: pinned.map(|b| Pinned {
                pinned_bytes: b,
                allocations: connections,
                kept_parts: connections,
            }),
            sockstat: Sockstat {
                tcp_inuse: 0,
                tcp_tw: 0,
                tcp_mem_pages: 0,
            },
            kernel_slab: 1 << 30,
            sockets_used: 100 + 4 * connections,
        }
    }

    /// A run of one warp stack in `retain`: 10 MB before, 1,000 idle websockets, then
    /// the traffic.
    fn warp_run(traffic: bool) -> Results {
        let stack = Stack::new(ProxyKind::OursWarp, WssKind::OursWarp, "retain", true);
        let plan = Plan {
            levels: vec![1000],
            traffic_first_message: 100,
            traffic_bytes: 400_000,
            traffic_message: 16384,
            traffic_concurrency: 64,
            settle_ms: 4000,
            traffic_settle_step_ms: 500,
            traffic_settle_max_ms: 20_000,
            burst_connections: 600,
            burst_bytes: 400_000,
            burst_every_ms: 1000,
            burst_window_ms: 10_000,
            ..Plan::default()
        };
        let mut r = Results::default();
        r.meta.plan = plan;
        let after = |at_ms, proxy_mb, wss_mb| BurstSample {
            at_ms,
            memory: sample(600, proxy_mb, wss_mb, Some(78_643_200)),
        };
        r.stacks.push(StackResult {
            stack,
            full_load: false,
            started: true,
            error: None,
            memory: vec![sample(0, 10, 6, Some(0)), sample(1000, 20, 140, Some(0))],
            throughput: Vec::new(),
            latency: None,
            with_traffic: true,
            traffic: traffic.then(|| Traffic {
                connections: 1000,
                first_message: 100,
                bytes: 400_000,
                message: 16384,
                secs: 3.5,
                settle_secs: 4.5,
                settled: true,
                after: sample(1000, 22, 280, Some(131_072_000)),
            }),
            // 600 websockets: the wss from 10 MB to 100 idle, 300 after the burst,
            // 190 ten seconds later.
            burst: traffic.then(|| Burst {
                connections: 600,
                first_message: 100,
                bytes: 400_000,
                message: 16384,
                secs: 2.5,
                base: sample(0, 4, 10, Some(0)),
                idle: sample(600, 16, 100, Some(78_643_200)),
                after: vec![
                    after(3, 40, 300),
                    after(1001, 30, 250),
                    after(10_002, 16, 190),
                ],
            }),
        });
        r
    }

    /// The row of `table` whose leading cells are `cells` ("ours-warp (retain) | wss").
    fn row<'a>(table: &'a str, cells: &str) -> &'a str {
        let start = format!("| {cells}");
        table
            .lines()
            .find(|l| l.starts_with(&start))
            .unwrap_or_else(|| panic!("no row {start} in {table}"))
    }

    #[test]
    fn the_cpu_budget_of_a_throughput_target() {
        // 4,000 MB in 10 s: the client 8 CPU s, the wss 2, the proxy 8 (500 MB per s).
        let t = Throughput {
            connections: 1,
            messages: 0,
            bytes: 4_000_000_000,
            secs: 10.0,
            proxy_cpu_secs: 8.0,
            wss_cpu_secs: 2.0,
            client_cpu_secs: 8.0,
        };
        // At 600 MB/s the others need 10/4000*600 = 1.5 cores, 0.5 left: 1,200 MB
        // per proxy CPU second needed, 500 done.
        let (fits, why) = cpu_budget(&t, 600.0, 2.0).unwrap();
        assert!(!fits);
        assert_eq!(why, "at 600 MB/s the client and the wss need 1.50 of 2 cores; in the 0.50 left the proxy would pass 1200 MB per CPU second (it passes 500)");
        // At 400 MB/s: 1.0 core left, 400 needed: it fits.
        assert!(cpu_budget(&t, 400.0, 2.0).unwrap().0);
        // At 1,000 MB/s the others alone need 2.5 cores.
        let (fits, why) = cpu_budget(&t, 1000.0, 2.0).unwrap();
        assert!(!fits && why.contains("alone need 2.50 of 2 cores"), "{why}");
        // Results from before the client's CPU was read give no budget.
        assert!(cpu_budget(
            &Throughput {
                client_cpu_secs: 0.0,
                ..t
            },
            600.0,
            2.0
        )
        .is_none());
    }

    #[test]
    fn burst_table_shows_each_server_going_back_to_idle() {
        let r = warp_run(true);
        let table = burst_table(&r);
        let wss = row(&table, "ours-warp (retain) | wss");
        // (100-10)/600 = 150.0 idle; 290/600 = 483.3 right after; 240/600 = 400.0 at
        // 1 s; 180/600 = 300.0 at the end: 2.00x idle, back. Allocated (0.9 MB per
        // MB): 135.0, 435.0, 270.0. Pinned 131.1 KB per websocket.
        assert_eq!(
            wss,
            "| ours-warp (retain) | wss (ours-warp) | 150.0 | 483.3 | 400.0 | 300.0 (10.0 s) | 2.00 | yes | 135.0 → 435.0 → 270.0 | 131.1 → 131.1 | 2.5 |"
        );
        let proxy = row(&table, "ours-warp (retain) | proxy");
        // (16-4)/600 = 20.0 idle, (16-4)/600 at the end: 1.00.
        assert!(
            proxy.contains("| 20.0 | 60.0 | 43.3 | 20.0 (10.0 s) | 1.00 | yes |"),
            "{proxy}"
        );
        assert!(table.contains("opens 600 websockets"));
        assert!(table.contains("within 2x of its idle cost 10 s after the burst"));
        // One server a little above 2x is not back.
        let mut r = r;
        r.stacks[0].burst.as_mut().unwrap().after[2].memory.wss_rss = 191_000_000;
        let table = burst_table(&r);
        assert!(
            table.contains("| 301.7 (10.0 s) | 2.01 | **no** |"),
            "{table}"
        );
        assert!(render(&r).contains("### 2b. Back to idle after a burst"));
    }

    #[test]
    fn traffic_table_shows_idle_after_and_what_the_traffic_added_per_websocket() {
        let table = traffic_table(&warp_run(true));
        let wss = row(&table, "ours-warp (retain) | wss");
        // idle 140 MB, after 280; (140-6)/1000 = 134.0, (280-6)/1000 = 274.0, +140.0;
        // pinned 0 -> 131.1 KB per websocket, 1,000 kept parts.
        assert_eq!(
            wss,
            "| ours-warp (retain) | wss (ours-warp) | 1000 | 140.0 | 280.0 | 134.0 | 274.0 | 140.0 | 274.0 | 0.0 → 131.1 (1000) | 3.5 | yes, 4.5 s |"
        );
        let proxy = row(&table, "ours-warp (retain) | proxy");
        assert!(
            proxy.contains("| 20.0 | 22.0 | 10.0 | 12.0 | 2.0 |"),
            "{proxy}"
        );
        assert!(table.contains("one 100-byte binary message"));
        assert!(table.contains("400000 bytes in 16384-byte messages"));
        // The traffic section is in the rendered report, and the old numbering moved.
        let all = render(&warp_run(true));
        assert!(all.contains("### 2. Memory after a first message and own traffic"));
        assert!(all.contains("### 6. Snapshot cost"));
    }

    #[test]
    fn a_stack_without_its_traffic_figures_is_missing_them() {
        let problems = missing(&warp_run(false));
        assert!(
            problems
                .iter()
                .any(|p| p == "ours-warp (retain): no figures after traffic"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p == "ours-warp (retain): no figures of the burst step"),
            "{problems:?}"
        );
        let problems = missing(&warp_run(true));
        assert!(
            !problems.iter().any(|p| p.contains("traffic")),
            "{problems:?}"
        );
        // The headline is checked for both our stacks.
        assert!(problems
            .iter()
            .any(|p| p.contains("headline: no figures for our servers (ours-warp) in copy mode")));
        let mut short = warp_run(true);
        short.stacks[0].traffic.as_mut().unwrap().connections = 500;
        assert!(missing(&short)
            .iter()
            .any(|p| p.contains("traffic from 500 websockets")));
        let mut no_pinned = warp_run(true);
        no_pinned.stacks[0]
            .traffic
            .as_mut()
            .unwrap()
            .after
            .wss_pinned = None;
        assert!(missing(&no_pinned)
            .iter()
            .any(|p| p.contains("no allocator or pinned figures after traffic")));
    }

    /// A stack with the proxy's and wss's RSS and the kernel's readings given per
    /// sample: (connections, proxy MB, wss MB, sockets used, TCP pages, slab MB).
    fn kernel_stack(
        proxy: ProxyKind,
        wss: WssKind,
        samples: &[(u64, u64, u64, u64, u64, u64)],
    ) -> StackResult {
        let memory = samples
            .iter()
            .map(|&(n, p, w, used, pages, slab)| {
                let mut m = sample(n, p, w, None);
                m.sockets_used = used;
                m.sockstat.tcp_mem_pages = pages;
                m.kernel_slab = slab * 1_000_000;
                m.proxy_alloc = None;
                m.wss_alloc = None;
                m
            })
            .collect();
        StackResult {
            stack: Stack::new(proxy, wss, "drop", true),
            full_load: false,
            started: true,
            error: None,
            memory,
            throughput: Vec::new(),
            latency: None,
            with_traffic: false,
            traffic: None,
            burst: None,
        }
    }

    #[test]
    fn the_kernel_is_shown_beside_rss_with_the_servers_share() {
        let mut r = Results::default();
        r.meta.plan.levels = vec![1000, 2000];
        // Bun alone: 2 sockets per websocket, half of them its own.
        r.stacks.push(kernel_stack(
            ProxyKind::None,
            WssKind::Bun,
            &[
                (0, 0, 20, 100, 0, 500),
                (1000, 0, 30, 2100, 0, 506),
                (2000, 0, 40, 4100, 0, 512),
            ],
        ));
        // HAProxy in front of our wss: 4 sockets, 3 of them the servers'.
        r.stacks.push(kernel_stack(
            ProxyKind::Haproxy,
            WssKind::Ours,
            &[
                (0, 10, 5, 100, 0, 500),
                (1000, 20, 8, 4100, 0, 512),
                (2000, 30, 11, 8100, 0, 524),
            ],
        ));
        let table = kernel_table(&r);
        assert!(table.contains("machine-wide readings"), "{table}");
        assert!(table.contains("3 of 4 through a proxy"), "{table}");
        let row = |name: &str| row(&table, &format!("{name} |"));
        // Bun: RSS (30-20)/1000 = 10.0 KB, slab 6 MB / 1000 = 6.0 KB, half is 3.0;
        // at 2000: 10.0 and 3.0; RSS + kernel 13.0; 2 sockets per websocket.
        assert_eq!(
            row("plain ws -> bun"),
            "| plain ws -> bun | 10.0 | 3.0 | 10.0 | 3.0 | 13.0 | 2.00 | 0.0 | 6.0 |"
        );
        // HAProxy: RSS (28-15)/1000 = 13.0, slab 12.0 KB, 3/4 is 9.0.
        assert_eq!(
            row("haproxy -> ours"),
            "| haproxy -> ours | 13.0 | 9.0 | 13.0 | 9.0 | 22.0 | 4.00 | 0.0 | 12.0 |"
        );
        // The proxy's table has no row for the stack without a proxy; the wss's has.
        let memory = memory_tables(&r);
        let (proxies, wss) = memory.split_at(memory.find("**wss**").unwrap());
        assert!(!proxies.contains("| plain ws -> bun |"), "{proxies}");
        assert!(
            proxies.contains("| haproxy -> ours | haproxy |"),
            "{proxies}"
        );
        assert!(wss.contains("| plain ws -> bun | bun |"), "{wss}");
        // Neither lacks RSS (Bun has no proxy to measure) nor kernel figures.
        let problems = missing(&r);
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("no RSS") || p.contains("kernel")),
            "{problems:?}"
        );
        r.stacks[1].memory[1].sockets_used = 0;
        assert!(missing(&r)
            .iter()
            .any(|p| p
                == "haproxy -> ours: no kernel figures (slab, sockets used) at 1000 websockets"));
    }

    #[test]
    fn a_whole_run_must_have_every_stack_and_a_filtered_one_only_its_own() {
        let mut r = Results::default();
        r.meta.plan.levels = vec![1000];
        r.stacks.push(kernel_stack(
            ProxyKind::None,
            WssKind::Bun,
            &[(0, 0, 5, 100, 0, 500), (1000, 0, 8, 2100, 0, 506)],
        ));
        let problems = missing(&r);
        for name in ["haproxy -> ours", "ours -> bun", "plain ws -> ours", "ours"] {
            assert!(
                problems.contains(&format!("{name}: not in the run")),
                "{name}: {problems:?}"
            );
        }
        assert!(
            !problems.iter().any(|p| p.starts_with("plain ws -> bun:")),
            "{problems:?}"
        );
        r.meta.only = vec!["plain ws -> bun".into()];
        assert!(!missing(&r).iter().any(|p| p.contains("not in the run")));
        // A full-load stack without its throughput and latency misses them.
        r.stacks[0].full_load = true;
        r.meta.plan.throughput_connections = vec![1];
        let problems = missing(&r);
        assert!(problems.contains(&"plain ws -> bun: no throughput over 1 websockets".into()));
        assert!(problems.contains(&"plain ws -> bun: no latency figures".into()));
    }

    #[test]
    fn results_of_before_the_warp_stack_still_read_and_render() {
        // A stack and a sample as results.json had them before the traffic step.
        let json = r#"{"meta": {"date": "2026-11-25 08:15", "quick": false, "command": "scripts/bench",
            "machine": {}, "versions": {}, "seconds": 1.0,
            "plan": {"levels": [1000], "rate": 500.0, "data_size": 1, "data_delay_ms": 1,
              "settle_ms": 1, "throughput_connections": [1], "throughput_message": 65536,
              "throughput_window": 4, "throughput_warmup_ms": 1, "throughput_ms": 1,
              "latency_connections": 1, "latency_message": 32, "latency_every_ms": 1,
              "latency_ms": 1, "snapshot_repeats": 1, "headline_pinning": 1,
              "headline_rate": 1.0, "headline_data_delay_ms": 1, "probe_connections": 1}},
          "stacks": [{"stack": {"name": "ours", "proxy": "ours", "wss": "ours", "head": "drop", "echo": true},
            "full_load": true, "started": true, "error": null, "throughput": [], "latency": null,
            "memory": [{"connections": 0, "proxy_rss": 1, "wss_rss": 1, "proxy_alloc": null,
              "wss_alloc": null, "sockstat": {"tcp_inuse": 0, "tcp_tw": 0, "tcp_mem_pages": 0},
              "kernel_slab": 0}]}],
          "headline": [], "snapshot_cost": [], "probe": [], "errors": []}"#;
        let r: Results = serde_json::from_str(json).unwrap();
        assert!(!r.stacks[0].with_traffic && r.stacks[0].traffic.is_none());
        assert!(r.stacks[0].memory[0].wss_pinned.is_none());
        // Results from before the kernel's socket count and the --only record.
        assert_eq!(r.stacks[0].memory[0].sockets_used, 0);
        assert!(r.meta.only.is_empty());
        let text = render(&r);
        assert!(text.contains("### 1. Memory per idle websocket"));
        assert!(!missing(&r).iter().any(|p| p.contains("after traffic")));
    }
}
