//! Reading a request's header block through a slab pool, and short HTTP answers.
//!
//! The bytes stay slab views (they are what a connection may retain); httparse
//! parses them and the few fields the servers need are copied out.

use std::io::{self, IoSlice};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use pools::{read_views, ReadViews, SlabPool, SlabView};

/// Most headers a request may have (more: 431).
pub const MAX_HEADERS: usize = 64;

/// A request's header block and the bytes that came after it, as slab views.
pub struct RequestHead {
    /// The views read, in order; the header block is the first `header_len` bytes.
    pub chunks: Vec<SlabView>,
    pub header_len: usize,
    pub method: String,
    pub path: String,
    /// `Upgrade: websocket` present.
    pub upgrade_websocket: bool,
    /// An `Upgrade` header naming something else.
    pub upgrade_other: Option<String>,
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    pub websocket_key: Option<String>,
    pub websocket_version: Option<String>,
    /// The body the request announces: its `Content-Length`, `None` without one.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` ends with `chunked`: a body of unknown length follows.
    pub chunked: bool,
}

impl RequestHead {
    /// All bytes read: header block plus head.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the request announces a body (`Content-Length` above 0, or chunked).
    pub fn has_body(&self) -> bool {
        self.chunked || self.content_length.is_some_and(|n| n > 0)
    }
}

/// Why no request head could be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("connection closed before a request")]
    Closed,
    #[error("connection closed in the middle of the request headers")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request header block over {0} bytes")]
    TooLarge(usize),
    #[error("more than {MAX_HEADERS} request headers")]
    TooManyHeaders,
    #[error("request headers not complete within {0:?}")]
    Timeout(Duration),
}

impl HeadError {
    /// The answer a client gets, if any is due.
    pub fn response(&self) -> Option<(u16, &'static str)> {
        match self {
            HeadError::Malformed(_) => Some((400, "Bad Request")),
            HeadError::TooLarge(_) | HeadError::TooManyHeaders => {
                Some((431, "Request Header Fields Too Large"))
            }
            HeadError::Timeout(_) => Some((408, "Request Timeout")),
            _ => None,
        }
    }
}

/// Reads through `pool` until a whole header block has arrived.
pub async fn read_request_head<R: ReadViews + ?Sized>(
    pool: &SlabPool,
    io: &mut R,
    max_bytes: usize,
    timeout: Duration,
) -> Result<RequestHead, HeadError> {
    match tokio::time::timeout(timeout, read_until_parsed(pool, io, max_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(HeadError::Timeout(timeout)),
    }
}

async fn read_until_parsed<R: ReadViews + ?Sized>(
    pool: &SlabPool,
    io: &mut R,
    max_bytes: usize,
) -> Result<RequestHead, HeadError> {
    let mut block = Arriving::default();
    loop {
        let before = block.chunks.len();
        if !read_views(io, pool, &mut block.chunks).await? {
            return Err(if block.chunks.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Truncated
            });
        }
        if let Some(head) = block.arrived(before, max_bytes)? {
            return Ok(head);
        }
    }
}

/// A header block as its reads arrive: the views kept in order, and the work of
/// parsing them kept linear in the block's length whatever the reads' sizes.
///
/// httparse starts over at every call, so the block is parsed only when its end can
/// have arrived (a blank line in the new bytes) or when it has doubled in length since
/// the last try (which still refuses a malformed start early); with several views their
/// bytes are copied once into one buffer as they arrive, not joined again per read.
#[derive(Default)]
struct Arriving {
    chunks: Vec<SlabView>,
    /// The bytes of all views, once there is more than one.
    joined: Vec<u8>,
    /// How many views `joined` holds.
    joined_views: usize,
    len: usize,
    /// The last bytes before the new ones, to find a blank line split between reads.
    tail: [u8; 2],
    /// Length at which the next parse is due even without a blank line.
    parse_at: usize,
    /// Bytes copied and parsed so far.
    work: usize,
}

impl Arriving {
    /// Takes in the views from `chunks[from..]`: the request head, if complete.
    fn arrived(&mut self, from: usize, max_bytes: usize) -> Result<Option<RequestHead>, HeadError> {
        if self.chunks.len() == from {
            return Ok(None);
        }
        let mut may_end = false;
        for chunk in &self.chunks[from..] {
            may_end |= has_blank_line(self.tail, chunk);
            self.tail = last_two(self.tail, chunk);
            self.len += chunk.len();
        }
        if self.chunks.len() > 1 {
            for chunk in &self.chunks[self.joined_views..] {
                self.joined.extend_from_slice(chunk);
                self.work += chunk.len();
            }
            self.joined_views = self.chunks.len();
        }
        if may_end || self.len >= self.parse_at {
            self.parse_at = self.len.saturating_mul(2);
            self.work += self.len;
            let bytes: &[u8] = if self.chunks.len() == 1 {
                &self.chunks[0]
            } else {
                &self.joined
            };
            if let Some(head) = parse(bytes, max_bytes)? {
                return Ok(Some(RequestHead {
                    chunks: std::mem::take(&mut self.chunks),
                    ..head
                }));
            }
        }
        if self.len > max_bytes {
            return Err(HeadError::TooLarge(max_bytes));
        }
        Ok(None)
    }
}

/// Whether `bytes`, read after `tail`, hold the end of a line followed by an empty one
/// (`\n\n` or `\n\r\n`: every header block ends so).
fn has_blank_line(tail: [u8; 2], bytes: &[u8]) -> bool {
    let at = |i: usize| -> u8 {
        if i < 2 {
            tail[i]
        } else {
            bytes[i - 2]
        }
    };
    let n = bytes.len() + 2;
    (1..n).any(|i| {
        at(i) == b'\n' && (at(i - 1) == b'\n' || i >= 2 && at(i - 1) == b'\r' && at(i - 2) == b'\n')
    })
}

/// The last two bytes of `tail` followed by `bytes`.
fn last_two(tail: [u8; 2], bytes: &[u8]) -> [u8; 2] {
    match bytes {
        [] => tail,
        [b] => [tail[1], *b],
        [.., a, b] => [*a, *b],
    }
}

/// Parses a complete header block, `None` if more bytes are needed.
pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let header_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if header_len > max_bytes {
        return Err(HeadError::TooLarge(max_bytes));
    }
    let framing = check_headers(&req)?;
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let upgrade = header("upgrade");
    let connection_upgrade = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    let upgrade_websocket = upgrade
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    Ok(Some(RequestHead {
        chunks: Vec::new(),
        header_len,
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        upgrade_other: upgrade.filter(|_| !upgrade_websocket),
        upgrade_websocket,
        connection_upgrade,
        websocket_key: header("sec-websocket-key"),
        websocket_version: header("sec-websocket-version"),
        content_length: framing.content_length,
        chunked: framing.chunked,
    }))
}

/// How a request's body is delimited.
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
}

/// Headers that must appear at most once (a second one is ambiguous) and never empty.
const SINGLE_HEADERS: [&str; 4] = [
    "host",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// Refuses what httparse accepts but a proxy and a server could read differently:
/// request smuggling shapes (RFC 9112 6.1 and 6.3) and empty or repeated headers
/// that decide how the request is handled.
fn check_headers(req: &httparse::Request) -> Result<Framing, HeadError> {
    let malformed = |why: String| Err(HeadError::Malformed(why));
    let values = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    for name in SINGLE_HEADERS {
        let mut found = values(name);
        if let Some(value) = found.next() {
            if found.next().is_some() {
                return malformed(format!("more than one {} header", title(name)));
            }
            if value.is_empty() {
                return malformed(format!("empty {} header", title(name)));
            }
        } else if name == "host" && req.version == Some(1) {
            return malformed("HTTP/1.1 request without a Host header".into());
        }
    }
    let mut content_length: Option<u64> = None;
    let mut any_length = false;
    for value in values("content-length") {
        any_length = true;
        // A list ("5, 5") is allowed only when every element is the same number.
        for element in value.split(|b| *b == b',') {
            let element = element.trim_ascii();
            let Some(n) = parse_length(element) else {
                return malformed(format!(
                    "Content-Length is not a number: {:?}",
                    String::from_utf8_lossy(element)
                ));
            };
            match content_length {
                Some(m) if m != n => {
                    return malformed(format!("two different Content-Length values ({m} and {n})"))
                }
                _ => content_length = Some(n),
            }
        }
    }
    let mut codings: Vec<&[u8]> = Vec::new();
    let mut any_coding = false;
    for value in values("transfer-encoding") {
        any_coding = true;
        for element in value.split(|b| *b == b',') {
            codings.push(element.trim_ascii());
        }
    }
    if any_coding && any_length {
        return malformed("Content-Length together with Transfer-Encoding".into());
    }
    if any_coding {
        if req.version != Some(1) {
            return malformed("Transfer-Encoding in an HTTP/1.0 request".into());
        }
        let is_chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
        let last_chunked = codings.last().is_some_and(|c| is_chunked(c));
        let chunked_count = codings.iter().filter(|c| is_chunked(c)).count();
        if codings.iter().any(|c| c.is_empty()) || !last_chunked || chunked_count != 1 {
            let list: Vec<String> = codings
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            return malformed(format!(
                "Transfer-Encoding must end with a single chunked, got {:?}",
                list.join(", ")
            ));
        }
    }
    Ok(Framing {
        content_length,
        chunked: any_coding,
    })
}

/// A Content-Length value: ASCII digits only, fitting 64 bits.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A header name as it is usually written.
fn title(name: &str) -> &'static str {
    match name {
        "host" => "Host",
        "upgrade" => "Upgrade",
        "sec-websocket-key" => "Sec-WebSocket-Key",
        "sec-websocket-version" => "Sec-WebSocket-Version",
        _ => "such",
    }
}

/// Writes all of `buf` and flushes it, failing with `TimedOut` when that takes longer
/// than `timeout` (a peer that does not read): every write of both servers goes
/// through here, [`write_parts_within`] or [`respond`].
pub async fn write_within<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    buf: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    write_parts_within(io, &[buf], timeout).await
}

/// Writes all of `parts`, in order, and flushes them, as [`write_within`] does: two
/// parts at a time with vectored writes, so that a header and the body it announces
/// need not be copied together first.
pub async fn write_parts_within<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    parts: &[&[u8]],
    timeout: Duration,
) -> io::Result<()> {
    let write = async {
        let (mut part, mut offset) = (0, 0);
        loop {
            while part < parts.len() && offset == parts[part].len() {
                (part, offset) = (part + 1, 0);
            }
            let Some(current) = parts.get(part) else {
                break;
            };
            let n = match parts.get(part + 1) {
                Some(next) => {
                    io.write_vectored(&[IoSlice::new(&current[offset..]), IoSlice::new(next)])
                        .await?
                }
                None => io.write(&current[offset..]).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            // Past the current part, into the next one.
            offset += n;
            if offset > current.len() {
                (part, offset) = (part + 1, offset - current.len());
            }
        }
        io.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer took no {} bytes within {timeout:?} (write timeout)",
                parts.iter().map(|p| p.len()).sum::<usize>()
            ),
        )),
    }
}

/// Shuts the writing side down (a TLS close_notify, a FIN), within `timeout`.
pub async fn shutdown_within<W: AsyncWrite + Unpin + ?Sized>(io: &mut W, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, io.shutdown()).await;
}

/// Writes a short plain-text answer that closes the connection, within `timeout`.
pub async fn respond<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    status: u16,
    reason: &str,
    body: &str,
    timeout: Duration,
) -> io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    write_within(io, text.as_bytes(), timeout).await?;
    shutdown_within(io, timeout).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_request(extra: &str) -> Result<Option<RequestHead>, HeadError> {
        let text = format!("POST / HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        parse(text.as_bytes(), 16 << 10)
    }

    fn refused(extra: &str) -> String {
        match parse_request(extra) {
            Err(HeadError::Malformed(why)) => why,
            Err(e) => panic!("{extra:?}: {e}"),
            Ok(_) => panic!("{extra:?} accepted"),
        }
    }

    /// Feeds `bytes` to an [`Arriving`] block `piece` bytes a read; the outcome and
    /// the work (bytes copied and parsed) it took.
    async fn arrive_in_pieces(
        bytes: &[u8],
        piece: usize,
        max_bytes: usize,
    ) -> (Result<Option<RequestHead>, HeadError>, usize) {
        let pool = pools::SlabPool::new("tcp", 1 << 20, 64 << 10);
        let mut block = Arriving::default();
        for part in bytes.chunks(piece) {
            let mut reader = part;
            let view = pool.read(&mut reader).await.unwrap().expect("bytes");
            let from = block.chunks.len();
            block.chunks.push(view);
            match block.arrived(from, max_bytes) {
                Ok(None) => continue,
                done => return (done, block.work),
            }
        }
        (Ok(None), block.work)
    }

    fn request_of(len: usize) -> Vec<u8> {
        let mut text = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
        text.resize(len - 4, b'a');
        text.extend_from_slice(b"\r\n\r\n");
        text
    }

    #[tokio::test]
    async fn a_header_block_sent_a_byte_a_read_costs_work_linear_in_its_length() {
        for len in [1 << 10, 4 << 10, 16 << 10] {
            let request = request_of(len);
            let (head, work) = arrive_in_pieces(&request, 1, 64 << 10).await;
            let head = head.unwrap().expect("a whole request");
            assert_eq!(
                (head.header_len, head.len(), head.chunks.len()),
                (len, len, len)
            );
            // Each byte copied once, parsed at each doubling and once at the end.
            assert!(
                work <= 4 * len,
                "{len} bytes a byte at a time took {work} bytes of work"
            );
        }
        // In one read: parsed in place, nothing copied.
        let (head, work) = arrive_in_pieces(&request_of(4096), 4096, 64 << 10).await;
        assert!(head.unwrap().is_some());
        assert_eq!(work, 4096);
    }

    #[tokio::test]
    async fn a_blank_line_split_across_reads_ends_the_block_where_it_ends() {
        let request = request_of(300);
        for cut in 290..300 {
            let (first, rest) = request.split_at(cut);
            let pool = pools::SlabPool::new("tcp", 1 << 20, 64 << 10);
            let mut block = Arriving {
                parse_at: usize::MAX,
                ..Arriving::default()
            };
            for part in [first, rest] {
                let mut reader = part;
                let from = block.chunks.len();
                block
                    .chunks
                    .push(pool.read(&mut reader).await.unwrap().unwrap());
                if let Some(head) = block.arrived(from, 1024).unwrap() {
                    assert_eq!(head.header_len, 300, "cut at {cut}");
                    break;
                }
                assert!(part == first, "cut at {cut}: the end was not seen");
            }
        }
        assert!(has_blank_line([b'\n', b'\r'], b"\n"));
        assert!(has_blank_line([0, b'\n'], b"\n"));
        assert!(has_blank_line([0, 0], b"a\n\nb"));
        assert!(!has_blank_line([b'\n', 0], b"\n"));
        assert!(!has_blank_line([0, 0], b"a\r\nb\r\n"));
    }

    #[tokio::test]
    async fn malformed_and_oversized_blocks_are_refused_before_their_end() {
        // A bad request line is seen at a doubling, not only at a blank line.
        let garbage = vec![0x16u8; 4000];
        let (result, _) = arrive_in_pieces(&garbage, 1, 64 << 10).await;
        assert!(
            matches!(result, Err(HeadError::Malformed(_))),
            "{:?}",
            result.err()
        );
        let (result, _) = arrive_in_pieces(&request_of(8 << 10), 100, 4096).await;
        assert!(matches!(result, Err(HeadError::TooLarge(4096))));
    }

    #[tokio::test]
    async fn parts_arrive_whole_and_in_order_through_tiny_writes() {
        use tokio::io::AsyncReadExt;
        // A pipe that takes 3 bytes at a time cuts every part, and skips none.
        let (mut near, mut far) = tokio::io::duplex(3);
        let body = (0..200u8).collect::<Vec<u8>>();
        let parts: [&[u8]; 4] = [b"\x82\x7e", b"", &body, b"!"];
        let write = async move {
            write_parts_within(&mut near, &parts, Duration::from_secs(10))
                .await
                .unwrap();
        };
        let mut got = Vec::new();
        let read = far.read_to_end(&mut got);
        let ((), read) = tokio::join!(write, read);
        read.unwrap();
        assert_eq!(got, [&b"\x82\x7e"[..], &body, b"!"].concat());
    }

    #[test]
    fn request_smuggling_shapes_are_malformed() {
        for (extra, why) in [
            (
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "together",
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
                "together",
            ),
            ("Content-Length: 5\r\nContent-Length: 6\r\n", "different"),
            ("Content-Length: 5, 6\r\n", "different"),
            ("Content-Length: 5a\r\n", "not a number"),
            ("Content-Length: -1\r\n", "not a number"),
            ("Content-Length: +5\r\n", "not a number"),
            ("Content-Length: 0x10\r\n", "not a number"),
            (
                "Content-Length: 99999999999999999999999\r\n",
                "not a number",
            ),
            ("Content-Length:\r\n", "not a number"),
            ("Content-Length: 5,\r\n", "not a number"),
            ("Transfer-Encoding: chunked, gzip\r\n", "single chunked"),
            ("Transfer-Encoding: identity\r\n", "single chunked"),
            ("Transfer-Encoding: xchunked\r\n", "single chunked"),
            ("Transfer-Encoding: chunked, chunked\r\n", "single chunked"),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "single chunked",
            ),
            ("Transfer-Encoding:\r\n", "single chunked"),
            ("Transfer-Encoding: chunked,\r\n", "single chunked"),
            ("Host: y\r\n", "more than one Host"),
            ("Upgrade:\r\n", "empty Upgrade"),
            (
                "Upgrade: websocket\r\nUpgrade: h2c\r\n",
                "more than one Upgrade",
            ),
            ("Sec-WebSocket-Key:  \r\n", "empty Sec-WebSocket-Key"),
            ("Sec-WebSocket-Version:\r\n", "empty Sec-WebSocket-Version"),
        ] {
            let got = refused(extra);
            assert!(got.contains(why), "{extra:?}: {got}");
        }
        let no_host = parse(b"GET / HTTP/1.1\r\n\r\n", 1024);
        assert!(matches!(no_host, Err(HeadError::Malformed(w)) if w.contains("without a Host")));
        let empty_host = parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 1024);
        assert!(matches!(empty_host, Err(HeadError::Malformed(w)) if w.contains("empty Host")));
        let te_10 = parse(
            b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            1024,
        );
        assert!(matches!(te_10, Err(HeadError::Malformed(w)) if w.contains("HTTP/1.0")));
    }

    #[test]
    fn well_framed_requests_say_whether_they_carry_a_body() {
        let head = |extra| parse_request(extra).unwrap().unwrap();
        let plain = head("");
        assert_eq!(
            (plain.content_length, plain.chunked, plain.has_body()),
            (None, false, false)
        );
        let zero = head("Content-Length: 0\r\n");
        assert_eq!((zero.content_length, zero.has_body()), (Some(0), false));
        let same = head("Content-Length: 12\r\nContent-Length: 12, 12\r\n");
        assert_eq!((same.content_length, same.has_body()), (Some(12), true));
        let chunked = head("Transfer-Encoding: gzip, Chunked\r\n");
        assert!(chunked.chunked && chunked.has_body());
        // HTTP/1.0 needs no Host.
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n", 1024).unwrap().is_some());
    }

    #[tokio::test]
    async fn a_write_the_peer_does_not_take_times_out() {
        let (mut near, _far) = tokio::io::duplex(64);
        let started = std::time::Instant::now();
        let err = write_within(&mut near, &[0; 1024], Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let (mut near, mut far) = tokio::io::duplex(4096);
        write_within(&mut near, &[7; 1024], Duration::from_millis(100))
            .await
            .unwrap();
        let mut got = [0; 1024];
        tokio::io::AsyncReadExt::read_exact(&mut far, &mut got)
            .await
            .unwrap();
        assert_eq!(got, [7; 1024]);
    }
}
