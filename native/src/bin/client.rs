//! `cargo run -p native --bin client`: the headless load client (see [`client`]),
//! and `client audit`: what websockets cost any server on this machine
//! (see [`client::audit`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use client::audit::{target::Trust, AuditOptions};
use client::{progress::LogWriter, Backoff, ClientOptions};
use runtime::config::ConfigArgs;
use runtime::shutdown::Shutdown;

/// Opens websockets through the proxy at the configured rate and keeps them open,
/// plus one data connection that keeps filling the servers' slabs.
#[derive(Parser, Debug)]
#[command(name = "client", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// At the end, fetch both servers' snapshots and print a report table.
    #[arg(long)]
    report: bool,
    /// Do not show the ramp-up progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Reopen a pinning or data connection when it is lost, with a jittered
    /// exponential backoff (250 ms doubling up to 10 s), for as long as the run
    /// lasts; reconnects are counted in the stats line and the summary. Without it
    /// a lost connection stays closed, and losing every open connection (the proxy
    /// gone, or the wss behind it) ends the run with one error line and exit code 1
    /// (after the report, with --report).
    #[arg(long)]
    reconnect: bool,
    /// At the end, save both servers' snapshots to this folder as
    /// <role>-snapshot-<ms>.json (written to a temporary file, then renamed).
    #[arg(long, value_name = "DIR")]
    save_snapshots: Option<PathBuf>,
    /// Speak socket.io through the proxy (engine.io v4 at /socket.io/: the
    /// namespace's connect, pings answered, traffic as `message` events). Without
    /// it the client speaks socket.io when the wss's snapshot says it runs the
    /// socketio stack.
    #[arg(long)]
    socketio: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure what websockets cost any server on this machine: for each level,
    /// open that many websockets (idle), send one message on each, then traffic on
    /// each, then close them, reading each --pid's RSS and PSS and the machine's
    /// socket memory once steady after every step. Prints a table and what the
    /// figures show; exit code 1 if the audit could not go to its end.
    Audit(AuditArgs),
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// The server's websocket URL: ws://HOST:PORT/PATH or wss://...
    #[arg(long, value_name = "URL")]
    target: String,
    /// A process to measure (with its children): the server, and a proxy in front
    /// of it if there is one. Repeat for each.
    #[arg(long = "pid", value_name = "PID", required = true)]
    pids: Vec<u32>,
    /// Connection counts to measure, increasing.
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        default_value = "100,1000,5000"
    )]
    levels: Vec<u64>,
    /// Websockets opened per second.
    #[arg(long, value_name = "PER_SEC", default_value_t = 500.0)]
    rate: f64,
    /// Bytes of the one message each websocket sends (step 2).
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    message_size: usize,
    /// Bytes each websocket then sends (step 3), in messages of --traffic-message-size.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 10)]
    traffic_bytes: usize,
    /// Size of the messages of the traffic, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 10)]
    traffic_message_size: usize,
    /// Accept any certificate of a wss:// target (a self-signed one).
    #[arg(long)]
    insecure: bool,
    /// Trust the certificates of this PEM file too (beside the system's).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The longest wait for steady figures before each reading.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_secs)]
    settle: Duration,
    /// Write the figures as JSON (fields in docs/reference/audit-json.md).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw RSS against connections, per process and step, as an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Do not show the progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Speak socket.io (engine.io v4 over a websocket: the namespace's connect,
    /// pings answered, the message and the traffic as `message` events); the
    /// URL's path defaults to /socket.io/?EIO=4&transport=websocket. Implied by a
    /// URL whose path starts with /socket.io/.
    #[arg(long)]
    socketio: bool,
    /// The server sends every message back (socket.io: every `message` event):
    /// wait for each echo as well as the pong before the next message.
    #[arg(long)]
    echo: bool,
    /// After the levels, probe for kept request heads: open the first level once
    /// with the handshake's small request and once with a large Cookie header, and
    /// say whether each process holds the difference (see docs/guide/audit.md).
    #[arg(long)]
    head_probe: bool,
    /// Bytes of the head probe's Cookie header; the server's header limit must
    /// allow it (nginx's default: 8 KiB a header line).
    #[arg(long, value_name = "BYTES", default_value_t = client::audit::probe::DEFAULT_HEADER_BYTES)]
    probe_header_bytes: usize,
    #[command(flatten)]
    config: ConfigArgs,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|n| *n > 0.0)
        .and_then(|n| Duration::try_from_secs_f64(n).ok())
        .ok_or_else(|| format!("expected a number of seconds above 0, got {s:?}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::logging::init_with(LogWriter);
    if let Some(Command::Audit(args)) = cli.command {
        return audit(args).await;
    }
    let config = match cli.config.load() {
        Ok(config) => config,
        Err(e) => return native::exit::config_error(&e),
    };
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    // A second Ctrl-C while the report is fetched or sockets close ends at once.
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("second Ctrl-C: exiting now");
                std::process::exit(130);
            }
        });
    }
    let options = ClientOptions {
        duration: cli.duration,
        report: cli.report,
        progress: !cli.no_progress,
        reconnect: cli.reconnect.then(Backoff::default),
        save_snapshots: cli.save_snapshots,
        socketio: cli.socketio,
    };
    match client::run(config, options, shutdown.clone()).await {
        Ok(_) => {
            shutdown.finish(Duration::from_secs(5)).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            shutdown.finish(Duration::from_secs(2)).await;
            if e.is_config() {
                eprintln!("error: {e}");
                ExitCode::from(native::exit::CONFIG_ERROR)
            } else {
                native::exit::failed(&e)
            }
        }
    }
}

/// `client audit`: exit 0 when it went to its end, 1 when it stopped early (the
/// figures taken so far printed and written), 2 for options that cannot work.
async fn audit(args: AuditArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(config) => config,
        Err(e) => return native::exit::config_error(&e),
    };
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let options = AuditOptions {
        target: args.target,
        pids: args.pids,
        levels: args.levels,
        rate: args.rate,
        message_size: args.message_size,
        traffic_bytes: args.traffic_bytes,
        traffic_message_size: args.traffic_message_size,
        socketio: args.socketio,
        echo: args.echo,
        trust: Trust {
            insecure: args.insecure,
            ca: args.ca,
        },
        progress: !args.no_progress,
        json: args.json,
        chart: args.chart,
        settle: args.settle,
        head_probe: args.head_probe.then_some(args.probe_header_bytes),
    };
    match client::audit::run(config, options, shutdown.clone()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_usage() {
                ExitCode::from(native::exit::CONFIG_ERROR)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
