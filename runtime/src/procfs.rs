//! What the kernel says about a process and about the machine's sockets, from `/proc`.
//!
//! RSS is `VmRSS` of `/proc/PID/status`; PSS (resident pages shared with other
//! processes counted by share) is `Pss` of `/proc/PID/smaps_rollup`; CPU time is
//! `utime + stime` of `/proc/PID/stat`; a peer made of several processes (nginx's
//! master and workers) is measured as the sum over the process and its children.
//! Socket memory is the kernel's own count in `/proc/net/sockstat` (pages of TCP
//! buffers) and the slab caches in `/proc/meminfo`, machine-wide: RSS does not show
//! either. Used by the bench and by `client audit`.

use std::fs;
use std::io;

/// Resident set size of one process, bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_kb(&status, "VmRSS:")
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no VmRSS")))
}

/// Proportional set size of one process, bytes (`Pss:` of `/proc/PID/smaps_rollup`).
///
/// Reading another process's smaps needs the right to trace it (the same user, or
/// root): without it the error says permission denied.
pub fn pss_bytes(pid: u32) -> io::Result<u64> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    status_kb(&rollup, "Pss:")
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/smaps_rollup has no Pss")))
}

/// The command name of one process (`Name:` of `/proc/PID/status`).
pub fn name(pid: u32) -> io::Result<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(|n| n.trim().to_string())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no Name")))
}

fn status_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of one process (user + system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat)
        .map(|s| s.utime + s.stime)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: unexpected format")))
}

/// Clock ticks per second of `cpu_ticks`.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The fields of `/proc/PID/stat` the benchmark reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
}

/// Parses `/proc/PID/stat`; the command name (field 2) may hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; ppid is field 4, utime 14, stime 15.
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// The process and its direct children (nginx's workers), pid first.
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            if parse_stat(&stat).is_some_and(|s| s.ppid == pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// Sum of RSS over `pids`, bytes; a process that has gone counts 0.
pub fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|p| rss_bytes(*p).unwrap_or(0)).sum()
}

/// Sum of CPU ticks over `pids`.
pub fn cpu_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|p| cpu_ticks(*p).unwrap_or(0)).sum()
}

/// The machine's TCP sockets, from `/proc/net/sockstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sockstat {
    /// Sockets in use (open, not in TIME_WAIT).
    pub tcp_inuse: u64,
    /// Sockets in TIME_WAIT.
    pub tcp_tw: u64,
    /// Pages of socket buffers (send and receive queues) the kernel accounts to TCP.
    pub tcp_mem_pages: u64,
}

impl Sockstat {
    /// `tcp_mem_pages` in bytes.
    pub fn tcp_mem_bytes(&self) -> u64 {
        self.tcp_mem_pages * page_size()
    }
}

/// Reads `/proc/net/sockstat`.
pub fn sockstat() -> io::Result<Sockstat> {
    parse_sockstat(&fs::read_to_string("/proc/net/sockstat")?)
        .ok_or_else(|| io::Error::other("/proc/net/sockstat: no TCP line"))
}

/// The TCP line of a `/proc/net/sockstat` text.
pub fn parse_sockstat(text: &str) -> Option<Sockstat> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let get = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    Some(Sockstat {
        tcp_inuse: get("inuse")?,
        tcp_tw: get("tw")?,
        tcp_mem_pages: get("mem")?,
    })
}

/// Kernel slab memory (`Slab:` of `/proc/meminfo`), bytes: socket structures live there.
pub fn kernel_slab_bytes() -> io::Result<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo")?;
    status_kb(&meminfo, "Slab:")
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("/proc/meminfo has no Slab line"))
}

/// Page size, bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let text = "42 (nginx: worker (x)) S 7 42 42 0 -1 4194560 100 0 0 0 25 13 0 0 20 0 1 0";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 7,
                utime: 25,
                stime: 13
            }
        );
    }

    #[test]
    fn sockstat_tcp_line() {
        let text =
            "sockets: used 17\nTCP: inuse 1 orphan 0 tw 82 alloc 1 mem 173\nUDP: inuse 0 mem 0\n";
        let s = parse_sockstat(text).unwrap();
        assert_eq!(
            s,
            Sockstat {
                tcp_inuse: 1,
                tcp_tw: 82,
                tcp_mem_pages: 173
            }
        );
    }

    #[test]
    fn this_process_is_measured() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        let pss = pss_bytes(me).unwrap();
        assert!(pss > 0 && pss <= rss_bytes(me).unwrap() * 2, "pss {pss}");
        assert!(!name(me).unwrap().is_empty());
        cpu_ticks(me).unwrap();
        assert_eq!(with_children(me)[0], me);
    }
}
