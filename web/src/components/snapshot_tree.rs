//! A snapshot as a readable, collapsible tree (`#snapshot-tree`): the retaining tree
//! first (pools, their slabs pinned by retainers first, and each retainer such as
//! "upgrade head of connection 17"), then the pinned allocations (each large
//! allocation that kept parts lie in: size, age and the parts, for both stacks),
//! then the whole JSON, folded.

use serde_json::Value;
use yew::prelude::*;

use super::snapshot_panel::Taken;
use crate::api::time_of_day;
use crate::logic::format::bytes;
use crate::logic::slabs::{
    allocation_summary, pinned_summary, pool_summary, pools_by_retained, slab_summary,
    slabs_by_retention, totals_summary, RETAINERS_SHOWN,
};

/// Slabs shown unfolded in a pool (the most retained first).
const SLABS_OPEN: usize = 5;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub taken: Taken,
}

#[function_component]
pub fn SnapshotTree(props: &Props) -> Html {
    let s = &props.taken.snapshot;
    html! {
        <section id="snapshot-tree" class="tree" data-role={ s.role.clone() } data-taken-at={ s.taken_at_ms.to_string() }>
            <h3>{ format!("{} snapshot at {} (took {} µs)", s.role, time_of_day(s.taken_at_ms as f64), s.took_us) }</h3>
            <p class="summary">{ totals_summary(s) }</p>
            <details open=true class="retaining">
                <summary>{ "Retaining tree: pools → slabs → retainers" }</summary>
                if s.pools.is_empty() {
                    <p class="hint">{ "This process has no slab pools." }</p>
                }
                { for pools_by_retained(s).into_iter().map(|pool| html! {
                    <details open=true class="pool" data-pool={ pool.name.clone() }>
                        <summary>{ pool_summary(pool) }</summary>
                        <ul>
                        { for slabs_by_retention(pool).into_iter().enumerate().map(|(i, slab)| html! {
                            <li>
                                <details open={ i < SLABS_OPEN && !slab.retainers.is_empty() } class="slab" data-slab={ slab.id.to_string() }
                                    data-size={ slab.size.to_string() } data-retainers={ slab.retainers.len().to_string() }>
                                    <summary class={ classes!((!slab.retainers.is_empty()).then_some("pinned")) }>{ slab_summary(slab) }</summary>
                                    if slab.retainers.is_empty() {
                                        <p class="hint">{ "No retainers: nothing keeps it for a connection's life." }</p>
                                    } else {
                                        <ul class="retainers">
                                            { for slab.retainers.iter().take(RETAINERS_SHOWN).map(|r| html! {
                                                <li class="retainer">{ r.label.clone() }<span class="muted">{ format!(" ({})", bytes(r.bytes)) }</span></li>
                                            }) }
                                            if slab.retainers.len() > RETAINERS_SHOWN {
                                                <li class="muted">{ format!("and {} more", slab.retainers.len() - RETAINERS_SHOWN) }</li>
                                            }
                                        </ul>
                                    }
                                </details>
                            </li>
                        }) }
                        </ul>
                    </details>
                }) }
            </details>
            <details open=true class="pinned-allocations" id="pinned-allocations"
                data-allocations={ s.pinned_allocations.allocations.len().to_string() }>
                <summary>{ pinned_summary(&s.pinned_allocations) }</summary>
                <ul>
                { for s.pinned_allocations.allocations.iter().enumerate().map(|(i, a)| html! {
                    <li>
                        <details open={ i < SLABS_OPEN } class="allocation" data-allocation={ a.id.to_string() }
                            data-size={ a.size.to_string() } data-retainers={ a.kept.len().to_string() }>
                            <summary class="pinned">{ allocation_summary(a) }</summary>
                            <ul class="retainers">
                                { for a.kept.iter().take(RETAINERS_SHOWN).map(|r| html! {
                                    <li class="retainer">{ r.label.clone() }<span class="muted">{ format!(" ({})", bytes(r.bytes)) }</span></li>
                                }) }
                                if a.kept.len() > RETAINERS_SHOWN {
                                    <li class="muted">{ format!("and {} more", a.kept.len() - RETAINERS_SHOWN) }</li>
                                }
                            </ul>
                        </details>
                    </li>
                }) }
                </ul>
            </details>
            <details class="json">
                <summary>{ "The whole snapshot (JSON)" }</summary>
                { json_node(None, &props.taken.value, 0) }
            </details>
        </section>
    }
}

/// A JSON value as nested folds: objects and arrays fold, scalars are one line.
fn json_node(key: Option<&str>, value: &Value, depth: usize) -> Html {
    let label = key.map(|k| html! { <span class="key">{ format!("{k}: ") }</span> });
    match value {
        Value::Object(map) => html! {
            <details class="node" open={ depth == 0 }>
                <summary>{ label }<span class="muted">{ format!("{{{} keys}}", map.len()) }</span></summary>
                <div class="children">{ for map.iter().map(|(k, v)| json_node(Some(k), v, depth + 1)) }</div>
            </details>
        },
        Value::Array(items) => html! {
            <details class="node" open={ depth == 0 }>
                <summary>{ label }<span class="muted">{ format!("[{} items]", items.len()) }</span></summary>
                <div class="children">{ for items.iter().enumerate().map(|(i, v)| json_node(Some(&i.to_string()), v, depth + 1)) }</div>
            </details>
        },
        scalar => {
            html! { <div class="leaf">{ label }<span class="value">{ scalar.to_string() }</span></div> }
        }
    }
}
