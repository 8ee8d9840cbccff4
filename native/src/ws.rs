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

/// Something a client did that ends the connection with a close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message over {0} bytes")]
    TooBig(usize),
    #[error("text message is not valid UTF-8")]
    BadUtf8,
}

impl WsError {
    /// The close code the server answers with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::Protocol(_) => CloseCode::Protocol,
            WsError::TooBig(_) => CloseCode::Size,
            WsError::BadUtf8 => CloseCode::Invalid,
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

/// Turns a stream of bytes (slab views, in order) into [`Event`]s.
pub struct FrameReader {
    header: [u8; MAX_HEADER],
    header_len: usize,
    frame: Option<FrameState>,
    /// Kind of the data message in progress (text?) and its size so far.
    message: Option<(bool, usize)>,
    payload: Vec<u8>,
    control: Vec<u8>,
    max_message: usize,
    keep_payload: bool,
}

impl FrameReader {
    /// A reader allowing messages up to `max_message` bytes; `keep_payload` to echo them.
    pub fn new(max_message: usize, keep_payload: bool) -> FrameReader {
        FrameReader {
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            message: None,
            payload: Vec::new(),
            control: Vec::new(),
            max_message,
            keep_payload,
        }
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
                    let sink = if matches!(frame.opcode, OpCode::Control(_)) {
                        Some(&mut self.control)
                    } else if self.keep_payload {
                        Some(&mut self.payload)
                    } else {
                        None
                    };
                    if let Some(sink) = sink {
                        let start = sink.len();
                        sink.extend_from_slice(chunk);
                        unmask(&mut sink[start..], frame.mask, frame.pos);
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
                        0
                    }
                };
                let total = so_far as u64 + len;
                if total > self.max_message as u64 {
                    return Err(WsError::TooBig(self.max_message));
                }
                if let Some((_, size)) = &mut self.message {
                    *size = total as usize;
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
            OpCode::Control(_) => {
                let code = (self.control.len() >= 2)
                    .then(|| u16::from_be_bytes([self.control[0], self.control[1]]));
                events.push(Event::Close(code));
            }
            OpCode::Data(_) if frame.is_final => {
                let (text, len) = self.message.take().unwrap_or((false, 0));
                let payload = self.keep_payload.then(|| std::mem::take(&mut self.payload));
                if text
                    && payload
                        .as_ref()
                        .is_some_and(|p| std::str::from_utf8(p).is_err())
                {
                    return Err(WsError::BadUtf8);
                }
                events.push(Event::Message { text, len, payload });
            }
            OpCode::Data(_) => {}
        }
        Ok(())
    }
}

/// XORs `buf` with the mask, `pos` bytes into the frame's payload.
fn unmask(buf: &mut [u8], mask: [u8; 4], pos: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[((pos as usize) + i) & 3];
    }
}

/// A server's (unmasked) text or binary message, formatted for the wire.
pub fn message_frame(payload: Vec<u8>, text: bool) -> Vec<u8> {
    let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
    encode(Frame::message(payload, opcode, true))
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

fn encode(frame: Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len());
    frame
        .format(&mut out)
        .expect("formatting into a Vec cannot fail");
    out
}

#[cfg(test)]
mod tests;
