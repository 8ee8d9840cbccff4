//! What every playground process shares: its pools, settings and connection counters,
//! the accept loop with shutdown, and the stats line printed every 5 s.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapshot::{HeadMode, OpenByHeadMode, Stack};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::kept::KeptParts;
use crate::shutdown::Shutdown;
use crate::slab::SlabPool;
use crate::Role;

/// How often every process prints its stats.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// The state one process's tasks and its snapshot endpoint share.
pub struct State {
    pub role: Role,
    /// What the server is built on; `None` for the client.
    pub stack: Option<Stack>,
    pub started: Instant,
    /// Head mode for connections accepted from now on; `None` for the client.
    head_mode: Option<AtomicU8>,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    /// Whether the wss echoes what it receives.
    pub echo: bool,
    pub read_size: usize,
    /// The slab stack's `tcp` pool, and the `tls` pool for a TLS proxy; none on
    /// the warp stack and in the client.
    pub pools: Vec<Arc<SlabPool>>,
    /// What the warp stack's connections keep, by pointer (the slab stack's kept
    /// views are tracked by their slabs).
    pub kept: Arc<KeptParts>,
    pub connections: Arc<ConnectionStats>,
    /// The memory guard and the connection cap.
    pub guard: GuardState,
    /// What the client's pinning connections sent (zero in the servers).
    pub pin_traffic: crate::client::pin_traffic::PinCounters,
    /// The live figures of a running `client audit` (the client's snapshot only).
    pub audit: std::sync::Mutex<Option<snapshot::Audit>>,
}

impl State {
    /// The state of a `role` process configured by `config`.
    pub fn new(role: Role, config: &Config) -> Arc<State> {
        let tcp = || SlabPool::new("tcp", config.tcp_slab_size, config.read_size);
        let stack = (role != Role::Client).then(|| config.stack(role));
        let (pools, tls) = match role {
            _ if stack == Some(Stack::Warp) => (vec![], role == Role::Proxy && config.proxy_tls),
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
            stack,
            started: Instant::now(),
            head_mode,
            tls,
            echo: role == Role::Wss && config.wss_echo,
            read_size: config.read_size,
            pools,
            kept: Arc::default(),
            connections: Arc::default(),
            guard: match role {
                Role::Client => GuardState::new(0, 0),
                _ => GuardState::new(config.memory_limit, config.max_connections),
            },
            pin_traffic: Default::default(),
            audit: Default::default(),
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
        if self.stack == Some(Stack::Warp) {
            line.push_str(&format!(
                ", warp stack; {} parts kept; {:.1} MB allocated",
                self.kept.len(),
                crate::snapshot::memory::allocated_bytes().unwrap_or(0) as f64 / 1e6
            ));
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

    /// Starts what every server runs beside its connections until shutdown: its
    /// snapshot endpoint (on the role's port; returns the address bound), the stats
    /// line every [`STATS_EVERY`] and the memory guard's watch.
    pub async fn serve_beside(
        self: &Arc<Self>,
        config: &Config,
        shutdown: &Shutdown,
    ) -> std::io::Result<SocketAddr> {
        let addr =
            crate::snapshot::endpoint::serve_for(config, self.clone(), shutdown.clone()).await?;
        self.print_stats(shutdown);
        self.watch_guard(shutdown);
        Ok(addr)
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

impl State {
    /// Bytes held by the live slabs of every pool now.
    ///
    /// From the pools' counters: constant time, no lock, so it can run on every connection.
    pub fn live_slab_bytes(&self) -> u64 {
        self.pools.iter().map(|p| p.live_bytes()).sum()
    }

    /// The bytes the memory guard weighs: live slabs on the slab stack; on the warp
    /// stack, whose buffers belong to hyper and tungstenite, what it can see of them:
    /// the allocator's allocated bytes.
    pub fn guarded_bytes(&self) -> u64 {
        if self.stack == Some(Stack::Warp) {
            crate::snapshot::memory::allocated_bytes().unwrap_or(0)
        } else {
            self.live_slab_bytes()
        }
    }

    /// What [`State::guarded_bytes`] counts, as the logs say it.
    pub fn guarded_what(&self) -> &'static str {
        if self.stack == Some(Stack::Warp) {
            "allocated memory"
        } else {
            "live slabs"
        }
    }

    /// Compares the live slab bytes with `memory_limit`, logging once when the guard
    /// trips and once when it recovers; returns the bytes and whether it is tripped.
    pub fn check_memory(&self) -> (u64, bool) {
        let g = &self.guard;
        if g.memory_limit == 0 {
            return (0, false);
        }
        let live = self.guarded_bytes();
        // Recovers only 10 % below the limit, so memory hovering at it does not flap.
        let was = g.tripped.load(Ordering::Acquire);
        let over = if was {
            live >= g.memory_limit / 10 * 9
        } else {
            live >= g.memory_limit
        };
        if over {
            if !g.tripped.swap(true, Ordering::AcqRel) {
                g.trips.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "memory guard tripped: {} MB of {} >= limit {} MB; refusing new connections",
                    mb(live),
                    self.guarded_what(),
                    mb(g.memory_limit)
                );
            }
        } else if g.tripped.swap(false, Ordering::AcqRel) {
            tracing::info!(
                "memory guard recovered: {} MB of {}, 10 % below the limit of {} MB; taking new connections again",
                mb(live),
                self.guarded_what(),
                mb(g.memory_limit)
            );
        }
        (live, over)
    }

    /// Admits a new connection (its place counted open until the result drops), or
    /// says why not: the memory guard is tripped or the connection cap is reached.
    pub fn admit(&self) -> Result<Reserved, Refusal> {
        let g = &self.guard;
        let (live, tripped) = self.check_memory();
        let refusal = if tripped {
            Refusal::Memory {
                live,
                what: self.guarded_what(),
                limit: g.memory_limit,
            }
        } else {
            match self.connections.try_reserve(g.max_connections) {
                Some(place) => return Ok(place),
                None => {
                    self.warn_at_cap();
                    Refusal::Cap(g.max_connections)
                }
            }
        };
        g.refused.fetch_add(1, Ordering::Relaxed);
        self.connections.failed_one();
        Err(refusal)
    }

    /// The warning about the connection cap, at most once per [`CAP_WARN_EVERY`].
    fn warn_at_cap(&self) {
        let g = &self.guard;
        let refused = g.refused_since_warn.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = g.cap_warned_ms.load(Ordering::Relaxed);
        let due = last == 0 || now >= last + CAP_WARN_EVERY.as_millis() as u64;
        if due
            && g.cap_warned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            g.refused_since_warn.fetch_sub(refused, Ordering::Relaxed);
            tracing::warn!(
                "at the connection cap ({}): refusing new connections ({refused} refused since the last such line; \
                 open ones are served on)",
                g.max_connections
            );
        }
    }

    /// The guard as the snapshot shows it, the memory check taken now.
    pub fn guard_snapshot(&self) -> snapshot::Guard {
        let g = &self.guard;
        let (_, tripped) = self.check_memory();
        snapshot::Guard {
            memory_limit_bytes: g.memory_limit,
            memory_tripped: tripped,
            memory_trips_total: g.trips.load(Ordering::Relaxed),
            max_connections: g.max_connections,
            at_connection_cap: g.max_connections > 0
                && self.connections.open() >= g.max_connections,
            refused_total: g.refused.load(Ordering::Relaxed),
        }
    }

    /// Checks the memory guard every [`GUARD_EVERY`] until shutdown, so that it
    /// recovers (and says so) when memory falls even if no connection arrives.
    pub fn watch_guard(self: &Arc<Self>, shutdown: &Shutdown) {
        if self.guard.memory_limit == 0 {
            return;
        }
        let state = self.clone();
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(GUARD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => { state.check_memory(); }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
}

/// How often the memory guard is checked when no connection arrives.
pub const GUARD_EVERY: Duration = Duration::from_millis(250);

/// Least time between two warnings about the connection cap.
pub const CAP_WARN_EVERY: Duration = Duration::from_secs(10);

/// The memory guard's and the connection cap's state.
pub struct GuardState {
    /// Live slab bytes at which new connections are refused; 0: none.
    pub memory_limit: u64,
    /// Connections served at once; 0: no cap.
    pub max_connections: u64,
    tripped: AtomicBool,
    trips: AtomicU64,
    refused: AtomicU64,
    /// When the cap was last warned about, ms since start plus one; 0: never.
    cap_warned_ms: AtomicU64,
    refused_since_warn: AtomicU64,
}

impl GuardState {
    pub fn new(memory_limit: u64, max_connections: u64) -> GuardState {
        GuardState {
            memory_limit,
            max_connections,
            tripped: AtomicBool::new(false),
            trips: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cap_warned_ms: AtomicU64::new(0),
            refused_since_warn: AtomicU64::new(0),
        }
    }
}

/// Why a new connection is refused (answered 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "memory guard: {} MB of {what} >= limit {} MB; refusing new connections, try again later",
        mb(*live),
        mb(*limit)
    )]
    Memory {
        live: u64,
        what: &'static str,
        limit: u64,
    },
    #[error("at the connection cap ({0}): refusing new connections, try again later")]
    Cap(u64),
}

/// Megabytes with one decimal, as the logs show them.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// Raises the open-file soft limit to the hard limit, once per process.
///
/// Returns the soft limit before and after and the hard limit, or why it could not.
pub fn raise_open_file_limit() -> Result<(u64, u64, u64), String> {
    static RAISED: std::sync::OnceLock<Result<(u64, u64, u64), String>> =
        std::sync::OnceLock::new();
    RAISED
        .get_or_init(|| {
            let (soft, hard) = open_file_limit().map_err(|e| format!("getrlimit: {e}"))?;
            let target = if hard == libc::RLIM_INFINITY {
                // The kernel's ceiling for RLIMIT_NOFILE.
                std::fs::read_to_string("/proc/sys/fs/nr_open")
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1 << 20)
            } else {
                hard
            };
            if soft >= target {
                return Ok((soft, soft, hard));
            }
            let limit = libc::rlimit {
                rlim_cur: target as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit reads a valid rlimit struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(format!(
                    "cannot raise the open-file limit from {soft} to {target}: {e}"
                ));
            }
            let (after, hard) = open_file_limit().map_err(|e| format!("getrlimit: {e}"))?;
            Ok((soft, after, hard))
        })
        .clone()
}

/// The open-file soft and hard limits of the process.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
pub fn open_file_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// Descriptors kept aside for listeners, the snapshot endpoint and the runtime.
pub const SPARE_FILES: u64 = 64;

/// Raises the open-file limit and says whether it covers `max_connections`
/// (`per_connection` descriptors each: 1 for the wss, 2 for the proxy).
pub fn check_open_files(role: Role, max_connections: u64, per_connection: u64) {
    let soft = match raise_open_file_limit() {
        Ok((before, after, hard)) => {
            if after > before {
                tracing::info!("open-file limit {after} (raised from {before}; hard limit {hard})");
            } else {
                tracing::info!("open-file limit {after} (hard limit {hard})");
            }
            after
        }
        Err(why) => {
            tracing::warn!("{why}");
            match open_file_limit() {
                Ok((soft, _)) => soft,
                Err(_) => return,
            }
        }
    };
    let fit = soft.saturating_sub(SPARE_FILES) / per_connection;
    if max_connections == 0 {
        tracing::info!(
            "no connection cap (max_connections 0): the open-file limit {soft} fits about {fit} connections of the {}",
            role.as_str()
        );
    } else if max_connections > fit {
        tracing::warn!(
            "the open-file limit {soft} cannot cover max_connections {max_connections}: the {} needs \
             {per_connection} descriptor(s) per connection plus {SPARE_FILES} spare, so about {fit} fit; \
             beyond that accepts fail with \"too many open files\" (lower max_connections or raise the hard limit, ulimit -Hn)",
            role.as_str()
        );
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
    /// Connections open now, whatever their mode.
    open_now: AtomicU64,
}

impl ConnectionStats {
    /// Counts a new connection open until the guard drops.
    pub fn open_one(self: &Arc<Self>, mode: Option<HeadMode>) -> OpenConnection {
        self.open_now.fetch_add(1, Ordering::AcqRel);
        Reserved {
            stats: Some(self.clone()),
        }
        .open(mode)
    }

    /// Takes one of `cap` places (0: no cap), or `None` when all are taken.
    ///
    /// The place counts among the open connections until it is dropped or opened.
    pub fn try_reserve(self: &Arc<Self>, cap: u64) -> Option<Reserved> {
        self.open_now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (cap == 0 || open < cap).then_some(open + 1)
            })
            .ok()?;
        Some(Reserved {
            stats: Some(self.clone()),
        })
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
        self.open_now.load(Ordering::Acquire)
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

/// A place among the open connections, taken before the connection is served.
pub struct Reserved {
    /// `None` once opened: the place then belongs to the [`OpenConnection`].
    stats: Option<Arc<ConnectionStats>>,
}

impl Reserved {
    /// The connection is served from now on: counted accepted, and closed when dropped.
    pub fn open(mut self, mode: Option<HeadMode>) -> OpenConnection {
        let stats = self.stats.take().expect("a place is opened once");
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.slot(mode).fetch_add(1, Ordering::Relaxed);
        OpenConnection { stats, mode }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(stats) = &self.stats {
            stats.open_now.fetch_sub(1, Ordering::AcqRel);
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
        self.stats.open_now.fetch_sub(1, Ordering::AcqRel);
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
        .map_err(|e| cannot_listen(what, addr, e))
}

/// Serves `addr` from `threads` threads, each with its own listener on the same port
/// (`SO_REUSEPORT`: the kernel spreads new connections over them) and its own
/// single-threaded runtime running [`accept_loop`], as nginx's workers do: a
/// connection lives on one thread, woken by that thread's own event loop and never
/// handed to another. (Measured against tokio's work-stealing runtime: a shorter
/// latency tail, see BENCHMARKS.md.) Returns the address bound, once every listener is.
pub fn accept_per_thread<F, Fut>(
    addr: SocketAddr,
    threads: usize,
    what: &'static str,
    shutdown: &Shutdown,
    handle: F,
) -> std::io::Result<SocketAddr>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // Taken alone first, so that a port some other process serves (even with
    // SO_REUSEPORT, another instance of this proxy say) is refused, not shared.
    let mut addr = std::net::TcpListener::bind(addr)
        .and_then(|probe| probe.local_addr())
        .map_err(|e| cannot_listen(what, addr, e))?;
    for i in 0..threads.max(1) {
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (handle, shutdown) = (handle.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name(format!("{what}-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => return drop(bound_tx.send(Err(e))),
                };
                runtime.block_on(async move {
                    let listener = match reuse_port_listener(addr) {
                        Ok(listener) => listener,
                        Err(e) => return drop(bound_tx.send(Err(e))),
                    };
                    let _ = bound_tx.send(listener.local_addr());
                    accept_loop(listener, shutdown, handle).await;
                });
            })?;
        let bound = bound_rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the listening thread ended at start")));
        addr = bound.map_err(|e| cannot_listen(what, addr, e))?;
    }
    Ok(addr)
}

/// A listen error that names the server and the address.
fn cannot_listen(what: &str, addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: cannot listen on {addr}: {e}"))
}

/// A listener on `addr` that other listeners may share (`SO_REUSEPORT`).
fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
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
                shutdown.spawn_until_shutdown(handle(stream, peer));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_places_taken_and_frees_them_when_dropped() {
        let stats = Arc::new(ConnectionStats::default());
        let a = stats.try_reserve(2).unwrap();
        let b = stats.try_reserve(2).unwrap();
        assert!(
            stats.try_reserve(2).is_none(),
            "a third place over a cap of 2"
        );
        assert_eq!(stats.open(), 2);
        // A place given up (say, the upstream is down) is neither accepted nor closed.
        drop(b);
        assert_eq!(stats.open(), 1);
        let open = a.open(Some(HeadMode::Copy));
        assert_eq!(stats.open_by_head_mode().copy, 1);
        let c = stats.try_reserve(2).unwrap().open(None);
        assert!(stats.try_reserve(2).is_none());
        drop((open, c));
        assert_eq!(stats.open(), 0);
        assert_eq!(stats.accepted.load(Ordering::Relaxed), 2);
        assert_eq!(stats.closed.load(Ordering::Relaxed), 2);
        // 0: no cap.
        let many: Vec<_> = (0..100).filter_map(|_| stats.try_reserve(0)).collect();
        assert_eq!(many.len(), 100);
    }

    #[test]
    fn admission_trips_the_memory_guard_and_counts_refusals() {
        let config = Config {
            max_connections: 1,
            memory_limit: 1,
            ..Config::default()
        };
        let state = State::new(Role::Wss, &config);
        // No slab yet: 0 live bytes, below a 1-byte limit.
        let place = state.admit().unwrap();
        assert_eq!(state.admit().err(), Some(Refusal::Cap(1)));
        drop(place);
        // One read makes a slab: at or above the limit from then on.
        let pool = state.pool("tcp").unwrap().clone();
        let view = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { pool.read(&mut &b"x"[..]).await.unwrap().unwrap() });
        assert!(matches!(state.admit(), Err(Refusal::Memory { .. })));
        let guard = state.guard_snapshot();
        assert!(guard.memory_tripped && !guard.at_connection_cap);
        assert_eq!((guard.memory_trips_total, guard.refused_total), (1, 2));
        assert_eq!(state.connections.failed.load(Ordering::Relaxed), 2);
        drop(view);
        // The pool's current slab stays: the guard stays tripped, and trips only once.
        assert!(state.check_memory().1);
        assert_eq!(state.guard_snapshot().memory_trips_total, 1);
    }
}
