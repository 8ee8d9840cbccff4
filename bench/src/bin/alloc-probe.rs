//! `alloc-probe`: our proxy or wss running in this process, answering `dump` on stdin
//! with one JSON line on stdout: jemalloc's live allocations by size class, its
//! allocated and resident bytes, and the RSS (see [`bench::probe`]). The first line it
//! prints says it is ready, with `size_of` the types a connection is made of.
//! `scripts/bench` runs it with `_RJEM_MALLOC_CONF=tcache:false`.
//!
//! Usage: alloc-probe --role proxy|wss [--KEY VALUE ...]   (config.json keys)

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use runtime::config::ConfigArgs;
use runtime::shutdown::Shutdown;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Proxy,
    Wss,
}

/// Our proxy or wss, with its allocations by size class on demand.
#[derive(Parser, Debug)]
#[command(name = "alloc-probe", version)]
struct Cli {
    #[arg(long, value_enum)]
    role: Role,
    #[command(flatten)]
    config: ConfigArgs,
}

fn type_sizes() -> BTreeMap<&'static str, usize> {
    use std::mem::size_of;
    use tokio::net::TcpStream;
    BTreeMap::from([
        (
            "rustls::ServerConnection",
            size_of::<rustls::ServerConnection>(),
        ),
        (
            "tokio_rustls::server::TlsStream<TcpStream>",
            size_of::<tokio_rustls::server::TlsStream<TcpStream>>(),
        ),
        ("tokio::net::TcpStream", size_of::<TcpStream>()),
        (
            "tokio_tungstenite::WebSocketStream<TcpStream>",
            size_of::<tokio_tungstenite::WebSocketStream<TcpStream>>(),
        ),
        ("pools::SlabView", size_of::<pools::SlabView>()),
    ])
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::logging::init();
    let config = match cli.config.load() {
        Ok(config) => config,
        Err(e) => return native::exit::config_error(&e),
    };
    let shutdown = Shutdown::new();
    let started = match cli.role {
        Role::Proxy => native::proxy::start(&config, &shutdown)
            .await
            .map_err(|e| e.to_string()),
        Role::Wss => native::wss::start(&config, &shutdown)
            .await
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = started {
        eprintln!("error: alloc-probe: {e}");
        return ExitCode::FAILURE;
    }
    let ready = serde_json::json!({
        "ready": true,
        "tcache": bench::probe::tcache_enabled(),
        "type_sizes": type_sizes(),
    });
    println!("{ready}");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "dump" => {
                let h = bench::probe::histogram();
                println!("{}", serde_json::to_string(&h).expect("serializable"));
            }
            "quit" => break,
            other => eprintln!("alloc-probe: unknown command {other:?} (dump, quit)"),
        }
    }
    shutdown.trigger();
    shutdown.finish(std::time::Duration::from_secs(2)).await;
    ExitCode::SUCCESS
}
