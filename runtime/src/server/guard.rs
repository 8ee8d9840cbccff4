//! Admission: the memory guard (live slabs, or on the warp stack the allocator's
//! allocated bytes, against `memory_limit`) and the connection cap, with their
//! rate-limited warnings and the snapshot's `guard` section.

use crate::memory::FigureError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{mb, Reserved, State};
use crate::shutdown::Shutdown;

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
    /// Whether the guard has warned that its figure could not be read (once a process).
    unreadable_warned: AtomicBool,
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
            unreadable_warned: AtomicBool::new(false),
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

impl State {
    /// Bytes held by the live slabs of every pool now.
    ///
    /// From the pools' counters: constant time, no lock, so it can run on every connection.
    pub fn live_slab_bytes(&self) -> u64 {
        self.pools.live_bytes()
    }

    /// The bytes the memory guard weighs: live slabs on a server with slab pools; on
    /// one without (the warp stack, whose buffers belong to hyper and tungstenite),
    /// what it can see of them: the allocator's allocated bytes, or why they could
    /// not be read.
    pub fn guarded_bytes(&self) -> Result<u64, FigureError> {
        if self.pools.is_empty() {
            crate::memory::allocated_bytes()
        } else {
            Ok(self.live_slab_bytes())
        }
    }

    /// What [`State::guarded_bytes`] counts, as the logs say it.
    pub fn guarded_what(&self) -> &'static str {
        if self.pools.is_empty() {
            "allocated memory"
        } else {
            "live slabs"
        }
    }

    /// Compares the guarded bytes with `memory_limit`, logging once when the guard
    /// trips and once when it recovers; returns the bytes (`None` when the guard is
    /// off or they could not be read) and whether it is tripped.
    pub fn check_memory(&self) -> (Option<u64>, bool) {
        if self.guard.memory_limit == 0 {
            return (None, false);
        }
        self.weigh(self.guarded_bytes())
    }

    /// [`State::check_memory`] on one reading of the guarded bytes.
    ///
    /// A reading that failed (the allocator's statistics on the warp stack) refuses
    /// nothing: an unknown figure is not over the limit, and refusing every
    /// connection on it would take the server down. The guard warns about it once in
    /// the process's life, with the reason, and keeps its tripped state for when
    /// the figure can be read again.
    pub fn weigh(&self, reading: Result<u64, FigureError>) -> (Option<u64>, bool) {
        let g = &self.guard;
        let live = match reading {
            Ok(live) => live,
            Err(why) => {
                if !g.unreadable_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "memory guard: {} unreadable ({why}); not refusing connections on it \
                         (said once)",
                        self.guarded_what()
                    );
                }
                return (None, false);
            }
        };
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
        (Some(live), over)
    }

    /// Admits a new connection (its place counted open until the result drops), or
    /// says why not: the memory guard is tripped or the connection cap is reached.
    pub fn admit(&self) -> Result<Reserved, Refusal> {
        let g = &self.guard;
        let refusal = if let (Some(live), true) = self.check_memory() {
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
