//! The time series the charts draw: one sample per successful poll of a server,
//! kept for a bounded window (by age and by count), so a page left open for hours
//! holds a few hundred samples per server, not an ever-growing list.

use std::collections::VecDeque;

use snapshot::{Snapshot, Stack};

/// How far back the charts look.
pub const WINDOW_MS: f64 = 5.0 * 60.0 * 1000.0;
/// How often the page polls each server.
pub const POLL_MS: u32 = 1000;
/// The most samples a series keeps, whatever their times (a guard on a fast clock).
pub const MAX_SAMPLES: usize = 2 * (WINDOW_MS as usize / POLL_MS as usize);
/// A pause between two samples longer than this breaks the line (the server was down).
pub const GAP_MS: f64 = 3.5 * POLL_MS as f64;

/// The figures of one snapshot that the charts draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When the page received it, ms since the Unix epoch (the page's clock, so all
    /// servers share one time axis).
    pub t_ms: f64,
    /// Bytes held by live slabs (all pools).
    pub retained_bytes: u64,
    /// Bytes of those still referenced by views.
    pub referenced_bytes: u64,
    pub live_slabs: u64,
    /// The allocator's resident bytes; `None` when the server could not read them
    /// (the chart leaves a gap there, never a 0 point).
    pub resident_bytes: Option<u64>,
    /// The process's RSS as the kernel reports it; `None` when it was unreadable.
    pub rss_bytes: Option<u64>,
    /// Bytes held by the live chunks of Node's small-Buffer pool (`buffer`); `None`
    /// where the server has no such pool (the warp stack, the pool off).
    pub buffer_pool_bytes: Option<u64>,
    pub open_connections: u64,
    /// Sum of the sizes of the allocations that kept parts lie in
    /// (`pinned_allocations.pinned_bytes`).
    pub pinned_bytes: u64,
    /// Whether the server runs on the warp stack (no slab pools).
    pub warp: bool,
}

/// What the first memory line draws on a stack: the slab stack's retained slab
/// bytes, or on the warp stack (no slab pools) the pinned allocations.
pub fn held_label(warp: bool) -> &'static str {
    if warp {
        "pinned allocations"
    } else {
        "retained slab bytes"
    }
}

impl Sample {
    /// The bytes kept alive for connections, as this server's stack shows them:
    /// retained slab bytes, or on the warp stack the pinned allocations' bytes.
    pub fn held_bytes(&self) -> u64 {
        if self.warp {
            self.pinned_bytes
        } else {
            self.retained_bytes
        }
    }

    pub fn from_snapshot(t_ms: f64, s: &Snapshot) -> Sample {
        Sample {
            t_ms,
            retained_bytes: s.totals.retained_bytes,
            referenced_bytes: s.totals.referenced_bytes,
            live_slabs: s.totals.live_slabs,
            resident_bytes: s.process.allocator.resident_bytes,
            rss_bytes: s.process.rss_bytes,
            buffer_pool_bytes: s.pool("buffer").map(|p| p.retained_bytes),
            open_connections: s.connections.open,
            pinned_bytes: s.pinned_allocations.pinned_bytes,
            warp: s.settings.stack == Some(Stack::Warp),
        }
    }
}

/// Samples of one server within the window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    window_ms: f64,
    max_samples: usize,
    samples: VecDeque<Sample>,
}

impl Default for Series {
    fn default() -> Self {
        Series::new(WINDOW_MS, MAX_SAMPLES)
    }
}

impl Series {
    pub fn new(window_ms: f64, max_samples: usize) -> Series {
        Series {
            window_ms,
            max_samples: max_samples.max(1),
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample and forgets what fell out of the window. A sample older than the
    /// newest one (a clock step back) restarts the series rather than folding time.
    pub fn push(&mut self, sample: Sample) {
        if self
            .samples
            .back()
            .is_some_and(|last| sample.t_ms < last.t_ms)
        {
            self.samples.clear();
        }
        self.samples.push_back(sample);
        self.trim(sample.t_ms);
    }

    /// Forgets the samples older than the window before `now_ms`.
    pub fn trim(&mut self, now_ms: f64) {
        while self
            .samples
            .front()
            .is_some_and(|s| s.t_ms < now_ms - self.window_ms)
        {
            self.samples.pop_front();
        }
        while self.samples.len() > self.max_samples {
            self.samples.pop_front();
        }
    }

    pub fn window_ms(&self) -> f64 {
        self.window_ms
    }

    pub fn samples(&self) -> impl ExactSizeIterator<Item = &Sample> + Clone {
        self.samples.iter()
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The largest value of a figure within the window, over the samples that have
    /// it (0 when none has).
    pub fn max_of(&self, figure: impl Fn(&Sample) -> Option<u64>) -> u64 {
        self.samples.iter().filter_map(figure).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fixtures;

    #[test]
    fn samples_older_than_the_window_are_forgotten() {
        let mut s = Series::new(10_000.0, 100);
        for i in 0..30 {
            s.push(fixtures::sample(i as f64 * 1000.0, i));
        }
        assert_eq!(s.len(), 11, "samples from t=19 s to t=29 s");
        assert_eq!(s.samples().next().map(|x| x.t_ms), Some(19_000.0));
        assert_eq!(s.latest().map(|x| x.retained_bytes), Some(29));
        assert_eq!(s.max_of(|x| Some(x.retained_bytes)), 29);
        s.trim(100_000.0);
        assert!(s.is_empty());
    }

    #[test]
    fn the_count_is_bounded_too() {
        let mut s = Series::new(1e12, 5);
        for i in 0..50 {
            s.push(fixtures::sample(i as f64, i));
        }
        assert_eq!(s.len(), 5);
        assert_eq!(s.samples().next().map(|x| x.retained_bytes), Some(45));
    }

    #[test]
    fn a_clock_step_back_restarts_the_series() {
        let mut s = Series::new(10_000.0, 100);
        s.push(fixtures::sample(5000.0, 1));
        s.push(fixtures::sample(6000.0, 2));
        s.push(fixtures::sample(1000.0, 3));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_sample_reads_the_snapshot_figures() {
        let snap = fixtures::snapshot(&[(1, &[17]), (2, &[])], 3);
        let sample = Sample::from_snapshot(42.0, &snap);
        assert_eq!(sample.t_ms, 42.0);
        assert_eq!(sample.retained_bytes, snap.totals.retained_bytes);
        assert_eq!(sample.live_slabs, 2);
        assert_eq!(sample.open_connections, 3);
        assert_eq!(sample.rss_bytes, snap.process.rss_bytes);
        assert_eq!(sample.resident_bytes, snap.process.allocator.resident_bytes);
    }

    #[test]
    fn an_unreadable_figure_is_no_sample_and_no_maximum() {
        let mut snap = fixtures::snapshot(&[(1, &[17])], 1);
        snap.process.rss_bytes = None;
        let sample = Sample::from_snapshot(0.0, &snap);
        assert_eq!(sample.rss_bytes, None);
        let mut s = Series::new(10_000.0, 100);
        s.push(sample);
        assert_eq!(s.max_of(|x| x.rss_bytes), 0);
        let mut readable = fixtures::sample(1000.0, 1);
        readable.rss_bytes = Some(7);
        s.push(readable);
        assert_eq!(s.max_of(|x| x.rss_bytes), 7);
    }

    #[test]
    fn the_warp_stack_charts_pinned_allocations() {
        let mut snap = crate::logic::fixtures::snapshot(&[(1, &[17])], 1);
        snap.pinned_allocations.pinned_bytes = 128 << 10;
        let slab = Sample::from_snapshot(0.0, &snap);
        assert!(!slab.warp);
        assert_eq!(slab.held_bytes(), snap.totals.retained_bytes);
        snap.settings.stack = Some(Stack::Warp);
        let warp = Sample::from_snapshot(0.0, &snap);
        assert!(warp.warp);
        assert_eq!(warp.held_bytes(), 128 << 10);
        assert_eq!(held_label(warp.warp), "pinned allocations");
        assert_eq!(held_label(false), "retained slab bytes");
        snap.settings.stack = None;
        assert!(!Sample::from_snapshot(0.0, &snap).warp, "null: not warp");
    }
}
