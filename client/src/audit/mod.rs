//! `client audit`: what one websocket costs any server on this machine.
//!
//! Pointed at a `ws://` or `wss://` URL and the pids to measure (the server, and a
//! proxy in front of it), the audit runs, for each level of `--levels`, four steps,
//! each read once the figures are steady ([`measure::settle`], bounded):
//!
//! 1. **idle**: opens websockets up to the level at `--rate` per second
//!    (a [`Fleet`]) and reads each process's RSS and PSS and the machine's sockets;
//! 2. **one message**: every websocket sends one `--message-size` message;
//! 3. **traffic**: every websocket sends `--traffic-bytes` more in messages of
//!    `--traffic-message-size`, each read by the server before the next is sent
//!    (a ping after each, its pong awaited): a server that kept a view of an earlier
//!    message into its per-connection read buffer holds that old buffer beside the
//!    new one from here on;
//! 4. **closed**: closes them all and reads what came back.
//!
//! With `--head-probe`, the audit then opens the first level once more with the
//! handshake's small request and once with a large header, and says whether each
//! process keeps its request head ([`probe`]).
//!
//! The results ([`report`]) are a table, plain-language lines, `--json` and
//! `--chart` ([`chart`]). While it runs, the client's snapshot port (8802) carries
//! the audited processes' figures (the snapshot's `audit` section). A process that
//! exits, a target that refuses, a wrong pid or a level the open-file limit cannot
//! hold ends the audit with a clear message, the figures taken so far kept in the
//! JSON, and exit code 1.
//!
//! A socket.io server is audited with socket.io sockets ([`socketio`]: `--socketio`,
//! or a URL whose path is `/socket.io/`).

pub mod chart;
pub mod measure;
pub mod probe;
pub mod report;
pub mod socketio;
pub mod target;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;

use self::measure::{Gone, Settle, Settled, Watched};
use self::report::{AuditReport, AuditSettings, Step};
use self::target::{TargetUrl, Trust, TrustError};
use super::fleet::{traffic_sizes, Dial, Fleet, FleetError, Traffic, UrlError};
use super::progress;
use runtime::config::Config;
use runtime::server::{FileBudget, SPARE_FILES};
use runtime::shutdown::Shutdown;

/// How often the figures are read while waiting for them to be steady.
const SETTLE_EVERY: Duration = Duration::from_millis(250);
/// How long the figures must stay steady before a step reads them.
const SETTLE_WINDOW: Duration = Duration::from_secs(2);
/// The same after closing: allocators give memory back over seconds.
const CLOSE_WINDOW: Duration = Duration::from_secs(3);
/// How often the live figures of the snapshot are read.
const LIVE_EVERY: Duration = Duration::from_secs(1);
/// Websockets that send at once, so the kernel's buffers do not fill with traffic
/// in flight while the figures are read.
const SENDERS: usize = 64;
/// Time one websocket's messages of one step may take, first to last pong.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// What to audit, and how.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The websocket URL (`ws://` or `wss://`).
    pub target: String,
    /// The processes to measure.
    pub pids: Vec<u32>,
    /// Connections of each level, in increasing order.
    pub levels: Vec<u64>,
    /// Websockets opened per second.
    pub rate: f64,
    pub message_size: usize,
    pub traffic_bytes: usize,
    pub traffic_message_size: usize,
    /// Speak socket.io (`--socketio`; also when the URL's path is `/socket.io/`).
    pub socketio: bool,
    /// The server sends every message back: await each echo too (`--echo`).
    pub echo: bool,
    pub trust: Trust,
    /// Show the progress bars (drawn only when stderr is a terminal).
    pub progress: bool,
    pub json: Option<PathBuf>,
    pub chart: Option<PathBuf>,
    /// The longest wait for steady figures before each reading.
    pub settle: Duration,
    /// Run the head probe with a large header of this many bytes ([`probe`]).
    pub head_probe: Option<usize>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            target: String::new(),
            pids: Vec::new(),
            levels: vec![100, 1000, 5000],
            rate: 500.0,
            message_size: 100,
            traffic_bytes: 256 << 10,
            traffic_message_size: 16 << 10,
            socketio: false,
            echo: false,
            trust: Trust::default(),
            progress: true,
            json: None,
            chart: None,
            settle: Duration::from_secs(20),
            head_probe: None,
        }
    }
}

/// Why the options of an audit cannot work.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Target(#[from] UrlError),
    #[error("give at least one --pid: the server's process (and its proxy's)")]
    NoPid,
    #[error("--levels must be connection counts above 0, e.g. 100,1000,5000")]
    NoLevels,
    #[error("--levels must increase: {0:?}")]
    LevelsOrder(Vec<u64>),
    #[error("--rate must be above 0, got {0}")]
    Rate(f64),
    #[error("--traffic-message-size must be at least 1")]
    TrafficMessageSize,
    #[error(
        "--probe-header-bytes must be from {min} to {max}, got {0}",
        min = probe::MIN_HEADER_BYTES,
        max = probe::MAX_HEADER_BYTES
    )]
    ProbeHeader(usize),
    #[error(
        "--chart {}: the chart is an SVG file (name it .svg; any browser opens it, \
         and `rsvg-convert -o chart.png chart.svg` makes a PNG)",
        .0.display()
    )]
    ChartNotSvg(PathBuf),
    #[error("{}: the folder {} does not exist", path.display(), dir.display())]
    NoFolder { path: PathBuf, dir: PathBuf },
    /// `--ca` or the TLS library's defaults.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// Why an audit could not start, or ended early.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The options cannot work (exit code 2); nothing was measured.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The audit ended early (exit code 1): what and where; the figures taken so
    /// far are in the report (and its JSON, when asked).
    #[error("{message}")]
    Failed {
        message: String,
        report: Box<AuditReport>,
    },
    /// The client's own snapshot endpoint could not listen.
    #[error(
        "{source} (the client's own snapshot at {addr}: set client_heapdump_port to a free port, or 0)"
    )]
    Snapshot {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl AuditError {
    /// Whether the options were at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, AuditError::Usage(_))
    }
}

/// Checks the options that need no process or socket.
pub fn check(options: &AuditOptions) -> Result<TargetUrl, UsageError> {
    let target = TargetUrl::parse(&options.target)?;
    if options.pids.is_empty() {
        return Err(UsageError::NoPid);
    }
    if options.levels.is_empty() || options.levels.contains(&0) {
        return Err(UsageError::NoLevels);
    }
    if options.levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err(UsageError::LevelsOrder(options.levels.clone()));
    }
    if !(options.rate > 0.0 && options.rate.is_finite()) {
        return Err(UsageError::Rate(options.rate));
    }
    if options.traffic_message_size == 0 {
        return Err(UsageError::TrafficMessageSize);
    }
    if let Some(bytes) = options.head_probe {
        if !(probe::MIN_HEADER_BYTES..=probe::MAX_HEADER_BYTES).contains(&bytes) {
            return Err(UsageError::ProbeHeader(bytes));
        }
    }
    if let Some(chart) = &options.chart {
        if chart.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(UsageError::ChartNotSvg(chart.clone()));
        }
    }
    for path in options.json.iter().chain(&options.chart) {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(UsageError::NoFolder {
                    path: path.clone(),
                    dir: dir.to_path_buf(),
                });
            }
        }
    }
    Ok(target)
}

/// What the live snapshot section shows of the audit's progress.
#[derive(Default)]
struct LiveStatus {
    step: Mutex<&'static str>,
    level: AtomicU64,
    open: AtomicU64,
}

impl LiveStatus {
    /// The report's name of the step in progress.
    fn report_step(&self) -> &'static str {
        match *self.step.lock().unwrap_or_else(|p| p.into_inner()) {
            "idle" => Step::Idle.name(),
            "one message" => Step::AfterMessage.name(),
            "traffic" => Step::AfterTraffic.name(),
            "closed" => Step::AfterClose.name(),
            s @ ("head_probe_small" | "head_probe_large" | "head_probe_small_again") => s,
            _ => Step::Before.name(),
        }
    }

    fn set(&self, step: &'static str, level: u64) {
        *self.step.lock().unwrap_or_else(|p| p.into_inner()) = step;
        self.level.store(level, Ordering::Relaxed);
    }
}

/// Runs the audit until its end, a failure, or `shutdown`; prints the table and
/// the lines, and writes `--json` and `--chart` (also after a failure).
pub async fn run(
    config: Config,
    options: AuditOptions,
    shutdown: Shutdown,
) -> Result<AuditReport, AuditError> {
    let target = socketio::target(&options, check(&options)?);
    let settings = AuditSettings {
        levels: options.levels.clone(),
        rate: options.rate,
        message_size: options.message_size as u64,
        traffic_bytes: options.traffic_bytes as u64,
        traffic_message_size: options.traffic_message_size as u64,
        settle_max_secs: options.settle.as_secs_f64(),
        head_probe_header_bytes: options.head_probe.map(|b| b as u64),
    };

    // The processes, checked before anything else happens.
    let mut watched = Vec::new();
    let mut bad = Vec::new();
    for pid in &options.pids {
        match measure::watch(*pid) {
            Ok(w) => watched.push(w),
            Err(e) => bad.push(e.to_string()),
        }
    }
    if !bad.is_empty() {
        let mut report = AuditReport::new(&options.target, settings, &watched);
        report.fail("start", bad.join("; "));
        let (report, problems) = finish(report, &options);
        return Err(AuditError::Failed {
            message: problems.join("; "),
            report: Box::new(report),
        });
    }

    let tls = if target.tls {
        Some(target::tls_config(&options.trust).map_err(UsageError::from)?)
    } else {
        None
    };
    if let Err(e) = runtime::server::raise_open_file_limit() {
        tracing::warn!("{e}");
    }

    // The client's own snapshot, with the live audit section.
    let (own, inner, snapshot_addr) = super::serve_own_snapshot(&config, &shutdown)
        .await
        .map_err(|(addr, source)| AuditError::Snapshot { addr, source })?;
    let names: Vec<String> = watched.iter().map(Watched::label).collect();
    tracing::info!(
        "audit of {} measuring {}: levels {:?} at {}/s; snapshot at http://{snapshot_addr}/snapshot",
        target.url,
        names.join(", "),
        options.levels,
        options.rate
    );
    let live = Arc::new(LiveStatus::default());
    live.set("settling", 0);
    let sampler = tokio::spawn(sample_live(
        own.audit.clone(),
        target.url.clone(),
        watched.clone(),
        live.clone(),
    ));

    let mut report = AuditReport::new(&options.target, settings, &watched);
    let dial = socketio::dial(
        &options,
        Dial::new(
            target,
            tls,
            options.message_size.max(options.traffic_message_size),
        ),
    );
    let mut fleet = socketio::fleet(&options, dial.clone());
    let outcome = tokio::select! {
        r = audit(&options, &dial, &watched, &mut report, &mut fleet, &live) => r,
        _ = shutdown.cancelled() => Err(StepError {
            step: live.report_step(),
            failure: StepFailure::Interrupted,
        }),
    };
    live.set(if outcome.is_ok() { "done" } else { "failed" }, 0);
    let _ = tokio::time::timeout(Duration::from_secs(20), fleet.close_all(|_| {})).await;
    fleet.shutdown().await;
    sampler.abort();
    inner.trigger();
    inner.finish(Duration::from_secs(2)).await;

    if let Err(StepError { step, failure }) = outcome {
        report.fail(step, failure.to_string());
        // The probe runs at the first level, after the last.
        if let (Some(e), Some(p)) = (report.error.as_mut(), &report.head_probe) {
            if step.starts_with("head_probe") {
                e.level = Some(p.connections);
            }
        }
    }
    let (report, problems) = finish(report, &options);
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(AuditError::Failed {
            message: problems.join("; "),
            report: Box::new(report),
        })
    }
}

/// Closes the report, prints it and writes its files; the problems: the audit's
/// own error, if any, and files that could not be written.
fn finish(mut report: AuditReport, options: &AuditOptions) -> (AuditReport, Vec<String>) {
    report.finish();
    progress::println(&report::render_table(&report));
    for line in &report.lines {
        progress::println(line);
    }
    let mut problems: Vec<String> = report.error.iter().map(|e| e.message.clone()).collect();
    if let Some(path) = &options.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::from)
            .and_then(|json| write_file(path, &json));
        wrote(path, written, &mut problems);
    }
    if let Some(path) = &options.chart {
        wrote(
            path,
            write_file(path, chart::svg(&report).as_bytes()),
            &mut problems,
        );
    }
    (report, problems)
}

/// A file of the audit (`--json`, `--chart`) could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
struct WriteError {
    path: PathBuf,
    source: std::io::Error,
}

/// Says that `path` was written, or notes why not among `problems`.
fn wrote(path: &Path, written: std::io::Result<()>, problems: &mut Vec<String>) {
    match written {
        Ok(()) => progress::println(&format!("audit: wrote {}", path.display())),
        Err(source) => problems.push(
            WriteError {
                path: path.to_path_buf(),
                source,
            }
            .to_string(),
        ),
    }
}

/// Writes to a temporary file beside `path`, then renames it into place.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audit".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reads the processes every [`LIVE_EVERY`] into the client's snapshot.
async fn sample_live(
    slot: Arc<Mutex<Option<snapshot::Audit>>>,
    target: String,
    watched: Vec<Watched>,
    live: Arc<LiveStatus>,
) {
    loop {
        let processes = measure::read(&watched).ok();
        let audit = snapshot::Audit {
            target: target.clone(),
            step: live.step.lock().map(|s| s.to_string()).unwrap_or_default(),
            level: live.level.load(Ordering::Relaxed),
            connections_open: live.open.load(Ordering::Relaxed),
            processes: watched
                .iter()
                .map(|w| {
                    let f = processes.as_ref().and_then(|r| r.of(w.pid));
                    snapshot::AuditProcess {
                        pid: w.pid,
                        name: w.name.clone(),
                        rss_bytes: f.map(|f| f.rss_bytes).unwrap_or(0),
                        pss_bytes: f.and_then(|f| f.pss_bytes),
                    }
                })
                .collect(),
            tcp_mem_bytes: processes
                .as_ref()
                .and_then(|r| r.sockstat.map(|s| s.tcp_mem_bytes())),
            read_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(audit);
        }
        tokio::time::sleep(LIVE_EVERY).await;
    }
}

/// Why a step of the audit failed.
#[derive(Debug, thiserror::Error)]
enum StepFailure {
    /// The fleet could not open, send or close.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// An audited process has gone.
    #[error(transparent)]
    Gone(#[from] Gone),
    /// The level needs more descriptors than this process may open.
    #[error(transparent)]
    OpenFiles(#[from] OpenFilesError),
    #[error("interrupted (Ctrl-C or SIGTERM)")]
    Interrupted,
    /// The head probe's large requests could not open websockets.
    #[error(
        "{failure} (each request carried a {} Cookie header: if the server refuses \
         it, lower --probe-header-bytes or raise the server's header limit)",
        report::size(*header_bytes as u64)
    )]
    ProbeHeader {
        header_bytes: usize,
        failure: Box<StepFailure>,
    },
    /// An audited process went meanwhile: the cause of what the websockets met.
    #[error("{gone} ({failure})")]
    GoneMeanwhile {
        gone: Gone,
        failure: Box<StepFailure>,
    },
}

impl StepFailure {
    /// Whether this says that `gone` has gone already.
    fn names(&self, gone: &Gone) -> bool {
        match self {
            StepFailure::Gone(g) | StepFailure::GoneMeanwhile { gone: g, .. } => g == gone,
            StepFailure::Fleet(FleetError::Check(e)) => {
                e.downcast_ref::<Gone>().is_some_and(|g| g == gone)
            }
            _ => false,
        }
    }
}

/// The step that failed (its name in the report), and why.
#[derive(Debug)]
struct StepError {
    step: &'static str,
    failure: StepFailure,
}

/// Every level's four steps, recorded into `report` as they are read.
async fn audit(
    options: &AuditOptions,
    dial: &Dial,
    watched: &[Watched],
    report: &mut AuditReport,
    fleet: &mut Fleet,
    live: &LiveStatus,
) -> Result<(), StepError> {
    let settle = |window| Settle {
        every: SETTLE_EVERY,
        window,
        bound: options.settle,
    };
    let show = options.progress;
    let before_err = |gone: Gone| StepError {
        step: Step::Before.name(),
        failure: gone.into(),
    };
    let baseline = settled(
        watched,
        settle(SETTLE_WINDOW),
        spinner("settling before", show),
    )
    .await
    .map_err(before_err)?;
    report.baseline = Some(figures(&baseline));
    let mut before = baseline;
    let traffic = traffic_sizes(options.traffic_bytes, options.traffic_message_size);
    for &level in &options.levels {
        report.begin_level(level);
        report.record(Step::Before, &before.reading, before.steady);
        check_open_files(level).map_err(|e| step_error(watched, Step::Idle.name(), e))?;
        let alive = || measure::alive(watched);

        // 1. Idle.
        let err = |e: StepFailure| step_error(watched, Step::Idle.name(), e);
        live.set("idle", level);
        let bar = progress::step_bar(&format!("{level}: opening"), level, show);
        fleet
            .open_to(level, options.rate, level / 100 + 2, alive, |n| {
                bar.set_position(n);
                live.open.store(n, Ordering::Relaxed);
            })
            .await
            .map_err(|e| err(e.into()))?;
        let idle = settled(watched, settle(SETTLE_WINDOW), bar)
            .await
            .map_err(|e| err(e.into()))?;
        step_done(report, Step::Idle, &idle, level);

        // 2. One message each.
        let err = |e: StepFailure| step_error(watched, Step::AfterMessage.name(), e);
        live.set("one message", level);
        let bar = progress::step_bar(&format!("{level}: one message each"), level, show);
        fleet
            .send(sends(vec![options.message_size]), alive, |n| {
                bar.set_position(n)
            })
            .await
            .map_err(|e| err(e.into()))?;
        let after_message = settled(watched, settle(SETTLE_WINDOW), bar)
            .await
            .map_err(|e| err(e.into()))?;
        step_done(report, Step::AfterMessage, &after_message, level);

        // 3. Traffic on each.
        let err = |e: StepFailure| step_error(watched, Step::AfterTraffic.name(), e);
        live.set("traffic", level);
        let bar = progress::step_bar(&format!("{level}: traffic"), level, show);
        fleet
            .send(sends(traffic.clone()), alive, |n| bar.set_position(n))
            .await
            .map_err(|e| err(e.into()))?;
        let after_traffic = settled(watched, settle(SETTLE_WINDOW), bar)
            .await
            .map_err(|e| err(e.into()))?;
        step_done(report, Step::AfterTraffic, &after_traffic, level);

        // 4. Closed.
        let err = |e: StepFailure| step_error(watched, Step::AfterClose.name(), e);
        live.set("closed", level);
        let bar = progress::step_bar(&format!("{level}: closing"), level, show);
        fleet
            .close_all(|n| {
                bar.set_position(n);
                live.open.store(level - n.min(level), Ordering::Relaxed);
            })
            .await
            .map_err(|e| err(e.into()))?;
        let closed = settled(watched, settle(CLOSE_WINDOW), bar)
            .await
            .map_err(|e| err(e.into()))?;
        step_done(report, Step::AfterClose, &closed, level);
        before = closed;
    }

    // The head probe, at the first level.
    if let (Some(header_bytes), Some(&connections)) = (options.head_probe, options.levels.first()) {
        let probe = probe::Probe {
            connections,
            header_bytes,
            rate: options.rate,
            dial,
            watched,
            show,
            settle: options.settle,
        };
        probe::run(probe, &before, fleet, report, live).await?;
    }
    Ok(())
}

/// What every websocket sends in a step: messages of `sizes`, [`SENDERS`] at once,
/// each websocket's within [`SEND_TIMEOUT`].
fn sends(sizes: Vec<usize>) -> Traffic {
    Traffic {
        sizes,
        senders: SENDERS,
        timeout: SEND_TIMEOUT,
    }
}

/// The error of `step`: when an audited process has gone, that is what it says
/// first (the websockets' errors are its consequence).
fn step_error(
    watched: &[Watched],
    step: &'static str,
    failure: impl Into<StepFailure>,
) -> StepError {
    let failure = failure.into();
    let failure = match measure::alive(watched) {
        Err(gone) if !failure.names(&gone) => StepFailure::GoneMeanwhile {
            gone,
            failure: Box::new(failure),
        },
        _ => failure,
    };
    StepError { step, failure }
}

/// A spinner while the figures settle before the first level.
fn spinner(what: &str, show: bool) -> ProgressBar {
    progress::step_bar(what, 0, show)
}

/// Waits for steady figures, showing the RSS on `bar`; an exited process is the error.
async fn settled(watched: &[Watched], settle: Settle, bar: ProgressBar) -> Result<Settled, Gone> {
    bar.set_message("settling");
    let r = measure::settle(watched, settle, |reading, waited| {
        let rss: Vec<String> = reading
            .processes
            .iter()
            .map(|p| format!("{} {:.1} MB", p.pid, p.rss_bytes as f64 / 1e6))
            .collect();
        bar.set_message(format!(
            "settling {:.0} s: {}",
            waited.as_secs_f64(),
            rss.join(", ")
        ));
    })
    .await;
    bar.finish_and_clear();
    r
}

fn figures(s: &Settled) -> report::Figures {
    report::Figures {
        processes: s.reading.processes.iter().map(Into::into).collect(),
        sockstat: s.reading.sockstat.as_ref().map(Into::into),
        steady: s.steady,
        settle_ms: s.waited.as_millis() as u64,
    }
}

/// Records a step and logs what it read.
fn step_done(report: &mut AuditReport, step: Step, s: &Settled, level: u64) {
    report.record(step, &s.reading, s.steady);
    let Some(l) = report.levels.last() else {
        return;
    };
    let parts: Vec<String> = l
        .processes
        .iter()
        .map(|p| {
            let per = match step {
                Step::Idle => p.kb_per_connection,
                Step::AfterMessage => p.after_message_kb_per_connection,
                Step::AfterTraffic => p.after_traffic_kb_per_connection,
                _ => None,
            };
            let rss = p.rss_at(step).unwrap_or(0) as f64 / 1e6;
            match (per, p.returned_percent) {
                (Some(kb), _) => format!(
                    "{} {} {rss:.1} MB ({kb:+.1} KB per connection)",
                    p.pid, p.name
                ),
                (None, Some(pct)) if step == Step::AfterClose => {
                    format!("{} {} {rss:.1} MB ({pct:.0} % given back)", p.pid, p.name)
                }
                _ => format!("{} {} {rss:.1} MB", p.pid, p.name),
            }
        })
        .collect();
    tracing::info!(
        "audit: {level} connections, {}: {}{}",
        step.doing(),
        parts.join(", "),
        if s.steady {
            String::new()
        } else {
            format!(" (still moving after {:.0} s)", s.waited.as_secs_f64())
        }
    );
}

/// Why a level cannot be opened: the open-file limit.
#[derive(Debug, thiserror::Error)]
enum OpenFilesError {
    #[error(transparent)]
    Limit(#[from] runtime::server::OpenFilesError),
    #[error(
        "{level} websockets need {need} open files (one each and {SPARE_FILES} spare), \
         but this process may open {soft} (hard limit {hard}): lower --levels, or raise \
         the limit (ulimit -n)"
    )]
    TooFew {
        level: u64,
        need: u64,
        soft: u64,
        hard: u64,
    },
}

/// Whether this process may open `level` websockets (and some spare descriptors).
fn check_open_files(level: u64) -> Result<(), OpenFilesError> {
    let FileBudget { soft, hard, fit } = FileBudget::now(1)?;
    if level > fit {
        return Err(OpenFilesError::TooFew {
            level,
            need: level + SPARE_FILES,
            soft,
            hard,
        });
    }
    Ok(())
}
