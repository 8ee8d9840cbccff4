//! Snapshots on demand: "Take snapshot" per server (`#take-snapshot-proxy`,
//! `#take-snapshot-wss`) shows it as a tree and, from the second one of a server on,
//! its difference from the one before; "Download" (`#download-snapshot-*`) saves
//! the JSON as `proxy-snapshot-<taken_at_ms>.json`; "Download for Chrome DevTools"
//! (`#download-heapsnapshot-*`) is a link to the server's
//! `?format=heapsnapshot&download=1`, so the browser saves the file the server
//! streams (`proxy-<taken_at_ms>.heapsnapshot`) straight to disk, with no
//! copy of it in the page; "Download pprof" (`#download-pprof-*`) the same for
//! `?format=pprof` (`proxy-<taken_at_ms>.pb.gz`). Beside the tree, the snapshot's
//! flame graph of retained bytes by retaining path (`#flame-graph`), and under the
//! difference, the flame graph of what grew or shrank.

use std::collections::HashMap;
use std::rc::Rc;

use snapshot::Snapshot;
use yew::prelude::*;

use super::{FlameDiff, FlameGraph, SnapshotDiff, SnapshotTree};
use crate::api;
use crate::logic::config::Server;
use crate::logic::diff::diff;
use crate::logic::flame::Flame;
use crate::logic::format::bytes;

/// A snapshot taken from the panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub server: Server,
    pub snapshot: Rc<Snapshot>,
    /// The same, as JSON, for the whole-snapshot tree.
    pub value: Rc<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Shots {
    /// The last two snapshots of each server, oldest first.
    taken: HashMap<Server, Vec<Taken>>,
    /// The server whose last snapshot is shown.
    shown: Option<Server>,
    busy: bool,
    message: Option<Result<String, String>>,
}

enum ShotAction {
    Busy,
    Taken(Taken),
    Done(Result<String, String>),
}

impl Reducible for Shots {
    type Action = ShotAction;

    fn reduce(self: Rc<Self>, action: ShotAction) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            ShotAction::Busy => {
                s.busy = true;
                s.message = None;
            }
            ShotAction::Taken(taken) => {
                let server = taken.server;
                let list = s.taken.entry(server).or_default();
                list.push(taken);
                if list.len() > 2 {
                    list.remove(0);
                }
                s.shown = Some(server);
                s.busy = false;
            }
            ShotAction::Done(message) => {
                s.busy = false;
                s.message = Some(message);
            }
        }
        Rc::new(s)
    }
}

/// The server's download URL of the snapshot in `format` (`heapsnapshot`, `pprof`),
/// from its `GET /snapshot` URL.
pub fn download_url(snapshot_url: &str, format: &str) -> String {
    crate::logic::config::with_query(snapshot_url, &format!("format={format}&download=1"))
}

#[derive(Properties, PartialEq)]
pub struct Props {
    /// Each server and its `GET /snapshot` URL.
    pub servers: Vec<(Server, AttrValue)>,
}

#[function_component]
pub fn SnapshotPanel(props: &Props) -> Html {
    let shots = use_reducer(Shots::default);

    let take = |server: Server, url: AttrValue| {
        let dispatcher = shots.dispatcher();
        Callback::from(move |_: MouseEvent| {
            let (dispatcher, url) = (dispatcher.clone(), url.clone());
            dispatcher.dispatch(ShotAction::Busy);
            wasm_bindgen_futures::spawn_local(async move {
                match api::fetch_snapshot(&url).await {
                    Ok((snapshot, text)) => {
                        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                        dispatcher.dispatch(ShotAction::Taken(Taken {
                            server,
                            snapshot: Rc::new(snapshot),
                            value: Rc::new(value),
                        }));
                    }
                    Err(why) => dispatcher.dispatch(ShotAction::Done(Err(format!(
                        "{}: no snapshot: {why}",
                        server.name()
                    )))),
                }
            });
        })
    };
    let download = |server: Server, url: AttrValue| {
        let dispatcher = shots.dispatcher();
        Callback::from(move |_: MouseEvent| {
            let (dispatcher, url) = (dispatcher.clone(), url.clone());
            dispatcher.dispatch(ShotAction::Busy);
            wasm_bindgen_futures::spawn_local(async move {
                let result = async {
                    let (snapshot, text) = api::fetch_snapshot(&url).await?;
                    let pretty = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| serde_json::to_string_pretty(&v).ok())
                        .unwrap_or(text);
                    let name = format!("{}-snapshot-{}.json", server.name(), snapshot.taken_at_ms);
                    api::save_file(&name, &pretty)?;
                    Ok(format!("Saved {name} ({})", bytes(pretty.len() as u64)))
                }
                .await
                .map_err(|why: String| format!("{}: cannot download: {why}", server.name()));
                dispatcher.dispatch(ShotAction::Done(result));
            });
        })
    };

    let shown = shots
        .shown
        .and_then(|server| shots.taken.get(&server))
        .filter(|list| !list.is_empty());
    let flame = use_memo(
        shown
            .and_then(|list| list.last())
            .map(|t| t.snapshot.clone()),
        |snapshot| snapshot.as_deref().map_or_else(Flame::empty, Flame::of),
    );

    html! {
        <div class="snapshot-panel">
            <div class="buttons">
                { for props.servers.iter().map(|(server, url)| {
                    let name = server.name();
                    html! {
                        <span class="button-pair">
                            <button id={ format!("take-snapshot-{name}") } disabled={ shots.busy }
                                onclick={ take(*server, url.clone()) }>{ format!("Take snapshot of {name}") }</button>
                            <button id={ format!("download-snapshot-{name}") } disabled={ shots.busy }
                                onclick={ download(*server, url.clone()) }>{ format!("Download {name} snapshot") }</button>
                            <a id={ format!("download-heapsnapshot-{name}") } class="button" download=""
                                href={ download_url(url, "heapsnapshot") }
                                title="A .heapsnapshot file: open Chrome DevTools, Memory, Load">{ "Download for Chrome DevTools" }</a>
                            <a id={ format!("download-pprof-{name}") } class="button" download=""
                                href={ download_url(url, "pprof") }
                                title="A pprof heap profile of retaining paths (.pb.gz): go tool pprof -http=: FILE">{ "Download pprof" }</a>
                        </span>
                    }
                }) }
            </div>
            { match &shots.message {
                Some(Ok(m)) => html! { <p id="snapshot-message" class="hint ok">{ m.clone() }</p> },
                Some(Err(m)) => html! { <p id="snapshot-message" class="notice error" role="alert">{ m.clone() }</p> },
                None => html! {},
            } }
            { match shown {
                None => html! { <p class="hint">{ "No snapshot taken yet. Take one to see its pools, slabs and their retainers; take a second one to see what changed." }</p> },
                Some(list) => {
                    let current = &list[list.len() - 1];
                    html! {
                        <>
                            if list.len() == 2 {
                                <SnapshotDiff diff={ Rc::new(diff(&list[0].snapshot, &current.snapshot)) }
                                    from_ms={ list[0].snapshot.taken_at_ms } to_ms={ current.snapshot.taken_at_ms } />
                                <FlameDiff before={ list[0].snapshot.clone() } after={ current.snapshot.clone() } />
                            } else {
                                <p id="snapshot-diff-hint" class="hint">{ format!("Take another snapshot of {} to see the difference.", current.server.name()) }</p>
                            }
                            <div class="snapshot-views">
                                <div class="snapshot-flame">
                                    <h3>{ format!("{}: retained bytes by retaining path", current.server.name()) }</h3>
                                    <FlameGraph id="flame-graph" flame={ flame.clone() }
                                        empty="Nothing retained: the allocator's figures are unreadable and nothing is attributed." />
                                </div>
                                <SnapshotTree taken={ current.clone() } />
                            </div>
                        </>
                    }
                }
            } }
        </div>
    }
}
