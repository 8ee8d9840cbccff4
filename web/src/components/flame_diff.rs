//! The flame graph of a difference of two snapshots of one server
//! (`#flame-diff-graph` in `.flame-diff`, `data-change` `grew` or `shrank`): the
//! retaining paths that hold more bytes in the second snapshot ("What grew",
//! `#flame-diff-grew`), or fewer ("What shrank", `#flame-diff-shrank`), each frame
//! as wide as its change.

use std::rc::Rc;

use snapshot::Snapshot;
use yew::prelude::*;

use super::FlameGraph;
use crate::logic::flame::{Change, Flame};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub before: Rc<Snapshot>,
    pub after: Rc<Snapshot>,
}

#[function_component]
pub fn FlameDiff(props: &Props) -> Html {
    let change = use_state(|| Change::Grew);
    let flame = use_memo(
        (props.before.clone(), props.after.clone(), *change),
        |(before, after, change)| Flame::change(before, after, *change),
    );
    let pick = |to: Change| {
        let change = change.clone();
        Callback::from(move |_: MouseEvent| change.set(to))
    };
    let (name, empty) = match *change {
        Change::Grew => (
            "grew",
            "No retaining path holds more bytes than in the snapshot before.",
        ),
        Change::Shrank => (
            "shrank",
            "No retaining path holds fewer bytes than in the snapshot before.",
        ),
    };
    html! {
        <div class="flame-diff" data-change={ name }>
            <h4>
                { "Retaining paths that changed: " }
                <button id="flame-diff-grew" class={ classes!((*change == Change::Grew).then_some("active")) }
                    onclick={ pick(Change::Grew) }>{ "What grew" }</button>
                <button id="flame-diff-shrank" class={ classes!((*change == Change::Shrank).then_some("active")) }
                    onclick={ pick(Change::Shrank) }>{ "What shrank" }</button>
            </h4>
            <FlameGraph id="flame-diff-graph" flame={ flame } empty={ empty } />
        </div>
    }
}
