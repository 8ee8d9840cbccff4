//! What the kernel says about a process and about the machine, from `/proc`: the one
//! place the playground reads it, on the `procfs` crate.
//!
//! RSS is `VmRSS` of `/proc/PID/status`; PSS (resident pages shared with other
//! processes counted by share) is `Pss` of `/proc/PID/smaps_rollup`; CPU time is
//! `utime + stime` of `/proc/PID/stat`; a peer made of several processes (nginx's
//! master and workers) is measured as the sum over the process and its children.
//! Socket memory is the kernel's own count in `/proc/net/sockstat` (pages of TCP
//! buffers, parsed here: the crate does not read that file) and the slab caches in
//! `/proc/meminfo`, machine-wide: RSS does not show either. The metrics read this
//! process's own figures ([`SelfFigures`]); the bench and `client audit` read any
//! process's.

use std::fs;
use std::io;

use procfs::process::Process;
use procfs::Current;

/// A `procfs` error as an I/O error, keeping "not found" (a process that is gone).
fn io_error(e: procfs::ProcError) -> io::Error {
    match e {
        procfs::ProcError::NotFound(_) => io::Error::new(io::ErrorKind::NotFound, e),
        procfs::ProcError::PermissionDenied(_) => {
            io::Error::new(io::ErrorKind::PermissionDenied, e)
        }
        e => io::Error::other(e),
    }
}

fn process(pid: u32) -> io::Result<Process> {
    Process::new(pid as i32).map_err(io_error)
}

/// What `/proc/PID/status` says of a process: its name, whether it has exited (a
/// zombie, or dead), and its resident set size when it still has memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    /// State `Z` (zombie) or `X` (dead).
    pub exited: bool,
    /// `VmRSS`, bytes; `None` for a kernel thread or an exiting process.
    pub rss_bytes: Option<u64>,
}

/// The status of one process.
pub fn status(pid: u32) -> io::Result<Status> {
    let s = process(pid)?.status().map_err(io_error)?;
    Ok(Status {
        exited: s.state.starts_with('Z') || s.state.starts_with('X'),
        name: s.name,
        rss_bytes: s.vmrss.map(|kb| kb * 1024),
    })
}

/// Resident set size of one process, bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status(pid)?
        .rss_bytes
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no VmRSS")))
}

/// Proportional set size of one process, bytes (`Pss:` of `/proc/PID/smaps_rollup`).
///
/// Reading another process's smaps needs the right to trace it (the same user, or
/// root): without it the error says permission denied.
pub fn pss_bytes(pid: u32) -> io::Result<u64> {
    let rollup = process(pid)?.smaps_rollup().map_err(io_error)?;
    rollup
        .memory_map_rollup
        .0
        .iter()
        .find_map(|m| m.extension.map.get("Pss").copied())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/smaps_rollup has no Pss")))
}

/// The command name of one process (`Name:` of `/proc/PID/status`).
pub fn name(pid: u32) -> io::Result<String> {
    Ok(status(pid)?.name)
}

/// CPU time of one process (user + system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = process(pid)?.stat().map_err(io_error)?;
    Ok(stat.utime + stat.stime)
}

/// Clock ticks per second of `cpu_ticks`.
pub fn ticks_per_second() -> u64 {
    procfs::ticks_per_second()
}

/// The process and its direct children (nginx's workers), pid first.
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(all) = procfs::process::all_processes() {
        for p in all.flatten() {
            if p.stat().is_ok_and(|s| s.ppid == pid as i32) {
                pids.push(p.pid as u32);
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
    Ok(procfs::Meminfo::current().map_err(io_error)?.slab)
}

/// Page size, bytes.
pub fn page_size() -> u64 {
    procfs::page_size()
}

/// The kernel's ceiling for the open-file limit (`/proc/sys/fs/nr_open`).
pub fn nr_open() -> Option<u64> {
    fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// This process's own figures that Prometheus's `process_*` series carry; a figure
/// that cannot be read is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfFigures {
    /// User and system CPU time, seconds (`/proc/self/stat` utime + stime).
    pub cpu_seconds: Option<f64>,
    /// When the process started, seconds since the Unix epoch (its start time in
    /// `/proc/self/stat` after the boot time in `/proc/stat`).
    pub start_time_seconds: Option<f64>,
    /// Virtual memory size, bytes (`/proc/self/stat` vsize).
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors (`/proc/self/fd`).
    pub open_fds: Option<u64>,
}

impl SelfFigures {
    /// Reads them now.
    pub fn read() -> SelfFigures {
        let stat = Process::myself().and_then(|p| p.stat()).ok();
        let ticks = procfs::ticks_per_second() as f64;
        let boot = procfs::boot_time_secs().ok();
        SelfFigures {
            cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / ticks),
            start_time_seconds: stat
                .as_ref()
                .zip(boot)
                .map(|(s, boot)| boot as f64 + s.starttime as f64 / ticks),
            virtual_memory_bytes: stat.map(|s| s.vsize),
            open_fds: open_fds(),
        }
    }
}

/// Open descriptors: the size Linux (6.2 and later) reports for `/proc/self/fd`,
/// the count of open descriptors; on older kernels (size 0) its entries, counted.
/// Counting is what Prometheus's own clients do, but it
/// costs about 2 µs per descriptor: 30-40 ms for the proxy's 16,000 at 8,000
/// connections, more than the snapshot itself, where the size costs microseconds.
fn open_fds() -> Option<u64> {
    match fs::metadata("/proc/self/fd") {
        Ok(m) if m.len() > 0 => Some(m.len()),
        // Counted by hand: the crate's fd_count holds a descriptor of its own on
        // /proc/self while it counts, one too many.
        _ => fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let text = "42 (nginx: worker (x)) S 7 42 42 0 -1 4194560 100 0 0 0 25 13 0 0 20 0 1 0 \
                    900 1000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = procfs::process::Stat::from_read(text.as_bytes()).unwrap();
        assert_eq!((s.ppid, s.utime, s.stime), (7, 25, 13));
        assert_eq!(s.comm, "nginx: worker (x)");
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
        assert!(!status(me).unwrap().exited);
        assert!(kernel_slab_bytes().unwrap() > 0);
        let own = SelfFigures::read();
        assert!(own.cpu_seconds.is_some() && own.virtual_memory_bytes.unwrap() > 0);
        assert!(own.open_fds.unwrap() >= 3);
    }

    #[test]
    fn stat_fields_skip_a_command_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 0 0 20 0 1 0 333 4444 55 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = procfs::process::Stat::from_read(line.as_bytes()).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(
            (s.utime, s.stime, s.starttime, s.vsize),
            (111, 222, 333, 4444)
        );
    }

    #[test]
    fn pss_is_the_rollups_kilobytes_in_bytes() {
        // Against the file itself: the crate's figure is in bytes.
        let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let kb: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        let bytes = pss_bytes(std::process::id()).unwrap();
        // Both read the same moment within a few pages.
        assert!(
            bytes.abs_diff(kb * 1024) < 4 << 20,
            "{bytes} against {kb} kB"
        );
    }

    #[test]
    fn a_process_that_is_gone_is_not_found() {
        let e = rss_bytes(u32::MAX / 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
