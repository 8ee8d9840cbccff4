//! The experiment's state on the page, in one [`Reducible`] value (as yew's
//! function_todomvc keeps its state): the form's fields as typed, what is wrong with
//! them after a Start, the run started last and whether it should be running, its
//! live counts, and each server's answer to the last head-mode switch.
//!
//! Every change is an [`Action`], decided here without a browser (tested natively).
//! What the browser does follows the state: the page runs the websockets of
//! [`ExperimentState::live_run`] (a [`Runner`](crate::runner::Runner) started when it
//! appears and stopped when it goes, or when the page goes away).

use std::rc::Rc;

use yew::Reducible;

use crate::logic::config::{PageConfig, Server};
use crate::logic::experiment::{Counts, Experiment, ExperimentForm, Field};

/// A server's answer to a head-mode switch, or why the switch failed.
pub type Answer = Result<String, String>;

/// A run the page started.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// 1 for the page's first run, then one more for each.
    pub id: u64,
    pub experiment: Experiment,
    /// The proxy's websocket URL its websockets go to.
    pub url: String,
}

/// Everything the page knows of its experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentState {
    /// The form's fields, as typed.
    pub fields: ExperimentForm,
    /// What is wrong with the fields, after a Start that refused them.
    pub error: Option<String>,
    /// The run started last; kept once stopped, for the counts' box.
    pub run: Option<Run>,
    /// Whether that run should be running (Stop clears it).
    pub live: bool,
    /// The counts of that run, as its websockets last reported them.
    pub counts: Counts,
    /// Each server's answer to the last head-mode switch, in [`Server::ALL`]'s order.
    answers: [Option<Answer>; 2],
}

/// What can happen to the experiment's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A field of the form was typed in: the field, and its new text.
    Edit(Field, String),
    /// Start: the fields are checked (no message above the servers' largest), then
    /// a run of them starts, with its websockets to `url`, or the form says what is
    /// wrong with them.
    Start { max_message_size: u64, url: String },
    /// Stop: the run's websockets are closed (their last counts follow).
    Stop,
    /// Run `id`'s websockets report their counts; those of an earlier run are ignored.
    Counts(u64, Counts),
    /// A server answered a head-mode switch.
    Answer(Server, Answer),
}

impl ExperimentState {
    /// The state before anything happened: the form holds config.json's values.
    pub fn new(config: &PageConfig) -> ExperimentState {
        ExperimentState {
            fields: ExperimentForm::from_config(config),
            error: None,
            run: None,
            live: false,
            counts: Counts::default(),
            answers: [None, None],
        }
    }

    /// The run whose websockets should be open now, if any.
    pub fn live_run(&self) -> Option<&Run> {
        self.run.as_ref().filter(|_| self.live)
    }

    /// The experiment of the run started last, if any.
    pub fn started(&self) -> Option<&Experiment> {
        self.run.as_ref().map(|r| &r.experiment)
    }

    /// A server's answer to the last head-mode switch, if there was one.
    pub fn answer(&self, server: Server) -> Option<&Answer> {
        self.answers[slot(server)].as_ref()
    }
}

/// A server's place in [`ExperimentState::answers`].
fn slot(server: Server) -> usize {
    match server {
        Server::Proxy => 0,
        Server::Wss => 1,
    }
}

impl Reducible for ExperimentState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::Edit(field, text) => next.fields.set(field, text),
            Action::Start {
                max_message_size,
                url,
            } => match self.fields.parse(max_message_size) {
                Err(why) => next.error = Some(why),
                Ok(experiment) => {
                    next.error = None;
                    next.run = Some(Run {
                        id: self.run.as_ref().map_or(1, |r| r.id + 1),
                        experiment,
                        url,
                    });
                    next.live = true;
                    // What the new run's websockets report first; nothing of the last.
                    next.counts = Counts {
                        running: true,
                        ..Counts::default()
                    };
                }
            },
            Action::Stop => {
                if !self.live {
                    return self;
                }
                next.live = false;
            }
            Action::Counts(id, counts) => {
                if self.run.as_ref().map(|r| r.id) != Some(id) {
                    return self;
                }
                next.counts = counts;
            }
            Action::Answer(server, answer) => next.answers[slot(server)] = Some(answer),
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::experiment::DataState;

    const MAX_MESSAGE: u64 = 16 << 20;
    const URL: &str = "wss://localhost:8600/";

    fn initial() -> Rc<ExperimentState> {
        Rc::new(ExperimentState::new(&PageConfig::default()))
    }

    fn start(state: Rc<ExperimentState>) -> Rc<ExperimentState> {
        state.reduce(Action::Start {
            max_message_size: MAX_MESSAGE,
            url: URL.into(),
        })
    }

    fn counts(open: u64) -> Counts {
        Counts {
            running: true,
            open,
            data: DataState::Up,
            ..Counts::default()
        }
    }

    #[test]
    fn the_page_starts_with_config_json_in_the_form_and_nothing_running() {
        let s = initial();
        assert_eq!(
            s.fields,
            ExperimentForm::from_config(&PageConfig::default())
        );
        assert_eq!(s.error, None);
        assert!(s.live_run().is_none() && s.started().is_none());
        assert_eq!(s.counts, Counts::default());
        assert!(Server::ALL.iter().all(|&server| s.answer(server).is_none()));
    }

    #[test]
    fn typing_changes_one_field() {
        let s = initial().reduce(Action::Edit(Field::Max, "7".into()));
        assert_eq!(s.fields.max, "7");
        let s = s.reduce(Action::Edit(Field::PinDataMessage, "99".into()));
        assert_eq!(
            (s.fields.max.as_str(), s.fields.get(Field::PinDataMessage)),
            ("7", "99")
        );
        let expected = ExperimentForm {
            max: "7".into(),
            pin_data_message: "99".into(),
            ..ExperimentForm::from_config(&PageConfig::default())
        };
        assert_eq!(s.fields, expected, "the other fields are as they were");
    }

    #[test]
    fn start_runs_the_fields_and_clears_the_last_error() {
        let s = initial().reduce(Action::Edit(Field::Rate, "0".into()));
        let s = start(s);
        let error = s.error.as_deref().expect("a rate of 0 is refused");
        assert!(error.contains("connections per second"), "{error}");
        assert!(s.run.is_none() && !s.live, "nothing started");

        let s = start(s.reduce(Action::Edit(Field::Rate, "2".into())));
        assert_eq!(s.error, None);
        let run = s.live_run().expect("a run");
        assert_eq!((run.id, run.url.as_str()), (1, URL));
        assert_eq!(run.experiment.connections_per_second, 2.0);
        assert_eq!(s.started(), Some(&run.experiment));
        assert_eq!(
            s.counts,
            Counts {
                running: true,
                ..Counts::default()
            },
            "Start and Stop switch at once"
        );
    }

    #[test]
    fn a_refused_start_leaves_the_run_alone() {
        let s = start(initial()).reduce(Action::Counts(1, counts(3)));
        let s = s.reduce(Action::Edit(Field::DataSize, "x".into()));
        let s = start(s);
        assert!(s.error.as_deref().unwrap().contains("data size"));
        assert_eq!(s.live_run().map(|r| r.id), Some(1), "still running");
        assert_eq!(s.counts, counts(3));
    }

    #[test]
    fn the_largest_message_is_the_servers() {
        let s = initial().reduce(Action::Start {
            max_message_size: 1000,
            url: URL.into(),
        });
        assert!(s.error.as_deref().unwrap().contains("max_message_size"));
    }

    #[test]
    fn counts_come_from_the_run_started_last() {
        let s = start(initial());
        let s = s.reduce(Action::Counts(1, counts(5)));
        assert_eq!(s.counts.open, 5);
        let before = s.clone();
        let s = s.reduce(Action::Counts(7, counts(9)));
        assert!(
            Rc::ptr_eq(&before, &s),
            "an unknown run's counts change nothing"
        );

        // A second run: the first one's last counts (sent as it stops) are ignored.
        let s = start(s.reduce(Action::Stop));
        assert_eq!(s.live_run().map(|r| r.id), Some(2));
        let s = s.reduce(Action::Counts(1, Counts::default()));
        assert!(s.counts.running && s.counts.open == 0, "{:?}", s.counts);
        let s = s.reduce(Action::Counts(2, counts(1)));
        assert_eq!(s.counts, counts(1));
    }

    #[test]
    fn counts_before_any_run_are_ignored() {
        let s = initial();
        let after = s.clone().reduce(Action::Counts(1, counts(1)));
        assert!(Rc::ptr_eq(&s, &after));
    }

    #[test]
    fn stop_keeps_the_run_for_its_counts() {
        let s = start(initial()).reduce(Action::Counts(1, counts(4)));
        let s = s.reduce(Action::Stop);
        assert!(s.live_run().is_none(), "its websockets close");
        assert_eq!(s.started().map(|e| e.max_connections), Some(100));
        // The stopped run's last counts still arrive.
        let last = Counts {
            running: false,
            closed: 4,
            ..Counts::default()
        };
        let s = s.reduce(Action::Counts(1, last.clone()));
        assert_eq!(s.counts, last);
        let again = s.clone().reduce(Action::Stop);
        assert!(Rc::ptr_eq(&s, &again), "a second Stop changes nothing");
    }

    #[test]
    fn each_server_keeps_its_own_answer() {
        let s = initial().reduce(Action::Answer(Server::Wss, Ok("drop".into())));
        assert_eq!(s.answer(Server::Wss), Some(&Ok("drop".into())));
        assert_eq!(s.answer(Server::Proxy), None);
        let s = s.reduce(Action::Answer(Server::Proxy, Err("refused".into())));
        let s = s.reduce(Action::Answer(Server::Wss, Ok("copy".into())));
        assert_eq!(s.answer(Server::Proxy), Some(&Err("refused".into())));
        assert_eq!(s.answer(Server::Wss), Some(&Ok("copy".into())));
    }
}
