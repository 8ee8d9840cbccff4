//! The layer in front of socketioxide: admits new engine.io sessions and hands
//! socketioxide the request as the head mode says.
//!
//! A request that opens a session (on the engine.io path, without a `sid`) takes a
//! place first ([`State::admit`]): refused, it is answered 503 with the reason and
//! never reaches socketioxide; admitted, its place rides in the request's
//! extensions ([`Admitted`]), which engine.io keeps with the rest of the parts,
//! until the namespace's connect handler opens it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use snapshot::HeadMode;
use tower_service::Service;
use warp::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};

use runtime::server::{Reserved, State};

/// The path socket.io clients use (engine.io's `/socket.io/`).
pub const ENGINE_IO_PATH: &str = "/socket.io/";

/// Headers engine.io still needs in `drop`: the websocket handshake's, and what a
/// polling request's body is.
const NEEDED: [header::HeaderName; 5] = [
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::CONTENT_TYPE,
];

/// The response body of every answer: socketioxide's, warp's or the layer's own.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A session's admission, carried in its request's extensions until the connect
/// handler takes it (extensions must be `Clone`: engine.io clones the parts).
#[derive(Clone)]
pub struct Admitted {
    /// The place taken; `None` once the connect handler has opened it.
    pub place: Arc<Mutex<Option<Reserved>>>,
    /// The head mode the request was handed over in.
    pub mode: HeadMode,
    /// The client's address.
    pub peer: SocketAddr,
}

impl Admitted {
    /// The place, once (the connect handler opens it).
    pub fn take(&self) -> Option<Reserved> {
        self.place.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// socketioxide's service behind the layer, for one connection from `peer`.
#[derive(Clone)]
pub struct HeadService<S> {
    pub inner: S,
    pub state: Arc<State>,
    pub peer: SocketAddr,
}

impl<S, B, RB> Service<Request<B>> for HeadService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: hyper::body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mode = self.state.head_mode().unwrap_or(HeadMode::Retain);
        let mut req = hand_over(req, mode);
        if opens_session(req.uri()) {
            match self.state.admit() {
                Ok(place) => {
                    req.extensions_mut().insert(Admitted {
                        place: Arc::new(Mutex::new(Some(place))),
                        mode,
                        peer: self.peer,
                    });
                }
                Err(refusal) => {
                    tracing::debug!(peer = %self.peer, "wss: refused: {refusal}");
                    let answer = text(StatusCode::SERVICE_UNAVAILABLE, format!("wss: {refusal}\n"));
                    return Box::pin(std::future::ready(Ok(answer)));
                }
            }
        }
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await?;
            Ok(res.map(|body| body.map_err(Into::into).boxed_unsync()))
        })
    }
}

/// Whether a request opens an engine.io session: on its path, with no `sid` yet.
pub fn opens_session(uri: &Uri) -> bool {
    uri.path().starts_with(ENGINE_IO_PATH)
        && !uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.starts_with("sid="))
}

/// `req` as socketioxide gets it in `mode`: as hyper made it (`retain`), with its
/// URI and header values copied (`copy`, `copy_unpooled`), or with only the copies
/// engine.io needs (`drop`). The extensions (hyper's upgrade among them) stay.
pub fn hand_over<B>(req: Request<B>, mode: HeadMode) -> Request<B> {
    if mode == HeadMode::Retain {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    let keep = |name: &header::HeaderName| mode != HeadMode::Drop || NEEDED.contains(name);
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if keep(name) {
            // `from_bytes` copies into a `Bytes` of its own.
            if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(name.clone(), copy);
            }
        }
    }
    parts.headers = headers;
    let uri = match mode {
        HeadMode::Drop => parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        _ => &parts.uri.to_string(),
    };
    if let Ok(copy) = Uri::from_maybe_shared(Bytes::copy_from_slice(uri.as_bytes())) {
        parts.uri = copy;
    }
    Request::from_parts(parts, body)
}

/// A text answer that closes the connection.
pub fn text(status: StatusCode, body: String) -> Response<Body> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<()> {
        Request::get("/socket.io/?EIO=4&transport=websocket")
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::COOKIE, Bytes::from(vec![b'c'; 300]).as_ref())
            .body(())
            .unwrap()
    }

    #[test]
    fn only_a_request_without_a_sid_opens_a_session() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(opens_session(&uri("/socket.io/?EIO=4&transport=websocket")));
        assert!(!opens_session(&uri(
            "/socket.io/?EIO=4&transport=websocket&sid=abc"
        )));
        assert!(!opens_session(&uri("/other/?EIO=4")));
    }

    #[test]
    fn copy_and_drop_hand_over_copies_and_drop_keeps_only_what_engine_io_needs() {
        let original = request();
        let cookie = original.headers()[header::COOKIE].as_bytes().as_ptr();
        let kept = hand_over(request(), HeadMode::Retain);
        assert_eq!(kept.headers().len(), 5);
        for mode in [HeadMode::Copy, HeadMode::CopyUnpooled] {
            let copied = hand_over(original.clone_parts(), mode);
            assert_eq!(copied.headers(), original.headers(), "{mode}");
            assert_eq!(copied.uri(), original.uri(), "{mode}");
            assert_ne!(copied.headers()[header::COOKIE].as_bytes().as_ptr(), cookie);
        }
        let dropped = hand_over(request(), HeadMode::Drop);
        assert!(dropped.headers().get(header::COOKIE).is_none());
        assert_eq!(dropped.headers().len(), 4);
        assert_eq!(dropped.uri().query(), Some("EIO=4&transport=websocket"));
    }

    trait CloneParts {
        fn clone_parts(&self) -> Request<()>;
    }

    impl CloneParts for Request<()> {
        fn clone_parts(&self) -> Request<()> {
            let mut r = Request::new(());
            *r.uri_mut() = self.uri().clone();
            *r.headers_mut() = self.headers().clone();
            r
        }
    }
}
