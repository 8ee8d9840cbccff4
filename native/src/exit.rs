//! How the binaries end: exit codes and the one-line messages that go with them.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::ConfigError;
use crate::shutdown::Shutdown;

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

/// Serves until Ctrl-C or SIGTERM, then stops every task (bounded) and exits 0.
pub async fn run_until_signal(shutdown: &Shutdown) -> ExitCode {
    shutdown.on_signals();
    shutdown.cancelled().await;
    shutdown.finish(Duration::from_secs(5)).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
