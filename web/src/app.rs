//! The page: reads /config.json, then shows both servers' status, the certificate
//! notice, the experiment form and its live counts, a live chart per server and one
//! for a running `client audit`, and the snapshot panel. The experiment's state is
//! one reducer ([`ExperimentState`]); the run's websockets follow it.
//!
//! Stable element ids for end-to-end tests (WebDriver):
//!
//! | id | what |
//! | --- | --- |
//! | `#config-error` | config.json could not be read or parsed (the page runs on defaults) |
//! | `#status-proxy`, `#status-wss` | a server's status; attributes `data-reachable` (`true`/`false`), `data-stack` (`slab`/`warp`, `-` when the snapshot says none, empty when unreachable), `data-head-mode` (`retain`/`copy`/`drop`, empty when unreachable), `data-open` (open connections), `data-live-slabs`, `data-tls` |
//! | `#cert-notice` | the browser does not trust the proxy's certificate; holds the one link `#cert-link` to https://localhost:{proxy_port}/ |
//! | `#proxy-notice` | TLS works but the proxy refused the test websocket |
//! | `#cert-ok`, `#cert-checking` | the test websocket opened / is being tried |
//! | `#rate`, `#max`, `#data-size`, `#data-delay` | the experiment's inputs (connections per second, maximum connections, bytes per message, ms between messages) |
//! | `#pin-message`, `#pin-data`, `#pin-data-message` | each pinning websocket's own traffic once greeted: first message bytes, data bytes, data message size (`client_pinMessageSize`, `client_pinDataBytes`, `client_pinDataMessageSize`) |
//! | `#head-mode-proxy`, `#head-mode-wss` | head-mode selects (`retain`/`copy`/`drop`); a change does `PUT /settings` at once |
//! | `#head-mode-answer-proxy`, `#head-mode-answer-wss` | the server's answer to the last switch (class `ok` or `error`) |
//! | `#start`, `#stop` | start and stop the run (each disabled when it does not apply) |
//! | `#form-error` | what is wrong with the inputs, after Start |
//! | `#live-counts` | the counts' box, `data-running` |
//! | `#count-connecting`, `#count-open`, `#count-failed`, `#count-closed` | pinning connections; text and `data-value` are the number |
//! | `#bytes-sent` | bytes sent on the data connection, `data-value` in bytes; `#data-state`, `#data-messages` |
//! | `#pin-done`, `#pin-bytes` | with pin traffic: pinning websockets that sent all theirs, and the bytes sent (`data-value`); `#pin-messages` |
//! | `#last-problem` | why the last websocket failed or closed |
//! | `#cap-notice` | the browser's websocket cap was hit (points to the native client); `#cap-warning` before a run above it |
//! | `#chart-proxy`, `#chart-wss` | the live charts; `data-samples` is the number of samples drawn |
//! | `#chart-audit` | the chart of a running `client audit`, `data-processes`; a `g[data-pid]` of polylines per audited process |
//! | `#take-snapshot-proxy`, `#take-snapshot-wss` | take a snapshot and show it |
//! | `#download-snapshot-proxy`, `#download-snapshot-wss` | save the snapshot as `{role}-snapshot-{taken_at_ms}.json` |
//! | `#download-heapsnapshot-proxy`, `#download-heapsnapshot-wss` | save the server's `{role}-{taken_at_ms}.heapsnapshot` for Chrome DevTools |
//! | `#snapshot-message` | the outcome of the last download (or a failed take) |
//! | `#snapshot-tree` | the shown snapshot, `data-role`, `data-taken-at` |
//! | `#pinned-allocations` | the snapshot's pinned allocations under the pools, `data-allocations`; each `.allocation` with `data-allocation` (its id) |
//! | `#snapshot-diff` | the difference from that server's previous snapshot: `data-retained-delta`, `data-referenced-delta`, `data-open-delta`, `data-slabs-freed`, `data-slabs-new`; before a second snapshot, `#snapshot-diff-hint` |

use std::rc::Rc;

use snapshot::HeadMode;
use yew::prelude::*;

use crate::api;
use crate::components::experiment_form::HeadModeField;
use crate::components::{
    AuditChart, CertNotice, Chart, ExperimentForm, LiveCounts, ServerStatus, SnapshotPanel,
};
use crate::hooks::{use_audit, use_cert_check, use_server, ServerAction};
use crate::logic::config::{PageConfig, Server};
use crate::logic::experiment::Counts;
use crate::runner::Runner;
use crate::state::{Action, ExperimentState};

/// The root: loads config.json, then renders the playground.
#[function_component]
pub fn App() -> Html {
    let config = use_state(|| None::<(Rc<PageConfig>, Option<String>)>);
    {
        let config = config.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let loaded = match api::fetch_config().await {
                    Ok(c) => (Rc::new(c), None),
                    Err(why) => (Rc::new(PageConfig::default()), Some(why)),
                };
                config.set(Some(loaded));
            });
        });
    }
    html! {
        <main>
            <header>
                <h1>{ "Slab-memory playground" }</h1>
                <p class="lede">{ "Websockets that keep a small view into a big pooled read buffer keep the whole buffer alive. \
                    Start the experiment, watch the servers' retained slab memory grow, switch a head mode and watch it stop." }</p>
            </header>
            { match &*config {
                None => html! { <p class="hint">{ "Reading /config.json…" }</p> },
                Some((config, error)) => html! {
                    <>
                        if let Some(error) = error {
                            <div id="config-error" class="notice error" role="alert">
                                { error.clone() }{ format!(
                                    " — using the default ports (proxy {}/{}, wss {}/{}).",
                                    config.proxy_port, config.proxy_heapdump_port,
                                    config.wss_port, config.wss_heapdump_port
                                ) }
                            </div>
                        }
                        <Playground config={ config.clone() } />
                    </>
                },
            } }
        </main>
    }
}

#[derive(Properties, PartialEq)]
struct PlaygroundProps {
    config: Rc<PageConfig>,
}

#[function_component]
fn Playground(props: &PlaygroundProps) -> Html {
    let config = &props.config;
    let proxy = use_server(config.snapshot_url(Server::Proxy));
    let wss = use_server(config.snapshot_url(Server::Wss));
    let audit = use_audit(config.client_snapshot_url());

    // The proxy's own snapshot says whether it speaks TLS; config.json until then.
    let proxy_tls = proxy
        .latest
        .as_ref()
        .map(|s| s.settings.tls)
        .unwrap_or(config.proxy_tls);
    // The wss's own snapshot says whether it speaks socket.io: then every websocket
    // of the page (the certificate check's too) goes to socket.io's path.
    let socketio = wss
        .latest
        .as_ref()
        .is_some_and(|s| s.settings.stack == Some(snapshot::Stack::Socketio));
    let ws_url = config.proxy_ws_url(proxy_tls, socketio);
    let https_url = config.proxy_https_url();
    let cert = use_cert_check(
        ws_url.clone(),
        https_url.clone(),
        proxy.reachable(),
        proxy_tls,
    );

    let experiment = use_reducer(|| ExperimentState::new(config));
    {
        // The live run's websockets: started when it appears, stopped when it goes
        // (Stop, or a new Start) and when the page goes away.
        let dispatcher = experiment.dispatcher();
        let live = experiment.live_run().cloned();
        use_effect_with(live.as_ref().map(|run| run.id), move |_| {
            let runner = live.map(|run| {
                let id = run.id;
                let on_change = Callback::from(move |c: Counts| {
                    dispatcher.dispatch(Action::Counts(id, c));
                });
                Runner::start(run.experiment, run.url, on_change)
            });
            move || {
                if let Some(r) = runner {
                    r.stop();
                }
            }
        });
    }

    let on_start = {
        let dispatcher = experiment.dispatcher();
        let (url, max_message_size) = (ws_url.clone(), config.max_message_size);
        Callback::from(move |()| {
            dispatcher.dispatch(Action::Start {
                max_message_size,
                url: url.clone(),
            })
        })
    };
    let on_stop = experiment
        .dispatcher()
        .to_callback()
        .reform(|()| Action::Stop);
    let on_edit = experiment
        .dispatcher()
        .to_callback()
        .reform(|(field, text)| Action::Edit(field, text));
    let on_head_mode = {
        let config = config.clone();
        let answers = experiment.dispatcher();
        let (proxy, wss) = (proxy.dispatcher(), wss.dispatcher());
        Callback::from(move |(server, mode): (Server, HeadMode)| {
            let url = config.settings_url(server);
            let dispatcher = match server {
                Server::Proxy => proxy.clone(),
                Server::Wss => wss.clone(),
            };
            let answers = answers.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::put_head_mode(&url, mode).await;
                if result.is_ok() {
                    dispatcher.dispatch(ServerAction::HeadMode(mode));
                }
                answers.dispatch(Action::Answer(server, result));
            });
        })
    };

    let head_modes = Server::ALL
        .iter()
        .map(|&server| {
            let view = match server {
                Server::Proxy => &*proxy,
                Server::Wss => &*wss,
            };
            HeadModeField {
                server,
                mode: view.head_mode().unwrap_or_else(|| config.head_mode(server)),
                confirmed: view.head_mode().is_some(),
                answer: experiment.answer(server).cloned(),
            }
        })
        .collect::<Vec<_>>();
    let started = experiment.started();
    let now = api::now_ms();

    html! {
        <>
            <section class="servers">
                <h2>{ "Servers" }</h2>
                <div class="status-row">
                    <ServerStatus server={ Server::Proxy } endpoint={ config.endpoint(Server::Proxy) } view={ (*proxy).clone() } />
                    <ServerStatus server={ Server::Wss } endpoint={ config.endpoint(Server::Wss) } view={ (*wss).clone() } />
                </div>
                <CertNotice state={ cert } https_url={ https_url } ws_url={ ws_url.clone() } wss_up={ wss.reachable() } />
            </section>
            <section class="experiment">
                <h2>{ "Experiment" }</h2>
                <div class="experiment-row">
                    <ExperimentForm fields={ experiment.fields.clone() } {on_edit} {head_modes} {on_head_mode}
                        running={ experiment.counts.running } {on_start} {on_stop}
                        error={ experiment.error.clone().map(AttrValue::from) } ws_url={ ws_url } />
                    <LiveCounts counts={ experiment.counts.clone() } max={ started.map(|e| e.max_connections) }
                        above_cap={ started.is_some_and(|e| e.above_browser_cap()) }
                        pin={ started.map(|e| e.pin) } />
                </div>
            </section>
            <section class="charts">
                <h2>{ "Memory over time" }</h2>
                <div class="chart-row">
                    <Chart server={ Server::Proxy } series={ proxy.series.clone() } now_ms={ now } />
                    <Chart server={ Server::Wss } series={ wss.series.clone() } now_ms={ now } />
                </div>
                <div class="chart-row">
                    <AuditChart view={ audit.0.clone() } now_ms={ now } />
                </div>
            </section>
            <section class="snapshots">
                <h2>{ "Snapshots" }</h2>
                <SnapshotPanel servers={ Server::ALL.iter().map(|&s| (s, AttrValue::from(config.snapshot_url(s)))).collect::<Vec<_>>() } />
            </section>
        </>
    }
}
