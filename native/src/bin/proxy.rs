//! `proxy`: the playground's TLS websocket reverse proxy. See README.md and docs/.

use clap::Parser;
use runtime::config::ConfigArgs;

/// The playground's TLS websocket proxy in front of the wss.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    native::exit::serve(Cli::parse().config, |config, shutdown| async move {
        native::proxy::start(&config, &shutdown).await.map(drop)
    })
    .await
}
