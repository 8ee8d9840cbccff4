//! `FrameReader::feed` on arbitrary bytes split at arbitrary points: never panics, and
//! how the bytes are split (socket reads of any size) changes neither the events nor
//! the error.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slab_stack::ws::{Event, FrameReader, WsError};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Largest message, kept small so that the limit is reached.
    max_message: u16,
    /// Whether payloads are kept (echo) or counted and dropped.
    keep_payload: bool,
    /// Lengths of the reads the bytes are split into, in turn (0: an empty read).
    splits: Vec<u16>,
    /// What the client sent.
    data: Vec<u8>,
}

/// Events up to the end, or up to the error that ends the connection.
type Outcome = (Vec<Event>, Option<WsError>);

fn run<'a>(input: &Input, reads: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut reader = FrameReader::new(input.max_message as usize, input.keep_payload);
    let mut events = Vec::new();
    for read in reads {
        if let Err(e) = reader.feed(read, &mut events) {
            // The connection is closed with the error's code: nothing more is read.
            let _ = e.close_code();
            return (events, Some(e));
        }
    }
    (events, None)
}

fn check_events(input: &Input, (events, _): &Outcome) {
    for event in events {
        match event {
            Event::Message { text, len, payload } => {
                assert!(*len <= input.max_message as usize, "message over the limit");
                assert_eq!(payload.is_some(), input.keep_payload);
                if let Some(p) = payload {
                    assert_eq!(p.len(), *len);
                    if *text {
                        assert!(std::str::from_utf8(p).is_ok(), "text is UTF-8");
                    }
                }
            }
            Event::Ping(p) => assert!(p.len() <= 125, "control payload over 125"),
            Event::Pong | Event::Close(_) => {}
        }
    }
}

fuzz_target!(|input: Input| {
    let data = &input.data[..];
    let whole = run(&input, std::iter::once(data));
    check_events(&input, &whole);

    // Split at the given lengths, the rest in one read.
    let mut reads = Vec::new();
    let mut rest = data;
    for &n in &input.splits {
        let (read, after) = rest.split_at((n as usize).min(rest.len()));
        reads.push(read);
        rest = after;
    }
    reads.push(rest);
    let split = run(&input, reads.into_iter());
    assert_eq!(whole, split, "split at {:?}", input.splits);

    // One byte at a time, the hardest split for the header parser.
    if data.len() <= 4096 {
        let bytes = run(&input, data.chunks(1));
        assert_eq!(whole, bytes, "byte by byte");
    }
});
