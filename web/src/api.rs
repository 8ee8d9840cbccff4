//! The page's I/O outside websockets: config.json, the servers' snapshot endpoints
//! (`GET /snapshot`, `PUT /settings`), the certificate probe, and saving a file.
//!
//! Every failure comes back as a sentence the page can show as it is.

use gloo::net::http::Request;
use snapshot::{HeadMode, Snapshot};
use wasm_bindgen::JsCast;
use web_sys::RequestMode;

use crate::logic::config::{PageConfig, CONFIG_PATH};

/// Milliseconds since the Unix epoch by the browser's clock.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// The time of day of an epoch time in the browser's time zone: `14:03:27`.
pub fn time_of_day(ms: f64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    format!(
        "{:02}:{:02}:{:02}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// Reads config.json from the server that serves the page.
pub async fn fetch_config() -> Result<PageConfig, String> {
    let response = Request::get(CONFIG_PATH)
        .send()
        .await
        .map_err(|e| format!("{CONFIG_PATH}: cannot fetch it: {e}"))?;
    if !response.ok() {
        return Err(format!(
            "{CONFIG_PATH}: the page's server answered {} {} (is config.json copied by index.html's \
             <link data-trunk rel=\"copy-file\" href=\"config.json\">?)",
            response.status(),
            response.status_text()
        ));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("{CONFIG_PATH}: cannot read it: {e}"))?;
    PageConfig::parse(&text)
}

/// `GET` a snapshot: the parsed snapshot and its text as served.
pub async fn fetch_snapshot(url: &str) -> Result<(Snapshot, String), String> {
    let response = Request::get(url)
        .send()
        .await
        .map_err(|e| format!("not reachable at {url} ({e})"))?;
    let text = response
        .text()
        .await
        .map_err(|e| format!("{url}: cannot read the answer: {e}"))?;
    if !response.ok() {
        return Err(format!(
            "{url} answered {} {}: {}",
            response.status(),
            response.status_text(),
            text.trim()
        ));
    }
    let snapshot = serde_json::from_str::<Snapshot>(&text).map_err(|e| {
        format!("{url} answered, but not with a snapshot this page understands: {e}")
    })?;
    Ok((snapshot, text))
}

/// `PUT /settings {"head_mode": ...}`: the server's answer in one line, or its error.
pub async fn put_head_mode(url: &str, mode: HeadMode) -> Result<String, String> {
    let body = serde_json::json!({ "head_mode": mode });
    let request = Request::put(url)
        .json(&body)
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = request
        .send()
        .await
        .map_err(|e| format!("not reachable at {url} ({e})"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{url}: cannot read the answer: {e}"))?;
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if !response.ok() {
        let why = answer
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or(text.trim());
        return Err(format!("the server refused ({status}): {why}"));
    }
    let mode = answer
        .get("head_mode")
        .and_then(|m| m.as_str())
        .unwrap_or("?");
    let applies = answer
        .get("head_mode_applies_to")
        .and_then(|m| m.as_str())
        .unwrap_or("new connections");
    let open = answer
        .get("open_by_head_mode")
        .map(|o| {
            let counts: Vec<String> = HeadMode::ALL
                .iter()
                .map(|m| {
                    let n = o.get(m.as_str()).and_then(|v| v.as_u64()).unwrap_or(0);
                    format!("{n} {m}")
                })
                .collect();
            format!("; open now: {}", counts.join(", "))
        })
        .unwrap_or_default();
    Ok(format!("server says: head_mode {mode} for {applies}{open}"))
}

/// Whether the browser completes a request to `url` at all (an opaque `no-cors`
/// request): false when the TLS certificate is not trusted or nothing listens.
pub async fn reachable_no_cors(url: &str) -> bool {
    Request::get(url)
        .mode(RequestMode::NoCors)
        .send()
        .await
        .is_ok()
}

/// Saves `text` as a file named `name` through a Blob and a download link.
pub fn save_file(name: &str, text: &str) -> Result<(), String> {
    let fail = |what: &str, e: wasm_bindgen::JsValue| format!("cannot save {name}: {what}: {e:?}");
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(|e| fail("Blob", e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| fail("URL", e))?;
    let document = gloo::utils::document();
    let link: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| fail("link", e))?
        .dyn_into()
        .map_err(|e| fail("link", e.into()))?;
    link.set_href(&url);
    link.set_download(name);
    link.set_attribute("style", "display: none")
        .map_err(|e| fail("link", e))?;
    let body = gloo::utils::body();
    body.append_child(&link).map_err(|e| fail("link", e))?;
    link.click();
    let _ = body.remove_child(&link);
    // Revoked a little later: the download reads the Blob after the click returns.
    gloo::timers::callback::Timeout::new(10_000, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}
