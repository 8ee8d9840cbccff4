//! An icicle (flame) graph of retained bytes by retaining path (`.flame`, with the
//! `id` it is given): the process on top, each frame below as wide as the bytes of
//! the paths through it (`.frame`, with `data-label`, `data-kind`, `data-bytes`,
//! `data-depth` and `data-width`). A click on a frame zooms into it (it becomes full
//! width; `data-focus` on the graph names it); a click on it again, or on a frame
//! above it, zooms back out. The layout is `logic::flame`'s.

use std::rc::Rc;

use yew::prelude::*;

use crate::logic::flame::{kind_name, Flame};
use crate::logic::format::bytes;

/// Height of one row, px.
const ROW: usize = 20;
/// Frames narrower than this share of the graph are not drawn.
const MIN_WIDTH: f64 = 0.002;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: AttrValue,
    pub flame: Rc<Flame>,
    /// Said when the graph holds no bytes.
    pub empty: AttrValue,
}

#[function_component]
pub fn FlameGraph(props: &Props) -> Html {
    // The zoom, as the labels from the root, so that it survives a new snapshot.
    let zoom = use_state(Vec::<String>::new);
    let flame = &props.flame;
    let focus = flame.find(&zoom).unwrap_or(0);
    let rects = flame.layout(focus, MIN_WIDTH);
    let total = flame.total();
    let height = Flame::rows(&rects) * ROW;
    let frames = rects.iter().map(|r| {
        let node = &flame.nodes[r.node];
        let onclick = {
            let (zoom, flame) = (zoom.clone(), flame.clone());
            let clicked = r.node;
            Callback::from(move |_: MouseEvent| zoom.set(flame.path(flame.zoom(focus, clicked))))
        };
        let share = if total == 0 {
            0.0
        } else {
            node.bytes as f64 * 100.0 / total as f64
        };
        let title = format!("{}: {} ({share:.1} % of all)", node.label, bytes(node.bytes));
        let style = format!(
            "left: {:.4}%; width: {:.4}%; top: {}px; height: {}px",
            r.x * 100.0,
            r.width * 100.0,
            r.depth * ROW,
            ROW - 1
        );
        html! {
            <div class={ classes!("frame", kind_name(node.kind), r.ancestor.then_some("ancestor"), (r.node == focus).then_some("focus")) }
                style={ style } title={ title.clone() } onclick={ onclick }
                data-label={ node.label.clone() } data-kind={ kind_name(node.kind) }
                data-bytes={ node.bytes.to_string() } data-depth={ r.depth.to_string() }
                data-width={ r.width.to_string() }>
                { format!("{} · {}", node.label, bytes(node.bytes)) }
            </div>
        }
    });
    html! {
        <section id={ props.id.clone() } class="flame" data-total={ total.to_string() }
            data-focus={ flame.nodes[focus].label.clone() }>
            if total == 0 {
                <p class="hint">{ props.empty.clone() }</p>
            } else {
                <p class="hint">{ "Click a frame to zoom into it; click it again, or a frame above it, to zoom out." }</p>
                <div class="flame-frames" style={ format!("height: {height}px") }>
                    { for frames }
                </div>
            }
        </section>
    }
}
