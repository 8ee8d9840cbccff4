//! Polls the client's snapshot (`client_heapdump_port`, 8802) every second for the
//! live figures of a running `client audit`, kept per audited process.

use std::cell::Cell;
use std::rc::Rc;

use gloo::timers::callback::Interval;
use snapshot::Snapshot;
use yew::prelude::*;

use crate::api;
use crate::logic::audit::AuditView;
use crate::logic::series::POLL_MS;

/// What a poll of the client's snapshot gave.
pub enum AuditAction {
    Polled(f64, Rc<Snapshot>),
    Failed(f64, String),
}

/// The page's view of the audit, updated by each poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditState(pub AuditView);

impl Reducible for AuditState {
    type Action = AuditAction;

    fn reduce(self: Rc<Self>, action: AuditAction) -> Rc<Self> {
        let mut view = self.0.clone();
        match action {
            AuditAction::Polled(now, snapshot) => view.polled(now, &snapshot),
            AuditAction::Failed(now, why) => view.failed(now, why),
        }
        Rc::new(AuditState(view))
    }
}

/// Polls `url` (the client's snapshot) every [`POLL_MS`] while the component lives.
#[hook]
pub fn use_audit(url: String) -> UseReducerHandle<AuditState> {
    let state = use_reducer(AuditState::default);
    let dispatcher = state.dispatcher();
    use_effect_with(url, move |url| {
        let url = url.clone();
        let busy = Rc::new(Cell::new(false));
        let poll = move || {
            if busy.replace(true) {
                return;
            }
            let (url, busy, dispatcher) = (url.clone(), busy.clone(), dispatcher.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::fetch_snapshot(&url).await;
                busy.set(false);
                let now = api::now_ms();
                dispatcher.dispatch(match result {
                    Ok((snapshot, _)) => AuditAction::Polled(now, Rc::new(snapshot)),
                    Err(why) => AuditAction::Failed(now, why),
                });
            });
        };
        poll();
        let interval = Interval::new(POLL_MS, poll);
        move || drop(interval)
    });
    state
}
