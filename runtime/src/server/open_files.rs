//! The open-file limit: raised to the hard limit at start, and what it fits. One rule
//! for the servers (a warning when it cannot cover `max_connections`) and the audit
//! (an error when it cannot hold a level's websockets).

use std::sync::OnceLock;

use rlimit::Resource;

use crate::Role;

/// Descriptors kept aside for listeners, the snapshot endpoint and the runtime.
pub const SPARE_FILES: u64 = 64;

/// Why the open-file limit could not be read or raised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenFilesError {
    /// getrlimit failed.
    #[error("getrlimit: {0}")]
    Read(String),
    /// setrlimit refused the new soft limit.
    #[error("cannot raise the open-file limit from {soft} to {target}: {error}")]
    Raise {
        soft: u64,
        target: u64,
        error: String,
    },
}

/// The open-file soft and hard limits of the process.
pub fn open_file_limit() -> std::io::Result<(u64, u64)> {
    rlimit::getrlimit(Resource::NOFILE)
}

/// Raises the open-file soft limit to the hard limit (to the kernel's ceiling,
/// `fs.nr_open`, when the hard limit is infinite), once per process.
///
/// Returns the soft limit before and after and the hard limit, or why it could not.
pub fn raise_open_file_limit() -> Result<(u64, u64, u64), OpenFilesError> {
    static RAISED: OnceLock<Result<(u64, u64, u64), OpenFilesError>> = OnceLock::new();
    RAISED.get_or_init(raise).clone()
}

fn raise() -> Result<(u64, u64, u64), OpenFilesError> {
    let read = |e: std::io::Error| OpenFilesError::Read(e.to_string());
    let (soft, hard) = open_file_limit().map_err(read)?;
    let target = if hard == rlimit::INFINITY {
        crate::procfs::nr_open().unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft >= target {
        return Ok((soft, soft, hard));
    }
    rlimit::setrlimit(Resource::NOFILE, target, hard).map_err(|e| OpenFilesError::Raise {
        soft,
        target,
        error: e.to_string(),
    })?;
    let (after, hard) = open_file_limit().map_err(read)?;
    Ok((soft, after, hard))
}

/// What the open-file limit holds: connections of `per_connection` descriptors each,
/// beside [`SPARE_FILES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBudget {
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
    /// Connections that fit.
    pub fit: u64,
}

impl FileBudget {
    /// The budget of the limits in force now.
    pub fn now(per_connection: u64) -> Result<FileBudget, OpenFilesError> {
        let (soft, hard) = open_file_limit().map_err(|e| OpenFilesError::Read(e.to_string()))?;
        Ok(FileBudget::of(soft, hard, per_connection))
    }

    /// The budget of a soft and hard limit.
    pub fn of(soft: u64, hard: u64, per_connection: u64) -> FileBudget {
        FileBudget {
            soft,
            hard,
            fit: soft.saturating_sub(SPARE_FILES) / per_connection.max(1),
        }
    }
}

/// Raises the open-file limit and says whether it covers `max_connections`
/// (`per_connection` descriptors each: 1 for the wss, 2 for the proxy).
pub fn check_open_files(role: Role, max_connections: u64, per_connection: u64) {
    match raise_open_file_limit() {
        Ok((before, after, hard)) if after > before => {
            tracing::info!("open-file limit {after} (raised from {before}; hard limit {hard})")
        }
        Ok((_, after, hard)) => tracing::info!("open-file limit {after} (hard limit {hard})"),
        Err(why) => tracing::warn!("{why}"),
    }
    let Ok(FileBudget { soft, fit, .. }) = FileBudget::now(per_connection) else {
        return;
    };
    if max_connections == 0 {
        tracing::info!(
            "no connection cap (max_connections 0): the open-file limit {soft} fits about {fit} connections of the {}",
            role.as_str()
        );
    } else if max_connections > fit {
        tracing::warn!(
            "the open-file limit {soft} cannot cover max_connections {max_connections}: the {} needs \
             {per_connection} descriptor(s) per connection plus {SPARE_FILES} spare, so about {fit} fit; \
             beyond that accepts fail with \"too many open files\" (lower max_connections or raise the hard limit, ulimit -Hn)",
            role.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_the_spare_files_aside() {
        assert_eq!(FileBudget::of(1024, 4096, 1).fit, 960);
        assert_eq!(FileBudget::of(1024, 4096, 2).fit, 480);
        assert_eq!(FileBudget::of(10, 10, 1).fit, 0);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit_once() {
        let (before, after, hard) = raise_open_file_limit().unwrap();
        assert!(before <= after && after <= hard.max(after));
        assert_eq!(raise_open_file_limit(), Ok((before, after, hard)));
        assert_eq!(open_file_limit().unwrap().0, after);
    }
}
