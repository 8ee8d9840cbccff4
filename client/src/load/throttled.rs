//! A warning that repeats at most once per interval, counting the ones left out.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most one warning per this interval for repeated failures of one kind.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// Logs a kind of event at most once per [`WARN_EVERY`], counting the ones left out.
pub(super) struct Throttled {
    what: &'static str,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    pub(super) fn new(what: &'static str) -> Self {
        Throttled {
            what,
            state: Mutex::new((None, 0)),
        }
    }

    pub(super) fn warn(&self, reason: &dyn Display) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, skipped) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            *skipped += 1;
            return;
        }
        if *skipped > 0 {
            tracing::warn!(
                "{}: {reason} (and {skipped} more since the last such line)",
                self.what
            );
        } else {
            tracing::warn!("{}: {reason}", self.what);
        }
        *last = Some(Instant::now());
        *skipped = 0;
    }
}
