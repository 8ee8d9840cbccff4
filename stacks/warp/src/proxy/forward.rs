//! The warp proxy's one route: every request is forwarded to `proxy_target` over a
//! fresh hyper client connection.
//!
//! A websocket upgrade (a request hyper marked upgradable: it carries an `OnUpgrade`)
//! is admitted by the memory guard and the connection cap, sent upstream as it came
//! (method, path and query, headers, a body if it announces one); a 101 answer goes back to the client with the
//! upstream's headers, and a task of its own then takes both upgraded streams
//! (`hyper::upgrade::on` on both sides) and copies between them with
//! `tokio::io::copy_bidirectional` until either side ends or shutdown. Any other answer
//! is passed back as it is. A plain request is forwarded the same way, its body
//! streamed up and the answer's body streamed back.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use warp::filters::path::FullPath;
use warp::filters::BoxedFilter;
use warp::http::{self, header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::kept::KeptRequest;
use super::Proxy;
use runtime::server::{self, OpenConnection};

/// The body sent upstream: nothing for an upgrade, the client's body otherwise.
type UpBody = UnsyncBoxBody<Bytes, warp::Error>;

/// The route: the whole request taken with warp's filters, then forwarded.
pub(super) fn routes(proxy: Arc<Proxy>) -> BoxedFilter<(Response,)> {
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: FullPath,
                  query: Option<String>,
                  headers: HeaderMap,
                  on_upgrade: Option<OnUpgrade>,
                  body| {
                let proxy = proxy.clone();
                async move {
                    let Some(request) = request_head(method, &path, query, headers) else {
                        return text(StatusCode::BAD_REQUEST, "proxy: bad request target\n");
                    };
                    match on_upgrade {
                        Some(on_upgrade) => upgrade(&proxy, request, on_upgrade, body).await,
                        None => plain(&proxy, request, body).await,
                    }
                }
            },
        )
        .boxed()
}

/// The request as it came, without its body.
fn request_head(
    method: Method,
    path: &FullPath,
    query: Option<String>,
    headers: HeaderMap,
) -> Option<http::Request<()>> {
    let target = match query {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = target.parse().ok()?;
    *request.headers_mut() = headers;
    Some(request)
}

/// A copy of `head` with `body`, to send upstream (header values are shared, not copied).
fn upstream_request(head: &http::Request<()>, body: UpBody) -> http::Request<UpBody> {
    let mut request = http::Request::new(body);
    *request.method_mut() = head.method().clone();
    *request.uri_mut() = head.uri().clone();
    *request.headers_mut() = head.headers().clone();
    request
}

/// Forwards an upgrade request (with its body, if it says it has one: the upstream
/// then answers it, as it would straight); on a 101 the tunnel runs in a task of its own.
async fn upgrade<S, B>(
    proxy: &Proxy,
    head: http::Request<()>,
    client: OnUpgrade,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let state = &proxy.state;
    let (open, mut sender) = match admit_and_connect(proxy).await {
        Ok(ready) => ready,
        Err(answer) => return answer,
    };
    let mode = state.head_mode().expect("the proxy has a head mode");
    let mut open = open.open(Some(mode));
    let id = server::next_connection_id();
    open.describe(id, None, 0);
    let request = upstream_request(&head, request_body(&head, body));
    let kept = KeptRequest::keep(mode, id, head, &state.kept);
    let mut response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => return upstream_failed(proxy, &e.to_string()),
    };
    drop(sender);
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        tracing::debug!(connection = id, status = %response.status(), "proxy: the upstream refused the upgrade");
        return pass_back(response, open);
    }
    let upstream = hyper::upgrade::on(&mut response);
    let mut reply = Response::default();
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *reply.headers_mut() = std::mem::take(response.headers_mut());
    tracing::debug!(connection = id, %mode, "proxy: upgraded; tunnelling");
    let tunnel = tunnel(client, upstream, kept, open, id);
    // Its own size: the tunnel task's future, which holds all the connection keeps.
    state
        .connections
        .set_own_bytes(id, std::mem::size_of_val(&tunnel));
    proxy.shutdown.spawn_until_shutdown(tunnel);
    reply
}

/// Copies between the client's and the upstream's upgraded streams until either ends.
async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    kept: KeptRequest,
    open: OpenConnection,
    id: u64,
) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => {
                    tracing::debug!(connection = id, up, down, "proxy: tunnel closed")
                }
                Err(e) => tracing::debug!(connection = id, "proxy: tunnel: {e}"),
            }
        }
        Err(e) => tracing::debug!(connection = id, "proxy: upgrade not completed: {e}"),
    }
    drop(kept);
    drop(open);
}

/// Forwards a plain request, its body streamed up, the answer streamed back.
async fn plain<S, B>(proxy: &Proxy, head: http::Request<()>, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let (open, mut sender) = match admit_and_connect(proxy).await {
        Ok(ready) => ready,
        Err(answer) => return answer,
    };
    let mode = proxy.state.head_mode();
    let open = open.open(mode);
    match sender
        .send_request(upstream_request(&head, request_body(&head, body)))
        .await
    {
        Ok(response) => pass_back(response, open),
        Err(e) => upstream_failed(proxy, &e.to_string()),
    }
}

/// The body to send upstream: the client's, streamed, when the request says it has
/// one; else none (hyper would otherwise add chunked framing to a GET, and drop the
/// framing headers of a body it is not given, so that an upgrade's body bytes would
/// reach the tunnel as websocket data).
fn request_body<S, B>(head: &http::Request<()>, body: S) -> UpBody
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf + Send + 'static,
{
    let has_body = head.headers().contains_key(header::CONTENT_LENGTH)
        || head.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return empty();
    }
    StreamBody::new(
        body.map(|chunk| chunk.map(|mut b| Frame::data(b.copy_to_bytes(b.remaining())))),
    )
    .boxed_unsync()
}

/// A place among the open connections and a client connection to the upstream,
/// or the answer saying why not (503 refused, 502 unreachable).
async fn admit_and_connect(
    proxy: &Proxy,
) -> Result<
    (
        server::Reserved,
        hyper::client::conn::http1::SendRequest<UpBody>,
    ),
    Response,
> {
    let state = &proxy.state;
    let place = state.admit().map_err(|refusal| {
        tracing::debug!("proxy: refused: {refusal}");
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("proxy: {refusal}\n"),
        )
    })?;
    let target = (proxy.target.host.as_str(), proxy.target.port);
    let tcp = match tokio::time::timeout(proxy.upstream_timeout, TcpStream::connect(target)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(upstream_failed(proxy, &e.to_string())),
        Err(_) => {
            let why = format!("no answer within {:?}", proxy.upstream_timeout);
            return Err(upstream_failed(proxy, &why));
        }
    };
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| upstream_failed(proxy, &e.to_string()))?;
    proxy.shutdown.spawn_until_shutdown(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("proxy: upstream connection: {e}");
        }
    });
    Ok((place, sender))
}

/// The 502 for an upstream that cannot be reached or failed before answering.
fn upstream_failed(proxy: &Proxy, why: &str) -> Response {
    let (host, port) = (&proxy.target.host, proxy.target.port);
    tracing::warn!("proxy: upstream {host}:{port} unreachable: {why}");
    proxy.state.connections.failed_one();
    text(
        StatusCode::BAD_GATEWAY,
        format!("proxy: upstream {host}:{port} unreachable: {why}\n"),
    )
}

/// The upstream's answer, its body streamed back; `open` counts the request open
/// until the body has been sent (or the client went away).
fn pass_back(response: http::Response<Incoming>, open: OpenConnection) -> Response {
    let (parts, body) = response.into_parts();
    let body = BodyDataStream::new(body).map(move |chunk| {
        let _open = &open;
        chunk
    });
    let mut reply = warp::reply::stream(body).into_response();
    *reply.status_mut() = parts.status;
    *reply.headers_mut() = parts.headers;
    reply
}

/// A plain-text answer of the proxy's own; the connection closes after it, as the
/// slab proxy's does.
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut reply = Response::new(body.into().into());
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    reply
}

fn empty() -> UpBody {
    Empty::<Bytes>::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}
