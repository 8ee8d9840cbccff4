//! A server's live chart over the last minutes, drawn as SVG by the app: memory
//! (retained slab bytes, or on the warp stack the pinned allocations; the chunks of
//! Node's small-Buffer pool where there is one; allocator resident bytes, RSS) above, counts (live slabs,
//! open connections) below, on one time axis (`#chart-proxy`, `#chart-wss`).

use yew::prelude::*;

use super::Axes;
use crate::logic::chart::{bytes_axis, count_axis, polylines, Axis, Frame};
use crate::logic::config::Server;
use crate::logic::format::{bytes, duration_ms};
use crate::logic::series::{held_label, Sample, Series};

const WIDTH: f64 = 660.0;
const HEIGHT: f64 = 370.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 14.0;
const MEMORY: (f64, f64) = (24.0, 150.0);
const COUNTS: (f64, f64) = (214.0, 110.0);

/// One line of a chart: its name, colour, dash, and the figure it draws.
struct Line {
    /// Its name, given whether the server runs on the warp stack.
    name: fn(bool) -> &'static str,
    class: &'static str,
    /// The figure it draws; `None` where the server could not read it (a gap).
    figure: fn(&Sample) -> Option<u64>,
    show: fn(u64) -> String,
    /// Shown only where the latest sample has the figure (not "unreadable" elsewhere).
    optional: bool,
}

const MEMORY_LINES: [Line; 4] = [
    Line {
        name: held_label,
        class: "l-retained",
        figure: |s| Some(s.held_bytes()),
        show: bytes,
        optional: false,
    },
    Line {
        name: |_| "of which buffer pool chunks",
        class: "l-buffer",
        figure: |s| s.buffer_pool_bytes,
        show: bytes,
        optional: true,
    },
    Line {
        name: |_| "allocator resident",
        class: "l-resident",
        figure: |s| s.resident_bytes,
        show: bytes,
        optional: false,
    },
    Line {
        name: |_| "RSS",
        class: "l-rss",
        figure: |s| s.rss_bytes,
        show: bytes,
        optional: false,
    },
];

const COUNT_LINES: [Line; 2] = [
    Line {
        name: |_| "live slabs",
        class: "l-slabs",
        figure: |s| Some(s.live_slabs),
        show: |n| n.to_string(),
        optional: false,
    },
    Line {
        name: |_| "open connections",
        class: "l-open",
        figure: |s| Some(s.open_connections),
        show: |n| n.to_string(),
        optional: false,
    },
];

#[derive(Properties, PartialEq)]
pub struct Props {
    pub server: Server,
    pub series: Series,
    /// The right edge of the time axis, ms since the Unix epoch.
    pub now_ms: f64,
}

#[function_component]
pub fn Chart(props: &Props) -> Html {
    let series = &props.series;
    let name = props.server.name();
    let t_end = props.now_ms;
    let t_start = t_end - series.window_ms();
    let latest = series.latest();
    let warp = latest.is_some_and(|s| s.warp);

    let mem_max = MEMORY_LINES
        .iter()
        .map(|l| series.max_of(l.figure))
        .max()
        .unwrap_or(0);
    let count_max = COUNT_LINES
        .iter()
        .map(|l| series.max_of(l.figure))
        .max()
        .unwrap_or(0);
    let mem_axis = bytes_axis(mem_max as f64, 4);
    let count_axis = count_axis(count_max as f64, 4, "");
    let frame = |(top, height): (f64, f64), axis: &Axis| Frame {
        left: LEFT,
        top,
        width: WIDTH - LEFT - RIGHT,
        height,
        t_start,
        t_end,
        y_max: axis.max,
    };
    let mem_frame = frame(MEMORY, &mem_axis);
    let count_frame = frame(COUNTS, &count_axis);

    let legend = |lines: &[Line]| -> Html {
        html! {
            { for lines.iter().filter(|l| !l.optional || latest.is_some_and(|s| (l.figure)(s).is_some())).map(|l| html! {
                <span class="legend-item">
                    <svg width="22" height="10" class="swatch"><line x1="0" y1="5" x2="22" y2="5" class={ l.class } /></svg>
                    { (l.name)(warp) }{ ": " }<b>{ latest.map(|s| (l.figure)(s).map_or_else(|| "unreadable".into(), l.show)).unwrap_or_else(|| "-".into()) }</b>
                </span>
            }) }
        }
    };

    html! {
        <figure class="chart" id={ format!("chart-{name}") } data-samples={ series.len().to_string() }>
            <figcaption>
                <b>{ name }</b>{ format!(" — last {}, polled every second", duration_ms(series.window_ms() as u64)) }
                <div class="legend">{ legend(&MEMORY_LINES) }</div>
                <div class="legend">{ legend(&COUNT_LINES) }</div>
            </figcaption>
            <svg viewBox={ format!("0 0 {WIDTH} {HEIGHT}") } class="chart-svg" role="img"
                aria-label={ format!("{name}: memory and counts over time") }>
                { panel(&mem_frame, &mem_axis, "bytes", &MEMORY_LINES, series, false) }
                { panel(&count_frame, &count_axis, "count", &COUNT_LINES, series, true) }
                if series.is_empty() {
                    <text x={ (LEFT + (WIDTH - LEFT) / 2.0).to_string() } y={ (MEMORY.0 + MEMORY.1 / 2.0).to_string() }
                        class="empty" text-anchor="middle">{ "no samples yet: is the server running?" }</text>
                }
            </svg>
        </figure>
    }
}

/// One panel: its axes (with the time labels under the lower panel), and its lines.
fn panel(
    frame: &Frame,
    axis: &Axis,
    title: &'static str,
    lines: &[Line],
    series: &Series,
    time_labels: bool,
) -> Html {
    html! {
        <g class="panel">
            <Axes frame={ *frame } axis={ axis.clone() } {title} window_ms={ series.window_ms() } {time_labels} />
            { for lines.iter().map(|l| html! {
                <g class={ classes!("line", l.class) }>
                    { for polylines(series.samples(), frame, l.figure).into_iter().map(|points| html! {
                        <polyline {points} class={ l.class } />
                    }) }
                </g>
            }) }
            if time_labels {
                <text x={ frame.right().to_string() } y={ (frame.bottom() + 32.0).to_string() } class="axis-title" text-anchor="end">{ "time (now at the right)" }</text>
            }
        </g>
    }
}
