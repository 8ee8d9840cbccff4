//! The open-file limit: raised to the hard limit at start, and checked against the
//! connection cap.

use crate::Role;

/// Raises the open-file soft limit to the hard limit, once per process.
///
/// Returns the soft limit before and after and the hard limit, or why it could not.
pub fn raise_open_file_limit() -> Result<(u64, u64, u64), String> {
    static RAISED: std::sync::OnceLock<Result<(u64, u64, u64), String>> =
        std::sync::OnceLock::new();
    RAISED
        .get_or_init(|| {
            let (soft, hard) = open_file_limit().map_err(|e| format!("getrlimit: {e}"))?;
            let target = if hard == libc::RLIM_INFINITY {
                // The kernel's ceiling for RLIMIT_NOFILE.
                std::fs::read_to_string("/proc/sys/fs/nr_open")
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1 << 20)
            } else {
                hard
            };
            if soft >= target {
                return Ok((soft, soft, hard));
            }
            let limit = libc::rlimit {
                rlim_cur: target as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit reads a valid rlimit struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(format!(
                    "cannot raise the open-file limit from {soft} to {target}: {e}"
                ));
            }
            let (after, hard) = open_file_limit().map_err(|e| format!("getrlimit: {e}"))?;
            Ok((soft, after, hard))
        })
        .clone()
}

/// The open-file soft and hard limits of the process.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
pub fn open_file_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// Descriptors kept aside for listeners, the snapshot endpoint and the runtime.
pub const SPARE_FILES: u64 = 64;

/// Raises the open-file limit and says whether it covers `max_connections`
/// (`per_connection` descriptors each: 1 for the wss, 2 for the proxy).
pub fn check_open_files(role: Role, max_connections: u64, per_connection: u64) {
    let soft = match raise_open_file_limit() {
        Ok((before, after, hard)) => {
            if after > before {
                tracing::info!("open-file limit {after} (raised from {before}; hard limit {hard})");
            } else {
                tracing::info!("open-file limit {after} (hard limit {hard})");
            }
            after
        }
        Err(why) => {
            tracing::warn!("{why}");
            match open_file_limit() {
                Ok((soft, _)) => soft,
                Err(_) => return,
            }
        }
    };
    let fit = soft.saturating_sub(SPARE_FILES) / per_connection;
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
