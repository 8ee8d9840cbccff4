//! The live chart of a running `client audit`: one time series per audited process
//! (its RSS, read by the audit from `/proc`), kept from the client's snapshot
//! (`audit` section) as the servers' series are kept from theirs ([`Series`]: the
//! same window, the same gaps), so the audited servers are charted beside ours.

use snapshot::{Audit, Snapshot};

use super::series::{Sample, Series};

/// One audited process's series.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedSeries {
    pub pid: u32,
    pub name: String,
    /// Samples with `rss_bytes` (the process's RSS) and `open_connections` (the
    /// audit's websockets open) set; the rest is zero.
    pub series: Series,
}

impl AuditedSeries {
    /// `4242 (node)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.pid, self.name)
    }
}

/// What the page shows of the audit: the processes' series and the last status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditView {
    pub processes: Vec<AuditedSeries>,
    /// The last `audit` section seen; `None` when no audit runs (or none was seen).
    pub latest: Option<Audit>,
    /// Why the client's snapshot could not be read (no client running: normal).
    pub error: Option<String>,
}

/// At most this many processes are charted (the audit's own limit is the user's).
pub const MAX_PROCESSES: usize = 6;

impl AuditView {
    /// Takes a poll of the client's snapshot at `t_ms`: a sample per audited
    /// process when an audit runs. A process not seen before gets its own series;
    /// an audit of other processes (a new run) starts the chart afresh.
    pub fn polled(&mut self, t_ms: f64, snapshot: &Snapshot) {
        self.error = None;
        let Some(audit) = &snapshot.audit else {
            self.latest = None;
            for p in &mut self.processes {
                p.series.trim(t_ms);
            }
            return;
        };
        let pids: Vec<u32> = audit.processes.iter().map(|p| p.pid).collect();
        let known: Vec<u32> = self.processes.iter().map(|p| p.pid).collect();
        if !known.is_empty() && known != pids {
            self.processes.clear();
        }
        for p in audit.processes.iter().take(MAX_PROCESSES) {
            let idx = match self.processes.iter().position(|s| s.pid == p.pid) {
                Some(i) => i,
                None => {
                    self.processes.push(AuditedSeries {
                        pid: p.pid,
                        name: p.name.clone(),
                        series: Series::default(),
                    });
                    self.processes.len() - 1
                }
            };
            self.processes[idx].series.push(Sample {
                t_ms,
                retained_bytes: 0,
                referenced_bytes: 0,
                live_slabs: 0,
                resident_bytes: None,
                rss_bytes: Some(p.rss_bytes),
                buffer_pool_bytes: None,
                open_connections: audit.connections_open,
                pinned_bytes: 0,
                warp: false,
            });
        }
        self.latest = Some(audit.clone());
    }

    /// A poll failed (no client on the port).
    pub fn failed(&mut self, t_ms: f64, why: String) {
        self.error = Some(why);
        self.latest = None;
        for p in &mut self.processes {
            p.series.trim(t_ms);
        }
    }

    /// The largest RSS of any charted process in the window.
    pub fn max_rss(&self) -> u64 {
        self.processes
            .iter()
            .map(|p| p.series.max_of(|s| s.rss_bytes))
            .max()
            .unwrap_or(0)
    }

    /// One line saying what the audit is doing, for the chart's caption.
    pub fn status(&self) -> String {
        match &self.latest {
            Some(a) if a.level == 0 => format!("auditing {}: {}", a.target, a.step),
            Some(a) => format!(
                "auditing {}: {} connections, step {} ({} open)",
                a.target, a.level, a.step, a.connections_open
            ),
            None if self.processes.is_empty() => {
                "no audit running: `cargo run --release -p native --bin client -- audit --target URL --pid PID` charts it here".into()
            }
            None => "the audit has ended".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fixtures;
    use snapshot::AuditProcess;

    fn client(processes: &[(u32, &str, u64)], open: u64) -> Snapshot {
        let mut s = fixtures::with_pools("client", vec![], 0);
        s.audit = Some(Audit {
            target: "ws://127.0.0.1:9000/".into(),
            step: "idle".into(),
            level: 1000,
            connections_open: open,
            processes: processes
                .iter()
                .map(|(pid, name, rss)| AuditProcess {
                    pid: *pid,
                    name: name.to_string(),
                    rss_bytes: *rss,
                    pss_bytes: None,
                })
                .collect(),
            tcp_mem_bytes: None,
            read_at_ms: 0,
        });
        s
    }

    #[test]
    fn each_audited_process_gets_its_own_rss_series() {
        let mut v = AuditView::default();
        v.polled(
            1000.0,
            &client(&[(7, "node", 50 << 20), (9, "nginx", 20 << 20)], 10),
        );
        v.polled(
            2000.0,
            &client(&[(7, "node", 60 << 20), (9, "nginx", 21 << 20)], 500),
        );
        assert_eq!(v.processes.len(), 2);
        assert_eq!(v.processes[0].label(), "7 (node)");
        let rss: Vec<u64> = v.processes[0]
            .series
            .samples()
            .filter_map(|s| s.rss_bytes)
            .collect();
        assert_eq!(rss, vec![50 << 20, 60 << 20]);
        assert_eq!(
            v.processes[1].series.latest().unwrap().open_connections,
            500
        );
        assert_eq!(v.max_rss(), 60 << 20);
        assert!(
            v.status()
                .contains("1000 connections, step idle (500 open)"),
            "{}",
            v.status()
        );
    }

    #[test]
    fn no_audit_keeps_the_chart_and_says_so_and_a_new_audit_starts_afresh() {
        let mut v = AuditView::default();
        assert!(v.status().starts_with("no audit running"));
        v.polled(1000.0, &client(&[(7, "node", 50 << 20)], 10));
        // The audit ended: the client's snapshot has no section (or no client).
        let mut plain = client(&[], 0);
        plain.audit = None;
        v.polled(2000.0, &plain);
        assert_eq!(v.processes.len(), 1);
        assert_eq!(v.status(), "the audit has ended");
        v.failed(3000.0, "connection refused".into());
        assert_eq!(v.error.as_deref(), Some("connection refused"));
        // Another audit, of another process.
        v.polled(4000.0, &client(&[(11, "warp-wss", 30 << 20)], 5));
        assert_eq!(v.processes.len(), 1);
        assert_eq!(v.processes[0].pid, 11);
    }

    #[test]
    fn samples_leave_the_window_like_the_servers_ones() {
        let mut v = AuditView::default();
        v.polled(0.0, &client(&[(7, "node", 1)], 1));
        let later = crate::logic::series::WINDOW_MS + 10.0;
        v.polled(later, &client(&[(7, "node", 2)], 1));
        assert_eq!(v.processes[0].series.len(), 1);
    }
}
