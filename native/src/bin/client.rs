//! `cargo run -p native --bin client`: the headless load client (see [`native::client`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use native::client::{progress::LogWriter, Backoff, ClientOptions};
use native::config::ConfigArgs;
use native::shutdown::Shutdown;

/// Opens websockets through the proxy at the configured rate and keeps them open,
/// plus one data connection that keeps filling the servers' slabs.
#[derive(Parser, Debug)]
#[command(name = "client", version)]
struct Cli {
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
    native::logging::init_with(LogWriter);
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
    };
    match native::client::run(config, options, shutdown.clone()).await {
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
