//! Frames fed in pieces of every size give the same events.

use super::*;

fn feed_in_pieces(bytes: &[u8], piece: usize, keep: bool) -> Result<Vec<Event>, WsError> {
    let mut reader = FrameReader::new(1 << 20, keep);
    let mut events = Vec::new();
    for chunk in bytes.chunks(piece) {
        reader.feed(chunk, &mut events)?;
    }
    Ok(events)
}

#[test]
fn messages_split_anywhere_decode_the_same() {
    let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let mut wire = client_frame(0x1, true, "héllo".as_bytes());
    wire.extend(client_frame(0x2, false, &big[..1000]));
    wire.extend(client_frame(0x9, true, b"ping!"));
    wire.extend(client_frame(0x0, true, &big[1000..]));
    wire.extend(client_frame(0x2, true, b""));
    wire.extend(client_frame(0x8, true, &1000u16.to_be_bytes()));
    for piece in [1, 2, 3, 7, 13, 14, 15, 4096, wire.len()] {
        let events = feed_in_pieces(&wire, piece, true).unwrap();
        assert_eq!(events.len(), 5, "piece {piece}");
        assert_eq!(
            events[0],
            Event::Message {
                text: true,
                len: 6,
                payload: Some("héllo".as_bytes().to_vec())
            }
        );
        assert_eq!(events[1], Event::Ping(b"ping!".to_vec()));
        assert_eq!(
            events[2],
            Event::Message {
                text: false,
                len: 70_000,
                payload: Some(big.clone())
            }
        );
        assert_eq!(
            events[3],
            Event::Message {
                text: false,
                len: 0,
                payload: Some(vec![])
            }
        );
        assert_eq!(events[4], Event::Close(Some(1000)));
    }
}

#[test]
fn discard_mode_counts_without_keeping_payloads() {
    let wire = client_frame(0x2, true, &[7; 5000]);
    let events = feed_in_pieces(&wire, 100, false).unwrap();
    assert_eq!(
        events,
        vec![Event::Message {
            text: false,
            len: 5000,
            payload: None
        }]
    );
}

#[test]
fn protocol_violations_are_refused_with_their_close_codes() {
    let unmasked = [0x82, 0x01, 0x00];
    let err = feed_in_pieces(&unmasked, 10, false).unwrap_err();
    assert_eq!(err.close_code(), CloseCode::Protocol);

    let long_ping = client_frame(0x9, true, &[0; 126]);
    assert_eq!(
        feed_in_pieces(&long_ping, 10, false)
            .unwrap_err()
            .close_code(),
        CloseCode::Protocol
    );

    let reserved_opcode = client_frame(0x3, true, b"x");
    assert!(matches!(
        feed_in_pieces(&reserved_opcode, 10, false),
        Err(WsError::Protocol(_))
    ));

    let lone_continuation = client_frame(0x0, true, b"x");
    assert!(matches!(
        feed_in_pieces(&lone_continuation, 10, false),
        Err(WsError::Protocol(_))
    ));

    let mut reader = FrameReader::new(100, false);
    let too_big = client_frame(0x2, true, &[0; 101]);
    let err = reader.feed(&too_big, &mut Vec::new()).unwrap_err();
    assert_eq!(
        (err.clone(), err.close_code()),
        (WsError::TooBig(100), CloseCode::Size)
    );

    let bad_utf8 = client_frame(0x1, true, &[0xff, 0xfe]);
    assert_eq!(
        feed_in_pieces(&bad_utf8, 1, true).unwrap_err().close_code(),
        CloseCode::Invalid
    );
}

#[test]
fn server_frames_are_unmasked_and_well_formed() {
    let frame = message_frame(b"hi".to_vec(), true);
    assert_eq!(frame, vec![0x81, 0x02, b'h', b'i']);
    let close = close_frame(CloseCode::Size, "too big");
    assert_eq!(&close[..4], &[0x88, 9, 0x03, 0xf1]);
    assert_eq!(pong_frame(b"p".to_vec()), vec![0x8a, 0x01, b'p']);
}

/// Every way of feeding `wire`: in pieces of 1 to 7 bytes and whole, keeping or discarding.
fn outcomes(wire: &[u8]) -> Vec<Result<Vec<Event>, WsError>> {
    let mut out = Vec::new();
    for keep in [true, false] {
        for piece in (1..=7).chain([wire.len().max(1)]) {
            out.push(feed_in_pieces(wire, piece, keep));
        }
    }
    out
}

#[test]
fn utf8_split_across_frames_and_reads_is_accepted_in_both_modes() {
    let text = "héllo wörld € 𝄞 ok".as_bytes();
    for split in 0..=text.len() {
        let mut wire = client_frame(0x1, false, &text[..split]);
        wire.extend(client_frame(0x9, true, b"between fragments"));
        wire.extend(client_frame(0x0, true, &text[split..]));
        for outcome in outcomes(&wire) {
            let events = outcome.unwrap_or_else(|e| panic!("split {split}: {e}"));
            assert_eq!(events.len(), 2, "split {split}");
            assert!(
                matches!(&events[1], Event::Message { text: true, len, .. } if *len == text.len())
            );
        }
    }
}

#[test]
fn bad_utf8_gets_1007_in_both_modes_wherever_it_is_split() {
    let bad: [&[u8]; 6] = [
        b"ab\xff",                    // never valid
        b"\xc0\x80",                  // overlong
        b"\xed\xa0\x80",              // surrogate
        b"\xf4\x90\x80\x80",          // above U+10FFFF
        b"ok \xe2\x82\x28 then",      // a 3-byte sequence broken by its last byte
        "€".as_bytes().split_at(2).0, // cut short at the end of the message
    ];
    for payload in bad {
        for split in 0..=payload.len() {
            let mut wire = client_frame(0x1, false, &payload[..split]);
            wire.extend(client_frame(0x0, true, &payload[split..]));
            for outcome in outcomes(&wire) {
                let err = outcome.expect_err("invalid UTF-8 accepted");
                assert_eq!(
                    (err.clone(), err.close_code()),
                    (WsError::BadUtf8, CloseCode::Invalid),
                    "{payload:?} split at {split}"
                );
            }
        }
    }
}

#[test]
fn bad_utf8_is_refused_before_the_message_ends_in_discard_mode() {
    // The first of two fragments is already wrong: no need to wait for the second.
    let first = client_frame(0x1, false, b"fine so far \xff");
    let mut reader = FrameReader::new(1 << 20, false);
    assert_eq!(reader.feed(&first, &mut Vec::new()), Err(WsError::BadUtf8));
    // Binary messages are not checked.
    assert!(feed_in_pieces(&client_frame(0x2, true, b"\xff\xfe"), 1, false).is_ok());
}

#[test]
fn the_incremental_check_agrees_with_std_on_arbitrary_bytes() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: [&[u8]; 10] = [
        b"a",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xf0\x9d\x84\x9e",
        b"\xff",
        b"\x80",
        b"\xe2",
        b"\xf0\x9d",
        b"\xed\xa0\x80",
        b"\xc1\xbf",
    ];
    for _ in 0..3000 {
        let parts = (next() % 6) as usize;
        let bytes: Vec<u8> = (0..parts)
            .flat_map(|_| {
                alphabet[(next() % alphabet.len() as u64) as usize]
                    .iter()
                    .copied()
            })
            .collect();
        let mut check = Utf8Check::default();
        let mut rest = &bytes[..];
        let mut result = Ok(());
        while !rest.is_empty() && result.is_ok() {
            let n = ((next() % 4) as usize + 1).min(rest.len());
            result = check.feed(&rest[..n]);
            rest = &rest[n..];
        }
        let result = result.and_then(|_| check.finish());
        assert_eq!(
            result.is_ok(),
            std::str::from_utf8(&bytes).is_ok(),
            "{bytes:x?}"
        );
    }
}

#[test]
fn close_frames_are_checked() {
    let close = |payload: &[u8]| feed_in_pieces(&client_frame(0x8, true, payload), 3, false);
    assert_eq!(close(b"").unwrap(), vec![Event::Close(None)]);
    for code in [1000u16, 1001, 1003, 1007, 1011, 1013, 3000, 4999] {
        assert_eq!(
            close(&code.to_be_bytes()).unwrap(),
            vec![Event::Close(Some(code))]
        );
    }
    let mut with_reason = 1000u16.to_be_bytes().to_vec();
    with_reason.extend_from_slice("bye ✓".as_bytes());
    assert_eq!(close(&with_reason).unwrap(), vec![Event::Close(Some(1000))]);

    let err = close(&[0x03]).unwrap_err();
    assert_eq!(err.close_code(), CloseCode::Protocol, "1-byte payload");
    for code in [
        0u16, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000, 65535,
    ] {
        let err = close(&code.to_be_bytes()).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::Protocol, "code {code}");
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(b"bye \xff");
    let err = close(&bad_reason).unwrap_err();
    assert_eq!(
        (err.clone(), err.close_code()),
        (WsError::BadCloseReason, CloseCode::Invalid)
    );
}

#[test]
fn an_oversized_message_is_refused_from_its_header_alone() {
    // A header announcing 1 TiB, with none of its payload: refused at once.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let mut reader = FrameReader::new(1000, false);
    assert_eq!(
        reader.feed(&header, &mut Vec::new()),
        Err(WsError::TooBig(1000))
    );
    // Fragments adding up to more than the limit: refused at the header that passes it.
    let mut reader = FrameReader::new(1000, true);
    let mut events = Vec::new();
    reader
        .feed(&client_frame(0x2, false, &[0; 600]), &mut events)
        .unwrap();
    let second = client_frame(0x0, true, &[0; 600]);
    assert_eq!(
        reader.feed(&second[..8], &mut events),
        Err(WsError::TooBig(1000))
    );
    // A 64-bit length with its top bit set is a protocol error, whatever the limit.
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    let mut reader = FrameReader::new(usize::MAX, false);
    assert!(matches!(
        reader.feed(&huge, &mut Vec::new()),
        Err(WsError::Protocol(_))
    ));
}

#[test]
fn every_reserved_opcode_and_bad_control_frame_gets_1002() {
    for opcode in (3..=7).chain(11..=15) {
        let err = feed_in_pieces(&client_frame(opcode, true, b"x"), 1, false).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::Protocol, "opcode {opcode}");
    }
    for opcode in [0x8, 0x9, 0xA] {
        let fragmented = client_frame(opcode, false, b"");
        let err = feed_in_pieces(&fragmented, 1, false).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::Protocol, "fragmented {opcode}");
        let long = client_frame(opcode, true, &[0; 126]);
        let err = feed_in_pieces(&long, 1, false).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::Protocol, "126-byte {opcode}");
    }
    // Reserved bits without an extension.
    let mut rsv = client_frame(0x2, true, b"x");
    rsv[0] |= 0x40;
    let err = feed_in_pieces(&rsv, 1, false).unwrap_err();
    assert_eq!(err.close_code(), CloseCode::Protocol);
    // A new data message inside a fragmented one.
    let mut wire = client_frame(0x1, false, b"a");
    wire.extend(client_frame(0x2, true, b"b"));
    let err = feed_in_pieces(&wire, 2, false).unwrap_err();
    assert_eq!(err.close_code(), CloseCode::Protocol);
}

#[test]
fn unmasking_a_word_at_a_time_agrees_with_a_byte_at_a_time() {
    let mask = [0x12, 0x9a, 0x00, 0xff];
    let data: Vec<u8> = (0..67u32).map(|i| (i * 37 + 5) as u8).collect();
    for pos in 0..8u64 {
        for start in 0..9 {
            for end in start..data.len() {
                let mut fast = data[start..end].to_vec();
                unmask(&mut fast, mask, pos);
                let slow: Vec<u8> = data[start..end]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(pos as usize + i) & 3])
                    .collect();
                assert_eq!(fast, slow, "pos {pos}, bytes {start}..{end}");
            }
        }
    }
}

#[test]
fn a_reply_frame_is_its_header_and_the_payload() {
    for (len, text) in [
        (0, true),
        (125, false),
        (126, true),
        (65_535, false),
        (70_000, false),
    ] {
        let payload = vec![7u8; len];
        let whole = message_frame(payload.clone(), text);
        let header = message_header(len, text);
        assert_eq!([header.as_slice(), &payload].concat(), whole, "{len} bytes");
    }
}

#[test]
fn an_announced_payload_is_reserved_as_it_arrives_not_from_the_header() {
    const LEN: usize = 16 << 20;
    let frame = client_frame(0x2, true, &vec![7u8; LEN]);
    let header_len = frame.len() - LEN;
    let mut reader = FrameReader::new(LEN, true);
    let mut events = Vec::new();
    reader.feed(&frame[..header_len], &mut events).unwrap();
    assert_eq!(
        reader.payload.capacity(),
        0,
        "a header alone reserves nothing"
    );
    let mut fed = header_len;
    for piece in [1000, 64 << 10, 1 << 20] {
        reader.feed(&frame[fed..fed + piece], &mut events).unwrap();
        fed += piece;
        let arrived = fed - header_len;
        let capacity = reader.payload.capacity();
        assert!(
            capacity >= arrived && capacity <= 2 * arrived,
            "after {arrived} payload bytes the capacity is {capacity}: it follows what arrived"
        );
    }
    reader.feed(&frame[fed..], &mut events).unwrap();
    match &events[..] {
        [Event::Message {
            payload: Some(payload),
            ..
        }] => {
            assert_eq!(payload.len(), LEN);
            assert!(payload.capacity() <= LEN, "never past the frame's end");
            assert!(payload.iter().all(|&b| b == 7));
        }
        other => panic!("one message expected, got {} events", other.len()),
    }
}
