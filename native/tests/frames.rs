//! Websocket frames on the wire: raw bytes to the wss (and one through the TLS proxy),
//! and the close code each bad shape gets back.

mod common;

use common::{client_frame, close_code, read_all, server_frames, wait_until, Playground, UPGRADE};
use snapshot::HeadMode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

async fn playground(echo: bool) -> Playground {
    Playground::start(HeadMode::Copy, HeadMode::Copy, |c| {
        c.wss_echo = echo;
        c.max_message_size = 1024;
    })
    .await
}

/// Sends the upgrade then each of `writes` (separate writes, so separate reads as
/// often as not) straight to the wss, and returns the frames it answered with.
async fn to_wss(pg: &Playground, writes: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    for bytes in writes {
        tcp.write_all(bytes).await.unwrap();
        tcp.flush().await.unwrap();
    }
    let answer = read_all(&mut tcp).await;
    let (head, frames) = server_frames(&answer);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(
        frames.first().map(|f| f.0),
        Some(TEXT),
        "the greeting first"
    );
    frames
}

/// The wss ends up with no connection open.
async fn all_closed(pg: &Playground) {
    wait_until("the wss has no connection open", || async {
        pg.snapshot(&pg.wss).await.connections.open == 0
    })
    .await;
}

#[tokio::test]
async fn bad_utf8_in_a_text_message_gets_1007_when_echoing_and_when_discarding() {
    let euro = "€".as_bytes();
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("one frame", vec![client_frame(TEXT, true, b"hello \xff")]),
        (
            "a code point broken across two fragments and two writes",
            vec![
                client_frame(TEXT, false, &euro[..2]),
                client_frame(CONTINUATION, true, b"(x"),
            ],
        ),
        (
            "a code point cut short at the end of the message",
            vec![
                client_frame(TEXT, false, b"abc"),
                client_frame(PING, true, b"in between"),
                client_frame(CONTINUATION, true, &euro[..1]),
            ],
        ),
        (
            "a surrogate",
            vec![client_frame(TEXT, true, b"\xed\xa0\x80")],
        ),
    ];
    for echo in [false, true] {
        let pg = playground(echo).await;
        for (what, writes) in &cases {
            let frames = to_wss(&pg, writes).await;
            assert_eq!(
                close_code(&frames),
                Some(1007),
                "echo {echo}, {what}: {frames:?}"
            );
        }
        all_closed(&pg).await;
    }
}

#[tokio::test]
async fn text_split_inside_a_code_point_is_accepted() {
    let pg = playground(true).await;
    let text = "prix: 12 € 𝄞".as_bytes();
    let cut = text.len() - 2; // inside the 4-byte clef
    let frames = to_wss(
        &pg,
        &[
            client_frame(TEXT, false, &text[..cut]),
            client_frame(CONTINUATION, true, &text[cut..]),
            client_frame(CLOSE, true, &1000u16.to_be_bytes()),
        ],
    )
    .await;
    assert_eq!(frames[1], (TEXT, text.to_vec()), "echoed whole: {frames:?}");
    assert_eq!(close_code(&frames), Some(1000));
    all_closed(&pg).await;
}

#[tokio::test]
async fn close_frames_are_checked() {
    let pg = playground(false).await;
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(b"bye \xc3");
    for (payload, code, what) in [
        (bad_reason, 1007, "a reason that is not UTF-8"),
        (vec![0x03], 1002, "a 1-byte payload"),
        (
            1005u16.to_be_bytes().to_vec(),
            1002,
            "code 1005 (never sent)",
        ),
        (999u16.to_be_bytes().to_vec(), 1002, "code 999"),
        (2000u16.to_be_bytes().to_vec(), 1002, "reserved code 2000"),
        (5000u16.to_be_bytes().to_vec(), 1002, "code 5000"),
        (
            4000u16.to_be_bytes().to_vec(),
            4000,
            "a valid private code, echoed",
        ),
    ] {
        let frames = to_wss(&pg, &[client_frame(CLOSE, true, &payload)]).await;
        assert_eq!(close_code(&frames), Some(code), "{what}: {frames:?}");
    }
    all_closed(&pg).await;
}

#[tokio::test]
async fn an_oversized_message_gets_1009_before_its_payload_is_sent() {
    let pg = playground(true).await;
    // The header of a 1 MiB binary frame and not one byte of its payload.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[9, 9, 9, 9]);
    let frames = to_wss(&pg, &[header]).await;
    assert_eq!(close_code(&frames), Some(1009), "{frames:?}");
    // Fragments that pass max_message_size (1024) together.
    let frames = to_wss(
        &pg,
        &[
            client_frame(BINARY, false, &[1; 600]),
            client_frame(CONTINUATION, true, &[2; 600]),
        ],
    )
    .await;
    assert_eq!(close_code(&frames), Some(1009), "{frames:?}");
    // At the limit is fine.
    let frames = to_wss(
        &pg,
        &[
            client_frame(BINARY, true, &[3; 1024]),
            client_frame(CLOSE, true, &1000u16.to_be_bytes()),
        ],
    )
    .await;
    assert_eq!(frames[1], (BINARY, vec![3; 1024]));
    assert_eq!(close_code(&frames), Some(1000));
    all_closed(&pg).await;
}

#[tokio::test]
async fn bad_opcodes_unmasked_frames_and_bad_control_frames_get_1002() {
    let pg = playground(false).await;
    let mut unmasked = vec![0x82, 0x03];
    unmasked.extend_from_slice(b"abc");
    let mut rsv = client_frame(BINARY, true, b"x");
    rsv[0] |= 0x20;
    for (bytes, what) in [
        (client_frame(0x3, true, b"x"), "reserved data opcode 3"),
        (client_frame(0x7, true, b""), "reserved data opcode 7"),
        (client_frame(0xB, true, b""), "reserved control opcode 11"),
        (client_frame(0xF, true, b"x"), "reserved control opcode 15"),
        (unmasked, "an unmasked frame"),
        (client_frame(PING, false, b"x"), "a fragmented ping"),
        (client_frame(PING, true, &[0; 126]), "a 126-byte ping"),
        (client_frame(CLOSE, true, &[0; 126]), "a 126-byte close"),
        (
            client_frame(CONTINUATION, true, b"x"),
            "a continuation of nothing",
        ),
        (rsv, "a reserved bit"),
    ] {
        let frames = to_wss(&pg, &[bytes]).await;
        assert_eq!(close_code(&frames), Some(1002), "{what}: {frames:?}");
    }
    all_closed(&pg).await;
}

#[tokio::test]
async fn through_the_tls_proxy_bad_frames_get_their_codes_too() {
    let pg = playground(false).await;
    assert!(pg.tls.is_some(), "the proxy speaks TLS");
    for (bytes, code) in [
        (client_frame(TEXT, true, b"caf\xc3"), 1007),
        (client_frame(0x5, true, b""), 1002),
    ] {
        let mut proxy = pg.raw_proxy().await;
        proxy.write_all(UPGRADE.as_bytes()).await.unwrap();
        proxy.write_all(&bytes).await.unwrap();
        proxy.flush().await.unwrap();
        let answer = read_all(&mut proxy).await;
        let (head, frames) = server_frames(&answer);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert_eq!(close_code(&frames), Some(code), "{frames:?}");
    }
    wait_until("both servers have no connection open", || async {
        pg.snapshot(&pg.wss).await.connections.open == 0
            && pg.snapshot(&pg.proxy).await.connections.open == 0
    })
    .await;
}

#[tokio::test]
async fn headers_announcing_16_mib_frames_reserve_nothing_until_their_payload_comes() {
    const ANNOUNCED: u64 = 16 << 20;
    const PEERS: usize = 8;
    let pg = Playground::start(HeadMode::Copy, HeadMode::Copy, |c| {
        c.wss_echo = true;
        c.max_message_size = ANNOUNCED as usize;
    })
    .await;
    let before = pg.snapshot(&pg.wss).await;
    let mut header = vec![0x80 | BINARY, 0x80 | 127];
    header.extend_from_slice(&ANNOUNCED.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let mut tcp = TcpStream::connect(pg.wss.addr).await.unwrap();
        tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
        tcp.write_all(&header).await.unwrap();
        peers.push(tcp);
    }
    let sent = (PEERS * (UPGRADE.len() + header.len())) as u64;
    let read = |s: &snapshot::Snapshot| s.pools.iter().map(|p| p.bytes_read_total).sum::<u64>();
    wait_until(
        "the wss has read every upgrade and frame header",
        || async { read(&pg.snapshot(&pg.wss).await) >= read(&before) + sent },
    )
    .await;
    let after = pg.snapshot(&pg.wss).await;
    assert_eq!(after.connections.open, PEERS as u64);
    let allocated = |s: &snapshot::Snapshot| {
        s.process
            .allocator
            .allocated_bytes
            .expect("readable on Linux") as i64
    };
    let grown = allocated(&after) - allocated(&before);
    assert!(
        grown < ANNOUNCED as i64,
        "{PEERS} headers announcing {ANNOUNCED} bytes each made the wss allocate {grown} bytes more"
    );
    drop(peers);
    all_closed(&pg).await;
}
