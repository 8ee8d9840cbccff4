//! `config.json`: its keys, their defaults, meanings and checks, in one place.
//!
//! The servers, the client, the bench (through `native::config`) and the web page all
//! read config.json through this crate, so a key, its default and the message for a
//! wrong value are written once. It builds for wasm as well (as `snapshot` does): no
//! clap and no file reading here; native adds the flags and reads the file.
//!
//! The seed's keys keep their names, values and meanings; new keys only add. Loading
//! goes text -> JSON object -> command-line overrides -> typed [`Config`], so a wrong
//! value is reported the same way wherever it came from, naming the file (or flag),
//! the key and what is expected. Unknown keys are left to the caller to warn about.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use snapshot::{HeadMode, Stack};

mod keys;
mod load;

pub use keys::{default_text, default_value, help_texts, KEYS};
pub use load::{
    apply_overrides, from_object, from_text, override_value, parse_object, set_path, unknown_keys,
};

/// Default config file, read from the working directory.
pub const DEFAULT_PATH: &str = "config.json";

/// Where the proxy forwards to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Target {
    pub host: String,
    #[serde(deserialize_with = "port")]
    pub port: u16,
}

impl Default for Target {
    /// The seed's target, so that setting only one of its keys keeps the other.
    fn default() -> Self {
        Target {
            host: "localhost".into(),
            port: 8800,
        }
    }
}

/// The whole configuration, seed keys first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(deserialize_with = "port")]
    pub proxy_port: u16,
    #[serde(deserialize_with = "port")]
    pub proxy_heapdump_port: u16,
    pub proxy_target: Target,
    #[serde(deserialize_with = "port")]
    pub wss_port: u16,
    #[serde(deserialize_with = "port")]
    pub wss_heapdump_port: u16,
    #[serde(deserialize_with = "port")]
    pub client_heapdump_port: u16,
    #[serde(rename = "client_dataSize")]
    pub client_data_size: u64,
    #[serde(rename = "client_dataDelay")]
    pub client_data_delay: u64,
    #[serde(rename = "client_connectionspersecond", deserialize_with = "positive")]
    pub client_connections_per_second: f64,
    #[serde(rename = "client_maxConnections")]
    pub client_max_connections: u64,
    pub client_proxy_host: String,
    pub proxy_tls: bool,
    #[serde(deserialize_with = "slab_size")]
    pub tcp_slab_size: usize,
    #[serde(deserialize_with = "slab_size")]
    pub tls_slab_size: usize,
    #[serde(deserialize_with = "slab_size")]
    pub read_size: usize,
    pub wss_head: HeadMode,
    pub proxy_head: HeadMode,
    pub wss_echo: bool,
    pub bind: IpAddr,
    pub snapshot_bind: IpAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub cert_dir: PathBuf,
    pub header_timeout_ms: u64,
    pub max_header_bytes: usize,
    pub max_message_size: usize,
    pub upstream_timeout_ms: u64,
    pub memory_limit: u64,
    pub max_connections: u64,
    pub write_timeout_ms: u64,
    pub settings_token: Option<String>,
    pub cors_origins: Vec<String>,
    pub wss_stack: Stack,
    pub proxy_stack: Stack,
    #[serde(deserialize_with = "buffer_size")]
    pub ws_read_buffer_size: usize,
    pub ws_idle_release_ms: u64,
    #[serde(rename = "client_pinMessageSize")]
    pub client_pin_message_size: u64,
    #[serde(rename = "client_pinDataBytes")]
    pub client_pin_data_bytes: u64,
    #[serde(rename = "client_pinDataMessageSize")]
    pub client_pin_data_message_size: u64,
    pub alloc_registry: bool,
    #[serde(deserialize_with = "pool_size")]
    pub buffer_pool_size: usize,
    pub buffer_pool_threshold: usize,
    /// Warp proxy: bytes of each of `copy_bidirectional`'s two copy buffers (with
    /// `proxy_copy_on_readable`: of each worker thread's scratch buffer).
    #[serde(deserialize_with = "copy_buffer_size")]
    pub proxy_copy_buffer_size: usize,
    /// Warp proxy: read each side of a tunnel only into a per-thread scratch buffer, so
    /// that an idle tunnel holds no copy buffer.
    pub proxy_copy_on_readable: bool,
    /// Warp proxy: take each side's IO back from hyper's `Upgraded` (`downcast`), forward
    /// the bytes hyper read past the upgrade, and drop hyper's wrapper.
    pub proxy_release_upgrade: bool,
    /// Warp proxy: TLS 1.3 session tickets sent after each handshake (rustls's
    /// `send_tls13_tickets`).
    #[serde(deserialize_with = "ticket_count")]
    pub proxy_tls_tickets: usize,
    /// Warp proxy: bytes rustls may buffer for a client that does not read (rustls's
    /// `set_buffer_limit`).
    #[serde(deserialize_with = "tls_buffer_limit")]
    pub proxy_tls_buffer_limit: usize,
}

impl Default for Config {
    /// The seed's values, and new keys set to reproduce the seed's problem.
    fn default() -> Self {
        Config {
            proxy_port: 8600,
            proxy_heapdump_port: 8601,
            proxy_target: Target::default(),
            wss_port: 8800,
            wss_heapdump_port: 8801,
            client_heapdump_port: 8802,
            client_data_size: 1_000_000,
            client_data_delay: 1000,
            client_connections_per_second: 1.0,
            client_max_connections: 100,
            client_proxy_host: "localhost".into(),
            proxy_tls: true,
            tcp_slab_size: 1 << 20,
            tls_slab_size: 10 << 20,
            read_size: 64 << 10,
            wss_head: HeadMode::Retain,
            proxy_head: HeadMode::Retain,
            wss_echo: false,
            bind: IpAddr::from([127, 0, 0, 1]),
            snapshot_bind: IpAddr::from([127, 0, 0, 1]),
            tls_cert: None,
            tls_key: None,
            cert_dir: PathBuf::from(".certs"),
            header_timeout_ms: 10_000,
            max_header_bytes: 16 << 10,
            max_message_size: 16 << 20,
            upstream_timeout_ms: 5_000,
            memory_limit: physical_memory().map_or(0, |m| m / 4),
            max_connections: 10_000,
            write_timeout_ms: 30_000,
            settings_token: None,
            cors_origins: ["http://localhost", "http://127.0.0.1", "http://[::1]"]
                .map(String::from)
                .to_vec(),
            wss_stack: Stack::Slab,
            proxy_stack: Stack::Slab,
            ws_read_buffer_size: 128 << 10,
            ws_idle_release_ms: 0,
            client_pin_message_size: 0,
            client_pin_data_bytes: 0,
            client_pin_data_message_size: 16 << 10,
            alloc_registry: true,
            buffer_pool_size: 8 << 10,
            buffer_pool_threshold: 4 << 10,
            proxy_copy_buffer_size: 8 << 10,
            proxy_copy_on_readable: false,
            proxy_release_upgrade: false,
            proxy_tls_tickets: 2,
            proxy_tls_buffer_limit: 64 << 10,
        }
    }
}

/// Physical memory in bytes (`MemTotal` of /proc/meminfo); `None` where there is no
/// such file (in a browser too, so that `memory_limit` defaults to 0 there).
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A config that cannot be used; the binaries print it and exit with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Rules that span keys or go beyond a type: the key to blame and what is expected.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.read_size > self.tcp_slab_size.min(self.tls_slab_size) {
            return Err((
                "read_size",
                format!(
                    "expected at most the smaller slab size ({} bytes), got {}",
                    self.tcp_slab_size.min(self.tls_slab_size),
                    self.read_size
                ),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err((
                "tls_cert",
                "expected tls_cert and tls_key both set or both null".into(),
            ));
        }
        if self.max_header_bytes < 256 {
            return Err(("max_header_bytes", "expected at least 256".into()));
        }
        if self.client_pin_data_bytes > 0 && self.client_pin_data_message_size == 0 {
            return Err((
                "client_pinDataMessageSize",
                "expected a size above 0 when client_pinDataBytes is set".into(),
            ));
        }
        if self.proxy_stack == Stack::Socketio {
            return Err((
                "proxy_stack",
                "expected slab or warp: socketio is a wss stack (put either proxy in front of it)"
                    .into(),
            ));
        }
        if self.buffer_pool_size > 0
            && !(1..=self.buffer_pool_size + 1).contains(&self.buffer_pool_threshold)
        {
            return Err((
                "buffer_pool_threshold",
                format!(
                    "expected 1 to buffer_pool_size + 1 ({}: Node 0.8's rule, pool anything that fits a chunk), got {}",
                    self.buffer_pool_size + 1,
                    self.buffer_pool_threshold
                ),
            ));
        }
        let largest = self.max_message_size as u64;
        for (key, size) in [
            ("client_pinMessageSize", self.client_pin_message_size),
            (
                "client_pinDataMessageSize",
                self.client_pin_data_message_size,
            ),
        ] {
            if size > largest {
                return Err((
                    key,
                    format!("expected at most max_message_size ({largest} bytes), got {size}"),
                ));
            }
        }
        Ok(())
    }
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = u64::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected a port number 0-65535 (0 picks a free port)")
    })?;
    u16::try_from(n)
        .map_err(|_| serde::de::Error::custom(format!("expected a port number 0-65535, got {n}")))
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let n = f64::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a number above 0 (0.5 = one every 2 s)"))?;
    if n > 0.0 && n.is_finite() {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a number above 0, got {n}"
        )))
    }
}

fn slab_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    const MIN: u64 = 1024;
    const MAX: u64 = 1 << 30;
    let n = u64::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a size in bytes, 1024 to 1073741824"))?;
    if (MIN..=MAX).contains(&n) {
        Ok(n as usize)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a size in bytes, 1024 to 1073741824, got {n}"
        )))
    }
}

/// Node's `Buffer.poolSize`: 0 (off) or 64 bytes to 1 MiB.
fn pool_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    const MIN: u64 = 64;
    const MAX: u64 = 1 << 20;
    let n = u64::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected 0 (off) or a size in bytes, 64 to 1048576")
    })?;
    if n == 0 || (MIN..=MAX).contains(&n) {
        Ok(n as usize)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected 0 (off) or a size in bytes, 64 to 1048576, got {n}"
        )))
    }
}

fn buffer_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    const MIN: u64 = 256;
    const MAX: u64 = 64 << 20;
    let n = u64::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a size in bytes, 256 to 67108864"))?;
    if (MIN..=MAX).contains(&n) {
        Ok(n as usize)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a size in bytes, 256 to 67108864, got {n}"
        )))
    }
}

/// A copy buffer: 64 bytes to 1 MiB.
fn copy_buffer_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bytes_in(d, 64, 1 << 20)
}

/// rustls's buffer limit: 1 KiB to 64 MiB.
fn tls_buffer_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bytes_in(d, 1 << 10, 64 << 20)
}

/// A size in bytes from `min` to `max`.
fn bytes_in<'de, D: Deserializer<'de>>(d: D, min: u64, max: u64) -> Result<usize, D::Error> {
    let expected = format!("expected a size in bytes, {min} to {max}");
    let n = u64::deserialize(d).map_err(|_| serde::de::Error::custom(&expected))?;
    if (min..=max).contains(&n) {
        Ok(n as usize)
    } else {
        Err(serde::de::Error::custom(format!("{expected}, got {n}")))
    }
}

/// TLS 1.3 tickets per handshake: 0 to 8.
fn ticket_count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    const MAX: u64 = 8;
    let n = u64::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a count of tickets, 0 to 8"))?;
    if n <= MAX {
        Ok(n as usize)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a count of tickets, 0 to 8, got {n}"
        )))
    }
}

#[cfg(test)]
mod tests;
