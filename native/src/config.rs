//! `config.json`: the seed's settings, the playground's new keys, and command-line overrides.
//!
//! The seed's keys keep their names, values and meanings; new keys only add. Loading
//! goes file -> JSON object -> command-line overrides -> typed [`Config`], so a wrong
//! value is reported the same way wherever it came from, naming the file (or flag),
//! the key and what is expected. Unknown keys are warned about, never fatal.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use snapshot::{HeadMode, Stack};

/// Default config file, read from the working directory.
pub const DEFAULT_PATH: &str = "config.json";

/// Every key config.json may hold, with what it means (shown in `--help`).
pub const KEYS: &[(&str, &str)] = &[
    ("proxy_port", "TLS proxy port [8600]"),
    ("proxy_heapdump_port", "proxy snapshot port [8601]"),
    (
        "proxy_target.host",
        "host the proxy forwards to [localhost]",
    ),
    ("proxy_target.port", "port the proxy forwards to [8800]"),
    ("wss_port", "websocket server port [8800]"),
    ("wss_heapdump_port", "wss snapshot port [8801]"),
    ("client_heapdump_port", "client snapshot port [8802]"),
    (
        "client_dataSize",
        "bytes the data connection sends each time [1000000]",
    ),
    (
        "client_dataDelay",
        "ms between two sends of the data connection [1000]",
    ),
    (
        "client_connectionspersecond",
        "pinning connections opened per second, may be below 1 [1]",
    ),
    (
        "client_maxConnections",
        "pinning connections to open in all [100]",
    ),
    (
        "client_proxy_host",
        "host name the client connects to and checks the certificate for [localhost]",
    ),
    ("proxy_tls", "whether the proxy listens with TLS [true]"),
    (
        "tcp_slab_size",
        "slab size of the plain-TCP read pool, bytes [1048576]",
    ),
    (
        "tls_slab_size",
        "slab size of the TLS-plaintext read pool, bytes [10485760]",
    ),
    (
        "read_size",
        "largest region one socket read takes from a slab, bytes [65536]",
    ),
    (
        "wss_head",
        "what a wss connection keeps of its upgrade: retain | copy | drop [retain]",
    ),
    (
        "proxy_head",
        "what a proxy connection keeps of its upgrade: retain | copy | drop [retain]",
    ),
    (
        "wss_echo",
        "whether the wss echoes the messages it receives [false]",
    ),
    ("bind", "address the wss and proxy listen on [127.0.0.1]"),
    (
        "snapshot_bind",
        "address the snapshot endpoints listen on [127.0.0.1]",
    ),
    (
        "tls_cert",
        "PEM certificate chain of the proxy [null: self-signed, made once]",
    ),
    (
        "tls_key",
        "PEM private key of the proxy [null: self-signed, made once]",
    ),
    (
        "cert_dir",
        "folder for the self-signed localhost certificate [.certs]",
    ),
    (
        "header_timeout_ms",
        "time allowed for a request's headers (with the proxy's TLS handshake), ms [10000]",
    ),
    (
        "max_header_bytes",
        "largest request header block, bytes (431 above) [16384]",
    ),
    (
        "max_message_size",
        "largest websocket message, bytes (close 1009 above) [16777216]",
    ),
    (
        "upstream_timeout_ms",
        "time allowed to connect to the proxy target, ms [5000]",
    ),
    (
        "memory_limit",
        "live slab bytes at which a server refuses new connections (503), 0: none [a quarter of RAM]",
    ),
    (
        "max_connections",
        "connections a server serves at once, 0: no cap (503 above) [10000]",
    ),
    (
        "write_timeout_ms",
        "time a write to a peer that does not read may take before the connection is closed, ms [30000]",
    ),
    (
        "settings_token",
        "token PUT /settings requires (Authorization: Bearer) when snapshot_bind is not loopback [null]",
    ),
    (
        "cors_origins",
        "origins allowed to read the snapshot ports; without a port: any port [loopback origins]",
    ),
    (
        "wss_stack",
        "what the wss is built on: slab (tokio + slab pools) | warp (warp::ws, hyper, tungstenite) [slab]",
    ),
    (
        "proxy_stack",
        "what the proxy is built on: slab (tokio + slab pools) | warp (warp/hyper over tokio-rustls) [slab]",
    ),
    (
        "ws_read_buffer_size",
        "read buffer of each websocket on the warp stack, bytes (tungstenite's default; axum's fix: 4096) [131072]",
    ),
    (
        "client_pinMessageSize",
        "bytes of one first message each pinning connection sends once open, 0: none [0]",
    ),
    (
        "client_pinDataBytes",
        "bytes each pinning connection then sends, in messages of client_pinDataMessageSize, 0: none [0]",
    ),
    (
        "client_pinDataMessageSize",
        "size of the messages that carry client_pinDataBytes, bytes [16384]",
    ),
    (
        "alloc_registry",
        "record live allocations of 4 KiB or more, to attribute kept bytes to what they pin [true]",
    ),
];

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
    #[serde(rename = "client_pinMessageSize")]
    pub client_pin_message_size: u64,
    #[serde(rename = "client_pinDataBytes")]
    pub client_pin_data_bytes: u64,
    #[serde(rename = "client_pinDataMessageSize")]
    pub client_pin_data_message_size: u64,
    pub alloc_registry: bool,
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
            client_pin_message_size: 0,
            client_pin_data_bytes: 0,
            client_pin_data_message_size: 16 << 10,
            alloc_registry: true,
        }
    }
}

/// Physical memory in bytes (`MemTotal` of /proc/meminfo).
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

/// `--config PATH` and one `--KEY VALUE` flag for every key of [`KEYS`].
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    /// The file given with `--config`, if any.
    pub path: Option<PathBuf>,
    /// Keys set on the command line, with their raw values.
    pub overrides: Vec<(String, String)>,
}

impl FromArgMatches for ConfigArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let path = m.get_one::<PathBuf>("config").cloned();
        let overrides = KEYS
            .iter()
            .filter_map(|(k, _)| m.get_one::<String>(k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Ok(ConfigArgs { path, overrides })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for ConfigArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.arg(
            Arg::new("config")
                .long("config")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("config file [config.json in the working directory]"),
        );
        KEYS.iter().fold(cmd, |cmd, (key, help)| {
            cmd.arg(
                Arg::new(*key)
                    .long(*key)
                    .value_name("VALUE")
                    .allow_negative_numbers(true)
                    .help(*help)
                    .help_heading("config.json keys (override the file)"),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl ConfigArgs {
    /// Reads the file (or the defaults when no file is given and none is here),
    /// applies the overrides, and checks every value.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let (file, text) = match &self.path {
            Some(p) => (p.clone(), Some(read(p)?)),
            None if Path::new(DEFAULT_PATH).exists() => (
                PathBuf::from(DEFAULT_PATH),
                Some(read(Path::new(DEFAULT_PATH))?),
            ),
            None => {
                tracing::info!("no {DEFAULT_PATH} in the working directory; using the defaults");
                (PathBuf::from(DEFAULT_PATH), None)
            }
        };
        let mut object = match text {
            Some(text) => parse_object(&file, &text)?,
            None => Map::new(),
        };
        for key in unknown_keys(&object) {
            tracing::warn!("{}: unknown key {key:?} ignored", file.display());
        }
        for (key, raw) in &self.overrides {
            set_path(&mut object, key, override_value(raw));
        }
        from_object(object, &file, &self.overrides)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{}: cannot read the config file: {e}",
            path.display()
        ))
    })
}

/// Parses config text as a JSON object, naming the file and position on error.
pub fn parse_object(file: &Path, text: &str) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError(format!(
            "{}: expected a JSON object {{ \"key\": value, ... }}, found {}",
            file.display(),
            json_kind(&other)
        ))),
        Err(e) => Err(ConfigError(format!(
            "{}: not valid JSON: {e}",
            file.display()
        ))),
    }
}

/// Checks and types a config object; `overrides` tells which keys came from flags.
pub fn from_object(
    object: Map<String, Value>,
    file: &Path,
    overrides: &[(String, String)],
) -> Result<Config, ConfigError> {
    let source = |key: &str| {
        if overrides.iter().any(|(k, _)| k == key) {
            format!("command line --{key}")
        } else {
            format!("{}: key \"{key}\"", file.display())
        }
    };
    let config: Config = serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| ConfigError(format!("{}: {}", source(&e.path().to_string()), e.inner())))?;
    config
        .check()
        .map_err(|(key, msg)| ConfigError(format!("{}: {msg}", source(key))))?;
    Ok(config)
}

/// Keys of the object that no version of the playground knows.
pub fn unknown_keys(object: &Map<String, Value>) -> Vec<String> {
    object
        .keys()
        .filter(|k| {
            !KEYS
                .iter()
                .any(|(known, _)| known.split('.').next() == Some(k.as_str()))
        })
        .cloned()
        .collect()
}

impl Config {
    /// Rules that span keys or go beyond a type.
    fn check(&self) -> Result<(), (&'static str, String)> {
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

    /// The stack a server role (`wss` or `proxy`) runs on.
    pub fn stack(&self, role: crate::Role) -> Stack {
        match role {
            crate::Role::Wss => self.wss_stack,
            _ => self.proxy_stack,
        }
    }

    /// The head mode of a server role (`wss` or `proxy`).
    pub fn head_mode(&self, role: crate::Role) -> HeadMode {
        match role {
            crate::Role::Wss => self.wss_head,
            _ => self.proxy_head,
        }
    }
}

/// A flag's text as JSON: numbers, booleans, null and arrays as such, anything else a string.
fn override_value(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null | Value::Array(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

/// Sets `a.b` style keys, making the inner object when missing.
fn set_path(object: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            object.insert(key.to_string(), value);
        }
        Some((outer, inner)) => {
            let slot = object
                .entry(outer)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(map) = slot {
                set_path(map, inner, value);
            }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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

#[cfg(test)]
mod tests;
