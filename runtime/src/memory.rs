//! Memory figures read from the allocator (jemalloc) and the kernel.
//!
//! Each reading gives the figure or the reason it could not be read ([`FigureError`]:
//! what was read, and the error): a snapshot writes such a figure as `null` with that
//! reason in `process.unreadable`, never as 0.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use snapshot::{figure, Allocator, Unreadable};
use tikv_jemalloc_ctl::{epoch, stats};

/// Why a memory figure could not be read: what was read, and the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FigureError {
    /// The file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read { path: PathBuf, error: String },
    /// The status file has no `VmRSS:` line.
    #[error("{}: no VmRSS line", path.display())]
    NoVmRss { path: PathBuf },
    /// The `VmRSS:` line does not hold a number of kB.
    #[error("{}: VmRSS is not a number of kB: {line:?}", path.display())]
    BadVmRss { path: PathBuf, line: String },
    /// jemalloc's epoch did not advance, so its cached statistic would be stale.
    #[error("jemalloc epoch (refreshes stats.{stat}) could not advance: {error}")]
    Epoch { stat: &'static str, error: String },
    /// jemalloc could not read the statistic.
    #[error("jemalloc stats.{stat}: {error}")]
    Jemalloc { stat: &'static str, error: String },
}

/// Held while jemalloc's epoch is advanced and its statistics read, so that the
/// figures of one reading come from one moment.
static EPOCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The process's memory figures as a snapshot holds them: RSS, the allocator's
/// statistics, and a reason for each figure that could not be read.
pub fn read() -> (Option<u64>, Allocator, Vec<Unreadable>) {
    let mut unreadable = Vec::new();
    let mut keep = |name: &str, r: Result<u64, FigureError>| match r {
        Ok(v) => Some(v),
        Err(e) => {
            let reason = e.to_string();
            tracing::debug!(figure = name, "unreadable: {reason}");
            unreadable.push(Unreadable {
                figure: name.to_string(),
                reason,
            });
            None
        }
    };
    let rss = keep(figure::RSS, rss_bytes());
    // One epoch for all five: another thread advancing it between two reads would
    // mix two moments (allocated above active).
    let _epoch = EPOCH.lock().unwrap_or_else(|p| p.into_inner());
    let advanced = epoch::advance();
    let allocator = Allocator {
        name: "jemalloc".to_string(),
        allocated_bytes: keep(
            figure::ALLOCATED,
            jemalloc("allocated", &advanced, stats::allocated::read()),
        ),
        active_bytes: keep(
            figure::ACTIVE,
            jemalloc("active", &advanced, stats::active::read()),
        ),
        resident_bytes: keep(
            figure::RESIDENT,
            jemalloc("resident", &advanced, stats::resident::read()),
        ),
        mapped_bytes: keep(
            figure::MAPPED,
            jemalloc("mapped", &advanced, stats::mapped::read()),
        ),
        retained_bytes: keep(
            figure::RETAINED,
            jemalloc("retained", &advanced, stats::retained::read()),
        ),
    };
    (rss, allocator, unreadable)
}

/// One jemalloc statistic (`stats.<stat>`) from its read, after the epoch advance
/// that refreshes the cached statistics: if that failed the figure would be stale,
/// so it is unreadable too.
fn jemalloc<E: Display, F: Display>(
    stat: &'static str,
    advanced: &Result<impl Sized, E>,
    read: Result<usize, F>,
) -> Result<u64, FigureError> {
    if let Err(e) = advanced {
        return Err(FigureError::Epoch {
            stat,
            error: e.to_string(),
        });
    }
    read.map(|v| v as u64).map_err(|e| FigureError::Jemalloc {
        stat,
        error: e.to_string(),
    })
}

/// jemalloc's allocated bytes now (after advancing its epoch), or why not.
pub fn allocated_bytes() -> Result<u64, FigureError> {
    let _epoch = EPOCH.lock().unwrap_or_else(|p| p.into_inner());
    let advanced = epoch::advance();
    jemalloc("allocated", &advanced, stats::allocated::read())
}

/// The process's resident set size, from `/proc/self/status` (VmRSS), or why not.
pub fn rss_bytes() -> Result<u64, FigureError> {
    rss_from_status(Path::new("/proc/self/status"))
}

/// Resident set size (VmRSS) from a `status` file of `/proc`, or why not.
pub fn rss_from_status(path: &Path) -> Result<u64, FigureError> {
    let status = std::fs::read_to_string(path).map_err(|e| FigureError::Read {
        path: path.into(),
        error: e.to_string(),
    })?;
    vm_rss(&status, path)
}

/// The `VmRSS:` line of a `/proc/PID/status` text (read from `path`), in bytes.
fn vm_rss(status: &str, path: &Path) -> Result<u64, FigureError> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| FigureError::NoVmRss { path: path.into() })?;
    let kb = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| FigureError::BadVmRss {
            path: path.into(),
            line: line.to_string(),
        })?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_a_missing_status_file_says_which_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        let why = rss_from_status(&path).unwrap_err().to_string();
        assert!(
            why.starts_with(&format!("reading {}: ", path.display())),
            "{why}"
        );
        assert!(why.contains("No such file"), "{why}");
    }

    #[test]
    fn rss_of_garbled_status_text_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        std::fs::write(&path, "Name:\tx\nVmRSS:\t lots kB\n").unwrap();
        let why = rss_from_status(&path).unwrap_err().to_string();
        assert_eq!(
            why,
            format!(
                "{}: VmRSS is not a number of kB: \"VmRSS:\\t lots kB\"",
                path.display()
            )
        );
        std::fs::write(&path, "Name:\tx\nVmSize:\t 100 kB\n").unwrap();
        let why = rss_from_status(&path).unwrap_err().to_string();
        assert_eq!(why, format!("{}: no VmRSS line", path.display()));
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let rss = rss_bytes().expect("readable on Linux");
        assert!(rss > 1 << 20, "{rss}");
        assert_eq!(vm_rss("VmRSS:\t    2048 kB\n", Path::new("s")), Ok(2 << 20));
    }

    #[test]
    fn a_failed_jemalloc_read_is_unreadable_with_jemallocs_error() {
        // A real failure of jemalloc: a statistic it does not have.
        // SAFETY: the name is NUL-terminated and the type is the one jemalloc would write.
        let failed = unsafe { tikv_jemalloc_ctl::raw::read::<usize>(b"stats.no_such_figure\0") };
        let err = failed.as_ref().map(|_| ()).unwrap_err().to_string();
        let why = jemalloc("allocated", &epoch::advance(), failed).unwrap_err();
        assert_eq!(why.to_string(), format!("jemalloc stats.allocated: {err}"));
        // A failed epoch advance makes the (cached, stale) figure unreadable.
        let why = jemalloc("resident", &Err::<u64, _>("EAGAIN"), Ok::<_, String>(7)).unwrap_err();
        assert_eq!(
            why.to_string(),
            "jemalloc epoch (refreshes stats.resident) could not advance: EAGAIN"
        );
        assert_eq!(
            jemalloc("mapped", &Ok::<_, String>(1), Ok::<_, String>(7)),
            Ok(7)
        );
    }

    #[test]
    fn this_process_reads_every_figure() {
        let (rss, a, unreadable) = read();
        assert_eq!(unreadable, vec![], "readable on Linux with jemalloc");
        assert!(rss.is_some());
        assert!(a.allocated_bytes.unwrap() <= a.active_bytes.unwrap());
    }
}
