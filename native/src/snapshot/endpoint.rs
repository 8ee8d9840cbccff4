//! The snapshot port: `GET /snapshot`, `GET /settings`, `PUT /settings`, with CORS.
//!
//! Served by warp on its own listener (loopback by default), so a page on another
//! localhost port can read snapshots and switch the head mode.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use snapshot::HeadMode;
use warp::http::StatusCode;
use warp::reply::{self, Reply, Response};
use warp::{Filter, Rejection};

use crate::server::State;
use crate::shutdown::Shutdown;

/// Binds `addr`, serves the endpoints until shutdown, and returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = crate::server::bind(addr, "snapshot endpoint").await?;
    let bound = listener.local_addr()?;
    let stop = shutdown.clone();
    let server = warp::serve(routes(state))
        .incoming(listener)
        .graceful(async move { stop.cancelled().await });
    shutdown.spawn(server.run());
    Ok(bound)
}

#[derive(Deserialize)]
struct SnapshotQuery {
    download: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    head_mode: HeadMode,
}

/// All routes of the snapshot port.
pub fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let with_state = warp::any().map(move || state.clone());
    let snapshot = warp::path!("snapshot")
        .and(warp::get())
        .and(warp::query::<SnapshotQuery>())
        .and(with_state.clone())
        .map(get_snapshot);
    let get_settings = warp::path!("settings")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: Arc<State>| reply::json(&settings(&state)).into_response());
    let put_settings = warp::path!("settings")
        .and(warp::put())
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .map(put_settings);
    let index = warp::path::end().and(warp::get()).and(with_state).map(|state: Arc<State>| {
        reply::json(&json!({
            "role": state.role.as_str(),
            "endpoints": {
                "GET /snapshot": "the memory snapshot (?download=1 to save it as a file)",
                "GET /settings": "the settings in force",
                "PUT /settings": "{\"head_mode\": \"retain\" | \"copy\" | \"drop\"}: for new connections",
            }
        }))
        .into_response()
    });
    let cors = warp::cors()
        .allow_any_origin()
        .allow_methods(["GET", "PUT", "OPTIONS"])
        .allow_headers(["content-type"]);
    snapshot
        .or(get_settings)
        .unify()
        .or(put_settings)
        .unify()
        .or(index)
        .unify()
        .recover(rejection)
        .unify()
        .with(cors)
        .map(Reply::into_response)
}

fn get_snapshot(query: SnapshotQuery, state: Arc<State>) -> Response {
    let snap = super::take(&state);
    let mut response = reply::json(&snap).into_response();
    if query.download.is_some_and(|d| d != "0" && d != "false") {
        let name = format!("{}-snapshot-{}.json", snap.role, snap.taken_at_ms);
        if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
            response.headers_mut().insert("content-disposition", value);
        }
    }
    response
}

fn settings(state: &State) -> serde_json::Value {
    json!({
        "role": state.role.as_str(),
        "head_mode": state.head_mode(),
        "head_mode_applies_to": "new connections",
        "open_by_head_mode": state.connections.open_by_head_mode(),
    })
}

fn put_settings(body: bytes::Bytes, state: Arc<State>) -> Response {
    let change: SettingsChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"head_mode\": \"retain\" | \"copy\" | \"drop\"}}: {e}"),
            )
        }
    };
    match state.set_head_mode(change.head_mode) {
        Ok(_) => reply::json(&settings(&state)).into_response(),
        Err(e) => error(StatusCode::CONFLICT, &e),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    reply::with_status(reply::json(&json!({ "error": message })), status).into_response()
}

async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    Ok(if r.is_not_found() {
        error(StatusCode::NOT_FOUND, "no such endpoint; see GET /")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; see GET /",
        )
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        error(StatusCode::PAYLOAD_TOO_LARGE, "body over 4096 bytes")
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        error(StatusCode::BAD_REQUEST, "invalid query string")
    } else {
        error(StatusCode::BAD_REQUEST, &format!("{r:?}"))
    })
}
