//! Waits with a bound. [`until`] and [`expect`] are `runtime::wait`'s (the
//! libraries' own tests wait with them too); the rest is built on them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use runtime::wait::{expect, until};

/// How often the waits here look again.
pub const POLL: Duration = Duration::from_millis(50);

/// Whether something accepts a TCP connection on `addr` now.
pub async fn accepts(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// Waits at most `bound` until something accepts TCP connections on `addr`;
/// whether it did.
pub async fn listening(addr: SocketAddr, bound: Duration) -> bool {
    until(bound, POLL, || accepts(addr)).await
}

/// A check for a step that must end within `limit` from now (the client's fleet
/// calls it between its moves): `Ok` until then, then the error `late()` words.
pub fn within(limit: Duration, late: impl Fn() -> String) -> impl FnMut() -> Result<(), String> {
    let deadline = Instant::now() + limit;
    move || {
        if Instant::now() > deadline {
            Err(late())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listening_is_seen_and_its_absence_bounded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(listening(addr, Duration::from_secs(5)).await);
        drop(listener);
        let started = Instant::now();
        assert!(!listening(addr, Duration::from_millis(200)).await);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn within_fails_with_its_message_once_the_limit_has_passed() {
        let mut check = within(Duration::from_millis(100), || "late".to_string());
        assert_eq!(check(), Ok(()));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(check(), Err("late".to_string()));
    }
}
