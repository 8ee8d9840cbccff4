//! What the page says when the browser cannot open a websocket through the proxy:
//! its self-signed certificate is not trusted yet (`#cert-notice`, with the one link
//! to open and accept it), or the proxy refused the websocket (`#proxy-notice`).

use yew::prelude::*;

use crate::hooks::CertState;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub state: CertState,
    /// `https://localhost:8600/`: open it to accept the certificate.
    pub https_url: AttrValue,
    /// `wss://localhost:8600/`: what the experiment opens.
    pub ws_url: AttrValue,
    /// Whether the wss answers its snapshot port.
    pub wss_up: bool,
}

#[function_component]
pub fn CertNotice(props: &Props) -> Html {
    match &props.state {
        CertState::Untrusted(why) => html! {
            <div id="cert-notice" class="notice warn" role="alert">
                <p><b>{ "Your browser does not trust the proxy's self-signed certificate yet" }</b>
                   { format!(", so it cannot open websockets to {} (the test websocket {why}).", props.ws_url) }</p>
                <p>{ "Open " }
                   <a id="cert-link" href={ props.https_url.clone() } target="_blank" rel="noopener">{ props.https_url.clone() }</a>
                   { ", accept the certificate (Advanced → Proceed to localhost), then come back to this tab: \
                      it checks again every 5 seconds." }</p>
                <p class="hint">{ "Or run the proxy without TLS: " }
                   <code>{ "cargo run -p native --bin proxy -- --proxy_tls false" }</code>
                   { " (the page follows what the proxy reports)." }</p>
            </div>
        },
        CertState::Refused(why) => html! {
            <div id="proxy-notice" class="notice warn" role="alert">
                <p><b>{ "The proxy's certificate is trusted, but it refused the test websocket" }</b>
                   { format!(" ({why}).") }
                   { if props.wss_up { " See the proxy's log." } else { " The wss behind it does not answer: start it with `cargo run -p native --bin wss`." } }</p>
            </div>
        },
        CertState::Checking => html! {
            <p id="cert-checking" class="hint">{ format!("Checking that this browser can open {}…", props.ws_url) }</p>
        },
        CertState::Trusted => html! {
            <p id="cert-ok" class="hint">{ format!("This browser opens websockets to {} (certificate trusted).", props.ws_url) }</p>
        },
        CertState::NotTls | CertState::Unknown => html! {},
    }
}
