//! The load client's per-connection traffic (`client_pinMessageSize`,
//! `client_pinDataBytes`, `client_pinDataMessageSize`) through the slab stack's
//! TLS proxy and wss, on real sockets: what the wss read, and what the client's own
//! snapshot port says it sent.
//!
//! Each test runs the client twice against one playground, with the same number
//! of pinning connections: once without pin traffic (the seed's scenario, which
//! sends nothing), once with it. The difference in what the wss's `tcp` pool read
//! is the pin traffic on the wire: each message's payload and its masked frame
//! header, no more and no less.

mod common;

use std::net::SocketAddr;

use client::{ClientOptions, ClientSummary};
use common::{wait_until, Playground};
use runtime::config::Config;
use runtime::shutdown::Shutdown;
use snapshot::{HeadMode, Snapshot};
use tungstenite::protocol::frame::FrameHeader;

/// Pinning connections per run.
const PINNING: u64 = 4;

/// A config for a client of `pg`: `PINNING` pinning connections, no data
/// connection (so everything the wss reads comes from the pinning ones), and its
/// own snapshot on a known port.
fn client_config(pg: &Playground) -> Config {
    let mut config = pg.client_config(PINNING);
    config.client_data_size = 0;
    config
}

async fn snapshot_at(addr: SocketAddr) -> Option<Snapshot> {
    let json = client::fetch::get_json(addr, "/snapshot").await.ok()?;
    Some(common::checked(json))
}

/// Bytes the wss has read through its `tcp` pool, once no connection is open.
async fn wss_read_when_idle(pg: &Playground) -> u64 {
    wait_until("the wss has no connection open", || async {
        pg.snapshot(&pg.wss).await.connections.open == 0
    })
    .await;
    pg.snapshot(&pg.wss)
        .await
        .pool("tcp")
        .expect("the slab wss has a tcp pool")
        .bytes_read_total
}

/// Runs the client of `config` until its own snapshot satisfies `done`, then stops
/// it and returns its summary and that last snapshot.
async fn run_until(
    config: Config,
    what: &str,
    done: impl Fn(&Snapshot) -> bool,
) -> (ClientSummary, Snapshot) {
    let addr = SocketAddr::from(([127, 0, 0, 1], config.client_heapdump_port));
    let shutdown = Shutdown::new();
    let run = tokio::spawn(client::run(
        config,
        ClientOptions::default(),
        shutdown.clone(),
    ));
    let last = std::sync::Mutex::new(None);
    wait_until(what, || async {
        let snap = snapshot_at(addr).await;
        let ok = snap.as_ref().is_some_and(&done);
        *last.lock().unwrap() = snap;
        ok
    })
    .await;
    shutdown.trigger();
    let summary = tokio::time::timeout(common::BOUND, run)
        .await
        .expect("the client stops")
        .expect("no panic")
        .expect("the run succeeds");
    (summary, last.into_inner().unwrap().unwrap())
}

/// Wire bytes of one message of `size` bytes from a client: payload and masked header.
fn on_the_wire(size: u64) -> u64 {
    let header = FrameHeader {
        mask: Some([0; 4]),
        ..FrameHeader::default()
    };
    size + header.len(size) as u64
}

/// The sizes a connection should send under `config`, computed from the keys alone.
fn expected_messages(config: &Config) -> Vec<u64> {
    let mut sizes = Vec::new();
    if config.client_pin_message_size > 0 {
        sizes.push(config.client_pin_message_size);
    }
    let mut left = config.client_pin_data_bytes;
    while left > 0 {
        let n = left.min(config.client_pin_data_message_size);
        sizes.push(n);
        left -= n;
    }
    sizes
}

/// Runs without and then with pin traffic; checks the client's counters and the
/// wss's bytes read against the configured traffic.
async fn check_pin_traffic(pg: &Playground, set: impl FnOnce(&mut Config)) {
    let before = wss_read_when_idle(pg).await;

    // The seed's scenario: the pinning connections send nothing.
    let plain = client_config(pg);
    let (summary, snap) = run_until(plain, "all pinning connections open", |s| {
        s.connections.open == PINNING
    })
    .await;
    assert_eq!(summary.pinning_opened, PINNING, "{summary:?}");
    assert_eq!(
        (
            summary.pin_traffic_done,
            summary.pin_messages_sent,
            summary.pin_bytes_sent
        ),
        (0, 0, 0)
    );
    assert_eq!(snap.client, Some(snapshot::ClientTraffic::default()));
    let baseline = wss_read_when_idle(pg).await - before;
    assert!(baseline > 0);

    // With pin traffic, waited for on the client's own snapshot port.
    let mut config = client_config(pg);
    set(&mut config);
    let sizes = expected_messages(&config);
    let per_connection: u64 = sizes.iter().sum();
    assert_eq!(
        per_connection,
        config.client_pin_message_size + config.client_pin_data_bytes
    );
    let start = wss_read_when_idle(pg).await;
    let (summary, snap) = run_until(config, "every pinning connection sent its traffic", |s| {
        s.client
            .as_ref()
            .is_some_and(|c| c.pin_traffic_done == PINNING)
    })
    .await;
    let client = snap.client.unwrap();
    assert_eq!(client.pin_bytes_sent, PINNING * per_connection);
    assert_eq!(client.pin_messages_sent, PINNING * sizes.len() as u64);
    assert_eq!(summary.pinning_opened, PINNING, "{summary:?}");
    assert_eq!(summary.pinning_closed, 0, "{summary:?}");
    assert_eq!(summary.pin_traffic_done, PINNING);
    assert_eq!(summary.pin_bytes_sent, PINNING * per_connection);
    assert_eq!(summary.pin_messages_sent, PINNING * sizes.len() as u64);

    // What the wss read beyond the run without traffic: exactly those messages.
    let with_traffic = wss_read_when_idle(pg).await - start;
    let wire: u64 = sizes.iter().map(|&s| on_the_wire(s)).sum();
    assert_eq!(
        with_traffic - baseline,
        PINNING * wire,
        "wss read {with_traffic} bytes with pin traffic, {baseline} without"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_connections_send_their_first_message_and_data_exactly() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |c| {
        c.wss_echo = false;
    })
    .await;
    check_pin_traffic(&pg, |c| {
        c.client_pin_message_size = 1000;
        c.client_pin_data_bytes = 40_000;
        c.client_pin_data_message_size = 16384;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_message_alone_is_one_message() {
    let pg = Playground::start(HeadMode::Copy, HeadMode::Copy, |c| {
        c.wss_echo = false;
    })
    .await;
    check_pin_traffic(&pg, |c| {
        c.client_pin_message_size = 300;
    })
    .await;
}

/// Megabytes per connection with the wss echoing them back: the client reads the
/// echoes while it writes, so neither side stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_alone_with_echo_goes_through_without_stalling() {
    let pg = Playground::start(HeadMode::Drop, HeadMode::Drop, |c| {
        c.wss_echo = true;
        c.max_message_size = 64 << 10;
    })
    .await;
    check_pin_traffic(&pg, |c| {
        c.client_pin_data_bytes = 3 << 20;
        c.client_pin_data_message_size = 60_000;
    })
    .await;
}

#[test]
fn expected_messages_follow_the_keys() {
    let config = Config {
        client_pin_message_size: 5,
        client_pin_data_bytes: 10,
        client_pin_data_message_size: 4,
        ..Config::default()
    };
    assert_eq!(expected_messages(&config), [5, 4, 4, 2]);
}
