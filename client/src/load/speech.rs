//! What the run's websockets speak: socket.io when the wss runs the socketio stack,
//! as its snapshot says (`settings.stack`, fetched from `wss_heapdump_port` as the
//! report fetches it), plain websocket messages otherwise, and when the snapshot
//! cannot be fetched.

use runtime::config::Config;
use snapshot::Stack;

use crate::report::snapshot_addrs;

/// Whether the wss of `config` runs the socketio stack, from its snapshot; false
/// (plain websockets) when the snapshot cannot be fetched, with a line saying so.
pub async fn wss_speaks_socketio(config: &Config) -> bool {
    let (_, wss) = snapshot_addrs(config);
    match crate::fetch::fetch(wss).await {
        Ok(snapshot) => snapshot.settings.stack == Some(Stack::Socketio),
        Err(e) => {
            tracing::info!(
                "the wss's snapshot cannot tell its stack ({e}): speaking plain websocket \
                 (--socketio to speak socket.io)"
            );
            false
        }
    }
}
