//! What an audit found: the JSON it writes with `--json` (its fields are stable and
//! documented in docs/reference/audit-json.md), the table it prints, and plain-language lines.
//!
//! Every figure comes from a reading of `/proc` taken after the step's figures were
//! steady; the per-connection figures are differences of those readings divided by
//! the level's connections (KB = 1000 bytes). Nothing is estimated: a step that was
//! not reached leaves its fields `null`.

use serde::{Deserialize, Serialize};

use super::measure::{ProcessFigures, Reading, Watched};
use super::probe::HeadProbe;
use crate::table::TextTable;
use runtime::procfs::Sockstat;

/// Version of the audit JSON; bumped when a field changes meaning or goes away.
pub const FORMAT: u32 = 1;

/// The steps of one level, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Before the level's websockets open.
    Before,
    /// The websockets open and idle.
    Idle,
    /// Each sent one message.
    AfterMessage,
    /// Each sent its traffic.
    AfterTraffic,
    /// All closed.
    AfterClose,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Before,
        Step::Idle,
        Step::AfterMessage,
        Step::AfterTraffic,
        Step::AfterClose,
    ];

    /// The name in the JSON and the messages.
    pub fn name(self) -> &'static str {
        match self {
            Step::Before => "before",
            Step::Idle => "idle",
            Step::AfterMessage => "after_message",
            Step::AfterTraffic => "after_traffic",
            Step::AfterClose => "after_close",
        }
    }

    /// What the progress bar and the messages call the step that leads to it.
    pub fn doing(self) -> &'static str {
        match self {
            Step::Before => "settling",
            Step::Idle => "idle",
            Step::AfterMessage => "one message",
            Step::AfterTraffic => "traffic",
            Step::AfterClose => "closed",
        }
    }
}

/// The whole audit, as `--json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// [`FORMAT`].
    pub format: u32,
    /// The URL audited.
    pub target: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    pub settings: AuditSettings,
    /// The processes measured (each with its children).
    pub processes: Vec<AuditedProcess>,
    /// The readings before the first level opened.
    pub baseline: Option<Figures>,
    pub levels: Vec<Level>,
    /// The head probe (`--head-probe`) at the first level; `null` when not asked.
    pub head_probe: Option<HeadProbe>,
    /// What the figures show, in words.
    pub lines: Vec<String>,
    /// Why the audit ended early; `null` when it went to its end.
    pub error: Option<Failure>,
}

/// The settings the audit ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSettings {
    pub levels: Vec<u64>,
    /// Websockets opened per second.
    pub rate: f64,
    pub message_size: u64,
    pub traffic_bytes: u64,
    pub traffic_message_size: u64,
    /// The longest wait for steady figures before a reading, seconds.
    pub settle_max_secs: f64,
    /// The head probe's large header, bytes; `null` without `--head-probe`.
    pub head_probe_header_bytes: Option<u64>,
}

/// One process measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedProcess {
    pub pid: u32,
    pub name: String,
}

/// One reading of every process and of the machine's sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub processes: Vec<ProcessReading>,
    pub sockstat: Option<SockstatFigures>,
    /// Whether the figures were steady when read (else the wait's bound passed).
    pub steady: bool,
    /// How long the wait for steady figures took.
    pub settle_ms: u64,
}

/// One process in one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReading {
    pub pid: u32,
    pub rss_bytes: u64,
    pub pss_bytes: Option<u64>,
    /// Child processes counted in (nginx's workers).
    pub children: u32,
}

impl From<&ProcessFigures> for ProcessReading {
    fn from(p: &ProcessFigures) -> Self {
        ProcessReading {
            pid: p.pid,
            rss_bytes: p.rss_bytes,
            pss_bytes: p.pss_bytes,
            children: p.children,
        }
    }
}

/// The machine's TCP sockets (`/proc/net/sockstat`): both ends of every connection
/// when the server runs on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockstatFigures {
    pub tcp_inuse: u64,
    pub tcp_tw: u64,
    pub tcp_mem_pages: u64,
    /// `tcp_mem_pages` times the page size.
    pub tcp_mem_bytes: u64,
}

impl From<&Sockstat> for SockstatFigures {
    fn from(s: &Sockstat) -> Self {
        SockstatFigures {
            tcp_inuse: s.tcp_inuse,
            tcp_tw: s.tcp_tw,
            tcp_mem_pages: s.tcp_mem_pages,
            tcp_mem_bytes: s.tcp_mem_bytes(),
        }
    }
}

/// One level: its connections opened, a message each, traffic each, all closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub connections: u64,
    pub processes: Vec<LevelProcess>,
    pub sockstat: LevelSockstat,
    /// Steps whose reading was taken before the figures were steady.
    pub unsettled: Vec<Step>,
}

/// One process at one level. `*_kb_per_connection`: the change from the step
/// before, over the level's connections, KB (1000 bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelProcess {
    pub pid: u32,
    pub name: String,
    /// RSS just before the level's websockets opened.
    pub before_rss_bytes: Option<u64>,
    pub before_pss_bytes: Option<u64>,
    /// RSS and PSS with the level's websockets open and idle.
    pub rss_bytes: Option<u64>,
    pub pss_bytes: Option<u64>,
    /// (idle RSS - RSS before) / connections.
    pub kb_per_connection: Option<f64>,
    /// The same with PSS.
    pub pss_kb_per_connection: Option<f64>,
    /// (idle RSS - the previous level's idle RSS) / (connections - its connections).
    pub marginal_kb_per_connection: Option<f64>,
    pub after_message_rss_bytes: Option<u64>,
    pub after_message_pss_bytes: Option<u64>,
    /// (RSS after one message each - idle RSS) / connections.
    pub after_message_kb_per_connection: Option<f64>,
    pub after_traffic_rss_bytes: Option<u64>,
    pub after_traffic_pss_bytes: Option<u64>,
    /// (RSS after the traffic - RSS after the message) / connections.
    pub after_traffic_kb_per_connection: Option<f64>,
    pub after_close_rss_bytes: Option<u64>,
    pub after_close_pss_bytes: Option<u64>,
    /// Of what the level added (RSS after the traffic - RSS before), the part that
    /// came back once closed, %.
    pub returned_percent: Option<f64>,
}

/// The sockets at each step of a level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelSockstat {
    pub before: Option<SockstatFigures>,
    pub idle: Option<SockstatFigures>,
    pub after_message: Option<SockstatFigures>,
    pub after_traffic: Option<SockstatFigures>,
    pub after_close: Option<SockstatFigures>,
    /// (TCP buffer bytes idle - before) / connections, KB.
    pub tcp_mem_kb_per_connection: Option<f64>,
}

/// Why an audit ended early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// `start`, or the step that failed (`idle`, `after_message`, ...).
    pub step: String,
    /// The level being measured, if any.
    pub level: Option<u64>,
    pub message: String,
}

/// KB (1000 bytes) per connection of a change, one decimal.
pub fn kb_per(after: u64, before: u64, connections: u64) -> Option<f64> {
    (connections > 0).then(|| {
        let kb = (after as f64 - before as f64) / connections as f64 / 1000.0;
        (kb * 10.0).round() / 10.0
    })
}

impl AuditReport {
    pub fn new(target: &str, settings: AuditSettings, processes: &[Watched]) -> AuditReport {
        AuditReport {
            format: FORMAT,
            target: target.to_string(),
            started_at_ms: now_ms(),
            finished_at_ms: 0,
            settings,
            processes: processes
                .iter()
                .map(|w| AuditedProcess {
                    pid: w.pid,
                    name: w.name.clone(),
                })
                .collect(),
            baseline: None,
            levels: Vec::new(),
            head_probe: None,
            lines: Vec::new(),
            error: None,
        }
    }

    /// Starts a level of `connections`.
    pub fn begin_level(&mut self, connections: u64) {
        self.levels.push(Level {
            connections,
            processes: self
                .processes
                .iter()
                .map(|p| LevelProcess::empty(p.pid, &p.name))
                .collect(),
            sockstat: LevelSockstat::default(),
            unsettled: Vec::new(),
        });
    }

    /// Records the reading of `step` of the current level.
    pub fn record(&mut self, step: Step, reading: &Reading, steady: bool) {
        let previous_idle: Vec<Option<(u64, u64)>> = {
            let prev = self.levels.len().checked_sub(2).map(|i| &self.levels[i]);
            self.processes
                .iter()
                .enumerate()
                .map(|(i, _)| prev.and_then(|l| Some((l.connections, l.processes[i].rss_bytes?))))
                .collect()
        };
        let Some(level) = self.levels.last_mut() else {
            return;
        };
        let n = level.connections;
        if !steady {
            level.unsettled.push(step);
        }
        let sock = reading.sockstat.as_ref().map(SockstatFigures::from);
        let s = &mut level.sockstat;
        match step {
            Step::Before => s.before = sock,
            Step::Idle => {
                s.idle = sock;
                s.tcp_mem_kb_per_connection = match (s.before, s.idle) {
                    (Some(b), Some(i)) => kb_per(i.tcp_mem_bytes, b.tcp_mem_bytes, n),
                    _ => None,
                };
            }
            Step::AfterMessage => s.after_message = sock,
            Step::AfterTraffic => s.after_traffic = sock,
            Step::AfterClose => s.after_close = sock,
        }
        for (i, p) in level.processes.iter_mut().enumerate() {
            let Some(f) = reading.of(p.pid) else { continue };
            let (rss, pss) = (Some(f.rss_bytes), f.pss_bytes);
            match step {
                Step::Before => (p.before_rss_bytes, p.before_pss_bytes) = (rss, pss),
                Step::Idle => {
                    (p.rss_bytes, p.pss_bytes) = (rss, pss);
                    p.kb_per_connection =
                        p.before_rss_bytes.and_then(|b| kb_per(f.rss_bytes, b, n));
                    p.pss_kb_per_connection = match (pss, p.before_pss_bytes) {
                        (Some(a), Some(b)) => kb_per(a, b, n),
                        _ => None,
                    };
                    p.marginal_kb_per_connection = previous_idle[i]
                        .filter(|(pn, _)| n > *pn)
                        .and_then(|(pn, prss)| kb_per(f.rss_bytes, prss, n - pn));
                }
                Step::AfterMessage => {
                    (p.after_message_rss_bytes, p.after_message_pss_bytes) = (rss, pss);
                    p.after_message_kb_per_connection =
                        p.rss_bytes.and_then(|b| kb_per(f.rss_bytes, b, n));
                }
                Step::AfterTraffic => {
                    (p.after_traffic_rss_bytes, p.after_traffic_pss_bytes) = (rss, pss);
                    p.after_traffic_kb_per_connection = p
                        .after_message_rss_bytes
                        .and_then(|b| kb_per(f.rss_bytes, b, n));
                }
                Step::AfterClose => {
                    (p.after_close_rss_bytes, p.after_close_pss_bytes) = (rss, pss);
                    // From the highest reading of the level (after the traffic, or
                    // the last step reached) back to what it was before.
                    let peak = p
                        .after_traffic_rss_bytes
                        .or(p.after_message_rss_bytes)
                        .or(p.rss_bytes);
                    p.returned_percent = match (peak, p.before_rss_bytes) {
                        (Some(peak), Some(before)) if peak > before + (64 << 10) => {
                            let pct = (peak as f64 - f.rss_bytes as f64)
                                / (peak as f64 - before as f64)
                                * 100.0;
                            Some(pct.round())
                        }
                        _ => None,
                    };
                }
            }
        }
    }

    /// Records why the audit ended early.
    pub fn fail(&mut self, step: &str, message: String) {
        self.error = Some(Failure {
            step: step.to_string(),
            level: self.levels.last().map(|l| l.connections),
            message,
        });
    }

    /// Closes the report: the end time and the lines.
    pub fn finish(&mut self) {
        self.finished_at_ms = now_ms();
        self.lines = lines(self);
    }
}

impl LevelProcess {
    fn empty(pid: u32, name: &str) -> LevelProcess {
        LevelProcess {
            pid,
            name: name.to_string(),
            before_rss_bytes: None,
            before_pss_bytes: None,
            rss_bytes: None,
            pss_bytes: None,
            kb_per_connection: None,
            pss_kb_per_connection: None,
            marginal_kb_per_connection: None,
            after_message_rss_bytes: None,
            after_message_pss_bytes: None,
            after_message_kb_per_connection: None,
            after_traffic_rss_bytes: None,
            after_traffic_pss_bytes: None,
            after_traffic_kb_per_connection: None,
            after_close_rss_bytes: None,
            after_close_pss_bytes: None,
            returned_percent: None,
        }
    }

    /// RSS at `step`, if it was reached.
    pub fn rss_at(&self, step: Step) -> Option<u64> {
        match step {
            Step::Before => self.before_rss_bytes,
            Step::Idle => self.rss_bytes,
            Step::AfterMessage => self.after_message_rss_bytes,
            Step::AfterTraffic => self.after_traffic_rss_bytes,
            Step::AfterClose => self.after_close_rss_bytes,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Bytes in human units: `256 KiB`, `100 B`, `1.5 MiB`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn opt_kb(kb: Option<f64>) -> String {
    kb.map(|k| format!("{k:.1}")).unwrap_or_else(|| "-".into())
}

fn opt_mb(bytes: Option<u64>) -> String {
    bytes.map(mb).unwrap_or_else(|| "-".into())
}

/// The plain-language lines: per level and process, what each step changed.
pub fn lines(r: &AuditReport) -> Vec<String> {
    let mut out = Vec::new();
    let s = &r.settings;
    for level in &r.levels {
        let n = level.connections;
        for p in &level.processes {
            let who = format!("process {} ({})", p.pid, p.name);
            let mut parts = Vec::new();
            if let (Some(kb), Some(rss), Some(before)) =
                (p.kb_per_connection, p.rss_bytes, p.before_rss_bytes)
            {
                let mut idle = format!(
                    "{n} idle websockets took {who} from {} to {} MB RSS, {kb:.1} KB per connection",
                    mb(before),
                    mb(rss)
                );
                if let Some(m) = p.marginal_kb_per_connection {
                    idle.push_str(&format!(" ({m:.1} KB each beyond the previous level)"));
                }
                parts.push(idle);
            }
            if let Some(kb) = p.after_message_kb_per_connection {
                parts.push(format!(
                    "one {} message on each added {kb:.1} KB per connection",
                    size(s.message_size)
                ));
            }
            if let Some(kb) = p.after_traffic_kb_per_connection {
                parts.push(format!(
                    "{} of traffic on each connection left {kb:.1} KB more per connection",
                    size(s.traffic_bytes)
                ));
            }
            if let Some(close) = p.after_close_rss_bytes {
                parts.push(match p.returned_percent {
                    Some(pct) if pct >= 1.0 => format!(
                        "closing them gave back {pct:.0} % (RSS {} MB after)",
                        mb(close)
                    ),
                    Some(_) => format!(
                        "closing them gave nothing back (RSS {} MB after)",
                        mb(close)
                    ),
                    None => format!(
                        "closed, RSS was {} MB (the level had added too little to weigh what came back)",
                        mb(close)
                    ),
                });
            }
            if !parts.is_empty() {
                out.push(format!("{}.", capitalize(&parts.join("; "))));
            }
        }
        // Machine-wide and noisy: said once, for the largest level that was read.
        let largest_read = r
            .levels
            .iter()
            .rev()
            .find(|l| l.sockstat.idle.is_some())
            .map(|l| l.connections);
        if let (Some(kb), Some(idle), true) = (
            level.sockstat.tcp_mem_kb_per_connection,
            level.sockstat.idle,
            largest_read == Some(n),
        ) {
            out.push(format!(
                "The machine's TCP buffers at {n} idle websockets: {} KB in all, {kb:+.1} KB per connection against before the level (machine-wide: both ends when the server runs here, and every other program's sockets).",
                idle.tcp_mem_bytes / 1000
            ));
        }
        if !level.unsettled.is_empty() {
            let names: Vec<&str> = level.unsettled.iter().map(|s| s.name()).collect();
            out.push(format!(
                "At {n} connections the figures of {} were still moving when read (after {} s).",
                names.join(", "),
                s.settle_max_secs
            ));
        }
    }
    if let Some(probe) = &r.head_probe {
        out.extend(probe.lines());
    }
    if let Some(e) = &r.error {
        out.push(format!(
            "The audit stopped{}: {}",
            e.level
                .map(|l| format!(" at {l} connections ({})", e.step))
                .unwrap_or_default(),
            e.message
        ));
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The table the terminal shows: one row per level and process.
pub fn render_table(r: &AuditReport) -> String {
    let header = [
        "process",
        "conns",
        "RSS before MB",
        "RSS idle MB",
        "PSS idle MB",
        "KB/conn idle",
        "marginal",
        "+KB/conn message",
        "+KB/conn traffic",
        "RSS closed MB",
        "returned",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for level in &r.levels {
        for p in &level.processes {
            rows.push(vec![
                format!("{} {}", p.pid, p.name),
                level.connections.to_string(),
                opt_mb(p.before_rss_bytes),
                opt_mb(p.rss_bytes),
                opt_mb(p.pss_bytes),
                opt_kb(p.kb_per_connection),
                opt_kb(p.marginal_kb_per_connection),
                opt_kb(p.after_message_kb_per_connection),
                opt_kb(p.after_traffic_kb_per_connection),
                opt_mb(p.after_close_rss_bytes),
                p.returned_percent
                    .map(|x| format!("{x:.0} %"))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    let mut out = format!(
        "audit of {}: {} in {} messages after one {} message (KB = 1000 bytes; RSS, PSS from /proc)\n",
        r.target,
        size(r.settings.traffic_bytes),
        crate::fleet::traffic_sizes(
            r.settings.traffic_bytes as usize,
            r.settings.traffic_message_size as usize
        )
        .len(),
        size(r.settings.message_size)
    );
    let mut table = TextTable::figures(&header);
    for row in rows {
        table.row(row);
    }
    out.push_str(&table.render());
    let sock_rows: Vec<Vec<String>> = r
        .levels
        .iter()
        .map(|l| {
            let kb = |s: Option<SockstatFigures>| {
                s.map(|s| (s.tcp_mem_bytes / 1000).to_string())
                    .unwrap_or_else(|| "-".into())
            };
            let s = &l.sockstat;
            vec![
                l.connections.to_string(),
                s.idle
                    .map(|s| s.tcp_inuse.to_string())
                    .unwrap_or_else(|| "-".into()),
                kb(s.before),
                kb(s.idle),
                kb(s.after_message),
                kb(s.after_traffic),
                kb(s.after_close),
            ]
        })
        .collect();
    if !sock_rows.is_empty() {
        out.push_str("\nthe machine's TCP sockets (/proc/net/sockstat: both ends when the server runs here)\n");
        let mut table = TextTable::figures(&[
            "conns",
            "in use idle",
            "buffers KB before",
            "idle",
            "message",
            "traffic",
            "closed",
        ]);
        for row in sock_rows {
            table.row(row);
        }
        out.push_str(&table.render());
    }
    if let Some(probe) = &r.head_probe {
        out.push('\n');
        out.push_str(&probe.table());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rss: &[(u32, u64)], tcp_mem_pages: u64) -> Reading {
        Reading {
            processes: rss
                .iter()
                .map(|(pid, rss)| ProcessFigures {
                    pid: *pid,
                    rss_bytes: *rss,
                    pss_bytes: Some(rss / 2),
                    children: 0,
                })
                .collect(),
            sockstat: Some(Sockstat {
                tcp_inuse: 10,
                tcp_tw: 0,
                tcp_mem_pages,
            }),
        }
    }

    fn settings() -> AuditSettings {
        AuditSettings {
            levels: vec![100, 200],
            rate: 100.0,
            message_size: 100,
            traffic_bytes: 256 << 10,
            traffic_message_size: 16 << 10,
            settle_max_secs: 20.0,
            head_probe_header_bytes: Some(12 << 10),
        }
    }

    #[test]
    fn per_connection_figures_are_differences_of_readings() {
        let w = [Watched {
            pid: 7,
            name: "srv".into(),
        }];
        let mut r = AuditReport::new("ws://x/", settings(), &w);
        r.begin_level(100);
        r.record(Step::Before, &reading(&[(7, 10_000_000)], 100), true);
        r.record(Step::Idle, &reading(&[(7, 14_000_000)], 300), true);
        r.record(Step::AfterMessage, &reading(&[(7, 14_100_000)], 300), true);
        r.record(Step::AfterTraffic, &reading(&[(7, 21_100_000)], 300), false);
        r.record(Step::AfterClose, &reading(&[(7, 10_555_000)], 100), true);
        r.begin_level(200);
        r.record(Step::Before, &reading(&[(7, 10_555_000)], 100), true);
        r.record(Step::Idle, &reading(&[(7, 18_560_000)], 100), true);
        r.fail("after_message", "process 7 (srv) has exited".into());
        r.finish();
        let p = &r.levels[0].processes[0];
        assert_eq!(p.kb_per_connection, Some(40.0));
        assert_eq!(p.pss_kb_per_connection, Some(20.0));
        assert_eq!(p.marginal_kb_per_connection, None);
        assert_eq!(p.after_message_kb_per_connection, Some(1.0));
        assert_eq!(p.after_traffic_kb_per_connection, Some(70.0));
        // 11.1 MB added, 10.545 MB back.
        assert_eq!(p.returned_percent, Some(95.0));
        assert_eq!(r.levels[0].unsettled, vec![Step::AfterTraffic]);
        let page = runtime::procfs::page_size() as f64;
        assert_eq!(
            r.levels[0].sockstat.tcp_mem_kb_per_connection,
            Some((200.0 * page / 100.0 / 1000.0 * 10.0).round() / 10.0)
        );
        let q = &r.levels[1].processes[0];
        assert_eq!(q.kb_per_connection, Some(40.0));
        assert_eq!(q.marginal_kb_per_connection, Some(45.6));
        assert_eq!(q.after_message_rss_bytes, None);
        let e = r.error.as_ref().unwrap();
        assert_eq!((e.step.as_str(), e.level), ("after_message", Some(200)));
        let text = r.lines.join("\n");
        assert!(
            text.contains("256 KiB of traffic on each connection left 70.0 KB more per connection"),
            "{text}"
        );
        assert!(text.contains("closing them gave back 95 %"), "{text}");
        assert!(
            text.contains("The audit stopped at 200 connections"),
            "{text}"
        );
        let table = render_table(&r);
        assert!(table.contains("7 srv"), "{table}");
        // The JSON keeps its documented names, nulls for steps not reached.
        let json = serde_json::to_value(&r).unwrap();
        let l1 = &json["levels"][1]["processes"][0];
        assert_eq!(json["levels"][0]["connections"], 100);
        assert_eq!(l1["rss_bytes"], 18_560_000);
        assert!(l1["after_message_kb_per_connection"].is_null());
        assert!(l1["after_close_rss_bytes"].is_null());
        assert_eq!(json["levels"][0]["unsettled"][0], "after_traffic");
        let back: AuditReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    /// Every field of the JSON is named in docs/reference/audit-json.md.
    #[test]
    fn the_reference_documents_every_field() {
        let readme = include_str!("../../../docs/reference/audit-json.md");
        let start = readme
            .find("| JSON field (`--json`, format 1) |")
            .expect("the table of the audit's JSON");
        let doc = &readme[start..];
        let doc = &doc[..doc.find("\n\n").unwrap_or(doc.len())];
        let w = [Watched {
            pid: 1,
            name: "x".into(),
        }];
        let mut r = AuditReport::new("ws://x/", settings(), &w);
        r.baseline = Some(Figures {
            processes: vec![],
            sockstat: None,
            steady: true,
            settle_ms: 0,
        });
        r.begin_level(10);
        r.record(Step::Before, &reading(&[(1, 1)], 1), true);
        r.head_probe = Some(HeadProbe::new(10, 12 << 10, &w));
        r.fail("idle", "x".into());
        let json = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<String> = Vec::new();
        let mut add = |v: &serde_json::Value| {
            keys.extend(v.as_object().unwrap().keys().cloned());
        };
        add(&json);
        add(&json["settings"]);
        add(&json["processes"][0]);
        add(&json["baseline"]);
        add(&json["levels"][0]);
        add(&json["levels"][0]["sockstat"]);
        add(&json["levels"][0]["sockstat"]["before"]);
        add(&json["error"]);
        add(&json["head_probe"]);
        add(&json["head_probe"]["processes"][0]);
        for key in json["levels"][0]["processes"][0]
            .as_object()
            .unwrap()
            .keys()
        {
            if !key.ends_with("_pss_bytes") || key == "pss_bytes" {
                keys.push(key.clone());
            }
        }
        // Named as `key`, `key[]`, `levels[].key` or `levels[].key[]`.
        let named = |key: &str| {
            doc.match_indices(key).any(|(i, _)| {
                let before = doc[..i].chars().next_back();
                let after = doc[i + key.len()..].chars().next();
                matches!(before, Some('`' | '.')) && matches!(after, Some('`' | '['))
            })
        };
        for key in keys {
            assert!(named(&key), "docs/reference/audit-json.md lacks `{key}`");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(256 << 10), "256 KiB");
        assert_eq!(size(100), "100 B");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(3 << 19), "1.5 MiB");
    }
}
