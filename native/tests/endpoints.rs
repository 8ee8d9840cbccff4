//! The snapshot port as a browser on another localhost port sees it.

mod common;

use common::{exchange, Playground};
use snapshot::HeadMode;
use tokio::net::TcpStream;

async fn get(pg: &Playground, request: &str) -> String {
    let mut io = TcpStream::connect(pg.proxy.snapshot_addr).await.unwrap();
    exchange(&mut io, request.as_bytes()).await
}

#[tokio::test]
async fn a_page_on_another_port_may_read_snapshots_and_switch_settings() {
    let pg = Playground::start(HeadMode::Retain, HeadMode::Retain, |_| {}).await;
    let answer = get(&pg, "GET /snapshot HTTP/1.1\r\nHost: x\r\nOrigin: http://127.0.0.1:8080\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer
            .to_lowercase()
            .contains("access-control-allow-origin: http://127.0.0.1:8080"),
        "{answer}"
    );
    let preflight = get(
        &pg,
        "OPTIONS /settings HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:8080\r\n\
         Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(preflight.starts_with("HTTP/1.1 200 OK"), "{preflight}");
    assert!(
        preflight
            .to_lowercase()
            .contains("access-control-allow-methods"),
        "{preflight}"
    );
}

#[tokio::test]
async fn download_names_a_timestamped_file_and_errors_are_json() {
    let pg = Playground::start(HeadMode::Copy, HeadMode::Copy, |_| {}).await;
    let answer = get(
        &pg,
        "GET /snapshot?download=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let lower = answer.to_lowercase();
    let line = lower
        .lines()
        .find(|l| l.starts_with("content-disposition:"))
        .expect(&answer);
    assert!(
        line.contains("attachment; filename=\"proxy-snapshot-"),
        "{line}"
    );
    assert!(line.trim_end().ends_with(".json\""), "{line}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    snapshot::validate(&json).unwrap();

    let missing = get(
        &pg,
        "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("\"error\""), "{missing}");
    let bad = get(&pg, "PUT /settings HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("head_mode"), "{bad}");
    let settings = native::snapshot::fetch::get_json(pg.proxy.snapshot_addr, "/settings")
        .await
        .unwrap();
    assert_eq!(
        settings["head_mode"], "copy",
        "a refused change changes nothing"
    );
}
