//! The warp wss after traffic (`ws_idle_release_ms`): tungstenite's read and write
//! buffers grow under bursts and never shrink; with the setting on, a websocket that
//! has been quiet gives them back, and what `retain` pins shows again. Each wss runs
//! as its own process, so the allocator's figures are its alone.

mod common;

use std::time::Duration;

use common::{Server, BOUND};
use futures_util::{SinkExt, StreamExt};
use snapshot::{HeadMode, Snapshot};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Websockets of each run.
const N: usize = 12;
/// The burst each sends after its 100-byte first message: 400 KB in 16 KiB messages.
const BURST: usize = 25;
const MESSAGE: usize = 16 << 10;

/// A warp wss of its own, echoing, in `mode`, with `release_ms` (0: off) and any
/// other settings.
fn warp_wss(
    dir: &std::path::Path,
    mode: HeadMode,
    release_ms: u64,
    more: &[(&str, &str)],
) -> Server {
    let release_ms = release_ms.to_string();
    let mut settings = vec![
        ("wss_stack", "warp"),
        ("wss_echo", "true"),
        ("wss_head", mode.as_str()),
        ("ws_idle_release_ms", &release_ms),
    ];
    settings.extend_from_slice(more);
    Server::wss(dir, &settings)
}

type Ws = WebSocketStream<TcpStream>;

async fn open(wss: &Server) -> Ws {
    let tcp = TcpStream::connect(wss.addr).await.unwrap();
    let url = format!("ws://{}/", wss.addr);
    let (mut ws, _) = tokio::time::timeout(BOUND, tokio_tungstenite::client_async(url, tcp))
        .await
        .unwrap()
        .unwrap();
    let greeting = next(&mut ws).await;
    assert!(greeting.to_text().unwrap().starts_with("hello from wss"));
    ws
}

async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(BOUND, ws.next())
        .await
        .expect("a message within the bound")
        .expect("the websocket is open")
        .expect("a message")
}

/// Sends `message` and reads its echo.
async fn echo(ws: &mut Ws, message: Vec<u8>) {
    let len = message.len();
    ws.send(Message::binary(message)).await.unwrap();
    assert_eq!(next(ws).await.len(), len);
}

fn allocated(s: &Snapshot) -> i64 {
    s.process.allocator.allocated_bytes.unwrap() as i64
}

/// What a run measured: bytes allocated per websocket once they were open and had
/// sent their first message, and once they had been quiet after the burst.
#[derive(Debug)]
struct AfterTraffic {
    idle: i64,
    quiet: i64,
}

/// Bytes allocated per websocket above `base`, from the wss's own snapshot.
async fn per_websocket(wss: &Server, base: i64) -> i64 {
    (allocated(&wss.snapshot().await) - base) / N as i64
}

/// [`per_websocket`] once it holds still over one `step`, read at most 40 steps.
async fn settled(wss: &Server, base: i64, step: Duration) -> i64 {
    let mut last = per_websocket(wss, base).await;
    for _ in 0..40 {
        tokio::time::sleep(step).await;
        let now = per_websocket(wss, base).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the wss's allocated bytes did not hold still within 40 steps of {step:?}");
}

/// The burst: [`BURST`] messages of [`MESSAGE`] bytes sent back to back while the
/// echoes are read.
async fn burst(ws: &mut Ws) {
    let (mut tx, mut rx) = ws.split();
    let send = async {
        for _ in 0..BURST {
            tx.feed(Message::binary(vec![9; MESSAGE])).await.unwrap();
        }
        tx.flush().await.unwrap();
    };
    let read = async {
        for _ in 0..BURST {
            let echo = tokio::time::timeout(BOUND, rx.next()).await.unwrap();
            assert_eq!(echo.unwrap().unwrap().len(), MESSAGE);
        }
    };
    tokio::join!(send, read);
}

/// Opens [`N`] websockets to a wss in `mode` with `release_ms`, each sends a
/// 100-byte first message, then the burst (every message echoed); each figure read
/// once it holds still over a step longer than the quiet spell.
async fn run(mode: HeadMode, release_ms: u64) -> AfterTraffic {
    let dir = tempfile::tempdir().unwrap();
    let wss = warp_wss(dir.path(), mode, release_ms, &[]);
    let base = allocated(&wss.snapshot().await);
    let mut all = Vec::with_capacity(N);
    for _ in 0..N {
        let mut ws = open(&wss).await;
        echo(&mut ws, vec![7; 100]).await;
        all.push(ws);
    }
    // Each step outlasts the quiet spell: a figure that holds over one has had
    // what the first message left given back too.
    let step = Duration::from_millis(release_ms + 250);
    let idle = settled(&wss, base, step).await;
    // Each sends its burst as fast as it can, the echoes read as they come: the
    // payloads waiting for their echo share the read buffer, so it grows.
    futures_util::future::join_all(all.iter_mut().map(burst)).await;
    let quiet = settled(&wss, base, step).await;
    // Every websocket still works.
    for ws in &mut all {
        echo(ws, vec![1; 10]).await;
    }
    AfterTraffic { idle, quiet }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_websockets_give_back_what_bursts_grew_and_the_pin_shows_again() {
    let within_2x = |idle: i64, quiet: i64| quiet <= 2 * idle;
    let (copy_off, copy_on, retain_on) = tokio::join!(
        run(HeadMode::Copy, 0),
        run(HeadMode::Copy, 300),
        run(HeadMode::Retain, 300),
    );
    eprintln!("per websocket: copy off {copy_off:?}, copy on {copy_on:?}, retain on {retain_on:?}");
    // Off: the buffers the burst grew stay (in RSS too: tungstenite zero-fills its
    // read buffer to its capacity at every read).
    let grown = copy_off.quiet - copy_off.idle;
    assert!(
        grown >= 64 << 10,
        "without the release a burst's buffers stay: {copy_off:?}"
    );
    // On: given back, within 2x of the idle cost, in copy and retain alike.
    assert!(
        copy_on.quiet - copy_on.idle <= grown / 3 && within_2x(copy_on.idle, copy_on.quiet),
        "copy: {copy_on:?}, grown without the release: {grown}"
    );
    assert!(
        within_2x(retain_on.idle, retain_on.quiet),
        "retain: {retain_on:?}"
    );
    // A first message of 100 bytes cannot have grown anything: the codec stays, so
    // retain's idle cost is copy's (the kept message pins the buffer still in use),
    // not a second read buffer.
    assert!(
        retain_on.idle < copy_on.idle + 64_000,
        "retain idle {retain_on:?} against copy {copy_on:?}"
    );
    // And what retain pins shows: its first message keeps the read buffer it came in,
    // tungstenite's 128 KiB, beside the fresh one the release made.
    assert!(
        retain_on.quiet >= copy_on.quiet + 100_000,
        "retain {retain_on:?} against copy {copy_on:?}"
    );
}

/// A frame the client writes by hand: masked, FIN or not.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        len @ 0..126 => frame.push(0x80 | len as u8),
        len => {
            frame.push(0x80 | 126);
            frame.extend(u16::try_from(len).unwrap().to_be_bytes());
        }
    }
    let mask = [3, 1, 4, 1];
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_or_message_cut_by_a_quiet_spell_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest read buffer: a message larger than it makes every quiet spell
    // after it find the codec worth making anew, so each one tries.
    let wss = warp_wss(
        dir.path(),
        HeadMode::Copy,
        100,
        &[("ws_read_buffer_size", "256")],
    );
    let ws = open(&wss).await;
    // The rest by hand, each cut written with what comes before it, so no quiet
    // spell falls at a boundary first: a 1,000-byte message and half a frame, a
    // quiet spell, the other half and a message's first fragment, a quiet spell,
    // its last fragment.
    let mut tcp = ws.into_inner();
    let large = client_frame(true, 2, &[5; 1000]);
    let whole = client_frame(true, 2, b"across a quiet spell");
    tcp.write_all(&[&large[..], &whole[..9]].concat())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let first_half = client_frame(false, 1, b"first half, ");
    tcp.write_all(&[&whole[9..], &first_half[..]].concat())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    tcp.write_all(&client_frame(true, 0, b"second half"))
        .await
        .unwrap();
    let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    assert_eq!(next(&mut ws).await, Message::binary(vec![5; 1000]));
    assert_eq!(
        next(&mut ws).await,
        Message::binary(b"across a quiet spell".to_vec())
    );
    assert_eq!(
        next(&mut ws).await,
        Message::text("first half, second half")
    );
    // Quiet again, released (nothing in between), and still serving.
    tokio::time::sleep(Duration::from_millis(400)).await;
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("after"));
}
