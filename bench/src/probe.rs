//! jemalloc's live allocations by size class, read inside one of our servers (the
//! `alloc-probe` binary runs our proxy or wss in its own process and answers `dump`
//! on stdin with a [`Histogram`] line on stdout).
//!
//! The difference of two histograms, taken with 0 and with N idle websockets and
//! divided by N, says which allocations each connection holds: how many of which
//! size. Run with `_RJEM_MALLOC_CONF=tcache:false`, so thread caches hold no freed
//! regions that would count as live.

use serde::{Deserialize, Serialize};
use tikv_jemalloc_ctl::raw;

use crate::results::ProbeClass;

/// Live regions (small classes) and extents (large classes) by size, at one instant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Histogram {
    /// (size class in bytes, live allocations of that class).
    pub classes: Vec<(u64, u64)>,
    pub allocated: u64,
    pub resident: u64,
    pub rss: u64,
}

fn read_usize(name: &str) -> usize {
    let name = format!("{name}\0");
    // SAFETY: every name read is a size_t statistic of jemalloc 5.
    unsafe { raw::read::<usize>(name.as_bytes()) }.unwrap_or(0)
}

fn read_u32(name: &str) -> u32 {
    let name = format!("{name}\0");
    // SAFETY: every name read is an unsigned statistic of jemalloc 5.
    unsafe { raw::read::<u32>(name.as_bytes()) }.unwrap_or(0)
}

/// Whether jemalloc's thread caches are on (`opt.tcache`).
pub fn tcache_enabled() -> bool {
    // SAFETY: opt.tcache is a bool.
    unsafe { raw::read::<bool>(b"opt.tcache\0") }.unwrap_or(true)
}

/// The histogram of this process's live allocations now.
pub fn histogram() -> Histogram {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    // 4096 is MALLCTL_ARENAS_ALL: the sum over every arena.
    let mut classes = Vec::new();
    for i in 0..read_u32("arenas.nbins") {
        let size = read_usize(&format!("arenas.bin.{i}.size")) as u64;
        let live = read_usize(&format!("stats.arenas.4096.bins.{i}.curregs")) as u64;
        classes.push((size, live));
    }
    for i in 0..read_u32("arenas.nlextents") {
        let size = read_usize(&format!("arenas.lextent.{i}.size")) as u64;
        let live = read_usize(&format!("stats.arenas.4096.lextents.{i}.curlextents")) as u64;
        classes.push((size, live));
    }
    Histogram {
        classes,
        allocated: tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64,
        resident: tikv_jemalloc_ctl::stats::resident::read().unwrap_or(0) as u64,
        rss: crate::procfs::rss_bytes(std::process::id()).unwrap_or(0),
    }
}

/// Per connection: size classes whose live count grew from `before` to `after`
/// (by at least a tenth of an allocation each), largest bytes first.
pub fn per_connection(before: &Histogram, after: &Histogram, conns: u64) -> Vec<ProbeClass> {
    let n = conns.max(1) as f64;
    let mut out: Vec<ProbeClass> = after
        .classes
        .iter()
        .map(|(size, live)| {
            let was = before
                .classes
                .iter()
                .find(|(s, _)| s == size)
                .map(|(_, l)| *l)
                .unwrap_or(0);
            let per_conn = (*live as f64 - was as f64) / n;
            ProbeClass {
                size: *size,
                per_conn,
                bytes_per_conn: per_conn * *size as f64,
            }
        })
        .filter(|c| c.per_conn >= 0.1)
        .collect();
    out.sort_by(|a, b| b.bytes_per_conn.total_cmp(&a.bytes_per_conn));
    out
}

/// An `alloc-probe` process: our proxy or wss in it, answering `dump`; killed and
/// reaped when dropped.
pub struct ProbeProcess {
    child: testkit::ChildGuard,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    stdin: std::process::ChildStdin,
}

impl ProbeProcess {
    /// Starts `bin` (the `alloc-probe` binary) in `dir` as `role`, with `settings`
    /// (config.json keys and values; a key that `extra` names is left to `extra`)
    /// and then the `extra` flags, its stderr in `log`, jemalloc's thread caches off;
    /// returns it once ready, with the first line it printed (`size_of` the types a
    /// connection is made of).
    pub fn start(
        bin: &std::path::Path,
        dir: &std::path::Path,
        role: &str,
        settings: &[(String, String)],
        extra: &[String],
        log: &std::path::Path,
    ) -> anyhow::Result<(ProbeProcess, serde_json::Value)> {
        use anyhow::{anyhow, Context};
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let err = std::fs::File::create(log).with_context(|| log.display().to_string())?;
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir)
            .env("RUST_LOG", "warn")
            .env("_RJEM_MALLOC_CONF", "tcache:false")
            .arg("--role")
            .arg(role);
        for (key, value) in settings {
            let flag = format!("--{key}");
            if !extra.contains(&flag) {
                cmd.arg(flag).arg(value);
            }
        }
        cmd.args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        let mut child = testkit::ChildGuard::spawn(testkit::die_with_parent(&mut cmd))
            .with_context(|| format!("cannot start alloc-probe --role {role}"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = lines
            .next()
            .ok_or_else(|| {
                anyhow!(
                    "alloc-probe --role {role} ended before it was ready: {}",
                    crate::stacks::tail(log, 10)
                )
            })?
            .context("alloc-probe")?;
        let ready = serde_json::from_str(&ready).context("alloc-probe's first line")?;
        Ok((
            ProbeProcess {
                child,
                lines,
                stdin,
            },
            ready,
        ))
    }

    /// The live allocations by size class now.
    pub fn dump(&mut self) -> anyhow::Result<Histogram> {
        use anyhow::{anyhow, Context};
        use std::io::Write;
        writeln!(self.stdin, "dump").context("alloc-probe stdin")?;
        let line = self
            .lines
            .next()
            .ok_or_else(|| anyhow!("alloc-probe ended"))?
            .context("alloc-probe")?;
        serde_json::from_str(&line).context("alloc-probe's dump")
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_per_connection() {
        let before = Histogram {
            classes: vec![(64, 10), (4096, 1), (8192, 0)],
            ..Default::default()
        };
        let after = Histogram {
            classes: vec![(64, 210), (4096, 101), (8192, 1)],
            ..Default::default()
        };
        let c = per_connection(&before, &after, 100);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].size, 4096);
        assert!((c[0].per_conn - 1.0).abs() < 1e-9);
        assert!((c[1].bytes_per_conn - 128.0).abs() < 1e-9);
    }

    #[test]
    fn reads_this_process() {
        let h = histogram();
        assert!(h.classes.len() > 30, "{} size classes", h.classes.len());
        assert!(h.allocated > 0);
    }
}
