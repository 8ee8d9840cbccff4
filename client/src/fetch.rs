//! Fetching a snapshot (or any JSON) from a snapshot endpoint over HTTP/1.1.
//!
//! One request function under [`fetch`], [`get`], [`get_json`], [`get_text`] and [`put_json`]: a fresh
//! connection per request, the whole exchange bounded by [`TIMEOUT`], the answer
//! bounded by [`MAX_BODY`], and errors that say which URL failed and how.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Time allowed for one whole request: connect, send, and read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer accepted, in bytes.
pub const MAX_BODY: usize = 256 << 20;

/// A request to a snapshot endpoint that failed; every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing answers at the address.
    #[error("no snapshot at {url}: {source}: is the server running?")]
    Unreachable { url: String, source: io::Error },
    /// The connection broke or the answer was not HTTP.
    #[error("{url}: HTTP exchange failed: {source}")]
    Http { url: String, source: hyper::Error },
    /// The answer's body could not be read in full, or was too large.
    #[error("{url}: cannot read the answer: {reason}")]
    Body { url: String, reason: String },
    /// No complete answer within [`TIMEOUT`].
    #[error("{url}: no answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// An answer other than 200 OK.
    #[error("{url}: answered {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    /// The answer is not the JSON expected.
    #[error("{url}: {what}: {source}")]
    Json {
        url: String,
        what: &'static str,
        source: serde_json::Error,
    },
    /// The request itself could not be built (a bad path, say).
    #[error("{url}: bad request: {reason}")]
    Request { url: String, reason: String },
}

impl FetchError {
    /// Whether nothing listens at the address (the server is not running).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, FetchError::Unreachable { .. })
    }
}

/// `GET /snapshot` at `addr`, parsed as a [`snapshot::Snapshot`].
pub async fn fetch(addr: SocketAddr) -> Result<snapshot::Snapshot, FetchError> {
    let (url, body) = request(addr, Method::GET, "/snapshot", None).await?;
    serde_json::from_slice(&body).map_err(|source| FetchError::Json {
        url,
        what: "not a snapshot",
        source,
    })
}

/// `GET path` at `addr`: the body of its 200 answer, as sent.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Bytes, FetchError> {
    request(addr, Method::GET, path, None)
        .await
        .map(|(_, body)| body)
}

/// `GET path` at `addr`, parsed as JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, FetchError> {
    let (url, body) = request(addr, Method::GET, path, None).await?;
    parse_json(url, &body)
}

/// `GET path` at `addr` as text (`GET /metrics`, say).
pub async fn get_text(addr: SocketAddr, path: &str) -> Result<String, FetchError> {
    let (url, body) = request_accepting(addr, Method::GET, path, None, "text/plain").await?;
    String::from_utf8(body.to_vec()).map_err(|e| FetchError::Body {
        url,
        reason: format!("not UTF-8: {e}"),
    })
}

/// `PUT path` at `addr` with a JSON body; the answer parsed as JSON.
pub async fn put_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, FetchError> {
    let (url, answer) = request(addr, Method::PUT, path, Some(body)).await?;
    parse_json(url, &answer)
}

fn parse_json(url: String, body: &[u8]) -> Result<serde_json::Value, FetchError> {
    serde_json::from_slice(body).map_err(|source| FetchError::Json {
        url,
        what: "not valid JSON",
        source,
    })
}

/// One request on a fresh connection; returns the URL and the body of a 200 answer.
async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    json: Option<&serde_json::Value>,
) -> Result<(String, Bytes), FetchError> {
    request_accepting(addr, method, path, json, "application/json").await
}

/// [`request`] with this `Accept` header.
async fn request_accepting(
    addr: SocketAddr,
    method: Method,
    path: &str,
    json: Option<&serde_json::Value>,
    accept: &str,
) -> Result<(String, Bytes), FetchError> {
    let url = format!("http://{addr}{path}");
    let answer = exchange(addr, &url, method, path, json, accept);
    match tokio::time::timeout(TIMEOUT, answer).await {
        Ok(result) => result.map(|body| (url, body)),
        Err(_) => Err(FetchError::Timeout {
            url,
            after: TIMEOUT,
        }),
    }
}

async fn exchange(
    addr: SocketAddr,
    url: &str,
    method: Method,
    path: &str,
    json: Option<&serde_json::Value>,
    accept: &str,
) -> Result<Bytes, FetchError> {
    let bad_request = |reason: String| FetchError::Request {
        url: url.to_string(),
        reason,
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(ACCEPT, accept);
    let body = match json {
        Some(value) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::from(value.to_string())
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(Full::new(body))
        .map_err(|e| bad_request(e.to_string()))?;

    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| FetchError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let http_err = |source| FetchError::Http {
        url: url.to_string(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;

    let answer = async move {
        let response = sender.send_request(request).await.map_err(http_err)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError::Body {
                url: url.to_string(),
                reason: e.to_string(),
            })?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
                body: summary(&body),
            });
        }
        Ok(body)
    };
    // The connection is driven alongside the exchange; once it ends (the server
    // closed it), the exchange finishes with what it got, or with hyper's error.
    tokio::pin!(answer, conn);
    tokio::select! {
        result = &mut answer => result,
        _ = &mut conn => answer.await,
    }
}

/// The start of an error answer, on one line, for an error message.
fn summary(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(no body)".into();
    }
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server answering with `answer`; returns its address.
    async fn answer_once(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn refused_says_nothing_is_there() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let err = fetch(addr).await.expect_err("nothing listens");
        assert!(err.is_unreachable());
        assert!(
            err.to_string()
                .starts_with(&format!("no snapshot at http://{addr}/snapshot")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn non_200_and_bad_json_are_named() {
        let addr =
            answer_once("HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found").await;
        let err = get_json(addr, "/nope").await.expect_err("404");
        assert!(
            err.to_string().contains("404 Not Found: not found"),
            "{err}"
        );

        let addr = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{nope").await;
        let err = fetch(addr).await.expect_err("bad json");
        assert!(matches!(err, FetchError::Json { .. }), "{err}");

        let addr = answer_once(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n",
        )
        .await;
        let value = put_json(addr, "/settings", &serde_json::json!({"head_mode": "copy"}))
            .await
            .expect("json");
        assert_eq!(value["a"], 1);
    }
}
