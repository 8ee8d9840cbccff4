//! The fleet (`client::fleet`), the engine of `client audit` and of the bench,
//! against the real playground over TLS: opened at a rate to a level (greetings
//! awaited), paced traffic read by the wss, a clean close and a reset close, and the
//! failures it must name.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use client::fleet::{dial, traffic_sizes, Dial, Fleet, TargetUrl, Traffic};
use common::{wait_until, Playground, BOUND};
use snapshot::HeadMode;
use tokio::net::TcpListener;

/// Dialing the playground's proxy as the bench does: `wss://localhost`, connected on
/// 127.0.0.1, greeting awaited.
fn to_proxy(p: &Playground, reset: bool) -> Dial {
    let url = format!("wss://localhost:{}/", p.config.proxy_port);
    Dial {
        connect_to: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        greeting: true,
        reset,
        ..Dial::new(TargetUrl::parse(&url).unwrap(), p.tls.clone(), 1 << 20)
    }
}

fn traffic(sizes: Vec<usize>) -> Traffic {
    Traffic {
        sizes,
        senders: 8,
        timeout: BOUND,
    }
}

/// The fleet's check for a test: fails the step once [`BOUND`] has passed, so a
/// fleet that never gets there fails the test instead of hanging it.
fn bounded() -> impl FnMut() -> Result<(), String> {
    let deadline = std::time::Instant::now() + BOUND;
    move || {
        if std::time::Instant::now() > deadline {
            Err(format!("not done within {BOUND:?}"))
        } else {
            Ok(())
        }
    }
}

/// Client sockets to `port` in TIME_WAIT (state 06 of `/proc/net/tcp`).
fn time_wait_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let remote_port = f[2].rsplit(':').next().unwrap();
            f[3] == "06" && u16::from_str_radix(remote_port, 16).unwrap() == port
        })
        .count()
}

#[tokio::test]
async fn a_fleet_opens_to_its_level_sends_paced_traffic_and_closes() {
    let p = Playground::start(HeadMode::Copy, HeadMode::Copy, |_| {}).await;
    let mut fleet = Fleet::new(to_proxy(&p, false));
    let mut ticks = Vec::new();
    fleet
        .open_to(30, 300.0, 0, bounded(), |n| ticks.push(n))
        .await
        .unwrap();
    assert_eq!(fleet.open(), 30);
    assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "{ticks:?}");
    // Greetings awaited: each one open at the wss behind the proxy already.
    assert_eq!(p.snapshot(&p.wss).await.connections.open, 30);
    assert_eq!(p.snapshot(&p.proxy).await.connections.open, 30);

    let sizes = [vec![100], traffic_sizes(40 << 10, 16 << 10)].concat();
    assert_eq!(sizes, vec![100, 16384, 16384, 8192]);
    let before = p.snapshot(&p.wss).await.connections.open;
    fleet
        .send(traffic(sizes.clone()), bounded(), |_| {})
        .await
        .unwrap();
    // A second round is sent too (rounds are told apart).
    fleet.send(traffic(sizes), bounded(), |_| {}).await.unwrap();
    assert_eq!(fleet.open(), 30);
    assert_eq!(p.snapshot(&p.wss).await.connections.open, before);

    let mut closed = 0;
    fleet.close_all(|n| closed = n).await.unwrap();
    assert_eq!((fleet.open(), closed), (0, 30));
    wait_until("the wss sees every websocket closed", || async {
        p.snapshot(&p.wss).await.connections.open == 0
    })
    .await;
    fleet.shutdown().await;
}

/// (Here the kernel resets these sockets even without `SO_LINGER` 0, as TLS leaves
/// unread bytes behind; `reset` makes it so wherever the fleet runs.)
#[tokio::test]
async fn abort_ends_every_websocket_at_once_leaving_no_client_port_in_time_wait() {
    let p = Playground::start(HeadMode::Drop, HeadMode::Drop, |_| {}).await;
    let mut fleet = Fleet::new(to_proxy(&p, true));
    fleet
        .open_to(20, 500.0, 0, bounded(), |_| {})
        .await
        .unwrap();
    fleet.abort().await;
    wait_until("the proxy sees every websocket gone", || async {
        p.snapshot(&p.proxy).await.connections.open == 0
    })
    .await;
    assert_eq!(time_wait_to(p.config.proxy_port), 0);
}

#[tokio::test]
async fn a_message_the_server_refuses_fails_the_send_with_the_reason() {
    let p = Playground::start(HeadMode::Copy, HeadMode::Copy, |c| {
        c.max_message_size = 32 << 10;
    })
    .await;
    let mut fleet = Fleet::new(to_proxy(&p, false));
    fleet.open_to(4, 200.0, 0, bounded(), |_| {}).await.unwrap();
    let e = fleet
        .send(traffic(vec![64 << 10]), bounded(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("could not send") || e.contains("the server closed"),
        "{e}"
    );
    fleet.abort().await;
}

#[tokio::test]
async fn a_server_that_never_greets_fails_the_attempt_by_its_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts websockets and holds them without a word.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                held.push(ws);
            }
        }
    });
    let target = TargetUrl::parse(&format!("ws://127.0.0.1:{port}/")).unwrap();
    let quiet = Dial {
        greeting: true,
        timeout: Duration::from_millis(500),
        ..Dial::new(target.clone(), None, 1 << 20)
    };
    let e = dial(&quiet).await.unwrap_err().to_string();
    assert!(e.contains("with its greeting"), "{e}");
    let mut fleet = Fleet::new(quiet);
    let e = fleet
        .open_to(3, 100.0, 0, bounded(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attempts to open a websocket failed") && e.contains("with its greeting"),
        "{e}"
    );
    // Without waiting for a greeting, the same server's websockets open.
    let mut fleet = Fleet::new(Dial::new(target, None, 1 << 20));
    fleet.open_to(3, 100.0, 0, bounded(), |_| {}).await.unwrap();
    fleet.abort().await;
    server.abort();
}

#[tokio::test]
async fn a_failing_check_stops_the_opening_with_its_message() {
    let p = Playground::start(HeadMode::Drop, HeadMode::Drop, |_| {}).await;
    let mut fleet = Fleet::new(to_proxy(&p, true));
    // One websocket a second: the check fails long before 50 are open.
    let mut calls = 0;
    let e = fleet
        .open_to(
            50,
            1.0,
            0,
            || {
                calls += 1;
                if calls > 3 {
                    Err("the audited process has exited".to_string())
                } else {
                    Ok(())
                }
            },
            |_| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(e, "the audited process has exited");
    assert!(fleet.open() < 50);
    fleet.abort().await;
}
