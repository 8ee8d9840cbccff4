//! The axes of a chart panel, one component for the servers' charts and the audit's
//! chart: the value axis's title, its ticks with their grid lines, the time axis's
//! grid lines (and its labels, where asked), and the two axis lines. The panel draws
//! its lines over them.

use yew::prelude::*;

use crate::logic::chart::{time_ticks, Axis, Frame};

/// About this many ticks on the time axis.
const TIME_TICKS: usize = 5;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The plotting area, and the times and values it spans.
    pub frame: Frame,
    /// The value axis, its ticks in the frame's values.
    pub axis: Axis,
    /// The value axis's title, above it on the left (`bytes`, `RSS`).
    pub title: AttrValue,
    /// The time window the frame spans, ms; the ticks count back from its right edge.
    pub window_ms: f64,
    /// Whether the time ticks are labelled under the frame (`-5 min` ... `now`).
    pub time_labels: bool,
}

#[function_component]
pub fn Axes(props: &Props) -> Html {
    let Props {
        frame,
        axis,
        title,
        window_ms,
        time_labels,
    } = props;
    html! {
        <>
            <text x={ (frame.left - 8.0).to_string() } y={ (frame.top - 8.0).to_string() } class="axis-title" text-anchor="end">{ title.clone() }</text>
            { for axis.ticks.iter().map(|t| {
                let y = frame.y(t.value);
                html! {
                    <g>
                        <line x1={ frame.left.to_string() } x2={ frame.right().to_string() } y1={ y.to_string() } y2={ y.to_string() } class="grid" />
                        <text x={ (frame.left - 6.0).to_string() } y={ (y + 4.0).to_string() } class="tick" text-anchor="end">{ t.label.clone() }</text>
                    </g>
                }
            }) }
            { for time_ticks(*window_ms, TIME_TICKS).iter().map(|t| {
                let x = frame.x(frame.t_end + t.value);
                html! {
                    <g>
                        <line x1={ x.to_string() } x2={ x.to_string() } y1={ frame.top.to_string() } y2={ frame.bottom().to_string() } class="grid" />
                        if *time_labels {
                            <text x={ x.to_string() } y={ (frame.bottom() + 16.0).to_string() } class="tick" text-anchor="middle">{ t.label.clone() }</text>
                        }
                    </g>
                }
            }) }
            <line x1={ frame.left.to_string() } x2={ frame.left.to_string() } y1={ frame.top.to_string() } y2={ frame.bottom().to_string() } class="axis" />
            <line x1={ frame.left.to_string() } x2={ frame.right().to_string() } y1={ frame.bottom().to_string() } y2={ frame.bottom().to_string() } class="axis" />
        </>
    }
}
