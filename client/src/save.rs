//! `--save-snapshots DIR`: both servers' snapshots written to files at the end of a run.
//!
//! Each snapshot is saved in every format, under the names the snapshot port's
//! `?download=1` gives: as served (`<role>-snapshot-<taken_at_ms>.json`), as a
//! Chrome heap snapshot of the same figures (`<role>-<taken_at_ms>.heapsnapshot`,
//! for DevTools' Memory panel) and as a pprof heap profile of its retaining paths
//! (`<role>-<taken_at_ms>.pb.gz`, for `go tool pprof`), each through [`runtime::tls::write_atomically`]: a
//! temporary file beside it, flushed, then renamed, so a full disk or a folder that
//! cannot be written leaves no partial file under the real name.

use std::io;
use std::path::{Path, PathBuf};

use super::report::{Missing, Report};

/// The folder given to `--save-snapshots` cannot take the snapshots.
#[derive(Debug, thiserror::Error)]
#[error("--save-snapshots: cannot use the folder {}: {source}", dir.display())]
pub struct FolderError {
    pub dir: PathBuf,
    pub source: io::Error,
}

/// Why one snapshot could not be saved: which, why, and where.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("no {server} snapshot to save: {}", why.as_ref().map_or("not fetched".to_string(), ToString::to_string))]
    NotFetched {
        server: &'static str,
        why: Option<Missing>,
    },
    #[error("cannot encode the {server} snapshot: {source}")]
    Encode {
        server: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot make the {server} snapshot a .heapsnapshot and a pprof profile: not a snapshot this client reads: {source}")]
    NotASnapshot {
        server: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot write the {server} snapshot to {}: {source} (no partial file left)", path.display())]
    Write {
        server: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Makes sure `dir` can take the snapshots, before the run starts: made if missing,
/// and written to once (an empty probe file, removed at once).
pub fn prepare(dir: &Path) -> Result<(), FolderError> {
    let unusable = |source: io::Error| FolderError {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(unusable)?;
    let probe = dir.join(format!(".save-probe-{}", std::process::id()));
    runtime::tls::write_atomically(&probe, b"", 0o644).map_err(unusable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The file name of a snapshot: `<role>-snapshot-<taken_at_ms>.json`.
pub fn file_name(json: &serde_json::Value, server: &str) -> String {
    let role = json["role"].as_str().unwrap_or(server);
    let taken = json["taken_at_ms"].as_u64().unwrap_or(0);
    format!("{role}-snapshot-{taken}.json")
}

/// Writes the report's snapshots (proxy, then wss) to `dir`; returns the files
/// written and, if any snapshot could not be saved, one message saying which,
/// why, and where (each [`SaveError`], after `--save-snapshots: `).
pub fn save(dir: &Path, report: &Report) -> (Vec<PathBuf>, Option<String>) {
    let mut saved = Vec::new();
    let mut problems = Vec::new();
    let servers = [
        ("proxy", &report.proxy_json, report.proxy.as_ref().err()),
        ("wss", &report.wss_json, report.wss.as_ref().err()),
    ];
    for (server, json, why) in servers {
        let Some(json) = json else {
            problems.push(SaveError::NotFetched {
                server,
                why: why.cloned(),
            });
            continue;
        };
        let path = dir.join(file_name(json, server));
        let mut bytes = match serde_json::to_vec_pretty(json) {
            Ok(bytes) => bytes,
            Err(source) => {
                problems.push(SaveError::Encode { server, source });
                continue;
            }
        };
        bytes.push(b'\n');
        write(&path, &bytes, server, &mut saved, &mut problems);
        let (heap, snap) = match serde_json::from_value::<snapshot::Snapshot>(json.clone()) {
            Ok(snap) => (snapshot::heapsnapshot::to_vec(&snap), snap),
            Err(source) => {
                problems.push(SaveError::NotASnapshot { server, source });
                continue;
            }
        };
        let path = dir.join(snapshot::heapsnapshot::file_name(&snap));
        write(&path, &heap, server, &mut saved, &mut problems);
        let path = dir.join(snapshot::pprof::file_name(&snap));
        let profile = snapshot::pprof::to_vec(&snap);
        write(&path, &profile, server, &mut saved, &mut problems);
    }
    let message = (!problems.is_empty()).then(|| {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!("--save-snapshots: {}", problems.join("; "))
    });
    (saved, message)
}

/// Writes one file, noting it saved or why not.
fn write(
    path: &Path,
    bytes: &[u8],
    server: &'static str,
    saved: &mut Vec<PathBuf>,
    problems: &mut Vec<SaveError>,
) {
    match runtime::tls::write_atomically(path, bytes, 0o644) {
        Ok(()) => {
            tracing::info!("saved the {server} snapshot to {}", path.display());
            saved.push(path.to_path_buf());
        }
        Err(source) => problems.push(SaveError::Write {
            server,
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole snapshot's JSON, of `role` taken at `taken_at_ms`.
    fn snapshot(role: &str, taken_at_ms: u64) -> serde_json::Value {
        let mut snap = snapshot::heapsnapshot::synthetic_proxy(3);
        snap.role = role.into();
        snap.taken_at_ms = taken_at_ms;
        serde_json::to_value(snap).unwrap()
    }

    /// A snapshot that nothing answered for.
    fn missing(bin: &'static str) -> Missing {
        Missing {
            error: std::sync::Arc::new(crate::fetch::FetchError::Unreachable {
                url: "http://127.0.0.1:1/snapshot".into(),
                source: io::ErrorKind::ConnectionRefused.into(),
            }),
            bin,
        }
    }

    fn report(proxy: Option<serde_json::Value>) -> Report {
        Report {
            proxy: Err(missing("proxy")),
            wss: Err(missing("wss")),
            proxy_json: proxy,
            wss_json: Some(snapshot("wss", 7)),
            pinning: 0,
            text: String::new(),
        }
    }

    #[test]
    fn saves_each_snapshot_under_its_download_name() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("new").join("folder");
        prepare(&target).unwrap();
        let proxy = snapshot("proxy", 1_700_000_000_123);
        let (saved, problem) = save(&target, &report(Some(proxy.clone())));
        assert_eq!(problem, None);
        assert_eq!(
            saved,
            [
                target.join("proxy-snapshot-1700000000123.json"),
                target.join("proxy-1700000000123.heapsnapshot"),
                target.join("proxy-1700000000123.pb.gz"),
                target.join("wss-snapshot-7.json"),
                target.join("wss-7.heapsnapshot"),
                target.join("wss-7.pb.gz"),
            ]
        );
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
        assert_eq!(back, proxy);
        // The heap snapshot is the same snapshot's graph.
        let snap: snapshot::Snapshot = serde_json::from_value(proxy).unwrap();
        assert_eq!(
            std::fs::read(&saved[1]).unwrap(),
            snapshot::heapsnapshot::to_vec(&snap)
        );
        // So is the pprof profile.
        assert_eq!(
            std::fs::read(&saved[2]).unwrap(),
            snapshot::pprof::to_vec(&snap)
        );
        assert_eq!(
            std::fs::read_dir(&target).unwrap().count(),
            6,
            "no leftovers"
        );
    }

    #[test]
    fn a_missing_snapshot_or_an_unusable_folder_is_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let (saved, problem) = save(dir.path(), &report(None));
        assert_eq!(saved.len(), 3, "the wss's three files");
        let problem = problem.unwrap();
        assert!(
            problem.starts_with("--save-snapshots: no proxy snapshot to save: no snapshot at"),
            "{problem}"
        );

        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = prepare(&file.join("snaps")).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "--save-snapshots: cannot use the folder {}: ",
                file.join("snaps").display()
            )),
            "{err}"
        );
    }
}
