//! `slab_stack::http::parse` on arbitrary bytes: never panics, and what it returns holds
//! together with what the bytes say and with every other size limit.
//!
//! The input is the raw bytes a client sent (so the corpus is readable HTTP); the
//! limit is varied here: no limit, the servers' default, and sizes around the header
//! block's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slab_stack::http::{parse, HeadError, RequestHead};

/// The servers' default `max_header_bytes`.
const DEFAULT_MAX: usize = 16 << 10;

fuzz_target!(|data: &[u8]| {
    let unlimited = parse(data, usize::MAX);
    match &unlimited {
        Ok(Some(head)) => complete(data, head),
        Ok(None) => {
            // More bytes needed: no limit changes that (the reader checks the size).
            for max in [0, 1, data.len(), DEFAULT_MAX] {
                assert!(matches!(parse(data, max), Ok(None)), "max {max}");
            }
        }
        Err(e) => {
            // Malformed or too many headers; a smaller limit gives the same error, or
            // "too large" (the size is checked before the framing headers).
            assert!(
                matches!(e, HeadError::Malformed(_) | HeadError::TooManyHeaders),
                "{e}"
            );
            for max in [0, data.len(), DEFAULT_MAX] {
                let again = parse(data, max);
                let same_or_too_large = match (&again, e) {
                    (Err(HeadError::Malformed(a)), HeadError::Malformed(b)) => a == b,
                    (Err(HeadError::TooManyHeaders), HeadError::TooManyHeaders) => true,
                    (Err(HeadError::TooLarge(m)), HeadError::Malformed(_)) => *m == max,
                    _ => false,
                };
                assert!(same_or_too_large, "max {max}: {e} then {:?}", again.err());
            }
            assert_eq!(parse(data, data.len()).err().map(|e| e.to_string()), Some(e.to_string()));
            assert!(e.response().is_some(), "a bad request is answered");
        }
    }
});

fn complete(data: &[u8], head: &RequestHead) {
    let n = head.header_len;
    assert!(n > 0 && n <= data.len(), "header_len {n} of {}", data.len());
    assert!(head.chunks.is_empty(), "parse makes no views");
    let block = &data[..n];
    assert!(block.ends_with(b"\n"), "a header block ends with a blank line");
    // Method and path are copied out of the block.
    assert!(!head.method.is_empty());
    assert!(!head.path.is_empty());
    assert!(contains(block, head.method.as_bytes()), "method {:?}", head.method);
    assert!(contains(block, head.path.as_bytes()), "path {:?}", head.path);
    assert!(head.method.bytes().all(|b| b.is_ascii_graphic()));
    // An Upgrade header is websocket or something else, never both.
    if head.upgrade_websocket {
        assert!(head.upgrade_other.is_none());
    }
    if let Some(other) = &head.upgrade_other {
        assert!(!other.eq_ignore_ascii_case("websocket"));
    }
    for value in [&head.websocket_key, &head.websocket_version, &head.upgrade_other]
        .into_iter()
        .flatten()
    {
        assert_eq!(value.trim(), value, "header values are trimmed");
    }
    if head.connection_upgrade {
        assert!(contains_ignore_case(block, b"upgrade"));
    }
    if head.websocket_key.is_some() {
        assert!(contains_ignore_case(block, b"sec-websocket-key"));
    }

    // The block alone parses the same; bytes after it (the head) change nothing.
    let alone = parse(block, usize::MAX).expect("the block alone").expect("complete");
    same(head, &alone);
    // A limit of exactly its size lets it through; one byte less refuses it.
    let exact = parse(data, n).expect("fits exactly").expect("complete");
    same(head, &exact);
    assert!(matches!(parse(data, n - 1), Err(HeadError::TooLarge(m)) if m == n - 1));
    // Any shorter prefix is incomplete, never an error: the reader would wait.
    for cut in [n - 1, n / 2] {
        match parse(&data[..cut], usize::MAX) {
            Ok(None) => {}
            Ok(Some(h)) => panic!("prefix of {cut} bytes complete at {}", h.header_len),
            Err(e) => panic!("prefix of {cut} bytes of a valid block refused: {e}"),
        }
    }
}

fn same(a: &RequestHead, b: &RequestHead) {
    assert_eq!(a.header_len, b.header_len);
    assert_eq!(a.method, b.method);
    assert_eq!(a.path, b.path);
    assert_eq!(a.upgrade_websocket, b.upgrade_websocket);
    assert_eq!(a.upgrade_other, b.upgrade_other);
    assert_eq!(a.connection_upgrade, b.connection_upgrade);
    assert_eq!(a.websocket_key, b.websocket_key);
    assert_eq!(a.websocket_version, b.websocket_version);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
