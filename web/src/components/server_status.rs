//! One server's status line: reachable or not, stack and head mode, open connections, live
//! slabs and memory, from its latest snapshot (`#status-proxy`, `#status-wss`).

use yew::prelude::*;

use crate::hooks::ServerView;
use crate::logic::config::Server;
use crate::logic::format::{bytes, figure_bytes, stack_name};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub server: Server,
    /// Base URL of its snapshot endpoints.
    pub endpoint: AttrValue,
    pub view: ServerView,
}

#[function_component]
pub fn ServerStatus(props: &Props) -> Html {
    let name = props.server.name();
    let view = &props.view;
    let id = format!("status-{name}");
    let (class, body) = match (&view.latest, &view.error) {
        (None, None) => ("status checking", html! { <span>{ "checking…" }</span> }),
        (_, Some(error)) => (
            "status down",
            html! {
                <>
                    <span class="badge down">{ "not reachable" }</span>
                    <span class="detail">{ error.clone() }</span>
                    <span class="hint">{ "Start it with " }<code>{ props.server.command() }</code>
                        { " (from the repository root)." }</span>
                </>
            },
        ),
        (Some(s), None) => (
            "status up",
            html! {
                <>
                    <span class="badge up">{ "reachable" }</span>
                    <span class="fact">{ "stack " }<b class="stack">{ stack_name(s.settings.stack) }</b></span>
                    <span class="fact">{ "head mode " }<b>{ s.settings.head_mode.map(|m| m.as_str()).unwrap_or("-") }</b></span>
                    <span class="fact"><b>{ s.connections.open }</b>{ " open connections" }</span>
                    <span class="fact"><b>{ s.totals.live_slabs }</b>{ " live slabs (" }{ bytes(s.totals.retained_bytes) }{ " retained)" }</span>
                    <span class="fact rss" data-unreadable={ s.process.rss_bytes.is_none().to_string() }>{ "RSS " }{ figure_bytes(&s.process, snapshot::figure::RSS) }</span>
                    <span class="fact">{ if s.settings.tls { "TLS" } else { "plain" } }</span>
                    <span class="fact muted">{ format!("pid {}", s.process.pid) }</span>
                    { guard_notice(&s.guard) }
                </>
            },
        ),
    };
    let latest = view.latest.as_ref().filter(|_| view.error.is_none());
    html! {
        <div {id} {class}
            data-reachable={ (latest.is_some()).to_string() }
            data-stack={ latest.map(|s| stack_name(s.settings.stack)).unwrap_or("") }
            data-head-mode={ latest.and_then(|s| s.settings.head_mode).map(|m| m.as_str()).unwrap_or("") }
            data-open={ latest.map(|s| s.connections.open.to_string()).unwrap_or_default() }
            data-live-slabs={ latest.map(|s| s.totals.live_slabs.to_string()).unwrap_or_default() }
            data-tls={ latest.map(|s| s.settings.tls.to_string()).unwrap_or_default() }
            data-guard-tripped={ latest.map(|s| s.guard.memory_tripped.to_string()).unwrap_or_default() }>
            <h3>{ name }<a class="endpoint" href={ format!("{}/snapshot", props.endpoint) } target="_blank">{ props.endpoint.clone() }</a></h3>
            <div class="facts">{ body }</div>
        </div>
    }
}

/// Says plainly when a server refuses new connections, and why.
fn guard_notice(guard: &snapshot::Guard) -> Html {
    let mut reasons = Vec::new();
    if guard.memory_tripped {
        reasons.push(format!(
            "memory guard tripped: live slabs reached the limit of {}",
            bytes(guard.memory_limit_bytes)
        ));
    }
    if guard.at_connection_cap {
        reasons.push(format!(
            "at the connection cap of {}",
            guard.max_connections
        ));
    }
    if reasons.is_empty() {
        return html! {};
    }
    html! {
        <span class="guard-tripped">
            <span class="badge down">{ "refusing new connections" }</span>
            { format!(" {} ({} refused so far); it recovers when memory falls or connections close.",
                reasons.join("; "), guard.refused_total) }
        </span>
    }
}
