//! `wss`: the playground's websocket server. See README.md and docs/.

use clap::Parser;
use runtime::config::ConfigArgs;

/// The playground's websocket server: every socket read is carved from a slab pool.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    native::exit::serve(Cli::parse().config, |config, shutdown| async move {
        native::wss::start(&config, &shutdown).await.map(drop)
    })
    .await
}
