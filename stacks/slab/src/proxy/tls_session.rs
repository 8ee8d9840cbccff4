//! The proxy's server side of TLS, holding no buffer while a connection is idle.
//!
//! It drives rustls's unbuffered API over the client's socket. A read takes the
//! ciphertext into a scratch buffer of the worker thread, decrypts it there and hands
//! the application data to the slab pool, as Node's TLS socket writes what it decrypts
//! into its pool; only a record that has arrived in part is kept, alone, until the
//! rest of it comes. A write seals the records into the thread's scratch buffer too,
//! and keeps only what the socket did not take at once. An idle session holds its
//! socket and rustls's connection state (keys and all), and nothing else: rustls's
//! buffered connection keeps a 4 KiB read buffer per connection for its whole life.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use pools::{ReadViews, SlabPool, SlabView};

/// Most application data sealed by one write: four full TLS records.
const MAX_WRITE: usize = 64 * 1024;

/// A TLS server connection over a TCP socket.
pub struct TlsSession {
    io: TcpStream,
    conn: UnbufferedServerConnection,
    /// The start of a record that has not all arrived; empty (unallocated) otherwise.
    partial: Vec<u8>,
    /// Sealed bytes the socket has not taken yet, from `sent` on; empty otherwise.
    outgoing: Vec<u8>,
    sent: usize,
    /// The client sent close_notify, or closed its socket.
    read_closed: bool,
    /// close_notify is on its way to the client.
    close_notify_sent: bool,
}

/// The worker thread's buffers: used within one poll, never held across one.
#[derive(Default)]
struct Scratch {
    /// Ciphertext of one read, after a kept partial record.
    tls: Vec<u8>,
    /// Records sealed by one write.
    sealed: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Makes `buf` at least `len` bytes long (zero-filled once, when it grows).
fn at_least(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..]
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Appends what `write` produces to `out`, growing it to the size rustls asks for.
fn append_with(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => {
                out.truncate(start);
                return Err(tls_error("cannot encode a record"));
            }
        }
    }
}

fn encode_needs(e: EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_needs(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

impl TlsSession {
    /// A session that will complete its handshake as the client's first bytes are read.
    pub fn new(io: TcpStream, config: Arc<ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession {
            io,
            conn: UnbufferedServerConnection::new(config)?,
            partial: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            read_closed: false,
            close_notify_sent: false,
        })
    }

    /// Whether the handshake is over, so that application data can go both ways.
    pub fn is_established(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// Bytes of buffers the session holds now: a partial record and unsent records.
    /// None while the connection is idle.
    pub fn buffered_bytes(&self) -> usize {
        self.partial.capacity() + self.outgoing.capacity()
    }

    /// Processes the records in `tls`, handing their application data to `data` and
    /// appending what rustls has to send to `outgoing`; returns the bytes consumed
    /// (the rest is a record that has not all arrived).
    fn process(&mut self, tls: &mut [u8], data: &mut impl FnMut(&[u8])) -> io::Result<usize> {
        let mut consumed = 0;
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut tls[consumed..]);
            let mut more = true;
            match state {
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        data(record.payload);
                        discard += record.discard;
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    append_with(&mut self.outgoing, 1024, |buf| {
                        encode.encode(buf).map_err(encode_needs)
                    })?;
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                Ok(ConnectionState::BlockedHandshake) | Ok(ConnectionState::WriteTraffic(_)) => {
                    more = false
                }
                Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => {
                    self.read_closed = true;
                    more = false;
                }
                Ok(other) => return Err(tls_error(format!("unexpected state {other:?}"))),
                Err(e) => {
                    self.queue_alert();
                    return Err(tls_error(e));
                }
            }
            consumed += discard;
            if !more {
                return Ok(consumed);
            }
        }
    }

    /// After an error, queues the alert rustls has for the client, if any.
    fn queue_alert(&mut self) {
        for _ in 0..4 {
            let status = self.conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let _ = append_with(&mut self.outgoing, 1024, |buf| {
                        encode.encode(buf).map_err(encode_needs)
                    });
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }

    /// Seals `data` (or a close_notify, with `None`) after anything rustls has queued
    /// to send, appending the records to `out`.
    fn seal(&mut self, data: Option<&[u8]>, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.partial[..]);
            let done = match state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    match data {
                        // Each record adds a header and a tag (22 bytes in TLS 1.3).
                        Some(data) => {
                            append_with(out, data.len() + 64 * (1 + data.len() / 16384), |buf| {
                                traffic.encrypt(data, buf).map_err(encrypt_needs)
                            })?
                        }
                        None => append_with(out, 64, |buf| {
                            traffic.queue_close_notify(buf).map_err(encrypt_needs)
                        })?,
                    }
                    true
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    append_with(out, 1024, |buf| encode.encode(buf).map_err(encode_needs))?;
                    false
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    false
                }
                Ok(other) => return Err(tls_error(format!("cannot send in state {other:?}"))),
                Err(e) => return Err(tls_error(e)),
            };
            self.partial.drain(..discard);
            if done {
                return Ok(());
            }
        }
    }

    /// Writes the sealed bytes kept for the socket; ready once there are none.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends what it can of `sealed` now and keeps the rest for the socket.
    fn send_or_keep(&mut self, cx: &mut Context<'_>, sealed: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        if self.outgoing.is_empty() {
            while sent < sealed.len() {
                match Pin::new(&mut self.io).poll_write(cx, &sealed[sent..]) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => break,
                }
            }
        }
        self.outgoing.extend_from_slice(&sealed[sent..]);
        Ok(())
    }
}

impl ReadViews for TlsSession {
    fn poll_read_views(
        &mut self,
        cx: &mut Context<'_>,
        pool: &SlabPool,
        out: &mut impl Extend<SlabView>,
    ) -> Poll<io::Result<bool>> {
        // What the handshake has to send goes out first, without waiting on the client.
        if let Poll::Ready(Err(e)) = self.poll_send_outgoing(cx) {
            return Poll::Ready(Err(e));
        }
        if self.read_closed {
            return Poll::Ready(Ok(false));
        }
        let read = SCRATCH.with_borrow_mut(|scratch| {
            let kept = self.partial.len();
            let buf = at_least(&mut scratch.tls, kept + pool.read_size());
            buf[..kept].copy_from_slice(&self.partial);
            let mut read = ReadBuf::new(&mut buf[kept..kept + pool.read_size()]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                // The socket ended without close_notify; a record cut short is dropped.
                self.read_closed = true;
                self.partial = Vec::new();
                return Poll::Ready(Ok(false));
            }
            let end = kept + n;
            // Each record's application data goes straight into the pool.
            let consumed = self.process(&mut buf[..end], &mut |mut data: &[u8]| {
                while !data.is_empty() {
                    match pool.poll_read(Pin::new(&mut data), cx) {
                        Poll::Ready(Ok(Some(view))) => out.extend(Some(view)),
                        _ => unreachable!("a read from memory is ready, and not empty"),
                    }
                }
            })?;
            self.partial.clear();
            self.partial.extend_from_slice(&buf[consumed..end]);
            if self.partial.is_empty() {
                self.partial = Vec::new();
            }
            Poll::Ready(Ok(true))
        });
        if let Poll::Ready(Err(e)) = self.poll_send_outgoing(cx) {
            return Poll::Ready(Err(e));
        }
        read
    }
}

impl AsyncWrite for TlsSession {
    /// Seals up to `MAX_WRITE` bytes of `data`: taken once sealed, even if the socket
    /// has not taken all the records yet (the next write or flush sends them first).
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        let n = data.len().min(MAX_WRITE);
        SCRATCH.with_borrow_mut(|scratch| {
            let sealed = &mut scratch.sealed;
            sealed.clear();
            this.seal(Some(&data[..n]), sealed)?;
            this.send_or_keep(cx, sealed)?;
            sealed.clear();
            Poll::Ready(Ok(n))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send_outgoing(cx)
    }

    /// Sends close_notify (once the handshake is over), then ends the socket's write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        if !this.close_notify_sent && this.is_established() {
            this.close_notify_sent = true;
            let mut notify = Vec::new();
            // A session rustls has ended on an error has no close_notify to send.
            if this.seal(None, &mut notify).is_ok() {
                this.send_or_keep(cx, &notify)?;
                ready!(this.poll_send_outgoing(cx))?;
            }
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
