//! Clean shutdown: one signal to every task, and a bounded wait for them to finish.
//!
//! As in mini-redis: a cancellation token every accept loop and connection task
//! watches, and a task tracker that says when they have all ended.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// Shared by every task of a process; cloning is cheap.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns a task that shutdown waits for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Spawns `task` so that shutdown waits for it, and drops it at shutdown.
    ///
    /// The task holds `task` once: an `async` block around a `select!` would hold it
    /// twice (as the block's capture and as the select's own), doubling the memory
    /// of every connection task.
    pub fn spawn_until_shutdown<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(UntilShutdown {
            task,
            shutdown: self.token.clone().cancelled_owned(),
        });
    }

    /// Counts as a task shutdown waits for until dropped: for work that others spawn
    /// (warp spawns each websocket's task itself).
    pub fn track(&self) -> tokio_util::task::task_tracker::TaskTrackerToken {
        self.tracker.token()
    }

    /// Resolves once shutdown has been asked for.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.token.cancel()
    }

    /// Triggers shutdown on Ctrl-C (SIGINT) or SIGTERM.
    ///
    /// The handlers are in place when this returns (a signal that comes right after,
    /// say once the startup line is printed, is caught, not the default death).
    pub fn on_signals(&self) {
        use tokio::signal::unix::{signal, SignalKind};
        let this = self.clone();
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => tracing::info!("Ctrl-C: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = this.cancelled() => return,
            }
            this.trigger();
        });
    }

    /// Triggers shutdown and waits up to `bound` for every tracked task; true when all ended.
    pub async fn finish(&self, bound: Duration) -> bool {
        self.trigger();
        self.tracker.close();
        let done = tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_ok();
        if !done {
            tracing::warn!(
                tasks = self.tracker.len(),
                "some tasks did not stop within {bound:?}; exiting anyway"
            );
        }
        done
    }
}

pin_project_lite::pin_project! {
    /// A task that ends at shutdown if it has not ended before.
    struct UntilShutdown<F> {
        #[pin]
        task: F,
        #[pin]
        shutdown: WaitForCancellationFutureOwned,
    }
}

impl<F: Future<Output = ()>> Future for UntilShutdown<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.task.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.shutdown.poll(cx)
    }
}
