//! Waiting for a condition with a bound: the one way the tests (and tools that
//! settle before they read) wait, polling instead of sleeping and hoping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every `poll` until it holds (true) or `bound` has passed (false).
pub async fn until<F, Fut>(bound: Duration, poll: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() >= bound {
            return false;
        }
        tokio::time::sleep(poll).await;
    }
}

/// [`until`], panicking with `what` when the bound passes: for tests.
pub async fn expect<F, Fut>(what: &str, bound: Duration, poll: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        until(bound, poll, check).await,
        "not within {bound:?}: {what}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_up_at_the_bound_and_returns_once_the_condition_holds() {
        let (bound, poll) = (Duration::from_millis(300), Duration::from_millis(10));
        let start = Instant::now();
        assert!(!until(bound, poll, || async { false }).await);
        assert!(start.elapsed() >= bound);
        let mut polls = 0;
        let held = until(Duration::from_secs(20), poll, || {
            polls += 1;
            let now = polls;
            async move { now == 5 }
        })
        .await;
        assert!(held);
        assert_eq!(polls, 5);
    }
}
