//! Websocket frames read straight from slab views.
//!
//! The framing layer keeps no read buffer of its own: headers are parsed by
//! tungstenite's [`FrameHeader::parse`] from at most 14 bytes held here, and payload
//! bytes are taken from the slab views as they come. Only a message being echoed
//! is copied (unmasked) into an owned buffer; in discard mode payloads are counted
//! and dropped, so no view outlives the read that made it.

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

/// Largest header: 2 bytes, 8 of length, 4 of mask.
const MAX_HEADER: usize = 14;
/// Largest control-frame payload (RFC 6455 5.5).
const MAX_CONTROL: usize = 125;
/// Bytes unmasked at a time to check a discarded text payload.
const SCRATCH: usize = 1024;

/// Something a client did that ends the connection with a close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message over {0} bytes")]
    TooBig(usize),
    #[error("text message is not valid UTF-8")]
    BadUtf8,
    #[error("close reason is not valid UTF-8")]
    BadCloseReason,
    /// Writing to the peer failed or timed out: nothing more can be sent.
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for WsError {
    fn from(e: std::io::Error) -> WsError {
        WsError::Io(e.to_string())
    }
}

impl WsError {
    /// The close code the server answers with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::Protocol(_) => CloseCode::Protocol,
            WsError::TooBig(_) => CloseCode::Size,
            WsError::BadUtf8 | WsError::BadCloseReason => CloseCode::Invalid,
            WsError::Io(_) => CloseCode::Abnormal,
        }
    }
}

/// A complete thing received.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message; `payload` is its unmasked bytes when payloads are kept.
    Message {
        text: bool,
        len: usize,
        payload: Option<Vec<u8>>,
    },
    Ping(Vec<u8>),
    Pong,
    /// The client's close, with its code if it gave one.
    Close(Option<u16>),
}

struct FrameState {
    opcode: OpCode,
    is_final: bool,
    mask: [u8; 4],
    len: u64,
    /// Payload bytes of this frame read so far.
    pos: u64,
}

/// Checks UTF-8 incrementally, across frames and reads, in constant memory.
///
/// Keeps at most the 3 bytes of a code point that is not complete yet.
#[derive(Debug, Default, Clone)]
pub struct Utf8Check {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Check {
    /// Checks the next bytes; `Err` as soon as they cannot be UTF-8 whatever follows.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), WsError> {
        if self.pending_len > 0 {
            // Complete the pending code point first: its lead byte gives its width.
            let width = match self.pending[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = (width - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            let point = &self.pending[..self.pending_len];
            match std::str::from_utf8(point).map_err(|e| e.error_len()) {
                Ok(_) => self.pending_len = 0,
                Err(None) if self.pending_len < width => return Ok(()),
                Err(_) => return Err(WsError::BadUtf8),
            }
        }
        match std::str::from_utf8(data).map_err(|e| (e.valid_up_to(), e.error_len())) {
            Ok(_) => Ok(()),
            Err((valid, None)) => {
                let rest = &data[valid..];
                self.pending[..rest.len()].copy_from_slice(rest);
                self.pending_len = rest.len();
                Ok(())
            }
            Err((_, Some(_))) => Err(WsError::BadUtf8),
        }
    }

    /// The text ended: a code point left incomplete makes it invalid.
    pub fn finish(&mut self) -> Result<(), WsError> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(WsError::BadUtf8)
        }
    }
}

/// Makes room in `sink` for `arrived` more payload bytes of a frame that has
/// `remaining` bytes still to come (these included). Capacity follows what has arrived,
/// doubling at most and never past the frame's end, so a header announcing a 16 MiB
/// payload reserves nothing until that payload is really sent.
fn grow_for(sink: &mut Vec<u8>, arrived: usize, remaining: u64) {
    let spare = sink.capacity() - sink.len();
    if spare >= arrived {
        return;
    }
    let doubled = sink.len().max(arrived) as u64;
    let extra = doubled.min(remaining).max(arrived as u64) as usize;
    sink.reserve_exact(extra);
}

/// Whether the payload of `message` (kind, size so far) is kept.
fn keeps(keep_payload: bool, keep_under: usize, message: Option<(bool, usize)>) -> bool {
    keep_payload || message.is_some_and(|(_, size)| size < keep_under)
}

/// Turns a stream of bytes (slab views, in order) into [`Event`]s.
pub struct FrameReader {
    header: [u8; MAX_HEADER],
    header_len: usize,
    frame: Option<FrameState>,
    /// Kind of the data message in progress (text?) and its size so far.
    message: Option<(bool, usize)>,
    /// UTF-8 check of the text message in progress.
    utf8: Utf8Check,
    payload: Vec<u8>,
    control: Vec<u8>,
    max_message: usize,
    keep_payload: bool,
    /// Payloads of messages under this many bytes are kept even when not echoed.
    keep_under: usize,
}

impl FrameReader {
    /// A reader allowing messages up to `max_message` bytes; `keep_payload` to echo them.
    pub fn new(max_message: usize, keep_payload: bool) -> FrameReader {
        FrameReader {
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            message: None,
            utf8: Utf8Check::default(),
            payload: Vec::new(),
            control: Vec::new(),
            max_message,
            keep_payload,
            keep_under: 0,
        }
    }

    /// Also keeps the payload of every message under `bytes` (they go through the
    /// small-Buffer pool, as each small message did in Node), echoed or not.
    pub fn keeping_under(mut self, bytes: usize) -> FrameReader {
        self.keep_under = bytes;
        self
    }

    /// Whether the payload of the message in progress is kept.
    fn keeps(&self) -> bool {
        keeps(self.keep_payload, self.keep_under, self.message)
    }

    /// Feeds the next bytes, pushing every event they complete.
    pub fn feed(&mut self, mut data: &[u8], events: &mut Vec<Event>) -> Result<(), WsError> {
        while !data.is_empty() || self.frame.as_ref().is_some_and(|f| f.len == f.pos) {
            match &mut self.frame {
                None => data = self.feed_header(data)?,
                Some(frame) => {
                    let n = (frame.len - frame.pos).min(data.len() as u64) as usize;
                    let (chunk, rest) = data.split_at(n);
                    data = rest;
                    let control = matches!(frame.opcode, OpCode::Control(_));
                    let text = !control && self.message.is_some_and(|(text, _)| text);
                    let sink = if control {
                        Some(&mut self.control)
                    } else if keeps(self.keep_payload, self.keep_under, self.message) {
                        Some(&mut self.payload)
                    } else {
                        None
                    };
                    if let Some(sink) = sink {
                        let start = sink.len();
                        grow_for(sink, chunk.len(), frame.len - frame.pos);
                        sink.extend_from_slice(chunk);
                        unmask(&mut sink[start..], frame.mask, frame.pos);
                        if text {
                            self.utf8.feed(&sink[start..])?;
                        }
                    } else if text {
                        // Discarded, but still checked: unmasked a piece at a time.
                        let mut scratch = [0u8; SCRATCH];
                        let mut pos = frame.pos;
                        for piece in chunk.chunks(SCRATCH) {
                            let out = &mut scratch[..piece.len()];
                            out.copy_from_slice(piece);
                            unmask(out, frame.mask, pos);
                            self.utf8.feed(out)?;
                            pos += piece.len() as u64;
                        }
                    }
                    frame.pos += n as u64;
                    if frame.pos == frame.len {
                        self.finish_frame(events)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes header bytes from `data`; returns what is left after a parsed header.
    fn feed_header<'a>(&mut self, data: &'a [u8]) -> Result<&'a [u8], WsError> {
        let before = self.header_len;
        let take = (MAX_HEADER - before).min(data.len());
        self.header[before..before + take].copy_from_slice(&data[..take]);
        self.header_len += take;
        let mut cursor = Cursor::new(&self.header[..self.header_len]);
        let parsed = FrameHeader::parse(&mut cursor)
            .map_err(|_| WsError::Protocol("invalid frame header (reserved opcode)"))?;
        let Some((header, len)) = parsed else {
            return Ok(&data[take..]);
        };
        let used = cursor.position() as usize - before;
        self.header_len = 0;
        self.start_frame(header, len)?;
        Ok(&data[used..])
    }

    fn start_frame(&mut self, header: FrameHeader, len: u64) -> Result<(), WsError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WsError::Protocol("reserved bits set without an extension"));
        }
        let Some(mask) = header.mask else {
            return Err(WsError::Protocol("unmasked client frame"));
        };
        if len > i64::MAX as u64 {
            return Err(WsError::Protocol("frame length with its top bit set"));
        }
        match header.opcode {
            OpCode::Control(_) => {
                if len > MAX_CONTROL as u64 || !header.is_final {
                    return Err(WsError::Protocol(
                        "control frame over 125 bytes or fragmented",
                    ));
                }
                self.control.clear();
            }
            OpCode::Data(kind) => {
                let so_far = match (kind, self.message) {
                    (Data::Continue, Some((_, so_far))) => so_far,
                    (Data::Continue, None) => {
                        return Err(WsError::Protocol("continuation without a message"))
                    }
                    (_, Some(_)) => return Err(WsError::Protocol("new message inside a message")),
                    (kind, None) => {
                        self.message = Some((kind == Data::Text, 0));
                        self.payload.clear();
                        self.utf8 = Utf8Check::default();
                        0
                    }
                };
                // Checked from the header alone, before any of the payload is read.
                let total = (so_far as u64).saturating_add(len);
                if total > self.max_message as u64 {
                    return Err(WsError::TooBig(self.max_message));
                }
                if let Some((_, size)) = &mut self.message {
                    *size = total as usize;
                }
                if !self.keeps() && self.payload.capacity() > 0 {
                    // Grown past what is kept: what was kept of it goes.
                    self.payload = Vec::new();
                }
            }
        }
        self.frame = Some(FrameState {
            opcode: header.opcode,
            is_final: header.is_final,
            mask,
            len,
            pos: 0,
        });
        Ok(())
    }

    fn finish_frame(&mut self, events: &mut Vec<Event>) -> Result<(), WsError> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        match frame.opcode {
            OpCode::Control(Control::Ping) => {
                events.push(Event::Ping(std::mem::take(&mut self.control)))
            }
            OpCode::Control(Control::Pong) => events.push(Event::Pong),
            OpCode::Control(_) => events.push(Event::Close(close_code(&self.control)?)),
            OpCode::Data(_) if frame.is_final => {
                let (text, len) = self.message.take().unwrap_or((false, 0));
                if text {
                    self.utf8.finish()?;
                }
                let keep = self.keep_payload || len < self.keep_under;
                let payload = keep.then(|| std::mem::take(&mut self.payload));
                events.push(Event::Message { text, len, payload });
            }
            OpCode::Data(_) => {}
        }
        Ok(())
    }
}

/// The code of a close frame's payload, checked (RFC 6455 5.5.1, 7.4).
fn close_code(payload: &[u8]) -> Result<Option<u16>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() || code < 1000 {
                return Err(WsError::Protocol("close frame with an invalid code"));
            }
            std::str::from_utf8(reason).map_err(|_| WsError::BadCloseReason)?;
            Ok(Some(code))
        }
    }
}

/// XORs `buf` with the mask, `pos` bytes into the frame's payload.
fn unmask(buf: &mut [u8], mask: [u8; 4], pos: u64) {
    // The mask as it lines up with buf[0], then eight bytes at a time.
    let m: [u8; 4] = std::array::from_fn(|i| mask[(pos as usize + i) & 3]);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        let bytes: [u8; 8] = (*chunk).try_into().expect("an 8-byte chunk");
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The rest starts a multiple of 8 (so of 4) bytes in: the mask lines up again.
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
}

/// A server's (unmasked) text or binary message, formatted for the wire.
pub fn message_frame(payload: Vec<u8>, text: bool) -> Vec<u8> {
    let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
    encode(Frame::message(payload, opcode, true))
}

/// The header of an unfragmented, unmasked message of `len` bytes (what the server
/// sends before the payload, which it can then write from where it is).
pub fn message_header(len: usize, text: bool) -> Vec<u8> {
    let header = FrameHeader {
        opcode: OpCode::Data(if text { Data::Text } else { Data::Binary }),
        ..FrameHeader::default()
    };
    let mut out = Vec::with_capacity(header.len(len as u64));
    header
        .format(len as u64, &mut out)
        .expect("formatting into a Vec cannot fail");
    out
}

/// A pong answering a ping's payload.
pub fn pong_frame(payload: Vec<u8>) -> Vec<u8> {
    encode(Frame::pong(payload))
}

/// A close frame with `code` and a short reason.
pub fn close_frame(code: CloseCode, reason: &str) -> Vec<u8> {
    encode(Frame::close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    })))
}

/// A masked client frame of any opcode (reserved ones too) with `payload`, as a
/// client puts it on the wire: for tests and tools that speak to a server byte by byte.
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

fn encode(frame: Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len());
    frame
        .format(&mut out)
        .expect("formatting into a Vec cannot fail");
    out
}

#[cfg(test)]
mod tests;
