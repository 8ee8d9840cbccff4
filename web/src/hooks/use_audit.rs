//! Polls the client's snapshot (`client_heapdump_port`, 8802) every second for the
//! live figures of a running `client audit`, kept per audited process.

use std::rc::Rc;

use snapshot::Snapshot;
use yew::prelude::*;

use crate::logic::audit::AuditView;

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

/// Polls `url` (the client's snapshot) every [`POLL_MS`](crate::logic::series::POLL_MS) while the component lives.
#[hook]
pub fn use_audit(url: String) -> UseReducerHandle<AuditState> {
    let state = use_reducer(AuditState::default);
    let dispatcher = state.dispatcher();
    use_effect_with(url, move |url| {
        super::use_server::poll_snapshots(url.clone(), move |now, polled| {
            dispatcher.dispatch(match polled {
                Ok(snapshot) => AuditAction::Polled(now, snapshot),
                Err(why) => AuditAction::Failed(now, why),
            })
        })
    });
    state
}
