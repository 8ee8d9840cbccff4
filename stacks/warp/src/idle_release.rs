//! Giving back a quiet websocket's buffers (`ws_idle_release_ms`).
//!
//! tungstenite reads frames into one `BytesMut` and writes them from one `Vec`, and
//! neither ever shrinks: `FrameCodec::read_frame` reserves each frame's length in
//! the read buffer (tungstenite-0.29.0 `src/protocol/frame/mod.rs`), and `read_in`
//! zero-fills the buffer to its capacity at every read, so a burst of 16 KiB messages
//! leaves every websocket with a read buffer of hundreds of KB, resident, for the
//! rest of its life. Nothing in tungstenite's API shrinks them; what a user can do
//! today is make the codec anew: [`WebSocketStream::into_inner`] gives back the
//! transport (the buffers go with the old codec) and
//! [`WebSocketStream::from_raw_socket`] starts a fresh one of `read_buffer_size`.
//!
//! That is safe only where the old read buffer holds nothing: no frame read in part
//! and no fragmented message in progress (a complete frame would have been handed
//! out: the websocket has been waiting for one). tungstenite does not say; the
//! transport can, so [`FrameBoundary`] watches the bytes that come in and tracks the
//! frames' boundaries.
//!
//! A codec whose buffers cannot have grown is left as it is: until more bytes have
//! passed through it than its read buffer holds, its read buffer is the one it was
//! made with and its write buffer is no larger (making it anew would only add a
//! buffer, and in `retain` the old one stays pinned by the kept first message).

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite_warp::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite_warp::WebSocketStream;

/// A transport that tracks where the websocket frames it reads begin and end.
#[derive(Debug)]
pub struct FrameBoundary<T> {
    inner: T,
    frames: Frames,
    /// Bytes read and written since the codec over it was made.
    moved: u64,
}

impl<T> FrameBoundary<T> {
    pub fn new(inner: T) -> FrameBoundary<T> {
        FrameBoundary {
            inner,
            frames: Frames::default(),
            moved: 0,
        }
    }

    /// Bytes read and written since the codec over it was made: more than its read
    /// buffer holds, and its buffers may have grown.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// Whether every byte read so far belongs to a complete frame, and the last data
    /// frame ended its message: a codec made now would miss nothing.
    pub fn at_boundary(&self) -> bool {
        self.frames.at_boundary()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameBoundary<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        let read = &buf.filled()[before..];
        this.moved += read.len() as u64;
        this.frames.feed(read);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameBoundary<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.moved += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.moved += n as u64;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where the byte stream is among frames (RFC 6455 section 5.2): in a header (how
/// much of it is in, and those bytes) or in a payload (how much is still to come).
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 14],
    header_len: usize,
    payload_left: u64,
    /// A data frame without FIN came: its message goes on in continuation frames.
    in_message: bool,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0 && !self.in_message
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            if let Some(payload) = self.header_done() {
                self.header_len = 0;
                self.payload_left = payload;
            }
        }
    }

    /// The payload length once the header is complete.
    fn header_done(&mut self) -> Option<u64> {
        let h = &self.header[..self.header_len];
        if h.len() < 2 {
            return None;
        }
        let length_bytes = match h[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_bytes = if h[1] & 0x80 != 0 { 4 } else { 0 };
        if h.len() < 2 + length_bytes + mask_bytes {
            return None;
        }
        let payload = match length_bytes {
            0 => u64::from(h[1] & 0x7f),
            n => h[2..2 + n]
                .iter()
                .fold(0u64, |len, b| (len << 8) | u64::from(*b)),
        };
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
        // Data frames (continuation, text, binary) carry the message; control
        // frames may come between its fragments and change nothing.
        if opcode < 8 {
            self.in_message = !fin;
        }
        Some(payload)
    }
}

/// A server websocket over a transport that tracks frame boundaries.
pub type Releasable<T> = WebSocketStream<FrameBoundary<T>>;

/// What [`release`] did with a quiet websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Its codec was made anew: the buffers it had are freed.
    Yes,
    /// Too little has passed through it for its buffers to have grown: left as it is.
    NotGrown,
    /// In the middle of a frame or message, or it could not flush in time: left as
    /// it is, to be tried after the next quiet spell.
    NotNow,
}

/// Makes `socket`'s codec anew (its read and write buffers freed, a read buffer of
/// `config.read_buffer_size` to come) if its buffers may have grown and it stands at
/// a frame boundary with nothing left to write (what tungstenite still owes the
/// peer, a pong, is flushed first, within `flush_within`); otherwise gives it back as
/// it is. The second value says which.
pub async fn release<T>(
    mut socket: Releasable<T>,
    config: WebSocketConfig,
    flush_within: Duration,
) -> (Releasable<T>, Released)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if socket.get_ref().moved() <= config.read_buffer_size as u64 {
        return (socket, Released::NotGrown);
    }
    let flushed = tokio::time::timeout(flush_within, socket.flush()).await;
    if !matches!(flushed, Ok(Ok(()))) || !socket.get_ref().at_boundary() {
        return (socket, Released::NotNow);
    }
    let mut transport = socket.into_inner();
    transport.moved = 0;
    let fresh = WebSocketStream::from_raw_socket(transport, Role::Server, Some(config)).await;
    (fresh, Released::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: FIN or not, opcode, masked, with `len` payload bytes.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=0xffff => {
                f.push(0x80 | 126);
                f.extend((len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend((len as u64).to_be_bytes());
            }
        }
        f.extend([1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn boundaries_are_found_however_the_bytes_are_cut() {
        let stream: Vec<u8> = [
            frame(true, 1, 5),
            frame(true, 2, 300),
            frame(true, 2, 70_000),
            frame(true, 9, 0),
        ]
        .concat();
        for cut in [1, 2, 3, 7, 13, 64, 4096, stream.len()] {
            let mut frames = Frames::default();
            for chunk in stream.chunks(cut) {
                frames.feed(chunk);
            }
            assert!(frames.at_boundary(), "cut {cut}");
        }
        // Every prefix short of a frame's end is not at a boundary.
        let one = frame(true, 2, 300);
        for end in 1..one.len() {
            let mut frames = Frames::default();
            frames.feed(&one[..end]);
            assert!(!frames.at_boundary(), "{end} of {}", one.len());
        }
    }

    #[test]
    fn a_fragmented_message_is_no_boundary_until_its_last_fragment() {
        let mut frames = Frames::default();
        frames.feed(&frame(false, 1, 10));
        assert!(!frames.at_boundary());
        // A ping between fragments changes nothing.
        frames.feed(&frame(true, 9, 2));
        assert!(!frames.at_boundary());
        frames.feed(&frame(false, 0, 10));
        assert!(!frames.at_boundary());
        frames.feed(&frame(true, 0, 10));
        assert!(frames.at_boundary());
    }
}
