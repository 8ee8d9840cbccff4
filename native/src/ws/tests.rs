//! Frames fed in pieces of every size give the same events.

use super::*;

/// A masked client frame.
fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
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
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

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
