//! How the binaries end: exit codes and the one-line messages that go with them.

use std::process::ExitCode;
use std::time::Duration;

use std::future::Future;

use runtime::config::{Config, ConfigArgs, ConfigError};
use runtime::shutdown::Shutdown;

/// Exit code for a config that cannot be used.
pub const CONFIG_ERROR: u8 = 2;

/// Prints a config error and returns exit code 2.
pub fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(CONFIG_ERROR)
}

/// Prints a fatal error and returns exit code 1.
pub fn failed(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

/// Serves until shutdown (Ctrl-C or SIGTERM with [`Shutdown::on_signals`]), then
/// stops every task (bounded) and exits 0.
pub async fn run_until_signal(shutdown: &Shutdown) -> ExitCode {
    shutdown.cancelled().await;
    shutdown.finish(Duration::from_secs(5)).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The whole life of a server binary: load the config (exit 2 when it is broken),
/// start the server (exit 1 when it cannot), serve until Ctrl-C or SIGTERM (exit 0).
pub async fn serve<F, Fut, E>(args: ConfigArgs, start: F) -> ExitCode
where
    F: FnOnce(Config, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    runtime::logging::init();
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    if !config.alloc_registry {
        allocator::registry::disable();
    }
    let shutdown = Shutdown::new();
    // Before the server starts, so that a Ctrl-C right after its startup line is caught.
    shutdown.on_signals();
    if let Err(e) = start(config, shutdown.clone()).await {
        return failed(&e);
    }
    run_until_signal(&shutdown).await
}
