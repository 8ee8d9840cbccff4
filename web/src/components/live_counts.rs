//! The run's live counts (`#count-connecting`, `#count-open`, `#count-failed`,
//! `#count-closed`, `#bytes-sent`), the data connection, the pinning connections'
//! own traffic (`#pin-done`, `#pin-bytes`), and `#cap-notice` when the browser's
//! websocket cap was hit.

use yew::prelude::*;

use crate::logic::experiment::{Counts, BROWSER_CAP, NATIVE_CLIENT};
use crate::logic::format::bytes;
use crate::logic::pin::PinPlan;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub counts: Counts,
    /// The run's maximum, when one was started.
    pub max: Option<u64>,
    /// Whether the run asks for more websockets than a page may hold.
    pub above_cap: bool,
    /// What each pinning connection of the run sends, when one was started.
    #[prop_or_default]
    pub pin: Option<PinPlan>,
}

fn count(id: &'static str, label: &'static str, value: u64) -> Html {
    html! {
        <div class="count">
            <span id={id} class="value" data-value={ value.to_string() }>{ value }</span>
            <span class="label">{ label }</span>
        </div>
    }
}

#[function_component]
pub fn LiveCounts(props: &Props) -> Html {
    let c = &props.counts;
    let state = if c.running { "running" } else { "stopped" };
    html! {
        <div class="live-counts" id="live-counts" data-running={ c.running.to_string() }>
            <h3>{ "Pinning connections " }<span class="muted">{
                match props.max { Some(max) => format!("({state}, maximum {max})"), None => "(not started)".to_string() }
            }</span></h3>
            <div class="counts">
                { count("count-connecting", "connecting", c.connecting) }
                { count("count-open", "open", c.open) }
                { count("count-failed", "failed", c.failed) }
                { count("count-closed", "closed", c.closed) }
            </div>
            <p class="data-line">
                { "Data connection: " }<b id="data-state">{ c.data.as_str() }</b>
                { ", " }<span id="data-messages">{ c.data_messages }</span>{ " messages, " }
                <b id="bytes-sent" data-value={ c.bytes_sent.to_string() }>{ bytes(c.bytes_sent) }</b>{ " sent" }
                { if c.data_failed > 0 { format!(" ({} failed attempts)", c.data_failed) } else { String::new() } }
                { format!("; {} messages received, at most {} open at once.", c.received, c.peak_open) }
            </p>
            if let Some(plan) = props.pin.filter(PinPlan::is_some) {
                <p class="pin-line">
                    { "Pin traffic: " }<b id="pin-done" data-value={ c.pin_done.to_string() }>{ c.pin_done }</b>
                    { format!(" websockets done (each {} messages, {} in all), ", plan.messages(), bytes(plan.bytes())) }
                    <span id="pin-messages">{ c.pin_messages }</span>{ " messages, " }
                    <b id="pin-bytes" data-value={ c.pin_bytes.to_string() }>{ bytes(c.pin_bytes) }</b>{ " sent." }
                </p>
            }
            if let Some(problem) = &c.last_problem {
                <p id="last-problem" class="hint">{ "Last problem: " }{ problem.clone() }</p>
            }
            if c.cap_hit {
                <div id="cap-notice" class="notice warn" role="alert">
                    <b>{ "The browser's websocket cap was hit." }</b>
                    { format!(" A websocket failed to open with {} open or opening (at most {} open at once): browsers let \
                        one page hold only about {BROWSER_CAP} websockets (Chrome). For larger runs use the native client: ",
                        c.cap_at, c.peak_open) }
                    <code>{ NATIVE_CLIENT }</code>{ "." }
                </div>
            } else if props.above_cap {
                <p id="cap-warning" class="hint">{ format!("This run asks for more websockets than a browser page may hold \
                    (about {BROWSER_CAP}); expect failures past that, or use ") }<code>{ NATIVE_CLIENT }</code>{ "." }</p>
            }
        </div>
    }
}
