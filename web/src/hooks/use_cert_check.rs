//! Whether the browser can open a websocket through the proxy.
//!
//! With TLS, a browser refuses the proxy's self-signed certificate until the user has
//! accepted it once, and a websocket gives no reason when it fails. So the page opens
//! a test websocket; if it fails before opening, a `no-cors` request to the proxy's
//! https URL tells a certificate problem (the request fails too) from a websocket
//! refused behind a working TLS (the request completes). Until it succeeds, the check
//! is repeated every [`RECHECK_MS`], so accepting the certificate in another tab is
//! noticed without a reload.

use std::cell::Cell;
use std::rc::Rc;

use gloo::timers::callback::Interval;
use yew::prelude::*;

use crate::api;
use crate::runner::test_websocket;

/// Time between two checks while they fail.
pub const RECHECK_MS: u32 = 5000;

#[derive(Debug, Clone, PartialEq)]
pub enum CertState {
    /// The proxy speaks plain websockets: there is no certificate to trust.
    NotTls,
    /// Not checked: the proxy's snapshot port does not answer.
    Unknown,
    Checking,
    /// A test websocket opened.
    Trusted,
    /// The browser does not trust the proxy's certificate (or cannot reach it at all).
    Untrusted(String),
    /// TLS works, but the test websocket was refused (the wss behind the proxy is down?).
    Refused(String),
}

/// What the proxy is known to be: whether it is up, and whether it speaks TLS.
#[hook]
pub fn use_cert_check(ws_url: String, https_url: String, proxy_up: bool, tls: bool) -> CertState {
    let state = use_state(|| CertState::Unknown);
    {
        let state = state.clone();
        use_effect_with(
            (ws_url, https_url, proxy_up, tls),
            move |(ws_url, https_url, proxy_up, tls)| {
                let mut interval = None;
                let cancelled = Rc::new(Cell::new(false));
                if !*tls {
                    state.set(CertState::NotTls);
                } else if !*proxy_up {
                    state.set(CertState::Unknown);
                } else {
                    let ws_url = Rc::new(ws_url.clone());
                    let https_url = Rc::new(https_url.clone());
                    let trusted = Rc::new(Cell::new(false));
                    let failed_once = Rc::new(Cell::new(false));
                    let busy = Rc::new(Cell::new(false));
                    let cancelled = cancelled.clone();
                    let check = move || {
                        if trusted.get() || cancelled.get() || busy.replace(true) {
                            return;
                        }
                        if !failed_once.get() {
                            state.set(CertState::Checking);
                        }
                        let state = state.clone();
                        let https_url = https_url.clone();
                        let (trusted, failed_once) = (trusted.clone(), failed_once.clone());
                        let (busy, cancelled) = (busy.clone(), cancelled.clone());
                        test_websocket(&ws_url, move |result| match result {
                            Ok(()) => {
                                trusted.set(true);
                                busy.set(false);
                                if !cancelled.get() {
                                    state.set(CertState::Trusted);
                                }
                            }
                            Err(why) => {
                                wasm_bindgen_futures::spawn_local(async move {
                                    let tls_ok = api::reachable_no_cors(&https_url).await;
                                    busy.set(false);
                                    failed_once.set(true);
                                    if !cancelled.get() {
                                        state.set(if tls_ok {
                                            CertState::Refused(why)
                                        } else {
                                            CertState::Untrusted(why)
                                        });
                                    }
                                });
                            }
                        });
                    };
                    check();
                    interval = Some(Interval::new(RECHECK_MS, check));
                }
                move || {
                    cancelled.set(true);
                    drop(interval)
                }
            },
        );
    }
    (*state).clone()
}
