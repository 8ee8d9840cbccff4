//! Reading a request's header block through a slab pool, and short HTTP answers.
//!
//! The bytes stay slab views (they are what a connection may retain); httparse
//! parses them and the few fields the servers need are copied out.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::slab::{SlabPool, SlabView};

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
}

impl RequestHead {
    /// All bytes read: header block plus head.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes that arrived after the header block (the `head`).
    pub fn head_len(&self) -> usize {
        self.len() - self.header_len
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
pub async fn read_request_head<R: AsyncRead + Unpin + ?Sized>(
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

async fn read_until_parsed<R: AsyncRead + Unpin + ?Sized>(
    pool: &SlabPool,
    io: &mut R,
    max_bytes: usize,
) -> Result<RequestHead, HeadError> {
    let mut chunks: Vec<SlabView> = Vec::new();
    loop {
        let Some(view) = pool.read(io).await? else {
            return Err(if chunks.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Truncated
            });
        };
        chunks.push(view);
        // One chunk is parsed in place; several are joined in a short-lived buffer.
        let joined;
        let bytes: &[u8] = if chunks.len() == 1 {
            &chunks[0]
        } else {
            joined = chunks
                .iter()
                .flat_map(|c| c.iter().copied())
                .collect::<Vec<u8>>();
            &joined
        };
        if let Some(head) = parse(bytes, max_bytes)? {
            return Ok(RequestHead { chunks, ..head });
        }
        if bytes.len() > max_bytes {
            return Err(HeadError::TooLarge(max_bytes));
        }
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
    }))
}

/// Writes a short plain-text answer that closes the connection.
pub async fn respond<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    status: u16,
    reason: &str,
    body: &str,
) -> std::io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    io.write_all(text.as_bytes()).await?;
    io.flush().await?;
    let _ = io.shutdown().await;
    Ok(())
}
