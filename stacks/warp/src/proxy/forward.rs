//! The warp proxy's one route: every request is forwarded to `proxy_target` over a
//! fresh hyper client connection.
//!
//! A websocket upgrade (a request hyper marked upgradable: it carries an `OnUpgrade`)
//! is admitted by the memory guard and the connection cap, sent upstream as it came
//! (method, path and query, headers, a body if it announces one); a 101 answer goes back to the client with the
//! upstream's headers, and a task of its own then takes both upgraded streams
//! (`hyper::upgrade::on` on both sides) and copies between them with
//! `tokio::io::copy_bidirectional` (buffers of `proxy_copy_buffer_size`; or, with
//! `proxy_copy_on_readable`, a `Pipe` of `pipe.rs`) until either side ends or
//! shutdown. Any other answer is passed back as it is. A plain request is forwarded the same way, its body
//! streamed up and the answer's body streamed back.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use warp::filters::path::FullPath;
use warp::filters::BoxedFilter;
use warp::http::{self, header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::kept::KeptRequest;
use super::{pipe, Proxy, TunnelSettings};
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
    let settings = proxy.tunnel;
    if settings.on_readable || settings.release_upgrade {
        let tunnel = lean_tunnel(client, upstream, kept, open, id, settings);
        // Its own size: the tunnel task's future (its copy is boxed, not counted).
        state
            .connections
            .set_own_bytes(id, std::mem::size_of_val(&tunnel));
        proxy.shutdown.spawn_until_shutdown(tunnel);
    } else {
        let tunnel = tunnel(client, upstream, kept, open, id, settings.copy_buffer);
        // Its own size: the tunnel task's future, which holds all the connection keeps.
        state
            .connections
            .set_own_bytes(id, std::mem::size_of_val(&tunnel));
        proxy.shutdown.spawn_until_shutdown(tunnel);
    }
    reply
}

/// Copies between the client's and the upstream's upgraded streams until either ends,
/// with `copy_bidirectional` and two copy buffers of `proxy_copy_buffer_size` bytes,
/// in this future (as the proxy always has).
async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    kept: KeptRequest,
    open: OpenConnection,
    id: u64,
    copy_buffer: usize,
) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            let size = copy_buffer;
            let carried =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, size, size)
                    .await;
            closed(id, carried);
        }
        Err(e) => tracing::debug!(connection = id, "proxy: upgrade not completed: {e}"),
    }
    drop(kept);
    drop(open);
}

/// The tunnel with `proxy_copy_on_readable` or `proxy_release_upgrade` on: the copy
/// runs in a boxed future sized for the path taken ([`carry`]), and the wait for the
/// upgrades in another, freed once both have come, so that this one holds only what
/// the connection keeps and those boxes.
async fn lean_tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    kept: KeptRequest,
    open: OpenConnection,
    id: u64,
    settings: TunnelSettings,
) {
    // Boxed: the wait for both upgrades is over before the tunnel idles, so that its
    // state is not part of what the task holds for the tunnel's life.
    let upgraded = Box::pin(async move { tokio::try_join!(client, upstream) }).await;
    match upgraded {
        Ok((client, upstream)) => closed(id, carry(settings, client, upstream).await),
        Err(e) => tracing::debug!(connection = id, "proxy: upgrade not completed: {e}"),
    }
    drop(kept);
    drop(open);
}

/// Logs how a tunnel ended.
fn closed(id: u64, carried: io::Result<(u64, u64)>) {
    match carried {
        Ok((up, down)) => tracing::debug!(connection = id, up, down, "proxy: tunnel closed"),
        Err(e) => tracing::debug!(connection = id, "proxy: tunnel: {e}"),
    }
}

/// A tunnel's copy, boxed: the bytes carried up (client to upstream) and down.
type Carry = Pin<Box<dyn Future<Output = io::Result<(u64, u64)>> + Send>>;

/// The copy as `settings` say, in a box sized for the path taken.
///
/// With `release_upgrade`, each side's connection is taken back from hyper's
/// `Upgraded` (`downcast`: the client's is a `TlsStream` or, without TLS, a
/// `TcpStream`; the upstream's a `TcpStream`) with the bytes hyper had read past the
/// upgrade, which are forwarded first and dropped. A side that does not downcast (never
/// seen) is carried as an `Upgraded`.
fn carry(settings: TunnelSettings, client: Upgraded, upstream: Upgraded) -> Carry {
    let as_upgraded = |client: Upgraded, upstream: Upgraded| {
        copy(
            settings,
            TokioIo::new(client),
            TokioIo::new(upstream),
            Bytes::new(),
            Bytes::new(),
        )
    };
    if !settings.release_upgrade {
        return as_upgraded(client, upstream);
    }
    let (upstream, up_left) = match upstream.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (parts.io.into_inner(), parts.read_buf),
        Err(upstream) => return as_upgraded(client, upstream),
    };
    let client = match client.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            return copy(
                settings,
                parts.io.into_inner(),
                upstream,
                parts.read_buf,
                up_left,
            )
        }
        Err(client) => client,
    };
    match client.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => copy(
            settings,
            parts.io.into_inner(),
            upstream,
            parts.read_buf,
            up_left,
        ),
        Err(client) => copy(
            settings,
            TokioIo::new(client),
            upstream,
            Bytes::new(),
            up_left,
        ),
    }
}

/// Copies `client` to `upstream` and back, boxed: `client_left` (bytes read from the
/// client past its upgrade) written upstream first and `upstream_left` to the client,
/// both dropped before the copy waits for anything more, so that they pin nothing.
/// With `on_readable`, a [`pipe::Pipe`] (no copy buffer while idle); else
/// `copy_bidirectional` with two buffers of `copy_buffer` bytes.
fn copy<C, U>(
    settings: TunnelSettings,
    mut client: C,
    mut upstream: U,
    client_left: Bytes,
    upstream_left: Bytes,
) -> Carry
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if settings.on_readable {
        return Box::pin(pipe::Pipe::new(
            client,
            upstream,
            client_left,
            upstream_left,
            settings.copy_buffer,
        ));
    }
    let size = settings.copy_buffer;
    // The sides are captured and used in place (a binding inside the block would hold
    // a second copy of each in the future).
    Box::pin(async move {
        let (up, down) = (client_left.len() as u64, upstream_left.len() as u64);
        if up > 0 {
            upstream.write_all(&client_left).await?;
            upstream.flush().await?;
        }
        drop(client_left);
        if down > 0 {
            client.write_all(&upstream_left).await?;
            client.flush().await?;
        }
        drop(upstream_left);
        let (more_up, more_down) =
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, size, size)
                .await?;
        Ok((up + more_up, down + more_down))
    })
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
