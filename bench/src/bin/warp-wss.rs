//! `warp-wss`: the websocket server a Rust user would write first, as a peer of ours:
//! warp's own `warp::ws()` filter (hyper's upgrade, tokio-tungstenite with its default
//! buffers). Reads config.json like our programs (`wss_port`, `wss_echo`, `bind`;
//! every key is a flag). It greets each connection, then echoes (with `wss_echo`) or
//! discards what it receives. No snapshot endpoint: the bench reads its RSS from /proc.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use runtime::config::ConfigArgs;
use warp::ws::{Message, WebSocket, Ws};
use warp::Filter;

/// warp::ws as a websocket server, reading config.json.
#[derive(Parser, Debug)]
#[command(name = "warp-wss", version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::logging::init();
    let config = match cli.config.load() {
        Ok(config) => config,
        Err(e) => return native::exit::config_error(&e),
    };
    let echo = config.wss_echo;
    let accepted = Arc::new(AtomicU64::new(0));
    let route = warp::path::end().and(warp::ws()).map(move |ws: Ws| {
        let id = accepted.fetch_add(1, Ordering::Relaxed) + 1;
        ws.on_upgrade(move |socket| serve(socket, id, echo))
    });
    let addr = SocketAddr::new(config.bind, config.wss_port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: warp-wss: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("warp-wss listening on ws://{addr} (echo {echo})");
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    // Ends at once on Ctrl-C or SIGTERM: idle websockets would keep a graceful end waiting.
    tokio::select! {
        _ = warp::serve(route).incoming(listener).run() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    ExitCode::SUCCESS
}

/// One websocket: the greeting, then echo or discard until it closes.
async fn serve(socket: WebSocket, id: u64, echo: bool) {
    let (mut tx, mut rx) = socket.split();
    let hello = format!("hello from warp wss, connection {id}");
    if tx.send(Message::text(hello)).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = rx.next().await {
        if echo && (message.is_binary() || message.is_text()) && tx.send(message).await.is_err() {
            return;
        }
    }
}
