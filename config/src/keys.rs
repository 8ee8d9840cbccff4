//! The key table: every key config.json may hold, what it means, and its default
//! as `--help` and docs/reference/config.md show it, computed from [`Config::default`].

use serde_json::Value;

use crate::Config;

/// Every key config.json may hold (nested keys as `outer.inner`), with what it means.
/// `--help` shows each with its default from [`help_texts`]; docs/reference/config.md's table is
/// tested against it.
pub const KEYS: &[(&str, &str)] = &[
    ("proxy_port", "TLS proxy port"),
    ("proxy_heapdump_port", "proxy snapshot port"),
    (
        "proxy_target.host",
        "host the proxy forwards to",
    ),
    ("proxy_target.port", "port the proxy forwards to"),
    ("wss_port", "websocket server port"),
    ("wss_heapdump_port", "wss snapshot port"),
    ("client_heapdump_port", "client snapshot port"),
    (
        "client_dataSize",
        "bytes the data connection sends each time",
    ),
    (
        "client_dataDelay",
        "ms between two sends of the data connection",
    ),
    (
        "client_connectionspersecond",
        "pinning connections opened per second, may be below 1",
    ),
    (
        "client_maxConnections",
        "pinning connections to open in all",
    ),
    (
        "client_proxy_host",
        "host name the client connects to and checks the certificate for",
    ),
    ("proxy_tls", "whether the proxy listens with TLS"),
    (
        "tcp_slab_size",
        "slab size of the plain-TCP read pool, bytes",
    ),
    (
        "tls_slab_size",
        "slab size of the TLS-plaintext read pool, bytes",
    ),
    (
        "read_size",
        "largest region one socket read takes from a slab, bytes",
    ),
    (
        "wss_head",
        "what a wss connection keeps of its upgrade: retain | copy | copy_unpooled | drop",
    ),
    (
        "proxy_head",
        "what a proxy connection keeps of its upgrade: retain | copy | copy_unpooled | drop",
    ),
    (
        "wss_echo",
        "whether the wss echoes the messages it receives",
    ),
    ("bind", "address the wss and proxy listen on"),
    (
        "snapshot_bind",
        "address the snapshot endpoints listen on",
    ),
    (
        "tls_cert",
        "PEM certificate chain of the proxy; null: self-signed, made once in cert_dir",
    ),
    (
        "tls_key",
        "PEM private key of the proxy; null: self-signed, made once in cert_dir",
    ),
    (
        "cert_dir",
        "folder for the self-signed localhost certificate",
    ),
    (
        "header_timeout_ms",
        "time allowed for a request's headers (with the proxy's TLS handshake), ms",
    ),
    (
        "max_header_bytes",
        "largest request header block, bytes (431 above)",
    ),
    (
        "max_message_size",
        "largest websocket message, bytes (close 1009 above)",
    ),
    (
        "upstream_timeout_ms",
        "time allowed to connect to the proxy target, ms",
    ),
    (
        "memory_limit",
        "live slab bytes at which a server refuses new connections (503), 0: none",
    ),
    (
        "max_connections",
        "connections a server serves at once, 0: no cap (503 above)",
    ),
    (
        "write_timeout_ms",
        "time a write to a peer that does not read may take before the connection is closed, ms",
    ),
    (
        "settings_token",
        "token PUT /settings requires (Authorization: Bearer) when snapshot_bind is not loopback",
    ),
    (
        "cors_origins",
        "origins allowed to read the snapshot ports; without a port: any port; \"*\": any",
    ),
    (
        "wss_stack",
        "what the wss is built on: slab (tokio + slab pools) | warp (warp::ws, hyper, tungstenite) | socketio (socketioxide on warp)",
    ),
    (
        "proxy_stack",
        "what the proxy is built on: slab (tokio + slab pools) | warp (warp/hyper over tokio-rustls)",
    ),
    (
        "ws_read_buffer_size",
        "read buffer of each websocket on the warp stack, bytes (tungstenite's default; axum's fix: 4096)",
    ),
    (
        "ws_idle_release_ms",
        "warp wss: after a websocket has been quiet this long, give back the read and write buffers bursts grew (a new codec at a frame boundary, once more than its read buffer has passed), ms; 0: never, as tungstenite",
    ),
    (
        "client_pinMessageSize",
        "bytes of one first message each pinning connection sends once open, 0: none",
    ),
    (
        "client_pinDataBytes",
        "bytes each pinning connection then sends, in messages of client_pinDataMessageSize, 0: none",
    ),
    (
        "client_pinDataMessageSize",
        "size of the messages that carry client_pinDataBytes, bytes",
    ),
    (
        "alloc_registry",
        "record live allocations of 4 KiB or more, to attribute kept bytes to what they pin",
    ),
    (
        "buffer_pool_size",
        "chunk size of Node's small-Buffer pool on the slab stack (Buffer.poolSize), bytes, 0: off",
    ),
    (
        "buffer_pool_threshold",
        "copies under this many bytes are carved from that pool (today's Node: half the pool; Node 0.8: pool size + 1)",
    ),
    (
        "proxy_copy_buffer_size",
        "warp proxy: bytes of each of a tunnel's two copy buffers (tokio's default); with proxy_copy_on_readable, of each thread's scratch buffer",
    ),
    (
        "proxy_copy_on_readable",
        "warp proxy: read a tunnel's sides only into a per-thread scratch buffer, so an idle tunnel holds no copy buffer",
    ),
    (
        "proxy_release_upgrade",
        "warp proxy: take each side's IO back from hyper's Upgraded, forward its leftover bytes, drop the wrapper",
    ),
    (
        "proxy_tls_tickets",
        "warp proxy: TLS 1.3 session tickets sent after each handshake (rustls's default)",
    ),
    (
        "proxy_tls_buffer_limit",
        "warp proxy: bytes rustls may buffer for a client that does not read (rustls's default)",
    ),
];

/// The key whose default depends on the machine: a quarter of its RAM.
const MEMORY_LIMIT: &str = "memory_limit";

/// The value `key` (`outer.inner` for a nested key) has in `config` once serialized.
fn value_in(config: &Config, key: &str) -> Option<Value> {
    let mut value = serde_json::to_value(config).ok()?;
    for part in key.split('.') {
        value = value.as_object_mut()?.remove(part)?;
    }
    Some(value)
}

/// The default of `key` (`outer.inner` for a nested key) as JSON; `None` for a key
/// that does not exist.
pub fn default_value(key: &str) -> Option<Value> {
    value_in(&Config::default(), key)
}

/// A value as `--help` shows it: strings bare, whole numbers without a fraction,
/// anything else as compact JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The default of `key` as `--help` shows it (`memory_limit`: "a quarter of RAM, here
/// N"); `None` for a key that does not exist.
pub fn default_text(key: &str) -> Option<String> {
    text_in(&Config::default(), key)
}

fn text_in(config: &Config, key: &str) -> Option<String> {
    let text = shown(&value_in(config, key)?);
    Some(if key == MEMORY_LIMIT {
        format!("a quarter of RAM, here {text}")
    } else {
        text
    })
}

/// Each key of [`KEYS`] with its help line: the meaning and `[default]`.
pub fn help_texts() -> Vec<(&'static str, String)> {
    let defaults = Config::default();
    KEYS.iter()
        .map(|(key, meaning)| {
            let default = text_in(&defaults, key).unwrap_or_else(|| "?".into());
            (*key, format!("{meaning} [{default}]"))
        })
        .collect()
}
