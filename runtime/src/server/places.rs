//! Connection places: counted open from the moment a place is taken, accepted once
//! served, closed when dropped; by head mode, and listed for the snapshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use snapshot::{HeadMode, OpenByHeadMode};

pub(super) fn mode_index(mode: HeadMode) -> u8 {
    HeadMode::ALL.iter().position(|m| *m == mode).unwrap_or(0) as u8
}

/// Counters of a process's connections, and the list of those described.
#[derive(Default)]
pub struct ConnectionStats {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub failed: AtomicU64,
    by_mode: [AtomicU64; HeadMode::ALL.len()],
    no_mode: AtomicU64,
    /// Connections open now, whatever their mode.
    open_now: AtomicU64,
    /// Open connections by id, as [`OpenConnection::describe`] gave them.
    described: Mutex<BTreeMap<u64, Described>>,
}

/// What the snapshot's `connections.list` says of one open connection.
struct Described {
    /// The peer's address, written once (a snapshot of thousands formats none).
    peer: Option<String>,
    mode: Option<HeadMode>,
    opened: Instant,
    own_bytes: u64,
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

    /// The described open connections, by id (the snapshot's `connections.list`),
    /// at most `max` of them (the oldest), and how many there are in all.
    pub fn list(&self, max: usize) -> (Vec<snapshot::OpenConnection>, usize) {
        let now = Instant::now();
        let described = self.described();
        let list = described
            .iter()
            .take(max)
            .map(|(id, d)| snapshot::OpenConnection {
                id: *id,
                peer: d.peer.clone(),
                head_mode: d.mode,
                age_ms: now.saturating_duration_since(d.opened).as_millis() as u64,
                own_bytes: d.own_bytes,
            })
            .collect();
        (list, described.len())
    }

    /// Sets the own size of described connection `id` (when it is known only after
    /// [`OpenConnection::describe`], say once its task's future is made).
    pub fn set_own_bytes(&self, id: u64, own_bytes: usize) {
        if let Some(d) = self.described().get_mut(&id) {
            d.own_bytes = own_bytes as u64;
        }
    }

    fn described(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Described>> {
        self.described.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections by the head mode they were accepted with.
    pub fn open_by_head_mode(&self) -> OpenByHeadMode {
        let get = |m| self.slot(Some(m)).load(Ordering::Relaxed);
        OpenByHeadMode {
            retain: get(HeadMode::Retain),
            copy: get(HeadMode::Copy),
            copy_unpooled: get(HeadMode::CopyUnpooled),
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
        OpenConnection {
            stats,
            mode,
            described: None,
        }
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
    /// Its id, once described.
    described: Option<u64>,
}

impl OpenConnection {
    /// The head mode it was accepted with.
    pub fn mode(&self) -> Option<HeadMode> {
        self.mode
    }

    /// Lists the connection in snapshots (`connections.list`) until it closes: its
    /// `id`, `peer`, head mode, age from now, and `own_bytes`, the size of the state
    /// its task holds for it while open (`size_of_val` of that value).
    pub fn describe(&mut self, id: u64, peer: Option<SocketAddr>, own_bytes: usize) {
        let entry = Described {
            peer: peer.map(|p| p.to_string()),
            mode: self.mode,
            opened: Instant::now(),
            own_bytes: own_bytes as u64,
        };
        if let Some(old) = self.described.replace(id) {
            self.stats.described().remove(&old);
        }
        self.stats.described().insert(id, entry);
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(id) = self.described {
            self.stats.described().remove(&id);
        }
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
