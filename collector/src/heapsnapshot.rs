//! Serving a snapshot as a Chrome heap snapshot (`GET /snapshot?format=heapsnapshot`).
//!
//! The graph is the `snapshot` crate's ([`snapshot::heapsnapshot`]); here it is
//! written on a blocking thread into a small bounded channel whose 64 KiB pieces
//! are the response body, so the file is never held whole in the server's memory.

use bytes::Bytes;
use snapshot::Snapshot;
use tokio::sync::mpsc;
use warp::http::header::{HeaderValue, CONTENT_TYPE};
use warp::reply::{Reply, Response};

/// Pieces written ahead of what the peer has read.
const AHEAD: usize = 4;

/// The response whose body is `snap` as a `.heapsnapshot`, written as it is sent.
pub fn response(snap: Snapshot) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match snapshot::heapsnapshot::write(&snap, Sender(tx)) {
            Ok(w) => tracing::debug!(
                nodes = w.nodes,
                edges = w.edges,
                bytes = w.bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "heap snapshot written"
            ),
            // The peer went away: nothing to tell it.
            Err(e) => tracing::debug!("heap snapshot not sent whole: {e}"),
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let mut response = warp::reply::stream(body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Hands each piece the writer flushes to the response body.
struct Sender(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for Sender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "peer gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
