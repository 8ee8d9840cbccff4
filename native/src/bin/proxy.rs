//! `proxy`: the playground's TLS websocket reverse proxy. See README.md.

use clap::Parser;
use native::config::ConfigArgs;

/// The playground's TLS websocket proxy in front of the wss.
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
    if let Err(e) = native::proxy::start(&config, &shutdown).await {
        return native::exit::failed(&e);
    }
    native::exit::run_until_signal(&shutdown).await
}
