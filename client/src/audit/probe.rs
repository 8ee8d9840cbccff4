//! The head probe (`client audit --head-probe`): does the server keep each
//! connection's upgrade request for as long as the websocket lives?
//!
//! A black-box test, on the first level of the audit once its steps are done: the
//! audit opens that many websockets with the handshake's own small request and reads
//! every process once steady, closes them and lets the figures settle, then opens as
//! many again, each request carrying one large header (a `Cookie` of
//! `--probe-header-bytes`), reads and closes, and then opens the small ones once
//! more. A server that keeps its request head (the request's bytes, or a buffer they
//! lie in) holds the difference for every connection after the handshake; one that
//! lets it go holds nothing more.
//!
//! The figure is (RSS with the large requests open - the mean of the two readings
//! with the small ones open) / connections, in KB (1000 bytes); the verdict's rule is
//! [`verdict`]. Small, large, small again: what a process does not give back after
//! each close (its allocator's first growth, fragments) drifts the readings up pass
//! after pass, and the mean of the two small passes moves with it.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};

use super::measure::{Reading, Settle, Settled, Watched};
use super::report::{kb_per, size, AuditReport};
use super::{settled, step_error, LiveStatus, StepError, StepFailure};
use crate::fleet::{Dial, Fleet, FleetError};
use crate::progress;
use crate::table::TextTable;

/// The probe header's default size, bytes: a `Cookie` of 12 KiB, which fits (with
/// the handshake's own headers) in the 16 KiB header block that our servers
/// (`max_header_bytes`), hyper's default and Node's http server accept.
pub const DEFAULT_HEADER_BYTES: usize = 12 << 10;
/// The smallest probe header: below it the difference drowns in the noise.
pub const MIN_HEADER_BYTES: usize = 1 << 10;
/// The largest probe header.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The name of the probe's cookie (`Cookie: probe=aaaa...`).
pub const COOKIE_NAME: &str = "probe";

/// A `Cookie` header whose value (`probe=aaa...`) is `bytes` long.
pub fn cookie(bytes: usize) -> (header::HeaderName, HeaderValue) {
    let mut value = format!("{COOKIE_NAME}=");
    value.push_str(&"a".repeat(bytes.saturating_sub(value.len())));
    let value = HeaderValue::from_str(&value).expect("ASCII letters make a header value");
    (header::COOKIE, value)
}

/// What the probe concluded of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The large request added at least [`threshold_kb`] per connection.
    KeepsRequestHead,
    /// It added less: within the noise of a reading.
    DoesNotKeepRequestHead,
}

/// The verdict's threshold, KB per connection: a quarter of the header's size.
///
/// A server that keeps its request head holds at least the header's bytes per
/// connection more (more when it keeps the buffer they were read into). The
/// figure is at least half of that even when the allocator keeps every freed page
/// for reuse (the second small pass then reuses the large one's pages: the mean of
/// the small passes rises by half of what the large one added), so a quarter
/// leaves a margin both ways. On the playground's stacks a server that drops it
/// measured +0.6 to +1.2 KB (docs/guide/audit.md, "Does it keep its
/// request head?").
pub fn threshold_kb(header_bytes: u64) -> f64 {
    header_bytes as f64 / 4.0 / 1000.0
}

/// Keeps its request head when the large request added at least [`threshold_kb`]
/// per connection.
pub fn verdict(kb_per_connection: f64, header_bytes: u64) -> Verdict {
    if kb_per_connection >= threshold_kb(header_bytes) {
        Verdict::KeepsRequestHead
    } else {
        Verdict::DoesNotKeepRequestHead
    }
}

/// The three passes of the probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// The handshake's own request.
    Small,
    /// The same with the large header.
    Large,
    /// The handshake's own request again.
    SmallAgain,
}

impl Pass {
    pub const ALL: [Pass; 3] = [Pass::Small, Pass::Large, Pass::SmallAgain];

    /// The step's name in the report's `error`, the live snapshot and the log.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Small => "head_probe_small",
            Pass::Large => "head_probe_large",
            Pass::SmallAgain => "head_probe_small_again",
        }
    }

    /// What the progress bar says.
    fn doing(self) -> &'static str {
        match self {
            Pass::Small => "head probe, small requests",
            Pass::Large => "head probe, large requests",
            Pass::SmallAgain => "head probe, small requests again",
        }
    }
}

/// The probe's figures, as `--json` writes them (`head_probe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadProbe {
    /// Websockets open in each pass (the audit's first level).
    pub connections: u64,
    /// Bytes of the large header's value (`Cookie: probe=aaa...`).
    pub header_bytes: u64,
    /// [`threshold_kb`] of `header_bytes`.
    pub threshold_kb_per_connection: f64,
    pub processes: Vec<ProbeProcess>,
    /// Passes whose reading was taken before the figures were steady.
    pub unsettled: Vec<Pass>,
}

/// One process in the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeProcess {
    pub pid: u32,
    pub name: String,
    /// RSS before the probe's first websockets opened.
    pub before_rss_bytes: Option<u64>,
    /// RSS and PSS with the small requests' websockets open, steady.
    pub small_rss_bytes: Option<u64>,
    pub small_pss_bytes: Option<u64>,
    /// RSS and PSS with the large requests' websockets open, steady.
    pub large_rss_bytes: Option<u64>,
    pub large_pss_bytes: Option<u64>,
    /// RSS and PSS with the small requests' websockets open again, steady.
    pub small_again_rss_bytes: Option<u64>,
    pub small_again_pss_bytes: Option<u64>,
    /// RSS once the last pass closed.
    pub after_close_rss_bytes: Option<u64>,
    /// (large RSS - the mean of the two small RSS) / connections, KB.
    pub kb_per_connection: Option<f64>,
    /// The same with PSS.
    pub pss_kb_per_connection: Option<f64>,
    /// [`verdict`] of `kb_per_connection`.
    pub verdict: Option<Verdict>,
}

impl HeadProbe {
    pub fn new(connections: u64, header_bytes: u64, processes: &[Watched]) -> HeadProbe {
        HeadProbe {
            connections,
            header_bytes,
            threshold_kb_per_connection: (threshold_kb(header_bytes) * 100.0).round() / 100.0,
            processes: processes
                .iter()
                .map(|w| ProbeProcess {
                    pid: w.pid,
                    name: w.name.clone(),
                    before_rss_bytes: None,
                    small_rss_bytes: None,
                    small_pss_bytes: None,
                    large_rss_bytes: None,
                    large_pss_bytes: None,
                    small_again_rss_bytes: None,
                    small_again_pss_bytes: None,
                    after_close_rss_bytes: None,
                    kb_per_connection: None,
                    pss_kb_per_connection: None,
                    verdict: None,
                })
                .collect(),
            unsettled: Vec::new(),
        }
    }

    /// Records the reading before the probe (`before`), or once its last pass closed.
    pub fn record_closed(&mut self, reading: &Reading, before: bool) {
        for p in &mut self.processes {
            let rss = reading.of(p.pid).map(|f| f.rss_bytes);
            if before {
                p.before_rss_bytes = rss;
            } else {
                p.after_close_rss_bytes = rss;
            }
        }
    }

    /// Records the reading with `pass`'s websockets open; after the last pass, the
    /// figures and the verdicts.
    pub fn record_open(&mut self, pass: Pass, reading: &Reading, steady: bool) {
        if !steady {
            self.unsettled.push(pass);
        }
        let (n, header_bytes) = (self.connections, self.header_bytes);
        for p in &mut self.processes {
            let Some(f) = reading.of(p.pid) else { continue };
            let (rss, pss) = (Some(f.rss_bytes), f.pss_bytes);
            match pass {
                Pass::Small => (p.small_rss_bytes, p.small_pss_bytes) = (rss, pss),
                Pass::Large => (p.large_rss_bytes, p.large_pss_bytes) = (rss, pss),
                Pass::SmallAgain => {
                    (p.small_again_rss_bytes, p.small_again_pss_bytes) = (rss, pss);
                    let added = |large: Option<u64>, a: Option<u64>, b: Option<u64>| {
                        kb_per(large?, (a? + b?) / 2, n)
                    };
                    p.kb_per_connection = added(p.large_rss_bytes, p.small_rss_bytes, rss);
                    p.pss_kb_per_connection = added(p.large_pss_bytes, p.small_pss_bytes, pss);
                    p.verdict = p.kb_per_connection.map(|kb| verdict(kb, header_bytes));
                }
            }
        }
    }

    /// What the probe found, in words: one line per process measured.
    pub fn lines(&self) -> Vec<String> {
        let header = size(self.header_bytes);
        let n = self.connections;
        let mut out = Vec::new();
        for p in &self.processes {
            let (Some(kb), Some(v), Some(small), Some(large), Some(again)) = (
                p.kb_per_connection,
                p.verdict,
                p.small_rss_bytes,
                p.large_rss_bytes,
                p.small_again_rss_bytes,
            ) else {
                continue;
            };
            let mb = |b: u64| b as f64 / 1e6;
            let rss = format!(
                "RSS with {n} websockets open: {:.1} MB with small requests, {:.1} MB with large ones, {:.1} MB with small ones again",
                mb(small),
                mb(large),
                mb(again)
            );
            out.push(match v {
                Verdict::KeepsRequestHead => format!(
                    "Head probe: process {} ({}) keeps its request head (about {kb:.1} KB per connection more with a {header} header; {rss}).",
                    p.pid, p.name
                ),
                Verdict::DoesNotKeepRequestHead => format!(
                    "Head probe: process {} ({}) does not keep its request head ({kb:+.1} KB per connection with a {header} header, within noise: under {:.1}; {rss}).",
                    p.pid, p.name, self.threshold_kb_per_connection
                ),
            });
        }
        if !self.unsettled.is_empty() {
            let names: Vec<&str> = self.unsettled.iter().map(|p| p.name()).collect();
            out.push(format!(
                "Head probe: the figures of {} were still moving when read: run it again, or at a larger level.",
                names.join(", ")
            ));
        }
        out
    }

    /// The probe's table: one row per process.
    pub fn table(&self) -> String {
        let mb = |b: Option<u64>| {
            b.map(|b| format!("{:.1}", b as f64 / 1e6))
                .unwrap_or_else(|| "-".into())
        };
        let mut table = TextTable::figures(&[
            "process",
            "conns",
            "RSS small MB",
            "RSS large MB",
            "RSS small again MB",
            "+KB/conn",
            "+PSS KB/conn",
            "verdict",
        ]);
        for p in &self.processes {
            let kb = |k: Option<f64>| k.map(|k| format!("{k:.1}")).unwrap_or_else(|| "-".into());
            table.row(vec![
                format!("{} {}", p.pid, p.name),
                self.connections.to_string(),
                mb(p.small_rss_bytes),
                mb(p.large_rss_bytes),
                mb(p.small_again_rss_bytes),
                kb(p.kb_per_connection),
                kb(p.pss_kb_per_connection),
                match p.verdict {
                    Some(Verdict::KeepsRequestHead) => "keeps its request head".into(),
                    Some(Verdict::DoesNotKeepRequestHead) => "does not keep it".into(),
                    None => "-".into(),
                },
            ]);
        }
        format!(
            "head probe: {} websockets opened with the handshake's small request, then with a {} Cookie header, then small again (kept: {:.1} KB per connection or more over the small ones' mean)\n{}",
            self.connections,
            size(self.header_bytes),
            self.threshold_kb_per_connection,
            table.render()
        )
    }
}

/// How the audit runs the probe.
pub(super) struct Probe<'a> {
    pub connections: u64,
    pub header_bytes: usize,
    pub rate: f64,
    pub dial: &'a Dial,
    pub watched: &'a [Watched],
    pub show: bool,
    /// The longest wait for steady figures before each reading.
    pub settle: std::time::Duration,
}

/// Runs the probe from `before` (the audit's last reading, its websockets closed):
/// the first pass on `fleet`, each later one on a fleet of its own (the large pass's
/// dialer adds the cookie); the last is left in `fleet`, closed, for the audit to
/// shut down.
pub(super) async fn run(
    probe: Probe<'_>,
    before: &Settled,
    fleet: &mut Fleet,
    report: &mut AuditReport,
    live: &LiveStatus,
) -> Result<(), StepError> {
    let Probe {
        connections: n,
        watched,
        show,
        ..
    } = probe;
    report.head_probe = Some(HeadProbe::new(n, probe.header_bytes as u64, watched));
    let alive = || super::measure::alive(watched);
    let settle = |window| Settle {
        every: super::SETTLE_EVERY,
        window,
        bound: probe.settle,
    };
    if let Some(h) = report.head_probe.as_mut() {
        h.record_closed(&before.reading, true);
    }
    for pass in Pass::ALL {
        let err = |e: StepFailure| step_error(watched, pass.name(), e);
        let mut dial = probe.dial.clone();
        if pass == Pass::Large {
            dial.headers.push(cookie(probe.header_bytes));
        }
        if pass != Pass::Small {
            std::mem::replace(fleet, Fleet::new(dial)).shutdown().await;
        }
        live.set(pass.name(), n);
        let bar = progress::step_bar(&format!("{n}: {}", pass.doing()), n, show);
        fleet
            .open_to(n, probe.rate, n / 100 + 2, alive, |k| {
                bar.set_position(k);
                live.open.store(k, Ordering::Relaxed);
            })
            .await
            .map_err(|e| match e {
                e @ FleetError::OpenFailed { .. } if pass == Pass::Large => {
                    err(StepFailure::ProbeHeader {
                        header_bytes: probe.header_bytes,
                        failure: Box::new(e.into()),
                    })
                }
                e => err(e.into()),
            })?;
        let open = settled(watched, settle(super::SETTLE_WINDOW), bar)
            .await
            .map_err(|e| err(e.into()))?;
        if let Some(h) = report.head_probe.as_mut() {
            h.record_open(pass, &open.reading, open.steady);
        }
        log_pass(report, pass, &open);

        let bar = progress::step_bar(&format!("{n}: {}, closing", pass.doing()), n, show);
        fleet
            .close_all(|k| {
                bar.set_position(k);
                live.open.store(n - k.min(n), Ordering::Relaxed);
            })
            .await
            .map_err(|e| err(e.into()))?;
        let closed = settled(watched, settle(super::CLOSE_WINDOW), bar)
            .await
            .map_err(|e| err(e.into()))?;
        if pass == Pass::SmallAgain {
            if let Some(h) = report.head_probe.as_mut() {
                h.record_closed(&closed.reading, false);
            }
        }
    }
    Ok(())
}

/// Logs what a pass read.
fn log_pass(report: &AuditReport, pass: Pass, s: &Settled) {
    let Some(h) = &report.head_probe else { return };
    let parts: Vec<String> = h
        .processes
        .iter()
        .map(|p| {
            let rss = s.reading.of(p.pid).map(|f| f.rss_bytes).unwrap_or(0) as f64 / 1e6;
            match (pass, p.kb_per_connection) {
                (Pass::SmallAgain, Some(kb)) => {
                    format!(
                        "{} {} {rss:.1} MB ({kb:+.1} KB per connection)",
                        p.pid, p.name
                    )
                }
                _ => format!("{} {} {rss:.1} MB", p.pid, p.name),
            }
        })
        .collect();
    tracing::info!(
        "audit: {} connections, {}: {}{}",
        h.connections,
        pass.name(),
        parts.join(", "),
        if s.steady {
            String::new()
        } else {
            format!(" (still moving after {:.0} s)", s.waited.as_secs_f64())
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::measure::ProcessFigures;

    fn reading(rss: u64) -> Reading {
        Reading {
            processes: vec![ProcessFigures {
                pid: 3,
                rss_bytes: rss,
                pss_bytes: Some(rss - 1_000_000),
                children: 0,
            }],
            sockstat: None,
        }
    }

    #[test]
    fn the_cookie_has_the_size_asked() {
        let (name, value) = cookie(12 << 10);
        assert_eq!(name, header::COOKIE);
        assert_eq!(value.len(), 12 << 10);
        assert!(value.to_str().unwrap().starts_with("probe=aaa"));
    }

    #[test]
    fn the_verdict_is_a_quarter_of_the_header_per_connection() {
        assert_eq!(threshold_kb(12_000), 3.0);
        assert_eq!(verdict(3.0, 12_000), Verdict::KeepsRequestHead);
        assert_eq!(verdict(2.9, 12_000), Verdict::DoesNotKeepRequestHead);
        assert_eq!(verdict(-5.0, 12_000), Verdict::DoesNotKeepRequestHead);
    }

    #[test]
    fn the_figure_is_the_difference_of_the_two_passes_per_connection() {
        let w = [Watched {
            pid: 3,
            name: "srv".into(),
        }];
        let mut keeps = HeadProbe::new(200, 12 << 10, &w);
        keeps.record_closed(&reading(10_000_000), true);
        keeps.record_open(Pass::Small, &reading(20_000_000), true);
        keeps.record_open(Pass::Large, &reading(23_800_000), true);
        assert_eq!(keeps.processes[0].verdict, None);
        // Drifted up 0.8 MB over the two passes: the mean of the small ones is 20.4.
        keeps.record_open(Pass::SmallAgain, &reading(20_800_000), true);
        keeps.record_closed(&reading(11_000_000), false);
        let p = &keeps.processes[0];
        assert_eq!(p.kb_per_connection, Some(17.0));
        assert_eq!(p.pss_kb_per_connection, Some(17.0));
        assert_eq!(p.verdict, Some(Verdict::KeepsRequestHead));
        assert_eq!(p.before_rss_bytes, Some(10_000_000));
        assert_eq!(p.after_close_rss_bytes, Some(11_000_000));
        let text = keeps.lines().join("\n");
        assert!(
            text.contains("(srv) keeps its request head (about 17.0 KB per connection more with a 12 KiB header"),
            "{text}"
        );
        assert!(keeps.table().contains("keeps its request head"));

        let mut not = HeadProbe::new(200, 12 << 10, &w);
        not.record_open(Pass::Small, &reading(20_000_000), true);
        not.record_open(Pass::Large, &reading(20_100_000), false);
        not.record_open(Pass::SmallAgain, &reading(20_000_000), true);
        assert_eq!(
            not.processes[0].verdict,
            Some(Verdict::DoesNotKeepRequestHead)
        );
        let text = not.lines().join("\n");
        assert!(
            text.contains("does not keep its request head (+0.5 KB per connection"),
            "{text}"
        );
        assert!(
            text.contains("head_probe_large were still moving"),
            "{text}"
        );
        let json = serde_json::to_value(&not).unwrap();
        assert_eq!(
            json["processes"][0]["verdict"],
            "does_not_keep_request_head"
        );
        assert_eq!(json["unsettled"][0], "large");
    }
}
