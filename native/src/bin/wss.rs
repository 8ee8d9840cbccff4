//! `wss`: the playground's websocket server. See README.md.

use clap::Parser;
use native::config::ConfigArgs;

/// The playground's websocket server: every socket read is carved from a slab pool.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    native::logging::init();
    let config = match Cli::parse().config.load() {
        Ok(config) => config,
        Err(e) => return native::exit::config_error(&e),
    };
    let shutdown = native::shutdown::Shutdown::new();
    if let Err(e) = native::wss::start(&config, &shutdown).await {
        return native::exit::failed(&e);
    }
    native::exit::run_until_signal(&shutdown).await
}
