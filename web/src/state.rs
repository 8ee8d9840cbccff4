//! The experiment's state in one place, as yew's function_todomvc keeps its state: a
//! [`Reducible`] value changed only by [`Action`]s, so the page's callbacks dispatch
//! what happened instead of each setting its own handle.

use std::rc::Rc;

use yew::{AttrValue, Reducible};

use crate::logic::config::{PageConfig, Server};
use crate::logic::experiment::{Counts, Experiment, ExperimentForm as Fields};

/// What the experiment section shows: the form, its error, the run's counts, the
/// experiment started last, and each server's answer to the last head-mode switch.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentState {
    pub fields: Fields,
    /// Why the form could not start a run.
    pub form_error: Option<AttrValue>,
    pub counts: Counts,
    /// The experiment started last (its maximum and pin traffic label the counts).
    pub started: Option<Experiment>,
    /// The proxy's answer to the last head-mode switch: its settings, or why not.
    pub answer_proxy: Option<Result<String, String>>,
    /// The wss's answer, likewise.
    pub answer_wss: Option<Result<String, String>>,
}

impl ExperimentState {
    /// The form filled from `config.json`, nothing run yet.
    pub fn new(config: &PageConfig) -> ExperimentState {
        ExperimentState {
            fields: Fields::from_config(config),
            form_error: None,
            counts: Counts::default(),
            started: None,
            answer_proxy: None,
            answer_wss: None,
        }
    }

    /// A server's answer to the last head-mode switch.
    pub fn answer(&self, server: Server) -> Option<Result<String, String>> {
        match server {
            Server::Proxy => self.answer_proxy.clone(),
            Server::Wss => self.answer_wss.clone(),
        }
    }
}

/// What can happen to the experiment's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The form was edited.
    Edit(Fields),
    /// The form could not start a run: why.
    Refused(String),
    /// A run started with this experiment (the form's error is cleared).
    Started(Experiment),
    /// The running experiment's counts changed.
    Counts(Counts),
    /// A server answered a head-mode switch.
    Answered(Server, Result<String, String>),
}

impl Reducible for ExperimentState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::Edit(fields) => next.fields = fields,
            Action::Refused(why) => next.form_error = Some(why.into()),
            Action::Started(experiment) => {
                next.form_error = None;
                next.started = Some(experiment);
            }
            Action::Counts(counts) => next.counts = counts,
            Action::Answered(Server::Proxy, answer) => next.answer_proxy = Some(answer),
            Action::Answered(Server::Wss, answer) => next.answer_wss = Some(answer),
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Rc<ExperimentState> {
        Rc::new(ExperimentState::new(&PageConfig::default()))
    }

    #[test]
    fn a_refused_form_shows_why_until_a_run_starts() {
        let s = state().reduce(Action::Refused("connections per second must be > 0".into()));
        assert_eq!(
            s.form_error.as_deref(),
            Some("connections per second must be > 0")
        );
        assert_eq!(s.started, None);
        let experiment = s.fields.parse(1 << 20).expect("the defaults parse");
        let s = s.reduce(Action::Started(experiment.clone()));
        assert_eq!(s.form_error, None);
        assert_eq!(s.started, Some(experiment));
    }

    #[test]
    fn edits_counts_and_answers_change_only_their_part() {
        let before = state();
        let mut fields = before.fields.clone();
        fields.max = "7".into();
        let s = before.clone().reduce(Action::Edit(fields.clone()));
        assert_eq!(s.fields, fields);
        assert_eq!(
            (s.counts.clone(), s.started.clone()),
            (before.counts.clone(), None)
        );

        let counts = Counts {
            running: true,
            open: 3,
            ..Counts::default()
        };
        let s = s.reduce(Action::Counts(counts.clone()));
        assert_eq!(s.counts, counts);
        assert_eq!(s.fields, fields);

        let s = s.reduce(Action::Answered(Server::Wss, Err("503".into())));
        assert_eq!(s.answer(Server::Wss), Some(Err("503".into())));
        assert_eq!(s.answer(Server::Proxy), None);
        let s = s.reduce(Action::Answered(Server::Proxy, Ok("copy".into())));
        assert_eq!(s.answer(Server::Proxy), Some(Ok("copy".into())));
        assert_eq!(s.answer(Server::Wss), Some(Err("503".into())));
    }
}
