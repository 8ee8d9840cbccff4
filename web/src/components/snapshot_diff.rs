//! The difference between two snapshots of one server (`#snapshot-diff`, with
//! `data-retained-delta` and friends): slabs freed and new per pool, and how retained
//! bytes, referenced bytes, connections and the process's memory moved.

use std::rc::Rc;

use yew::prelude::*;

use crate::api::time_of_day;
use crate::logic::diff::SnapshotDiff as Diff;
use crate::logic::format::{duration_ms, id_list, signed, signed_bytes};

/// Slab ids listed per pool before "and N more".
const IDS_SHOWN: usize = 12;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub diff: Rc<Diff>,
    pub from_ms: u64,
    pub to_ms: u64,
}

fn row(label: &str, value: String, class: &'static str) -> Html {
    html! { <tr><th>{ label.to_string() }</th><td class={class}>{ value }</td></tr> }
}

/// A memory figure's row: its change, or why it is unknown (unreadable in one of
/// the two snapshots), never a change of 0.
fn figure_row(label: &str, change: &Result<i64, String>) -> Html {
    match change {
        Ok(n) => row(label, signed_bytes(*n), trend(*n)),
        Err(why) => row(label, why.clone(), "unreadable"),
    }
}

/// `up` when it grew, `down` when it shrank: for colouring.
fn trend(n: i64) -> &'static str {
    match n.signum() {
        1 => "up",
        -1 => "down",
        _ => "same",
    }
}

#[function_component]
pub fn SnapshotDiff(props: &Props) -> Html {
    let d = &props.diff;
    html! {
        <section id="snapshot-diff" class="diff"
            data-role={ d.role.clone() }
            data-retained-delta={ d.retained_delta.to_string() }
            data-referenced-delta={ d.referenced_delta.to_string() }
            data-open-delta={ d.open_delta.to_string() }
            data-slabs-freed={ d.slabs_freed().to_string() }
            data-slabs-new={ d.slabs_new().to_string() }>
            <h3>{ format!("What changed on {}: {} → {} ({})", d.role, time_of_day(props.from_ms as f64),
                time_of_day(props.to_ms as f64), duration_ms(d.between_ms.unsigned_abs())) }</h3>
            if !d.same_process {
                <p class="notice warn">{ "The server restarted between the two snapshots (its pid changed): every old slab went with it." }</p>
            }
            <table class="diff-totals">
                { row("retained bytes (live slabs)", signed_bytes(d.retained_delta), trend(d.retained_delta)) }
                { row("referenced bytes", signed_bytes(d.referenced_delta), trend(d.referenced_delta)) }
                { row("live slabs", signed(d.live_slabs_delta), trend(d.live_slabs_delta)) }
                { row("slabs freed / new", format!("{} freed, {} new", d.slabs_freed(), d.slabs_new()), "same") }
                { row("open connections", signed(d.open_delta), trend(d.open_delta)) }
                { row("connections accepted / closed in between", format!("{} / {}", d.accepted_between, d.closed_between), "same") }
                { figure_row("RSS", &d.rss_delta) }
                { figure_row("allocator resident", &d.resident_delta) }
            </table>
            <ul class="diff-pools">
                { for d.pools.iter().map(|p| html! {
                    <li data-pool={ p.name.clone() } data-freed={ all_ids(&p.slabs_freed) } data-new={ all_ids(&p.slabs_new) }>
                        <b>{ format!("{} pool", p.name) }</b>
                        { format!(": {} → {} live slabs; retained {}, referenced {}.", p.live_before, p.live_after,
                            signed_bytes(p.retained_delta), signed_bytes(p.referenced_delta)) }
                        <br />
                        { format!("Freed: {} ({}). New: {} ({}). Kept: {}. By the pool's counters, {} allocated and {} freed in between.",
                            p.slabs_freed.len(), id_list(&p.slabs_freed, IDS_SHOWN),
                            p.slabs_new.len(), id_list(&p.slabs_new, IDS_SHOWN),
                            p.slabs_kept, p.allocated_between, p.freed_between) }
                    </li>
                }) }
            </ul>
        </section>
    }
}

/// Every id, comma-separated (for the element's data attributes).
fn all_ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}
