//! Reading the audited processes and the machine's sockets, and waiting until
//! the figures are steady before a step takes them.
//!
//! Each `--pid` is measured with its direct children (nginx's workers under its
//! master): RSS is the sum of `VmRSS`, PSS the sum of `smaps_rollup`'s `Pss` (absent
//! when the kernel does not let this user read it). A process that has gone, or is
//! a zombie (exited, not yet reaped: no `VmRSS`), ends the audit with [`Gone`].

use std::time::{Duration, Instant};

use serde::Serialize;

use runtime::procfs::{self, Sockstat};

/// One process under audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watched {
    pub pid: u32,
    /// Its command name (`/proc/PID/status`).
    pub name: String,
}

impl Watched {
    /// `4242 (node)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.pid, self.name)
    }
}

/// Why a `--pid` cannot be measured.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("--pid {pid}: no such process on this machine")]
    NoSuchProcess { pid: u32 },
    #[error("--pid {pid}: cannot read /proc/{pid}/status: {source}")]
    Unreadable { pid: u32, source: std::io::Error },
    #[error("--pid {pid}: the process has exited (a zombie)")]
    Zombie { pid: u32 },
    #[error("--pid {pid} ({name}): no resident memory to measure ({source}): a kernel thread?")]
    NoMemory {
        pid: u32,
        name: String,
        source: std::io::Error,
    },
}

/// Checks that `pid` is a live process this user can read; its name.
pub fn watch(pid: u32) -> Result<Watched, WatchError> {
    let status = procfs::status(pid).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            WatchError::NoSuchProcess { pid }
        } else {
            WatchError::Unreadable { pid, source }
        }
    })?;
    if status.exited {
        return Err(WatchError::Zombie { pid });
    }
    let name = status.name;
    if status.rss_bytes.is_none() {
        let source = std::io::Error::other(format!("/proc/{pid}/status has no VmRSS"));
        return Err(WatchError::NoMemory { pid, name, source });
    }
    Ok(Watched { pid, name })
}

/// Whether every watched process is still there (cheap: its status file only).
///
/// A process with no `VmRSS` any more is exiting: the kernel releases its memory
/// before it closes its sockets, so by the time its peers see them reset, this says
/// it has gone even if it is not a zombie yet.
pub fn alive(watched: &[Watched]) -> Result<(), Gone> {
    for w in watched {
        match procfs::status(w.pid) {
            Ok(status) if !status.exited && status.rss_bytes.is_some() => {}
            _ => {
                return Err(Gone {
                    pid: w.pid,
                    name: w.name.clone(),
                })
            }
        }
    }
    Ok(())
}

/// One process's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessFigures {
    pub pid: u32,
    /// RSS of the process and its children, bytes.
    pub rss_bytes: u64,
    /// PSS of the process and its children, bytes; `None` when not readable.
    pub pss_bytes: Option<u64>,
    /// How many child processes were counted in.
    pub children: u32,
}

/// Every audited process and the machine's sockets at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub processes: Vec<ProcessFigures>,
    /// `None` when `/proc/net/sockstat` could not be read.
    pub sockstat: Option<Sockstat>,
}

impl Reading {
    /// The figures of `pid`.
    pub fn of(&self, pid: u32) -> Option<&ProcessFigures> {
        self.processes.iter().find(|p| p.pid == pid)
    }
}

/// An audited process has gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("process {pid} ({name}) has exited")]
pub struct Gone {
    pub pid: u32,
    pub name: String,
}

/// Reads every watched process (with its children) and the sockets.
pub fn read(watched: &[Watched]) -> Result<Reading, Gone> {
    let mut processes = Vec::with_capacity(watched.len());
    for w in watched {
        let gone = || Gone {
            pid: w.pid,
            name: w.name.clone(),
        };
        if procfs::status(w.pid).map_or(true, |s| s.exited) {
            return Err(gone());
        }
        let pids = procfs::with_children(w.pid);
        let mut rss = procfs::rss_bytes(w.pid).map_err(|_| gone())?;
        rss += pids[1..]
            .iter()
            .map(|p| procfs::rss_bytes(*p).unwrap_or(0))
            .sum::<u64>();
        let pss = pids
            .iter()
            .map(|p| procfs::pss_bytes(*p).ok())
            .try_fold(0u64, |sum, p| p.map(|p| sum + p))
            // A child that went between the two reads: the main process decides.
            .or_else(|| procfs::pss_bytes(w.pid).ok());
        processes.push(ProcessFigures {
            pid: w.pid,
            rss_bytes: rss,
            pss_bytes: pss,
            children: (pids.len() - 1) as u32,
        });
    }
    Ok(Reading {
        processes,
        sockstat: procfs::sockstat().ok(),
    })
}

/// How long to wait for steady figures, and what steady means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settle {
    /// Readings are taken this often.
    pub every: Duration,
    /// Figures are steady when every reading over this long stays within the tolerance.
    pub window: Duration,
    /// Give up waiting after this long (the last reading is taken, marked unsettled).
    pub bound: Duration,
}

/// Steady: the readings cover `window` (the first is at least that old) and every
/// process's RSS stays within 0.5 % (at least 128 KiB) over them.
pub fn steady(history: &[(Instant, Reading)], window: Duration) -> bool {
    let (Some((first, _)), Some((last, _))) = (history.first(), history.last()) else {
        return false;
    };
    if last.duration_since(*first) < window {
        return false;
    }
    let n = history[0].1.processes.len();
    (0..n).all(|i| {
        let values = history.iter().map(|(_, r)| r.processes[i].rss_bytes);
        let (lo, hi) = values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
        hi - lo <= (hi / 200).max(128 << 10)
    })
}

/// What [`settle`] saw.
#[derive(Debug, Clone)]
pub struct Settled {
    pub reading: Reading,
    /// Whether the figures were steady (else the bound passed first).
    pub steady: bool,
    pub waited: Duration,
}

/// Reads every `settle.every` until the figures are steady over `settle.window`
/// (or `settle.bound` has passed); `seen` gets every reading (the live snapshot,
/// the progress bar).
pub async fn settle(
    watched: &[Watched],
    settle: Settle,
    mut seen: impl FnMut(&Reading, Duration),
) -> Result<Settled, Gone> {
    let start = Instant::now();
    let mut history: Vec<(Instant, Reading)> = Vec::new();
    loop {
        let reading = read(watched)?;
        let now = Instant::now();
        seen(&reading, now - start);
        history.push((now, reading));
        // Older readings than the window (but one) are not needed.
        while history.len() > 2 && now.duration_since(history[1].0) > settle.window {
            history.remove(0);
        }
        let is_steady = steady(&history, settle.window);
        if is_steady || now - start >= settle.bound {
            let reading = history.pop().map(|(_, r)| r).expect("one reading");
            return Ok(Settled {
                reading,
                steady: is_steady,
                waited: now - start,
            });
        }
        tokio::time::sleep(settle.every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rss: u64) -> Reading {
        Reading {
            processes: vec![ProcessFigures {
                pid: 1,
                rss_bytes: rss,
                pss_bytes: None,
                children: 0,
            }],
            sockstat: None,
        }
    }

    #[test]
    fn steady_needs_the_whole_window_within_tolerance() {
        let t0 = Instant::now();
        let at = |ms: u64, rss: u64| (t0 + Duration::from_millis(ms), reading(rss));
        let window = Duration::from_secs(2);
        // Too short a history.
        assert!(!steady(&[at(0, 100 << 20), at(1000, 100 << 20)], window));
        // Flat over 2 s.
        assert!(steady(
            &[at(0, 100 << 20), at(1000, 100 << 20), at(2000, 100 << 20)],
            window
        ));
        // Still growing by 4 MB.
        assert!(!steady(
            &[at(0, 96 << 20), at(1000, 98 << 20), at(2000, 100 << 20)],
            window
        ));
        // Noise under 0.5 %.
        assert!(steady(
            &[at(0, 100 << 20), at(1000, 104_600_000), at(2000, 100 << 20)],
            window
        ));
    }

    #[test]
    fn this_process_is_read_and_a_missing_one_is_refused() {
        let me = watch(std::process::id()).unwrap();
        let r = read(std::slice::from_ref(&me)).unwrap();
        assert!(r.processes[0].rss_bytes > 0);
        // No process has this pid (above the kernel's pid_max ceiling).
        let e = watch(u32::MAX - 1).unwrap_err().to_string();
        assert!(e.contains("no such process"), "{e}");
        let gone = Watched {
            pid: u32::MAX - 1,
            name: "x".into(),
        };
        assert_eq!(read(&[gone]).unwrap_err().pid, u32::MAX - 1);
    }
}
