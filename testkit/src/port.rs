//! Ports for the programs a test starts, and a config that needs none chosen.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use config::Config;

/// A loopback port free now, for a program that must be told its port (one a test
/// starts in-process binds port 0 instead: see [`ephemeral_config`]).
///
/// It lies below the kernel's ephemeral range (32768 and up on Linux by default), so
/// that no client socket of a test running beside this one takes it as its source
/// port before the program binds it (seen: a wss that could not listen). Each call
/// starts at the next of a process-wide sequence, from a place that depends on the
/// process, so two tests (or two test binaries side by side) do not pick the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 20000-31999.
        let port = 20000 + (std::process::id().wrapping_mul(97).wrapping_add(n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The default config with every port 0 (each server takes one the kernel picks and
/// says which in its `Running`) and the certificate made under `dir/certs`: where
/// every playground a test starts in-process begins.
pub fn ephemeral_config(dir: &Path) -> Config {
    Config {
        proxy_port: 0,
        proxy_heapdump_port: 0,
        wss_port: 0,
        wss_heapdump_port: 0,
        client_heapdump_port: 0,
        cert_dir: dir.join("certs"),
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_differ_lie_below_the_ephemeral_range_and_can_be_bound() {
        // Each port is bound as soon as it is given (another test process may take
        // it later: the port is free now, not reserved) and held, so the next one
        // given must differ.
        let mut held = Vec::new();
        for _ in 0..20 {
            let port = free_port();
            assert!((20000..32000).contains(&port), "{port}");
            let listener = std::net::TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("port {port} was given as free: {e}"));
            held.push((port, listener));
        }
        let mut ports: Vec<u16> = held.iter().map(|(p, _)| *p).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), held.len(), "{held:?}");
    }

    #[test]
    fn an_ephemeral_config_takes_no_fixed_port() {
        let c = ephemeral_config(Path::new("/tmp/x"));
        let ports = [
            c.proxy_port,
            c.proxy_heapdump_port,
            c.wss_port,
            c.wss_heapdump_port,
            c.client_heapdump_port,
        ];
        assert_eq!(ports, [0; 5]);
        assert_eq!(c.cert_dir, Path::new("/tmp/x/certs"));
    }
}
