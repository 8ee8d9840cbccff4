//! What every playground process shares: its pools, settings and connection counters,
//! the accept loop with shutdown, and the stats line printed every 5 s.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapshot::{HeadMode, OpenByHeadMode};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::slab::SlabPool;
use crate::Role;

/// How often every process prints its stats.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// The state one process's tasks and its snapshot endpoint share.
pub struct State {
    pub role: Role,
    pub started: Instant,
    /// Head mode for connections accepted from now on; `None` for the client.
    head_mode: Option<AtomicU8>,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    /// Whether the wss echoes what it receives.
    pub echo: bool,
    pub read_size: usize,
    /// The `tcp` pool, and the `tls` pool for a TLS proxy.
    pub pools: Vec<Arc<SlabPool>>,
    pub connections: Arc<ConnectionStats>,
}

impl State {
    /// The state of a `role` process configured by `config`.
    pub fn new(role: Role, config: &Config) -> Arc<State> {
        let tcp = || SlabPool::new("tcp", config.tcp_slab_size, config.read_size);
        let (pools, tls) = match role {
            Role::Wss => (vec![tcp()], false),
            Role::Proxy if config.proxy_tls => (
                vec![
                    tcp(),
                    SlabPool::new("tls", config.tls_slab_size, config.read_size),
                ],
                true,
            ),
            Role::Proxy => (vec![tcp()], false),
            Role::Client => (vec![], false),
        };
        let head_mode = match role {
            Role::Client => None,
            _ => Some(AtomicU8::new(mode_index(config.head_mode(role)))),
        };
        Arc::new(State {
            role,
            started: Instant::now(),
            head_mode,
            tls,
            echo: role == Role::Wss && config.wss_echo,
            read_size: config.read_size,
            pools,
            connections: Arc::default(),
        })
    }

    /// The pool of that name (`tcp` or `tls`).
    pub fn pool(&self, name: &str) -> Option<&Arc<SlabPool>> {
        self.pools.iter().find(|p| p.name() == name)
    }

    /// The pool client-side reads go through: `tls` behind TLS, `tcp` otherwise.
    pub fn client_side_pool(&self) -> &Arc<SlabPool> {
        if self.tls {
            self.pool("tls").expect("a TLS server has a tls pool")
        } else {
            self.pool("tcp").expect("a server has a tcp pool")
        }
    }

    /// Head mode given to connections accepted from now on.
    pub fn head_mode(&self) -> Option<HeadMode> {
        self.head_mode
            .as_ref()
            .map(|m| HeadMode::ALL[m.load(Ordering::Relaxed) as usize])
    }

    /// Switches the head mode for new connections; open ones keep theirs.
    pub fn set_head_mode(&self, mode: HeadMode) -> Result<HeadMode, String> {
        let slot = self
            .head_mode
            .as_ref()
            .ok_or_else(|| format!("the {} has no head mode", self.role.as_str()))?;
        let old = HeadMode::ALL[slot.swap(mode_index(mode), Ordering::Relaxed) as usize];
        if old != mode {
            tracing::info!(from = %old, to = %mode, "head mode switched; applies to new connections");
        }
        Ok(old)
    }

    /// One stats line: connections and, per pool, live slabs and retained bytes.
    pub fn stats_line(&self) -> String {
        let c = &self.connections;
        let mut line = format!(
            "{}: open {} (accepted {}, closed {}, failed {})",
            self.role.as_str(),
            c.open(),
            c.accepted.load(Ordering::Relaxed),
            c.closed.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        );
        if let Some(mode) = self.head_mode() {
            line.push_str(&format!(", head {mode}"));
        }
        for pool in &self.pools {
            let s = pool.summary();
            line.push_str(&format!(
                "; {} pool: {} live slabs, {:.1} MB retained, {:.1} KB referenced",
                pool.name(),
                s.live_slabs,
                s.retained_bytes as f64 / 1e6,
                s.referenced_bytes as f64 / 1e3
            ));
        }
        line
    }

    /// Prints [`State::stats_line`] every [`STATS_EVERY`] until shutdown.
    pub fn print_stats(self: &Arc<Self>, shutdown: &Shutdown) {
        let state = self.clone();
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(STATS_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => tracing::info!("{}", state.stats_line()),
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
}

fn mode_index(mode: HeadMode) -> u8 {
    HeadMode::ALL.iter().position(|m| *m == mode).unwrap_or(0) as u8
}

/// Counters of a process's connections.
#[derive(Default)]
pub struct ConnectionStats {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub failed: AtomicU64,
    by_mode: [AtomicU64; 3],
    no_mode: AtomicU64,
}

impl ConnectionStats {
    /// Counts a new connection open until the guard drops.
    pub fn open_one(self: &Arc<Self>, mode: Option<HeadMode>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.slot(mode).fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            stats: self.clone(),
            mode,
        }
    }

    /// Counts a refused or failed request or connection attempt.
    pub fn failed_one(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn slot(&self, mode: Option<HeadMode>) -> &AtomicU64 {
        match mode {
            Some(m) => &self.by_mode[mode_index(m) as usize],
            None => &self.no_mode,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.by_mode
            .iter()
            .chain([&self.no_mode])
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Open connections by the head mode they were accepted with.
    pub fn open_by_head_mode(&self) -> OpenByHeadMode {
        let get = |m| self.slot(Some(m)).load(Ordering::Relaxed);
        OpenByHeadMode {
            retain: get(HeadMode::Retain),
            copy: get(HeadMode::Copy),
            drop: get(HeadMode::Drop),
        }
    }
}

/// One open connection; counted closed when dropped.
pub struct OpenConnection {
    stats: Arc<ConnectionStats>,
    mode: Option<HeadMode>,
}

impl OpenConnection {
    /// The head mode it was accepted with.
    pub fn mode(&self) -> Option<HeadMode> {
        self.mode
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.slot(self.mode).fetch_sub(1, Ordering::Relaxed);
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ids for connections, unique in the process, from 1.
pub fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{what}: cannot listen on {addr}: {e}")))
}

/// Accepts connections until shutdown, handing each to `handle` in a tracked task.
///
/// Accept errors (out of file descriptors, say) are logged and retried with a
/// growing pause, as mini-redis does, instead of ending the server.
pub async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: Shutdown, handle: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let _ = stream.set_nodelay(true);
                let stop = shutdown.clone();
                let task = handle(stream, peer);
                shutdown.spawn(async move {
                    tokio::select! {
                        _ = task => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
