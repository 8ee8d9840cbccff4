//! The experiment's settings (`#rate`, `#max`, `#data-size`, `#data-delay`, and the
//! pinning connections' own traffic: `#pin-message`, `#pin-data`,
//! `#pin-data-message`), each
//! server's head mode (`#head-mode-proxy`, `#head-mode-wss`: switching one does
//! `PUT /settings` at once and shows the server's answer), and `#start` / `#stop`.

use snapshot::HeadMode;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::logic::config::Server;
use crate::logic::experiment::{ExperimentForm as Fields, Field, BROWSER_CAP, NATIVE_CLIENT};

/// A server's head mode as the form shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadModeField {
    pub server: Server,
    /// The mode in force on the server (from its snapshot), or config.json's before that.
    pub mode: HeadMode,
    /// Whether the mode comes from the server itself.
    pub confirmed: bool,
    /// The server's answer to the last switch, or why it failed.
    pub answer: Option<Result<String, String>>,
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub fields: Fields,
    /// A field was typed in: which, and its new text.
    pub on_edit: Callback<(Field, String)>,
    pub head_modes: Vec<HeadModeField>,
    pub on_head_mode: Callback<(Server, HeadMode)>,
    pub running: bool,
    pub on_start: Callback<()>,
    pub on_stop: Callback<()>,
    /// What is wrong with the fields, after a Start.
    pub error: Option<AttrValue>,
    /// Where the websockets go.
    pub ws_url: AttrValue,
}

/// One field's input, `#{field.id()}`, labelled, with its unit.
fn input(field: Field, label: &'static str, unit: &'static str, props: &Props) -> Html {
    let id = field.id();
    let on = props.on_edit.clone();
    let oninput = Callback::from(move |e: InputEvent| {
        on.emit((field, e.target_unchecked_into::<HtmlInputElement>().value()))
    });
    let (value, disabled) = (props.fields.get(field).to_string(), props.running);
    html! {
        <label class="field" for={id}>
            <span>{ label }</span>
            <input {id} type="number" step="any" min="0" {value} {oninput} {disabled} />
            <span class="unit">{ unit }</span>
        </label>
    }
}

#[function_component]
pub fn ExperimentForm(props: &Props) -> Html {
    let (on_start, on_stop) = (props.on_start.clone(), props.on_stop.clone());
    html! {
        <div class="experiment-form">
            <div class="fields">
                { input(Field::Rate, "Connections per second", "/s (0.5 = one every 2 s)", props) }
                { input(Field::Max, "Maximum connections", "pinning websockets", props) }
                { input(Field::DataSize, "Data size", "bytes per message (0: no data connection)", props) }
                { input(Field::DataDelay, "Data delay", "ms between messages", props) }
                { input(Field::PinMessage, "First message", "bytes each pinning websocket sends once greeted (0: none)", props) }
                { input(Field::PinData, "Pin data", "bytes each pinning websocket then sends (0: none)", props) }
                { input(Field::PinDataMessage, "Pin data message size", "bytes per message of the pin data", props) }
            </div>
            <div class="head-modes">
                { for props.head_modes.iter().map(|h| html! {
                    <HeadModeSelect field={ h.clone() } on_change={ props.on_head_mode.clone() } />
                }) }
            </div>
            <div class="buttons">
                <button id="start" class="primary" disabled={ props.running } onclick={ move |_| on_start.emit(()) }>{ "Start" }</button>
                <button id="stop" disabled={ !props.running } onclick={ move |_| on_stop.emit(()) }>{ "Stop" }</button>
                <span class="hint">{ format!("Websockets go to {}. A browser page holds at most about {BROWSER_CAP}; for more, run ", props.ws_url) }
                    <code>{ NATIVE_CLIENT }</code>{ "." }</span>
            </div>
            if let Some(error) = &props.error {
                <p id="form-error" class="notice error" role="alert">{ error.clone() }</p>
            }
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct SelectProps {
    field: HeadModeField,
    on_change: Callback<(Server, HeadMode)>,
}

/// One server's head-mode select, kept at the server's mode (a refused switch snaps back).
#[function_component]
fn HeadModeSelect(props: &SelectProps) -> Html {
    let h = &props.field;
    let name = h.server.name();
    let node = use_node_ref();
    {
        let node = node.clone();
        use_effect_with((h.mode, h.answer.clone()), move |(mode, _)| {
            if let Some(select) = node.cast::<HtmlSelectElement>() {
                select.set_value(mode.as_str());
            }
        });
    }
    let onchange = {
        let (server, on) = (h.server, props.on_change.clone());
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            if let Ok(mode) = value.parse::<HeadMode>() {
                on.emit((server, mode));
            }
        })
    };
    let id = format!("head-mode-{name}");
    html! {
        <div class="head-mode">
            <label for={ id.clone() }>{ format!("{name} head mode") }</label>
            <select {id} ref={node} {onchange} data-confirmed={ h.confirmed.to_string() }>
                { for HeadMode::ALL.iter().map(|m| html! {
                    <option value={ m.as_str() } selected={ *m == h.mode }>{ describe(*m) }</option>
                }) }
            </select>
            { match &h.answer {
                Some(Ok(answer)) => html! { <span id={ format!("head-mode-answer-{name}") } class="answer ok">{ answer.clone() }</span> },
                Some(Err(why)) => html! { <span id={ format!("head-mode-answer-{name}") } class="answer error">{ why.clone() }</span> },
                None => html! { <span class="answer muted">{ "applies to new connections" }</span> },
            } }
        </div>
    }
}

fn describe(mode: HeadMode) -> &'static str {
    match mode {
        HeadMode::Retain => "retain (the seed's bug)",
        HeadMode::Copy => "copy (module-level fix; pooled when small)",
        HeadMode::CopyUnpooled => "copy_unpooled (a copy of its own)",
        HeadMode::Drop => "drop (core-level fix)",
    }
}
