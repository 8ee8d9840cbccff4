//! The live chart of a running `client audit` (`#chart-audit`): the RSS of each
//! audited process over the last minutes, on the same time axis as our servers'
//! charts, with what the audit is doing in the caption.

use yew::prelude::*;

use super::Axes;
use crate::logic::audit::AuditView;
use crate::logic::chart::{bytes_axis, polylines, Frame};
use crate::logic::format::bytes;

const WIDTH: f64 = 660.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 24.0;
const PLOT_H: f64 = 150.0;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub view: AuditView,
    /// The right edge of the time axis, ms since the Unix epoch.
    pub now_ms: f64,
}

#[function_component]
pub fn AuditChart(props: &Props) -> Html {
    let view = &props.view;
    let window = view
        .processes
        .first()
        .map(|p| p.series.window_ms())
        .unwrap_or(crate::logic::series::WINDOW_MS);
    let axis = bytes_axis(view.max_rss() as f64, 4);
    let frame = Frame {
        left: LEFT,
        top: TOP,
        width: WIDTH - LEFT - RIGHT,
        height: PLOT_H,
        t_start: props.now_ms - window,
        t_end: props.now_ms,
        y_max: axis.max,
    };
    html! {
        <figure class="chart" id="chart-audit" data-processes={ view.processes.len().to_string() }>
            <figcaption>
                <b>{ "client audit" }</b>{ " — RSS of the audited processes, read from /proc" }
                <div class="audit-status">{ view.status() }</div>
                <div class="legend">
                    { for view.processes.iter().enumerate().map(|(i, p)| html! {
                        <span class="legend-item">
                            <svg width="22" height="10" class="swatch"><line x1="0" y1="5" x2="22" y2="5" class={ format!("l-audit-{}", i % 6) } /></svg>
                            { p.label() }{ ": " }<b>{ p.series.latest().and_then(|s| s.rss_bytes).map(bytes).unwrap_or_else(|| "-".into()) }</b>
                        </span>
                    }) }
                </div>
            </figcaption>
            <svg viewBox={ format!("0 0 {WIDTH} {HEIGHT}") } class="chart-svg" role="img" aria-label="audited processes: RSS over time">
                <Axes frame={ frame } axis={ axis } title="RSS" window_ms={ window } time_labels=true />
                { for view.processes.iter().enumerate().map(|(i, p)| html! {
                    <g class={ classes!("line", format!("l-audit-{}", i % 6)) } data-pid={ p.pid.to_string() }>
                        { for polylines(p.series.samples(), &frame, |s| s.rss_bytes).into_iter().map(|points| html! {
                            <polyline {points} class={ format!("l-audit-{}", i % 6) } />
                        }) }
                    </g>
                }) }
                if view.processes.is_empty() {
                    <text x={ (LEFT + (WIDTH - LEFT) / 2.0).to_string() } y={ (TOP + PLOT_H / 2.0).to_string() }
                        class="empty" text-anchor="middle">{ "no audit seen yet" }</text>
                }
            </svg>
        </figure>
    }
}
