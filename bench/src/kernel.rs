//! The kernel's memory beside the servers' RSS, machine-wide: the sockets in use
//! (`sockets: used` of `/proc/net/sockstat`), the pages of TCP buffers (its `TCP:
//! ... mem` field) and the slab caches (`Slab:` of `/proc/meminfo`, where socket
//! structures, their inodes and the epoll entries live). None of it is in any
//! process's RSS.
//!
//! These are readings of the whole machine: the client's own sockets (the bench's,
//! on the same machine) are in them, and so is anything else running. The servers'
//! part is estimated by socket count: one websocket through a proxy is four TCP
//! sockets (the client's, the proxy's two, the wss's), three of them the servers';
//! without a proxy two, one of them the server's. Idle sockets cost the kernel the
//! same structures whichever end they are, so the servers' share of the difference
//! is taken as 3/4 (or 1/2) of it.

use anyhow::{anyhow, Context, Result};

use crate::procfs::{self, Sockstat};
use crate::results::MemorySample;
use crate::stacks::ProxyKind;

/// One reading of the machine's kernel memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelReading {
    /// The TCP line of `/proc/net/sockstat`.
    pub sockstat: Sockstat,
    /// Sockets of every kind in use (`sockets: used`).
    pub sockets_used: u64,
    /// `Slab:` of `/proc/meminfo`, bytes.
    pub slab_bytes: u64,
}

/// Reads `/proc/net/sockstat` and `/proc/meminfo` now.
pub fn read() -> Result<KernelReading> {
    let sockstat_text =
        std::fs::read_to_string("/proc/net/sockstat").context("cannot read /proc/net/sockstat")?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
    parse(&sockstat_text, &meminfo)
}

/// A reading from the texts of `/proc/net/sockstat` and `/proc/meminfo`.
pub fn parse(sockstat_text: &str, meminfo: &str) -> Result<KernelReading> {
    Ok(KernelReading {
        sockstat: procfs::parse_sockstat(sockstat_text)
            .ok_or_else(|| anyhow!("/proc/net/sockstat: no TCP line with inuse, tw and mem"))?,
        sockets_used: parse_sockets_used(sockstat_text)
            .ok_or_else(|| anyhow!("/proc/net/sockstat: no `sockets: used N` line"))?,
        slab_bytes: parse_meminfo_slab(meminfo)
            .ok_or_else(|| anyhow!("/proc/meminfo: no `Slab: N kB` line"))?,
    })
}

/// `N` of the `sockets: used N` line of `/proc/net/sockstat`.
pub fn parse_sockets_used(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("sockets:"))?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "used")?;
    words.get(i + 1)?.parse().ok()
}

/// `Slab:` of `/proc/meminfo` (in kB there, 1,024 bytes), bytes.
pub fn parse_meminfo_slab(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("Slab:"))?;
    let mut words = rest.split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(kb * 1024),
        Some(_) => None,
    }
}

/// The kernel's memory per websocket between two samples of a stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerWebsocket {
    /// Machine-wide: TCP buffers and slab, KB (1,000 bytes) per websocket.
    pub tcp_kb: f64,
    pub slab_kb: f64,
    /// Machine-wide: sockets in use added per websocket (about 4 through a proxy,
    /// 2 without; `None` for samples from before the bench read it).
    pub sockets: Option<f64>,
    /// The servers' share of the sockets of one websocket (3/4 or 1/2).
    pub server_share: f64,
}

impl PerWebsocket {
    /// TCP buffers and slab together, machine-wide, KB per websocket.
    pub fn machine_kb(&self) -> f64 {
        self.tcp_kb + self.slab_kb
    }

    /// The servers' share of [`PerWebsocket::machine_kb`].
    pub fn servers_kb(&self) -> f64 {
        self.machine_kb() * self.server_share
    }
}

/// The kernel's memory per websocket from `before` (no client) to `at` (`at`'s
/// websockets open), for a stack with `proxy` in front; `None` without websockets.
pub fn per_websocket(
    before: &MemorySample,
    at: &MemorySample,
    proxy: ProxyKind,
    page_size: u64,
) -> Option<PerWebsocket> {
    if at.connections == 0 {
        return None;
    }
    let n = at.connections as f64;
    let diff = |a: u64, b: u64| b as f64 - a as f64;
    let sockets = (before.sockets_used > 0 && at.sockets_used > 0)
        .then(|| diff(before.sockets_used, at.sockets_used) / n);
    let all = proxy.sockets_per_websocket() as f64;
    Some(PerWebsocket {
        tcp_kb: diff(before.sockstat.tcp_mem_pages, at.sockstat.tcp_mem_pages) * page_size as f64
            / n
            / 1e3,
        slab_kb: diff(before.kernel_slab, at.kernel_slab) / n / 1e3,
        sockets,
        server_share: (all - 1.0) / all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKSTAT: &str = "sockets: used 8213\n\
        TCP: inuse 8012 orphan 0 tw 3 alloc 8015 mem 1203\n\
        UDP: inuse 2 mem 4\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";
    const MEMINFO: &str = "MemTotal:       24589700 kB\nMemFree:        19876544 kB\n\
        Buffers:          102400 kB\nSlab:             345678 kB\nSReclaimable:     200000 kB\n\
        SUnreclaim:       145678 kB\n";

    #[test]
    fn sockstat_and_meminfo_are_parsed() {
        let r = parse(SOCKSTAT, MEMINFO).unwrap();
        assert_eq!(r.sockets_used, 8213);
        assert_eq!(
            (
                r.sockstat.tcp_inuse,
                r.sockstat.tcp_tw,
                r.sockstat.tcp_mem_pages
            ),
            (8012, 3, 1203)
        );
        assert_eq!(r.slab_bytes, 345_678 * 1024);
        assert_eq!(parse_sockets_used("sockets: used 0\n"), Some(0));
        assert_eq!(parse_sockets_used("TCP: inuse 1\n"), None);
        assert_eq!(parse_meminfo_slab("Slab: 12 MB\n"), None);
        assert_eq!(parse_meminfo_slab("SReclaimable: 5 kB\n"), None);
        let err = parse("TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 1\n", MEMINFO).unwrap_err();
        assert!(err.to_string().contains("sockets: used"), "{err}");
        assert!(parse(SOCKSTAT, "MemTotal: 1 kB\n").is_err());
    }

    #[test]
    fn this_machine_is_read() {
        let r = read().unwrap();
        assert!(r.sockets_used > 0 && r.slab_bytes > 0);
    }

    fn sample(connections: u64, sockets_used: u64, mem_pages: u64, slab: u64) -> MemorySample {
        MemorySample {
            connections,
            proxy_rss: 1,
            wss_rss: 1,
            proxy_alloc: None,
            wss_alloc: None,
            proxy_pinned: None,
            wss_pinned: None,
            sockstat: Sockstat {
                tcp_inuse: 0,
                tcp_tw: 0,
                tcp_mem_pages: mem_pages,
            },
            kernel_slab: slab,
            sockets_used,
        }
    }

    #[test]
    fn per_websocket_is_the_difference_over_the_websockets_with_the_servers_share() {
        let before = sample(0, 200, 10, 100_000_000);
        // 1,000 websockets through a proxy: 4,000 sockets, 250 pages, 12 MB of slab.
        let at = sample(1000, 4200, 260, 112_000_000);
        let k = per_websocket(&before, &at, ProxyKind::Haproxy, 4096).unwrap();
        assert_eq!(k.sockets, Some(4.0));
        assert!((k.tcp_kb - 1.024).abs() < 1e-9, "{k:?}");
        assert!((k.slab_kb - 12.0).abs() < 1e-9, "{k:?}");
        assert!((k.servers_kb() - 13.024 * 0.75).abs() < 1e-9, "{k:?}");
        // Without a proxy: half is the server's.
        let k = per_websocket(&before, &at, ProxyKind::None, 4096).unwrap();
        assert_eq!(k.server_share, 0.5);
        // Slab can shrink meanwhile (the machine's other work): negative, as measured.
        let k = per_websocket(
            &before,
            &sample(1000, 4200, 10, 99_000_000),
            ProxyKind::Ours,
            4096,
        )
        .unwrap();
        assert!(k.slab_kb < 0.0);
        assert!(per_websocket(&before, &before, ProxyKind::Ours, 4096).is_none());
        // A sample from before `sockets_used` was read: no socket count.
        let old = sample(0, 0, 10, 100_000_000);
        assert_eq!(
            per_websocket(&old, &at, ProxyKind::Ours, 4096)
                .unwrap()
                .sockets,
            None
        );
    }
}
