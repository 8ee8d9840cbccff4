//! The page's view of config.json: the ports it talks to and the experiment's defaults.
//!
//! The page reads the same config.json as the servers (trunk copies it next to the
//! app) and parses it with the servers' own definition (the `config` crate): the same
//! keys, defaults, checks and error messages. A missing key takes the servers'
//! default; a wrong value is an error naming the key and what is expected, and the
//! page then shows that error and runs on the defaults rather than failing silently.
//! One rule is the page's own: the ports it reaches cannot be 0 (a free port picked
//! by the server, which the page cannot know).

use std::net::IpAddr;
use std::path::Path;

use config::{Config, DEFAULT_PATH};
use snapshot::{HeadMode, Stack};

/// Where the page fetches config.json from (served with the app by trunk).
pub const CONFIG_PATH: &str = "/config.json";

/// The two servers the page watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    Proxy,
    Wss,
}

impl Server {
    /// Both, in the order they are shown.
    pub const ALL: [Server; 2] = [Server::Proxy, Server::Wss];

    /// The role name used in snapshots, element ids and file names.
    pub fn name(self) -> &'static str {
        match self {
            Server::Proxy => "proxy",
            Server::Wss => "wss",
        }
    }

    /// The command that starts it.
    pub fn command(self) -> &'static str {
        match self {
            Server::Proxy => "cargo run -p native --bin proxy",
            Server::Wss => "cargo run -p native --bin wss",
        }
    }
}

/// The keys of config.json the page uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PageConfig {
    pub proxy_port: u16,
    pub proxy_heapdump_port: u16,
    pub wss_port: u16,
    pub wss_heapdump_port: u16,
    /// `client_heapdump_port`: the load client's (and `client audit`'s) snapshot port.
    pub client_heapdump_port: u16,
    /// `client_dataSize`: bytes the data connection sends each time.
    pub data_size: u64,
    /// `client_dataDelay`: ms between two sends.
    pub data_delay_ms: u64,
    /// `client_connectionspersecond`: may be below 1.
    pub connections_per_second: f64,
    /// `client_maxConnections`.
    pub max_connections: u64,
    /// Host name the websockets go to (the certificate is made for `localhost`).
    pub client_proxy_host: String,
    /// Whether the proxy speaks TLS, until its own snapshot says otherwise.
    pub proxy_tls: bool,
    pub proxy_head: HeadMode,
    pub wss_head: HeadMode,
    /// Host of the snapshot endpoints as the page reaches them.
    pub snapshot_host: String,
    /// Largest websocket message the servers accept.
    pub max_message_size: u64,
    /// `client_pinMessageSize`: bytes of the first message each pinning connection
    /// sends once greeted; 0: none.
    pub pin_message_size: u64,
    /// `client_pinDataBytes`: bytes each pinning connection then sends; 0: none.
    pub pin_data_bytes: u64,
    /// `client_pinDataMessageSize`: size of the messages that carry them.
    pub pin_data_message_size: u64,
    /// The stacks config.json starts the servers on (shown, never sent: the
    /// servers' own snapshots say which stack runs).
    pub wss_stack: Stack,
    pub proxy_stack: Stack,
}

impl Default for PageConfig {
    /// The servers' defaults (`config::Config::default()`).
    fn default() -> Self {
        PageConfig::from(&Config::default())
    }
}

impl From<&Config> for PageConfig {
    /// The keys of a checked config the page uses.
    fn from(c: &Config) -> Self {
        PageConfig {
            proxy_port: c.proxy_port,
            proxy_heapdump_port: c.proxy_heapdump_port,
            wss_port: c.wss_port,
            wss_heapdump_port: c.wss_heapdump_port,
            client_heapdump_port: c.client_heapdump_port,
            data_size: c.client_data_size,
            data_delay_ms: c.client_data_delay,
            connections_per_second: c.client_connections_per_second,
            max_connections: c.client_max_connections,
            client_proxy_host: c.client_proxy_host.clone(),
            proxy_tls: c.proxy_tls,
            proxy_head: c.proxy_head,
            wss_head: c.wss_head,
            snapshot_host: snapshot_host(c.snapshot_bind),
            max_message_size: c.max_message_size as u64,
            pin_message_size: c.client_pin_message_size,
            pin_data_bytes: c.client_pin_data_bytes,
            pin_data_message_size: c.client_pin_data_message_size,
            wss_stack: c.wss_stack,
            proxy_stack: c.proxy_stack,
        }
    }
}

impl PageConfig {
    /// Parses config.json's text as the servers do; the error names the key at fault.
    pub fn parse(text: &str) -> Result<PageConfig, String> {
        let config =
            config::from_text(Path::new(DEFAULT_PATH), text, &[]).map_err(|e| e.to_string())?;
        for (key, port) in [
            ("proxy_port", config.proxy_port),
            ("proxy_heapdump_port", config.proxy_heapdump_port),
            ("wss_port", config.wss_port),
            ("wss_heapdump_port", config.wss_heapdump_port),
        ] {
            if port == 0 {
                return Err(format!(
                    "{DEFAULT_PATH}: key \"{key}\": port 0 lets the server pick a free port, \
                     which the page cannot know; give a fixed port"
                ));
            }
        }
        Ok(PageConfig::from(&config))
    }

    /// The stack config.json starts a server on.
    pub fn stack(&self, server: Server) -> Stack {
        match server {
            Server::Proxy => self.proxy_stack,
            Server::Wss => self.wss_stack,
        }
    }

    /// The snapshot port of a server.
    pub fn heapdump_port(&self, server: Server) -> u16 {
        match server {
            Server::Proxy => self.proxy_heapdump_port,
            Server::Wss => self.wss_heapdump_port,
        }
    }

    /// `http://127.0.0.1:8601`: the base URL of a server's snapshot endpoints.
    pub fn endpoint(&self, server: Server) -> String {
        format!(
            "http://{}:{}",
            url_host(&self.snapshot_host),
            self.heapdump_port(server)
        )
    }

    /// `GET` this for the client's snapshot (with `client audit`'s live figures).
    pub fn client_snapshot_url(&self) -> String {
        format!(
            "http://{}:{}/snapshot",
            url_host(&self.snapshot_host),
            self.client_heapdump_port
        )
    }

    /// `GET` this for a server's snapshot.
    pub fn snapshot_url(&self, server: Server) -> String {
        format!("{}/snapshot", self.endpoint(server))
    }

    /// `PUT {"head_mode": ...}` here to switch a server's head mode.
    pub fn settings_url(&self, server: Server) -> String {
        format!("{}/settings", self.endpoint(server))
    }

    /// The head mode config.json starts a server with.
    pub fn head_mode(&self, server: Server) -> HeadMode {
        match server {
            Server::Proxy => self.proxy_head,
            Server::Wss => self.wss_head,
        }
    }

    /// `wss://localhost:8600/` (or `ws://` when `tls` is false): where websockets go;
    /// socket.io's path (`/socket.io/?EIO=4&transport=websocket`) when `socketio`.
    pub fn proxy_ws_url(&self, tls: bool, socketio: bool) -> String {
        let scheme = if tls { "wss" } else { "ws" };
        let path = if socketio {
            socketio_wire::WEBSOCKET_PATH
        } else {
            "/"
        };
        format!(
            "{scheme}://{}:{}{path}",
            url_host(&self.client_proxy_host),
            self.proxy_port
        )
    }

    /// `https://localhost:8600/`: the page to open to accept the proxy's certificate.
    pub fn proxy_https_url(&self) -> String {
        format!(
            "https://{}:{}/",
            url_host(&self.client_proxy_host),
            self.proxy_port
        )
    }
}

/// The host the page reaches a snapshot endpoint at: the bind address itself, or
/// loopback when it binds every address.
fn snapshot_host(bind: IpAddr) -> String {
    if bind.is_unspecified() {
        "127.0.0.1".into()
    } else {
        bind.to_string()
    }
}

/// A host as written in a URL: IPv6 addresses in brackets.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `url` with `query` (`format=pprof`) added to its query string.
pub fn with_query(url: &str, query: &str) -> String {
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{query}")
}

/// What the page polls every second at a snapshot URL: the totals alone
/// (`?connections=0`), as cheap at 8,000 connections as at one; "Take snapshot"
/// fetches the whole one.
pub fn polled_url(snapshot_url: &str) -> String {
    with_query(snapshot_url, "connections=0")
}

#[cfg(test)]
mod tests {
    #[test]
    fn polls_ask_for_the_totals_alone() {
        assert_eq!(
            super::polled_url("http://127.0.0.1:8601/snapshot"),
            "http://127.0.0.1:8601/snapshot?connections=0"
        );
        assert_eq!(
            super::with_query("http://h:1/snapshot?x=1", "format=pprof"),
            "http://h:1/snapshot?x=1&format=pprof"
        );
    }

    use super::*;

    /// The repository's own config.json, as trunk serves it.
    const REPO_CONFIG: &str = include_str!("../../../config.json");

    #[test]
    fn the_repository_config_parses_to_the_seed_values() {
        let c = PageConfig::parse(REPO_CONFIG).expect("config.json parses");
        assert_eq!(c.proxy_port, 8600);
        assert_eq!(c.proxy_heapdump_port, 8601);
        assert_eq!(c.wss_port, 8800);
        assert_eq!(c.wss_heapdump_port, 8801);
        assert_eq!(c.data_size, 1_000_000);
        assert_eq!(c.data_delay_ms, 1000);
        assert_eq!(c.max_connections, 100);
        assert!(c.proxy_tls);
        assert_eq!(
            c.snapshot_url(Server::Proxy),
            "http://127.0.0.1:8601/snapshot"
        );
        assert_eq!(
            c.settings_url(Server::Wss),
            "http://127.0.0.1:8801/settings"
        );
        assert_eq!(c.client_snapshot_url(), "http://127.0.0.1:8802/snapshot");
        let moved = PageConfig::parse(r#"{"client_heapdump_port": 9802}"#).unwrap();
        assert_eq!(
            moved.client_snapshot_url(),
            "http://127.0.0.1:9802/snapshot"
        );
        assert_eq!(c.proxy_ws_url(true, false), "wss://localhost:8600/");
        assert_eq!(c.proxy_ws_url(false, false), "ws://localhost:8600/");
        assert_eq!(
            c.proxy_ws_url(true, true),
            "wss://localhost:8600/socket.io/?EIO=4&transport=websocket"
        );
        assert!(crate::runner::is_socketio(&c.proxy_ws_url(true, true)));
        assert!(!crate::runner::is_socketio(&c.proxy_ws_url(true, false)));
        assert_eq!(c.proxy_https_url(), "https://localhost:8600/");
        assert_eq!(
            (
                c.pin_message_size,
                c.pin_data_bytes,
                c.pin_data_message_size
            ),
            (0, 0, 16384),
            "no pin traffic: the seed's scenario"
        );
        assert_eq!(
            (c.stack(Server::Wss), c.stack(Server::Proxy)),
            (Stack::Slab, Stack::Slab)
        );
    }

    #[test]
    fn pin_keys_and_stacks_are_read() {
        let c = PageConfig::parse(
            r#"{"client_pinMessageSize": 100, "client_pinDataBytes": 40000,
                "client_pinDataMessageSize": 1000, "wss_stack": "warp", "proxy_stack": "slab"}"#,
        )
        .expect("parses");
        assert_eq!(
            (
                c.pin_message_size,
                c.pin_data_bytes,
                c.pin_data_message_size
            ),
            (100, 40_000, 1000)
        );
        assert_eq!(c.stack(Server::Wss), Stack::Warp);
        assert_eq!(c.stack(Server::Proxy), Stack::Slab);
        // A zero message size is fine while no data bytes are asked for.
        let c = PageConfig::parse(r#"{"client_pinDataMessageSize": 0}"#).expect("parses");
        assert_eq!(c.pin_data_message_size, 0);
    }

    #[test]
    fn missing_keys_take_the_defaults_and_rates_may_be_below_one() {
        let c = PageConfig::parse(
            r#"{"client_connectionspersecond": 0.25, "proxy_tls": false, "wss_head": "copy"}"#,
        )
        .expect("parses");
        assert_eq!(c.connections_per_second, 0.25);
        assert!(!c.proxy_tls);
        assert_eq!(c.wss_head, HeadMode::Copy);
        assert_eq!(c.proxy_head, HeadMode::Retain);
        assert_eq!(c.proxy_port, 8600);
        assert_eq!(
            PageConfig::parse("{}").expect("parses"),
            PageConfig::default()
        );
    }

    #[test]
    fn snapshot_host_follows_a_specific_bind_address() {
        let c = PageConfig::parse(r#"{"snapshot_bind": "::1"}"#).expect("parses");
        assert_eq!(c.endpoint(Server::Wss), "http://[::1]:8801");
        let c = PageConfig::parse(r#"{"snapshot_bind": "0.0.0.0"}"#).expect("parses");
        assert_eq!(c.endpoint(Server::Proxy), "http://127.0.0.1:8601");
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let cases = [
            (r#"{"proxy_port": "8600"}"#, "\"proxy_port\""),
            (r#"{"proxy_port": 70000}"#, "\"proxy_port\""),
            (r#"{"wss_heapdump_port": 0}"#, "cannot know"),
            (r#"{"client_connectionspersecond": 0}"#, "above 0"),
            (
                r#"{"client_maxConnections": -1}"#,
                "\"client_maxConnections\"",
            ),
            (r#"{"proxy_tls": "yes"}"#, "expected a boolean"),
            (
                r#"{"proxy_head": "keep"}"#,
                "unknown variant `keep`, expected one of `retain`, `copy`, `copy_unpooled`, `drop`",
            ),
            (
                r#"{"wss_stack": "tokio"}"#,
                "unknown variant `tokio`, expected one of `slab`, `warp`, `socketio`",
            ),
            (r#"{"client_pinDataBytes": -1}"#, "\"client_pinDataBytes\""),
            (
                r#"{"client_pinDataBytes": 10, "client_pinDataMessageSize": 0}"#,
                "\"client_pinDataMessageSize\": expected a size above 0",
            ),
            (
                r#"{"client_pinMessageSize": 2000, "max_message_size": 1000}"#,
                "\"client_pinMessageSize\": expected at most max_message_size",
            ),
            ("[1, 2]", "expected a JSON object"),
            ("{ nope", "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = PageConfig::parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    /// What the servers refuse, the page refuses with the servers' very message
    /// (naming config.json); port 0, which the servers accept, is the page's own rule.
    #[test]
    fn errors_are_the_servers_messages() {
        for text in [
            r#"{"proxy_port": "8600"}"#,
            r#"{"proxy_target": {"port": 70000}}"#,
            r#"{"client_maxConnections": -1}"#,
            r#"{"proxy_head": "keep"}"#,
            r#"{"read_size": 2097152}"#,
            r#"{"snapshot_bind": "localhost"}"#,
            "[1, 2]",
        ] {
            let servers = config::from_text(Path::new("config.json"), text, &[])
                .expect_err(text)
                .to_string();
            assert!(servers.starts_with("config.json: "), "{servers}");
            assert_eq!(PageConfig::parse(text).expect_err(text), servers);
        }
        for key in [
            "proxy_port",
            "proxy_heapdump_port",
            "wss_port",
            "wss_heapdump_port",
        ] {
            let text = format!("{{\"{key}\": 0}}");
            assert!(config::from_text(Path::new("config.json"), &text, &[]).is_ok());
            let err = PageConfig::parse(&text).expect_err(&text);
            assert!(
                err.starts_with(&format!("config.json: key \"{key}\": port 0")),
                "{err}"
            );
        }
    }

    /// The page's defaults are the servers' (one definition, not a copy).
    #[test]
    fn defaults_are_the_servers_defaults() {
        let c = Config::default();
        let d = PageConfig::default();
        assert_eq!(
            (
                d.proxy_port,
                d.proxy_heapdump_port,
                d.wss_port,
                d.wss_heapdump_port
            ),
            (
                c.proxy_port,
                c.proxy_heapdump_port,
                c.wss_port,
                c.wss_heapdump_port
            )
        );
        assert_eq!(d.max_message_size, c.max_message_size as u64);
        assert_eq!(d.pin_data_message_size, c.client_pin_data_message_size);
        assert_eq!(d.snapshot_host, c.snapshot_bind.to_string());
    }
}
