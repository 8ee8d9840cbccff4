//! Polls a server's `GET /snapshot` every second and keeps what the page shows of it:
//! the latest snapshot, the last error, and the time series for its chart.

use std::cell::Cell;
use std::rc::Rc;

use gloo::timers::callback::Interval;
use snapshot::{HeadMode, Snapshot};
use yew::prelude::*;

use crate::api;
use crate::logic::config::polled_url;
use crate::logic::series::{Sample, Series, POLL_MS};

/// What the page knows of one server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerView {
    /// The last snapshot received.
    pub latest: Option<Rc<Snapshot>>,
    /// Why the last poll failed; `None` once a poll succeeds.
    pub error: Option<String>,
    /// Polls answered so far.
    pub polls: u64,
    pub series: Series,
}

impl ServerView {
    /// Whether the last poll got a snapshot.
    pub fn reachable(&self) -> bool {
        self.latest.is_some() && self.error.is_none()
    }

    /// The head mode in force, as last seen.
    pub fn head_mode(&self) -> Option<HeadMode> {
        self.latest.as_ref().and_then(|s| s.settings.head_mode)
    }
}

pub enum ServerAction {
    Polled(f64, Rc<Snapshot>),
    Failed(f64, String),
    /// The server accepted a new head mode (shown before the next poll confirms it).
    HeadMode(HeadMode),
}

impl Reducible for ServerView {
    type Action = ServerAction;

    fn reduce(self: Rc<Self>, action: ServerAction) -> Rc<Self> {
        let mut view = (*self).clone();
        match action {
            ServerAction::Polled(now, snapshot) => {
                view.series.push(Sample::from_snapshot(now, &snapshot));
                view.latest = Some(snapshot);
                view.error = None;
                view.polls += 1;
            }
            ServerAction::Failed(now, why) => {
                view.series.trim(now);
                view.error = Some(why);
            }
            ServerAction::HeadMode(mode) => {
                if let Some(latest) = view.latest.as_mut() {
                    Rc::make_mut(latest).settings.head_mode = Some(mode);
                }
            }
        }
        Rc::new(view)
    }
}

/// Polls `url` (a snapshot endpoint) every [`POLL_MS`] while the component lives.
#[hook]
pub fn use_server(url: String) -> UseReducerHandle<ServerView> {
    let view = use_reducer(ServerView::default);
    let dispatcher = view.dispatcher();
    use_effect_with(url, move |url| {
        poll_snapshots(url.clone(), move |now, polled| {
            dispatcher.dispatch(match polled {
                Ok(snapshot) => ServerAction::Polled(now, snapshot),
                Err(why) => ServerAction::Failed(now, why),
            })
        })
    });
    view
}

/// Fetches the snapshot at `url` now and every [`POLL_MS`], one request at a time (a
/// slow server is not piled up on), handing each outcome to `got` with the time it
/// came; the result stops the polling when dropped (an effect's cleanup). It asks for
/// the totals alone ([`polled_url`]).
pub(super) fn poll_snapshots(
    url: String,
    got: impl Fn(f64, Result<Rc<Snapshot>, String>) + 'static,
) -> impl FnOnce() {
    let url = polled_url(&url);
    let got = Rc::new(got);
    let busy = Rc::new(Cell::new(false));
    let poll = move || {
        if busy.replace(true) {
            return;
        }
        let (url, busy, got) = (url.clone(), busy.clone(), got.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let result = api::fetch_snapshot(&url).await;
            busy.set(false);
            got(api::now_ms(), result.map(|(snapshot, _)| Rc::new(snapshot)));
        });
    };
    poll();
    let interval = Interval::new(POLL_MS, poll);
    move || drop(interval)
}
