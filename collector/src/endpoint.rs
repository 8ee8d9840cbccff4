//! The snapshot port: `GET /snapshot`, `GET /metrics` (Prometheus), `GET /settings`,
//! `PUT /settings`, with CORS.
//!
//! Served by warp on its own listener (loopback by default), so a page on another
//! localhost port can read snapshots and switch the head mode.
//!
//! What it lets through comes from [`EndpointSettings`] (config.json's `cors_origins`
//! and `settings_token`):
//! - CORS: only the configured origins get CORS headers; an entry without a port
//!   (`http://localhost`) matches that scheme and host on any port, `"*"` matches any
//!   origin. A preflight from any other origin is refused (403, no CORS headers).
//! - `PUT /settings`: when a `settings_token` is configured it is always required
//!   (`Authorization: Bearer <token>`, 401 without it or with another one), loopback or
//!   not; without a token it is open on a loopback address and refused (403, saying to
//!   set `settings_token`) on any other. `GET` routes stay open.
//!
//! CORS is written here, not taken from a crate, because neither kept one can say
//! these rules: `warp::cors()` matches only exact origins (no "this host, any port",
//! which the page on trunk's port and the playground's own tests need) and rejects a
//! simple request from another origin instead of answering it without CORS headers;
//! tower-http's `CorsLayer` could match by a predicate, but it answers a refused
//! preflight with 200 and no headers, where this endpoint says 403 and why (the page
//! and `native/tests/endpoints.rs` read that answer).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use snapshot::HeadMode;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::StatusCode;
use warp::reply::{self, Reply, Response};
use warp::{Filter, Rejection};

use runtime::config::Config;
use runtime::server::State;
use runtime::shutdown::Shutdown;

/// Methods a cross-origin page may use.
const CORS_METHODS: &str = "GET, PUT, OPTIONS";
/// Request headers a cross-origin page may send.
const CORS_HEADERS: [&str; 2] = ["content-type", "authorization"];

/// What the snapshot port takes from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSettings {
    /// Token `PUT /settings` requires (`Authorization: Bearer`); `None`: none configured.
    pub token: Option<String>,
    /// Origins that get CORS headers: `scheme://host[:port]`, or `"*"` for any.
    pub cors_origins: Vec<String>,
}

impl EndpointSettings {
    /// `settings_token` (an empty one counts as none) and `cors_origins` of `config`.
    pub fn from_config(config: &Config) -> EndpointSettings {
        EndpointSettings {
            token: config
                .settings_token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
            cors_origins: config.cors_origins.clone(),
        }
    }

    /// Whether a page from `origin` (an `Origin` header's value) may read the answers.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim();
        let parsed = Origin::parse(origin);
        self.cors_origins.iter().any(|entry| {
            let entry = entry.trim();
            if entry == "*" {
                return true;
            }
            match (Origin::parse(entry), &parsed) {
                (Some(rule), Some(origin)) => rule.matches(origin),
                // Entries that are no `scheme://host[:port]` (say `null`) match exactly.
                _ => entry.eq_ignore_ascii_case(origin),
            }
        })
    }
}

impl Default for EndpointSettings {
    /// The settings of `Config::default()`: loopback origins, no token.
    fn default() -> Self {
        EndpointSettings::from_config(&Config::default())
    }
}

/// An origin (or a `cors_origins` entry): scheme, host and port, if given.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = text.split_once("://")?;
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            || authority.is_empty()
            || authority.contains(['/', '?', '#', '@', ' '])
        {
            return None;
        }
        let (host, port) = if authority.starts_with('[') {
            let end = authority.find(']')?;
            let (host, rest) = authority.split_at(end + 1);
            match rest {
                "" => (host, None),
                _ => (host, Some(rest.strip_prefix(':')?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(':') && !host.starts_with('[') {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        Some(Origin {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `self` as a rule: same scheme and host, and the same port unless it has none.
    fn matches(&self, origin: &Origin) -> bool {
        let default_port = match origin.scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        self.scheme == origin.scheme
            && self.host == origin.host
            && (self.port.is_none() || self.port == origin.port.or(default_port))
    }
}

/// Serves the snapshot endpoint of the process `state` belongs to on its configured
/// port (`wss_heapdump_port`, `proxy_heapdump_port` or `client_heapdump_port`).
pub async fn serve_for(
    config: &Config,
    state: Arc<State>,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let port = match state.role {
        runtime::Role::Wss => config.wss_heapdump_port,
        runtime::Role::Proxy => config.proxy_heapdump_port,
        runtime::Role::Client => config.client_heapdump_port,
    };
    serve_with(
        (config.snapshot_bind, port).into(),
        state,
        shutdown,
        EndpointSettings::from_config(config),
    )
    .await
}

/// Binds `addr`, serves the endpoints with `settings` until shutdown, and returns the
/// bound address.
pub async fn serve_with(
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Shutdown,
    settings: EndpointSettings,
) -> std::io::Result<SocketAddr> {
    let listener = runtime::server::bind(addr, "snapshot endpoint").await?;
    let bound = listener.local_addr()?;
    let loopback = is_loopback(bound.ip());
    if !loopback {
        match settings.token {
            Some(_) => tracing::info!(
                "snapshot endpoint on {bound} is not loopback: PUT /settings requires the settings_token"
            ),
            None => tracing::warn!(
                "snapshot endpoint on {bound} is not loopback and no settings_token is set: \
                 PUT /settings is refused (set settings_token in config.json to allow it)"
            ),
        }
    }
    let stop = shutdown.clone();
    let server = warp::serve(routes(state, settings, loopback))
        .incoming(listener)
        .graceful(async move { stop.cancelled().await });
    shutdown.spawn(server.run());
    Ok(bound)
}

/// Whether `ip` is a loopback address (`127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether a `Host` header names this machine (localhost, a loopback address), with
/// or without a port. A page that rebinds its own domain to 127.0.0.1 sends its own
/// name instead, so refusing other names keeps such pages out of a loopback endpoint.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// Who may change the settings.
#[derive(Debug, Clone)]
struct Guard {
    token: Option<String>,
    loopback: bool,
}

/// A `PUT /settings` that did not pass the [`Guard`].
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    message: String,
}

impl warp::reject::Reject for Refused {}

impl Guard {
    /// What `GET /` says about `PUT /settings`.
    fn describe(&self) -> &'static str {
        match (&self.token, self.loopback) {
            (Some(_), _) => "requires Authorization: Bearer <settings_token>",
            (None, true) => "open (loopback only, no settings_token set)",
            (None, false) => "refused: not loopback and no settings_token set",
        }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let Some(token) = &self.token else {
            return if self.loopback {
                Ok(())
            } else {
                Err(Refused {
                    status: StatusCode::FORBIDDEN,
                    message: "PUT /settings is refused: this endpoint listens on a non-loopback \
                              address and no settings_token is configured; set settings_token in \
                              config.json (or --settings_token) and send Authorization: Bearer <token>"
                        .into(),
                })
            };
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match given {
            None => Err(Refused {
                status: StatusCode::UNAUTHORIZED,
                message: "PUT /settings requires Authorization: Bearer <settings_token>".into(),
            }),
            Some(t) if !same_bytes(t.as_bytes(), token.as_bytes()) => Err(Refused {
                status: StatusCode::UNAUTHORIZED,
                message: "wrong settings token".into(),
            }),
            Some(_) => Ok(()),
        }
    }
}

/// Compares without stopping at the first difference (the length may show).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CORS decisions of one endpoint.
struct Cors {
    settings: EndpointSettings,
}

impl Cors {
    /// The request's origin, if it has one that is allowed.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.settings
            .origin_allowed(origin.to_str().ok()?)
            .then_some(origin)
    }

    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`).
    fn is_preflight(headers: &HeaderMap) -> bool {
        headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    fn preflight(&self, headers: &HeaderMap) -> Response {
        let Some(origin) = self.allowed(headers) else {
            let origin = headers
                .get(header::ORIGIN)
                .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
                .unwrap_or_default();
            return vary(error(
                StatusCode::FORBIDDEN,
                &format!("CORS: origin {origin:?} is not in cors_origins (config.json)"),
            ));
        };
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .map(|m| m.as_bytes().to_ascii_uppercase())
            .unwrap_or_default();
        if !matches!(method.as_slice(), b"GET" | b"HEAD" | b"PUT") {
            return vary(error(
                StatusCode::FORBIDDEN,
                &format!("CORS: method not allowed; allowed: {CORS_METHODS}"),
            ));
        }
        let requested = headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|h| h.trim_ascii().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .find(|h| !CORS_HEADERS.iter().any(|a| a.as_bytes() == h.as_slice()));
        if let Some(other) = requested {
            return vary(error(
                StatusCode::FORBIDDEN,
                &format!(
                    "CORS: header {:?} not allowed; allowed: {}",
                    String::from_utf8_lossy(&other),
                    CORS_HEADERS.join(", ")
                ),
            ));
        }
        let mut response = reply::with_status("", StatusCode::OK).into_response();
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, authorization"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        vary(response)
    }

    /// Adds the CORS headers to an answer when the request's origin is allowed.
    fn decorate(&self, headers: &HeaderMap, mut response: Response) -> Response {
        if let Some(origin) = self.allowed(headers) {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("content-disposition"),
            );
        }
        vary(response)
    }
}

/// Answers depend on the `Origin`: caches must not mix them.
fn vary(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[derive(Deserialize)]
struct SnapshotQuery {
    download: Option<String>,
    /// One of [`FORMATS`]; `json` when absent.
    format: Option<String>,
    /// List at most this many connections (JSON only); all when absent.
    connections: Option<String>,
}

/// The formats `GET /snapshot?format=` serves: the JSON snapshot (the default), the
/// same as a Chrome heap snapshot, for DevTools' Memory panel, and as a pprof heap
/// profile of retaining paths (gzip-compressed `profile.proto`), for `go tool pprof`,
/// Pyroscope and Parca.
pub const FORMATS: [&str; 3] = ["json", "heapsnapshot", "pprof"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    head_mode: HeadMode,
}

/// All routes of the snapshot port; `loopback` says whether it listens on loopback.
pub fn routes(
    state: Arc<State>,
    endpoint: EndpointSettings,
    loopback: bool,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let guard = Arc::new(Guard {
        token: endpoint.token.clone(),
        loopback,
    });
    let cors = Arc::new(Cors { settings: endpoint });
    let with_state = warp::any().map(move || state.clone());
    let snapshot = warp::path!("snapshot")
        .and(warp::get())
        .and(warp::query::<SnapshotQuery>())
        .and(with_state.clone())
        .map(get_snapshot);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state.clone())
        .map(get_metrics);
    let get_settings = warp::path!("settings")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: Arc<State>| reply::json(&settings(&state)).into_response());
    let authorized = {
        let guard = guard.clone();
        warp::header::headers_cloned()
            .and_then(move |headers: HeaderMap| {
                let checked = guard.check(&headers).map_err(warp::reject::custom);
                std::future::ready(checked)
            })
            .untuple_one()
    };
    let put_settings = warp::path!("settings")
        .and(warp::put())
        .and(authorized)
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .map(put_settings);
    let index = warp::path::end()
        .and(warp::get())
        .and(with_state)
        .map(move |state: Arc<State>| {
            reply::json(&json!({
                "role": state.role.as_str(),
                "endpoints": {
                    "GET /snapshot": "the memory snapshot (?connections=N lists at most N connections and their retainers, 0 for the totals alone; ?format=heapsnapshot for Chrome DevTools' Memory panel, ?format=pprof for a pprof heap profile of retaining paths; ?download=1 to save it as a file)",
                    "GET /metrics": "the same figures in Prometheus's text format (version 0.0.4)",
                    "GET /settings": "the settings in force",
                    "PUT /settings": "{\"head_mode\": \"retain\" | \"copy\" | \"drop\"}: for new connections",
                },
                "put_settings": guard.describe(),
            }))
            .into_response()
        });
    // On loopback, only requests addressed to this machine by name (DNS rebinding).
    let host_ok = warp::header::optional::<String>("host")
        .and_then(move |host: Option<String>| {
            let ok = !loopback || host.as_deref().is_none_or(is_loopback_host);
            std::future::ready(if ok {
                Ok(())
            } else {
                Err(warp::reject::custom(Refused {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "Host {:?} is not this machine: a loopback endpoint answers only \
                         localhost and loopback addresses",
                        host.unwrap_or_default()
                    ),
                }))
            })
        })
        .untuple_one();
    let api = host_ok
        .and(
            snapshot
                .or(metrics)
                .unify()
                .or(get_settings)
                .unify()
                .or(put_settings)
                .unify()
                .or(index)
                .unify(),
        )
        .recover(rejection)
        .unify();
    let preflight = {
        let cors = cors.clone();
        warp::options()
            .and(warp::header::headers_cloned())
            .and_then(move |headers: HeaderMap| {
                let answer = if Cors::is_preflight(&headers) {
                    Ok(cors.preflight(&headers))
                } else {
                    Err(warp::reject::not_found())
                };
                std::future::ready(answer)
            })
    };
    let with_cors = warp::header::headers_cloned()
        .and(api)
        .map(move |headers: HeaderMap, response: Response| cors.decorate(&headers, response));
    preflight.or(with_cors).unify()
}

fn get_snapshot(query: SnapshotQuery, state: Arc<State>) -> Response {
    let format = query.format.as_deref().unwrap_or("json");
    if !FORMATS.contains(&format) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "unknown format {format:?}; known formats: {}",
                FORMATS.join(", ")
            ),
        );
    }
    let detail = match query.connections.as_deref().map(str::parse::<usize>) {
        None => super::Detail::ALL,
        Some(Ok(_)) if format != "json" => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("connections= applies to the JSON snapshot; the {format} file lists every connection"),
            );
        }
        Some(Ok(n)) => super::Detail {
            connections: Some(n),
        },
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "connections= takes a count: the most connections to list (0 for the totals alone)",
            );
        }
    };
    let snap = super::take_with(&state, detail);
    let name = match format {
        "heapsnapshot" => snapshot::heapsnapshot::file_name(&snap),
        "pprof" => snapshot::pprof::file_name(&snap),
        _ => format!("{}-snapshot-{}.json", snap.role, snap.taken_at_ms),
    };
    let download = query.download.is_some_and(|d| d != "0" && d != "false");
    let mut response = match format {
        "heapsnapshot" => super::heapsnapshot::response(snap),
        "pprof" => pprof_response(&snap),
        _ => reply::json(&snap).into_response(),
    };
    if download {
        if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
            response.headers_mut().insert("content-disposition", value);
        }
    }
    response
}

/// The snapshot as a gzip-compressed pprof profile (a few KiB per hundred paths,
/// built whole: unlike the `.heapsnapshot` it is small enough not to stream).
fn pprof_response(snap: &snapshot::Snapshot) -> Response {
    let mut response = Response::new(snapshot::pprof::to_vec(snap).into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(snapshot::pprof::CONTENT_TYPE),
    );
    response
}

/// The snapshot's figures in Prometheus's text format (`super::metrics`).
fn get_metrics(state: Arc<State>) -> Response {
    let body = super::metrics::render(&state);
    reply::with_header(body, header::CONTENT_TYPE, super::metrics::CONTENT_TYPE).into_response()
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
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    reply::with_status(reply::json(&json!({ "error": message })), status).into_response()
}

async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    Ok(if let Some(refused) = r.find::<Refused>() {
        let mut response = error(refused.status, &refused.message);
        if refused.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"settings\""),
            );
        }
        response
    } else if r.is_not_found() {
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
