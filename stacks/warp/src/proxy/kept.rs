//! What a tunnel of the warp proxy keeps of its upgrade request for its life.
//!
//! hyper parses each header value as a `Bytes` slice of the connection's read buffer
//! (hyper-1.12.0 `src/proto/h1/role.rs`: `slice.slice(header.value...)` of the header
//! block split off the read buffer, which starts at 8 KiB), so:
//! - `retain` keeps the request (as hyper's upgrade example does by moving it into the
//!   task): each header value, registered as `header <name>`, keeps the whole read
//!   buffer alive;
//! - `copy` keeps an owned copy of the header block text, registered as
//!   `upgrade request` (a few hundred bytes: an allocation of its own);
//! - `drop` keeps nothing.

use std::sync::Arc;

use snapshot::HeadMode;
use warp::http;

use runtime::kept::{KeptPart, KeptParts};

/// One tunnel's kept request. The registrations are declared first so that they
/// unregister before the bytes they name are freed.
pub(super) enum KeptRequest {
    Retained {
        _parts: Vec<KeptPart>,
        /// Boxed: the tunnels of the other modes do not carry its size.
        _request: Box<http::Request<()>>,
    },
    Copied {
        _part: KeptPart,
        _head: Vec<u8>,
    },
    Nothing,
}

impl KeptRequest {
    /// Keeps `request` for `connection` as `mode` says, registering what it keeps.
    pub(super) fn keep(
        mode: HeadMode,
        connection: u64,
        request: http::Request<()>,
        registry: &Arc<KeptParts>,
    ) -> KeptRequest {
        match mode {
            HeadMode::Retain => {
                // A header value's bytes live in the buffer it slices, wherever the
                // request moves.
                let parts = request
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        registry.register(connection, &format!("header {name}"), value.as_bytes())
                    })
                    .collect();
                KeptRequest::Retained {
                    _parts: parts,
                    _request: Box::new(request),
                }
            }
            HeadMode::Copy | HeadMode::CopyUnpooled => {
                let head = header_block(&request);
                KeptRequest::Copied {
                    _part: registry.register(connection, runtime::kept::PART_REQUEST, &head),
                    _head: head,
                }
            }
            HeadMode::Drop => KeptRequest::Nothing,
        }
    }
}

/// The request's header block as it came on the wire (HTTP/1.1; names lowercase).
pub(super) fn header_block(request: &http::Request<()>) -> Vec<u8> {
    let headers = request.headers();
    let mut head = Vec::with_capacity(
        64 + headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>(),
    );
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(request.uri().to_string().as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rebuilds_the_header_block_and_drop_keeps_nothing() {
        let registry = Arc::new(KeptParts::default());
        let request = || {
            http::Request::get("/chat?x=1")
                .header("host", "localhost")
                .header("upgrade", "websocket")
                .body(())
                .unwrap()
        };
        let copied = KeptRequest::keep(HeadMode::Copy, 7, request(), &registry);
        let entries = registry.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].part(), "upgrade request");
        let text = "GET /chat?x=1 HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\n\r\n";
        assert_eq!(entries[0].bytes(), text.len());
        match &copied {
            KeptRequest::Copied { _head, .. } => assert_eq!(_head, text.as_bytes()),
            _ => panic!("copy keeps a copy"),
        }
        drop(copied);
        assert!(registry.is_empty());
        let retained = KeptRequest::keep(HeadMode::Retain, 8, request(), &registry);
        let parts: Vec<_> = registry
            .entries()
            .into_iter()
            .map(|e| e.part().to_string())
            .collect();
        assert_eq!(parts, ["header host", "header upgrade"]);
        drop(retained);
        let _ = KeptRequest::keep(HeadMode::Drop, 9, request(), &registry);
        assert!(registry.is_empty());
    }
}
