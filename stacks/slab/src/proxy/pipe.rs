//! Piping a proxied connection both ways, from one small future.
//!
//! Both directions are driven by one future over the two unsplit streams (as
//! `tokio::io::copy_bidirectional` does), so an idle connection holds its two
//! streams, two empty queues and nothing else: no split halves, no timer, no buffer.
//! Reads go through the slab pools; a write the peer does not take within the write
//! timeout ends the connection, and once the upstream has ended its side the client
//! has [`CLOSE_GRACE`] to end its own.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use pools::{Buffer, BufferPool, ReadViews, SlabPool, SlabView};

/// Time a client has to close once the upstream has ended its side (after a refusal,
/// or the wss's close frame): a client that never closes holds no descriptor longer.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// One direction: what was read from one side and not yet written to the other.
#[derive(Default)]
struct Flow {
    /// Views read and not yet all written; unallocated while empty.
    pending: VecDeque<SlabView>,
    /// Bytes of the front view already written.
    written: usize,
    /// The source is at end of stream.
    ended: bool,
    /// The destination's write side is shut down: this direction is over.
    done: bool,
    /// Since when the destination has not taken what it was given.
    stalled_since: Option<Instant>,
}

impl Flow {
    /// Moves bytes from `from` to `to` until the source ends (then shuts `to` down and
    /// is ready) or neither side can go on now.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        pool: &SlabPool,
        small: Option<&BufferPool>,
        from: &mut R,
        to: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: ReadViews + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            while !self.pending.is_empty() {
                let wrote = self.poll_write_pending(cx, to);
                match ready!(stall_on(&mut self.stalled_since, wrote))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => self.advance(n),
                }
            }
            if self.pending.capacity() > 0 {
                self.pending = VecDeque::new();
            }
            ready!(stall_on(
                &mut self.stalled_since,
                Pin::new(&mut *to).poll_flush(cx)
            ))?;
            if self.ended {
                let shut = Pin::new(&mut *to).poll_shutdown(cx);
                ready!(stall_on(&mut self.stalled_since, shut))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            if !ready!(from.poll_read_views(cx, pool, &mut self.pending))? {
                self.ended = true;
            }
            if let Some(buffers) = small {
                // Small pieces go on from a new small buffer, as Node's did.
                for view in self.pending.iter_mut() {
                    if buffers.pools(view.len()) {
                        if let Buffer::Pooled(copy) = buffers.copy(&[view]) {
                            *view = copy;
                        }
                    }
                }
            }
        }
    }
}

impl Flow {
    /// Writes from the pending views: several at once when the destination takes
    /// vectored writes (a TLS read can bring one view per record).
    fn poll_write_pending<W>(&self, cx: &mut Context<'_>, to: &mut W) -> Poll<io::Result<usize>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let to = Pin::new(to);
        let first = &self.pending[0][self.written..];
        if self.pending.len() == 1 || !to.is_write_vectored() {
            return to.poll_write(cx, first);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        slices[0] = IoSlice::new(first);
        let mut n = 1;
        for view in self.pending.iter().skip(1).take(MAX_SLICES - 1) {
            slices[n] = IoSlice::new(view);
            n += 1;
        }
        to.poll_write_vectored(cx, &slices[..n])
    }

    /// Drops what a write of `n` bytes took from the pending views.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let left = self.pending[0].len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.pending.pop_front();
            self.written = 0;
        }
    }
}

/// Most views one vectored write takes.
const MAX_SLICES: usize = 16;

/// Notes when a destination stops taking writes, and when it takes them again.
fn stall_on<T>(stalled_since: &mut Option<Instant>, polled: Poll<T>) -> Poll<T> {
    match polled {
        Poll::Pending => {
            stalled_since.get_or_insert_with(Instant::now);
        }
        Poll::Ready(_) => *stalled_since = None,
    }
    polled
}

/// How a piped connection ended.
#[derive(Debug)]
pub enum PipeEnd {
    /// Both sides ended their streams.
    Closed,
    /// Reading from the client or writing to the upstream failed.
    ClientToUpstream(io::Error),
    /// Reading from the upstream or writing to the client failed.
    UpstreamToClient(io::Error),
    /// A side did not take a write within the write timeout.
    WriteTimedOut(&'static str),
    /// The client did not close within [`CLOSE_GRACE`] of the upstream.
    ClientLingered,
}

/// The pools the two directions read through.
pub struct Pools<'a> {
    /// For the client's bytes (`tls`, or `tcp` without TLS).
    pub client: &'a SlabPool,
    /// For the upstream's bytes (`tcp`).
    pub upstream: &'a SlabPool,
    /// Small pieces of the client's plaintext are copied into it before they go
    /// upstream (the model of Node's small `Buffer`s); `None`: they go as read.
    pub small: Option<&'a BufferPool>,
}

/// Pipes both ways until both sides have ended, or at once when either fails.
pub async fn pipe<C, U>(client: &mut C, upstream: &mut U, pools: Pools<'_>, wt: Duration) -> PipeEnd
where
    C: ReadViews + AsyncWrite + Unpin + ?Sized,
    U: ReadViews + AsyncWrite + Unpin + ?Sized,
{
    let mut to_upstream = Flow::default();
    let mut to_client = Flow::default();
    let mut upstream_ended_at = None;
    // Allocated only when a deadline is first due.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if !to_upstream.done {
            if let Poll::Ready(Err(e)) =
                to_upstream.poll(cx, pools.client, pools.small, client, upstream)
            {
                return Poll::Ready(PipeEnd::ClientToUpstream(e));
            }
        }
        if !to_client.done {
            match to_client.poll(cx, pools.upstream, None, upstream, client) {
                Poll::Ready(Err(e)) => return Poll::Ready(PipeEnd::UpstreamToClient(e)),
                Poll::Ready(Ok(())) => upstream_ended_at = Some(Instant::now()),
                Poll::Pending => {}
            }
        }
        if to_upstream.done && to_client.done {
            return Poll::Ready(PipeEnd::Closed);
        }
        // The earliest deadline due: a stalled write, or the client's grace.
        let mut due: Option<(Instant, PipeEnd)> = None;
        let mut consider = |at: Option<Instant>, end: fn() -> PipeEnd| {
            if let Some(at) = at {
                if due.as_ref().is_none_or(|(d, _)| at < *d) {
                    due = Some((at, end()));
                }
            }
        };
        consider(to_upstream.stalled_since.map(|t| t + wt), || {
            PipeEnd::WriteTimedOut("upstream")
        });
        consider(to_client.stalled_since.map(|t| t + wt), || {
            PipeEnd::WriteTimedOut("client")
        });
        consider(upstream_ended_at.map(|t| t + CLOSE_GRACE), || {
            PipeEnd::ClientLingered
        });
        if let Some((at, end)) = due {
            let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(end);
            }
        }
        Poll::Pending
    })
    .await
}
