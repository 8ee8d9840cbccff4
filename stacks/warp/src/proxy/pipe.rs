//! Copying a tunnel's bytes both ways with no buffer held while it is idle
//! (`proxy_copy_on_readable`): [`Pipe`].
//!
//! `tokio::io::copy_bidirectional` gives each direction a buffer of its own
//! (`proxy_copy_buffer_size`, tokio's default 8 KiB) for the connection's whole life,
//! so an idle websocket holds two of them. [`Pipe`] instead reads each side
//! only into the worker thread's scratch buffer, borrowed for the length of one poll:
//! a read that has nothing to give (the socket not readable, or rustls holding no whole
//! record yet) returns `Pending` and the connection holds no buffer of ours. The bytes
//! read are written to the other side at once from the scratch buffer; only what that
//! side does not take (a peer that does not read) is copied into an allocation of
//! the direction's own, freed once it is written, and that direction reads nothing more
//! until then (backpressure, as `copy_bidirectional` has).
//!
//! `tokio::net::TcpStream::poll_read` and tokio-rustls's `TlsStream::poll_read` both wait
//! for readiness themselves (tokio's reactor; tokio-rustls reads ciphertext only when
//! the socket is readable), so polling them with a borrowed buffer is "reading only when
//! readable" without a separate `readable()` wait.
//!
//! Ends as `copy_bidirectional` does: when one side reaches end of file the other is
//! shut for writing (after what is pending is written), and the pipe returns once both
//! directions have, with the bytes each carried; the first error ends it.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

thread_local! {
    /// The worker thread's scratch buffer: every tunnel on this thread reads into it,
    /// one poll at a time.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads and writes one poll may do per direction before it yields, so that a busy
/// tunnel lets the thread's other tasks run.
const ROUNDS_PER_POLL: usize = 32;

/// One direction's state.
#[derive(Default)]
struct Half {
    /// Bytes read but not yet taken by the writer, and how many of them were written.
    /// `None` (no allocation) while the writer keeps up.
    pending: Option<(Box<[u8]>, usize)>,
    /// Bytes were written since the last flush.
    need_flush: bool,
    /// The reader ended; shutting the writer down.
    eof: bool,
    /// Both done: the reader ended and the writer is shut.
    done: bool,
    /// Bytes carried.
    carried: u64,
}

impl Half {
    /// Starts with `leftover` to write first (the bytes hyper read past an upgrade).
    fn with_leftover(leftover: &[u8]) -> Half {
        Half {
            pending: (!leftover.is_empty()).then(|| (leftover.into(), 0)),
            ..Half::default()
        }
    }

    /// Writes what is pending; `Ready(Ok)` once nothing is.
    fn poll_pending<W>(&mut self, cx: &mut Context<'_>, writer: &mut W) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin,
    {
        if let Some((bytes, written)) = &mut self.pending {
            while *written < bytes.len() {
                let n = ready!(Pin::new(&mut *writer).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
                self.carried += n as u64;
                self.need_flush = true;
            }
            self.pending = None;
        }
        Poll::Ready(Ok(()))
    }

    /// Carries bytes from `reader` to `writer` until the reader has nothing more for
    /// now (`Pending`, nothing held) or has ended and the writer is shut (`Ready`).
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        scratch_size: usize,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(self.carried));
        }
        for _ in 0..ROUNDS_PER_POLL {
            if self.pending.is_some() {
                ready!(self.poll_pending(cx, writer))?;
            }
            if self.eof {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(self.carried));
            }
            match self.read_and_write(cx, reader, writer, scratch_size) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Nothing to read: flush what was written, then wait (the reader
                    // and, if it is not flushed yet, the writer wake this task).
                    if self.need_flush && self.pending.is_none() {
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One read into the thread's scratch buffer and as much of it written as the
    /// writer takes; the rest kept in `pending`. `Pending` when there was nothing to
    /// read; `Ready(Ok)` after a read (or end of file, noted in `eof`).
    fn read_and_write<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        scratch_size: usize,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < scratch_size {
                scratch.resize(scratch_size, 0);
            }
            let buf = &mut scratch[..scratch_size];
            let mut read = ReadBuf::new(buf);
            ready!(Pin::new(&mut *reader).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                self.eof = true;
                return Poll::Ready(Ok(()));
            }
            let bytes = &buf[..n];
            let mut written = 0;
            while written < n {
                match Pin::new(&mut *writer).poll_write(cx, &bytes[written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(w)) => {
                        written += w;
                        self.carried += w as u64;
                        self.need_flush = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // The writer's waker is registered: keep the rest until then.
                        self.pending = Some((bytes[written..].into(), 0));
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            Poll::Ready(Ok(()))
        })
    }
}

/// Copies `a` to `b` and `b` to `a` until both have ended, reading through the thread's
/// scratch buffer; resolves to the bytes carried each way (a to b, b to a), as
/// `copy_bidirectional` does. A future of its own (not an `async fn`), so that it
/// holds both sides once and nothing more: the whole tunnel's state once upgraded.
pub(super) struct Pipe<A, B> {
    a: A,
    b: B,
    a_to_b: Half,
    b_to_a: Half,
    scratch_size: usize,
}

impl<A, B> Pipe<A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    /// The pipe between `a` and `b`, reading into a scratch buffer of `scratch_size`
    /// bytes; `a_leftover` is written to `b` first and `b_leftover` to `a` (the bytes
    /// hyper had read past each side's upgrade). The leftovers are copied out, so that
    /// the buffers they slice (hyper's read buffers) are freed now.
    pub(super) fn new(
        a: A,
        b: B,
        a_leftover: Bytes,
        b_leftover: Bytes,
        scratch_size: usize,
    ) -> Pipe<A, B> {
        Pipe {
            a,
            b,
            a_to_b: Half::with_leftover(&a_leftover),
            b_to_a: Half::with_leftover(&b_leftover),
            scratch_size,
        }
    }
}

impl<A, B> Future for Pipe<A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<(u64, u64)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Pipe {
            a,
            b,
            a_to_b,
            b_to_a,
            scratch_size,
        } = &mut *self;
        let up = a_to_b.poll_copy(cx, a, b, *scratch_size)?;
        let down = b_to_a.poll_copy(cx, b, a, *scratch_size)?;
        match (up, down) {
            (Poll::Ready(up), Poll::Ready(down)) => Poll::Ready(Ok((up, down))),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A pair of connected sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// Both ways, leftovers first, more than the scratch buffer at once, then end of
    /// file on each side in turn.
    #[tokio::test]
    async fn carries_both_ways_and_ends_when_both_sides_have() {
        let (mut client, a) = pair().await;
        let (b, mut server) = pair().await;
        let pipe = tokio::spawn(Pipe::new(
            a,
            b,
            Bytes::from_static(b"left-a "),
            Bytes::from_static(b"left-b "),
            64,
        ));
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let expected = [b"left-a ".as_slice(), &big].concat();
        let up = tokio::spawn({
            let big = big.clone();
            async move {
                client.write_all(&big).await.unwrap();
                client.shutdown().await.unwrap();
                let mut back = Vec::new();
                client.read_to_end(&mut back).await.unwrap();
                back
            }
        });
        let got = read_exactly(&mut server, expected.len(), 10).await;
        assert!(got == expected, "the bytes arrive in order");
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        let back = tokio::time::timeout(std::time::Duration::from_secs(10), up)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(back, b"left-b bye");
        let (there, back) = tokio::time::timeout(std::time::Duration::from_secs(10), pipe)
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        assert_eq!((there, back), (expected.len() as u64, 10));
    }

    /// `len` bytes read from `socket`, within `secs` seconds.
    async fn read_exactly(socket: &mut TcpStream, len: usize, secs: u64) -> Vec<u8> {
        let mut got = vec![0; len];
        tokio::time::timeout(
            std::time::Duration::from_secs(secs),
            socket.read_exact(&mut got),
        )
        .await
        .expect("in time")
        .unwrap();
        got
    }

    /// A pair of connected sockets with buffers as small as the kernel allows.
    async fn small_pair() -> (TcpStream, TcpStream) {
        let listen = tokio::net::TcpSocket::new_v4().unwrap();
        listen.set_recv_buffer_size(4096).unwrap();
        listen.set_send_buffer_size(4096).unwrap();
        listen.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = listen.listen(8).unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = tokio::net::TcpSocket::new_v4().unwrap();
        connect.set_recv_buffer_size(4096).unwrap();
        connect.set_send_buffer_size(4096).unwrap();
        let (a, b) = tokio::join!(connect.connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// A side that does not read for a while: what the pipe read for it waits in the
    /// direction's own allocation, reading stops, and everything arrives in order once
    /// it reads again.
    #[tokio::test]
    async fn a_side_that_stops_reading_gets_everything_later() {
        let (mut client, a) = small_pair().await;
        let (b, mut server) = small_pair().await;
        let pipe = tokio::spawn(Pipe::new(a, b, Bytes::new(), Bytes::new(), 4096));
        let sent: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 253) as u8).collect();
        let writer = tokio::spawn({
            let sent = sent.clone();
            async move {
                client.write_all(&sent).await.unwrap();
                client
            }
        });
        // The server reads nothing until the pipe and the sockets are full.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !writer.is_finished(),
            "2 MiB do not fit the sockets' buffers"
        );
        let got = read_exactly(&mut server, sent.len(), 20).await;
        assert!(got == sent, "every byte, in order");
        let mut client = writer.await.unwrap();
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
        let (up, down) = tokio::time::timeout(std::time::Duration::from_secs(10), pipe)
            .await
            .expect("the pipe ends once both sides have")
            .unwrap()
            .unwrap();
        assert_eq!((up, down), (sent.len() as u64, 0));
    }
}
