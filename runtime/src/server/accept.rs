//! Listening and accepting: one accept loop with shutdown and backoff, or one per
//! thread on a shared port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::shutdown::Shutdown;

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
/// latency tail, see docs/results/benchmarks.md.) Returns the address bound, once every listener is.
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
