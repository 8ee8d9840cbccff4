//! What every playground process shares, by what it holds: [`State`] (identity, the
//! head mode, the pools of the slab stack, kept parts, counters, the guard), the
//! admission and memory guard (`guard`), the connection places (`places`), the
//! open-file limit (`open_files`), the accept loops (`accept`), and what a
//! started server is and is held to (`running`).

mod accept;
mod guard;
pub mod http1;
mod open_files;
mod places;
mod pools;
mod running;

pub use accept::{accept_loop, accept_per_thread, bind};
pub use guard::{GuardState, Refusal, CAP_WARN_EVERY, GUARD_EVERY};
pub use open_files::{
    check_open_files, open_file_limit, raise_open_file_limit, FileBudget, OpenFilesError,
    SPARE_FILES,
};
use places::mode_index;
pub use places::{next_connection_id, ConnectionStats, OpenConnection, Reserved};
pub use pools::Pools;
pub use running::{Limits, Running, StartError};

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use snapshot::{HeadMode, Snapshot, Stack};

use crate::config::{Config, RoleConfig};
use crate::kept::KeptParts;
use crate::memory::FigureError;
use crate::shutdown::Shutdown;
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
    /// The slab stack's pools; none on the warp stack and in the client.
    pub pools: Pools,
    /// What connections keep, by pointer: the warp stack's parts and the slab
    /// stack's copies (its kept views are tracked by their slabs).
    pub kept: Arc<KeptParts>,
    pub connections: Arc<ConnectionStats>,
    /// The memory guard and the connection cap.
    pub guard: GuardState,
    /// What the program adds to its snapshot beyond what every process has (the
    /// client's pin traffic and a running audit); set once, by the program.
    sections: OnceLock<Sections>,
}

/// A head mode asked of a process that has none (the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {} has no head mode", .0.as_str())]
pub struct NoHeadMode(pub Role);

/// Fills the sections of a snapshot that only one program has.
pub type Sections = Box<dyn Fn(&mut Snapshot) + Send + Sync>;

impl State {
    /// The state of a `role` process configured by `config`, whose socket reads go
    /// through `pools` (the slab stack's; none on a stack whose buffers are its
    /// libraries' own, and in the client).
    pub fn new(role: Role, config: &Config, pools: Pools) -> Arc<State> {
        let stack = (role != Role::Client).then(|| config.stack(role));
        let tls = role == Role::Proxy && config.proxy_tls;
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
            sections: OnceLock::new(),
        })
    }

    /// Has every snapshot of this process filled by `fill` too (once per process:
    /// a second call is refused and returns `false`).
    pub fn add_sections(&self, fill: impl Fn(&mut Snapshot) + Send + Sync + 'static) -> bool {
        self.sections.set(Box::new(fill)).is_ok()
    }

    /// Fills the program's own sections of `snapshot` ([`State::add_sections`]).
    pub fn fill_sections(&self, snapshot: &mut Snapshot) {
        if let Some(fill) = self.sections.get() {
            fill(snapshot);
        }
    }

    /// Head mode given to connections accepted from now on.
    pub fn head_mode(&self) -> Option<HeadMode> {
        self.head_mode
            .as_ref()
            .map(|m| HeadMode::ALL[m.load(Ordering::Relaxed) as usize])
    }

    /// Switches the head mode for new connections; open ones keep theirs. Returns the
    /// mode it replaces.
    pub fn set_head_mode(&self, mode: HeadMode) -> Result<HeadMode, NoHeadMode> {
        let slot = self.head_mode.as_ref().ok_or(NoHeadMode(self.role))?;
        let old = HeadMode::ALL[slot.swap(mode_index(mode), Ordering::Relaxed) as usize];
        if old != mode {
            tracing::info!(from = %old, to = %mode, "head mode switched; applies to new connections");
        }
        Ok(old)
    }

    /// One stats line: connections and, per pool, live slabs and retained bytes; on
    /// the warp stack the allocator's allocated bytes, or "allocated unreadable"
    /// with the reason when they could not be read.
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
        if let (true, Some(stack)) = (self.pools.is_empty(), self.stack) {
            line.push_str(&format!(
                ", {stack} stack; {} parts kept; ",
                self.kept.len()
            ));
            line.push_str(&allocated_part(crate::memory::allocated_bytes()));
        }
        for pool in self.pools.iter() {
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

/// The stats line's part for the allocator's allocated bytes: "12.3 MB allocated", or
/// "allocated unreadable (reason)" when they could not be read (never 0 MB).
fn allocated_part(allocated: Result<u64, FigureError>) -> String {
    match allocated {
        Ok(bytes) => format!("{} MB allocated", mb(bytes)),
        Err(why) => format!("allocated unreadable ({why})"),
    }
}

/// Megabytes with one decimal, as the logs show them.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
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
        let state = State::new(Role::Wss, &config, Pools::slab_stack(&config, false));
        // No slab yet: 0 live bytes, below a 1-byte limit.
        let place = state.admit().unwrap();
        assert_eq!(state.admit().err(), Some(Refusal::Cap(1)));
        drop(place);
        // One read makes a slab: at or above the limit from then on.
        let pool = state.pools.tcp.clone().unwrap();
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

    #[test]
    fn an_unreadable_guarded_figure_refuses_nothing_and_keeps_the_tripped_state() {
        let config = Config {
            memory_limit: 100,
            ..Config::default()
        };
        let state = State::new(Role::Wss, &config, Pools::slab_stack(&config, false));
        assert_eq!(state.weigh(Ok(100)), (Some(100), true));
        let why = FigureError::Jemalloc {
            stat: "allocated",
            error: "Invalid argument".into(),
        };
        assert_eq!(state.weigh(Err(why.clone())), (None, false));
        assert_eq!(state.weigh(Err(why)), (None, false));
        // Readable again at 95 (above the 90 of recovery): still tripped, tripped once.
        assert_eq!(state.weigh(Ok(95)), (Some(95), true));
        assert_eq!(state.guard_snapshot().memory_trips_total, 1);
    }

    #[test]
    fn the_stats_line_says_allocated_unreadable_and_why() {
        assert_eq!(allocated_part(Ok(12_345_678)), "12.3 MB allocated");
        assert_eq!(
            allocated_part(Err(FigureError::Jemalloc {
                stat: "allocated",
                error: "Invalid argument".into()
            })),
            "allocated unreadable (jemalloc stats.allocated: Invalid argument)"
        );
    }
}
