//! The test kit: what the playground's tests (`native/tests`, `e2e`) and the bench
//! share, written once.
//!
//! - [`free_port`]: a loopback port free now, that no test beside this one picks.
//! - [`ChildGuard`]: a child process killed and reaped when dropped, so a failing
//!   test leaves no server behind.
//! - [`wait_until`] and [`BOUND`]: waits for a condition with a bound, never a sleep
//!   and a hope.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The bound of a test's waits: long enough for a loaded CI machine, short enough
/// that a hang fails the test instead of the run.
pub const BOUND: Duration = Duration::from_secs(20);

/// A loopback port free now (bound, then released), below the kernel's ephemeral
/// range (32768 and up here), so that no client socket of a test running beside this
/// one takes it as its source port before the server binds it (seen: a wss that could
/// not listen). Each call starts at the next of a process-wide sequence, from a place
/// that depends on the process, so two tests never pick the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 20000-31999.
        let port = 20000 + ((std::process::id().wrapping_mul(97).wrapping_add(n)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped; derefs to the
/// [`Child`].
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Kills the process now and waits for it (nothing when it has already exited).
    pub fn kill(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl From<Child> for ChildGuard {
    fn from(child: Child) -> Self {
        ChildGuard(child)
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `check` holds, polling every 20 ms, for at most [`BOUND`]; panics
/// naming `what` when it never does.
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    runtime::wait::expect(what, BOUND, Duration::from_millis(20), check).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_free_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        for p in ports {
            assert!((20000..32000).contains(&p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("still free");
        }
    }

    #[test]
    fn a_dropped_guard_kills_and_reaps_its_child() {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        drop(ChildGuard(child));
        // Reaped: no /proc entry left (not even a zombie).
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
